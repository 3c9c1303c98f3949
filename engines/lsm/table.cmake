# Sources of the lsm table layer (see lsm_table.h).
set(LSM_TABLE_SOURCES)
