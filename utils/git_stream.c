/* kiln — libgit2's connections under the address policy: a TCP stream registered as
 * GIT_STREAM_STANDARD (libgit2's http, TLS and ssh transports connect through it) that checks
 * every address DNS gives against the policy of the current fetch and connects to the
 * address it checked. */
#include "utils/git.h"

#include <errno.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "utils/git_impl.h"
#include "utils/mem.h"

/* The policy the connections of this thread's fetch must pass (set around
 * each fetch; NULL outside one: link-local and metadata are still refused). */
static __thread const kiln_netpolicy_t *fetch_policy;

void kiln_git_stream_set_policy(const kiln_netpolicy_t *policy)
{
    fetch_policy = policy;
}

/* A TCP stream registered as libgit2's GIT_STREAM_STANDARD: its http
 * transport, its OpenSSL TLS stream (which wraps the standard stream) and its
 * ssh transport all open connections through it. The layout is that of
 * libgit2's own git_socket_stream (parent, host, port, fd) because its ssh
 * transport hands the fd in that place to libssh2. */
typedef struct policed_stream {
    git_stream parent;
    char *host;
    char *port;
    int s;
} policed_stream_t;

/* Resolves the host, checks each candidate address with the policy and
 * connects to the first that passes and answers: the address checked is the
 * address connected to, whatever DNS says next. */
static int ps_connect(git_stream *gs)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    const kiln_netpolicy_t *p = fetch_policy;
    kiln_netpolicy_t *fallback = p ? NULL : kiln_netpolicy_new(KILN_NETPOLICY_NO_LINK_LOCAL);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *ai = NULL;
    kiln_error_t refusal = {0};
    int gai, last_errno = 0;

    gai = getaddrinfo(st->host, st->port, &hints, &ai);
    if (gai != 0) {
        kiln_netpolicy_free(fallback);
        git_error_set(GIT_ERROR_NET, "failed to resolve address for %s: %s", st->host,
                      gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *a = ai; a != NULL && st->s < 0; a = a->ai_next) {
        int fd;
        if (kiln_netpolicy_check(p ? p : fallback, a->ai_addr, a->ai_addrlen,
                                 refusal.msg[0] ? NULL : &refusal) < 0)
            continue;
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            last_errno = errno;
            close(fd);
            continue;
        }
        st->s = fd;
    }
    freeaddrinfo(ai);
    kiln_netpolicy_free(fallback);
    if (st->s >= 0)
        return 0;
    if (refusal.msg[0] && last_errno == 0 &&
        strncmp(refusal.msg, st->host, strlen(st->host)) == 0) /* an address: said once */
        git_error_set_str(GIT_ERROR_NET, refusal.msg);
    else if (refusal.msg[0] && last_errno == 0)
        git_error_set(GIT_ERROR_NET, "%s: %s", st->host, refusal.msg);
    else
        git_error_set(GIT_ERROR_NET, "failed to connect to %s: %s", st->host,
                      strerror(last_errno ? last_errno : ECONNREFUSED));
    return -1;
}

static int ps_certificate(git_cert **out, git_stream *gs)
{
    (void)out;
    (void)gs;
    git_error_set_str(GIT_ERROR_NET, "a plain TCP stream has no certificate");
    return -1;
}

static ssize_t ps_read(git_stream *gs, void *data, size_t len)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    ssize_t n;
    do {
        n = recv(st->s, data, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        git_error_set(GIT_ERROR_NET, "read from %s: %s", st->host, strerror(errno));
    return n;
}

static ssize_t ps_write(git_stream *gs, const char *data, size_t len, int flags)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(st->s, data + off, len - off, flags | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            git_error_set(GIT_ERROR_NET, "write to %s: %s", st->host, strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    return (ssize_t)len;
}

static int ps_close(git_stream *gs)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    if (st->s >= 0)
        close(st->s);
    st->s = -1;
    return 0;
}

static void ps_free(git_stream *gs)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    ps_close(gs);
    free(st->host);
    free(st->port);
    free(st);
}

static int ps_new(git_stream **out, const char *host, const char *port)
{
    static const git_stream ops = {.version = GIT_STREAM_VERSION,
                                   .connect = ps_connect,
                                   .certificate = ps_certificate,
                                   .read = ps_read,
                                   .write = ps_write,
                                   .close = ps_close,
                                   .free = ps_free};
    policed_stream_t *st = kiln_xzalloc(sizeof(*st));
    st->parent = ops;
    st->host = kiln_xstrdup(host);
    st->port = kiln_xstrdup(port);
    st->s = -1;
    *out = &st->parent;
    return 0;
}

/* Registers the policed stream (again after each git_libgit2_init: the
 * registry is cleared when libgit2 shuts down). */
int kiln_git_stream_register(kiln_error_t *err)
{
    git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = ps_new};
    if (git_stream_register(GIT_STREAM_STANDARD, &reg) < 0)
        return kiln_error_set(err, 0, "git: cannot register the policed socket stream");
    return 0;
}
