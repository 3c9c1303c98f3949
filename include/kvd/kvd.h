/*
 * kvd/kvd.h -- everything a third-party engine or frontend includes.
 *
 * The installed plugin ABI is exactly the headers in this folder; anything
 * under core/ is internal to the kvd host and may change at any time.
 */
#ifndef KVD_KVD_H
#define KVD_KVD_H

#include "kvd/engine.h"
#include "kvd/frontend.h"
#include "kvd/host.h"
#include "kvd/status.h"

#endif /* KVD_KVD_H */
