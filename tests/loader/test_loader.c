/*
 * tests/loader/test_loader.c -- the plugin loader against broken plugins.
 *
 * tests/plugins builds one plugin per defect into KVD_TEST_PLUGIN_DIR
 * (kvd_engine_nosym.so, kvd_engine_badabi.so, ...). Each must be refused
 * with its own status and a message that names the file and the reason
 * (expected vs found for version and size), nothing of it may stay loaded,
 * and a well-formed plugin next to them must load. The real plugins in
 * KVD_REAL_PLUGIN_DIR must load by name too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/loader.h"
#include "kvd/engine.h"
#include "kvd/frontend.h"

#define TDIR KVD_TEST_PLUGIN_DIR

/* Load engine `name` from the test plugin dir, expecting failure `code`;
 * leaves the message in err. */
static void
expect_engine_refused(const char *name, int code, struct kvd_err *err)
{
    const struct kvd_engine_vtable *vt = NULL;
    kvd_plugin *p = NULL;
    int rc;

    rc = kvd_loader_open_engine(TDIR, name, &p, &vt, err);
    print_message("      %s: %s\n", name, err->msg);
    assert_int_equal(rc, code);
    assert_int_equal(err->code, code);
    assert_null(p);
    assert_null(vt);
}

static void
expect_frontend_refused(const char *name, int code, struct kvd_err *err)
{
    const struct kvd_frontend_vtable *vt = NULL;
    kvd_plugin *p = NULL;
    int rc;

    rc = kvd_loader_open_frontend(TDIR, name, &p, &vt, err);
    print_message("      %s: %s\n", name, err->msg);
    assert_int_equal(rc, code);
    assert_int_equal(err->code, code);
    assert_null(p);
    assert_null(vt);
}

/* The comma-separated list contains exactly this name as an item. */
static bool
list_has(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = strstr(list, name); p != NULL;
         p = strstr(p + 1, name)) {
        bool start = p == list || p[-1] == ' ' || p[-1] == ',';
        bool end = p[n] == '\0' || p[n] == ',' || p[n] == ')';

        if (start && end) {
            return true;
        }
    }
    return false;
}

static void
test_loader_loads_good_engine(void **state)
{
    const struct kvd_engine_vtable *vt = NULL;
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;

    (void)state;
    assert_int_equal(kvd_loader_open_engine(TDIR, "good", &p, &vt, &err), 0);
    assert_non_null(p);
    assert_non_null(vt);
    assert_string_equal(vt->name, "good");
    assert_int_equal(vt->abi_version, KVD_ABI_VERSION);
    kvd_loader_close(p);
}

static void
test_loader_loads_good_frontend(void **state)
{
    const struct kvd_frontend_vtable *vt = NULL;
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;

    (void)state;
    assert_int_equal(kvd_loader_open_frontend(TDIR, "fgood", &p, &vt, &err), 0);
    assert_non_null(p);
    assert_string_equal(vt->name, "fgood");
    kvd_loader_close(p);
}

static void
test_loader_open_path_loads_good_engine(void **state)
{
    const struct kvd_engine_vtable *evt;
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;
    const void *vt = NULL;

    (void)state;
    assert_int_equal(kvd_loader_open_path(TDIR "/kvd_engine_good.so", "engine",
                                          &p, &vt, &err),
                     0);
    evt = vt;
    assert_string_equal(evt->name, "good");
    assert_int_equal(evt->struct_size, sizeof(struct kvd_engine_vtable));
    kvd_loader_close(p);
}

/* A plugin built before multi was appended to ABI 1 still loads, and the
 * host sees no multi method in it (the field lies past its struct_size). */
static void
test_loader_accepts_first_abi1_vtable(void **state)
{
    const struct kvd_engine_vtable *evt;
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;
    const void *vt = NULL;

    (void)state;
    assert_int_equal(kvd_loader_open_path(TDIR "/kvd_engine_oldv1.so",
                                          "engine", &p, &vt, &err),
                     0);
    evt = vt;
    assert_string_equal(evt->name, "oldv1");
    assert_int_equal(evt->struct_size, KVD_ENGINE_VTABLE_MIN_SIZE);
    assert_true(evt->struct_size < sizeof(struct kvd_engine_vtable));
    assert_false(KVD_ENGINE_HAS(evt, multi));
    assert_true(KVD_ENGINE_HAS(evt, get));
    kvd_loader_close(p);
}

static void
test_loader_loads_real_memory_engine(void **state)
{
    const struct kvd_engine_vtable *vt = NULL;
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;
    int rc;

    (void)state;
    rc = kvd_loader_open_engine(KVD_REAL_PLUGIN_DIR, "memory", &p, &vt, &err);
    if (rc != 0) {
        print_error("%s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_string_equal(vt->name, "memory");
    kvd_loader_close(p);
}

static void
test_loader_refuses_missing_symbol(void **state)
{
    struct kvd_err err = {0};

    (void)state;
    expect_engine_refused("nosym", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_engine_nosym.so"));
    assert_non_null(strstr(err.msg, "not a kvd engine plugin"));
    assert_non_null(strstr(err.msg, KVD_ENGINE_ENTRY));
}

static void
test_loader_refuses_wrong_abi_version(void **state)
{
    struct kvd_err err = {0};
    char want[64];

    (void)state;
    expect_engine_refused("badabi", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_engine_badabi.so"));
    assert_non_null(strstr(err.msg, "ABI version"));
    snprintf(want, sizeof(want), "expected %d, found %d", KVD_ABI_VERSION,
             KVD_ABI_VERSION + 98);
    assert_non_null(strstr(err.msg, want));
}

static void
test_loader_refuses_short_struct_size(void **state)
{
    struct kvd_err err = {0};
    char want[64];

    (void)state;
    expect_engine_refused("shortsize", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_engine_shortsize.so"));
    assert_non_null(strstr(err.msg, "struct_size"));
    snprintf(want, sizeof(want), "at least %zu, found 16",
             (size_t)KVD_ENGINE_VTABLE_MIN_SIZE);
    assert_non_null(strstr(err.msg, want));
}

static void
test_loader_refuses_null_required_method(void **state)
{
    struct kvd_err err = {0};

    (void)state;
    expect_engine_refused("nullget", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_engine_nullget.so"));
    assert_non_null(strstr(err.msg, "no get method"));
}

static void
test_loader_refuses_name_mismatch(void **state)
{
    struct kvd_err err = {0};

    (void)state;
    expect_engine_refused("misnamed", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_engine_misnamed.so"));
    assert_non_null(strstr(err.msg, "'someone-else'"));
    assert_non_null(strstr(err.msg, "expected 'misnamed'"));
}

static void
test_loader_missing_plugin_lists_available(void **state)
{
    struct kvd_err err = {0};

    (void)state;
    expect_engine_refused("nosuch", KVD_ENOPLUGIN, &err);
    assert_non_null(strstr(err.msg, "'nosuch'"));
    assert_non_null(strstr(err.msg, "kvd_engine_nosuch.so"));
    /* every engine in the folder is offered, and no frontend */
    assert_true(list_has(err.msg, "good"));
    assert_true(list_has(err.msg, "badabi"));
    assert_true(list_has(err.msg, "nosym"));
    assert_true(list_has(err.msg, "misnamed"));
    assert_false(list_has(err.msg, "fgood"));
}

static void
test_loader_list_separates_kinds(void **state)
{
    char buf[512];

    (void)state;
    kvd_loader_list(TDIR, "engine", buf, sizeof(buf));
    assert_string_equal(buf,
                        "badabi, good, misnamed, nosym, nullget, oldv1, "
                        "shortsize");
    kvd_loader_list(TDIR, "frontend", buf, sizeof(buf));
    assert_string_equal(buf, "fbadabi, fgood, fnullstart");
    kvd_loader_list(TDIR "/no-such-dir", "engine", buf, sizeof(buf));
    assert_string_equal(buf, "none");
}

static void
test_loader_refuses_invalid_name(void **state)
{
    struct kvd_err err = {0};

    (void)state;
    /* a name is never a path: no escaping the plugin directory */
    expect_engine_refused("../plugins-broken/kvd_engine_good", KVD_ENOPLUGIN,
                          &err);
    assert_non_null(strstr(err.msg, "not valid"));
    expect_engine_refused("", KVD_ENOPLUGIN, &err);
}

static void
test_loader_refuses_non_elf_file(void **state)
{
    char dir[] = "/tmp/kvd-loader-XXXXXX";
    char path[128];
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;
    const void *vt = NULL;
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/kvd_engine_text.so", dir);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not an ELF file\n", 16), 16);
    close(fd);

    assert_int_equal(kvd_loader_open_path(path, "engine", &p, &vt, &err),
                     KVD_ENOPLUGIN);
    print_message("      text file: %s\n", err.msg);
    assert_null(p);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    rmdir(dir);
}

static void
test_loader_refuses_frontend_as_engine(void **state)
{
    struct kvd_err err = {0};
    kvd_plugin *p = NULL;
    const void *vt = NULL;

    (void)state;
    assert_int_equal(kvd_loader_open_path(TDIR "/kvd_frontend_fgood.so",
                                          "engine", &p, &vt, &err),
                     KVD_EABI);
    print_message("      frontend as engine: %s\n", err.msg);
    assert_null(p);
    assert_non_null(strstr(err.msg, KVD_ENGINE_ENTRY));
    assert_int_equal(kvd_loader_open_path(TDIR "/kvd_frontend_fgood.so",
                                          "storage", &p, &vt, &err),
                     KVD_EINVAL);
    assert_non_null(strstr(err.msg, "storage"));
}

static void
test_loader_refuses_frontend_wrong_abi_version(void **state)
{
    struct kvd_err err = {0};
    char want[64];

    (void)state;
    expect_frontend_refused("fbadabi", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_frontend_fbadabi.so"));
    snprintf(want, sizeof(want), "expected %d, found %d", KVD_ABI_VERSION,
             KVD_ABI_VERSION + 98);
    assert_non_null(strstr(err.msg, want));
}

static void
test_loader_refuses_frontend_null_start(void **state)
{
    struct kvd_err err = {0};

    (void)state;
    expect_frontend_refused("fnullstart", KVD_EABI, &err);
    assert_non_null(strstr(err.msg, "kvd_frontend_fnullstart.so"));
    assert_non_null(strstr(err.msg, "no start method"));
}

static void
test_loader_default_dir_honours_env(void **state)
{
    const char *env = getenv("KVD_PLUGIN_DIR");

    (void)state;
    setenv("KVD_PLUGIN_DIR", TDIR, 1);
    assert_string_equal(kvd_loader_default_dir(), TDIR);
    if (env != NULL) {
        setenv("KVD_PLUGIN_DIR", env, 1);
    } else {
        unsetenv("KVD_PLUGIN_DIR");
    }
}

static void
test_loader_close_null_is_noop(void **state)
{
    (void)state;
    kvd_loader_close(NULL);
}

int
main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loader_loads_good_engine),
        cmocka_unit_test(test_loader_loads_good_frontend),
        cmocka_unit_test(test_loader_open_path_loads_good_engine),
        cmocka_unit_test(test_loader_loads_real_memory_engine),
        cmocka_unit_test(test_loader_refuses_missing_symbol),
        cmocka_unit_test(test_loader_refuses_wrong_abi_version),
        cmocka_unit_test(test_loader_refuses_short_struct_size),
        cmocka_unit_test(test_loader_accepts_first_abi1_vtable),
        cmocka_unit_test(test_loader_refuses_null_required_method),
        cmocka_unit_test(test_loader_refuses_name_mismatch),
        cmocka_unit_test(test_loader_missing_plugin_lists_available),
        cmocka_unit_test(test_loader_list_separates_kinds),
        cmocka_unit_test(test_loader_refuses_invalid_name),
        cmocka_unit_test(test_loader_refuses_non_elf_file),
        cmocka_unit_test(test_loader_refuses_frontend_as_engine),
        cmocka_unit_test(test_loader_refuses_frontend_wrong_abi_version),
        cmocka_unit_test(test_loader_refuses_frontend_null_start),
        cmocka_unit_test(test_loader_default_dir_honours_env),
        cmocka_unit_test(test_loader_close_null_is_noop),
    };

    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
