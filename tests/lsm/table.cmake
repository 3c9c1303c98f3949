# Unit tests of the lsm table layer (blocks, bloom filter, block cache,
# table writer and reader). They link the static lsm_table library, not the
# engine plugin, and bring their own fault-injecting host.
add_executable(test_lsm_table ${CMAKE_CURRENT_LIST_DIR}/test_lsm_table.c)
target_link_libraries(test_lsm_table PRIVATE lsm_table PkgConfig::CMOCKA
                      kvd_warnings)
add_test(NAME lsm.table COMMAND test_lsm_table)
set_tests_properties(lsm.table PROPERTIES LABELS "unit" ENVIRONMENT
                     "${KVD_TEST_ENV}" TIMEOUT 600)
