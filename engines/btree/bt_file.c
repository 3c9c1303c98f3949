/*
 * bt_file.c -- the btree engine's data file: open and recovery, the
 * read-only map, compaction into a new file, and close.
 *
 * Recovery reads both meta pages and takes the valid one (magic, format,
 * page size, crc32c) with the higher txnid whose tree fits in the file
 * and whose free list reads back whole; if that one fails a check the
 * other is tried, and if neither passes, open refuses with the reason:
 * it never opens a tree it cannot vouch for. Pages past the meta's page
 * count (written by a commit that never wrote its meta) are simply
 * reused. No replay: open reads two pages and the free list.
 *
 * The map is reserved larger than the file (at least 1 GiB, twice what
 * is needed when it grows) so that it rarely moves; a new map is made
 * when the file outgrows it, and the old one stays until no reader can
 * use it (it is retired like a page).
 *
 * Compaction (maintain COMPACT) writes the live records of the working
 * tree in key order into data.btree.tmp, packed to fill_percent, with
 * its meta; syncs it, renames it over data.btree and syncs the
 * directory, then switches the writer to it. Writers wait meanwhile;
 * readers go on reading their snapshots through the old map.
 */
#include "bt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvd/kit_file.h"

/* ---- map ---- */

static int
map_new(bt_db *db, int fd, uint64_t need, struct bt_map **out)
{
    uint64_t bytes = BT_MIN_MAP_BYTES;
    struct bt_map *m;
    void *base;

    while (bytes < need * 2) {
        bytes *= 2;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return KVD_ENOMEM;
    }
    base = mmap(NULL, (size_t)bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        free(m);
        return kvd_errno_status(errno);
    }
    m->base = base;
    m->bytes = bytes;
    *out = m;
    (void)db;
    return 0;
}

static void
map_retire(bt_db *db, struct bt_map *m)
{
    if (m == NULL) {
        return;
    }
    m->retired = db->pub_ver + 1;
    m->next = db->mretire_head;
    db->mretire_head = m;
}

int
bt_map_ensure(bt_db *db, uint64_t npages)
{
    struct bt_map *m = NULL; /* set by map_new on success; GCC -O3 cannot tell */
    int rc;

    if (db->map != NULL && db->map->bytes >= npages * db->psize) {
        return 0;
    }
    rc = map_new(db, db->fd, npages * db->psize, &m);
    if (rc != 0) {
        return rc;
    }
    map_retire(db, db->map);
    db->map = m;
    return 0;
}

/* ---- meta pages ---- */

struct bt_meta {
    bool valid;
    uint32_t nitems;
    unsigned char *page; /* the whole meta page (items at 128) */
    uint64_t txn;
    uint64_t root;
    uint32_t depth;
    uint64_t npages;
    uint64_t freehead;
    uint64_t nfree;
    uint64_t records;
    uint64_t key_bytes;
    uint64_t value_bytes;
    uint64_t expiring;
    uint32_t psize;
};

static void
meta_parse(const unsigned char *m, size_t avail, struct bt_meta *out)
{
    uint32_t nitems, crc;

    memset(out, 0, sizeof(*out));
    if (avail < 128 || memcmp(m, BT_MAGIC, 8) != 0 ||
        bt_get32(m + 8) != BT_FORMAT_VERSION) {
        return;
    }
    nitems = bt_get32(m + 104);
    if (128 + (size_t)nitems * 16 > avail) {
        return;
    }
    crc = kvd_crc32c(0, m, 112);
    crc = kvd_crc32c(crc, m + 128, (size_t)nitems * 16);
    if (crc != bt_get32(m + 112)) {
        return;
    }
    out->psize = bt_get32(m + 12);
    out->txn = bt_get64(m + 16);
    out->root = bt_get64(m + 24);
    out->depth = bt_get32(m + 32);
    out->npages = bt_get64(m + 40);
    out->freehead = bt_get64(m + 48);
    out->nfree = bt_get64(m + 56);
    out->records = bt_get64(m + 64);
    out->key_bytes = bt_get64(m + 72);
    out->value_bytes = bt_get64(m + 80);
    out->expiring = bt_get64(m + 88);
    out->nitems = nitems;
    out->valid = true;
}

static bool
psize_ok(uint64_t ps)
{
    return ps >= BT_MIN_PAGE_BYTES && ps <= BT_MAX_PAGE_BYTES &&
           (ps & (ps - 1)) == 0;
}

/* Read the metas of the file (size bytes). */
static int
read_metas(bt_db *db, uint64_t size, struct bt_meta m[2], char *why,
           size_t whylen)
{
    unsigned char *buf = malloc(BT_MAX_PAGE_BYTES);
    size_t got;
    uint32_t ps = 0;
    int rc;

    if (buf == NULL) {
        return KVD_ENOMEM;
    }
    memset(m, 0, 2 * sizeof(*m));
    /* meta 0 names the page size; if it is damaged, look for meta 1 at
     * every possible page size */
    rc = kvd_file_read_full(db->io, db->fd, buf, BT_MIN_PAGE_BYTES, 0, &got);
    if (rc == 0) {
        meta_parse(buf, got, &m[0]);
        if (m[0].valid && psize_ok(m[0].psize)) {
            ps = m[0].psize;
        } else {
            m[0].valid = false;
        }
    }
    for (uint32_t cand = BT_MIN_PAGE_BYTES;
         rc == 0 && ps == 0 && cand <= BT_MAX_PAGE_BYTES; cand *= 2) {
        if (cand + 128 > size) {
            break;
        }
        rc = kvd_file_read_full(db->io, db->fd, buf, BT_MIN_PAGE_BYTES, cand,
                                &got);
        if (rc == 0) {
            meta_parse(buf, got, &m[1]);
            if (m[1].valid && m[1].psize == cand) {
                ps = cand;
            }
        }
    }
    /* now both, whole (their verification items) */
    for (unsigned i = 0; rc == 0 && ps != 0 && i < 2; i++) {
        unsigned char *page = malloc(ps);
        if (page == NULL) {
            rc = KVD_ENOMEM;
            break;
        }
        rc = kvd_file_read_full(db->io, db->fd, page, ps, (uint64_t)i * ps,
                                &got);
        if (rc == 0) {
            meta_parse(page, got, &m[i]);
            if (m[i].valid && m[i].psize != ps) {
                m[i].valid = false;
            }
        }
        m[i].page = page;
    }
    free(buf);
    if (rc != 0) {
        snprintf(why, whylen, "read of the meta pages failed");
        return rc;
    }
    if (ps == 0) {
        snprintf(why, whylen,
                 "neither meta page is valid (not a btree file, or both "
                 "damaged)");
        return KVD_ECORRUPT;
    }
    db->psize = ps;
    return 0;
}

/* Check meta m against the file and load its free list. */
static int
adopt_meta(bt_db *db, const struct bt_meta *m, uint64_t size, char *why,
           size_t whylen)
{
    size_t cap = (db->psize - BT_HDR_BYTES) / 4;
    uint64_t pg = m->freehead, seen = 0, hops = 0;

    db->ready.n = 0;
    db->ready_nsorted = 0;
    db->chain.n = 0;
    if (m->npages < BT_META_PAGES || m->npages * db->psize > size) {
        snprintf(why, whylen,
                 "commit %llu needs %llu pages of %zu bytes but the file "
                 "holds %llu bytes (truncated?)",
                 (unsigned long long)m->txn, (unsigned long long)m->npages,
                 db->psize, (unsigned long long)size);
        return KVD_ECORRUPT;
    }
    if ((m->root != 0 && (m->root < BT_META_PAGES || m->root >= m->npages ||
                          m->depth == 0 || m->depth > BT_MAX_DEPTH)) ||
        (m->root == 0 && m->depth != 0)) {
        snprintf(why, whylen, "commit %llu has a bad root",
                 (unsigned long long)m->txn);
        return KVD_ECORRUPT;
    }
    for (uint32_t i = 0; i < m->nitems; i++) {
        const unsigned char *it = m->page + 128 + (size_t)i * 16;
        uint64_t p = bt_get64(it), x = bt_get64(it + 8);
        uint64_t n = x & 0xffffffffu;
        if (p < BT_META_PAGES || n == 0 || p + n > m->npages ||
            kvd_crc32c(0, db->map->base + p * db->psize, n * db->psize) !=
                (uint32_t)(x >> 32)) {
            snprintf(why, whylen,
                     "commit %llu: pages %llu..%llu did not all reach the "
                     "disk",
                     (unsigned long long)m->txn, (unsigned long long)p,
                     (unsigned long long)(p + n - 1));
            return KVD_ECORRUPT;
        }
    }
    if (m->root != 0) {
        const unsigned char *p = db->map->base + m->root * db->psize;
        int want = m->depth == 1 ? BT_PAGE_LEAF : BT_PAGE_BRANCH;
        if (BT_PG_TYPE(p) != want || BT_PG_TXN(p) > m->txn) {
            snprintf(why, whylen,
                     "commit %llu: its root page %llu is not "
                     "the page it wrote",
                     (unsigned long long)m->txn, (unsigned long long)m->root);
            return KVD_ECORRUPT;
        }
    }
    while (pg != 0) {
        const unsigned char *p;
        uint32_t cnt;
        if (pg < BT_META_PAGES || pg >= m->npages || ++hops > m->npages) {
            goto bad;
        }
        p = db->map->base + pg * db->psize;
        cnt = bt_get32(p + BT_FREE_COUNT_OFF);
        if (BT_PG_TYPE(p) != BT_PAGE_FREE || cnt > cap) {
            goto bad;
        }
        if (bt_vec_push(&db->chain, pg) != 0) {
            return KVD_ENOMEM;
        }
        for (uint32_t i = 0; i < cnt; i++) {
            uint64_t f = bt_get32(p + BT_HDR_BYTES + (size_t)i * 4);
            if (f < BT_META_PAGES || f >= m->npages) {
                goto bad;
            }
            if (bt_vec_push(&db->ready, f) != 0) {
                return KVD_ENOMEM;
            }
            seen++;
        }
        pg = bt_get64(p + BT_FREE_NEXT_OFF);
    }
    if (seen != m->nfree) {
        goto bad;
    }
    return 0;
bad:
    snprintf(why, whylen, "commit %llu: its free list is damaged",
             (unsigned long long)m->txn);
    return KVD_ECORRUPT;
}

static int
create_file(bt_db *db)
{
    struct bt_snap s;
    int rc;

    memset(&s, 0, sizeof(s));
    s.npages = BT_META_PAGES;
    rc = bt_write_meta(db, db->fd, 0, &s, 0, 0, 0, NULL, 0);
    if (rc == 0) {
        rc = bt_write_meta(db, db->fd, 1, &s, 1, 0, 0, NULL, 0);
    }
    if (rc == 0 && db->io->fdatasync(db->fd) != 0) {
        rc = kvd_errno_status(errno);
    }
    if (rc == 0) {
        rc = kvd_file_fsync_dir(db->io, db->dir);
    }
    return rc;
}

static int open_with(bt_db *db, struct bt_meta m[2], uint64_t size,
                     const char *path, struct kvd_err *err);

int
bt_file_open(bt_db *db, struct kvd_err *err)
{
    char path[BT_PATH_BYTES], why[200] = "";
    struct bt_meta m[2];
    struct stat st;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", db->dir, BT_TMP_FILE);
    if (db->io->unlink(path) != 0 && errno != ENOENT) {
        return kvd_err_set(err, kvd_errno_status(errno), "btree: unlink %s: %s",
                           path, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/%s", db->dir, BT_DATA_FILE);
    db->fd = db->io->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (db->fd < 0) {
        return kvd_err_set(err, kvd_errno_status(errno), "btree: open %s: %s",
                           path, strerror(errno));
    }
    if (fstat(db->fd, &st) != 0) {
        return kvd_err_set(err, KVD_EIO, "btree: stat %s: %s", path,
                           strerror(errno));
    }
    if (st.st_size == 0) {
        db->psize = (size_t)db->opts.page_size;
        rc = create_file(db);
        if (rc != 0) {
            return kvd_err_set(err, rc, "btree: create %s: %s", path,
                               strerror(errno));
        }
        st.st_size = (off_t)(BT_META_PAGES * db->psize);
    }
    rc = read_metas(db, (uint64_t)st.st_size, m, why, sizeof(why));
    if (rc != 0) {
        free(m[0].page);
        free(m[1].page);
        return kvd_err_set(err, rc, "btree: %s: %s", path, why);
    }
    rc = open_with(db, m, (uint64_t)st.st_size, path, err);
    free(m[0].page);
    free(m[1].page);
    return rc;
}

/* Map the file and adopt the best of the metas m. */
static int
open_with(bt_db *db, struct bt_meta m[2], uint64_t size, const char *path,
          struct kvd_err *err)
{
    char why[200] = "", why2[200] = "";
    struct stat st;
    int first, rc;

    st.st_size = (off_t)size;
    if (db->psize != db->opts.page_size) {
        db->host->log(db->host, KVD_LOG_INFO,
                      "btree: %s has %zu-byte pages; page_size = %llu "
                      "applies to new files only",
                      path, db->psize, (unsigned long long)db->opts.page_size);
    }
    rc = bt_map_ensure(db, (uint64_t)st.st_size / db->psize + 1);
    if (rc != 0) {
        return kvd_err_set(err, rc, "btree: mmap %s: %s", path,
                           strerror(errno));
    }
    first = m[1].valid && (!m[0].valid || m[1].txn > m[0].txn) ? 1 : 0;
    rc = m[first].valid
             ? adopt_meta(db, &m[first], (uint64_t)st.st_size, why, sizeof(why))
             : KVD_ECORRUPT;
    if (rc == KVD_ECORRUPT && m[1 - first].valid) {
        rc = adopt_meta(db, &m[1 - first], (uint64_t)st.st_size, why2,
                        sizeof(why2));
        if (rc == 0) {
            db->host->log(db->host, KVD_LOG_WARN,
                          "btree: %s: the last commit is unusable (%s); "
                          "opened the one before it (commit %llu)",
                          path, why, (unsigned long long)m[1 - first].txn);
            first = 1 - first;
        }
    }
    if (rc != 0) {
        return kvd_err_set(err, rc, "btree: %s: no usable commit: %s%s%s", path,
                           why, why2[0] ? "; " : "", why2);
    }
    db->txn = m[first].txn;
    db->durable = db->txn;
    db->meta_slot = (unsigned)(db->txn % 2);
    db->work.root = m[first].root;
    db->work.depth = m[first].depth;
    db->work.npages = m[first].npages;
    db->work.records = m[first].records;
    db->work.key_bytes = m[first].key_bytes;
    db->work.value_bytes = m[first].value_bytes;
    db->work.expiring = m[first].expiring;
    return 0;
}

void
bt_file_close(bt_db *db)
{
    if (db->map != NULL) {
        munmap(db->map->base, db->map->bytes);
        free(db->map);
        db->map = NULL;
    }
    if (db->fd >= 0) {
        db->io->close(db->fd);
        db->fd = -1;
    }
}

/* ---- compaction ---- */

/* One level of the bulk builder. */
struct bt_lvl {
    unsigned char *page;
    unsigned n;
    uint64_t emitted;
    size_t seplen; /* separator that leads to the page being filled */
    unsigned char sep[BT_MAX_KEY_BYTES];
};

struct bt_build {
    bt_db *db;
    int fd;
    uint64_t txn;
    uint64_t next; /* next page number */
    size_t limit;  /* fill limit in used bytes */
    unsigned char *wbuf;
    size_t wn;       /* pages staged in wbuf */
    uint64_t wfirst; /* page number of wbuf's first page */
    struct bt_lvl lv[BT_MAX_DEPTH];
    unsigned char last[BT_MAX_KEY_BYTES]; /* last key added to a leaf */
    size_t lastlen;
    bool any;
    struct bt_snap out;
};

static int
sw_flush(struct bt_build *b)
{
    int rc = 0;

    if (b->wn > 0) {
        rc =
            kvd_file_write_full(b->db->io, b->fd, b->wbuf, b->wn * b->db->psize,
                                b->wfirst * b->db->psize);
    }
    b->wn = 0;
    return rc;
}

static int
sw_page(struct bt_build *b, const unsigned char *p, uint64_t *pgno)
{
    size_t psize = b->db->psize;

    if (b->wn == 0) {
        b->wfirst = b->next;
    }
    /* packed like a flushed page (bt_commit.c, image) */
    bt_page_pack(p, b->wbuf + b->wn * psize, psize);
    bt_put64(b->wbuf + b->wn * psize + 16, b->txn);
    *pgno = b->next++;
    if (++b->wn == BT_WRITE_CHUNK / psize) {
        return sw_flush(b);
    }
    return 0;
}

static int
sw_run(struct bt_build *b, const unsigned char *v, uint64_t vlen,
       uint64_t *pgno)
{
    size_t psize = b->db->psize;
    uint64_t n = (vlen + psize - 1) / psize;
    size_t whole = (size_t)(vlen / psize) * psize;
    int rc = sw_flush(b);

    *pgno = b->next;
    if (rc == 0 && whole > 0) {
        rc = kvd_file_write_full(b->db->io, b->fd, v, whole, b->next * psize);
    }
    if (rc == 0 && whole < vlen) {
        unsigned char *last = calloc(1, psize);
        if (last == NULL) {
            return KVD_ENOMEM;
        }
        memcpy(last, v + whole, vlen - whole);
        rc = kvd_file_write_full(b->db->io, b->fd, last, psize,
                                 (b->next + n - 1) * psize);
        free(last);
    }
    b->next += n;
    return rc;
}

static int lvl_add(struct bt_build *b, unsigned l, const unsigned char *key,
                   size_t klen, uint64_t child);

/* Write the page being filled at level l and pass it up. */
static int
lvl_close(struct bt_build *b, unsigned l)
{
    struct bt_lvl *v = &b->lv[l];
    uint64_t pgno;
    int rc;

    if (v->n == 0) {
        return 0;
    }
    rc = sw_page(b, v->page, &pgno);
    if (rc != 0) {
        return rc;
    }
    v->emitted++;
    v->n = 0;
    bt_page_init(v->page, b->db->psize, l == 0 ? BT_PAGE_LEAF : BT_PAGE_BRANCH);
    return lvl_add(b, l + 1, v->sep, v->seplen, pgno);
}

static int
lvl_add(struct bt_build *b, unsigned l, const unsigned char *key, size_t klen,
        uint64_t child)
{
    struct bt_lvl *v = &b->lv[l];
    unsigned char rec[BT_BRANCH_HDR + BT_MAX_KEY_BYTES];
    size_t len;
    int rc;

    if (l >= BT_MAX_DEPTH) {
        return KVD_ENOSPC;
    }
    if (v->page == NULL) {
        v->page = malloc(b->db->psize);
        if (v->page == NULL) {
            return KVD_ENOMEM;
        }
        bt_page_init(v->page, b->db->psize, BT_PAGE_BRANCH);
    }
    len = bt_branch_encode(rec, child, key, klen);
    if (v->n > 0 &&
        (bt_page_used_bytes(v->page, b->db->psize) + len + BT_SLOT_BYTES >
             b->limit ||
         !bt_page_insert(v->page, b->db->psize, v->n, rec, len,
                         rec + BT_BRANCH_HDR, klen))) {
        rc = lvl_close(b, l);
        if (rc != 0) {
            return rc;
        }
    } else if (v->n > 0) {
        v->n++;
        return 0;
    }
    /* first entry of a page: its key leads to the page from above */
    memcpy(v->sep, key, klen);
    v->seplen = klen;
    len = bt_branch_encode(rec, child, NULL, 0);
    bt_page_insert(v->page, b->db->psize, 0, rec, len, rec + BT_BRANCH_HDR, 0);
    v->n = 1;
    return 0;
}

static int
leaf_add(struct bt_build *b, const unsigned char *rec, size_t len,
         const unsigned char *key, size_t klen)
{
    struct bt_lvl *v = &b->lv[0];
    int rc;

    if (v->n > 0 &&
        (bt_page_used_bytes(v->page, b->db->psize) + len + BT_SLOT_BYTES >
             b->limit ||
         !bt_page_insert(v->page, b->db->psize, v->n, rec, len, key, klen))) {
        rc = lvl_close(b, 0);
        if (rc != 0) {
            return rc;
        }
    } else if (v->n > 0) {
        v->n++;
        goto done;
    }
    /* a new leaf: the shortest key above the previous leaf's last */
    if (b->any) {
        size_t m = b->lastlen < klen ? b->lastlen : klen, l = 0;
        while (l < m && b->last[l] == key[l]) {
            l++;
        }
        v->seplen = l + 1 <= klen ? l + 1 : klen;
        memcpy(v->sep, key, v->seplen);
    } else {
        v->seplen = 0;
    }
    bt_page_insert(v->page, b->db->psize, 0, rec, len, key, klen);
    v->n = 1;
done:
    memcpy(b->last, key, klen);
    b->lastlen = klen;
    b->any = true;
    return 0;
}

/* Close every level bottom up; the last page standing is the root. */
static int
build_finish(struct bt_build *b)
{
    for (unsigned l = 0; l < BT_MAX_DEPTH; l++) {
        struct bt_lvl *v = &b->lv[l];
        if (v->n == 0 && v->emitted == 0) {
            break;
        }
        if (v->emitted == 0 && l > 0 && v->n == 1) {
            /* a branch with one child: the child is the root */
            b->out.root = bt_branch_child(v->page, 0);
            b->out.depth = l;
            return 0;
        }
        if (v->emitted == 0 && l == 0) {
            uint64_t pgno;
            int rc = sw_page(b, v->page, &pgno);
            b->out.root = pgno;
            b->out.depth = 1;
            return rc;
        }
        int rc = lvl_close(b, l);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
build_tree(bt_db *db, struct bt_build *b, int64_t now)
{
    struct bt_snap s = db->work;
    kvd_iter *it = NULL;
    struct kvd_entry e;
    int rc;

    /* iterate the working tree as a snapshot (wmu is held: it is stable) */
    (void)now;
    s.map = db->map;
    rc = bt_iter_open_at(db, &s, false, &it);
    if (rc != 0) {
        return rc;
    }
    while ((rc = bt_iter_next(it, &e)) == 0) {
        uint64_t ovf = 0;
        size_t inl = BT_LEAF_HDR + (e.expire_ms ? 8 : 0) + e.klen + e.vlen;
        size_t len;
        if (inl > db->max_rec) {
            rc = sw_run(b, e.val, e.vlen, &ovf);
            if (rc != 0) {
                break;
            }
        }
        len = bt_leaf_encode(db->recbuf, e.key, e.klen, e.val, e.vlen, ovf,
                             e.expire_ms);
        rc = leaf_add(b, db->recbuf, len,
                      db->recbuf + BT_LEAF_HDR + (e.expire_ms ? 8 : 0), e.klen);
        if (rc != 0) {
            break;
        }
        b->out.records++;
        b->out.key_bytes += e.klen;
        b->out.value_bytes += e.vlen;
        b->out.expiring += e.expire_ms != 0;
    }
    bt_iter_close(it);
    if (rc == KVD_ENOTFOUND) {
        rc = build_finish(b);
    }
    if (rc == 0) {
        rc = sw_flush(b);
    }
    return rc;
}

/* Retire every in-memory page of the working tree. */
static void
retire_work(bt_db *db, uint64_t ref, unsigned level)
{
    struct bt_mpage *mp;

    if (!(ref & BT_REF_MEM)) {
        return;
    }
    mp = (struct bt_mpage *)(uintptr_t)(ref & ~BT_REF_MEM);
    if (level + 1 < db->work.depth) {
        const unsigned char *p = BT_MP_DATA(mp);
        for (unsigned i = 0; i < BT_PG_N(p); i++) {
            retire_work(db, bt_branch_child(p, i), level + 1);
        }
    }
    bt_mp_retire(db, mp);
}

int
bt_compact(bt_db *db, struct kvd_err *err)
{
    char tmp[BT_PATH_BYTES], path[BT_PATH_BYTES];
    struct bt_build b;
    uint64_t txn;
    int fd, rc;

    /* a commit under way syncs db->fd and owns the next meta slot */
    bt_commit_wait(db);
    if (atomic_load(&db->readonly)) {
        return kvd_err_set(err, KVD_EREADONLY, "%s", db->state);
    }
    txn = db->txn + 1;
    snprintf(tmp, sizeof(tmp), "%s/%s", db->dir, BT_TMP_FILE);
    snprintf(path, sizeof(path), "%s/%s", db->dir, BT_DATA_FILE);
    fd = db->io->open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return kvd_err_set(err, kvd_errno_status(errno), "btree: open %s: %s",
                           tmp, strerror(errno));
    }
    memset(&b, 0, sizeof(b));
    b.db = db;
    b.fd = fd;
    b.txn = txn;
    b.next = BT_META_PAGES;
    b.limit = (db->psize - BT_HDR_BYTES) * (size_t)db->opts.fill_percent / 100;
    b.wbuf = malloc(BT_WRITE_CHUNK);
    rc = b.wbuf == NULL ? KVD_ENOMEM : 0;
    for (unsigned l = 0; rc == 0 && l < BT_MAX_DEPTH; l++) {
        /* level pages are made on first use (lvl_add), leaves here */
        if (l == 0) {
            b.lv[0].page = malloc(db->psize);
            if (b.lv[0].page == NULL) {
                rc = KVD_ENOMEM;
            } else {
                bt_page_init(b.lv[0].page, db->psize, BT_PAGE_LEAF);
            }
        }
    }
    if (rc == 0) {
        rc = build_tree(db, &b, db->host->now_ms(db->host));
    }
    if (rc == 0) {
        b.out.npages = b.next;
        rc = bt_write_meta(db, fd, (unsigned)(txn % 2), &b.out, txn, 0, 0, NULL,
                           0);
    }
    if (rc == 0) {
        memset(db->scratch, 0, db->psize);
        rc = kvd_file_write_full(db->io, fd, db->scratch, db->psize,
                                 (uint64_t)(1 - txn % 2) * db->psize);
    }
    if (rc == 0 && db->io->fdatasync(fd) != 0) {
        rc = kvd_errno_status(errno);
    }
    if (rc == 0 && db->io->rename(tmp, path) != 0) {
        rc = kvd_errno_status(errno);
    }
    if (rc == 0) {
        rc = kvd_file_fsync_dir(db->io, db->dir);
    }
    free(b.wbuf);
    for (unsigned l = 0; l < BT_MAX_DEPTH; l++) {
        free(b.lv[l].page);
    }
    if (rc != 0) {
        db->io->close(fd);
        db->io->unlink(tmp);
        return kvd_err_set(err, rc, "btree: compaction into %s failed", tmp);
    }
    /* switch to the new file */
    {
        struct bt_map *m = NULL; /* as in bt_map_ensure */
        rc = map_new(db, fd, b.out.npages * db->psize, &m);
        if (rc != 0) {
            /* the new file is in place but cannot be mapped: stop here */
            db->io->close(fd);
            bt_set_readonly(db, rc, "map of the compacted file");
            return kvd_err_set(err, rc, "btree: mmap %s failed", path);
        }
        map_retire(db, db->map);
        db->map = m;
    }
    db->io->close(db->fd);
    db->fd = fd;
    retire_work(db, db->work.root, 0);
    db->work.root = b.out.root;
    db->work.depth = b.out.depth;
    db->work.npages = b.out.npages;
    db->work.records = b.out.records;
    db->work.key_bytes = b.out.key_bytes;
    db->work.value_bytes = b.out.value_bytes;
    db->work.expiring = b.out.expiring;
    db->ready.n = 0;
    db->ready_nsorted = 0;
    db->freed.n = 0;
    db->chain.n = 0;
    db->runs.n = 0;
    db->txn = txn;
    db->durable = txn;
    db->meta_slot = (unsigned)(txn % 2);
    db->compactions++;
    rc = bt_publish(db);
    if (rc == 0) {
        db->commit_ver = db->pub_ver;
    }
    return rc;
}
