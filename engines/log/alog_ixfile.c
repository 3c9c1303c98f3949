/*
 * alog_ixfile.c -- the index file: the whole in-memory index, written at a
 * clean close and used by the next open instead of rebuilding the index
 * from the hint files (docs/formats.md, "Index file").
 *
 * Rebuilding from hints reads every key, hashes it, sorts each shard and
 * copies the keys into fresh arenas: about 0.3 s of CPU for 1,000,000
 * keys. The index file holds the result, each shard's slot array and key
 * arena blocks byte for byte, and the open maps it privately and uses
 * them where they lie (checked first), copying nothing.
 *
 * It is a cache, never the only copy of anything: the segments and their
 * hint files stay authoritative, and the file is used only when it
 * describes exactly the segments found at open (same ids, kinds, sizes,
 * inodes and modification times: ids come back once every segment is
 * gone). Every change to a store appends to a segment or adds or removes
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
 * file with another layout is ignored like a stale one. Write and load
 * run with no other thread in the store (close, open); alog_ixfile_own
 * runs on the background worker while clients use the store.
 */
#include "alog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* "INX2": the first layout ("INDX", read by copying) is not read */
#define IXF_MAGIC      0x32584e49u
#define IXF_BYTE_ORDER 0x0102030405060708ull
/* after the file header: u32 slot bytes, u32 block bytes, u32 shards,
 * u32 segments, u64 byte-order probe, u64 hash seed, u64 last seq */
#define IXF_HDR_BYTES (ALOG_FILE_HDR_BYTES + 40)
/* per segment: u64 inode, u64 modification time (ns), u32 id, u32 index
 * slot, u32 kind, u32 needs a hint, u64 size, live bytes, hint bytes, min
 * seq, max seq */
/* per shard: u32 cap, u32 slots, u32 blocks, u32 last block's use; u64
 * count, live keys, key bytes, value bytes, expiring, dead arena bytes;
 * zeros to a multiple of IXF_SLOT_ALIGN, the slots, then per block a u32
 * length word (IXF_BLK_*) and its bytes, a long key's padded to 4 */
/* u64 file bytes before it, u32 magic, u32 masked crc32c of all before */
#define IXF_TRAILER_BYTES 16
#define IXF_WBUF_BYTES    (256u << 10)
#define IXF_SLOT_ALIGN    64u
/* a block's length word: a pool block (ALOG_KBLK_BYTES follow), a dead
 * long-key block (nothing follows; loaded as an empty pool block that
 * keeps the block numbers), or the length of a live long key's entry */
#define IXF_BLK_POOL 0u
#define IXF_BLK_DEAD 1u

/* The file behind s: inode number and modification time (ns). Ids come
 * back once every segment is gone (next_id is the highest present + 1),
 * so id, kind and size alone could match a later store's segment; a file
 * created or written later has another modification time. */
static int
ixf_seg_identity(const struct alog_seg *s, uint64_t *ino, uint64_t *mtime)
{
    struct stat st;

    if (fstat(s->fd, &st) != 0) {
        return kvd_errno_status(errno);
    }
    *ino = (uint64_t)st.st_ino;
    *mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
             (uint64_t)st.st_mtim.tv_nsec;
    return 0;
}

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
        w->off += w->rc == 0 ? w->len : 0;
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
            w->off += w->rc == 0 ? n : 0;
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

    for (b = 0; b < sh->ka.nblks && !((uintptr_t)sh->ka.blks[b] & 1); b++) {
    }
    if (b == sh->ka.nblks) {
        return NULL;
    }
    st = calloc(sh->ka.nblks, 1);
    if (st == NULL) {
        *rc = *rc != 0 ? *rc : KVD_ENOMEM; /* keep an earlier failure */
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

/* Zero bytes up to the next multiple of align in the file. */
static void
ixw_pad(struct ixf_writer *w, size_t align)
{
    static const unsigned char zeros[IXF_SLOT_ALIGN];
    size_t at = (size_t)((w->off + w->len) % align);

    if (at != 0) {
        ixw_put(w, zeros, align - at);
    }
}

static void
ixw_shard(struct ixf_writer *w, const struct alog_shard *sh)
{
    const struct alog_karena *ka = &sh->ka;
    unsigned char *own = ixw_own_blocks(sh, &w->rc);

    ixw_u32(w, sh->cap);
    ixw_u32(w, sh->nslots);
    ixw_u32(w, ka->nblks);
    ixw_u32(w, ka->pos);
    ixw_u64(w, sh->count);
    ixw_u64(w, sh->live_keys);
    ixw_u64(w, sh->key_bytes);
    ixw_u64(w, sh->value_bytes);
    ixw_u64(w, sh->expiring);
    ixw_u64(w, sh->ka_dead);
    /* the whole array, aligned: the open uses it where it lies */
    ixw_pad(w, IXF_SLOT_ALIGN);
    ixw_put(w, sh->slots, (size_t)sh->nslots * sizeof(*sh->slots));
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
            ixw_pad(w, 4); /* blocks start 4-aligned */
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
    w->fd = db->io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
        uint64_t ino = 0;
        uint64_t mtime = 0;
        if (w->rc == 0) {
            w->rc = ixf_seg_identity(s, &ino, &mtime);
        }
        ixw_u64(w, ino);
        ixw_u64(w, mtime);
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

/* The file is mapped privately and read in place: the shards' slot arrays
 * and arena blocks stay where they lie in the map (copy-on-write), so the
 * open copies nothing. Copying 45 MB into fresh memory cost 80-90 ms on
 * the development machine, a first touch of every page; the map's pages
 * are the page cache's, already there. */
struct ixf_reader {
    unsigned char *map;
    uint64_t off;  /* position */
    uint64_t size; /* bytes before the trailer */
};

/* n bytes at the position, or NULL past the end. */
static unsigned char *
ixr_take(struct ixf_reader *r, uint64_t n)
{
    unsigned char *p = r->map + r->off;

    if (n > r->size - r->off) {
        return NULL;
    }
    r->off += n;
    return p;
}

static int
ixr_u32(struct ixf_reader *r, uint32_t *v)
{
    const unsigned char *p = ixr_take(r, 4);
    *v = p != NULL ? alog_get_u32(p) : 0;
    return p != NULL ? 0 : KVD_ECORRUPT;
}

static int
ixr_u64(struct ixf_reader *r, uint64_t *v)
{
    const unsigned char *p = ixr_take(r, 8);
    *v = p != NULL ? alog_get_u64(p) : 0;
    return p != NULL ? 0 : KVD_ECORRUPT;
}

static int
ixr_skip_to(struct ixf_reader *r, uint64_t align)
{
    uint64_t at = r->off % align;
    return at == 0 || ixr_take(r, align - at) != NULL ? 0 : KVD_ECORRUPT;
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
        uint64_t size, live, hint, lo, hi, ino, mtime;
        uint64_t ino_now = 0;
        uint64_t mtime_now = 0;
        if ((rc = ixr_u64(r, &ino)) != 0 || (rc = ixr_u64(r, &mtime)) != 0 ||
            (rc = ixr_u32(r, &id)) != 0 || (rc = ixr_u32(r, &slot)) != 0 ||
            (rc = ixr_u32(r, &kind)) != 0 ||
            (rc = ixr_u32(r, &need_hint)) != 0 ||
            (rc = ixr_u64(r, &size)) != 0 || (rc = ixr_u64(r, &live)) != 0 ||
            (rc = ixr_u64(r, &hint)) != 0 || (rc = ixr_u64(r, &lo)) != 0 ||
            (rc = ixr_u64(r, &hi)) != 0) {
            snprintf(why, whylen, "it is truncated");
            return rc;
        }
        if (ixf_seg_identity(s, &ino_now, &mtime_now) != 0 ||
            ino != ino_now || mtime != mtime_now) {
            snprintf(why, whylen,
                     "segment %08u is another file than the one it "
                     "describes (inode or modification time)",
                     (unsigned)s->id);
            return KVD_ECORRUPT;
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
        /* as recovery would: a segment without a hint gets one */
        s->need_hint = db->opts.hint_files && (need_hint != 0 || hint == 0);
    }
    return 0;
}

/* Every used slot must name a segment of the file, a key inside its
 * shard's arena (blen: each block's length) and a record inside its
 * segment: checked before any lookup trusts them. */
static int
ixr_check_shard(const alog_db *db, struct alog_shard *sh, const uint32_t *blen)
{
    uint64_t used = 0;
    uint64_t key_bytes = 0;
    uint64_t value_bytes = 0;
    uint64_t expiring = 0;
    uint64_t live_entry_bytes = 0;
    uint32_t last = sh->ka.nblks - 1; /* the block new keys go to */
    uint32_t last_tag = 0;

    if (sh->ka.nblks > 0 && blen[last] != ALOG_KBLK_BYTES &&
        sh->ka.pos != ALOG_KBLK_BYTES) {
        return KVD_ECORRUPT; /* only a pool block takes more keys */
    }
    for (uint32_t i = 0; i < sh->nslots; i++) {
        const struct alog_ent *e = &sh->slots[i];
        const struct alog_seg *s;
        uint32_t blk = e->kref >> ALOG_KBLK_SHIFT;
        uint32_t at = e->kref & (ALOG_KBLK_BYTES - 1);
        size_t klen;
        size_t end;
        if (!(e->flags & ALOG_ENT_USED)) {
            continue;
        }
        s = db->ix.segtab[e->seg];
        if (e->seg == 0 || s == NULL || blk >= sh->ka.nblks ||
            (e->flags & ALOG_ENT_TOMBSTONE) ||
            (used > 0 && last_tag > e->tag) ||
            (uint64_t)at + 2 > blen[blk]) {
            return KVD_ECORRUPT;
        }
        used++;
        last_tag = e->tag;
        klen = alog_ent_klen(sh, e);
        end = at + 2 + klen + ((e->flags & ALOG_ENT_EXPIRES) ? 8 : 0);
        if (end > blen[blk] || (blen[blk] > ALOG_KBLK_BYTES && at != 0) ||
            (blk == last && blen[blk] == ALOG_KBLK_BYTES &&
             end > sh->ka.pos) ||
            (uint64_t)e->off + alog_rec_bytes(klen, e->vlen) >
                atomic_load(&s->size)) {
            return KVD_ECORRUPT;
        }
        /* the counters are recomputed, not taken from the file */
        key_bytes += klen;
        value_bytes += e->vlen;
        expiring += alog_ent_expire(sh, e) != 0;
        live_entry_bytes += end - at;
    }
    if (used != sh->count || live_entry_bytes > sh->ka.bytes) {
        return KVD_ECORRUPT; /* a count that lies, or entries that overlap */
    }
    sh->key_bytes = key_bytes;
    sh->value_bytes = value_bytes;
    sh->expiring = expiring;
    /* dead bytes cannot exceed what the live entries leave of the arena */
    if (sh->ka_dead > sh->ka.bytes - live_entry_bytes) {
        sh->ka_dead = sh->ka.bytes - live_entry_bytes;
    }
    return 0;
}

static int
ixr_blocks(struct ixf_reader *r, struct alog_shard *sh, uint32_t nblks,
           uint32_t *blen)
{
    for (uint32_t b = 0; b < nblks; b++) {
        unsigned char *p;
        uint32_t len;
        if (ixr_u32(r, &len) != 0) {
            return KVD_ECORRUPT;
        }
        if (len == IXF_BLK_DEAD) {
            /* a place holder that keeps the block numbers: nothing may
             * point at it (blen 0), so it takes no memory */
            if (alog_karena_borrow_block(&sh->ka, r->map + r->off - 4, 0) !=
                0) {
                return KVD_ENOMEM;
            }
            blen[b] = 0;
            continue;
        }
        if (len == IXF_BLK_POOL) {
            len = ALOG_KBLK_BYTES;
        } else if (len <= ALOG_KBLK_BYTES || len > 2u + 65535u + 8u) {
            return KVD_ECORRUPT;
        }
        p = ixr_take(r, len);
        if (p == NULL || (len > ALOG_KBLK_BYTES && ixr_skip_to(r, 4) != 0)) {
            return KVD_ECORRUPT;
        }
        if (alog_karena_borrow_block(&sh->ka, p, len) != 0) {
            return KVD_ENOMEM;
        }
        blen[b] = len;
    }
    return 0;
}

static int
ixr_shard(alog_db *db, struct ixf_reader *r, struct alog_shard *sh)
{
    uint32_t cap, nslots, nblks, pos;
    uint32_t *blen = NULL;
    unsigned char *slots;
    uint64_t v[6];
    int rc;

    if ((rc = ixr_u32(r, &cap)) != 0 || (rc = ixr_u32(r, &nslots)) != 0 ||
        (rc = ixr_u32(r, &nblks)) != 0 || (rc = ixr_u32(r, &pos)) != 0) {
        return rc;
    }
    for (int i = 0; i < 6; i++) {
        if ((rc = ixr_u64(r, &v[i])) != 0) {
            return rc;
        }
    }
    /* sizes are checked against the bytes left before anything is
     * allocated from them */
    if (pos > ALOG_KBLK_BYTES || nblks > ALOG_KBLK_MAX ||
        (uint64_t)nblks * 4 > r->size - r->off ||
        ixr_skip_to(r, IXF_SLOT_ALIGN) != 0 ||
        (slots = ixr_take(r, (uint64_t)nslots * sizeof(struct alog_ent))) ==
            NULL ||
        alog_shard_load_borrow(sh, cap, nslots, (struct alog_ent *)slots) !=
            0) {
        return KVD_ECORRUPT;
    }
    blen = malloc(((size_t)nblks + 1) * sizeof(*blen));
    if (blen == NULL) {
        return KVD_ENOMEM;
    }
    rc = ixr_blocks(r, sh, nblks, blen);
    if (rc == 0) {
        sh->ka.pos = nblks > 0 ? pos : 0;
        sh->count = v[0];
        sh->live_keys = v[1];
        sh->key_bytes = v[2];
        sh->value_bytes = v[3];
        sh->expiring = v[4];
        sh->ka_dead = v[5];
        /* no tombstones outside recovery */
        rc = sh->live_keys != sh->count ? KVD_ECORRUPT : 0;
    }
    if (rc == 0) {
        alog_shard_load_end(sh);
        rc = ixr_check_shard(db, sh, blen);
    }
    free(blen);
    return rc;
}

/* Read the file mapped at r into the empty index. 0, or a status with
 * *why set (the index is then partly filled: the caller starts it
 * again). */
static int
ixr_load(alog_db *db, struct ixf_reader *r, uint64_t *max_seq, char *why,
         size_t whylen)
{
    struct alog_file_hdr fh;
    const unsigned char *t;
    const unsigned char *hdr;
    uint32_t slot_bytes, blk_bytes, shards, nsegs;
    uint64_t probe, seed, seq;
    int rc;

    if (r->size < IXF_HDR_BYTES + IXF_TRAILER_BYTES) {
        snprintf(why, whylen, "it is truncated (%llu bytes)",
                 (unsigned long long)r->size);
        return KVD_ECORRUPT;
    }
    /* the whole file first: nothing in it is trusted before the crc */
    r->size -= IXF_TRAILER_BYTES;
    t = r->map + r->size;
    if (alog_get_u64(t) != r->size || alog_get_u32(t + 8) != IXF_MAGIC) {
        snprintf(why, whylen, "bad trailer");
        return KVD_ECORRUPT;
    }
    if (kvd_crc32c_mask(kvd_crc32c(0, r->map, (size_t)r->size + 12)) !=
        alog_get_u32(t + 12)) {
        snprintf(why, whylen, "its checksum does not match");
        return KVD_ECORRUPT;
    }
    hdr = ixr_take(r, ALOG_FILE_HDR_BYTES);
    if (hdr == NULL || alog_file_hdr_decode(hdr, &fh) != 0 ||
        fh.kind != ALOG_FILE_INDEX) {
        snprintf(why, whylen, "bad file header");
        return KVD_ECORRUPT;
    }
    if ((rc = ixr_u32(r, &slot_bytes)) != 0 ||
        (rc = ixr_u32(r, &blk_bytes)) != 0 ||
        (rc = ixr_u32(r, &shards)) != 0 || (rc = ixr_u32(r, &nsegs)) != 0 ||
        ixr_take(r, 8) == NULL || (rc = ixr_u64(r, &seed)) != 0 ||
        (rc = ixr_u64(r, &seq)) != 0) {
        snprintf(why, whylen, "it is truncated");
        return KVD_ECORRUPT;
    }
    memcpy(&probe, r->map + r->off - 24, 8); /* native order */
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
    if (r->off != r->size) {
        snprintf(why, whylen, "it has bytes after its last shard");
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
    struct ixf_reader r = {0};
    uint64_t size = 0;
    int rc;
    int fd;

    *max_seq = 0;
    *keys = 0;
    snprintf(path, sizeof(path), "%s/%s", db->dir, ALOG_INDEX_FILE);
    fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT) {
            return KVD_ENOTFOUND;
        }
        snprintf(why, sizeof(why), "open: %s", strerror(errno));
        rc = KVD_EIO;
    } else {
        rc = kvd_file_size(fd, &size);
        if (rc != 0 || size == 0 || size > SIZE_MAX) {
            snprintf(why, sizeof(why), "size %llu", (unsigned long long)size);
            rc = KVD_ECORRUPT;
        } else {
            /* writable and private: the index changes its own copy of a
             * page, never the file */
            void *m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED) {
                snprintf(why, sizeof(why), "mmap: %s", strerror(errno));
                rc = KVD_ENOMEM;
            } else {
#ifdef MADV_POPULATE_READ
                /* its pages mapped by one call, not a fault each (read
                 * only: a write fault would copy them) */
                (void)madvise(m, (size_t)size, MADV_POPULATE_READ);
#endif
                db->ix.kpool.fmap = m;
                db->ix.kpool.fmap_len = (size_t)size;
                r.map = m;
                r.size = size;
                rc = ixr_load(db, &r, max_seq, why, sizeof(why));
            }
        }
        db->io->close(fd);
    }
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
        if (ixr_forget(db) != 0) { /* unmaps it too */
            return KVD_ENOMEM;
        }
        rc = KVD_ECORRUPT;
    }
    /* read once: from here on the segments move past it; a copy left by a
     * crash would not match them anyway (the map keeps its pages) */
    if (alog_check_writable(db) == 0) {
        db->io->unlink(path);
    }
    return rc;
}

void
alog_ixfile_own(alog_db *db)
{
#ifdef MADV_POPULATE_WRITE
    unsigned char *m = db->ix.kpool.fmap;
    size_t n = db->ix.kpool.fmap_len;

    /* as if every page were written (contents unchanged): each becomes a
     * private copy, so no part of the index is a file page that reclaim
     * may drop and a later lookup read back from the disk. The kernel
     * copies a page under its page table lock, so lookups and writes may
     * run meanwhile. By MiB, so that other work of the worker is not
     * held up by a long call. Failure leaves the pages file-backed. */
    for (size_t off = 0; m != NULL && off < n; off += (size_t)1 << 20) {
        size_t len = n - off < ((size_t)1 << 20) ? n - off : (size_t)1 << 20;
        (void)madvise(m + off, len, MADV_POPULATE_WRITE);
    }
#else
    (void)db;
#endif
}
