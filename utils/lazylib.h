/* kiln — a shared library loaded on first use (dlopen) instead of at start-up.
 *
 * Each library kiln loads this way has a file of definitions of the functions
 * kiln calls (utils/curl_lazy.c, src/server/mhd_lazy.c) that forward to the
 * library found here; commands that never call them never map it, nor the
 * libraries it needs (their loading, relocation and constructors were most of
 * kiln's start-up). */
#ifndef KILN_UTILS_LAZYLIB_H
#define KILN_UTILS_LAZYLIB_H

#include <stddef.h>

/* Loads soname and looks up the n symbols names[i] into fns[i]. Returns 0, or
 * -1 with a message naming the library (and the missing symbol) in errbuf. */
int kiln_lazylib_load(const char *soname, const char *const *names, void **fns, size_t n,
                      char *errbuf, size_t errlen);

#endif
