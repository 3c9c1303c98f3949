/*
 * fuzz/fuzz_memsnap.c -- the memory engine's snapshot loader
 * (engines/memory/mem_snapshot.c), reached as kvd reaches it: the engine
 * opened with snapshot_path naming a file that holds the input.
 *
 * First input byte, low bit 0: the rest is the file as it is (the magic,
 * checksum and length checks). Low bit 1: the rest describes records
 * (key, value, expiry) and the harness writes a snapshot with correct
 * checksums, a correct or wrong record count and optional trailing bytes,
 * so what lies behind the checksums is reached. A load that succeeds is
 * read back through the vtable; the engine is closed either way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/options.h"
#include "fuzz_util.h"
#include "kvd/engine.h"

extern const struct kvd_engine_vtable kvd_engine_entry;

#define FZ_SNAP_MAX (256 * 1024)

/* A valid snapshot built from the input's records (see the file header
 * of mem_snapshot.c for the layout). */
static size_t
build_snapshot(struct fz_in *in, uint8_t *out, size_t cap)
{
    uint8_t flags = fz_u8(in);
    size_t n = 16;
    uint64_t count = 0;
    uint32_t crc;

    memcpy(out, "KVDM", 4);
    fz_put16(out + 4, 1);
    fz_put16(out + 6, 1);
    fz_put64(out + 8, 1700000000000ull);
    while (in->n > 0) {
        size_t kl, vl;
        const uint8_t *k = fz_bytes(in, 64, &kl);
        const uint8_t *v = fz_bytes(in, 512, &vl);
        uint8_t e = fz_u8(in);
        /* none, long past, far future, or now-ish */
        int64_t exp = e % 4 == 0   ? 0
                      : e % 4 == 1 ? 1000
                      : e % 4 == 2 ? INT64_C(4102444800000)
                                   : INT64_C(1700000000000);

        if (n + 20 + kl + vl + 20 + 8 > cap) {
            break;
        }
        if (kl == 0 && !(flags & 2)) {
            continue; /* a zero-length key is the end marker */
        }
        fz_put32(out + n + 4, (uint32_t)kl);
        fz_put32(out + n + 8, (uint32_t)vl);
        fz_put64(out + n + 12, (uint64_t)exp);
        memcpy(out + n + 20, k, kl);
        memcpy(out + n + 20 + kl, v, vl);
        fz_put32(out + n, fz_crc_mask(fz_crc32c(0, out + n + 4, 16 + kl + vl)));
        n += 20 + kl + vl;
        count++;
    }
    fz_put32(out + n + 4, 0);
    fz_put32(out + n + 8, 0);
    fz_put64(out + n + 12, (flags & 4) ? count + 1 : count);
    crc = fz_crc32c(fz_crc32c(0, out, 16), out + n + 4, 16);
    fz_put32(out + n, fz_crc_mask(crc));
    n += 20;
    if (flags & 8) {
        out[n++] = 0; /* nothing may follow the end record */
    }
    return n;
}

static void
read_back(const struct kvd_engine_vtable *vt, kvd_engine *e)
{
    kvd_iter *it = NULL;
    struct kvd_iter_opts io;
    struct kvd_entry ent;
    struct kvd_err err = {0};

    memset(&io, 0, sizeof(io));
    if (vt->iter_open != NULL && vt->iter_open(e, &io, &it, &err) == 0) {
        while (vt->iter_next(it, &ent) == 0) {
        }
        vt->iter_close(it);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct kvd_engine_vtable *vt = &kvd_engine_entry;
    struct fz_in in = {data, size};
    char dir[256], path[300];
    uint8_t *file = NULL;
    size_t flen;
    struct kvd_conf_item item = {"snapshot_path", "snap.kvd", 1};
    struct kvd_conf_section sec = {"engine", 1, 1, &item, "fuzz"};
    void *opts = calloc(1, vt->options_size);
    kvd_engine *e = NULL;
    struct kvd_err err = {0};
    FILE *fp;

    FZ_CHECK(opts != NULL);
    if (fz_tmpdir(dir, sizeof(dir)) != 0) {
        abort();
    }
    if (fz_u8(&in) & 1) {
        file = malloc(FZ_SNAP_MAX);
        FZ_CHECK(file != NULL);
        flen = build_snapshot(&in, file, FZ_SNAP_MAX);
    } else {
        flen = in.n;
    }
    snprintf(path, sizeof(path), "%s/snap.kvd", dir);
    fp = fopen(path, "wb");
    FZ_CHECK(fp != NULL);
    if (flen > 0) {
        fwrite(file != NULL ? file : in.p, 1, flen, fp);
    }
    fclose(fp);
    free(file);
    if (kvd_options_parse(vt->options, &sec, NULL, opts, &err) != 0) {
        abort(); /* the harness's own options: a bug here, not a find */
    }
    if (vt->open(fz_host(), opts, dir, &e, &err) == 0) {
        read_back(vt, e);
        vt->close(e, &err);
    }
    kvd_options_release(vt->options, opts);
    free(opts);
    fz_rmtree(dir);
    return 0;
}
