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
#include <stdarg.h>
#include <stdio.h>

#include "utils/lazylib.h"

/* What the constructors hand out when libcurl is missing: an address no
 * function here ever follows (each checks the library first). */
static char unloaded_handle;

/* Every function kiln calls (F: returns a value, then the value when libcurl is missing: the
 * way libcurl reports an unusable handle; V: void). */
#define CURL_FUNCS(F, V)                                                                           \
    F(CURLcode, curl_global_init, (long flags), (flags), CURLE_FAILED_INIT)                        \
    F(char *, curl_version, (void), (), unloaded_version)                                          \
    V(curl_free, (void *p), (p))                                                                   \
    F(CURL *, curl_easy_init, (void), (), (CURL *)&unloaded_handle)                                \
    V(curl_easy_cleanup, (CURL * h), (h))                                                          \
    V(curl_easy_reset, (CURL * h), (h))                                                            \
    F(CURLcode, curl_easy_perform, (CURL * h), (h), CURLE_FAILED_INIT)                             \
    F(const char *, curl_easy_strerror, (CURLcode code), (code), lazy_error)                       \
    F(char *, curl_easy_escape, (CURL * h, const char *s, int len), (h, s, len), NULL)             \
    F(struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s), (l, s),      \
      NULL)                                                                                        \
    V(curl_slist_free_all, (struct curl_slist * l), (l))                                           \
    F(CURLU *, curl_url, (void), (), (CURLU *)&unloaded_handle)                                    \
    V(curl_url_cleanup, (CURLU * u), (u))                                                          \
    F(CURLUcode, curl_url_get, (CURLU * u, CURLUPart what, char **part, unsigned int flags),       \
      (u, what, part, flags), CURLUE_OUT_OF_MEMORY)                                                \
    F(CURLUcode, curl_url_set, (CURLU * u, CURLUPart what, const char *part, unsigned int flags),  \
      (u, what, part, flags), CURLUE_OUT_OF_MEMORY)                                                \
    F(CURLM *, curl_multi_init, (void), (), (CURLM *)&unloaded_handle)                             \
    F(CURLMcode, curl_multi_cleanup, (CURLM * m), (m), CURLM_BAD_HANDLE)                           \
    F(CURLMcode, curl_multi_add_handle, (CURLM * m, CURL * h), (m, h), CURLM_BAD_HANDLE)           \
    F(CURLMcode, curl_multi_remove_handle, (CURLM * m, CURL * h), (m, h), CURLM_BAD_HANDLE)        \
    F(CURLMcode, curl_multi_perform, (CURLM * m, int *running), (m, running), CURLM_BAD_HANDLE)    \
    F(CURLMcode, curl_multi_poll,                                                                  \
      (CURLM * m, struct curl_waitfd extra[], unsigned int n, int ms, int *ret),                   \
      (m, extra, n, ms, ret), CURLM_BAD_HANDLE)                                                    \
    F(CURLMsg *, curl_multi_info_read, (CURLM * m, int *left), (m, left), NULL)                    \
    F(CURLMcode, curl_multi_wakeup, (CURLM * m), (m), CURLM_BAD_HANDLE)                            \
    F(CURLcode, curl_easy_pause, (CURL * h, int mask), (h, mask), CURLE_FAILED_INIT)

/* The variadic ones, written out below. */
#define CURL_VARIADIC(F, V)                                                                        \
    F(CURLcode, curl_easy_setopt, (CURL * h, CURLoption opt, ...), (), CURLE_FAILED_INIT)          \
    F(CURLcode, curl_easy_getinfo, (CURL * h, CURLINFO info, ...), (), CURLE_FAILED_INIT)          \
    F(CURLMcode, curl_multi_setopt, (CURLM * m, CURLMoption opt, ...), (), CURLM_BAD_HANDLE)

static char unloaded_version[] = "libcurl (not loadable)";

KILN_LAZYLIB_DEFINE(CURL_FUNCS, CURL_VARIADIC, "libcurl.so.4",
                    "to talk HTTP(S): registries, S3, SQS, downloads")
KILN_LAZYLIB_PRELOADER(curl)

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

CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    if (lazy_ready() < 0)
        return CURLE_FAILED_INIT;
    FORWARD_OPT(lazy_fn.curl_easy_setopt, h, opt);
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    if (lazy_ready() < 0)
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    void *out = va_arg(ap, void *); /* every CURLINFO_* takes a pointer */
    va_end(ap);
    return lazy_fn.curl_easy_getinfo(h, info, out);
}

CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    if (lazy_ready() < 0)
        return CURLM_BAD_HANDLE;
    FORWARD_OPT(lazy_fn.curl_multi_setopt, m, opt);
}
