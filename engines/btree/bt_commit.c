/*
 * bt_commit.c -- flushes and commits of the btree engine.
 *
 * A flush gives every in-memory page of the working tree a file page (one
 * no durable tree and no reader uses), writes the pages in page order in
 * large pwrites (child pointers turned into page numbers on the way), and
 * publishes the file root, so the in-memory copies can be reclaimed.
 *
 * A commit is a flush plus the persisted free list and a meta page:
 *   1. the free list (every free page: reusable now, or waiting for a
 *      reader or for this commit) is written to fresh pages, a chain of
 *      page-number arrays; the previous chain is freed;
 *   2. the tree and free-list pages are written;
 *   3. sync = always or everysec: fdatasync;
 *   4. the meta page (root, depth, page count, free-list head, counters,
 *      crc32c) goes to the meta slot that does not hold the last commit;
 *   5. sync = always or everysec: fdatasync again.
 * A crash before 4 completes leaves the previous meta and its tree, which
 * 2 never touched; a torn 4 fails its crc and open takes the other meta.
 * sync = always skips step 3 when the meta page has room to list every
 * run of pages the commit wrote with its crc32c: open then checks the
 * runs of the newest meta, and a commit whose pages did not all arrive is
 * treated like a torn meta. One fdatasync per commit.
 *
 * When commits happen (the durability each policy promises is in
 * docs/formats.md):
 *   always   writers queue their operations; the first in the queue
 *            applies everyone's, commits once and wakes them all
 *            (bt_group_write), so concurrent writers share the syncs;
 *   everysec a background thread commits every sync_interval; in between
 *            a writer flushes (no meta) when the in-memory pages pass
 *            dirty_limit;
 *   never    the background thread commits (no fdatasync) every
 *            commit_interval, and a writer does when the in-memory pages
 *            pass dirty_limit.
 * A failed write or fdatasync turns the engine read-only.
 *
 * The background commit (bt_commit) does steps 1-2 under wmu, then
 * releases it for 3-5, so writers are not held up by the disk. What
 * keeps that safe: before the release db->txn becomes the commit's T, so
 * a page of T's tree that a writer drops meanwhile is freed as waiting
 * for T+1 (it is reused only once a later commit is durable), and pages
 * and overflow runs written meanwhile go to pages that neither T nor the
 * commit before it use (`ready` holds only pages no durable tree needs).
 * T counts as durable (db->durable, which frees the pages T dropped) only
 * after step 5. Commits stay one at a time: db->committing makes the
 * next commit, compaction and sync wait (bt_commit_wait). sync = always
 * commits in the writer under wmu as before: a write is acknowledged only
 * after its own commit's fdatasync.
 */
#include "bt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvd/kit_file.h"
#include "kvd/kit_worker.h"

struct bt_wreq {
    struct bt_wreq *next;
    pthread_cond_t cv;
    bool done;
    int status;
    struct kvd_mop *ops; /* multi, put or del */
    size_t n;
    const struct kvd_op *bops; /* or an atomic batch */
    size_t nb;
    struct kvd_err *err;
};

/* A page image to write: from an in-memory page (children translated) or
 * a raw buffer. */
struct bt_wpage {
    uint64_t pgno;
    const unsigned char *data;
    bool translate;
};

void
bt_set_readonly(bt_db *db, int rc, const char *what)
{
    if (atomic_exchange(&db->readonly, 1) == 0) {
        snprintf(db->state, sizeof(db->state), "btree: %s failed: %s", what,
                 rc == KVD_ENOSPC ? "no space left on device" : "I/O error");
        db->host->log(db->host, KVD_LOG_ERROR,
                      "%s; the store is read-only from now on", db->state);
    }
}

/* Append the in-memory pages under ref to *out, children first. */
static int
collect(bt_db *db, uint64_t ref, unsigned level, struct bt_vec64 *out)
{
    struct bt_mpage *mp;
    const unsigned char *p;

    if (!(ref & BT_REF_MEM)) {
        return 0;
    }
    mp = (struct bt_mpage *)(uintptr_t)(ref & ~BT_REF_MEM);
    p = BT_MP_DATA(mp);
    if (level + 1 < db->work.depth) {
        unsigned n = BT_PG_N(p);
        for (unsigned i = 0; i < n; i++) {
            int rc = collect(db, bt_branch_child(p, i), level + 1, out);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return bt_vec_push(out, (uint64_t)(uintptr_t)mp);
}

static int
cmp_wpage(const void *a, const void *b)
{
    uint64_t x = ((const struct bt_wpage *)a)->pgno;
    uint64_t y = ((const struct bt_wpage *)b)->pgno;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* A tree page is written packed (bt_page_pack): the writer's copy has its
 * records in insertion order, so a scan would jump around the page and a
 * search's last compares would touch scattered lines; the file copy, the
 * one readers use from the next publish on, has them in key order. */
static void
image(bt_db *db, const struct bt_wpage *w, unsigned char *out, uint64_t txn)
{
    if (w->translate) {
        bt_page_pack(w->data, out, db->psize);
    } else {
        memcpy(out, w->data, db->psize);
    }
    bt_put64(out + 16, txn);
    if (w->translate && BT_PG_TYPE(out) == BT_PAGE_BRANCH) {
        unsigned n = BT_PG_N(out);
        for (unsigned i = 0; i < n; i++) {
            uint64_t c = bt_branch_child(out, i);
            if (c & BT_REF_MEM) {
                const struct bt_mpage *cm =
                    (const struct bt_mpage *)(uintptr_t)(c & ~BT_REF_MEM);
                bt_branch_set_child(out, i, cm->pgno);
            }
        }
    }
}

/* A verification item: first page, then pages | crc32c << 32. */
static int
add_item(struct bt_vec64 *items, uint64_t pgno, uint64_t n, uint32_t crc)
{
    int rc = bt_vec_push(items, pgno);
    return rc != 0 ? rc : bt_vec_push(items, n | (uint64_t)crc << 32);
}

/* Write pages w[0..n) (sorted here) in runs of consecutive page numbers;
 * with items, add one verification item per run. */
static int
write_images(bt_db *db, struct bt_wpage *w, size_t n, uint64_t txn,
             struct bt_vec64 *items)
{
    size_t per = BT_WRITE_CHUNK / db->psize;
    size_t i = 0;

    /* pages are allocated lowest first in the order collected, so the
     * list is usually in order already */
    while (i + 1 < n && w[i].pgno < w[i + 1].pgno) {
        i++;
    }
    if (i + 1 < n) {
        qsort(w, n, sizeof(*w), cmp_wpage);
    }
    i = 0;
    while (i < n) {
        size_t k = 0;
        uint64_t first = w[i].pgno;
        while (i + k < n && k < per && w[i + k].pgno == first + k) {
            image(db, &w[i + k], db->wbuf + k * db->psize, txn);
            k++;
        }
        int rc = kvd_file_write_full(db->io, db->fd, db->wbuf, k * db->psize,
                                     first * db->psize);
        if (rc == 0 && items != NULL) {
            rc = add_item(items, first, k,
                          kvd_crc32c(0, db->wbuf, k * db->psize));
        }
        if (rc != 0) {
            return rc;
        }
        db->pages_written += k;
        i += k;
    }
    return 0;
}

void
bt_meta_image(bt_db *db, unsigned char *m, const struct bt_snap *s,
              uint64_t txn, uint64_t freehead, uint64_t nfree,
              const uint64_t *items, size_t nitems)
{
    uint32_t crc;

    memset(m, 0, db->psize);
    memcpy(m, BT_MAGIC, 8);
    bt_put32(m + 8, BT_FORMAT_VERSION);
    bt_put32(m + 12, (uint32_t)db->psize);
    bt_put64(m + 16, txn);
    bt_put64(m + 24, s->root);
    bt_put32(m + 32, s->depth);
    bt_put64(m + 40, s->npages);
    bt_put64(m + 48, freehead);
    bt_put64(m + 56, nfree);
    bt_put64(m + 64, s->records);
    bt_put64(m + 72, s->key_bytes);
    bt_put64(m + 80, s->value_bytes);
    bt_put64(m + 88, s->expiring);
    bt_put32(m + 104, (uint32_t)nitems);
    for (size_t i = 0; i < nitems; i++) {
        bt_put64(m + 128 + i * 16, items[2 * i]);
        bt_put64(m + 136 + i * 16, items[2 * i + 1]);
    }
    crc = kvd_crc32c(0, m, 112);
    crc = kvd_crc32c(crc, m + 128, nitems * 16);
    bt_put32(m + 112, crc);
}

int
bt_write_meta(bt_db *db, int fd, unsigned slot, const struct bt_snap *s,
              uint64_t txn, uint64_t freehead, uint64_t nfree,
              const uint64_t *items, size_t nitems)
{
    bt_meta_image(db, db->scratch, s, txn, freehead, nfree, items, nitems);
    return kvd_file_write_full(db->io, fd, db->scratch, db->psize,
                               (uint64_t)slot * db->psize);
}

/* Build the free-list chain for this commit into *buf (npages pages);
 * its page numbers go to *chain. */
static int
build_chain(bt_db *db, struct bt_vec64 *chain, unsigned char **buf,
            uint64_t *nfree)
{
    size_t cap = (db->psize - BT_HDR_BYTES) / 4;
    size_t need = 0, total;
    unsigned char *b;
    size_t k = 0;

    /* pages taken for the chain leave the free set: iterate to a fixed
     * point (at most a couple of rounds) */
    for (;;) {
        total = db->ready.n + db->freed.n;
        need = (total + cap - 1) / cap;
        if (chain->n >= need) {
            break;
        }
        uint64_t pg;
        int rc = bt_alloc_page(db, &pg);
        if (rc == 0) {
            rc = bt_vec_push(chain, pg);
        }
        if (rc != 0) {
            return rc;
        }
    }
    *nfree = total;
    *buf = NULL;
    if (chain->n == 0) {
        return 0;
    }
    b = calloc(chain->n, db->psize);
    if (b == NULL) {
        return KVD_ENOMEM;
    }
    for (size_t c = 0; c < chain->n; c++) {
        unsigned char *p = b + c * db->psize;
        size_t cnt = 0;
        bt_page_init(p, db->psize, BT_PAGE_FREE);
        bt_put64(p + BT_FREE_NEXT_OFF, c + 1 < chain->n ? chain->v[c + 1] : 0);
        while (cnt < cap && k < total) {
            uint64_t pg = k < db->ready.n ? db->ready.v[k]
                                          : db->freed.v[k - db->ready.n].pgno;
            bt_put32(p + BT_HDR_BYTES + cnt * 4, (uint32_t)pg);
            cnt++;
            k++;
        }
        bt_put32(p + BT_FREE_COUNT_OFF, (uint32_t)cnt);
    }
    *buf = b;
    return 0;
}

/* A commit between its page writes (under wmu) and the end of its syncs
 * and meta write (which need no wmu). */
struct bt_commit {
    uint64_t txn;
    bool sync;
    bool verify;    /* one fdatasync: the meta lists the runs written */
    unsigned syncs; /* fdatasyncs done */
};

void
bt_commit_wait(bt_db *db)
{
    while (db->committing) {
        pthread_cond_wait(&db->commit_cv, &db->wmu);
    }
}

/*
 * Under wmu: flush the working tree's pages and, with c (a commit), write
 * the free-list chain, build the meta image in db->metabuf and move the
 * writer on to the commit: db->txn = c->txn before wmu can be released,
 * so a page of this commit's tree that a writer drops from now on waits
 * for the next commit to be durable (bt_free_pgno), and the overflow runs
 * and pages written from now on belong to the next commit. Publishes.
 */
static int
flush_begin(bt_db *db, struct bt_commit *c)
{
    struct bt_vec64 list = {0}, chain = {0}, items = {0};
    bool meta = c != NULL;
    size_t max_items = (db->psize - 128) / 16;
    struct bt_wpage *w = NULL;
    unsigned char *chainbuf = NULL;
    uint64_t txn = db->txn + 1;
    uint64_t nfree = 0;
    size_t nw = 0;
    int rc;

    if (atomic_load(&db->readonly)) {
        return KVD_EREADONLY;
    }
    if (!meta && db->dirty == 0) {
        return 0;
    }
    bt_reclaim(db);
    rc = collect(db, db->work.root, 0, &list);
    for (size_t i = 0; rc == 0 && i < list.n; i++) {
        struct bt_mpage *mp = (struct bt_mpage *)(uintptr_t)list.v[i];
        rc = bt_alloc_page(db, &mp->pgno);
    }
    if (rc == 0 && meta) {
        /* the previous chain is free once this commit is durable */
        for (size_t i = 0; rc == 0 && i < db->chain.n; i++) {
            rc = bt_free_pgno(db, db->chain.v[i], true);
        }
        if (rc == 0) {
            rc = build_chain(db, &chain, &chainbuf, &nfree);
        }
    }
    if (rc != 0) {
        goto out;
    }
    w = malloc((list.n + chain.n + 1) * sizeof(*w));
    if (w == NULL) {
        rc = KVD_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < list.n; i++) {
        struct bt_mpage *mp = (struct bt_mpage *)(uintptr_t)list.v[i];
        w[nw++] = (struct bt_wpage){mp->pgno, BT_MP_DATA(mp), true};
    }
    for (size_t i = 0; i < chain.n; i++) {
        w[nw++] =
            (struct bt_wpage){chain.v[i], chainbuf + i * db->psize, false};
    }
    rc = bt_map_ensure(db, db->work.npages);
    if (rc == 0) {
        rc = write_images(db, w, nw, txn, meta && c->verify ? &items : NULL);
    }
    for (size_t i = 0; rc == 0 && meta && c->verify && i + 1 < db->runs.n;
         i += 2) {
        uint64_t p = db->runs.v[i], k = db->runs.v[i + 1];
        rc = add_item(
            &items, p, k,
            kvd_crc32c(0, db->map->base + p * db->psize, k * db->psize));
    }
    if (rc != 0) {
        bt_set_readonly(db, rc, "write of tree pages");
        goto out;
    }
    /* the working tree now lives in the file */
    if (db->work.root & BT_REF_MEM) {
        db->work.root =
            ((struct bt_mpage *)(uintptr_t)(db->work.root & ~BT_REF_MEM))->pgno;
    }
    for (size_t i = 0; i < list.n; i++) {
        bt_mp_retire(db, (struct bt_mpage *)(uintptr_t)list.v[i]);
    }
    db->flushes++;
    if (meta) {
        if (c->verify && items.n / 2 > max_items) {
            c->verify = false; /* too many runs: two syncs instead */
        }
        c->txn = txn;
        bt_meta_image(db, db->metabuf, &db->work, txn,
                      chain.n > 0 ? chain.v[0] : 0, nfree,
                      c->verify ? items.v : NULL, c->verify ? items.n / 2 : 0);
        db->txn = txn;
        bt_vec_free(&db->chain);
        db->chain = chain;
        chain = (struct bt_vec64){0};
        db->runs.n = 0;
    }
    rc = bt_publish(db);
    if (rc == 0 && meta) {
        db->commit_ver = db->pub_ver;
    }
out:
    free(w);
    free(chainbuf);
    bt_vec_free(&list);
    bt_vec_free(&chain);
    bt_vec_free(&items);
    return rc;
}

static int
datasync(bt_db *db, struct bt_commit *c)
{
    c->syncs++;
    if (db->io->fdatasync(db->fd) != 0) {
        return kvd_errno_status(errno);
    }
    return 0;
}

/* The syncs and the meta write of a commit. Touches only db->fd, db->io
 * and db->metabuf, which no writer changes while a commit is under way
 * (compaction waits for it), so wmu need not be held. */
static int
commit_write(bt_db *db, struct bt_commit *c)
{
    int rc = 0;

    if (c->sync && !c->verify) {
        rc = datasync(db, c);
    }
    if (rc == 0) {
        rc = kvd_file_write_full(db->io, db->fd, db->metabuf, db->psize,
                                 (c->txn % 2) * db->psize);
    }
    if (rc == 0 && c->sync) {
        rc = datasync(db, c);
    }
    return rc;
}

/* Under wmu: the commit is durable (rc 0), or the store read-only. */
static int
commit_end(bt_db *db, struct bt_commit *c, int rc)
{
    db->syncs += c->syncs;
    if (rc != 0) {
        bt_set_readonly(db, rc, c->sync ? "commit (fdatasync)" : "commit");
        return rc;
    }
    db->meta_slot = (unsigned)(c->txn % 2);
    db->durable = c->txn;
    db->commits++;
    return 0;
}

static void
commit_init(bt_db *db, struct bt_commit *c, bool sync)
{
    /* sync = always commits with one fdatasync when the meta page can
     * list every run the commit wrote with its crc32c: open checks them
     * and falls back to the previous commit if any did not arrive */
    c->txn = 0;
    c->sync = sync;
    c->verify = sync && db->opts.sync == BT_SYNC_ALWAYS;
    c->syncs = 0;
}

int
bt_flush(bt_db *db, bool meta, bool sync)
{
    struct bt_commit c;
    int rc;

    if (!meta) {
        return flush_begin(db, NULL);
    }
    bt_commit_wait(db);
    commit_init(db, &c, sync);
    rc = flush_begin(db, &c);
    if (rc != 0) {
        return rc;
    }
    return commit_end(db, &c, commit_write(db, &c));
}

int
bt_commit(bt_db *db, bool sync)
{
    struct bt_commit c;
    int rc;

    bt_commit_wait(db);
    commit_init(db, &c, sync);
    rc = flush_begin(db, &c);
    if (rc != 0) {
        return rc;
    }
    /* writers go on while the commit syncs; the next commit (and anything
     * that needs one, like compaction) waits in bt_commit_wait */
    db->committing = true;
    pthread_mutex_unlock(&db->wmu);
    rc = commit_write(db, &c);
    pthread_mutex_lock(&db->wmu);
    db->committing = false;
    pthread_cond_broadcast(&db->commit_cv);
    return commit_end(db, &c, rc);
}

int
bt_commit_policy(bt_db *db)
{
    if (db->dirty * db->psize < db->opts.dirty_limit) {
        return 0;
    }
    /* everysec: pages only; the timer commits. never: commit now. */
    return bt_flush(db, db->opts.sync == BT_SYNC_NEVER, false);
}

/* ---- applying operations (under wmu) ---- */

/* Copy the live value of key in the working tree into m->out. */
static int
work_get(bt_db *db, struct kvd_mop *m, int64_t now)
{
    struct bt_snap s = db->work;
    struct bt_rec r;
    const unsigned char *v;
    void *copy;
    int rc;

    s.map = db->map;
    rc = bt_lookup(db, &s, m->key, m->klen, &r);
    if (rc != 0) {
        return rc;
    }
    if (r.expire_ms != 0 && r.expire_ms <= now) {
        return KVD_ENOTFOUND;
    }
    v = bt_rec_value(&s, &r, db->psize);
    copy = malloc(r.vlen > 0 ? r.vlen : 1);
    if (copy == NULL) {
        return KVD_ENOMEM;
    }
    memcpy(copy, v, r.vlen);
    m->out.data = copy;
    m->out.len = r.vlen;
    m->out.expire_ms = r.expire_ms;
    m->out.release = NULL;
    m->out.cookie[0] = copy;
    return 1; /* caller sets the release function */
}

static void
free_copy(struct kvd_val *v)
{
    free(v->cookie[0]);
}

/* Whether an operation after ops[i] writes its key. */
static bool
written_later(const struct kvd_mop *ops, size_t n, size_t i)
{
    for (size_t j = i + 1; j < n; j++) {
        if (ops[j].type != KVD_MOP_GET && ops[j].klen == ops[i].klen &&
            memcmp(ops[j].key, ops[i].key, ops[i].klen) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Apply the operations of one request; returns whether it wrote. A GET
 * whose key no later operation of the request writes is left for after
 * the publish (status KVD_EAGAIN): it then reads the published snapshot
 * in place, like get, and sees every earlier write of the request. Only
 * a GET followed by a write of its key reads the working tree here (a
 * copy, since the tree changes next).
 */
static bool
apply_mops(bt_db *db, struct kvd_mop *ops, size_t n, int64_t now)
{
    bool wrote = false;

    for (size_t i = 0; i < n; i++) {
        struct kvd_mop *m = &ops[i];
        struct bt_mark mk;
        switch (m->type) {
        case KVD_MOP_GET:
            if (!written_later(ops, n, i)) {
                m->status = KVD_EAGAIN;
                break;
            }
            m->status = work_get(db, m, now);
            if (m->status == 1) {
                m->status = 0;
                m->out.release = free_copy;
            }
            break;
        case KVD_MOP_PUT:
            bt_mark(db, &mk);
            m->status = bt_apply_put(db, m->key, m->klen, m->val, m->vlen,
                                     m->expire_ms);
            if (m->status != 0) {
                bt_rollback(db, &mk);
            } else {
                wrote = true;
            }
            break;
        case KVD_MOP_DEL:
            bt_mark(db, &mk);
            m->status = bt_apply_del(db, m->key, m->klen, now);
            if (m->status == 0 || m->status == KVD_ENOTFOUND) {
                wrote = wrote || db->work.root != mk.work.root ||
                        db->work.records != mk.work.records;
            } else {
                bt_rollback(db, &mk);
            }
            break;
        default:
            m->status = KVD_EINVAL;
            break;
        }
    }
    return wrote;
}

static int
apply_batch(bt_db *db, const struct kvd_op *ops, size_t n, int64_t now,
            struct kvd_err *err)
{
    struct bt_mark mk;

    bt_mark(db, &mk);
    for (size_t i = 0; i < n; i++) {
        int rc;
        if (ops[i].type == KVD_OP_PUT) {
            rc = bt_apply_put(db, ops[i].key, ops[i].klen, ops[i].val,
                              ops[i].vlen, ops[i].expire_ms);
        } else {
            rc = bt_apply_del(db, ops[i].key, ops[i].klen, now);
            if (rc == KVD_ENOTFOUND) {
                rc = 0;
            }
        }
        if (rc != 0) {
            bt_rollback(db, &mk);
            return kvd_err_set(err, rc, "btree: batch op %zu failed", i);
        }
    }
    return 0;
}

/* Apply one request (under wmu); true when it changed the tree. */
static bool
apply_req(bt_db *db, struct bt_wreq *r, int64_t now)
{
    if (r->bops != NULL) {
        r->status = apply_batch(db, r->bops, r->nb, now, r->err);
        return r->status == 0 && r->nb > 0;
    }
    r->status = 0;
    return apply_mops(db, r->ops, r->n, now);
}

/* A commit failed after the writes were applied: every write of the
 * request reports it. */
static void
fail_req(struct bt_wreq *r, int rc)
{
    if (r->bops != NULL) {
        if (r->status == 0) {
            r->status = kvd_err_set(r->err, rc, "btree: commit failed");
        }
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        if (r->ops[i].type != KVD_MOP_GET) {
            r->ops[i].status = rc;
        }
    }
}

/* Apply requests (under wmu), publish, and commit per the policy. */
static int
apply_and_commit(bt_db *db, struct bt_wreq *first, struct bt_wreq *last)
{
    int64_t now = db->host->now_ms(db->host);
    bool wrote = false;
    int rc = 0;

    for (struct bt_wreq *r = first;; r = r->next) {
        if (apply_req(db, r, now)) {
            wrote = true;
        }
        if (r == last) {
            break;
        }
    }
    if (!wrote) {
        bt_unit_done(db);
        return 0;
    }
    rc = bt_publish(db);
    if (rc == 0) {
        if (db->opts.sync == BT_SYNC_ALWAYS) {
            rc = bt_flush(db, true, true);
        } else {
            rc = bt_commit_policy(db);
        }
    }
    if (rc != 0) {
        for (struct bt_wreq *r = first;; r = r->next) {
            fail_req(r, rc);
            if (r == last) {
                break;
            }
        }
    }
    return rc;
}

int
bt_group_write(bt_db *db, struct kvd_mop *ops, size_t n,
               const struct kvd_op *bops, size_t nb, struct kvd_err *err)
{
    struct bt_wreq req;
    struct bt_wreq *last;

    memset(&req, 0, sizeof(req));
    req.ops = ops;
    req.n = n;
    req.bops = bops;
    req.nb = nb;
    req.err = err;
    if (atomic_load(&db->readonly)) {
        req.status = KVD_EREADONLY;
        fail_req(&req, KVD_EREADONLY);
        /* gets still run (the caller reads them: KVD_EAGAIN) */
        if (bops == NULL) {
            for (size_t i = 0; i < n; i++) {
                if (ops[i].type == KVD_MOP_GET) {
                    ops[i].status = KVD_EAGAIN;
                }
            }
            return 0;
        }
        return kvd_err_set(err, KVD_EREADONLY, "btree: %s", db->state);
    }
    if (db->opts.sync != BT_SYNC_ALWAYS) {
        pthread_mutex_lock(&db->wmu);
        apply_and_commit(db, &req, &req);
        pthread_mutex_unlock(&db->wmu);
        return bops != NULL ? req.status : 0;
    }
    pthread_cond_init(&req.cv, NULL);
    pthread_mutex_lock(&db->qmu);
    if (db->qtail != NULL) {
        db->qtail->next = &req;
    } else {
        db->qhead = &req;
    }
    db->qtail = &req;
    while (!req.done && db->qhead != &req) {
        pthread_cond_wait(&req.cv, &db->qmu);
    }
    if (req.done) {
        pthread_mutex_unlock(&db->qmu);
        pthread_cond_destroy(&req.cv);
        return bops != NULL ? req.status : 0;
    }
    /* leader: take everyone queued so far */
    last = db->qtail;
    pthread_mutex_unlock(&db->qmu);

    pthread_mutex_lock(&db->wmu);
    apply_and_commit(db, &req, last);
    pthread_mutex_unlock(&db->wmu);

    pthread_mutex_lock(&db->qmu);
    for (;;) {
        struct bt_wreq *r = db->qhead;
        db->qhead = r->next;
        if (db->qhead == NULL) {
            db->qtail = NULL;
        }
        if (r != &req) {
            r->done = true;
            pthread_cond_signal(&r->cv);
        }
        if (r == last) {
            break;
        }
    }
    if (db->qhead != NULL) {
        pthread_cond_signal(&db->qhead->cv);
    }
    pthread_mutex_unlock(&db->qmu);
    pthread_cond_destroy(&req.cv);
    return bops != NULL ? req.status : 0;
}

/* ---- the background committer (a toolkit worker) ---- */

static int
committer_round(void *arg)
{
    bt_db *db = arg;

    pthread_mutex_lock(&db->wmu);
    if (!atomic_load(&db->readonly) && db->commit_ver != db->pub_ver) {
        /* wmu is released for the syncs: writers do not stall */
        bt_commit(db, db->opts.sync == BT_SYNC_EVERYSEC);
    }
    pthread_mutex_unlock(&db->wmu);
    return 0;
}

int
bt_committer_start(bt_db *db)
{
    int64_t ms = db->opts.sync == BT_SYNC_EVERYSEC ? db->opts.sync_interval
                                                   : db->opts.commit_interval;

    if (db->opts.sync == BT_SYNC_ALWAYS) {
        return 0;
    }
    return kvd_worker_start("kvd-btree-commit", ms, committer_round, db,
                            &db->committer, NULL);
}

void
bt_committer_stop(bt_db *db)
{
    kvd_worker_stop(db->committer);
    db->committer = NULL;
}
