/*
 * alog_ixfile.c -- the index file: the whole in-memory index, written at a
 * clean close and read back by the next open instead of rebuilding the
 * index from the hint files (docs/formats.md, "Index file").
 *
 * Rebuilding from hints reads every key, hashes it, sorts each shard and
 * copies the keys into fresh arenas: about 0.3 s of CPU for 1,000,000
 * keys. The index file holds the result, each shard's slot array and key
 * arena blocks byte for byte, so an open only copies them back (a few
 * tens of ms for the same keys) and checks them.
 *
 * It is a cache, never the only copy of anything: the segments and their
 * hint files stay authoritative, and the file is used only when it
 * describes exactly the segments found at open (same ids, kinds and
 * sizes). Every change to a store appends to a segment or adds or removes
 * one, so a file that matches cannot miss a write, whatever happened
 * since it was written (a crash, a merge, an older copy put back). It is
 * deleted once read, and a file that does not match, is damaged (crc) or
 * is from another layout is logged and ignored: the open then reads the
 * hint files as it always could. Written under a temporary name and
 * renamed, without fsync: after a power loss it is either the whole file
 * or fails its crc, and the close does not wait for tens of MB to reach
 * the disk.
 *
 * The slot arrays and arena blocks are written in this build's memory
 * layout; the header records the slot size and a byte-order probe, and a
 * file with another layout is ignored like a stale one. Both functions run
 * with no other thread in the store (close, open).
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IXF_MAGIC      0x58444e49u /* "INDX" */
#define IXF_BYTE_ORDER 0x0102030405060708ull
/* after the file header: u32 slot bytes, u32 block bytes, u32 shards,
 * u32 segments, u64 byte-order probe, u64 hash seed, u64 last seq */
#define IXF_HDR_BYTES (ALOG_FILE_HDR_BYTES + 40)
/* per segment: u32 id, u32 index slot, u32 kind, u32 needs a hint, u64
 * size, live bytes, hint bytes, min seq, max seq */
#define IXF_SEG_BYTES 56
/* per shard: u32 cap, u32 slots, u32 slots written (up to the last used
 * one; the rest are zero), u32 blocks, u32 last block's use; u64
 * count, live keys, key bytes, value bytes, expiring, dead arena bytes;
 * then the slots, then per block a u32 length word (IXF_BLK_*) and its
 * bytes */
#define IXF_SHARD_BYTES 64
/* u64 file bytes before it, u32 magic, u32 masked crc32c of all before */
#define IXF_TRAILER_BYTES 16
#define IXF_WBUF_BYTES    (256u << 10)
/* a block's length word: a pool block (ALOG_KBLK_BYTES follow), a dead
 * long-key block (nothing follows; loaded as an empty pool block that
 * keeps the block numbers), or the length of a live long key's entry */
#define IXF_BLK_POOL 0u
#define IXF_BLK_DEAD 1u

/* ---- writing ---- */

struct ixf_writer {
    const struct kvd_io *io;
    int fd;
    uint64_t off;
    uint32_t crc;
    int rc;
    size_t len;
    unsigned char buf[IXF_WBUF_BYTES];
};

static void
ixw_flush(struct ixf_writer *w)
{
    if (w->rc == 0 && w->len > 0) {
        w->rc = kvd_file_write_full(w->io, w->fd, w->buf, w->len, w->off);
        w->off += w->len;
    }
    w->len = 0;
}

/* Append n bytes: small ones through the buffer, large ones (slot arrays)
 * straight from memory. */
static void
ixw_put(struct ixf_writer *w, const void *p, size_t n)
{
    w->crc = kvd_crc32c(w->crc, p, n);
    if (n > IXF_WBUF_BYTES / 2) {
        ixw_flush(w);
        if (w->rc == 0) {
            w->rc = kvd_file_write_full(w->io, w->fd, p, n, w->off);
            w->off += n;
        }
        return;
    }
    if (w->len + n > IXF_WBUF_BYTES) {
        ixw_flush(w);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void
ixw_u32(struct ixf_writer *w, uint32_t v)
{
    unsigned char b[4];
    alog_put_u32(b, v);
    ixw_put(w, b, 4);
}

static void
ixw_u64(struct ixf_writer *w, uint64_t v)
{
    unsigned char b[8];
    alog_put_u64(b, v);
    ixw_put(w, b, 8);
}

/* Which of sh's long-key blocks (own blocks) a slot points at, and with
 * an expiry after the key: those are written with their exact length, the
 * others are dead bytes (their key was removed or moved) and only keep
 * their place. NULL with *rc set on ENOMEM; NULL and 0 without own
 * blocks. */
enum { IXF_BLK_LIVE = 1, IXF_BLK_EXPIRES = 2 };

static unsigned char *
ixw_own_blocks(const struct alog_shard *sh, int *rc)
{
    unsigned char *st;
    uint32_t b;

    *rc = 0;
    for (b = 0; b < sh->ka.nblks && !((uintptr_t)sh->ka.blks[b] & 1); b++) {
    }
    if (b == sh->ka.nblks) {
        return NULL;
    }
    st = calloc(sh->ka.nblks, 1);
    if (st == NULL) {
        *rc = KVD_ENOMEM;
        return NULL;
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];
        if (e->flags & ALOG_ENT_USED) {
            st[e->kref >> ALOG_KBLK_SHIFT] |=
                IXF_BLK_LIVE |
                ((e->flags & ALOG_ENT_EXPIRES) ? IXF_BLK_EXPIRES : 0);
        }
    }
    return st;
}

static void
ixw_shard(struct ixf_writer *w, const struct alog_shard *sh)
{
    const struct alog_karena *ka = &sh->ka;
    unsigned char *own = ixw_own_blocks(sh, &w->rc);

    uint32_t written = sh->nslots;

    /* the free slots after the last used one are zeros the open need not
     * read or touch (most of the overflow tail) */
    while (written > 0 && !(sh->slots[written - 1].flags & ALOG_ENT_USED)) {
        written--;
    }
    ixw_u32(w, sh->cap);
    ixw_u32(w, sh->nslots);
    ixw_u32(w, written);
    ixw_u32(w, ka->nblks);
    ixw_u32(w, ka->pos);
    ixw_u64(w, sh->count);
    ixw_u64(w, sh->live_keys);
    ixw_u64(w, sh->key_bytes);
    ixw_u64(w, sh->value_bytes);
    ixw_u64(w, sh->expiring);
    ixw_u64(w, sh->ka_dead);
    ixw_put(w, sh->slots, (size_t)written * sizeof(*sh->slots));
    for (uint32_t b = 0; w->rc == 0 && b < ka->nblks; b++) {
        const unsigned char *p =
            (const unsigned char *)((uintptr_t)ka->blks[b] & ~(uintptr_t)1);
        uint16_t klen;
        if (!((uintptr_t)ka->blks[b] & 1)) {
            ixw_u32(w, IXF_BLK_POOL);
            ixw_put(w, p, ALOG_KBLK_BYTES);
        } else if (!(own[b] & IXF_BLK_LIVE)) {
            ixw_u32(w, IXF_BLK_DEAD);
        } else {
            uint32_t len;
            memcpy(&klen, p, 2);
            len = 2u + klen + ((own[b] & IXF_BLK_EXPIRES) ? 8u : 0u);
            ixw_u32(w, len);
            ixw_put(w, p, len);
        }
    }
    free(own);
}

int
alog_ixfile_write(alog_db *db)
{
    char path[ALOG_PATH_BYTES];
    char tmp[ALOG_PATH_BYTES + 8];
    unsigned char hdr[ALOG_FILE_HDR_BYTES];
    struct ixf_writer *w = malloc(sizeof(*w));
    int rc;

    if (w == NULL) {
        return KVD_ENOMEM;
    }
    snprintf(path, sizeof(path), "%s/%s", db->dir, ALOG_INDEX_FILE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    memset(w, 0, offsetof(struct ixf_writer, buf));
    w->io = db->io;
    w->fd = db->io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        rc = kvd_errno_status(errno);
        free(w);
        return rc;
    }
    alog_file_hdr_encode(hdr, ALOG_FILE_INDEX, db->seq);
    ixw_put(w, hdr, sizeof(hdr));
    ixw_u32(w, (uint32_t)sizeof(struct alog_ent));
    ixw_u32(w, ALOG_KBLK_BYTES);
    ixw_u32(w, ALOG_SHARDS);
    ixw_u32(w, (uint32_t)db->nsegs);
    {
        uint64_t probe = IXF_BYTE_ORDER;
        ixw_put(w, &probe, 8); /* native order: tells the layout */
    }
    ixw_u64(w, db->ix.seed);
    ixw_u64(w, db->seq);
    for (size_t i = 0; i < db->nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        ixw_u32(w, s->id);
        ixw_u32(w, atomic_load(&s->ixslot));
        ixw_u32(w, (uint32_t)s->kind);
        ixw_u32(w, (uint32_t)s->need_hint);
        ixw_u64(w, atomic_load(&s->size));
        ixw_u64(w, atomic_load(&s->live_bytes));
        ixw_u64(w, atomic_load(&s->hint_bytes));
        ixw_u64(w, atomic_load(&s->min_seq));
        ixw_u64(w, atomic_load(&s->max_seq));
    }
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        ixw_shard(w, &db->ix.shards[i]);
    }
    {
        uint64_t bytes = w->off + w->len;
        unsigned char t[IXF_TRAILER_BYTES];
        alog_put_u64(t, bytes);
        alog_put_u32(t + 8, IXF_MAGIC);
        alog_put_u32(t + 12, kvd_crc32c_mask(kvd_crc32c(w->crc, t, 12)));
        w->crc = 0;
        ixw_put(w, t, sizeof(t));
    }
    ixw_flush(w);
    rc = w->rc;
    if (db->io->close(w->fd) != 0 && rc == 0) {
        rc = kvd_errno_status(errno);
    }
    if (rc == 0 && db->io->rename(tmp, path) != 0) {
        rc = kvd_errno_status(errno);
    }
    if (rc != 0) {
        db->io->unlink(tmp);
    }
    free(w);
    return rc;
}

/* ---- reading ---- */

/* Reads go through a buffer: the file is mostly small fields and 4 KiB
 * blocks, and a system call per field or block (12,000 for 1,000,000
 * keys) cost more than the copying. Slot arrays larger than the buffer
 * are read straight into place. */
#define IXF_RBUF_BYTES (1u << 20)

struct ixf_reader {
    const struct kvd_io *io;
    int fd;
    uint64_t off;  /* logical position */
    uint64_t size; /* bytes that may be read */
    uint32_t crc;
    unsigned char *buf; /* IXF_RBUF_BYTES; [bpos, blen) is at off */
    size_t bpos;
    size_t blen;
};

static int
ixr_pread(struct ixf_reader *r, void *p, size_t n)
{
    size_t got = 0;
    int rc = kvd_file_read_full(r->io, r->fd, p, n, r->off, &got);

    return rc != 0 ? rc : got != n ? KVD_ECORRUPT : 0;
}

/* Read n bytes into p (crc updated). 0, or a status (KVD_ECORRUPT: the
 * file is shorter). */
static int
ixr_get(struct ixf_reader *r, void *p, size_t n)
{
    unsigned char *d = p;
    size_t left = n;
    int rc;

    if (n > r->size - r->off) {
        return KVD_ECORRUPT;
    }
    while (left > 0) {
        size_t take = r->blen - r->bpos;
        if (take == 0 && left >= IXF_RBUF_BYTES) {
            rc = ixr_pread(r, d, left);
            if (rc != 0) {
                return rc;
            }
            r->off += left;
            break;
        }
        if (take == 0) {
            uint64_t want = r->size - r->off;
            want = want < IXF_RBUF_BYTES ? want : IXF_RBUF_BYTES;
            rc = ixr_pread(r, r->buf, (size_t)want);
            if (rc != 0) {
                return rc;
            }
            r->bpos = 0;
            r->blen = (size_t)want;
            continue;
        }
        take = take < left ? take : left;
        memcpy(d, r->buf + r->bpos, take);
        r->bpos += take;
        r->off += take;
        d += take;
        left -= take;
    }
    r->crc = kvd_crc32c(r->crc, p, n);
    return 0;
}

static int
ixr_u32(struct ixf_reader *r, uint32_t *v)
{
    unsigned char b[4];
    int rc = ixr_get(r, b, 4);
    *v = rc == 0 ? alog_get_u32(b) : 0;
    return rc;
}

static int
ixr_u64(struct ixf_reader *r, uint64_t *v)
{
    unsigned char b[8];
    int rc = ixr_get(r, b, 8);
    *v = rc == 0 ? alog_get_u64(b) : 0;
    return rc;
}

/* The segments the file lists must be db's, one for one. 0, or
 * KVD_ECORRUPT (stale: *why says what differs). */
static int
ixr_segments(alog_db *db, struct ixf_reader *r, uint32_t nsegs, char *why,
             size_t whylen)
{
    int rc;

    if (nsegs != db->nsegs) {
        snprintf(why, whylen, "it lists %u segments, the directory has %zu",
                 (unsigned)nsegs, db->nsegs);
        return KVD_ECORRUPT;
    }
    for (size_t i = 0; i < db->nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        uint32_t id, slot, kind, need_hint;
        uint64_t size, live, hint, lo, hi;
        if ((rc = ixr_u32(r, &id)) != 0 || (rc = ixr_u32(r, &slot)) != 0 ||
            (rc = ixr_u32(r, &kind)) != 0 ||
            (rc = ixr_u32(r, &need_hint)) != 0 ||
            (rc = ixr_u64(r, &size)) != 0 || (rc = ixr_u64(r, &live)) != 0 ||
            (rc = ixr_u64(r, &hint)) != 0 || (rc = ixr_u64(r, &lo)) != 0 ||
            (rc = ixr_u64(r, &hi)) != 0) {
            snprintf(why, whylen, "it is truncated");
            return rc;
        }
        if (id != s->id || kind != (uint32_t)s->kind ||
            size != atomic_load(&s->size)) {
            snprintf(why, whylen,
                     "segment %08u: it describes %08u of %llu bytes, the "
                     "file has %llu",
                     (unsigned)s->id, (unsigned)id, (unsigned long long)size,
                     (unsigned long long)atomic_load(&s->size));
            return KVD_ECORRUPT;
        }
        if (slot >= ALOG_SEGTAB_SLOTS ||
            (slot != 0 && db->ix.segtab[slot] != NULL) || live > size) {
            snprintf(why, whylen, "segment %08u: bad index slot or size",
                     (unsigned)id);
            return KVD_ECORRUPT;
        }
        if (slot != 0) {
            db->ix.segtab[slot] = s;
            atomic_store(&s->ixslot, slot);
        }
        atomic_store(&s->live_bytes, live);
        atomic_store(&s->hint_bytes, hint);
        atomic_store(&s->min_seq, lo);
        atomic_store(&s->max_seq, hi);
        s->need_hint = need_hint != 0 && db->opts.hint_files;
    }
    return 0;
}

/* Every used slot must name a segment of the file, a key inside its
 * shard's arena and a record inside its segment: checked before any
 * lookup trusts them. */
static int
ixr_check_shard(const alog_db *db, const struct alog_shard *sh)
{
    uint64_t used = 0;

    for (uint32_t i = 0; i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];
        const struct alog_seg *s;
        uint32_t blk = e->kref >> ALOG_KBLK_SHIFT;
        uint32_t at = e->kref & (ALOG_KBLK_BYTES - 1);
        int own;
        size_t klen;
        if (!(e->flags & ALOG_ENT_USED)) {
            continue;
        }
        used++;
        s = db->ix.segtab[e->seg];
        if (e->seg == 0 || s == NULL || blk >= sh->ka.nblks ||
            (e->flags & ALOG_ENT_TOMBSTONE) ||
            (i > 0 && (sh->slots[i - 1].flags & ALOG_ENT_USED) &&
             sh->slots[i - 1].tag > e->tag)) {
            return KVD_ECORRUPT;
        }
        own = ((uintptr_t)sh->ka.blks[blk] & 1) != 0;
        if (own ? at != 0 : at + 2 > ALOG_KBLK_BYTES) {
            return KVD_ECORRUPT;
        }
        klen = alog_ent_klen(sh, e);
        if (!own && at + 2 + klen + ((e->flags & ALOG_ENT_EXPIRES) ? 8 : 0) >
                        ALOG_KBLK_BYTES) {
            return KVD_ECORRUPT;
        }
        if ((uint64_t)e->off + alog_rec_bytes(klen, e->vlen) >
            atomic_load(&s->size)) {
            return KVD_ECORRUPT;
        }
    }
    return used == sh->count ? 0 : KVD_ECORRUPT;
}

static int
ixr_shard(alog_db *db, struct ixf_reader *r, struct alog_shard *sh)
{
    uint32_t cap, nslots, written, nblks, pos, have;
    uint64_t v[6];
    int rc;

    if ((rc = ixr_u32(r, &cap)) != 0 || (rc = ixr_u32(r, &nslots)) != 0 ||
        (rc = ixr_u32(r, &written)) != 0 || (rc = ixr_u32(r, &nblks)) != 0 ||
        (rc = ixr_u32(r, &pos)) != 0) {
        return rc;
    }
    for (int i = 0; i < 6; i++) {
        if ((rc = ixr_u64(r, &v[i])) != 0) {
            return rc;
        }
    }
    /* sizes are checked against the bytes left before anything is
     * allocated from them: a damaged header must not map gigabytes */
    if (pos > ALOG_KBLK_BYTES || nblks > ALOG_KBLK_MAX || cap > nslots ||
        written > nslots || nslots > 2 * (uint64_t)cap + 64 ||
        (uint64_t)written * sizeof(*sh->slots) > r->size - r->off ||
        (uint64_t)nblks * 4 > r->size - r->off ||
        alog_shard_load_begin(sh, cap, &have) != 0) {
        return KVD_ECORRUPT;
    }
    if (have != nslots) {
        return KVD_ECORRUPT;
    }
    /* the shard is new: its slots past `written` are zero already */
    rc = ixr_get(r, sh->slots, (size_t)written * sizeof(*sh->slots));
    for (uint32_t b = 0; rc == 0 && b < nblks; b++) {
        unsigned char *p;
        uint32_t len;
        uint16_t klen;
        if ((rc = ixr_u32(r, &len)) != 0) {
            break;
        }
        if (len == IXF_BLK_POOL || len == IXF_BLK_DEAD) {
            if (alog_karena_add_block(&sh->ka, ALOG_KBLK_BYTES, &p) != 0) {
                rc = KVD_ENOMEM;
            } else if (len == IXF_BLK_DEAD) {
                memset(p, 0, ALOG_KBLK_BYTES);
            } else {
                rc = ixr_get(r, p, ALOG_KBLK_BYTES);
            }
            continue;
        }
        if (len <= ALOG_KBLK_BYTES || len > 2u + 65535u + 8u) {
            rc = KVD_ECORRUPT;
            break;
        }
        /* 8 bytes more than read: an expiry read after the key stays
         * inside the block whatever a slot's flags say */
        if (alog_karena_add_block(&sh->ka, (size_t)len + 8, &p) != 0) {
            rc = KVD_ENOMEM;
            break;
        }
        memset(p + len, 0, 8);
        rc = ixr_get(r, p, len);
        memcpy(&klen, p, 2);
        if (rc == 0 && 2u + klen > len) {
            rc = KVD_ECORRUPT;
        }
    }
    if (rc != 0) {
        return rc;
    }
    sh->ka.pos = nblks > 0 ? pos : 0;
    sh->count = v[0];
    sh->live_keys = v[1];
    sh->key_bytes = v[2];
    sh->value_bytes = v[3];
    sh->expiring = v[4];
    sh->ka_dead = v[5];
    if (sh->live_keys != sh->count) {
        return KVD_ECORRUPT; /* no tombstones outside recovery */
    }
    alog_shard_load_end(sh);
    /* checked now, while the shard is in the cache (the crc comes at the
     * end; the check itself reads nothing it has not bounded) */
    return ixr_check_shard(db, sh);
}

/* Read the file into the empty index. 0, KVD_ENOTFOUND (none), or another
 * status with *why set (the index is then partly filled: the caller starts
 * it again). */
static int
ixr_load(alog_db *db, struct ixf_reader *r, uint64_t *max_seq, char *why,
         size_t whylen)
{
    unsigned char hdr[ALOG_FILE_HDR_BYTES];
    unsigned char t[IXF_TRAILER_BYTES];
    struct alog_file_hdr fh;
    uint32_t slot_bytes, blk_bytes, shards, nsegs, crc;
    uint64_t probe, seed, seq;
    int rc;

    if (r->size < IXF_HDR_BYTES + IXF_TRAILER_BYTES) {
        snprintf(why, whylen, "it is truncated (%llu bytes)",
                 (unsigned long long)r->size);
        return KVD_ECORRUPT;
    }
    r->size -= IXF_TRAILER_BYTES; /* the trailer is read on its own */
    if ((rc = ixr_get(r, hdr, sizeof(hdr))) != 0 ||
        alog_file_hdr_decode(hdr, &fh) != 0 || fh.kind != ALOG_FILE_INDEX) {
        snprintf(why, whylen, "bad file header");
        return KVD_ECORRUPT;
    }
    if ((rc = ixr_u32(r, &slot_bytes)) != 0 ||
        (rc = ixr_u32(r, &blk_bytes)) != 0 ||
        (rc = ixr_u32(r, &shards)) != 0 || (rc = ixr_u32(r, &nsegs)) != 0 ||
        (rc = ixr_get(r, &probe, 8)) != 0 || (rc = ixr_u64(r, &seed)) != 0 ||
        (rc = ixr_u64(r, &seq)) != 0) {
        snprintf(why, whylen, "it is truncated");
        return KVD_ECORRUPT;
    }
    if (slot_bytes != sizeof(struct alog_ent) ||
        blk_bytes != ALOG_KBLK_BYTES || shards != ALOG_SHARDS ||
        probe != IXF_BYTE_ORDER) {
        snprintf(why, whylen, "it was written with another memory layout");
        return KVD_ECORRUPT;
    }
    rc = ixr_segments(db, r, nsegs, why, whylen);
    if (rc != 0) {
        return rc;
    }
    /* the keys' tags were made under the seed of the run that wrote it */
    db->ix.seed = seed;
    for (unsigned i = 0; i < ALOG_SHARDS; i++) {
        rc = ixr_shard(db, r, &db->ix.shards[i]);
        if (rc != 0) {
            snprintf(why, whylen,
                     rc == KVD_ENOMEM ? "out of memory"
                                      : "shard %u is damaged or truncated, "
                                        "or names keys or records it lacks",
                     i);
            return rc;
        }
    }
    r->size += IXF_TRAILER_BYTES;
    if (r->off + IXF_TRAILER_BYTES != r->size) {
        snprintf(why, whylen, "it has bytes after its last shard");
        return KVD_ECORRUPT;
    }
    {
        size_t got = 0;
        rc = kvd_file_read_full(r->io, r->fd, t, sizeof(t), r->off, &got);
        if (rc == 0 && got != sizeof(t)) {
            rc = KVD_ECORRUPT;
        }
    }
    if (rc != 0 || alog_get_u64(t) != r->off ||
        alog_get_u32(t + 8) != IXF_MAGIC) {
        snprintf(why, whylen, "bad trailer");
        return KVD_ECORRUPT;
    }
    crc = kvd_crc32c_mask(kvd_crc32c(r->crc, t, 12));
    if (crc != alog_get_u32(t + 12)) {
        snprintf(why, whylen, "its checksum does not match");
        return KVD_ECORRUPT;
    }
    *max_seq = seq;
    return 0;
}

/* Back to the state open_seg left: the index empty, no segment in it. */
static int
ixr_forget(alog_db *db)
{
    alog_index_release(&db->ix);
    for (size_t i = 0; i < db->nsegs; i++) {
        struct alog_seg *s = db->segs[i];
        atomic_store(&s->ixslot, 0);
        atomic_store(&s->live_bytes, 0);
        atomic_store(&s->hint_bytes, 0);
        atomic_store(&s->min_seq,
                     s->kind == ALOG_FILE_DATA ? s->created_seq : UINT64_MAX);
        atomic_store(&s->max_seq, 0);
        s->need_hint = 0;
    }
    return alog_index_init(&db->ix) == 0 ? 0 : KVD_ENOMEM;
}

int
alog_ixfile_load(alog_db *db, uint64_t *max_seq, uint64_t *keys)
{
    char path[ALOG_PATH_BYTES];
    char why[160] = "";
    struct ixf_reader r = {.io = db->io};
    int rc;

    r.buf = malloc(IXF_RBUF_BYTES);
    if (r.buf == NULL) {
        return KVD_ENOMEM;
    }

    *max_seq = 0;
    *keys = 0;
    snprintf(path, sizeof(path), "%s/%s", db->dir, ALOG_INDEX_FILE);
    r.fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (r.fd < 0) {
        if (errno == ENOENT) {
            free(r.buf);
            return KVD_ENOTFOUND;
        }
        snprintf(why, sizeof(why), "open: %s", strerror(errno));
        rc = KVD_EIO;
    } else {
        rc = kvd_file_size(r.fd, &r.size);
        if (rc == 0) {
            rc = ixr_load(db, &r, max_seq, why, sizeof(why));
        } else {
            snprintf(why, sizeof(why), "stat: %s", strerror(errno));
        }
        db->io->close(r.fd);
    }
    free(r.buf);
    if (rc == 0) {
        for (unsigned i = 0; i < ALOG_SHARDS; i++) {
            *keys += db->ix.shards[i].live_keys;
        }
    } else {
        /* the segments and their hint files still have everything */
        ALOG_LOG(db, KVD_LOG_WARN,
                 "log: index file %s not used (%s): loading the hint files "
                 "instead",
                 path, why);
        if (ixr_forget(db) != 0) {
            return KVD_ENOMEM;
        }
        rc = KVD_ECORRUPT;
    }
    /* read once: from here on the segments move past it; a copy left by a
     * crash would not match them anyway */
    if (alog_check_writable(db) == 0) {
        db->io->unlink(path);
    }
    return rc;
}
