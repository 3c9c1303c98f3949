/*
 * kvd/status.h -- status codes, the error buffer and the export macro.
 *
 * Part of the installed plugin ABI. Every kvd function that can fail returns
 * an int: 0 is success, a negative value is one of the codes below, and a
 * positive value is only ever a count where a function documents it.
 *
 * Codes that have an errno meaning are -errno (KVD_EINVAL == -EINVAL);
 * kvd's own codes sit in a reserved range, -30000 .. -30099, so the two can
 * never collide. A code, once published, keeps its number forever.
 *
 * Cold paths (load, open, config, batch validation) also fill a caller-owned
 * struct kvd_err with a human-readable message; hot paths return the code
 * alone.
 */
#ifndef KVD_STATUS_H
#define KVD_STATUS_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KVD_EXPORT         __attribute__((visibility("default")))
#define KVD_PRINTF(fi, ai) __attribute__((format(printf, fi, ai)))
#else
#define KVD_EXPORT
#define KVD_PRINTF(fi, ai)
#endif

/*
 * XX(NAME, value, "message"). The one table generates the enum,
 * kvd_strerror() and kvd_status_name() (below), so they cannot drift.
 */
#define KVD_STATUS_MAP(XX)                                                     \
    XX(OK, 0, "success")                                                       \
    XX(EIO, -EIO, "I/O error")                                                 \
    XX(ENOMEM, -ENOMEM, "out of memory")                                       \
    XX(EINVAL, -EINVAL, "invalid argument")                                    \
    XX(ENOSPC, -ENOSPC, "no space left on device")                             \
    XX(EAGAIN, -EAGAIN, "need more input")                                     \
    XX(EBUSY, -EBUSY, "resource busy")                                         \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                     \
    XX(ENOTFOUND, -30000, "not found")                                         \
    XX(ETOOBIG, -30001, "too large")                                           \
    XX(ECORRUPT, -30002, "data corruption detected")                           \
    XX(ENOTSUP, -30003, "not supported")                                       \
    XX(EABI, -30004, "plugin ABI mismatch")                                    \
    XX(EREADONLY, -30005, "store is read-only after an earlier error")         \
    XX(EUNAVAIL, -30006, "backend unavailable")                                \
    XX(ECROSSSLOT, -30007, "batch spans partitions")                           \
    XX(EEXIST, -30008, "already exists")                                       \
    XX(ECONFIG, -30009, "invalid configuration")                               \
    XX(ELOCKED, -30010, "data directory is locked by another process")         \
    XX(ECLOSED, -30011, "store is closed")                                     \
    XX(EPROTO, -30012, "protocol error")                                       \
    XX(ENOPLUGIN, -30013, "plugin not found")                                  \
    XX(ENOAUTH, -30014, "authentication required or refused")                  \
    XX(EABORT, -30015, "transaction discarded")                                \
    XX(EROFS, -EROFS, "read-only file system")

enum kvd_status {
#define KVD_XX_ENUM(name, value, msg) KVD_##name = (value),
    KVD_STATUS_MAP(KVD_XX_ENUM)
#undef KVD_XX_ENUM
};

/*
 * The message of a status ("not found"), or "unknown status -N" for a code
 * not in the table (in a buffer of the calling thread, valid until its next
 * call with an unknown code). Inline, so plugins need no host symbol for
 * it; the core and every plugin print the same words.
 */
static inline const char *
kvd_strerror(int code)
{
    static _Thread_local char unknown[32];

    switch (code) {
#define KVD_XX_MSG(name, value, msg)                                           \
    case KVD_##name:                                                           \
        return msg;
        KVD_STATUS_MAP(KVD_XX_MSG)
#undef KVD_XX_MSG
    default:
        snprintf(unknown, sizeof(unknown), "unknown status %d", code);
        return unknown;
    }
}

/* The name of a status ("KVD_ENOTFOUND"); "KVD_UNKNOWN" for an unknown
 * code. Static storage. */
static inline const char *
kvd_status_name(int code)
{
    switch (code) {
#define KVD_XX_NAME(name, value, msg)                                          \
    case KVD_##name:                                                           \
        return "KVD_" #name;
        KVD_STATUS_MAP(KVD_XX_NAME)
#undef KVD_XX_NAME
    default:
        return "KVD_UNKNOWN";
    }
}

/*
 * Whether the struct at `ptr`, of type `type` as this code was compiled
 * against, really has `member`: every struct that crosses the plugin
 * boundary starts with (or carries) a `struct_size` set by whoever built
 * it, and only grows at its end (see host.h, "ABI minors"). So a member
 * exists when struct_size reaches past its end. This says nothing about
 * a function pointer being non-NULL; optional methods are checked with
 * `KVD_HAS(p, type, m) && p->m != NULL`.
 */
#define KVD_HAS(ptr, type, member)                                             \
    ((size_t)(ptr)->struct_size >=                                             \
     offsetof(type, member) + sizeof(((type *)0)->member))

/*
 * Caller-owned error buffer for cold paths. `code` repeats the returned
 * status; `msg` is lowercase, has no trailing period, and names the object
 * and the failed call ("open data/0007.log: Permission denied").
 */
#define KVD_ERR_MSG_BYTES 256

struct kvd_err {
    int code;
    char msg[KVD_ERR_MSG_BYTES];
};

/*
 * Record `code` and a formatted message in `err` (which may be NULL) and
 * return `code`, so a failure reads `return kvd_err_set(err, ...);`.
 * Inline so that plugins need no host symbol for it.
 */
static inline int KVD_PRINTF(3, 4)
    kvd_err_set(struct kvd_err *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static inline void
kvd_err_clear(struct kvd_err *err)
{
    if (err != NULL) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

#ifdef __cplusplus
}
#endif

#endif /* KVD_STATUS_H */
