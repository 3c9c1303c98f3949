/*
 * frontends/http/http_proc.c -- the process_* metrics of /metrics, read
 * from /proc/self as the Prometheus client libraries do, so dashboards
 * made for any exporter work with kvd.
 */
#include "http.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The system boot time (seconds since the epoch), from /proc/stat's
 * btime line; -1 when unknown. */
static double
boot_time(void)
{
    char line[256];
    double bt = -1;
    FILE *f = fopen("/proc/stat", "re");

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            bt = (double)v;
            break;
        }
    }
    fclose(f);
    return bt;
}

/* Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize) and 24 (rss)
 * of /proc/self/stat (proc(5)). The command name (field 2) may hold
 * spaces and parentheses, so parsing starts after its last ')'. */
static void
read_stat(struct http_proc *p)
{
    char buf[1024];
    unsigned long long ut, st, start, vsize, rss;
    long tick = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "re");
    size_t n;
    char *rp;

    if (f == NULL) {
        return;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    if (rp == NULL || tick <= 0 || page <= 0) {
        return;
    }
    /* From field 3 (state) on. */
    if (sscanf(rp + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
               "%*d %*d %*d %*d %*d %*d %llu %llu %llu",
               &ut, &st, &start, &vsize, &rss) != 5) {
        return;
    }
    p->cpu_seconds = (double)(ut + st) / (double)tick;
    p->virtual_bytes = (double)vsize;
    p->resident_bytes = (double)rss * (double)page;
    double bt = boot_time();
    if (bt >= 0) {
        p->start_time = bt + (double)start / (double)tick;
    }
}

static void
read_fds(struct http_proc *p)
{
    struct rlimit rl;
    DIR *d = opendir("/proc/self/fd");

    if (d != NULL) {
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.') {
                n++;
            }
        }
        closedir(d);
        p->open_fds = (double)(n - 1); /* not the directory's own fd */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        p->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
    }
}

void
http_proc_read(struct http_proc *p)
{
    p->cpu_seconds = -1;
    p->start_time = -1;
    p->resident_bytes = -1;
    p->virtual_bytes = -1;
    p->open_fds = -1;
    p->max_fds = -1;
    read_stat(p);
    read_fds(p);
}
