/* kiln — a shared library loaded on first use (dlopen) instead of at start-up.
 *
 * Each library kiln loads this way has a file of definitions of the functions
 * kiln calls (utils/curl_lazy.c, src/server/mhd_lazy.c, utils/git_lazy.c,
 * utils/archive_lazy.c) that forward to the library found here; commands that
 * never call them never map it, nor the libraries it needs (their loading,
 * relocation and constructors were most of kiln's start-up: `kiln run` and
 * each build step's process must not pay for libraries they do not use). */
#ifndef KILN_UTILS_LAZYLIB_H
#define KILN_UTILS_LAZYLIB_H

#include <pthread.h>
#include <stddef.h>

/* Loads soname and looks up the n symbols names[i] into fns[i]. Returns 0, or
 * -1 with a message naming the library, what kiln needs it for (`need`) and
 * the missing file or symbol in errbuf. */
int kiln_lazylib_load(const char *soname, const char *need, const char *const *names, void **fns,
                      size_t n, char *errbuf, size_t errlen);

/* One lazily loaded library from a list of its functions:
 *   #define LIST(F, V) F(ret, name, (params with names), (args), value if unloadable)
 *                      V(name, (params with names), (args))   (void functions)
 *   KILN_LAZYLIB_DEFINE(LIST, "libfoo.so.1", "what kiln needs it for")
 * defines each function (its prototype checked against the library's header)
 * to load the library once (thread-safe) and forward to it; when it cannot be
 * loaded, a function returns its listed value (void ones do nothing) and
 * lazy_error holds why. Variadic functions are written by hand with
 * lazy_ready() and lazy_fn.NAME, listed with KILN_LAZYLIB_SKIP as F/V (their
 * pointer is looked up, no forwarder made). */
#define KILN_LAZYLIB_PTR_F(ret, name, params, args, fail) ret(*name) params;
#define KILN_LAZYLIB_PTR_V(name, params, args) void(*name) params;
#define KILN_LAZYLIB_NAME_F(ret, name, params, args, fail) #name,
#define KILN_LAZYLIB_NAME_V(name, params, args) #name,
#define KILN_LAZYLIB_COUNT_F(ret, name, params, args, fail) +1
#define KILN_LAZYLIB_COUNT_V(name, params, args) +1
#define KILN_LAZYLIB_FWD_F(ret, name, params, args, fail)                                          \
    ret name params                                                                                \
    {                                                                                              \
        if (lazy_ready() < 0)                                                                      \
            return fail;                                                                           \
        return lazy_fn.name args;                                                                  \
    }
#define KILN_LAZYLIB_FWD_V(name, params, args)                                                     \
    void name params                                                                               \
    {                                                                                              \
        if (lazy_ready() == 0)                                                                     \
            lazy_fn.name args;                                                                     \
    }
#define KILN_LAZYLIB_SKIP_F(ret, name, params, args, fail)
#define KILN_LAZYLIB_SKIP_V(name, params, args)

#define KILN_LAZYLIB_TABLE(LIST, VARIADIC, soname, need)                                           \
    enum {                                                                                         \
        LAZY_N = 0 LIST(KILN_LAZYLIB_COUNT_F, KILN_LAZYLIB_COUNT_V)                                \
            VARIADIC(KILN_LAZYLIB_COUNT_F, KILN_LAZYLIB_COUNT_V)                                   \
    };                                                                                             \
    static union {                                                                                 \
        struct {                                                                                   \
            LIST(KILN_LAZYLIB_PTR_F, KILN_LAZYLIB_PTR_V)                                           \
            VARIADIC(KILN_LAZYLIB_PTR_F, KILN_LAZYLIB_PTR_V)                                       \
        };                                                                                         \
        void *ptrs[LAZY_N];                                                                        \
    } lazy_fn;                                                                                     \
    static const char *const lazy_names[] = {                                                      \
        LIST(KILN_LAZYLIB_NAME_F, KILN_LAZYLIB_NAME_V)                                             \
            VARIADIC(KILN_LAZYLIB_NAME_F, KILN_LAZYLIB_NAME_V)};                                   \
    static pthread_once_t lazy_once = PTHREAD_ONCE_INIT;                                           \
    static int lazy_loaded;                                                                        \
    static char lazy_error[512];                                                                   \
    static void lazy_load(void)                                                                    \
    {                                                                                              \
        lazy_loaded = kiln_lazylib_load(soname, need, lazy_names, lazy_fn.ptrs, LAZY_N,            \
                                        lazy_error, sizeof(lazy_error)) == 0;                      \
    }                                                                                              \
    /* Loads the library once; 0 when every function was found. */                                 \
    static int lazy_ready(void)                                                                    \
    {                                                                                              \
        pthread_once(&lazy_once, lazy_load);                                                       \
        return lazy_loaded ? 0 : -1;                                                               \
    }

#define KILN_LAZYLIB_DEFINE(LIST, VARIADIC, soname, need)                                          \
    KILN_LAZYLIB_TABLE(LIST, VARIADIC, soname, need)                                               \
    LIST(KILN_LAZYLIB_FWD_F, KILN_LAZYLIB_FWD_V)

/* For a library whose callers take its functions as infallible (a digest
 * whose return value is not checked would be garbage, a key not wiped): a
 * missing library ends kiln with the message, as the dynamic loader ends a
 * program whose linked library is missing (status 127), only at first use
 * instead of at start-up. The listed values are unused. */
#define KILN_LAZYLIB_FWD_REQ_F(ret, name, params, args, fail)                                      \
    ret name params                                                                                \
    {                                                                                              \
        lazy_require();                                                                            \
        return lazy_fn.name args;                                                                  \
    }
#define KILN_LAZYLIB_FWD_REQ_V(name, params, args)                                                 \
    void name params                                                                               \
    {                                                                                              \
        lazy_require();                                                                            \
        lazy_fn.name args;                                                                         \
    }
#define KILN_LAZYLIB_DEFINE_REQUIRED(LIST, VARIADIC, soname, need)                                 \
    KILN_LAZYLIB_TABLE(LIST, VARIADIC, soname, need)                                               \
    static void lazy_require(void)                                                                 \
    {                                                                                              \
        if (lazy_ready() < 0)                                                                      \
            kiln_lazylib_fatal(lazy_error);                                                        \
    }                                                                                              \
    LIST(KILN_LAZYLIB_FWD_REQ_F, KILN_LAZYLIB_FWD_REQ_V)

/* Every library of utils/ loaded this way, by the name of its file (NAME_lazy.c). */
#define KILN_LAZYLIB_ALL(X)                                                                        \
    X(curl)                                                                                        \
    X(git)                                                                                         \
    X(archive) X(crypto) X(ssl) X(sqlite) X(zstd) X(isal) X(jansson) X(zlib) X(deflate) X(expat)
/* kiln_lazylib_preload_NAME: loads that library now; 0, or -1 when it cannot be (its functions
 * then fail or end kiln as at first use). */
#define KILN_LAZYLIB_PRELOAD_DECL(name) int kiln_lazylib_preload_##name(void);
KILN_LAZYLIB_ALL(KILN_LAZYLIB_PRELOAD_DECL)
#define KILN_LAZYLIB_PRELOADER(name)                                                               \
    int kiln_lazylib_preload_##name(void)                                                          \
    {                                                                                              \
        return lazy_ready();                                                                       \
    }

/* Loads every library above now. For a process that forks children which do not exec while
 * its own threads run (kiln serve, kiln worker: each job in a forked child): a library
 * first used in a child would be dlopen'ed there, where another thread of the parent may have
 * held the loader's state at the fork. Loaded in the parent first, a child never loads one. */
void kiln_lazylib_preload_all(void);

/* Writes "kiln: MSG" to stderr and ends the process with status 127. */
__attribute__((noreturn)) void kiln_lazylib_fatal(const char *msg);

#endif
