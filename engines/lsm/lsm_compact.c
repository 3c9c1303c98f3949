/*
 * lsm_compact.c -- the background work of the lsm engine: flushing the
 * immutable memtable to a level-0 table, leveled compaction, applying
 * version edits, and deleting files nothing refers to any more.
 *
 * Leveled compaction (docs/architecture.md has the why): level 0 is
 * merged into level 1 when it holds l0_compaction_trigger tables; a level
 * L >= 1 is merged into L+1 when it holds more than level1_size * 10^(L-1)
 * bytes, one table at a time in round-robin key order. Outputs are cut at
 * table_size, and earlier when they would overlap more than ten tables'
 * worth of level L+2 (which bounds the cost of the next compaction).
 * A table that overlaps nothing below moves down by an edit alone.
 *
 * What a compaction keeps: the newest version of each user key only (a
 * reader on an older view reads that view's own tables, which stay on
 * disk while it holds them). A deletion, or a value whose expiry has
 * passed, is dropped when no deeper level may hold the key; otherwise an
 * expired value is written as a deletion, so an older value below cannot
 * come back.
 *
 * Crash safety: outputs are written as NNNNNN.sst.tmp, fsynced, renamed,
 * and the directory is fsynced before the edit naming them is appended to
 * the MANIFEST and synced. Inputs are marked obsolete only then, and
 * deleted when the last view using them goes. Anything a crash leaves
 * behind is an unreferenced file, removed at the next open.
 *
 * Locking: everything here that changes the table set runs under cmu
 * (the background thread, or maintain()); mu is taken briefly to read
 * and install views. A compaction checks every few hundred entries
 * whether a memtable is waiting to be flushed and flushes it first, so a
 * long compaction never stalls writers on a full memtable.
 */
#include "lsm_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LSM_GP_OVERLAP_TABLES 10 /* grandparent overlap limit, in tables */
#define LSM_CHECK_EVERY       256

/* ---- obsolete files ---- */

void
lsm_file_gone(void *ctx, struct lsm_file *f)
{
    lsm_db *db = ctx;

    /* may run under mu in any thread: only queue it (dead_mu is a leaf) */
    pthread_mutex_lock(&db->dead_mu);
    if (db->ndead == db->dead_cap) {
        size_t cap = db->dead_cap ? db->dead_cap * 2 : 16;
        uint64_t *nd = realloc(db->dead, cap * sizeof(*nd));
        if (nd == NULL) {
            /* the file stays; the next open removes it */
            pthread_mutex_unlock(&db->dead_mu);
            return;
        }
        db->dead = nd;
        db->dead_cap = cap;
    }
    db->dead[db->ndead++] = f->number;
    pthread_mutex_unlock(&db->dead_mu);
}

void
lsm_delete_dead(lsm_db *db)
{
    uint64_t *list;
    size_t n;

    pthread_mutex_lock(&db->dead_mu);
    list = db->dead;
    n = db->ndead;
    db->dead = NULL;
    db->ndead = 0;
    db->dead_cap = 0;
    pthread_mutex_unlock(&db->dead_mu);
    for (size_t i = 0; i < n; i++) {
        char path[LSM_PATH_BYTES];
        lsm_tcache_evict(db, list[i]);
        lsm_path(db, path, list[i], "sst");
        if (db->io->unlink(path) != 0 && errno != ENOENT) {
            LSM_LOG(db, KVD_LOG_WARN,
                    "lsm: unlink %s: %s (removed at the "
                    "next open)",
                    path, strerror(errno));
        }
    }
    free(list);
}

/* ---- applying edits ---- */

int
lsm_log_and_apply(lsm_db *db, struct lsm_edit *e, bool flushed)
{
    struct lsm_view *old = NULL;
    lsm_version *base;
    lsm_version *nv = NULL;
    int rc;

    pthread_mutex_lock(&db->mu);
    base = db->view->v;
    lsm_version_ref(base);
    lsm_edit_set_next_file(e, db->next_file);
    pthread_mutex_unlock(&db->mu);
    lsm_edit_set_last_seq(e, atomic_load(&db->visible_seq));

    rc = lsm_manifest_append(db, e);
    if (rc != 0) {
        lsm_fail(db, rc, "append to %s/MANIFEST-%06llu", db->dir,
                 (unsigned long long)db->manifest_number);
        goto out;
    }
    rc = lsm_version_apply(base, e, &nv);
    if (rc != 0) {
        /* the MANIFEST has an edit the memory state cannot take */
        lsm_fail(db, rc, "apply version edit");
        goto out;
    }
    lsm_version_mark_obsolete(base, e);
    if (e->has & LSM_EDIT_HAS_LOG_NUMBER) {
        db->log_number = e->log_number;
    }
    pthread_mutex_lock(&db->mu);
    rc = lsm_view_install_locked(db, db->view->mem,
                                 flushed ? NULL : db->view->imm, nv, &old);
    pthread_mutex_unlock(&db->mu);
    if (rc != 0) {
        lsm_fail(db, rc, "install version");
        goto out;
    }
    lsm_view_put(old);
    if (db->manw.off > db->opts.manifest_size) {
        struct kvd_err err;
        uint64_t number = lsm_new_file_number(db);
        rc = lsm_manifest_create(db, nv, number, db->log_number,
                                 atomic_load(&db->visible_seq), &err);
        if (rc != 0) {
            lsm_fail(db, rc, "roll MANIFEST: %s", err.msg);
        } else {
            kvd_counter_add(&db->c.manifest_rolls, 1);
        }
    }
out:
    lsm_version_unref(nv);
    lsm_version_unref(base);
    return rc;
}

/* ---- table building ---- */

struct tbuild {
    uint64_t number;
    int fd;
    lsm_tw *tw;
    char tmp[LSM_PATH_BYTES];
    char path[LSM_PATH_BYTES];
};

static int
tb_open(lsm_db *db, struct tbuild *tb)
{
    struct kvd_err err;
    int rc;

    tb->number = lsm_new_file_number(db);
    lsm_path(db, tb->path, tb->number, "sst");
    lsm_path(db, tb->tmp, tb->number, "sst.tmp");
    tb->tw = NULL;
    tb->fd =
        db->io->open(tb->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (tb->fd < 0) {
        rc = kvd_errno_status(errno);
        return lsm_fail(db, rc, "create %s", tb->tmp);
    }
    kvd_err_clear(&err);
    rc = lsm_tw_open(db->host, tb->fd, &db->topts, &tb->tw, &err);
    if (rc != 0) {
        db->io->close(tb->fd);
        db->io->unlink(tb->tmp);
        tb->fd = -1;
        return lsm_fail(db, rc, "start table %s: %s", tb->tmp, err.msg);
    }
    return 0;
}

static void
tb_abandon(lsm_db *db, struct tbuild *tb)
{
    if (tb->fd < 0) {
        return;
    }
    if (tb->tw != NULL) {
        lsm_tw_abandon(tb->tw);
        tb->tw = NULL;
    }
    db->io->close(tb->fd);
    db->io->unlink(tb->tmp);
    tb->fd = -1;
}

static int
tb_add(lsm_db *db, struct tbuild *tb, struct lsm_slice k, struct lsm_slice v)
{
    struct kvd_err err;
    int rc;

    kvd_err_clear(&err);
    rc = lsm_tw_add(tb->tw, k, v, &err);
    if (rc != 0) {
        return lsm_fail(db, rc, "write table %s: %s", tb->tmp, err.msg);
    }
    return 0;
}

/* Finish, sync and rename the table, and add it to e at `level`. The
 * directory is synced by the caller before e is logged. */
static int
tb_finish(lsm_db *db, struct tbuild *tb, struct lsm_edit *e, int level,
          uint64_t *bytes)
{
    struct lsm_table_meta meta;
    struct kvd_err err;
    int rc;

    memset(&meta, 0, sizeof(meta));
    kvd_err_clear(&err);
    rc = lsm_tw_finish(tb->tw, &meta, &err);
    tb->tw = NULL; /* freed by finish, also on error */
    if (rc != 0) {
        lsm_fail(db, rc, "finish table %s: %s", tb->tmp, err.msg);
        goto fail;
    }
    kvd_counter_add(&db->c.fsyncs, 1);
    if (db->io->fsync(tb->fd) != 0) {
        rc = lsm_fail(db, kvd_errno_status(errno), "fsync %s", tb->tmp);
        goto fail;
    }
    if (db->io->rename(tb->tmp, tb->path) != 0) {
        rc = lsm_fail(db, kvd_errno_status(errno), "rename %s", tb->tmp);
        goto fail;
    }
    db->io->close(tb->fd);
    tb->fd = -1;
    rc = lsm_edit_add_file(e, level, tb->number, meta.file_size, meta.entries,
                           meta.smallest, meta.largest);
    if (rc != 0) {
        lsm_table_meta_free(&meta);
        return lsm_fail(db, rc, "record table %s", tb->path);
    }
    *bytes += meta.file_size;
    lsm_table_meta_free(&meta);
    return 0;
fail:
    lsm_table_meta_free(&meta);
    tb_abandon(db, tb);
    return rc;
}

/* ---- flush ---- */

static bool
same_user(struct lsm_slice ik, const unsigned char *k, size_t kn)
{
    return ik.n - LSM_TRAILER_BYTES == kn && memcmp(ik.p, k, kn) == 0;
}

/* A growing copy of the last user key seen. */
struct keybuf {
    unsigned char *p;
    size_t n;
    size_t cap;
    bool set;
};

static int
keybuf_set(struct keybuf *kb, const void *p, size_t n)
{
    if (n > kb->cap) {
        size_t cap = kb->cap ? kb->cap : 64;
        unsigned char *np;
        while (cap < n) {
            cap *= 2;
        }
        np = realloc(kb->p, cap);
        if (np == NULL) {
            return KVD_ENOMEM;
        }
        kb->p = np;
        kb->cap = cap;
    }
    memcpy(kb->p, p, n);
    kb->n = n;
    kb->set = true;
    return 0;
}

int
lsm_write_mem_table(lsm_db *db, lsm_mem *m, struct lsm_edit *edit, bool *empty)
{
    struct keybuf last = {NULL, 0, 0, false};
    struct tbuild tb;
    uint64_t bytes = 0;
    lsm_it *it = NULL;
    int rc;

    *empty = true;
    rc = lsm_mem_iter(m, &it);
    if (rc != 0) {
        return rc;
    }
    tb.fd = -1;
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        struct lsm_slice k = it->ops->key(it);
        struct lsm_slice u = lsm_ikey_user(k);
        if (last.set && same_user(k, last.p, last.n)) {
            /* an older version: readers that still need it read the
             * memtable itself */
            kvd_counter_add(&db->c.dropped_shadowed, 1);
            continue;
        }
        rc = keybuf_set(&last, u.p, u.n);
        if (rc == 0 && tb.fd < 0) {
            rc = tb_open(db, &tb);
        }
        if (rc == 0) {
            rc = tb_add(db, &tb, k, it->ops->value(it));
        }
        if (rc != 0) {
            goto out;
        }
        *empty = false;
    }
    if (tb.fd >= 0) {
        rc = tb_finish(db, &tb, edit, 0, &bytes);
        if (rc == 0) {
            rc = lsm_fsync_dir(db);
            if (rc != 0) {
                lsm_fail_sync(db, rc, "fsync directory %s", db->dir);
            }
        }
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.flush_bytes, bytes);
    }
out:
    if (rc != 0) {
        tb_abandon(db, &tb);
    }
    it->ops->destroy(it);
    free(last.p);
    return rc;
}

int
lsm_flush_imm(lsm_db *db)
{
    struct lsm_edit e;
    lsm_mem *imm;
    uint64_t mem_wal;
    uint64_t imm_wal;
    bool empty;
    int rc;

    pthread_mutex_lock(&db->mu);
    imm = db->view->imm;
    if (imm == NULL) {
        pthread_mutex_unlock(&db->mu);
        return 0;
    }
    lsm_mem_ref(imm);
    mem_wal = lsm_mem_wal(db->view->mem);
    pthread_mutex_unlock(&db->mu);
    if (lsm_refuses(db)) {
        lsm_mem_unref(imm);
        return KVD_EREADONLY;
    }
    imm_wal = lsm_mem_wal(imm);
    lsm_edit_init(&e);
    rc = lsm_write_mem_table(db, imm, &e, &empty);
    if (rc == 0) {
        /* WALs older than the live memtable's hold nothing unflushed */
        lsm_edit_set_log_number(&e, mem_wal);
        rc = lsm_log_and_apply(db, &e, true);
    }
    if (rc == 0) {
        char path[LSM_PATH_BYTES];
        lsm_path(db, path, imm_wal, "log");
        db->io->unlink(path);
        kvd_counter_add(&db->c.flushes, 1);
    }
    lsm_edit_release(&e);
    lsm_mem_unref(imm);
    return rc;
}

/* ---- compaction ---- */

struct compaction {
    lsm_version *v; /* referenced */
    int level;      /* inputs: in[0] at level, in[1] at out_level */
    int out_level;
    struct lsm_file **in[2];
    size_t nin[2];
    bool manual; /* never a trivial move: every table is rewritten */
};

static void
compaction_release(struct compaction *c)
{
    free(c->in[0]);
    free(c->in[1]);
    lsm_version_unref(c->v);
    memset(c, 0, sizeof(*c));
}

/* User key range of a set of files. */
static void
range_of(struct lsm_file **f, size_t n, struct lsm_slice *lo,
         struct lsm_slice *hi)
{
    for (size_t i = 0; i < n; i++) {
        struct lsm_slice s = lsm_ikey_user(f[i]->smallest);
        struct lsm_slice l = lsm_ikey_user(f[i]->largest);
        if (i == 0 || lsm_user_cmp(s.p, s.n, lo->p, lo->n) < 0) {
            *lo = s;
        }
        if (i == 0 || lsm_user_cmp(l.p, l.n, hi->p, hi->n) > 0) {
            *hi = l;
        }
    }
}

static uint64_t
bytes_of(struct lsm_file **f, size_t n)
{
    uint64_t b = 0;

    for (size_t i = 0; i < n; i++) {
        b += f[i]->size;
    }
    return b;
}

/* Fill c->in[1] with the files of out_level overlapping c->in[0]. */
static int
add_parents(struct compaction *c)
{
    struct lsm_slice lo;
    struct lsm_slice hi;

    if (c->out_level == c->level || c->nin[0] == 0) {
        return 0;
    }
    range_of(c->in[0], c->nin[0], &lo, &hi);
    return lsm_version_overlapping(c->v, c->out_level, &lo, &hi, &c->in[1],
                                   &c->nin[1]);
}

/* Choose the next automatic compaction of v (mu not held; cmu held). */
static int
pick(lsm_db *db, lsm_version *v, struct compaction *c)
{
    int level = v->cscore_level;
    int rc;

    memset(c, 0, sizeof(*c));
    if (v->cscore < 1.0) {
        return KVD_ENOTFOUND;
    }
    lsm_version_ref(v);
    c->v = v;
    c->level = level;
    c->out_level = level + 1;
    if (level == 0) {
        /* the oldest L0 table and every L0 table overlapping it */
        struct lsm_file *oldest = v->files[0][v->nfiles[0] - 1];
        struct lsm_slice lo = lsm_ikey_user(oldest->smallest);
        struct lsm_slice hi = lsm_ikey_user(oldest->largest);
        rc = lsm_version_overlapping(v, 0, &lo, &hi, &c->in[0], &c->nin[0]);
    } else {
        /* round robin: the first table past where the last one ended */
        struct lsm_slice ptr = db->compact_ptr[level];
        size_t i = 0;
        if (ptr.p != NULL) {
            while (i < v->nfiles[level]) {
                struct lsm_slice l = lsm_ikey_user(v->files[level][i]->largest);
                if (lsm_user_cmp(l.p, l.n, ptr.p, ptr.n) > 0) {
                    break;
                }
                i++;
            }
            if (i == v->nfiles[level]) {
                i = 0;
            }
        }
        c->in[0] = malloc(sizeof(*c->in[0]));
        rc = c->in[0] == NULL ? KVD_ENOMEM : 0;
        if (rc == 0) {
            c->in[0][0] = v->files[level][i];
            c->nin[0] = 1;
        }
    }
    if (rc == 0) {
        rc = add_parents(c);
    }
    if (rc == 0 && level > 0) {
        struct lsm_slice lo;
        struct lsm_slice hi;
        void *np;
        range_of(c->in[0], c->nin[0], &lo, &hi);
        np = malloc(hi.n ? hi.n : 1);
        if (np != NULL) {
            memcpy(np, hi.p, hi.n);
            free((void *)(uintptr_t)db->compact_ptr[level].p);
            db->compact_ptr[level].p = np;
            db->compact_ptr[level].n = hi.n;
        }
    }
    if (rc != 0) {
        compaction_release(c);
    }
    return rc;
}

/* Can key u only be in the inputs? (No level below the output has a
 * table whose range holds it.) */
static bool
is_base_level(const struct compaction *c, struct lsm_slice u)
{
    for (int l = c->out_level + 1; l < LSM_LEVELS; l++) {
        if (lsm_version_overlaps(c->v, l, &u, &u)) {
            return false;
        }
    }
    return true;
}

/* Grandparent tracking: cut an output before it overlaps too much of
 * the level below the output level. */
struct gp_state {
    int level;
    size_t idx;
    uint64_t overlapped;
    bool seen_key;
};

static bool
gp_should_stop(lsm_db *db, const struct compaction *c, struct gp_state *g,
               struct lsm_slice ik)
{
    const lsm_version *v = c->v;

    if (g->level >= LSM_LEVELS) {
        return false;
    }
    while (g->idx < v->nfiles[g->level] &&
           lsm_ikey_cmp(ik, v->files[g->level][g->idx]->largest) > 0) {
        if (g->seen_key) {
            g->overlapped += v->files[g->level][g->idx]->size;
        }
        g->idx++;
    }
    g->seen_key = true;
    if (g->overlapped > LSM_GP_OVERLAP_TABLES * db->opts.table_size) {
        g->overlapped = 0;
        return true;
    }
    return false;
}

static int
trivial_move(lsm_db *db, struct compaction *c)
{
    struct lsm_file *f = c->in[0][0];
    struct lsm_edit e;
    int rc;

    lsm_edit_init(&e);
    rc = lsm_edit_del_file(&e, c->level, f->number);
    if (rc == 0) {
        rc = lsm_edit_add_file(&e, c->out_level, f->number, f->size, f->entries,
                               f->smallest, f->largest);
    }
    if (rc == 0) {
        rc = lsm_log_and_apply(db, &e, false);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.trivial_moves, 1);
    }
    lsm_edit_release(&e);
    return rc;
}

static bool
is_trivial(lsm_db *db, const struct compaction *c)
{
    struct lsm_slice lo;
    struct lsm_slice hi;
    struct lsm_file **gp = NULL;
    size_t ngp = 0;
    uint64_t gpb;

    if (c->manual || c->nin[0] != 1 || c->nin[1] != 0 ||
        c->out_level == c->level) {
        return false;
    }
    if (c->out_level + 1 >= LSM_LEVELS) {
        return true;
    }
    range_of(c->in[0], 1, &lo, &hi);
    if (lsm_version_overlapping(c->v, c->out_level + 1, &lo, &hi, &gp, &ngp) !=
        0) {
        return false;
    }
    gpb = bytes_of(gp, ngp);
    free(gp);
    return gpb <= LSM_GP_OVERLAP_TABLES * db->opts.table_size;
}

/* Give up a compaction that has output files (not yet in the MANIFEST). */
static void
drop_outputs(lsm_db *db, struct lsm_edit *e)
{
    for (size_t i = 0; i < e->nadds; i++) {
        char path[LSM_PATH_BYTES];
        lsm_path(db, path, e->adds[i].number, "sst");
        db->io->unlink(path);
    }
}

static int
run_compaction(lsm_db *db, struct compaction *c)
{
    size_t nkids = c->nin[0] + c->nin[1];
    lsm_it **kids = NULL;
    lsm_it *it = NULL;
    struct keybuf last = {NULL, 0, 0, false};
    struct gp_state gp = {c->out_level + 1, 0, 0, false};
    struct tbuild tb;
    struct lsm_edit e;
    int64_t now = db->host->now_ms(db->host);
    unsigned char *conv = NULL;
    size_t conv_cap = 0;
    uint64_t written = 0;
    uint64_t n = 0;
    size_t nk = 0;
    bool logged = false; /* the edit may be in the MANIFEST */
    int rc = 0;

    if (is_trivial(db, c)) {
        return trivial_move(db, c);
    }
    tb.fd = -1;
    lsm_edit_init(&e);
    kids = calloc(nkids ? nkids : 1, sizeof(*kids));
    if (kids == NULL) {
        rc = KVD_ENOMEM;
        goto out;
    }
    for (int w = 0; w < 2 && rc == 0; w++) {
        for (size_t i = 0; i < c->nin[w] && rc == 0; i++) {
            lsm_table *t;
            rc = lsm_tcache_get(db, c->in[w][i], &t);
            if (rc == 0) {
                /* a compaction's one-pass reads must not evict the hot
                 * blocks readers need */
                rc = lsm_table_iter(t, false, &kids[nk]);
                nk += rc == 0;
                lsm_table_unref(t);
            }
        }
    }
    if (rc == 0) {
        rc = lsm_merge_iter(kids, nk, &it);
        nk = 0;
    }
    if (rc != 0) {
        goto out;
    }
    for (it->ops->seek_first(it); it->ops->valid(it); it->ops->next(it)) {
        struct lsm_slice k = it->ops->key(it);
        struct lsm_slice v = it->ops->value(it);
        struct lsm_slice u = lsm_ikey_user(k);
        uint64_t tr = lsm_ikey_trailer(k);
        int type = (int)(tr & 0xff);
        bool expired;

        if (++n % LSM_CHECK_EVERY == 0) {
            if (atomic_load(&db->closing)) {
                rc = KVD_ECLOSED;
                goto out;
            }
            if (atomic_load(&db->imm_pending)) {
                rc = lsm_flush_imm(db);
                if (rc != 0) {
                    goto out;
                }
            }
        }
        if (last.set && same_user(k, last.p, last.n)) {
            kvd_counter_add(&db->c.dropped_shadowed, 1);
            continue;
        }
        rc = keybuf_set(&last, u.p, u.n);
        if (rc != 0) {
            goto out;
        }
        expired = type == LSM_T_PUTX && v.n >= 8 &&
                  kvd_expired(lsm_val_expiry(v), now);
        if (type == LSM_T_DEL || expired) {
            if (is_base_level(c, u)) {
                kvd_counter_add(type == LSM_T_DEL ? &db->c.dropped_tombstones
                                                  : &db->c.dropped_expired,
                                1);
                continue;
            }
            if (expired) {
                /* keep shadowing what lies below, as a deletion */
                if (k.n > conv_cap) {
                    unsigned char *np = realloc(conv, k.n);
                    if (np == NULL) {
                        rc = KVD_ENOMEM;
                        goto out;
                    }
                    conv = np;
                    conv_cap = k.n;
                }
                memcpy(conv, k.p, u.n);
                kvd_put_le64(conv + u.n, lsm_pack_trailer(tr >> 8, LSM_T_DEL));
                k.p = conv;
                v.p = conv;
                v.n = 0;
                kvd_counter_add(&db->c.dropped_expired, 1);
            }
        }
        if (tb.fd >= 0 && gp_should_stop(db, c, &gp, k)) {
            rc = tb_finish(db, &tb, &e, c->out_level, &written);
            if (rc != 0) {
                goto out;
            }
        } else if (tb.fd < 0) {
            gp_should_stop(db, c, &gp, k);
        }
        if (tb.fd < 0) {
            rc = tb_open(db, &tb);
            if (rc != 0) {
                goto out;
            }
        }
        rc = tb_add(db, &tb, k, v);
        if (rc != 0) {
            goto out;
        }
        if (lsm_tw_size(tb.tw) >= db->opts.table_size) {
            rc = tb_finish(db, &tb, &e, c->out_level, &written);
            if (rc != 0) {
                goto out;
            }
        }
    }
    rc = it->ops->status(it);
    if (rc != 0) {
        lsm_fail(db, rc, "compaction of level %d: reading an input table",
                 c->level);
        goto out;
    }
    if (tb.fd >= 0) {
        rc = tb_finish(db, &tb, &e, c->out_level, &written);
        if (rc != 0) {
            goto out;
        }
    }
    rc = lsm_fsync_dir(db);
    if (rc != 0) {
        lsm_fail_sync(db, rc, "fsync directory %s", db->dir);
        goto out;
    }
    for (int w = 0; w < 2 && rc == 0; w++) {
        int l = w == 0 ? c->level : c->out_level;
        for (size_t i = 0; i < c->nin[w] && rc == 0; i++) {
            rc = lsm_edit_del_file(&e, l, c->in[w][i]->number);
        }
    }
    if (rc == 0) {
        logged = true;
        rc = lsm_log_and_apply(db, &e, false);
    }
    if (rc == 0) {
        kvd_counter_add(&db->c.compactions, 1);
        kvd_counter_add(&db->c.compact_read_bytes,
                        bytes_of(c->in[0], c->nin[0]) +
                            bytes_of(c->in[1], c->nin[1]));
        kvd_counter_add(&db->c.compact_write_bytes, written);
    }
out:
    if (rc != 0) {
        tb_abandon(db, &tb);
        /* outputs no durable edit names can go now; once the append was
         * tried they may be named, and the next open sorts it out */
        if (!logged) {
            drop_outputs(db, &e);
        }
    }
    for (size_t i = 0; i < nk; i++) {
        kids[i]->ops->destroy(kids[i]);
    }
    if (it != NULL) {
        it->ops->destroy(it);
    }
    free(kids);
    free(conv);
    free(last.p);
    lsm_edit_release(&e);
    return rc;
}

static int
compact_once(lsm_db *db)
{
    struct compaction c;
    lsm_version *v;
    int rc;

    pthread_mutex_lock(&db->mu);
    v = db->view->v;
    lsm_version_ref(v);
    pthread_mutex_unlock(&db->mu);
    rc = pick(db, v, &c);
    lsm_version_unref(v);
    if (rc == KVD_ENOTFOUND) {
        return 0;
    }
    if (rc == 0) {
        rc = run_compaction(db, &c);
        compaction_release(&c);
    }
    return rc;
}

/* Merge every table of `level` (and what overlaps it in out_level). */
static int
compact_level(lsm_db *db, int level, int out_level, bool *all_out)
{
    struct compaction c;
    int rc;

    memset(&c, 0, sizeof(c));
    pthread_mutex_lock(&db->mu);
    c.v = db->view->v;
    lsm_version_ref(c.v);
    pthread_mutex_unlock(&db->mu);
    c.level = level;
    c.out_level = out_level;
    c.manual = true;
    rc = lsm_version_overlapping(c.v, level, NULL, NULL, &c.in[0], &c.nin[0]);
    if (rc == 0) {
        rc = add_parents(&c);
    }
    if (rc == 0 && c.nin[0] > 0) {
        *all_out = c.nin[1] == c.v->nfiles[out_level] || level == out_level;
        rc = run_compaction(db, &c);
    }
    compaction_release(&c);
    return rc;
}

int
lsm_compact_all(lsm_db *db, struct kvd_err *err)
{
    int deepest = -1;
    bool rewritten = false;
    int rc;

    pthread_mutex_lock(&db->cmu);
    rc = lsm_flush_imm(db);
    pthread_mutex_lock(&db->mu);
    for (int l = 0; l < LSM_LEVELS; l++) {
        if (db->view->v->nfiles[l] > 0) {
            deepest = l;
        }
    }
    pthread_mutex_unlock(&db->mu);
    if (deepest == 0) {
        deepest = 1;
    }
    for (int l = 0; rc == 0 && l < deepest; l++) {
        rewritten = false;
        rc = compact_level(db, l, l + 1, &rewritten);
    }
    /* the deepest level's tables that no merge above reached are
     * rewritten in place, so every expired key and tombstone goes */
    if (rc == 0 && deepest > 0 && !rewritten) {
        rc = compact_level(db, deepest, deepest, &rewritten);
    }
    pthread_mutex_unlock(&db->cmu);
    lsm_delete_dead(db);
    if (rc != 0) {
        char why[LSM_STATE_BYTES];
        return kvd_err_set(err, rc, "lsm: compact: %s", lsm_why(db, rc, why));
    }
    return 0;
}

/* ---- the background worker ---- */

/* Read-only for lack of space: a pending flush is retried every round,
 * quietly (the first failure was logged); when it gets through there is
 * space again. */
static int
bg_retry(lsm_db *db)
{
    bool imm;
    int rc;

    if (!lsm_retryable(db)) {
        return 0;
    }
    pthread_mutex_lock(&db->mu);
    imm = db->view->imm != NULL;
    pthread_mutex_unlock(&db->mu);
    if (!imm) {
        return 0; /* the next write retries instead */
    }
    pthread_mutex_lock(&db->cmu);
    rc = lsm_flush_imm(db);
    pthread_mutex_unlock(&db->cmu);
    if (rc != 0) {
        return 0;
    }
    pthread_mutex_lock(&db->wlock);
    rc = lsm_resume_locked(db);
    pthread_mutex_unlock(&db->wlock);
    return rc == 0;
}

int
lsm_bg_round(void *arg)
{
    lsm_db *db = arg;
    bool flush;
    bool compact;
    int rc;

    lsm_delete_dead(db);
    if (lsm_readonly(db)) {
        return bg_retry(db);
    }
    pthread_mutex_lock(&db->mu);
    flush = db->view->imm != NULL;
    compact = db->opts.auto_compact && db->view->v->cscore >= 1.0;
    pthread_mutex_unlock(&db->mu);
    if (flush) {
        pthread_mutex_lock(&db->cmu);
        lsm_flush_imm(db);
        pthread_mutex_unlock(&db->cmu);
        lsm_delete_dead(db);
        return 1;
    }
    if (!compact) {
        return 0;
    }
    pthread_mutex_lock(&db->cmu);
    rc = compact_once(db);
    pthread_mutex_unlock(&db->cmu);
    lsm_delete_dead(db);
    /* an I/O failure turned the store read-only; any other failure (out
     * of memory) waits for the next round before trying again */
    return rc == 0;
}
