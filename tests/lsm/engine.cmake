# Tests of the lsm engine proper: unit tests (record log, memtable, edits
# and versions compiled in; MANIFEST, recovery and iteration through the
# plugin), multi(), the seeded model test and the engine's own crash tests
# (the generic ones are the kit's: crash.lsm). The plugin is loaded with
# the conformance kit's test host (fault-injecting I/O, log capture, fake
# clock), its path passed as argv[1].
if(NOT TARGET kvd_engine_lsm OR NOT TARGET kvd_testkit)
  return()
endif()

set(_lsm_src ${CMAKE_SOURCE_DIR}/engines/lsm)
set(_lsm_so $<TARGET_FILE:kvd_engine_lsm>)

add_executable(test_lsm_unit ${CMAKE_CURRENT_LIST_DIR}/test_lsm_unit.c
  ${_lsm_src}/lsm_wal.c ${_lsm_src}/lsm_mem.c ${_lsm_src}/lsm_edit.c
  ${_lsm_src}/lsm_version.c)
target_include_directories(test_lsm_unit PRIVATE ${_lsm_src})
target_link_libraries(test_lsm_unit PRIVATE lsm_table kvd_testkit
                      PkgConfig::CMOCKA kvd_warnings)
add_dependencies(test_lsm_unit kvd_engine_lsm)
add_test(NAME lsm.unit COMMAND test_lsm_unit ${_lsm_so})
math(EXPR _lsm_timeout "600 * ${KVD_TEST_TIMEOUT_SCALE}") # Tsan: x10
set(_lsm_unit_env "${KVD_TEST_ENV}")
if(CMAKE_BUILD_TYPE STREQUAL "Tsan")
  # Under ThreadSanitizer only the tests that run threads (group commit,
  # background sync, flushes and compactions beside readers and writers).
  list(APPEND _lsm_unit_env "LSM_UNIT_ONLY=concurrent,group_commit,everysec,during_flushes,slow_flushes,snapshot_iterator")
endif()
set_tests_properties(lsm.unit PROPERTIES LABELS "unit" ENVIRONMENT
                     "${_lsm_unit_env}" TIMEOUT ${_lsm_timeout})

add_executable(test_lsm_multi ${CMAKE_CURRENT_LIST_DIR}/test_lsm_multi.c)
target_include_directories(test_lsm_multi PRIVATE ${_lsm_src})
target_link_libraries(test_lsm_multi PRIVATE kvd_testkit PkgConfig::CMOCKA
                      Threads::Threads kvd_warnings)
add_dependencies(test_lsm_multi kvd_engine_lsm)
add_test(NAME lsm.multi COMMAND test_lsm_multi ${_lsm_so})
set_tests_properties(lsm.multi PROPERTIES LABELS "unit" ENVIRONMENT
                     "${KVD_TEST_ENV}" TIMEOUT 600)

foreach(_t model crash files)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/test_lsm_${_t}.c)
    add_executable(test_lsm_${_t} ${CMAKE_CURRENT_LIST_DIR}/test_lsm_${_t}.c)
    target_include_directories(test_lsm_${_t} PRIVATE ${_lsm_src})
    target_link_libraries(test_lsm_${_t} PRIVATE kvd_testkit
                          PkgConfig::CMOCKA kvd_warnings)
    add_dependencies(test_lsm_${_t} kvd_engine_lsm)
    add_test(NAME lsm.${_t} COMMAND test_lsm_${_t} ${_lsm_so})
    set_tests_properties(lsm.${_t} PROPERTIES LABELS "e2e" ENVIRONMENT
                         "${KVD_TEST_ENV}" TIMEOUT 600)
  endif()
endforeach()
