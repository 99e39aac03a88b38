/* kiln — ISA-L loaded on first use (utils/lazylib): gzip layers are
 * inflated with it by pulls, unpacks and builds, never by `kiln run` or a
 * step's sandbox, which paid its ~200 symbol bindings at every start. A
 * missing library ends kiln at first use naming it, as the loader did when it
 * was linked: a layer is never half read. */
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>

#include "utils/lazylib.h"

#define ISAL_FUNCS(F, V)                                                                           \
    V(isal_inflate_init, (struct inflate_state * s), (s))                                          \
    V(isal_inflate_reset, (struct inflate_state * s), (s))                                         \
    F(int, isal_inflate, (struct inflate_state * s), (s), 0)                                       \
    F(int, isal_inflate_set_dict, (struct inflate_state * s, uint8_t * d, uint32_t n), (s, d, n),  \
      ISAL_INVALID_STATE)                                                                          \
    F(uint32_t, crc32_gzip_refl, (uint32_t crc, const unsigned char *buf, uint64_t n),             \
      (crc, buf, n), 0)

#define ISAL_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(ISAL_FUNCS, ISAL_HANDWRITTEN, "libisal.so.2", "to inflate gzip layers")
KILN_LAZYLIB_PRELOADER(isal)
