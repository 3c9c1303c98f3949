# Operations: --check-config refusals, running under a service manager
# (sd_notify, file modes, SIGHUP, journal), the unit file, the Debian
# package, man pages and completion.
add_test(NAME e2e.check_config
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_check_config.sh ${KVD_BIN}
                 ${KVD_PLUGIN_BUILD_DIR})
set_tests_properties(e2e.check_config PROPERTIES LABELS e2e
                     ENVIRONMENT "${KVD_TEST_ENV}" TIMEOUT 300)

add_test(NAME e2e.service
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_service.py
                 ${KVD_BIN} ${KVD_PLUGIN_BUILD_DIR})
set_tests_properties(e2e.service PROPERTIES LABELS e2e
                     ENVIRONMENT "${KVD_TEST_ENV}" TIMEOUT 300)
