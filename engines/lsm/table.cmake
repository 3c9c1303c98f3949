# Sources of the lsm table layer (see lsm_table.h): block format, bloom
# filter, block cache, table writer and reader.
set(LSM_TABLE_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/lsm_block.c
  ${CMAKE_CURRENT_LIST_DIR}/lsm_bloom.c
  ${CMAKE_CURRENT_LIST_DIR}/lsm_cache.c
  ${CMAKE_CURRENT_LIST_DIR}/lsm_table_write.c
  ${CMAKE_CURRENT_LIST_DIR}/lsm_table_read.c)
