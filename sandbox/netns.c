/* kiln — empty network namespaces reused by the --network none steps of one build. */
#include "sandbox/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sandbox/net.h"
#include "sandbox/sandbox.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Namespaces one build keeps: one per step running at once (parallel stages); a step
 * finding them all busy gets a namespace of its own. */
#define POOL_SLOTS 8
/* Times an idle namespace may be found holding a socket before it is dropped: a closed
 * netlink socket is gone after a grace period, a TIME_WAIT entry after a minute. */
#define DIRTY_MAX 3

typedef struct slot {
    int ns_fd;      /* the namespace (-1: slot empty) */
    int stat_fd;    /* its /proc/net/sockstat, opened from inside it */
    int busy;       /* a step runs in it */
    int dirty_seen; /* times found holding a socket since its last step */
} slot_t;

struct kiln_netns_pool {
    pthread_mutex_t lock;
    slot_t slots[POOL_SLOTS];
};

kiln_netns_pool_t *kiln_netns_pool_new(void)
{
    kiln_netns_pool_t *p = kiln_xzalloc(sizeof(*p));

    pthread_mutex_init(&p->lock, NULL);
    for (size_t i = 0; i < POOL_SLOTS; i++)
        p->slots[i].ns_fd = p->slots[i].stat_fd = -1;
    return p;
}

static void slot_close(slot_t *s)
{
    if (s->ns_fd >= 0)
        close(s->ns_fd);
    if (s->stat_fd >= 0)
        close(s->stat_fd);
    s->ns_fd = s->stat_fd = -1;
    s->busy = s->dirty_seen = 0;
}

void kiln_netns_pool_free(kiln_netns_pool_t *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < POOL_SLOTS; i++)
        slot_close(&pool->slots[i]);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

int kiln_netns_enter(int ns_fd, int *host_fd)
{
    int host = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

    if (host < 0)
        return -1;
    if (setns(ns_fd, CLONE_NEWNET) < 0) {
        int e = errno;
        close(host);
        errno = e;
        return -1;
    }
    *host_fd = host;
    return 0;
}

void kiln_netns_leave(int host_fd)
{
    /* a thread left in a step's namespace would make every later connection of kiln's
     * (registries, S3, the API) in an empty network: never go on like that */
    if (setns(host_fd, CLONE_NEWNET) < 0)
        abort();
    close(host_fd);
}

/* Writes value into the sysctl file path (of the calling thread's network namespace). */
static int write_sysctl(const char *path, const char *value, kiln_error_t *err)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    size_t n = strlen(value);

    if (fd < 0 || write(fd, value, n) != (ssize_t)n)
        return kiln_error_set(err, errno, "setting %s of a step network namespace", path);
    return 0;
}

/* Makes a namespace for slot s from the calling thread (unshare, set up, back). */
static int slot_make(slot_t *s, kiln_error_t *err)
{
    _cleanup_close_ int host = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    char range[32];
    int ret = -1;

    if (host < 0)
        return kiln_error_set(err, errno, "opening this thread's network namespace");
    if (unshare(CLONE_NEWNET) < 0)
        return kiln_error_set(err, errno, "creating a network namespace for the build's steps");
    s->ns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    s->stat_fd = open("/proc/thread-self/net/sockstat", O_RDONLY | O_CLOEXEC);
    snprintf(range, sizeof(range), "%u %u", KILN_SANDBOX_ID_BASE,
             KILN_SANDBOX_ID_BASE + KILN_SANDBOX_ID_COUNT - 1);
    if (s->ns_fd < 0 || s->stat_fd < 0)
        kiln_error_set(err, errno, "opening a step network namespace");
    /* what a namespace of the step's own allows: ping through ICMP datagram sockets for
     * every id of the step, ports below 1024 (its CAP_NET_BIND_SERVICE counts in its own
     * user namespace only, not in this one; Docker opens them to every user too); no TCP
     * metrics cached per destination, which would outlive the connection */
    else if (kiln_net_loopback_up(err) == 0 &&
             write_sysctl("/proc/sys/net/ipv4/ping_group_range", range, err) == 0 &&
             write_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0", err) == 0 &&
             write_sysctl("/proc/sys/net/ipv4/tcp_no_metrics_save", "1", err) == 0)
        ret = 0;
    if (setns(host, CLONE_NEWNET) < 0)
        abort(); /* see kiln_netns_leave */
    if (ret < 0)
        slot_close(s);
    return ret;
}

/* Whether the namespace holds no socket and no TIME_WAIT entry: its sockstat's "sockets:
 * used" counts every socket of every family made in it that still exists (orphaned TCP
 * sockets included), "TCP: ... tw" its TIME_WAIT entries. */
static int slot_clean(const slot_t *s)
{
    char buf[512];
    ssize_t n = pread(s->stat_fd, buf, sizeof(buf) - 1, 0);
    const char *tcp;
    int used = -1, inuse = -1, orphan = -1, tw = -1;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    tcp = strstr(buf, "\nTCP: ");
    if (sscanf(buf, "sockets: used %d", &used) != 1 || tcp == NULL ||
        sscanf(tcp, "\nTCP: inuse %d orphan %d tw %d", &inuse, &orphan, &tw) != 3)
        return 0;
    return used == 0 && inuse == 0 && tw == 0;
}

int kiln_netns_take(kiln_netns_pool_t *pool, int *ns_fd, kiln_error_t *err)
{
    int pick = -1, empty = -1;
    slot_t *s;

    pthread_mutex_lock(&pool->lock);
    /* the first idle one that is clean; checked when taken rather than when given back: a
     * socket a step closed may be freed a moment later (netlink's after an RCU grace
     * period, as every `ip` or getaddrinfo call makes one), so one found in use is left
     * to settle while the step gets another, and dropped when seen in use DIRTY_MAX times */
    for (int i = 0; i < POOL_SLOTS && pick < 0; i++) {
        s = &pool->slots[i];
        if (s->busy)
            continue;
        if (s->ns_fd >= 0 && slot_clean(s))
            pick = i;
        else if (s->ns_fd >= 0 && ++s->dirty_seen >= DIRTY_MAX)
            slot_close(s);
        if (pick < 0 && s->ns_fd < 0 && empty < 0)
            empty = i;
    }
    if (pick < 0 && empty < 0) {
        /* every slot holds one still in use: the oldest-looking goes */
        for (int i = 0; i < POOL_SLOTS && empty < 0; i++)
            if (!pool->slots[i].busy) {
                slot_close(&pool->slots[i]);
                empty = i;
            }
    }
    if (pick < 0)
        pick = empty;
    if (pick >= 0)
        pool->slots[pick].busy = 1; /* made below, outside the lock, when empty */
    pthread_mutex_unlock(&pool->lock);
    if (pick < 0)
        return kiln_error_set(err, EBUSY, "every pooled network namespace is in use");
    s = &pool->slots[pick];
    if (s->ns_fd < 0 && slot_make(s, err) < 0) {
        pthread_mutex_lock(&pool->lock);
        s->busy = 0;
        pthread_mutex_unlock(&pool->lock);
        return -1;
    }
    s->dirty_seen = 0;
    *ns_fd = s->ns_fd;
    return pick;
}

void kiln_netns_give(kiln_netns_pool_t *pool, int slot)
{
    pthread_mutex_lock(&pool->lock);
    pool->slots[slot].busy = 0;
    pthread_mutex_unlock(&pool->lock);
}
