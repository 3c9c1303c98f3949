/*
 * fuzz/fuzz_log_recover.c -- the log engine's recovery as kvd reaches it
 * (engines/log: alog_recover.c, alog_scan.c, alog_hint.c, alog_format.c):
 * the engine opened on a data directory holding a sealed segment
 * 00000001.data with its hint 00000001.hint and an active segment
 * 00000002.data, then read back and closed.
 *
 * First input byte: bit 0 chooses the mode, bit 1 corruption = fail (else
 * skip), bit 2 hint files off, bit 3 a second open from the index file
 * the close wrote (alog_ixfile.c), damaged first by the input's last
 * bytes: pairs of (u16 offset scaled over the file, u8 xor), and a cut
 * when the xor is 0. Mode 0: the rest is cut into the three
 * files as they are (two u16 lengths first). Mode 1: the rest describes
 * records (kind, key, value, expiry), which the harness writes with the
 * engine's own record encoder (valid checksums) into both segments, a
 * hint for the sealed one with a valid trailer (one field changed when the
 * input says so: a hint that lies), and a torn tail on the active one, so
 * what lies behind the checksums is reached.
 *
 * The log engine is being rewritten (issue 14): only the file names and
 * the record/hint encoders used in mode 1 tie this harness to the format.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alog_format.h"
#include "core/options.h"
#include "fuzz_util.h"
#include "kvd/engine.h"

extern const struct kvd_engine_vtable kvd_engine_entry;

#define FZ_SEG_MAX (64 * 1024)
#define FZ_RECS    256

struct fz_file {
    uint8_t *p;
    size_t n;
};

static void
put_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[400];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wb");
    FZ_CHECK(fp != NULL);
    if (n > 0) {
        fwrite(p, 1, n, fp);
    }
    fclose(fp);
}

/* One segment of records from the input; fills the hint entries of the
 * records written when ents != NULL. */
static size_t
build_segment(struct fz_in *in, uint8_t *seg, uint64_t *seq,
              struct alog_hint_ent *ents, uint8_t (*keys)[64], size_t *nent)
{
    size_t n = ALOG_FILE_HDR_BYTES;
    size_t nrec = fz_u8(in) % 64;

    alog_file_hdr_encode(seg, ALOG_FILE_DATA, *seq);
    for (size_t i = 0; i < nrec && in->n > 0; i++) {
        struct alog_rec_hdr h;
        size_t kl, vl;
        const uint8_t *k = fz_bytes(in, 63, &kl);
        const uint8_t *v = fz_bytes(in, 300, &vl);
        uint8_t e = fz_u8(in);

        if (kl == 0 || n + ALOG_REC_HDR_BYTES + kl + vl > FZ_SEG_MAX) {
            continue;
        }
        memset(&h, 0, sizeof(h));
        h.kind = (e & 1) ? 2 : 1; /* tombstone or put */
        h.klen = (uint16_t)kl;
        h.vlen = h.kind == 1 ? (uint32_t)vl : 0;
        h.seq = ++*seq;
        h.expire_ms = (e & 6) == 2   ? 1000
                      : (e & 6) == 4 ? INT64_C(4102444800000)
                                     : 0;
        h.ts_ms = INT64_C(1700000000000);
        memcpy(seg + n + ALOG_REC_HDR_BYTES, k, kl);
        memcpy(seg + n + ALOG_REC_HDR_BYTES + kl, v, h.vlen);
        alog_rec_seal(seg + n, &h);
        if (ents != NULL && *nent < FZ_RECS) {
            struct alog_hint_ent *he = &ents[*nent];
            he->seq = h.seq;
            he->expire_ms = h.expire_ms;
            he->off = (uint32_t)n;
            he->vlen = h.vlen;
            he->klen = h.klen;
            he->kind = h.kind;
            memcpy(keys[*nent], k, kl);
            (*nent)++;
        }
        n += ALOG_REC_HDR_BYTES + kl + h.vlen;
    }
    return n;
}

static size_t
build_hint(struct fz_in *in, uint8_t *out, struct alog_hint_ent *ents,
           uint8_t (*keys)[64], size_t nent, size_t data_bytes)
{
    size_t n = ALOG_FILE_HDR_BYTES;
    uint8_t lie = fz_u8(in);
    uint8_t which = fz_u8(in);
    uint32_t delta = fz_u32(in);

    alog_file_hdr_encode(out, ALOG_FILE_HINT, 1);
    if (nent > 0 && (lie & 1)) {
        struct alog_hint_ent *e = &ents[which % nent];
        switch ((lie >> 1) % 4) {
        case 0:
            e->off += delta;
            break;
        case 1:
            e->vlen += delta;
            break;
        case 2:
            e->klen = (uint16_t)(e->klen + delta);
            break;
        default:
            e->kind = (uint8_t)delta;
            break;
        }
    }
    for (size_t i = 0; i < nent; i++) {
        size_t kl = ents[i].klen <= 63 ? ents[i].klen : 63;
        alog_hint_ent_encode(out + n, &ents[i]);
        memcpy(out + n + ALOG_HINT_ENT_BYTES, keys[i], kl);
        n += ALOG_HINT_ENT_BYTES + kl;
    }
    fz_put64(out + n, (lie & 0x40) ? data_bytes + delta : data_bytes);
    fz_put64(out + n + 8, nent);
    fz_put32(out + n + 16, ALOG_HINT_TRAILER_MAGIC);
    fz_put32(out + n + 20, fz_crc_mask(fz_crc32c(0, out, n + 20)));
    return n + ALOG_HINT_TRAILER_BYTES;
}

static void
read_back(const struct kvd_engine_vtable *vt, kvd_engine *e)
{
    kvd_iter *it = NULL;
    struct kvd_iter_opts io;
    struct kvd_entry ent;
    struct kvd_err err = {0};
    size_t n = 0;

    memset(&io, 0, sizeof(io));
    if (vt->iter_open(e, &io, &it, &err) == 0) {
        while (vt->iter_next(it, &ent) == 0 && n++ < 100000) {
        }
        vt->iter_close(it);
    }
}

/* Damage DIR/INDEX with the last up-to-24 input bytes (see the top). */
static void
damage_index(const char *dir, const uint8_t *data, size_t size)
{
    char path[400];
    size_t take = size < 24 ? size - size % 3 : 24;
    const uint8_t *m = data + size - take;
    FILE *fp;
    long len;

    snprintf(path, sizeof(path), "%s/INDEX", dir);
    fp = fopen(path, "r+b");
    if (fp == NULL) {
        return; /* none written (nothing to index, or the close failed) */
    }
    FZ_CHECK(fseek(fp, 0, SEEK_END) == 0);
    len = ftell(fp);
    for (size_t i = 0; i + 3 <= take && len > 0; i += 3) {
        long off = (long)(((uint32_t)m[i] | (uint32_t)m[i + 1] << 8) *
                          (uint64_t)len >> 16);
        int c;
        if (m[i + 2] == 0) {
            fclose(fp);
            FZ_CHECK(truncate(path, off) == 0);
            return;
        }
        FZ_CHECK(fseek(fp, off, SEEK_SET) == 0);
        c = fgetc(fp);
        FZ_CHECK(c != EOF && fseek(fp, off, SEEK_SET) == 0);
        fputc(c ^ m[i + 2], fp);
    }
    fclose(fp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct kvd_engine_vtable *vt = &kvd_engine_entry;
    struct fz_in in = {data, size};
    uint8_t flags = fz_u8(&in);
    char dir[256];
    /* the index file only when bit 3 asks for it: writing one per input
     * would cost most of the executions the other paths get */
    struct kvd_conf_item items[4] = {
        {"sync", "never", 1},
        {"corruption", (flags & 2) ? "fail" : "skip", 2},
        {"hint_files", (flags & 4) ? "no" : "yes", 3},
        {"index_file", (flags & 8) ? "yes" : "no", 4},
    };
    struct kvd_conf_section sec = {"engine", 1, 4, items, "fuzz"};
    void *opts = calloc(1, vt->options_size);
    kvd_engine *e = NULL;
    struct kvd_err err = {0};

    FZ_CHECK(opts != NULL);
    FZ_CHECK(fz_tmpdir(dir, sizeof(dir)) == 0);
    if (flags & 1) {
        uint8_t *s1 = calloc(1, FZ_SEG_MAX), *s2 = calloc(1, FZ_SEG_MAX);
        uint8_t *hint = calloc(1, FZ_SEG_MAX);
        struct alog_hint_ent *ents = calloc(FZ_RECS, sizeof(*ents));
        uint8_t(*keys)[64] = calloc(FZ_RECS, 64);
        uint64_t seq = 0;
        size_t nent = 0, n1, n2, nh;
        uint32_t cut;

        FZ_CHECK(s1 && s2 && hint && ents && keys);
        n1 = build_segment(&in, s1, &seq, ents, keys, &nent);
        nh = build_hint(&in, hint, ents, keys, nent, n1);
        cut = fz_u32(&in);
        n2 = build_segment(&in, s2, &seq, NULL, NULL, NULL);
        if (cut & 1) {
            n2 -= (cut >> 1) % n2; /* a torn tail on the active segment */
        }
        put_file(dir, "00000001.data", s1, n1);
        put_file(dir, "00000001.hint", hint, nh);
        put_file(dir, "00000002.data", s2, n2);
        free(s1);
        free(s2);
        free(hint);
        free(ents);
        free(keys);
    } else {
        size_t l1 = fz_u8(&in) | (size_t)fz_u8(&in) << 8;
        size_t lh = fz_u8(&in) | (size_t)fz_u8(&in) << 8;

        l1 = l1 < in.n ? l1 : in.n;
        put_file(dir, "00000001.data", in.p, l1);
        in.p += l1;
        in.n -= l1;
        lh = lh < in.n ? lh : in.n;
        put_file(dir, "00000001.hint", in.p, lh);
        put_file(dir, "00000002.data", in.p + lh, in.n - lh);
    }
    FZ_CHECK(kvd_options_parse(vt->options, &sec, NULL, opts, &err) == 0);
    if (vt->open(fz_host(), opts, dir, &e, &err) == 0) {
        read_back(vt, e);
        vt->close(e, &err);
        if (flags & 8) {
            damage_index(dir, data, size);
            if (vt->open(fz_host(), opts, dir, &e, &err) == 0) {
                read_back(vt, e);
                vt->close(e, &err);
            }
        }
    }
    kvd_options_release(vt->options, opts);
    free(opts);
    fz_rmtree(dir);
    return 0;
}
