# Sources of the lsm engine proper (everything but the table layer, whose
# sources table.cmake lists). The plugin kvd_engine_lsm is built from these
# plus the lsm_table static library (see CMakeLists.txt).
set(LSM_ENGINE_SOURCES
  lsm_batch.c
  lsm_compact.c
  lsm_dbiter.c
  lsm_edit.c
  lsm_engine.c
  lsm_file.c
  lsm_manifest.c
  lsm_mem.c
  lsm_merge.c
  lsm_multi.c
  lsm_recover.c
  lsm_room.c
  lsm_tcache.c
  lsm_version.c
  lsm_view.c
  lsm_wal.c
  lsm_walfile.c
  lsm_write.c)
