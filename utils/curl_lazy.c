/* kiln — libcurl loaded on first use.
 *
 * kiln is not linked against libcurl: these definitions of the curl_* functions
 * kiln calls load libcurl.so.4 (dlopen) the first time one of them runs and
 * forward to it. libcurl brings 17 more shared libraries (GnuTLS through
 * librtmp, Kerberos, LDAP, nghttp2, ...) whose loading, relocation and
 * constructors were most of the start-up of every kiln command: `kiln run`
 * and the commands that never talk HTTP no longer pay for them
 * (bench/sandbox.sh). When the library cannot be loaded, the constructors
 * return a handle that is never dereferenced (not NULL: callers take NULL for
 * out-of-memory and abort), every call fails the way libcurl reports an
 * unusable handle (CURLE_FAILED_INIT, ...) and curl_easy_strerror says which
 * library is missing and what needs it. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "utils/lazylib.h"

#define KILN_LIBCURL "libcurl.so.4"

/* X(return type, name, parameters): every function kiln calls, in one list. */
#define KILN_CURL_FUNCS(X)                                                                         \
    X(CURLcode, curl_global_init, (long))                                                          \
    X(char *, curl_version, (void))                                                                \
    X(void, curl_free, (void *))                                                                   \
    X(CURL *, curl_easy_init, (void))                                                              \
    X(void, curl_easy_cleanup, (CURL *))                                                           \
    X(void, curl_easy_reset, (CURL *))                                                             \
    X(CURLcode, curl_easy_perform, (CURL *))                                                       \
    X(CURLcode, curl_easy_setopt, (CURL *, CURLoption, ...))                                       \
    X(CURLcode, curl_easy_getinfo, (CURL *, CURLINFO, ...))                                        \
    X(const char *, curl_easy_strerror, (CURLcode))                                                \
    X(char *, curl_easy_escape, (CURL *, const char *, int))                                       \
    X(struct curl_slist *, curl_slist_append, (struct curl_slist *, const char *))                 \
    X(void, curl_slist_free_all, (struct curl_slist *))                                            \
    X(CURLU *, curl_url, (void))                                                                   \
    X(void, curl_url_cleanup, (CURLU *))                                                           \
    X(CURLUcode, curl_url_get, (CURLU *, CURLUPart, char **, unsigned int))                        \
    X(CURLUcode, curl_url_set, (CURLU *, CURLUPart, const char *, unsigned int))                   \
    X(CURLM *, curl_multi_init, (void))                                                            \
    X(CURLMcode, curl_multi_cleanup, (CURLM *))                                                    \
    X(CURLMcode, curl_multi_add_handle, (CURLM *, CURL *))                                         \
    X(CURLMcode, curl_multi_remove_handle, (CURLM *, CURL *))                                      \
    X(CURLMcode, curl_multi_perform, (CURLM *, int *))                                             \
    X(CURLMcode, curl_multi_poll, (CURLM *, struct curl_waitfd[], unsigned int, int, int *))       \
    X(CURLMsg *, curl_multi_info_read, (CURLM *, int *))                                           \
    X(CURLMcode, curl_multi_setopt, (CURLM *, CURLMoption, ...))

/* The functions, in one array (the order of KILN_CURL_FUNCS) and by name. */
#define COUNT(ret, name, params) +1
enum { N_FUNCS = 0 KILN_CURL_FUNCS(COUNT) };
#undef COUNT
static union {
    struct {
#define X(ret, name, params) ret(*name) params;
        KILN_CURL_FUNCS(X)
#undef X
    };
    void *ptrs[N_FUNCS];
} fn;
static const char *const fn_names[] = {
#define X(ret, name, params) #name,
    KILN_CURL_FUNCS(X)
#undef X
};

/* What the constructors hand out when libcurl is missing: an address no
 * function here ever follows (each checks the library first). */
static char unloaded_handle;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;           /* 1: every function was found */
static char load_error[256]; /* why not, for curl_easy_strerror */

static void load(void)
{
    loaded = kiln_lazylib_load(KILN_LIBCURL, "to talk HTTP(S): registries, S3, SQS, downloads",
                               fn_names, fn.ptrs, N_FUNCS, load_error, sizeof(load_error)) == 0;
}

/* Loads libcurl once (thread-safe); 0 when every function is there. */
static int ready(void)
{
    pthread_once(&load_once, load);
    return loaded ? 0 : -1;
}

int kiln_lazylib_preload_curl(void)
{
    return ready();
}

/* The one argument after a setopt option, by the option's type range. Every
 * option kiln passes is a long, a pointer (data, string, list, callback) or a
 * curl_off_t, as the option's number says. */
#define FORWARD_OPT(call, obj, opt)                                                                \
    do {                                                                                           \
        va_list ap;                                                                                \
        va_start(ap, opt);                                                                         \
        if ((int)(opt) < CURLOPTTYPE_OBJECTPOINT) {                                                \
            long v = va_arg(ap, long);                                                             \
            va_end(ap);                                                                            \
            return call(obj, opt, v);                                                              \
        }                                                                                          \
        if ((int)(opt) >= CURLOPTTYPE_OFF_T && (int)(opt) < CURLOPTTYPE_BLOB) {                    \
            curl_off_t v = va_arg(ap, curl_off_t);                                                 \
            va_end(ap);                                                                            \
            return call(obj, opt, v);                                                              \
        }                                                                                          \
        void *v = va_arg(ap, void *);                                                              \
        va_end(ap);                                                                                \
        return call(obj, opt, v);                                                                  \
    } while (0)

CURLcode curl_global_init(long flags)
{
    return ready() < 0 ? CURLE_FAILED_INIT : fn.curl_global_init(flags);
}

char *curl_version(void)
{
    static char none[] = "libcurl (not loadable)";
    return ready() < 0 ? none : fn.curl_version();
}

void curl_free(void *p)
{
    if (ready() == 0)
        fn.curl_free(p);
}

CURL *curl_easy_init(void)
{
    return ready() < 0 ? (CURL *)&unloaded_handle : fn.curl_easy_init();
}

void curl_easy_cleanup(CURL *h)
{
    if (ready() == 0)
        fn.curl_easy_cleanup(h);
}

void curl_easy_reset(CURL *h)
{
    if (ready() == 0)
        fn.curl_easy_reset(h);
}

CURLcode curl_easy_perform(CURL *h)
{
    return ready() < 0 ? CURLE_FAILED_INIT : fn.curl_easy_perform(h);
}

CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    if (ready() < 0)
        return CURLE_FAILED_INIT;
    FORWARD_OPT(fn.curl_easy_setopt, h, opt);
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    if (ready() < 0)
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    void *out = va_arg(ap, void *); /* every CURLINFO_* takes a pointer */
    va_end(ap);
    return fn.curl_easy_getinfo(h, info, out);
}

const char *curl_easy_strerror(CURLcode code)
{
    return ready() < 0 ? load_error : fn.curl_easy_strerror(code);
}

char *curl_easy_escape(CURL *h, const char *s, int len)
{
    return ready() < 0 ? NULL : fn.curl_easy_escape(h, s, len);
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return ready() < 0 ? NULL : fn.curl_slist_append(l, s);
}

void curl_slist_free_all(struct curl_slist *l)
{
    if (ready() == 0)
        fn.curl_slist_free_all(l);
}

CURLU *curl_url(void)
{
    return ready() < 0 ? (CURLU *)&unloaded_handle : fn.curl_url();
}

void curl_url_cleanup(CURLU *u)
{
    if (ready() == 0)
        fn.curl_url_cleanup(u);
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
    return ready() < 0 ? CURLUE_OUT_OF_MEMORY : fn.curl_url_get(u, what, part, flags);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
    return ready() < 0 ? CURLUE_OUT_OF_MEMORY : fn.curl_url_set(u, what, part, flags);
}

CURLM *curl_multi_init(void)
{
    return ready() < 0 ? (CURLM *)&unloaded_handle : fn.curl_multi_init();
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
    return ready() < 0 ? CURLM_BAD_HANDLE : fn.curl_multi_cleanup(m);
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *h)
{
    return ready() < 0 ? CURLM_BAD_HANDLE : fn.curl_multi_add_handle(m, h);
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h)
{
    return ready() < 0 ? CURLM_BAD_HANDLE : fn.curl_multi_remove_handle(m, h);
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
    return ready() < 0 ? CURLM_BAD_HANDLE : fn.curl_multi_perform(m, running);
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd extra[], unsigned int n, int ms, int *ret)
{
    return ready() < 0 ? CURLM_BAD_HANDLE : fn.curl_multi_poll(m, extra, n, ms, ret);
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    return ready() < 0 ? NULL : fn.curl_multi_info_read(m, left);
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    if (ready() < 0)
        return CURLM_BAD_HANDLE;
    FORWARD_OPT(fn.curl_multi_setopt, m, opt);
}
