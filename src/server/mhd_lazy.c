/* kiln — libmicrohttpd loaded on first use (utils/lazylib).
 *
 * Only `kiln serve` answers HTTP, but linking libmicrohttpd made every kiln
 * command load it and GnuTLS with it (GnuTLS, p11-kit, nettle, GMP, libtasn1,
 * libidn2, libunistring, libffi), running GnuTLS's constructor at start-up.
 * These definitions of the MHD_* functions kiln calls load it the first time
 * one runs. When it cannot be loaded, MHD_start_daemon fails (NULL, errno
 * ENOSYS) and the server names the address it could not listen on. */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "utils/lazylib.h"

#define KILN_LIBMHD "libmicrohttpd.so.12"

#define KILN_MHD_FUNCS(X)                                                                          \
    X(struct MHD_Daemon *, MHD_start_daemon_va,                                                    \
      (unsigned int, uint16_t, MHD_AcceptPolicyCallback, void *, MHD_AccessHandlerCallback,        \
       void *, va_list))                                                                           \
    X(void, MHD_stop_daemon, (struct MHD_Daemon *))                                                \
    X(enum MHD_Result, MHD_add_response_header,                                                    \
      (struct MHD_Response *, const char *, const char *))                                         \
    X(struct MHD_Response *, MHD_create_response_from_buffer,                                      \
      (size_t, void *, enum MHD_ResponseMemoryMode))                                               \
    X(struct MHD_Response *, MHD_create_response_from_callback,                                    \
      (uint64_t, size_t, MHD_ContentReaderCallback, void *, MHD_ContentReaderFreeCallback))        \
    X(struct MHD_Response *, MHD_create_response_from_fd, (size_t, int))                           \
    X(void, MHD_destroy_response, (struct MHD_Response *))                                         \
    X(const union MHD_ConnectionInfo *, MHD_get_connection_info,                                   \
      (struct MHD_Connection *, enum MHD_ConnectionInfoType, ...))                                 \
    X(const char *, MHD_get_version, (void))                                                       \
    X(const char *, MHD_lookup_connection_value,                                                   \
      (struct MHD_Connection *, enum MHD_ValueKind, const char *))                                 \
    X(enum MHD_Result, MHD_queue_response,                                                         \
      (struct MHD_Connection *, unsigned int, struct MHD_Response *))

#define COUNT(ret, name, params) +1
enum { N_FUNCS = 0 KILN_MHD_FUNCS(COUNT) };
#undef COUNT
static union {
    struct {
#define X(ret, name, params) ret(*name) params;
        KILN_MHD_FUNCS(X)
#undef X
    };
    void *ptrs[N_FUNCS];
} fn;
static const char *const fn_names[] = {
#define X(ret, name, params) #name,
    KILN_MHD_FUNCS(X)
#undef X
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
static char load_error[256];

static void load(void)
{
    loaded = kiln_lazylib_load(KILN_LIBMHD, "by kiln serve's HTTP API", fn_names, fn.ptrs, N_FUNCS,
                               load_error, sizeof(load_error)) == 0;
}

/* Loads the library once (thread-safe); 0 when every function is there. */
static int ready(void)
{
    pthread_once(&load_once, load);
    return loaded ? 0 : -1;
}

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    if (ready() < 0) {
        errno = ENOSYS;
        return NULL;
    }
    va_list ap;
    va_start(ap, dh_cls);
    struct MHD_Daemon *d = fn.MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    return d;
}

void MHD_stop_daemon(struct MHD_Daemon *d)
{
    if (ready() == 0)
        fn.MHD_stop_daemon(d);
}

/* The functions below are only reached from a running daemon's callbacks:
 * the library is loaded by then. */
enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *h, const char *v)
{
    return ready() < 0 ? MHD_NO : fn.MHD_add_response_header(r, h, v);
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buf,
                                                     enum MHD_ResponseMemoryMode mode)
{
    return ready() < 0 ? NULL : fn.MHD_create_response_from_buffer(size, buf, mode);
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block,
                                                       MHD_ContentReaderCallback crc, void *cls,
                                                       MHD_ContentReaderFreeCallback crfc)
{
    return ready() < 0 ? NULL : fn.MHD_create_response_from_callback(size, block, crc, cls, crfc);
}

struct MHD_Response *MHD_create_response_from_fd(size_t size, int fd)
{
    return ready() < 0 ? NULL : fn.MHD_create_response_from_fd(size, fd);
}

void MHD_destroy_response(struct MHD_Response *r)
{
    if (ready() == 0)
        fn.MHD_destroy_response(r);
}

/* Every info type kiln asks for (socket context, fd, client address) takes
 * no further argument. */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *c,
                                                        enum MHD_ConnectionInfoType type, ...)
{
    return ready() < 0 ? NULL : fn.MHD_get_connection_info(c, type);
}

const char *MHD_get_version(void)
{
    return ready() < 0 ? load_error : fn.MHD_get_version();
}

const char *MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                        const char *key)
{
    return ready() < 0 ? NULL : fn.MHD_lookup_connection_value(c, kind, key);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status,
                                   struct MHD_Response *r)
{
    return ready() < 0 ? MHD_NO : fn.MHD_queue_response(c, status, r);
}
