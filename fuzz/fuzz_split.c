/*
 * fuzz/fuzz_split.c -- the command layer's line splitter (kvd_cmd_split,
 * core/cmd_split.c), which cuts the stdin frontend's lines and RESP inline
 * requests into arguments (redis-cli's quoting rules).
 *
 * Input: one line. Every argument must lie inside the split buffer, whose
 * size the contract gives as the line's length, and the result must be
 * the same when the line is split again from a copy.
 */
#include <stdlib.h>
#include <string.h>

#include "core/cmd.h"
#include "fuzz_util.h"

#define FZ_MAX_ARGS 128

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly the line's length, so ASan sees a byte written past it */
    size_t cap = size > 0 ? size : 1;
    char *buf = malloc(cap);
    char *buf2 = malloc(cap);
    char *line = malloc(cap);
    const char *argv[FZ_MAX_ARGS];
    const char *argv2[FZ_MAX_ARGS];
    size_t argl[FZ_MAX_ARGS];
    size_t argl2[FZ_MAX_ARGS];
    struct kvd_err err = {0};
    int n, n2;

    FZ_CHECK(buf != NULL && buf2 != NULL && line != NULL);
    if (size > 0) {
        memcpy(line, data, size);
    }
    n = kvd_cmd_split(line, size, buf, FZ_MAX_ARGS, argv, argl, &err);
    n2 = kvd_cmd_split((const char *)data, size, buf2, FZ_MAX_ARGS, argv2,
                       argl2, &err);
    FZ_CHECK(n == n2);
    for (int i = 0; i < n; i++) {
        FZ_CHECK(argv[i] >= buf && argl[i] <= size &&
                 (size_t)(argv[i] - buf) <= size - argl[i]);
        FZ_CHECK(argl[i] == argl2[i]);
        FZ_CHECK(memcmp(argv[i], argv2[i], argl[i]) == 0);
    }
    free(buf);
    free(buf2);
    free(line);
    return 0;
}
