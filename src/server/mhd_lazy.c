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
#include <stdarg.h>
#include <stdio.h>

#include "utils/lazylib.h"

/* Every function kiln calls (F: returns a value, then the value when the library is missing;
 * V: void). All but MHD_start_daemon and MHD_stop_daemon are only reached from a running
 * daemon's callbacks: the library is loaded by then. */
#define MHD_FUNCS(F, V)                                                                            \
    V(MHD_stop_daemon, (struct MHD_Daemon * d), (d))                                               \
    F(enum MHD_Result, MHD_add_response_header,                                                    \
      (struct MHD_Response * r, const char *h, const char *v), (r, h, v), MHD_NO)                  \
    F(struct MHD_Response *, MHD_create_response_from_buffer,                                      \
      (size_t size, void *buf, enum MHD_ResponseMemoryMode mode), (size, buf, mode), NULL)         \
    F(struct MHD_Response *, MHD_create_response_from_callback,                                    \
      (uint64_t size, size_t block, MHD_ContentReaderCallback crc, void *cls,                      \
       MHD_ContentReaderFreeCallback crfc),                                                        \
      (size, block, crc, cls, crfc), NULL)                                                         \
    F(struct MHD_Response *, MHD_create_response_from_fd, (size_t size, int fd), (size, fd), NULL) \
    V(MHD_destroy_response, (struct MHD_Response * r), (r))                                        \
    F(const char *, MHD_get_version, (void), (), lazy_error)                                       \
    F(const char *, MHD_lookup_connection_value,                                                   \
      (struct MHD_Connection * c, enum MHD_ValueKind kind, const char *key), (c, kind, key), NULL) \
    F(enum MHD_Result, MHD_queue_response,                                                         \
      (struct MHD_Connection * c, unsigned int status, struct MHD_Response *r), (c, status, r),    \
      MHD_NO)

/* The variadic ones, written out below (MHD_start_daemon through MHD_start_daemon_va). */
#define MHD_VARIADIC(F, V)                                                                         \
    F(struct MHD_Daemon *, MHD_start_daemon_va,                                                    \
      (unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc, void *apc_cls,             \
       MHD_AccessHandlerCallback dh, void *dh_cls, va_list ap),                                    \
      (), NULL)                                                                                    \
    F(const union MHD_ConnectionInfo *, MHD_get_connection_info,                                   \
      (struct MHD_Connection * c, enum MHD_ConnectionInfoType type, ...), (), NULL)

KILN_LAZYLIB_DEFINE(MHD_FUNCS, MHD_VARIADIC, "libmicrohttpd.so.12", "by kiln serve's HTTP API")

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    if (lazy_ready() < 0) {
        errno = ENOSYS;
        return NULL;
    }
    va_list ap;
    va_start(ap, dh_cls);
    struct MHD_Daemon *d = lazy_fn.MHD_start_daemon_va(flags, port, apc, apc_cls, dh, dh_cls, ap);
    va_end(ap);
    return d;
}

/* Every info type kiln asks for (socket context, fd, client address) takes
 * no further argument. */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *c,
                                                        enum MHD_ConnectionInfoType type, ...)
{
    return lazy_ready() < 0 ? NULL : lazy_fn.MHD_get_connection_info(c, type);
}
