/*
 * core/status.c -- kvd_strerror() and kvd_status_name(), generated from the
 * one KVD_STATUS_MAP table so names, numbers and messages cannot drift.
 */
#include "core/status.h"

#include <stdio.h>

#include "kvd/status.h"

const char *
kvd_strerror(int code)
{
    static _Thread_local char unknown[32];

    switch (code) {
#define KVD_XX_MSG(name, value, msg)                                          \
    case KVD_##name:                                                          \
        return msg;
        KVD_STATUS_MAP(KVD_XX_MSG)
#undef KVD_XX_MSG
    default:
        snprintf(unknown, sizeof(unknown), "unknown status %d", code);
        return unknown;
    }
}

const char *
kvd_status_name(int code)
{
    switch (code) {
#define KVD_XX_NAME(name, value, msg)                                         \
    case KVD_##name:                                                          \
        return "KVD_" #name;
        KVD_STATUS_MAP(KVD_XX_NAME)
#undef KVD_XX_NAME
    default:
        return "KVD_UNKNOWN";
    }
}
