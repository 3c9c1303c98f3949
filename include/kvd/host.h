/*
 * kvd/host.h -- services the host hands to every plugin, and the option
 * tables plugins use to declare their configuration.
 *
 * Part of the installed plugin ABI. Plugins never link against host symbols:
 * everything they need from the host (logging, the clock, file I/O) arrives
 * through struct kvd_host, so a plugin built outside this tree loads into any
 * kvd with the same ABI major.
 *
 * Growth rule for every struct here: fields are only ever appended. A reader
 * checks `struct_size` (KVD_HAS in status.h) before touching a field added
 * after the first release of an ABI major.
 */
#ifndef KVD_HOST_H
#define KVD_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvd/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ABI version of the whole plugin interface (this header, engine.h and
 * frontend.h). The loader requires an exact match of the major and refuses
 * a vtable smaller than the first release of that major.
 *
 * ABI minors. Within a major, structs only grow at their end, and every
 * appended member says "ABI 1.N" in its comment: the minor that brought
 * it. A plugin built against minor N loads into a host of any minor of the
 * same major; each side reads a member of the other's struct only when
 * that struct's struct_size covers it (KVD_HAS), and otherwise falls back
 * to what the older minor did. KVD_ABI_MINOR is the minor of these
 * headers; nothing checks it at load time (struct_size is what counts),
 * it names the level a plugin was written for.
 *
 *   1.0  the engine vtable up to instance_caps, the frontend vtable, the
 *        store API, the command API up to split, struct kvd_host up to
 *        request_shutdown
 *   1.1  command API: session_set_password, session_proto
 *   1.2  command API: stats
 *   1.3  engine vtable: multi; command API: batch_create .. batch_clear
 *   1.4  struct kvd_host: mono_ns; engines: KVD_CAP_DURABLE, struct
 *        kvd_engine_stats.approximate; the contract is simpler: the host
 *        validates keys, values and batch ops before any engine call, and
 *        deletes whose answer it does not need come as one-op batches
 *   1.5  engine and frontend vtables: check_options; command API:
 *        listening (the bound TCP port)
 *   1.6  struct kvd_io: fallocate
 *   1.7  struct kvd_io: writeback
 */
#define KVD_ABI_VERSION 1
#define KVD_ABI_MINOR   7

/* Log levels, most severe first. */
enum kvd_log_level {
    KVD_LOG_ERROR = 0,
    KVD_LOG_WARN = 1,
    KVD_LOG_INFO = 2,
    KVD_LOG_DEBUG = 3,
};

/*
 * File I/O table. Every persistent engine does its file I/O through this
 * table rather than calling the C library directly, so tests can make the
 * Nth write or fsync fail (EIO, ENOSPC) and check what the engine does.
 * Each function has the POSIX signature and semantics of its namesake
 * (return -1 and set errno on failure).
 */
struct kvd_io {
    uint32_t struct_size;
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    ssize_t (*write)(int fd, const void *buf, size_t n);
    int (*fsync)(int fd);
    int (*fdatasync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*rename)(const char *from, const char *to);
    int (*unlink)(const char *path);
    int (*mkdir)(const char *path, mode_t mode);
    /* ABI 1.6. Reserve the bytes [off, off + len) of the file so that
     * later writes to them (also through a shared map) cannot fail for
     * lack of space, extending the file with zeros when it is shorter:
     * posix_fallocate(3), but returning -1 with errno set on failure.
     * Check KVD_HAS and NULL: an older host lacks it. */
    int (*fallocate)(int fd, off_t off, off_t len);
    /* ABI 1.7. Start writing back the dirty cached pages of the bytes
     * [off, off + len) of the file and return without waiting for them:
     * sync_file_range(2) with SYNC_FILE_RANGE_WRITE on Linux. It makes
     * nothing durable (fdatasync still must); it spreads the writes out
     * so that a later fdatasync has less to wait for. 0 also where the
     * platform or file system cannot (nothing done); -1 with errno set
     * on failure (EIO, ENOSPC, ENOMEM). Check KVD_HAS and NULL: an older
     * host lacks it. */
    int (*writeback)(int fd, off_t off, off_t len);
    /* ABI 1 appends here only. */
};

/*
 * Host services. Borrowed by the plugin: valid from open/create until
 * close/destroy returns. All functions are thread-safe.
 */
struct kvd_host {
    uint32_t abi_version; /* KVD_ABI_VERSION */
    uint32_t struct_size; /* sizeof(struct kvd_host) */
    void *ctx;            /* host-private, pass back unchanged */

    /* printf-style logging; no trailing newline. Cheap when filtered. */
    void (*log)(const struct kvd_host *host, int level, const char *fmt, ...)
        KVD_PRINTF(3, 4);
    /* true when `level` would be written (skip building costly messages) */
    int (*log_enabled)(const struct kvd_host *host, int level);

    /* Wall clock, milliseconds since the Unix epoch. Expiry times are
     * compared against this clock; tests may replace it. */
    int64_t (*now_ms)(const struct kvd_host *host);

    /* File I/O; see struct kvd_io. Never NULL. */
    const struct kvd_io *io;

    /* Ask the server to shut down gracefully (stdin EOF, fatal plugin
     * error). Safe from any thread; returns at once. */
    void (*request_shutdown)(const struct kvd_host *host, const char *why);

    /* ABI 1.4. Monotonic clock in nanoseconds from an arbitrary origin,
     * for intervals and timeouts (never for expiry, which is wall time).
     * Tests may replace it. Read it through kvd_mono_ns() of the engine
     * toolkit (kvd/kit_clock.h), which falls back to CLOCK_MONOTONIC when
     * an older host lacks it. */
    int64_t (*mono_ns)(const struct kvd_host *host);

    /* ABI 1 appends here only. */
};

/*
 * Declarative options. A plugin lists its options in a table terminated by
 * an entry with name == NULL; the host parses the plugin's INI section into
 * a zeroed struct of `options_size` bytes (fields at `offset`), applying
 * defaults and checking types, ranges and enums, and reports errors as
 * "file:line: [section] key = value: expected ...". The same table
 * produces `kvd --list-options` and docs/config.md, and lets
 * `kvd --check-config` validate a plugin's section without opening it.
 */
enum kvd_opt_type {
    KVD_OPT_BOOL = 1, /* int: yes/no, true/false, on/off, 1/0 */
    KVD_OPT_INT,      /* int64_t in [min, max] */
    KVD_OPT_SIZE,     /* uint64_t bytes; suffixes k, m, g (powers of 2) */
    KVD_OPT_DURATION, /* int64_t milliseconds; suffixes ms, s, m, h */
    KVD_OPT_ENUM,     /* int: index into `choices` */
    KVD_OPT_STRING,   /* char *: host-owned, valid until close/destroy */
    KVD_OPT_OCTAL,    /* int: file mode such as 0600 */
};

/*
 * Constraints an option may carry, or-ed into `type`
 * (KVD_OPT_INT | KVD_OPT_POW2). They are data like the rest of the table,
 * so the host checks them while parsing and `kvd --check-config` refuses
 * what open/create would refuse without calling any plugin code. A host
 * older than a flag refuses the table ("default ... is invalid") rather
 * than ignore a constraint it does not know.
 *   POW2     INT, SIZE: a power of two.
 *   LISTEN   STRING: "host:port", "[v6addr]:port", ":port" or "port"
 *            (port 0 to 65535; no host is 127.0.0.1), or empty for none;
 *            the host also checks that the host resolves.
 *   NEWFILE  STRING: a file the plugin creates (a socket), relative to the
 *            working directory, or empty: its directory must exist and be
 *            writable.
 *   SECRET   STRING: a password or token, empty for none. The host warns at
 *            start when the section listens beyond loopback (a LISTEN
 *            option) while every SECRET option of the section is empty.
 */
#define KVD_OPT_TYPE_MASK 0xff /* the enum kvd_opt_type part of `type` */
#define KVD_OPT_POW2      0x100
#define KVD_OPT_LISTEN    0x200
#define KVD_OPT_NEWFILE   0x400
#define KVD_OPT_SECRET    0x800

struct kvd_option {
    const char *name;           /* INI key; NULL ends the table */
    int type;                   /* enum kvd_opt_type | KVD_OPT_ flags */
    const char *def;            /* default, written as in the INI file */
    int64_t min;                /* INT, SIZE, DURATION: inclusive bounds */
    int64_t max;                /* (both 0 = unbounded) */
    size_t offset;              /* offsetof(plugin's options struct, field) */
    const char *const *choices; /* ENUM: NULL-terminated list of names */
    const char *help;           /* one line for docs and --list-options */
};

#ifdef __cplusplus
}
#endif

#endif /* KVD_HOST_H */
