/*
 * tests/plugins/broken_frontend.c -- frontend plugins with one defect each.
 *
 * Built by tests/plugins/CMakeLists.txt into kvd_frontend_<case>.so:
 *
 *   (none)             a well-formed frontend the loader must accept
 *   BROKEN_ABI         abi_version is KVD_ABI_VERSION + 98
 *   BROKEN_NULL_START  the required start method is NULL
 *
 * As for the broken engines, nothing here may ever run: create refuses.
 */
#include <stddef.h>

#include "kvd/frontend.h"

static int
broken_create(const struct kvd_host *host, const struct kvd_server *srv,
              const void *opts, kvd_frontend **out, struct kvd_err *err)
{
    (void)host;
    (void)srv;
    (void)opts;
    *out = NULL;
    return kvd_err_set(err, KVD_ENOTSUP, "test plugin: create not supported");
}

#ifndef BROKEN_NULL_START
static int
broken_start(kvd_frontend *fe, struct kvd_err *err)
{
    (void)fe;
    return kvd_err_set(err, KVD_ENOTSUP, "test plugin: start not supported");
}
#endif

static void
broken_stop(kvd_frontend *fe)
{
    (void)fe;
}

static void
broken_destroy(kvd_frontend *fe)
{
    (void)fe;
}

#ifdef BROKEN_ABI
#define BROKEN_ABI_VERSION (KVD_ABI_VERSION + 98)
#define BROKEN_NAME_STR    "fbadabi"
#else
#define BROKEN_ABI_VERSION KVD_ABI_VERSION
#endif

#ifdef BROKEN_NULL_START
#define BROKEN_START    NULL
#define BROKEN_NAME_STR "fnullstart"
#else
#define BROKEN_START broken_start
#endif

#ifndef BROKEN_NAME_STR
#define BROKEN_NAME_STR "fgood"
#endif

KVD_EXPORT const struct kvd_frontend_vtable kvd_frontend_entry = {
    .abi_version = BROKEN_ABI_VERSION,
    .struct_size = sizeof(struct kvd_frontend_vtable),
    .name = BROKEN_NAME_STR,
    .version = "0",
    .description = "loader test plugin",
    .create = broken_create,
    .start = BROKEN_START,
    .stop = broken_stop,
    .destroy = broken_destroy,
};
