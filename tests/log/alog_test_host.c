/*
 * alog_test_host.c -- the log engine's own test helpers; the test host
 * itself (fault-injecting I/O, log capture, clocks, scratch directories)
 * is the conformance kit's (tests/conformance/th_host.h).
 */
#include "alog_test_host.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void
th_opts_default(struct alog_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->sync = ALOG_SYNC_NEVER;
    o->segment_size = 64u << 20;
    o->merge_ratio = 0;
    o->merge_interval = 10000;
    o->merge_min_dead = 16u << 20;
    o->corruption = ALOG_CORRUPT_SKIP;
    o->hint_files = 1;
    o->sync_interval = 1000;
}

void
th_last_segment(const char *dir, char *out, size_t outlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char best[64] = "";

    out[0] = '\0';
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n == 13 && strcmp(de->d_name + 8, ".data") == 0 &&
            strcmp(de->d_name, best) > 0) {
            memcpy(best, de->d_name, n + 1);
        }
    }
    closedir(d);
    if (best[0] != '\0') {
        snprintf(out, outlen, "%s/%s", dir, best);
    }
}

void
th_remove_hints(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[4096];

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n > 5 && strcmp(de->d_name + n - 5, ".hint") == 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}
