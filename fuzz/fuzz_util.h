/*
 * fuzz/fuzz_util.h -- helpers shared by kvd's libFuzzer targets.
 *
 * A target is one file fuzz_<name>.c defining LLVMFuzzerTestOneInput; it
 * keeps no state between inputs (a crash must reproduce from its input
 * alone). Decoders guarded by checksums get two modes, chosen by the
 * input's first byte: the bytes as they are (the checksum checks
 * themselves), or the bytes with their checksums recomputed by the harness
 * (what lies behind the checks), so mutations reach the decoding code.
 *
 * The checksum here is written again on purpose: the harness must not
 * trust the code it checks, and it stays the same whichever library the
 * engines take their crc32c from.
 */
#ifndef KVD_FUZZ_UTIL_H
#define KVD_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A harness check that holds in every build type (assert() would vanish
 * under NDEBUG): on failure, print it and abort, which libFuzzer reports
 * as a crash with the input that caused it. */
#define FZ_CHECK(c) ((c) ? (void)0 : fz_fail(#c, __FILE__, __LINE__))
_Noreturn void fz_fail(const char *what, const char *file, int line);

/* libFuzzer's entry point (declared for -Wmissing-prototypes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* crc32c (Castagnoli), continued from crc (0 to start). */
uint32_t fz_crc32c(uint32_t crc, const void *p, size_t n);

/* The masking kvd applies to a crc stored in checksummed data. */
uint32_t fz_crc_mask(uint32_t c);

/* Little-endian stores and loads. */
void fz_put16(uint8_t *p, uint16_t v);
void fz_put32(uint8_t *p, uint32_t v);
void fz_put64(uint8_t *p, uint64_t v);
uint64_t fz_get64(const uint8_t *p);

/* An anonymous in-memory file (memfd) holding data; -1 on failure.
 * The caller closes it. */
int fz_memfd(const void *data, size_t size);

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp) in out;
 * 0 or -1. fz_rmtree removes it and everything in it. */
int fz_tmpdir(char *out, size_t cap);
void fz_rmtree(const char *dir);

/* The host engines get in the engine targets: the default one, except
 * that nothing is logged (corrupt inputs are the point, and each would
 * print) and fsync does nothing (speed; durability is not under test). */
struct kvd_host;
const struct kvd_host *fz_host(void);

/* A cursor over the fuzz input for structure-aware harnesses: each take
 * returns what is left when the input runs short (never reads past it). */
struct fz_in {
    const uint8_t *p;
    size_t n;
};
uint8_t fz_u8(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
/* Up to max bytes (the length comes from the input); *len set. */
const uint8_t *fz_bytes(struct fz_in *in, size_t max, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* KVD_FUZZ_UTIL_H */
