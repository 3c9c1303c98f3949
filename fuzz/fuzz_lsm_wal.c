/*
 * fuzz/fuzz_lsm_wal.c -- the lsm engine's WAL as recovery reads it
 * (engines/lsm/lsm_wal.c framing, then lsm_batch_decode of each record,
 * engines/lsm/lsm_write.c). See fuzz_lsm_log.h for the two input modes.
 */

#include "fuzz_lsm_log.h"
#include "fuzz_util.h"
#include "lsm_db.h"
#include "lsm_wal.h"

static int
count_op(void *ctx, uint64_t seq, int type, const void *key, size_t klen,
         struct lsm_slice v)
{
    size_t *ops = ctx;

    (void)seq;
    (void)type;
    (void)key;
    (void)klen;
    (void)v;
    (*ops)++;
    return 0;
}

static void
batch(const void *p, size_t n)
{
    uint64_t first;
    uint32_t count;
    size_t ops = 0;

    if (lsm_batch_decode(p, n, &first, &count, NULL, NULL) == 0 &&
        lsm_batch_decode(p, n, &first, &count, count_op, &ops) == 0) {
        FZ_CHECK(ops == count);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_lsm_log_run(data, size, LSM_FILE_KIND_WAL, batch);
    return 0;
}
