/*
 * fuzz/fuzz_lsm_log.h -- the part the lsm WAL and MANIFEST targets share:
 * turning an input into a log file (engines/lsm/lsm_wal.h format) and
 * reading it back record by record as recovery does.
 *
 * First input byte, low bit 0: the rest is the file as it is (fragment
 * headers, checksums, padding, zero tails). Low bit 1: the rest is a list
 * of records, which the harness frames with the writer's own encoder (the
 * first one replaced by a valid file header of `kind` when bit 1 is set),
 * then cuts the file at a point the input chooses, so the payload decoder
 * and torn tails are reached behind the checksums.
 */
#ifndef KVD_FUZZ_LSM_LOG_H
#define KVD_FUZZ_LSM_LOG_H

#include <stddef.h>
#include <stdint.h>

/* Called for each record after the first (the file header). */
typedef void (*fz_rec_fn)(const void *p, size_t n);

/* Build the file from the input and read it back: the first record must
 * be a header of `kind` (lsm_file_hdr_check), each later record goes to
 * fn. */
void fz_lsm_log_run(const uint8_t *data, size_t size, int kind, fz_rec_fn fn);

#endif /* KVD_FUZZ_LSM_LOG_H */
