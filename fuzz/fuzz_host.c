/*
 * fuzz/fuzz_host.c -- the quiet host of the engine targets (fuzz_util.h).
 */
#include "fuzz_util.h"

#include "core/hostsvc.h"
#include "kvd/host.h"

static void
fz_log(const struct kvd_host *host, int level, const char *fmt, ...)
{
    (void)host;
    (void)level;
    (void)fmt;
}

static int
fz_log_enabled(const struct kvd_host *host, int level)
{
    (void)host;
    (void)level;
    return 0;
}

static int
fz_nosync(int fd)
{
    (void)fd;
    return 0;
}

const struct kvd_host *
fz_host(void)
{
    static struct kvd_host host;
    static struct kvd_io io;

    if (host.struct_size == 0) {
        host = *kvd_hostsvc_default();
        io = *host.io;
        io.fsync = fz_nosync;
        io.fdatasync = fz_nosync;
        host.io = &io;
        host.log = fz_log;
        host.log_enabled = fz_log_enabled;
    }
    return &host;
}
