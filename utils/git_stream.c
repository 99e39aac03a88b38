/* kiln — libgit2's connections under the address policy: a TCP stream registered as
 * GIT_STREAM_STANDARD (libgit2's http, TLS and ssh transports connect through it) that checks
 * every address DNS gives against the policy of the current fetch and connects to the
 * address it checked. */
#include "utils/git.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/git_impl.h"
#include "utils/mem.h"

/* The policy the connections of this thread's fetch must pass (set around
 * each fetch; NULL outside one: link-local and metadata are still refused). */
static __thread const kiln_netpolicy_t *fetch_policy;

void kiln_git_stream_set_policy(const kiln_netpolicy_t *policy)
{
    fetch_policy = policy;
}

/* This thread's checkout deadline (CLOCK_MONOTONIC, ms; 0 none) and its length. */
static __thread long long fetch_deadline_ms;
static __thread unsigned fetch_timeout_s;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void kiln_git_deadline_set(unsigned timeout_s)
{
    fetch_timeout_s = timeout_s;
    fetch_deadline_ms = timeout_s ? now_ms() + (long long)timeout_s * 1000 : 0;
}

int kiln_git_deadline_left_ms(void)
{
    long long left;

    if (fetch_deadline_ms == 0)
        return -1;
    left = fetch_deadline_ms - now_ms();
    return left <= 0 ? 0 : left > 3600000 ? 3600000 : (int)left;
}

int kiln_git_deadline_error(const char *what)
{
    git_error_set(GIT_ERROR_NET, "%s: no answer within the checkout's timeout (%u s)", what,
                  fetch_timeout_s);
    return -1;
}

/* Waits until fd is ready for events or the deadline passes (no deadline: at once). 1 when
 * ready, 0 at the deadline. */
static int wait_fd(int fd, short events)
{
    for (;;) {
        int left = kiln_git_deadline_left_ms(), r;
        struct pollfd p = {.fd = fd, .events = events};
        if (left < 0)
            return 1;
        if (left == 0)
            return 0;
        r = poll(&p, 1, left);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 1; /* the call that follows reports it */
    }
}

/* connect() bounded by the deadline: non-blocking, then waited for. -1 with errno set
 * (ETIMEDOUT at the deadline). */
static int connect_bounded(int fd, const struct sockaddr *a, socklen_t len)
{
    int flags, soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (kiln_git_deadline_left_ms() < 0)
        return connect(fd, a, len);
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    if (connect(fd, a, len) < 0) {
        if (errno != EINPROGRESS)
            return -1;
        if (!wait_fd(fd, POLLOUT)) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -1;
        if (soerr != 0) {
            errno = soerr;
            return -1;
        }
    }
    return fcntl(fd, F_SETFL, flags);
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
        if (connect_bounded(fd, a->ai_addr, a->ai_addrlen) < 0) {
            last_errno = errno;
            close(fd);
            if (last_errno == ETIMEDOUT && kiln_git_deadline_left_ms() == 0)
                break;
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
    else if (last_errno == ETIMEDOUT && kiln_git_deadline_left_ms() == 0) {
        _cleanup_free_ char *what = kiln_xasprintf("connecting to %s", st->host);
        return kiln_git_deadline_error(what);
    } else
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
    if (!wait_fd(st->s, POLLIN)) {
        _cleanup_free_ char *what = kiln_xasprintf("read from %s", st->host);
        return kiln_git_deadline_error(what);
    }
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
        ssize_t n;
        if (!wait_fd(st->s, POLLOUT)) {
            _cleanup_free_ char *what = kiln_xasprintf("write to %s", st->host);
            return kiln_git_deadline_error(what);
        }
        n = send(st->s, data + off, len - off, flags | MSG_NOSIGNAL);
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
