/*
 * tests/plugins/broken_engine.c -- engine plugins with one defect each.
 *
 * Built several times by tests/plugins/CMakeLists.txt, once per BROKEN_*
 * switch, into kvd_engine_<case>.so files the loader tests try to load:
 *
 *   (none)            a well-formed plugin the loader must accept
 *   BROKEN_NO_SYMBOL  exports a look-alike symbol but no kvd_engine_entry
 *   BROKEN_ABI        abi_version is KVD_ABI_VERSION + 98
 *   BROKEN_SIZE       struct_size is 16 bytes (an ABI older than any real)
 *   BROKEN_NULL_GET   the required get method is NULL
 *   BROKEN_NAME       the vtable calls itself "someone-else"
 *   OLD_V1            not broken: the first ABI 1 vtable, ending at
 *                     instance_caps (before multi was appended); the
 *                     loader must accept it and treat multi as absent
 *
 * The loader must refuse every broken case before calling into the plugin,
 * so the methods only have to exist; each answers KVD_ENOTSUP, and open
 * refuses with a message so that a loader which did run plugin code would
 * fail the test loudly instead of crashing.
 */
#include <stddef.h>

#include "kvd/engine.h"

/* The numbers the loader tests look for in the refusal messages. */
#define BROKEN_ABI_FOUND  (KVD_ABI_VERSION + 98)
#define BROKEN_SIZE_FOUND 16

static int
broken_open(const struct kvd_host *host, const void *opts, const char *dir,
            kvd_engine **out, struct kvd_err *err)
{
    (void)host;
    (void)opts;
    (void)dir;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP, "test plugin: open not supported");
}

static int
broken_close(kvd_engine *e, struct kvd_err *err)
{
    (void)e;
    (void)err;
    return 0;
}

#ifndef BROKEN_NULL_GET
static int
broken_get(kvd_engine *e, const void *key, size_t klen, struct kvd_val *out)
{
    (void)e;
    (void)key;
    (void)klen;
    (void)out;
    return KVD_ENOTSUP;
}
#endif

static int
broken_put(kvd_engine *e, const void *key, size_t klen, const void *val,
           size_t vlen, int64_t expire_ms)
{
    (void)e;
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)expire_ms;
    return KVD_ENOTSUP;
}

static int
broken_del(kvd_engine *e, const void *key, size_t klen)
{
    (void)e;
    (void)key;
    (void)klen;
    return KVD_ENOTSUP;
}

static int
broken_iter_open(kvd_engine *e, const struct kvd_iter_opts *opts,
                 kvd_iter **out, struct kvd_err *err)
{
    (void)e;
    (void)opts;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP, "test plugin: no iteration");
}

static int
broken_iter_next(kvd_iter *it, struct kvd_entry *out)
{
    (void)it;
    (void)out;
    return KVD_ENOTFOUND;
}

static void
broken_iter_close(kvd_iter *it)
{
    (void)it;
}

static int
broken_stats(kvd_engine *e, struct kvd_engine_stats *st, kvd_stat_fn fn,
             void *ctx)
{
    (void)e;
    (void)st;
    (void)fn;
    (void)ctx;
    return KVD_ENOTSUP;
}

#ifdef BROKEN_NO_SYMBOL
#define BROKEN_ENTRY kvd_engine_entry_v0
#else
#define BROKEN_ENTRY kvd_engine_entry
#endif

#ifdef BROKEN_ABI
#define BROKEN_ABI_VERSION BROKEN_ABI_FOUND
#else
#define BROKEN_ABI_VERSION KVD_ABI_VERSION
#endif

#ifdef BROKEN_SIZE
#define BROKEN_STRUCT_SIZE BROKEN_SIZE_FOUND
#elif defined(OLD_V1)
#define BROKEN_STRUCT_SIZE KVD_ENGINE_VTABLE_MIN_SIZE
#else
#define BROKEN_STRUCT_SIZE sizeof(struct kvd_engine_vtable)
#endif

#ifdef BROKEN_NAME
#define BROKEN_NAME_STR "someone-else"
#elif defined(BROKEN_NO_SYMBOL)
#define BROKEN_NAME_STR "nosym"
#elif defined(BROKEN_ABI)
#define BROKEN_NAME_STR "badabi"
#elif defined(BROKEN_SIZE)
#define BROKEN_NAME_STR "shortsize"
#elif defined(BROKEN_NULL_GET)
#define BROKEN_NAME_STR "nullget"
#elif defined(OLD_V1)
#define BROKEN_NAME_STR "oldv1"
#else
#define BROKEN_NAME_STR "good"
#endif

#ifdef BROKEN_NULL_GET
#define BROKEN_GET NULL
#else
#define BROKEN_GET broken_get
#endif

KVD_EXPORT const struct kvd_engine_vtable BROKEN_ENTRY = {
    .abi_version = BROKEN_ABI_VERSION,
    .struct_size = BROKEN_STRUCT_SIZE,
    .name = BROKEN_NAME_STR,
    .version = "0",
    .description = "loader test plugin",
    .caps = 0,
    .open = broken_open,
    .close = broken_close,
    .get = BROKEN_GET,
    .put = broken_put,
    .del = broken_del,
    .iter_open = broken_iter_open,
    .iter_next = broken_iter_next,
    .iter_close = broken_iter_close,
    .stats = broken_stats,
};
