/* kiln — zstd loaded on first use (utils/lazylib): zstd layers are
 * compressed and read by builds, pulls and pushes, never by `kiln run` or a
 * step's sandbox, which paid its ~110 symbol bindings at every start. A
 * missing library ends kiln at first use naming it, as the loader did when it
 * was linked: a layer is never half read. */
#include <zstd.h>

#include "utils/lazylib.h"

#define ZSTD_FUNCS(F, V)                                                                           \
    F(const char *, ZSTD_versionString, (void), (), 0)                                             \
    F(unsigned, ZSTD_isError, (size_t code), (code), 0)                                            \
    F(const char *, ZSTD_getErrorName, (size_t code), (code), 0)                                   \
    F(ZSTD_CCtx *, ZSTD_createCCtx, (void), (), 0)                                                 \
    F(size_t, ZSTD_freeCCtx, (ZSTD_CCtx * c), (c), 0)                                              \
    F(size_t, ZSTD_CCtx_setParameter, (ZSTD_CCtx * c, ZSTD_cParameter p, int v), (c, p, v), 0)     \
    F(size_t, ZSTD_compressStream2,                                                                \
      (ZSTD_CCtx * c, ZSTD_outBuffer * out, ZSTD_inBuffer * in, ZSTD_EndDirective end),            \
      (c, out, in, end), 0)                                                                        \
    F(ZSTD_DCtx *, ZSTD_createDCtx, (void), (), 0)                                                 \
    F(size_t, ZSTD_freeDCtx, (ZSTD_DCtx * d), (d), 0)                                              \
    F(size_t, ZSTD_DCtx_setParameter, (ZSTD_DCtx * d, ZSTD_dParameter p, int v), (d, p, v), 0)     \
    F(size_t, ZSTD_decompressStream, (ZSTD_DStream * d, ZSTD_outBuffer * out, ZSTD_inBuffer * in), \
      (d, out, in), 0)

#define ZSTD_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(ZSTD_FUNCS, ZSTD_HANDWRITTEN, "libzstd.so.1",
                             "to compress and read zstd layers and caches")
KILN_LAZYLIB_PRELOADER(zstd)
