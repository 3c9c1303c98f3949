/*
 * core/status.h -- names and messages for kvd status codes.
 */
#ifndef KVD_CORE_STATUS_H
#define KVD_CORE_STATUS_H

/* "not found"; for an unknown code, "unknown status -N". Static storage
 * (unknown codes share one thread-local buffer). */
const char *kvd_strerror(int code);

/* "KVD_ENOTFOUND"; "KVD_UNKNOWN" for an unknown code. */
const char *kvd_status_name(int code);

#endif /* KVD_CORE_STATUS_H */
