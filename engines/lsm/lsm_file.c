/*
 * lsm_file.c -- file helpers of the lsm engine: paths, file numbers,
 * directory fsync, and the words of a failure.
 *
 * Every call that touches a file goes through db->io (the toolkit's file
 * helpers do too), so a test can fail any write or fsync. Helpers return 0
 * or a negative kvd status and never turn the engine read-only themselves:
 * the caller knows whether the failure lost an acknowledged write and says
 * so through lsm_fail().
 */
#include "lsm_db.h"

#include <stdio.h>

void
lsm_path(const lsm_db *db, char *buf, uint64_t number, const char *ext)
{
    snprintf(buf, LSM_PATH_BYTES, "%s/%06llu.%s", db->dir,
             (unsigned long long)number, ext);
}

int
lsm_fsync_dir(lsm_db *db)
{
    kvd_counter_add(&db->c.fsyncs, 1);
    return kvd_file_fsync_dir(db->io, db->dir);
}

uint64_t
lsm_new_file_number(lsm_db *db)
{
    uint64_t n;

    pthread_mutex_lock(&db->mu);
    n = db->next_file++;
    pthread_mutex_unlock(&db->mu);
    return n;
}

const char *
lsm_why(lsm_db *db, int rc, char *buf)
{
    if (!lsm_readonly(db)) {
        return kvd_strerror(rc);
    }
    kvd_ro_state(db->ro, buf, LSM_STATE_BYTES);
    return buf;
}
