/* kiln — the layer writer's directory walk, plain or read ahead by a thread (see layer_walk.h). */
#include "oci/layer_walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define DIRENT_BUF_SIZE (32 * 1024)
#define MAX_DEPTH 512
#define SYMLINK_MAX 4096
#define WALK_STACK (4 * 1024 * 1024)

/* The queue between the walk thread and the writer: a ring of items. */
struct rq {
    pthread_mutex_t mu;
    pthread_cond_t cv_items; /* the writer waits for an item */
    pthread_cond_t cv_room;  /* the walk waits for room */
    kiln_layer_item_t ring[KILN_LAYER_RA_ITEMS];
    size_t cap; /* items that may wait: KILN_LAYER_RA_ITEMS, less under a low fd limit */
    size_t first, count;
    uint64_t bytes;     /* file data asked for by the queued items */
    int done;           /* the walk ended (werr set when it failed) */
    int stop;           /* the writer gave up: the walk stops */
    int writer_waiting; /* the writer sleeps on cv_items */
    int walker_waiting; /* the walk sleeps on cv_room */
    kiln_error_t *werr; /* the walk's error */
};

struct walk {
    const kiln_layer_walk_t *cfg;
    struct rq *q; /* NULL: plain */
};

/* "a/b", malloc'ed: two per entry, so not through a printf. */
static char *join2(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *r = kiln_xmalloc(la + lb + 2);
    memcpy(r, a, la);
    r[la] = '/';
    memcpy(r + la + 1, b, lb + 1);
    return r;
}

char *kiln_layer_join_prefix(const char *prefix, const char *path)
{
    while (*path == '/')
        path++;
    if (prefix[0] == '\0')
        return kiln_xstrdup(path);
    if (path[0] == '\0')
        return kiln_xstrdup(prefix);
    return join2(prefix, path);
}

void kiln_layer_item_release(kiln_layer_item_t *it)
{
    if (it->fd >= 0 && (it->kind == KILN_LAYER_ITEM_DIR_END || !S_ISDIR(it->st.st_mode)))
        close(it->fd);
    it->fd = -1;
    free(it->lpath);
    free(it->target);
    it->lpath = it->target = NULL;
}

/* The file data an item asks the kernel to read ahead. */
static uint64_t item_ra_bytes(const kiln_layer_item_t *it)
{
    if (it->kind != KILN_LAYER_ITEM_ENTRY || !S_ISREG(it->st.st_mode) || it->fd < 0 ||
        it->st.st_size <= 0)
        return 0;
    return it->st.st_size < KILN_LAYER_RA_FILE ? (uint64_t)it->st.st_size : KILN_LAYER_RA_FILE;
}

/* Queues an item for the writer (asking for its data first), waiting while
 * the queue is full. Takes the item; -1 when the writer stopped. */
static int enqueue(struct rq *q, kiln_layer_item_t *it, kiln_error_t *err)
{
    uint64_t ra = item_ra_bytes(it);
    if (ra > 0)
        posix_fadvise(it->fd, 0, (off_t)ra, POSIX_FADV_WILLNEED);
    pthread_mutex_lock(&q->mu);
    while (!q->stop &&
           (q->count >= q->cap || (q->count > 0 && q->bytes + ra > KILN_LAYER_RA_BYTES))) {
        q->walker_waiting = 1;
        pthread_cond_wait(&q->cv_room, &q->mu);
    }
    q->walker_waiting = 0;
    if (q->stop) {
        pthread_mutex_unlock(&q->mu);
        kiln_layer_item_release(it);
        return kiln_error_set(err, ECANCELED, "layer walk stopped");
    }
    q->ring[(q->first + q->count) % KILN_LAYER_RA_ITEMS] = *it;
    q->count++;
    q->bytes += ra;
    if (q->writer_waiting)
        pthread_cond_signal(&q->cv_items);
    pthread_mutex_unlock(&q->mu);
    it->fd = -1;
    it->lpath = it->target = NULL;
    return 0;
}

/* Hands an item to the writer: at once (plain) or through the queue. */
static int emit(struct walk *wk, kiln_layer_item_t *it, kiln_error_t *err)
{
    if (wk->q != NULL)
        return enqueue(wk->q, it, err);
    return wk->cfg->emit(wk->cfg->emit_ctx, it, err);
}

/* Names in a listing carry their d_type in front (one byte) so that a
 * regular file can be opened without a stat first; sorting skips it. */
static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a + 1, *(char *const *)b + 1);
}

/* Reads the names in a directory (without . and ..), sorted bytewise, each
 * preceded by its d_type byte (DT_UNKNOWN where the filesystem gives none).
 * Read with getdents64 on fd itself (freshly opened, read from its start):
 * no dup, fdopendir and closedir per directory. */
static int list_dir(int fd, const char *lpath, char ***out, size_t *count, kiln_error_t *err)
{
    _cleanup_free_ char *buf = kiln_xmalloc(DIRENT_BUF_SIZE);
    char **names = NULL;
    size_t n = 0, alloc = 0;
    for (;;) {
        ssize_t got = getdents64(fd, buf, DIRENT_BUF_SIZE);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int saved = errno;
            for (size_t i = 0; i < n; i++)
                free(names[i]);
            free(names);
            return kiln_error_set(err, saved, "reading directory %s", lpath);
        }
        if (got == 0)
            break;
        for (ssize_t off = 0; off < got;) {
            struct dirent64 *de = (struct dirent64 *)(buf + off);
            off += de->d_reclen;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (n + 1 >= alloc) {
                alloc = alloc ? alloc * 2 : 32;
                names = kiln_xrealloc(names, alloc * sizeof(*names));
            }
            size_t len = strlen(de->d_name);
            char *e = kiln_xmalloc(len + 2);
            e[0] = (char)de->d_type;
            memcpy(e + 1, de->d_name, len + 1);
            names[n++] = e;
        }
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    if (names == NULL)
        names = kiln_xzalloc(sizeof(*names));
    names[n] = NULL;
    *out = names;
    *count = n;
    return 0;
}

/* Opens dirfd/name that its directory listing says is a regular file or a
 * directory (dtype), and stats the open file: one system call less than a
 * stat then an open. -1 when it is not that after all (or cannot be opened):
 * the caller stats it first. */
static int open_listed(int dirfd, const char *name, unsigned char dtype, struct stat *st)
{
    int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd = openat(dirfd, name, dtype == DT_DIR ? flags | O_DIRECTORY : flags);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) < 0 || (dtype == DT_DIR ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode))) {
        close(fd);
        return -1;
    }
    return fd;
}

static int visit(struct walk *wk, int dirfd, const char *name, const char *rel, int depth,
                 int skip_self, unsigned char dtype, kiln_error_t *err);

/* Visits the names of the open directory fd (layer path lpath) in order. */
static int visit_children(struct walk *wk, int fd, const char *name, const char *rel,
                          const char *lpath, int depth, kiln_error_t *err)
{
    _cleanup_strv_ char **names = NULL;
    size_t count = 0;
    if (list_dir(fd, lpath[0] ? lpath : name, &names, &count, err) < 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        _cleanup_free_ char *crel = rel[0] ? join2(rel, names[i] + 1) : kiln_xstrdup(names[i] + 1);
        if (visit(wk, fd, names[i] + 1, crel, depth + 1, 0, (unsigned char)names[i][0], err) < 0)
            return -1;
    }
    return 0;
}

/* Opens (regular files and directories) and stats dirfd/name, checked the way
 * the layer needs it: *fd the open file or -1. 0, or -1 with err. */
static int open_entry(int dirfd, const char *name, const char *rel, int skip_self,
                      unsigned char dtype, struct stat *st, int *fd, kiln_error_t *err)
{
    if ((dtype == DT_REG || dtype == DT_DIR) && !skip_self)
        *fd = open_listed(dirfd, name, dtype, st);
    if (*fd < 0 && fstatat(dirfd, name, st, skip_self ? 0 : AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", rel[0] ? rel : name);
    if (skip_self && !S_ISDIR(st->st_mode))
        return kiln_error_set(err, ENOTDIR, "%s", name);
    return 0;
}

/* A symlink's target, malloc'ed; NULL with err. Not inlined: its buffer stays
 * off the recursion's frames (512 levels deep at most). */
static __attribute__((noinline)) char *read_target(int dirfd, const char *name, const char *lpath,
                                                   kiln_error_t *err)
{
    char target[SYMLINK_MAX];
    ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
    if (n < 0) {
        kiln_error_set(err, errno, "reading symlink %s", lpath);
        return NULL;
    }
    return kiln_xstrndup(target, (size_t)n);
}

/* Emits the end of directory fd (r: how its walk went; its error is kept).
 * The writer may still read the directory's xattrs through fd: its DIR_END,
 * after every entry of the directory, closes it. Not inlined: the error it
 * may drop stays off the recursion's frames. */
static __attribute__((noinline)) int emit_dir_end(struct walk *wk, int fd, int r, kiln_error_t *err)
{
    kiln_layer_item_t end = {.kind = KILN_LAYER_ITEM_DIR_END, .fd = fd};
    kiln_error_t end_err = {0};
    if (emit(wk, &end, r < 0 ? &end_err : err) < 0 && r == 0)
        r = -1;
    return r;
}

/* The recursive walk: dirfd/name as relative path rel ("" for the root of a
 * write_dir). dtype: name's d_type from its directory's listing (DT_UNKNOWN
 * when there is none). */
static int visit(struct walk *wk, int dirfd, const char *name, const char *rel, int depth,
                 int skip_self, unsigned char dtype, kiln_error_t *err)
{
    const kiln_layer_walk_t *cfg = wk->cfg;
    kiln_layer_item_t it = {.kind = KILN_LAYER_ITEM_ENTRY, .fd = -1};
    _cleanup_close_ int fd = -1;
    if (open_entry(dirfd, name, rel, skip_self, dtype, &it.st, &fd, err) < 0)
        return -1;
    if (depth > MAX_DEPTH)
        return kiln_error_set(err, ELOOP, "%s: directories nested deeper than %d", rel, MAX_DEPTH);
    if (!skip_self && cfg->filter != NULL) {
        int keep = cfg->filter(cfg->filter_ctx, rel, &it.st, err);
        if (keep <= 0)
            return keep;
    }
    _cleanup_free_ char *lpath = kiln_layer_join_prefix(cfg->prefix, rel);
    if (fd < 0 && (S_ISREG(it.st.st_mode) || S_ISDIR(it.st.st_mode))) {
        /* The root given by the caller may be a symlink to a directory. */
        int flags = O_RDONLY | (skip_self ? 0 : O_NOFOLLOW) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
        if (S_ISDIR(it.st.st_mode))
            flags |= O_DIRECTORY;
        fd = openat(dirfd, name, flags);
        if (fd < 0)
            return kiln_error_set(err, errno, "opening %s", lpath[0] ? lpath : name);
        struct stat st2;
        if (fstat(fd, &st2) < 0 || st2.st_ino != it.st.st_ino || st2.st_dev != it.st.st_dev)
            return kiln_error_set(err, EAGAIN, "%s changed while the layer was written", lpath);
    }
    int is_dir = S_ISDIR(it.st.st_mode);
    if (!skip_self) {
        if (S_ISLNK(it.st.st_mode) && (it.target = read_target(dirfd, name, lpath, err)) == NULL)
            return -1;
        /* A directory's fd is lent to its entry (xattrs) and kept for the listing. */
        it.fd = is_dir ? fd : steal_fd(&fd);
        it.lpath = steal_pointer(&lpath);
        if (emit(wk, &it, err) < 0)
            return -1;
        if (!is_dir)
            return 0;
        lpath = kiln_layer_join_prefix(cfg->prefix, rel);
    }
    int r = visit_children(wk, fd, name, rel, lpath, depth, err);
    return emit_dir_end(wk, steal_fd(&fd), r, err);
}

/* The walk thread: the whole walk into the queue; its error, if any, after
 * the items before it. */
struct walk_arg {
    struct walk wk;
    int dirfd;
    const char *name, *rel;
    int skip_self;
};

static void *walk_main(void *arg)
{
    struct walk_arg *a = arg;
    struct rq *q = a->wk.q;
    kiln_error_t *e = kiln_xzalloc(sizeof(*e));
    int r = visit(&a->wk, a->dirfd, a->name, a->rel, 0, a->skip_self, DT_UNKNOWN, e);
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    if (r < 0 && !q->stop)
        q->werr = e;
    else
        free(e);
    pthread_cond_signal(&q->cv_items);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Takes the next item into *it: 1, or 0 once the walk ended and the queue is empty. */
static int dequeue(struct rq *q, kiln_layer_item_t *it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->done) {
        q->writer_waiting = 1;
        pthread_cond_wait(&q->cv_items, &q->mu);
    }
    q->writer_waiting = 0;
    int got = q->count > 0;
    if (got) {
        *it = q->ring[q->first];
        q->first = (q->first + 1) % KILN_LAYER_RA_ITEMS;
        q->count--;
        q->bytes -= item_ra_bytes(it);
        /* Woken once half the queue is free, not for every item taken. */
        if (q->walker_waiting && q->count <= q->cap / 2)
            pthread_cond_signal(&q->cv_room);
    }
    pthread_mutex_unlock(&q->mu);
    return got;
}

/* The read-ahead form: the walk in a thread, the items written here. */
static int walk_readahead(const kiln_layer_walk_t *cfg, int dirfd, const char *name,
                          const char *rel, int skip_self, kiln_error_t *err)
{
    struct rq *q = kiln_xzalloc(sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv_items, NULL);
    pthread_cond_init(&q->cv_room, NULL);
    /* Each waiting item may hold an fd: at most an eighth of the fd limit. */
    struct rlimit rl;
    q->cap = KILN_LAYER_RA_ITEMS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 8 < q->cap)
        q->cap = rl.rlim_cur / 8 < 16 ? 16 : (size_t)(rl.rlim_cur / 8);
    struct walk_arg a = {.wk = {.cfg = cfg, .q = q},
                         .dirfd = dirfd,
                         .name = name,
                         .rel = rel,
                         .skip_self = skip_self};
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* The recursion's frames are a few hundred bytes a level, 512 levels at most. */
    pthread_attr_setstacksize(&attr, WALK_STACK);
    int r = pthread_create(&th, &attr, walk_main, &a);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        /* No thread (a process at its limit): the same walk in this thread. */
        a.wk.q = NULL;
        r = visit(&a.wk, dirfd, name, rel, 0, skip_self, DT_UNKNOWN, err);
        goto out;
    }
    kiln_layer_item_t it;
    while (dequeue(q, &it))
        if (cfg->emit(cfg->emit_ctx, &it, err) < 0) {
            r = -1;
            break;
        }
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_signal(&q->cv_room);
    pthread_mutex_unlock(&q->mu);
    pthread_join(th, NULL);
    /* What the walk queued after the writer stopped. */
    for (; q->count > 0; q->count--, q->first = (q->first + 1) % KILN_LAYER_RA_ITEMS)
        kiln_layer_item_release(&q->ring[q->first]);
    if (r == 0 && q->werr != NULL) {
        if (err)
            *err = *q->werr;
        r = -1;
    }
out:
    free(q->werr);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_items);
    pthread_cond_destroy(&q->cv_room);
    free(q);
    return r;
}

int kiln_layer_walk(const kiln_layer_walk_t *cfg, int dirfd, const char *name, const char *rel,
                    int skip_self, kiln_error_t *err)
{
    if (cfg->readahead)
        return walk_readahead(cfg, dirfd, name, rel, skip_self, err);
    struct walk wk = {.cfg = cfg, .q = NULL};
    return visit(&wk, dirfd, name, rel, 0, skip_self, DT_UNKNOWN, err);
}
