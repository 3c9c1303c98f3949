/*
 * fuzz/fuzz_lsm_manifest.c -- the lsm engine's MANIFEST as recovery reads
 * it (engines/lsm/lsm_wal.c framing, then lsm_edit_decode of each version
 * edit, engines/lsm/lsm_edit.c). A decoded edit is encoded again and must
 * decode to the same encoding. See fuzz_lsm_log.h for the input modes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_lsm_log.h"
#include "fuzz_util.h"
#include "lsm_version.h"
#include "lsm_wal.h"

static void
edit(const void *p, size_t n)
{
    struct lsm_edit e, e2;
    unsigned char *enc = NULL, *enc2 = NULL;
    size_t en = 0, en2 = 0;

    lsm_edit_init(&e);
    if (lsm_edit_decode(&e, p, n) == 0 && lsm_edit_encode(&e, &enc, &en) == 0) {
        lsm_edit_init(&e2);
        FZ_CHECK(lsm_edit_decode(&e2, enc, en) == 0);
        FZ_CHECK(lsm_edit_encode(&e2, &enc2, &en2) == 0);
        FZ_CHECK(en == en2 && memcmp(enc, enc2, en) == 0);
        lsm_edit_release(&e2);
        free(enc);
        free(enc2);
    }
    lsm_edit_release(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_lsm_log_run(data, size, LSM_FILE_KIND_MANIFEST, edit);
    return 0;
}
