/* kiln — libdeflate loaded on first use (utils/lazylib): gzip layers are
 * compressed with it by builds and imports, never by `kiln run` or a step's
 * sandbox. A missing library ends kiln at first use naming it, as the loader
 * did when it was linked: a layer is never half written. */
#include <libdeflate.h>

#include "utils/lazylib.h"

typedef struct libdeflate_compressor C;

#define DEFLATE_FUNCS(F, V)                                                                        \
    F(C *, libdeflate_alloc_compressor, (int level), (level), 0)                                   \
    V(libdeflate_free_compressor, (C * c), (c))                                                    \
    F(size_t, libdeflate_deflate_compress, (C * c, const void *in, size_t n, void *out, size_t m), \
      (c, in, n, out, m), 0)                                                                       \
    F(size_t, libdeflate_deflate_compress_bound, (C * c, size_t n), (c, n), 0)                     \
    F(struct libdeflate_decompressor *, libdeflate_alloc_decompressor, (void), (), 0)              \
    V(libdeflate_free_decompressor, (struct libdeflate_decompressor * d), (d))                     \
    F(enum libdeflate_result, libdeflate_deflate_decompress,                                       \
      (struct libdeflate_decompressor * d, const void *in, size_t n, void *out, size_t m,          \
       size_t *got),                                                                               \
      (d, in, n, out, m, got), LIBDEFLATE_BAD_DATA)                                                \
    F(uint32_t, libdeflate_crc32, (uint32_t crc, const void *buf, size_t n), (crc, buf, n), 0)

#define DEFLATE_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(DEFLATE_FUNCS, DEFLATE_HANDWRITTEN, "libdeflate.so.0",
                             "to compress gzip layers")
KILN_LAZYLIB_PRELOADER(deflate)
