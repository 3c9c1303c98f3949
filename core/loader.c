/*
 * core/loader.c -- find, dlopen and validate plugins.
 *
 * The entry symbol is a const vtable object, not a function, so everything
 * the loader checks (ABI version, struct size, name, required methods) is
 * plain data read before a single instruction of the plugin runs. dlopen
 * uses RTLD_NOW (unresolved symbols fail here, not mid-request) and
 * RTLD_LOCAL (plugins cannot see each other's symbols).
 */
#include "core/loader.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

struct kvd_plugin {
    void *handle;
    char *path;
};

/*
 * dlopen runs the file's constructors, so a plugin is trusted exactly as
 * much as whoever can write it or its directory. Refuse a directory or
 * file that is not owned by root or by kvd's own user, or that another
 * user may write: writable by others, or by a group other than root's or
 * kvd's own (a Debian user-private group). `what` is "plugin directory"
 * or "plugin".
 */
static int
check_trusted(const char *path, const char *what, struct kvd_err *err)
{
    struct stat st;
    uid_t me = geteuid();

    if (stat(path, &st) != 0) {
        return 0; /* missing: the caller says what exists instead */
    }
    if (st.st_uid != 0 && st.st_uid != me) {
        return kvd_err_set(err, KVD_ENOPLUGIN,
                           "%s %s is owned by uid %u, not by root or kvd's "
                           "user (uid %u): refusing to load code from it",
                           what, path, (unsigned)st.st_uid, (unsigned)me);
    }
    if ((st.st_mode & S_IWOTH) ||
        ((st.st_mode & S_IWGRP) && st.st_gid != 0 && st.st_gid != getegid())) {
        return kvd_err_set(err, KVD_ENOPLUGIN,
                           "%s %s is writable by other users (mode %04o): "
                           "refusing to load code from it (chmod go-w)",
                           what, path, (unsigned)(st.st_mode & 07777));
    }
    return 0;
}

static bool
dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *
kvd_loader_default_dir(void)
{
    static char exe_rel[PATH_MAX];
    const char *env = getenv("KVD_PLUGIN_DIR");
    char exe[PATH_MAX];
    ssize_t n;

    if (env != NULL && env[0] != '\0') {
        return env;
    }
    /* Running from the build tree: build/core/kvd -> build/plugins. */
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            int r = snprintf(exe_rel, sizeof(exe_rel), "%s/../plugins", exe);
            if (r > 0 && (size_t)r < sizeof(exe_rel) && dir_exists(exe_rel)) {
                return exe_rel;
            }
            /* Installed under any prefix: PREFIX/bin/kvd ->
             * PREFIX/LIBDIR/kvd, so `cmake --install --prefix` works. */
            r = snprintf(exe_rel, sizeof(exe_rel), "%s/../%s", exe,
                         KVD_PLUGIN_REL_DIR);
            if (r > 0 && (size_t)r < sizeof(exe_rel) && dir_exists(exe_rel)) {
                return exe_rel;
            }
        }
    }
    if (dir_exists(KVD_PLUGIN_INSTALL_DIR)) {
        return KVD_PLUGIN_INSTALL_DIR;
    }
    return KVD_PLUGIN_BUILD_DIR;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void
kvd_loader_list(const char *dir, const char *kind, char *buf, size_t len)
{
    char prefix[32];
    char *names[128];
    size_t count = 0, plen, used = 0;
    DIR *d;
    struct dirent *de;

    snprintf(prefix, sizeof(prefix), "kvd_%s_", kind);
    plen = strlen(prefix);
    snprintf(buf, len, "none");
    d = opendir(dir);
    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL && count < 128) {
        size_t n = strlen(de->d_name);
        if (n > plen + 3 && strncmp(de->d_name, prefix, plen) == 0 &&
            strcmp(de->d_name + n - 3, ".so") == 0) {
            names[count] = strndup(de->d_name + plen, n - plen - 3);
            if (names[count] != NULL) {
                count++;
            }
        }
    }
    closedir(d);
    qsort(names, count, sizeof(names[0]), name_cmp);
    for (size_t i = 0; i < count; i++) {
        int r =
            snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
        if (r > 0 && (size_t)r < len - used) {
            used += (size_t)r;
        }
        free(names[i]);
    }
}

/* Check an engine vtable. Returns 0 or fills err. */
static int
check_engine(const char *path, const struct kvd_engine_vtable *vt,
             struct kvd_err *err)
{
    const char *missing = NULL;

    /* Methods appended within ABI 1 (multi onwards) are optional: a
     * plugin built before them has a smaller struct_size and the store
     * treats them as NULL. */
    if (vt->struct_size < KVD_ENGINE_VTABLE_MIN_SIZE) {
        return kvd_err_set(err, KVD_EABI,
                           "%s: engine vtable struct_size mismatch: expected "
                           "at least %zu, found %u",
                           path, (size_t)KVD_ENGINE_VTABLE_MIN_SIZE,
                           (unsigned)vt->struct_size);
    }
    if (vt->name == NULL || vt->name[0] == '\0') {
        return kvd_err_set(err, KVD_EABI, "%s: engine vtable has no name",
                           path);
    }
#define REQUIRE(m)                                                             \
    if (missing == NULL && vt->m == NULL)                                      \
    missing = #m
    REQUIRE(open);
    REQUIRE(close);
    REQUIRE(get);
    REQUIRE(put);
    REQUIRE(del);
    REQUIRE(iter_open);
    REQUIRE(iter_next);
    REQUIRE(iter_close);
    REQUIRE(stats);
    if (vt->caps & (KVD_CAP_ATOMIC_BATCH | KVD_CAP_BATCH_PARTITIONED)) {
        REQUIRE(batch);
    }
#undef REQUIRE
    if (missing != NULL) {
        return kvd_err_set(err, KVD_EABI,
                           "%s: engine '%s' has no %s method, which is "
                           "required",
                           path, vt->name, missing);
    }
    if (vt->options != NULL && vt->options_size == 0) {
        return kvd_err_set(err, KVD_EABI,
                           "%s: engine '%s' declares options but "
                           "options_size is 0",
                           path, vt->name);
    }
    return 0;
}

static int
check_frontend(const char *path, const struct kvd_frontend_vtable *vt,
               struct kvd_err *err)
{
    const char *missing = NULL;

    if (vt->struct_size < sizeof(*vt)) {
        return kvd_err_set(err, KVD_EABI,
                           "%s: frontend vtable struct_size mismatch: "
                           "expected at least %zu, found %u",
                           path, sizeof(*vt), (unsigned)vt->struct_size);
    }
    if (vt->name == NULL || vt->name[0] == '\0') {
        return kvd_err_set(err, KVD_EABI, "%s: frontend vtable has no name",
                           path);
    }
    if (vt->create == NULL) {
        missing = "create";
    } else if (vt->start == NULL) {
        missing = "start";
    } else if (vt->stop == NULL) {
        missing = "stop";
    } else if (vt->destroy == NULL) {
        missing = "destroy";
    }
    if (missing != NULL) {
        return kvd_err_set(err, KVD_EABI,
                           "%s: frontend '%s' has no %s method, which is "
                           "required",
                           path, vt->name, missing);
    }
    if (vt->options != NULL && vt->options_size == 0) {
        return kvd_err_set(err, KVD_EABI,
                           "%s: frontend '%s' declares options but "
                           "options_size is 0",
                           path, vt->name);
    }
    return 0;
}

int
kvd_loader_open_path(const char *path, const char *kind, kvd_plugin **out,
                     const void **vt, struct kvd_err *err)
{
    bool engine = strcmp(kind, "engine") == 0;
    const char *sym = engine ? KVD_ENGINE_ENTRY : KVD_FRONTEND_ENTRY;
    struct kvd_plugin *p = NULL;
    const uint32_t *head;
    void *handle;
    int rc;

    if (!engine && strcmp(kind, "frontend") != 0) {
        return kvd_err_set(err, KVD_EINVAL, "unknown plugin kind '%s'", kind);
    }
    rc = check_trusted(path, "plugin", err);
    if (rc != 0) {
        return rc;
    }
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        return kvd_err_set(err, KVD_ENOPLUGIN, "load %s plugin %s: %s", kind,
                           path, why != NULL ? why : "unknown dlopen error");
    }
    dlerror();
    head = dlsym(handle, sym);
    if (head == NULL) {
        rc = kvd_err_set(err, KVD_EABI,
                         "%s is not a kvd %s plugin: it does not export the "
                         "symbol %s",
                         path, kind, sym);
        goto out_close;
    }
    /* abi_version and struct_size are the first two fields of every
     * vtable, whatever its version: check them before anything else. */
    if (head[0] != KVD_ABI_VERSION) {
        rc = kvd_err_set(err, KVD_EABI,
                         "%s: %s plugin ABI version mismatch: expected %u, "
                         "found %u",
                         path, kind, (unsigned)KVD_ABI_VERSION,
                         (unsigned)head[0]);
        goto out_close;
    }
    rc = engine ? check_engine(path, (const void *)head, err)
                : check_frontend(path, (const void *)head, err);
    if (rc != 0) {
        goto out_close;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->path = strdup(path)) == NULL) {
        free(p);
        rc = kvd_err_set(err, KVD_ENOMEM, "load %s: out of memory", path);
        goto out_close;
    }
    p->handle = handle;
    *out = p;
    *vt = head;
    return 0;

out_close:
#ifndef KVD_NO_DLCLOSE
    dlclose(handle);
#endif
    return rc;
}

static bool
plugin_name_ok(const char *name)
{
    if (name[0] == '\0') {
        return false;
    }
    for (const char *c = name; *c != '\0'; c++) {
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-') {
            return false;
        }
    }
    return true;
}

static int
open_named(const char *dir, const char *kind, const char *name,
           kvd_plugin **out, const void **vt, struct kvd_err *err)
{
    char path[PATH_MAX];
    char avail[512];
    const char *vt_name;
    int rc;

    kvd_loader_list(dir, kind, avail, sizeof(avail));
    if (!plugin_name_ok(name)) {
        return kvd_err_set(err, KVD_ENOPLUGIN,
                           "%s name '%s' is not valid (letters, digits, _ "
                           "and -); available %ss: %s",
                           kind, name, kind, avail);
    }
    rc = check_trusted(dir, "plugin directory", err);
    if (rc != 0) {
        return rc;
    }
    snprintf(path, sizeof(path), "%s/kvd_%s_%s.so", dir, kind, name);
    if (access(path, F_OK) != 0) {
        return kvd_err_set(err, KVD_ENOPLUGIN,
                           "%s '%s' not found: no %s; available %ss in %s: "
                           "%s",
                           kind, name, path, kind, dir, avail);
    }
    rc = kvd_loader_open_path(path, kind, out, vt, err);
    if (rc != 0) {
        return rc;
    }
    vt_name = strcmp(kind, "engine") == 0
                  ? ((const struct kvd_engine_vtable *)*vt)->name
                  : ((const struct kvd_frontend_vtable *)*vt)->name;
    if (strcmp(vt_name, name) != 0) {
        /* Format first: vt_name lives in the plugin, gone after close. */
        rc = kvd_err_set(err, KVD_EABI,
                         "%s: the plugin calls itself '%s', expected '%s'",
                         path, vt_name, name);
        kvd_loader_close(*out);
        *out = NULL;
        *vt = NULL;
        return rc;
    }
    kvd_log(KVD_LOG_DEBUG, "loaded %s plugin %s", kind, path);
    return 0;
}

int
kvd_loader_open_engine(const char *dir, const char *name, kvd_plugin **out,
                       const struct kvd_engine_vtable **vt, struct kvd_err *err)
{
    const void *v = NULL;
    int rc = open_named(dir, "engine", name, out, &v, err);
    *vt = v;
    return rc;
}

int
kvd_loader_open_frontend(const char *dir, const char *name, kvd_plugin **out,
                         const struct kvd_frontend_vtable **vt,
                         struct kvd_err *err)
{
    const void *v = NULL;
    int rc = open_named(dir, "frontend", name, out, &v, err);
    *vt = v;
    return rc;
}

void
kvd_loader_close(kvd_plugin *p)
{
    if (p == NULL) {
        return;
    }
#ifndef KVD_NO_DLCLOSE
    dlclose(p->handle);
#endif
    free(p->path);
    free(p);
}
