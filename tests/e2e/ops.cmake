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

# man/kvd.ini.5 is generated from the option tables like docs/config.md;
# fail when it is stale (run scripts/gen-man-config BUILD_DIR to refresh).
add_test(NAME docs.man
         COMMAND sh -c "python3 ${CMAKE_SOURCE_DIR}/scripts/gen-man-config ${CMAKE_BINARY_DIR} $0 && diff -u ${CMAKE_SOURCE_DIR}/man/kvd.ini.5 $0"
                 ${CMAKE_CURRENT_BINARY_DIR}/kvd.ini.5.generated)
set_tests_properties(docs.man PROPERTIES LABELS unit
                     ENVIRONMENT "${KVD_TEST_ENV}")

# The unit as built passes systemd-analyze verify with nothing to say.
add_test(NAME e2e.unit
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_unit.sh
                 ${CMAKE_BINARY_DIR}/kvd.service ${KVD_BIN} ${CMAKE_SOURCE_DIR})
set_tests_properties(e2e.unit PROPERTIES LABELS e2e TIMEOUT 60)

if(TARGET kv)
  add_test(NAME e2e.completion
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_completion.sh
                   ${CMAKE_SOURCE_DIR} ${KVD_BIN} $<TARGET_FILE:kv>
                   ${KVD_PLUGIN_BUILD_DIR})
  set_tests_properties(e2e.completion PROPERTIES LABELS e2e TIMEOUT 60
                       ENVIRONMENT "${KVD_TEST_ENV}")
endif()

# The Debian package: build, lintian, layout, install into a fresh root.
# Minutes, not seconds: run once per CI run, in the normal build only.
if(NOT CMAKE_BUILD_TYPE STREQUAL "Asan")
  add_test(NAME e2e.package
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_package.sh
                   ${CMAKE_SOURCE_DIR})
  set_tests_properties(e2e.package PROPERTIES LABELS "e2e;package"
                       TIMEOUT 1800 RUN_SERIAL TRUE)
endif()
