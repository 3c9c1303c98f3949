/*
 * core/loader.h -- find, dlopen and validate engine and frontend plugins.
 *
 * Plugins live in a plugin directory as kvd_engine_<name>.so and
 * kvd_frontend_<name>.so. Loading one is refused, with a message that names
 * the file and the reason, when: the file does not exist (the message lists
 * the plugins that do), dlopen fails (dlerror), the entry symbol is missing
 * ("not a kvd plugin"), the ABI version differs or struct_size is smaller
 * than this host's (expected vs found), the name inside differs from the
 * file name, or a required method is NULL. Before dlopen (which runs the
 * file's constructors): the name must be letters, digits, _ and -, and the
 * plugin directory and file must be owned by root or kvd's user and be
 * writable by no other user. No plugin function is called by the loader.
 *
 * Thread-safety: load and unload from one thread (start-up, shutdown).
 */
#ifndef KVD_CORE_LOADER_H
#define KVD_CORE_LOADER_H

#include <stddef.h>

#include "kvd/engine.h"
#include "kvd/frontend.h"
#include "kvd/status.h"

typedef struct kvd_plugin kvd_plugin;

/* The plugin directory used when the config names none: $KVD_PLUGIN_DIR,
 * else the build tree's plugins/ folder when running from it, else
 * EXE/../LIBDIR/kvd (installed under any prefix), else the configured
 * install directory. Returned string is static. */
const char *kvd_loader_default_dir(void);

/* Load an engine or frontend by name ("memory") from dir. On success
 * *out owns the dlopen handle and *vt points into the plugin. */
int kvd_loader_open_engine(const char *dir, const char *name,
                           kvd_plugin **out,
                           const struct kvd_engine_vtable **vt,
                           struct kvd_err *err);
int kvd_loader_open_frontend(const char *dir, const char *name,
                             kvd_plugin **out,
                             const struct kvd_frontend_vtable **vt,
                             struct kvd_err *err);

/* Load a plugin from an explicit file path (tests, kvbench). kind is
 * "engine" or "frontend"; the vtable comes back through *vt. */
int kvd_loader_open_path(const char *path, const char *kind, kvd_plugin **out,
                         const void **vt, struct kvd_err *err);

/* Write the names of the available plugins of `kind` in dir to buf as
 * "a, b, c" (or "none"). */
void kvd_loader_list(const char *dir, const char *kind, char *buf,
                     size_t len);

/* Release the plugin (dlclose, except in sanitizer builds, where the
 * leak reports of unloaded modules would be unreadable). NULL: no-op. */
void kvd_loader_close(kvd_plugin *p);

#endif /* KVD_CORE_LOADER_H */
