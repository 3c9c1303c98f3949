# Memory engine unit tests (engine-specific behaviour; the shared
# conformance suite covers the rest). Include from tests/unit/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/memory.cmake)
add_executable(test_memory ${CMAKE_CURRENT_LIST_DIR}/test_memory.c)
target_link_libraries(test_memory PRIVATE kvd_headers kvd_warnings
                      PkgConfig::CMOCKA Threads::Threads ${CMAKE_DL_LIBS})
add_dependencies(test_memory kvd_engine_memory)
add_test(NAME unit.memory
         COMMAND test_memory $<TARGET_FILE:kvd_engine_memory>)
set_tests_properties(unit.memory PROPERTIES
  LABELS "unit" ENVIRONMENT "${KVD_TEST_ENV}" TIMEOUT 120)
