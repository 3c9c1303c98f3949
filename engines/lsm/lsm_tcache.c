/*
 * lsm_tcache.c -- the table cache: open table readers by file number, so
 * a get does not open a file and read its index and filter each time.
 *
 * Sixteen shards, each a hash table with an LRU list under its own mutex
 * (a leaf lock). The cache holds one reference on each reader; callers
 * get their own (lsm_table_ref) and drop it with lsm_table_unref, so an
 * evicted reader stays usable by whoever still has it and closes its file
 * with the last reference. At most max_open_files readers stay cached.
 * Opening a table happens under the shard lock, so two threads never open
 * the same file twice.
 *
 * The fast path needs no lock at all: the first max_open_files - 16
 * readers opened are kept in their file objects (lsm_file.table, set once
 * by CAS), where a get that holds a version finds them with one atomic
 * load and no reference count traffic; they close when the file object
 * goes (its last version is released). Only beyond that does the LRU
 * above take over, so max_open_files still bounds the open files.
 *
 * The lookup counters of the table layer live in each reader; the cache
 * adds those of the readers it drops to its own totals so stats survive
 * eviction.
 */
#include "lsm_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

static struct lsm_tc_shard *
shard_of(struct lsm_tcache *tc, uint64_t number)
{
    return &tc->shards[(number * 0x9e3779b97f4a7c15ull) >> 60];
}

static size_t
bucket_of(const struct lsm_tc_shard *sh, uint64_t number)
{
    return (size_t)((number * 0xff51afd7ed558ccdull) >> 32) &
           (sh->nbuckets - 1);
}

/* Readers kept by file objects leave this many slots to the LRU. */
#define LSM_TC_LRU_MIN 16

int
lsm_tcache_init(struct lsm_tcache *tc, size_t capacity)
{
    size_t per;
    size_t nb = 16;

    memset(tc, 0, sizeof(*tc));
    tc->pinnable = capacity > LSM_TC_LRU_MIN ? capacity - LSM_TC_LRU_MIN : 0;
    capacity -= (size_t)tc->pinnable;
    per = capacity / LSM_TC_SHARDS;
    tc->per_shard = per < 4 ? 4 : per;
    while (nb < tc->per_shard * 2) {
        nb *= 2;
    }
    for (int i = 0; i < LSM_TC_SHARDS; i++) {
        struct lsm_tc_shard *sh = &tc->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->lru.next = &sh->lru;
        sh->lru.prev = &sh->lru;
        sh->nbuckets = nb;
        sh->buckets = calloc(nb, sizeof(*sh->buckets));
        if (sh->buckets == NULL) {
            return KVD_ENOMEM;
        }
    }
    return 0;
}

static void
add_stats(struct lsm_tcache *tc, lsm_table *t)
{
    struct lsm_table_stats st;

    lsm_table_get_stats(t, &st);
    kvd_counter_add(&tc->bloom_checks, st.bloom_checks);
    kvd_counter_add(&tc->bloom_negatives, st.bloom_negatives);
    kvd_counter_add(&tc->bloom_false_pos, st.bloom_false_pos);
    kvd_counter_add(&tc->block_reads, st.block_reads);
}

/* Unlink e from its shard (lock held); the caller drops the reader. */
static void
ent_remove_locked(struct lsm_tc_shard *sh, struct lsm_tc_ent *e)
{
    struct lsm_tc_ent **pp = &sh->buckets[bucket_of(sh, e->number)];

    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    sh->count--;
}

void
lsm_tcache_release(struct lsm_tcache *tc)
{
    for (int i = 0; i < LSM_TC_SHARDS; i++) {
        struct lsm_tc_shard *sh = &tc->shards[i];
        struct lsm_tc_ent *e = sh->lru.next;
        while (e != NULL && e != &sh->lru) {
            struct lsm_tc_ent *next = e->next;
            lsm_table_unref(e->t);
            free(e);
            e = next;
        }
        free(sh->buckets);
        sh->buckets = NULL;
        pthread_mutex_destroy(&sh->mu);
    }
}

static void
lru_front(struct lsm_tc_shard *sh, struct lsm_tc_ent *e)
{
    e->next = sh->lru.next;
    e->prev = &sh->lru;
    sh->lru.next->prev = e;
    sh->lru.next = e;
}

static int
open_table(lsm_db *db, const struct lsm_file *f, lsm_table **out)
{
    char path[LSM_PATH_BYTES];
    struct kvd_err err;
    int fd;
    int rc;

    lsm_path(db, path, f->number, "sst");
    fd = db->io->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = kvd_errno_status(errno);
        LSM_LOG(db, KVD_LOG_ERROR, "lsm: open %s: %s", path, strerror(errno));
        return rc;
    }
    kvd_err_clear(&err);
    rc = lsm_table_open(db->host, fd, f->size, db->bcache, out, &err);
    if (rc != 0) {
        db->io->close(fd);
        LSM_LOG(db, KVD_LOG_ERROR, "lsm: table %s: %s", path, err.msg);
        return rc;
    }
    kvd_counter_add(&db->tc.opens, 1);
    return 0;
}

/* The LRU path: a referenced reader. */
static int
lru_get(lsm_db *db, const struct lsm_file *f, lsm_table **out)
{
    struct lsm_tcache *tc = &db->tc;
    struct lsm_tc_shard *sh = shard_of(tc, f->number);
    struct lsm_tc_ent *e;
    struct lsm_tc_ent *victim = NULL;
    lsm_table *t;
    int rc;

    pthread_mutex_lock(&sh->mu);
    for (e = sh->buckets[bucket_of(sh, f->number)]; e != NULL; e = e->hnext) {
        if (e->number == f->number) {
            break;
        }
    }
    if (e != NULL) {
        if (sh->lru.next != e) {
            e->prev->next = e->next;
            e->next->prev = e->prev;
            lru_front(sh, e);
        }
        lsm_table_ref(e->t);
        *out = e->t;
        pthread_mutex_unlock(&sh->mu);
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        pthread_mutex_unlock(&sh->mu);
        return KVD_ENOMEM;
    }
    rc = open_table(db, f, &t);
    if (rc != 0) {
        pthread_mutex_unlock(&sh->mu);
        free(e);
        return rc;
    }
    e->number = f->number;
    e->t = t;
    e->hnext = sh->buckets[bucket_of(sh, f->number)];
    sh->buckets[bucket_of(sh, f->number)] = e;
    lru_front(sh, e);
    sh->count++;
    if (sh->count > tc->per_shard) {
        victim = sh->lru.prev;
        ent_remove_locked(sh, victim);
    }
    lsm_table_ref(t);
    *out = t;
    pthread_mutex_unlock(&sh->mu);
    if (victim != NULL) {
        add_stats(tc, victim->t);
        lsm_table_unref(victim->t);
        free(victim);
    }
    return 0;
}

int
lsm_tcache_borrow(lsm_db *db, struct lsm_file *f, lsm_table **out, bool *owned)
{
    struct lsm_tcache *tc = &db->tc;
    lsm_table *t = atomic_load_explicit(&f->table, memory_order_acquire);
    lsm_table *expect = NULL;
    int rc;

    if (t != NULL) {
        *out = t;
        *owned = false;
        return 0;
    }
    if (atomic_fetch_add(&tc->pinned, 1) >= tc->pinnable) {
        atomic_fetch_sub(&tc->pinned, 1);
        *owned = true;
        return lru_get(db, f, out);
    }
    rc = open_table(db, f, &t);
    if (rc != 0) {
        atomic_fetch_sub(&tc->pinned, 1);
        return rc;
    }
    if (!atomic_compare_exchange_strong(&f->table, &expect, t)) {
        /* another thread got there first: use its reader */
        lsm_table_unref(t);
        atomic_fetch_sub(&tc->pinned, 1);
        t = expect;
    }
    *out = t;
    *owned = false;
    return 0;
}

int
lsm_tcache_get(lsm_db *db, struct lsm_file *f, lsm_table **out)
{
    bool owned;
    int rc = lsm_tcache_borrow(db, f, out, &owned);

    if (rc == 0 && !owned) {
        lsm_table_ref(*out);
    }
    return rc;
}

void
lsm_tcache_file_release(void *ctx, struct lsm_file *f)
{
    lsm_db *db = ctx;
    lsm_table *t = atomic_exchange(&f->table, NULL);

    if (t != NULL) {
        add_stats(&db->tc, t);
        lsm_table_unref(t);
        atomic_fetch_sub(&db->tc.pinned, 1);
    }
}

void
lsm_tcache_evict(lsm_db *db, uint64_t number)
{
    struct lsm_tcache *tc = &db->tc;
    struct lsm_tc_shard *sh = shard_of(tc, number);
    struct lsm_tc_ent *e;

    pthread_mutex_lock(&sh->mu);
    for (e = sh->buckets[bucket_of(sh, number)]; e != NULL; e = e->hnext) {
        if (e->number == number) {
            ent_remove_locked(sh, e);
            break;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    if (e != NULL) {
        add_stats(tc, e->t);
        lsm_table_unref(e->t);
        free(e);
    }
}

void
lsm_tcache_stats(lsm_db *db, struct lsm_table_stats *st, uint64_t *open_tables,
                 uint64_t *index_bytes)
{
    struct lsm_tcache *tc = &db->tc;

    st->bloom_checks = kvd_counter_get(&tc->bloom_checks);
    st->bloom_negatives = kvd_counter_get(&tc->bloom_negatives);
    st->bloom_false_pos = kvd_counter_get(&tc->bloom_false_pos);
    st->block_reads = kvd_counter_get(&tc->block_reads);
    *open_tables = kvd_counter_get(&tc->pinned);
    *index_bytes = 0;
    for (int i = 0; i < LSM_TC_SHARDS; i++) {
        struct lsm_tc_shard *sh = &tc->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (struct lsm_tc_ent *e = sh->lru.next; e != &sh->lru; e = e->next) {
            struct lsm_table_stats ts;
            lsm_table_get_stats(e->t, &ts);
            st->bloom_checks += ts.bloom_checks;
            st->bloom_negatives += ts.bloom_negatives;
            st->bloom_false_pos += ts.bloom_false_pos;
            st->block_reads += ts.block_reads;
            *index_bytes += lsm_table_mem_bytes(e->t);
            (*open_tables)++;
        }
        pthread_mutex_unlock(&sh->mu);
    }
}
