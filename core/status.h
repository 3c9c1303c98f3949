/*
 * core/status.h -- names and messages for kvd status codes.
 *
 * kvd_strerror() and kvd_status_name() live in the installed kvd/status.h
 * (inline, generated from KVD_STATUS_MAP), so the core and every plugin
 * share them; this header remains for the core files that include it.
 */
#ifndef KVD_CORE_STATUS_H
#define KVD_CORE_STATUS_H

#include "kvd/status.h"

#endif /* KVD_CORE_STATUS_H */
