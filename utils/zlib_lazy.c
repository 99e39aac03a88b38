/* kiln — zlib and libdeflate loaded on first use (utils/lazylib): layers are
 * inflated (zlib, gzip checkpoints of SOCI indexes) and deflated (libdeflate)
 * by builds, pulls and pushes, never by `kiln run` or a step's sandbox, which
 * paid their binding at every start. A missing library ends kiln at first use
 * naming it, as the loader did when it was linked: a layer is never half
 * written. */
#include <zlib.h>

#include "utils/lazylib.h"

#define ZLIB_FUNCS(F, V)                                                                           \
    F(int, inflateInit2_, (z_streamp s, int bits, const char *version, int size),                  \
      (s, bits, version, size), Z_VERSION_ERROR)                                                   \
    F(int, inflate, (z_streamp s, int flush), (s, flush), Z_STREAM_ERROR)                          \
    F(int, inflateEnd, (z_streamp s), (s), Z_STREAM_ERROR)                                         \
    F(int, inflateReset, (z_streamp s), (s), Z_STREAM_ERROR)                                       \
    F(int, inflateReset2, (z_streamp s, int bits), (s, bits), Z_STREAM_ERROR)                      \
    F(int, inflatePrime, (z_streamp s, int bits, int value), (s, bits, value), Z_STREAM_ERROR)     \
    F(int, inflateSetDictionary, (z_streamp s, const Bytef *d, uInt n), (s, d, n), Z_STREAM_ERROR) \
    F(int, deflateInit2_,                                                                          \
      (z_streamp s, int level, int method, int bits, int mem, int strategy, const char *version,   \
       int size),                                                                                  \
      (s, level, method, bits, mem, strategy, version, size), Z_VERSION_ERROR)                     \
    F(int, deflate, (z_streamp s, int flush), (s, flush), Z_STREAM_ERROR)                          \
    F(int, deflateEnd, (z_streamp s), (s), Z_STREAM_ERROR)                                         \
    F(uLong, crc32, (uLong crc, const Bytef *buf, uInt len), (crc, buf, len), 0)                   \
    F(uLong, crc32_combine64, (uLong a, uLong b, z_off_t len), (a, b, len), 0)

#define ZLIB_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(ZLIB_FUNCS, ZLIB_HANDWRITTEN, "libz.so.1",
                             "to inflate gzip streams (layers, SOCI checkpoints)")
KILN_LAZYLIB_PRELOADER(zlib)
