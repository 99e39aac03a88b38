/* kiln — the content-addressed blob store (see store.h for layout and the lock
 * protocol). */
#include "oci/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/image.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define WRITER_BUF (256u * 1024)
#define REF_NAME_MAX 1024

struct kiln_store {
    char *root;
    int lock_fd;
    int blobs_fd;   /* <root>/blobs/sha256 */
    int tmp_fd;     /* <root>/tmp */
    int refs_fd;    /* <root>/refs */
    dev_t lock_dev; /* identity of <root>/lock (see held_count) */
    ino_t lock_ino;
    int counted;
};

struct kiln_store_writer {
    kiln_store_t *store;
    int fd;
    char tmp_name[64];
    kiln_sha256_t hash;
    uint64_t written;
    int has_expected;
    kiln_digest_t expected;
    int64_t expected_size;
    size_t used;
    unsigned char buf[WRITER_BUF];
};

char *kiln_store_default_root(void)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");

    if (geteuid() == 0)
        return kiln_xstrdup("/var/lib/kiln");
    if (xdg != NULL && xdg[0] == '/')
        return kiln_xasprintf("%s/kiln", xdg);
    if (home != NULL && home[0] == '/')
        return kiln_xasprintf("%s/.local/share/kiln", home);
    return NULL;
}

/* Opens (creating) directory `name` under root as an O_PATH-less dir fd. */
static int open_subdir(const char *root, const char *name, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, name);
    int fd;

    if (kiln_fs_mkdir_p(p, 0700, err) < 0)
        return kiln_error_prefix(err, "blob store %s", root);
    fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "blob store: open %s", p);
    return fd;
}

/* Takes flock `op` on fd, retrying on EINTR. */
static int lock_fd(int fd, int op)
{
    int r;
    do
        r = flock(fd, op);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Opens <root>/<name> (creating it): "lock" or the "gate" that keeps a
 * waiting prune from being starved by ever-overlapping builds. */
static int open_lock(const char *root, const char *name, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, name);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return kiln_error_set(err, errno, "blob store: open lock file %s", p);
    return fd;
}

/* Stores this process holds open, by lock file identity: a second handle on
 * a store the process already holds skips the gate (a prune waiting behind
 * the first handle would otherwise deadlock a nested open). */
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    dev_t dev;
    ino_t ino;
    unsigned n;
} open_roots[32];

/* Counts a handle on (dev, ino) (delta +1/-1); returns how many there were before. */
static unsigned held_count(dev_t dev, ino_t ino, int delta)
{
    unsigned before = 0;
    size_t i, free_slot = sizeof(open_roots) / sizeof(open_roots[0]);

    pthread_mutex_lock(&open_mu);
    for (i = 0; i < sizeof(open_roots) / sizeof(open_roots[0]); i++) {
        if (open_roots[i].n > 0 && open_roots[i].dev == dev && open_roots[i].ino == ino)
            break;
        if (open_roots[i].n == 0 && free_slot == sizeof(open_roots) / sizeof(open_roots[0]))
            free_slot = i;
    }
    if (i == sizeof(open_roots) / sizeof(open_roots[0]) && delta > 0 &&
        free_slot < sizeof(open_roots) / sizeof(open_roots[0])) {
        i = free_slot;
        open_roots[i].dev = dev;
        open_roots[i].ino = ino;
        open_roots[i].n = 0;
    }
    if (i < sizeof(open_roots) / sizeof(open_roots[0])) {
        before = open_roots[i].n;
        if (delta > 0 || open_roots[i].n > 0)
            open_roots[i].n = (unsigned)((int)open_roots[i].n + delta);
    }
    pthread_mutex_unlock(&open_mu);
    return before;
}

int kiln_store_open(const char *root, kiln_store_t **out, kiln_error_t *err)
{
    struct stat lst;
    _cleanup_close_ int gate = -1;
    kiln_store_t *s;

    if (root == NULL || root[0] == '\0')
        return kiln_error_set(err, 0, "blob store: no root directory given");
    if (kiln_fs_mkdir_p(root, 0700, err) < 0)
        return kiln_error_prefix(err, "blob store %s", root);
    s = kiln_xzalloc(sizeof(*s));
    s->root = kiln_xstrdup(root);
    s->lock_fd = s->blobs_fd = s->tmp_fd = s->refs_fd = -1;
    gate = open_lock(root, "gate", err);
    if (gate < 0)
        goto fail;
    s->lock_fd = open_lock(root, "lock", err);
    if (s->lock_fd < 0)
        goto fail;
    if (fstat(s->lock_fd, &lst) < 0) {
        kiln_error_set(err, errno, "blob store %s: lock", root);
        goto fail;
    }
    s->lock_dev = lst.st_dev;
    s->lock_ino = lst.st_ino;
    s->counted = 1;
    /* pass the gate (held exclusively by a waiting prune) unless this process
     * already holds the store, then hold "lock" shared for the handle's life */
    if ((held_count(lst.st_dev, lst.st_ino, +1) == 0 && lock_fd(gate, LOCK_SH) < 0) ||
        lock_fd(s->lock_fd, LOCK_SH) < 0) {
        kiln_error_set(err, errno, "blob store %s: lock", root);
        goto fail;
    }
    close(steal_fd(&gate));
    if ((s->blobs_fd = open_subdir(root, "blobs/sha256", err)) < 0 ||
        (s->tmp_fd = open_subdir(root, "tmp", err)) < 0 ||
        (s->refs_fd = open_subdir(root, "refs", err)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    kiln_store_close(s);
    return -1;
}

void kiln_store_close(kiln_store_t *s)
{
    if (s == NULL)
        return;
    kiln_closep(&s->blobs_fd);
    kiln_closep(&s->tmp_fd);
    kiln_closep(&s->refs_fd);
    kiln_closep(&s->lock_fd); /* closing drops the flock */
    if (s->counted)
        held_count(s->lock_dev, s->lock_ino, -1);
    free(s->root);
    free(s);
}

const char *kiln_store_root(const kiln_store_t *s)
{
    return s->root;
}

char *kiln_store_blob_path(const kiln_store_t *s, const kiln_digest_t *d)
{
    return kiln_xasprintf("%s/blobs/sha256/%s", s->root, d->hex);
}

int kiln_store_has(kiln_store_t *s, const kiln_digest_t *d, uint64_t *size)
{
    struct stat st;

    if (fstatat(s->blobs_fd, d->hex, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return 0;
    if (size != NULL)
        *size = (uint64_t)st.st_size;
    return 1;
}

int kiln_store_open_blob(kiln_store_t *s, const kiln_digest_t *d, int *fd, uint64_t *size,
                         kiln_error_t *err)
{
    struct stat st;
    _cleanup_close_ int f = openat(s->blobs_fd, d->hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (f < 0)
        return kiln_error_set(err, errno, "blob sha256:%s not in store %s", d->hex, s->root);
    if (fstat(f, &st) < 0)
        return kiln_error_set(err, errno, "blob sha256:%s: stat", d->hex);
    if (size != NULL)
        *size = (uint64_t)st.st_size;
    *fd = steal_fd(&f);
    return 0;
}

int kiln_store_read_blob(kiln_store_t *s, const kiln_digest_t *d, size_t cap, char **out,
                         size_t *len, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *data = NULL;
    kiln_digest_t got;
    size_t n;

    if (cap == 0)
        cap = KILN_STORE_READ_DEFAULT_CAP;
    if (kiln_store_open_blob(s, d, &fd, NULL, err) < 0)
        return -1;
    if (kiln_fs_read_fd(fd, cap, &data, &n, err) < 0)
        return kiln_error_prefix(err, "blob sha256:%s", d->hex);
    kiln_digest_bytes(data, n, &got);
    if (!kiln_digest_equal(&got, d))
        return kiln_error_set(err, EIO,
                              "blob sha256:%s in store %s is corrupt (content hashes to "
                              "sha256:%s)",
                              d->hex, s->root, got.hex);
    *out = steal_pointer(&data);
    *len = n;
    return 0;
}

int kiln_store_writer_new(kiln_store_t *s, const kiln_digest_t *expected, int64_t expected_size,
                          kiln_store_writer_t **out, kiln_error_t *err)
{
    kiln_store_writer_t *w = kiln_xzalloc(sizeof(*w));
    int tries;

    w->store = s;
    w->fd = -1;
    w->expected_size = expected_size;
    if (expected != NULL) {
        w->has_expected = 1;
        w->expected = *expected;
    }
    for (tries = 0; tries < 100 && w->fd < 0; tries++) {
        unsigned long r = ((unsigned long)random() << 16) ^ (unsigned long)getpid() ^
                          ((unsigned long)tries << 40);
        snprintf(w->tmp_name, sizeof(w->tmp_name), "blob-%d-%lx", getpid(), r);
        w->fd = openat(s->tmp_fd, w->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (w->fd < 0 && errno != EEXIST) {
            kiln_error_set(err, errno, "blob store %s: create temp file", s->root);
            free(w);
            return -1;
        }
    }
    if (w->fd < 0) {
        free(w);
        return kiln_error_set(err, EEXIST, "blob store %s: cannot create a temp file", s->root);
    }
    if (kiln_sha256_init(&w->hash, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* Writes the buffered bytes to the temp file. */
static int writer_flush(kiln_store_writer_t *w, kiln_error_t *err)
{
    if (w->used == 0)
        return 0;
    if (kiln_fs_write_all(w->fd, w->buf, w->used, err) < 0)
        return kiln_error_prefix(err, "blob store %s: write temp file", w->store->root);
    w->used = 0;
    return 0;
}

int kiln_store_writer_write(kiln_store_writer_t *w, const void *buf, size_t len, kiln_error_t *err)
{
    const unsigned char *p = buf;

    if (w->expected_size >= 0 && w->written + len > (uint64_t)w->expected_size)
        return kiln_error_set(err, EFBIG, "blob %s%s: more than the expected %lld bytes",
                              w->has_expected ? "sha256:" : "",
                              w->has_expected ? w->expected.hex : "", (long long)w->expected_size);
    kiln_sha256_update(&w->hash, buf, len);
    w->written += len;
    if (len >= WRITER_BUF) {
        if (writer_flush(w, err) < 0)
            return -1;
        if (kiln_fs_write_all(w->fd, p, len, err) < 0)
            return kiln_error_prefix(err, "blob store %s: write temp file", w->store->root);
        return 0;
    }
    if (w->used + len > WRITER_BUF && writer_flush(w, err) < 0)
        return -1;
    memcpy(w->buf + w->used, p, len);
    w->used += len;
    return 0;
}

static int writer_sink_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    return kiln_store_writer_write(ctx, buf, len, err);
}

kiln_sink_t kiln_store_writer_sink(kiln_store_writer_t *w)
{
    kiln_sink_t s = {writer_sink_write, w};
    return s;
}

void kiln_store_writer_abort(kiln_store_writer_t *w)
{
    if (w == NULL)
        return;
    kiln_sha256_dispose(&w->hash);
    kiln_closep(&w->fd);
    unlinkat(w->store->tmp_fd, w->tmp_name, 0);
    free(w);
}

int kiln_store_writer_commit(kiln_store_writer_t *w, kiln_digest_t *digest, uint64_t *size,
                             kiln_error_t *err)
{
    kiln_store_t *s = w->store;
    kiln_digest_t got;
    uint64_t n = w->written;

    if (writer_flush(w, err) < 0)
        goto fail;
    kiln_sha256_final(&w->hash, &got);
    if (w->has_expected && !kiln_digest_equal(&got, &w->expected)) {
        kiln_error_set(err, EIO,
                       "blob sha256:%s: content does not match its digest (got sha256:%s)",
                       w->expected.hex, got.hex);
        goto fail;
    }
    if (w->expected_size >= 0 && n != (uint64_t)w->expected_size) {
        kiln_error_set(err, EIO, "blob sha256:%s: size %llu does not match the expected %lld",
                       got.hex, (unsigned long long)n, (long long)w->expected_size);
        goto fail;
    }
    if (!kiln_store_has(s, &got, NULL)) {
        if (fchmod(w->fd, 0444) < 0 || fsync(w->fd) < 0) {
            kiln_error_set(err, errno, "blob store %s: sync temp file", s->root);
            goto fail;
        }
        if (renameat(s->tmp_fd, w->tmp_name, s->blobs_fd, got.hex) < 0) {
            kiln_error_set(err, errno, "blob store %s: rename blob sha256:%s into place", s->root,
                           got.hex);
            goto fail;
        }
        fsync(s->blobs_fd);
    }
    kiln_store_writer_abort(w); /* closes, drops the temp name if still there */
    if (digest != NULL)
        *digest = got;
    if (size != NULL)
        *size = n;
    return 0;
fail:
    kiln_store_writer_abort(w);
    return -1;
}

int kiln_store_put_bytes(kiln_store_t *s, const void *buf, size_t len, kiln_digest_t *out,
                         kiln_error_t *err)
{
    kiln_store_writer_t *w;
    kiln_digest_t d;

    kiln_digest_bytes(buf, len, &d);
    if (kiln_store_has(s, &d, NULL)) {
        if (out != NULL)
            *out = d;
        return 0;
    }
    if (kiln_store_writer_new(s, &d, (int64_t)len, &w, err) < 0)
        return -1;
    if (kiln_store_writer_write(w, buf, len, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    return kiln_store_writer_commit(w, out, NULL, err);
}

int kiln_store_put_fd(kiln_store_t *s, int fd, const kiln_digest_t *expected, int64_t expected_size,
                      kiln_digest_t *out, uint64_t *size, kiln_error_t *err)
{
    kiln_store_writer_t *w;
    kiln_sink_t sink;

    if (kiln_store_writer_new(s, expected, expected_size, &w, err) < 0)
        return -1;
    sink = kiln_store_writer_sink(w);
    if (kiln_sink_copy_fd(&sink, fd, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    return kiln_store_writer_commit(w, out, size, err);
}

/* --- refs --------------------------------------------------------------- */

/* Checks a ref name and derives its file name (hex of its sha256). */
static int ref_file(const char *name, kiln_digest_t *file, kiln_error_t *err)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > REF_NAME_MAX)
        return kiln_error_set(err, 0, "invalid ref name: length must be 1..%d", REF_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
            return kiln_error_set(
                err, EINVAL, "invalid ref name '%.80s': only printable ASCII without spaces", name);
    }
    kiln_digest_bytes(name, n, file);
    return 0;
}

int kiln_store_ref_set(kiln_store_t *s, const char *name, const kiln_digest_t *d, kiln_error_t *err)
{
    kiln_digest_t f;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *body = NULL;

    if (ref_file(name, &f, err) < 0)
        return -1;
    path = kiln_xasprintf("%s/refs/%s", s->root, f.hex);
    body = kiln_xasprintf("sha256:%s\n%s\n", d->hex, name);
    if (kiln_fs_write_file_atomic(path, body, strlen(body), 0644, err) < 0)
        return kiln_error_prefix(err, "ref %s", name);
    return 0;
}

/* Reads one ref file; fills name (malloc'ed) and digest. 0 ok, <0 bad file. */
static int ref_read(int refs_fd, const char *file, char **name, kiln_digest_t *d, kiln_error_t *err)
{
    _cleanup_close_ int fd = openat(refs_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_free_ char *data = NULL;
    size_t len;
    char *nl, *nl2;

    if (fd < 0)
        return kiln_error_set(err, errno, "ref file %s", file);
    if (kiln_fs_read_fd(fd, REF_NAME_MAX + 128, &data, &len, err) < 0)
        return kiln_error_prefix(err, "ref file %s", file);
    nl = strchr(data, '\n');
    if (nl == NULL)
        return kiln_error_set(err, 0, "ref file %s: malformed", file);
    *nl = '\0';
    if (kiln_digest_parse(data, d, err) < 0)
        return kiln_error_prefix(err, "ref file %s", file);
    nl2 = strchr(nl + 1, '\n');
    if (nl2 != NULL)
        *nl2 = '\0';
    *name = kiln_xstrdup(nl + 1);
    return 0;
}

int kiln_store_ref_get(kiln_store_t *s, const char *name, kiln_digest_t *d, kiln_error_t *err)
{
    kiln_digest_t f;
    _cleanup_free_ char *stored = NULL;

    if (ref_file(name, &f, err) < 0)
        return -1;
    if (faccessat(s->refs_fd, f.hex, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (ref_read(s->refs_fd, f.hex, &stored, d, err) < 0)
        return kiln_error_prefix(err, "ref %s", name);
    /* the file's mtime is the ref's last use, which kiln_store_refs_expire ages by */
    (void)utimensat(s->refs_fd, f.hex, NULL, AT_SYMLINK_NOFOLLOW);
    return 1;
}

int kiln_store_ref_delete(kiln_store_t *s, const char *name, kiln_error_t *err)
{
    kiln_digest_t f;

    if (ref_file(name, &f, err) < 0)
        return -1;
    if (unlinkat(s->refs_fd, f.hex, 0) < 0 && errno != ENOENT)
        return kiln_error_set(err, errno, "delete ref %s", name);
    return 0;
}

/* Opens a DIR stream over (a fresh fd of) the directory fd; NULL + err on failure. */
static DIR *opendir_fd(int fd, const char *what, kiln_error_t *err)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir;

    if (dfd < 0) {
        kiln_error_set(err, errno, "open %s", what);
        return NULL;
    }
    dir = fdopendir(dfd);
    if (dir == NULL) {
        kiln_error_set(err, errno, "open %s", what);
        close(dfd);
    }
    return dir;
}

/* Walks the refs directory fd (not closed). */
static int refs_walk(int refs_fd, int (*fn)(const char *name, const kiln_digest_t *d, void *ud),
                     void *ud, kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = opendir_fd(refs_fd, "refs directory", err);
    struct dirent *de;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        _cleanup_free_ char *name = NULL;
        kiln_digest_t d;
        int r;

        if (de->d_name[0] == '.' || strlen(de->d_name) != 64)
            continue; /* temp files of atomic writes, stray names */
        if (ref_read(refs_fd, de->d_name, &name, &d, err) < 0)
            return -1;
        r = fn(name, &d, ud);
        if (r < 0)
            return r;
    }
    return 0;
}

int kiln_store_ref_foreach(kiln_store_t *s,
                           int (*fn)(const char *name, const kiln_digest_t *d, void *ud), void *ud,
                           kiln_error_t *err)
{
    return refs_walk(s->refs_fd, fn, ud, err);
}

typedef struct expire_ctx {
    int refs_fd;
    const char *prefix;
    double oldest; /* refs last used before this time go */
    int dry_run;
    unsigned removed;
    kiln_error_t *err;
} expire_ctx_t;

static int expire_one(const char *name, const kiln_digest_t *d, void *ud)
{
    expire_ctx_t *x = ud;
    kiln_digest_t f;
    struct stat sb;

    (void)d;
    if (strncmp(name, x->prefix, strlen(x->prefix)) != 0 || ref_file(name, &f, NULL) < 0 ||
        fstatat(x->refs_fd, f.hex, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
        (double)sb.st_mtime >= x->oldest)
        return 0;
    if (!x->dry_run && unlinkat(x->refs_fd, f.hex, 0) < 0 && errno != ENOENT)
        return kiln_error_set(x->err, errno, "delete ref %s", name);
    x->removed++;
    return 0;
}

int kiln_store_refs_expire(kiln_store_t *s, const char *prefix, double max_age_s, int dry_run,
                           unsigned *removed, kiln_error_t *err)
{
    expire_ctx_t x = {s->refs_fd, prefix, (double)time(NULL) - max_age_s, dry_run, 0, err};

    if (refs_walk(s->refs_fd, expire_one, &x, err) < 0)
        return -1;
    *removed = x.removed;
    return 0;
}

/* --- prune -------------------------------------------------------------- */

/* An open-addressing set of digests (the marked blobs) plus a work stack. */
typedef struct mark_set {
    kiln_digest_t *slots;
    unsigned char *used;
    size_t cap, n;
    kiln_digest_t *stack;
    size_t stack_n, stack_cap;
} mark_set_t;

static size_t mark_hash(const kiln_digest_t *d, size_t cap)
{
    size_t h = 0;
    for (int i = 0; i < 16; i++)
        h = h * 16 + (size_t)(d->hex[i] <= '9' ? d->hex[i] - '0' : d->hex[i] - 'a' + 10);
    return h & (cap - 1);
}

static int mark_contains(const mark_set_t *m, const kiln_digest_t *d)
{
    for (size_t i = mark_hash(d, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->used[i])
            return 0;
        if (kiln_digest_equal(&m->slots[i], d))
            return 1;
    }
}

static void mark_insert_slot(mark_set_t *m, const kiln_digest_t *d)
{
    size_t i = mark_hash(d, m->cap);
    while (m->used[i])
        i = (i + 1) & (m->cap - 1);
    m->used[i] = 1;
    m->slots[i] = *d;
    m->n++;
}

/* Adds d; pushes it on the work stack when it is new. */
static void mark_add(mark_set_t *m, const kiln_digest_t *d)
{
    if (mark_contains(m, d))
        return;
    if ((m->n + 1) * 2 > m->cap) {
        mark_set_t bigger = {0};
        bigger.cap = m->cap * 2;
        bigger.slots = kiln_xzalloc(bigger.cap * sizeof(*bigger.slots));
        bigger.used = kiln_xzalloc(bigger.cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->used[i])
                mark_insert_slot(&bigger, &m->slots[i]);
        free(m->slots);
        free(m->used);
        m->slots = bigger.slots;
        m->used = bigger.used;
        m->cap = bigger.cap;
    }
    mark_insert_slot(m, d);
    if (m->stack_n == m->stack_cap) {
        m->stack_cap = m->stack_cap ? m->stack_cap * 2 : 64;
        m->stack = kiln_xrealloc(m->stack, m->stack_cap * sizeof(*m->stack));
    }
    m->stack[m->stack_n++] = *d;
}

static int mark_ref(const char *name, const kiln_digest_t *d, void *ud)
{
    mark_add(ud, d);
    return 0;
}

/* Adds an image config's rootfs.diff_ids to the set of unpacked layer trees to keep. */
static void mark_diff_ids(mark_set_t *lowers, json_t *cfg)
{
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    for (size_t i = 0; lowers != NULL && i < json_array_size(ids); i++) {
        kiln_digest_t c;
        if (kiln_digest_parse(json_string_value(json_array_get(ids, i)), &c, NULL) == 0)
            mark_add(lowers, &c);
    }
    if (lowers != NULL)
        lowers->stack_n = 0; /* a set only: nothing to walk */
}

/* Marks what blob d (a manifest or index, or anything else) refers to; the diff_ids of a
 * config go to lowers. */
static void mark_children(mark_set_t *m, mark_set_t *lowers, int blobs_fd, const kiln_digest_t *d)
{
    _cleanup_close_ int fd = openat(blobs_fd, d->hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_free_ char *data = NULL;
    _cleanup_json_ json_t *doc = NULL;
    char head[64];
    ssize_t got;
    size_t k = 0;
    size_t len;
    json_t *arr;
    size_t i;

    /* only JSON objects can reference other blobs; skip leading whitespace */
    if (fd < 0 || (got = pread(fd, head, sizeof(head), 0)) <= 0)
        return;
    while (k < (size_t)got && strchr(" \t\r\n", head[k]) != NULL)
        k++;
    if (k == (size_t)got || head[k] != '{')
        return;
    if (kiln_fs_read_fd(fd, KILN_IMAGE_MANIFEST_MAX, &data, &len, NULL) < 0)
        return;
    if (kiln_json_loadb(data, len, KILN_IMAGE_MANIFEST_MAX, "blob", &doc, NULL) < 0)
        return;
    switch (kiln_image_doc_kind(doc)) {
    case KILN_DOC_MANIFEST: {
        kiln_digest_t c;
        json_t *cfg = json_object_get(doc, "config");
        if (kiln_digest_parse(kiln_json_get_string(cfg, "digest"), &c, NULL) == 0)
            mark_add(m, &c);
        arr = json_object_get(doc, "layers");
        break;
    }
    case KILN_DOC_INDEX:
        arr = json_object_get(doc, "manifests");
        break;
    case KILN_DOC_CONFIG:
        mark_diff_ids(lowers, doc);
        return;
    default:
        return;
    }
    for (i = 0; i < json_array_size(arr); i++) {
        kiln_digest_t c;
        if (kiln_digest_parse(kiln_json_get_string(json_array_get(arr, i), "digest"), &c, NULL) ==
            0)
            mark_add(m, &c);
    }
}

/* Removes every entry of the tmp directory (all stale under the exclusive lock). */
static int prune_tmp(int tmp_fd, int dry_run, kiln_store_prune_stats_t *st, kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = opendir_fd(tmp_fd, "store tmp directory", err);
    struct dirent *de;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (!dry_run && kiln_fs_rm_rf_at(tmp_fd, de->d_name, err) < 0)
            return -1;
        st->tmp_removed++;
    }
    return 0;
}

/* Removes the unpacked layer trees of <root>/build/lowers (named by diff_id hex) that no
 * kept image config lists, and stale temp trees there; a missing directory is fine. */
static int prune_lowers(const char *root, const mark_set_t *lowers, int dry_run,
                        kiln_store_prune_stats_t *st, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/build/lowers", root);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_closedir_ DIR *dir = NULL;
    struct dirent *de;

    if (fd < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "open %s", path);
    if ((dir = opendir_fd(fd, "unpacked layers directory", err)) == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        kiln_digest_t d;
        char hex[65];
        /* "<diff_id hex>.blob-<blob hex>": the build engine's marker that a blob
         * holds that tree; it goes with its tree */
        bool marker = strlen(de->d_name) > 64 && strncmp(de->d_name + 64, ".blob-", 6) == 0;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(hex, sizeof(hex), "%.64s", de->d_name);
        if (kiln_digest_parse_hex(marker ? hex : de->d_name, &d, NULL) == 0 &&
            mark_contains(lowers, &d))
            continue;
        if (!dry_run && kiln_fs_rm_rf_at(fd, de->d_name, err) < 0)
            return kiln_error_prefix(err, "%s", path);
        if (!marker)
            st->lowers_removed++;
    }
    return 0;
}

/* Removes unmarked blobs. */
static int prune_blobs(int blobs_fd, const mark_set_t *m, int dry_run, kiln_store_prune_stats_t *st,
                       kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = opendir_fd(blobs_fd, "store blobs directory", err);
    struct dirent *de;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        kiln_digest_t d;
        struct stat sb;

        if (kiln_digest_parse_hex(de->d_name, &d, NULL) < 0)
            continue;
        if (mark_contains(m, &d)) {
            st->blobs_kept++;
            continue;
        }
        if (fstatat(blobs_fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            st->bytes_freed += (uint64_t)sb.st_size;
        if (!dry_run && unlinkat(blobs_fd, de->d_name, 0) < 0 && errno != ENOENT)
            return kiln_error_set(err, errno, "remove blob sha256:%s", d.hex);
        st->blobs_removed++;
    }
    return 0;
}

int kiln_store_prune(const char *root, int wait, int dry_run, kiln_store_prune_stats_t *stats,
                     kiln_error_t *err)
{
    kiln_store_prune_stats_t st = {0};
    mark_set_t m = {0};
    mark_set_t lowers = {0};
    _cleanup_close_ int gate = -1;
    _cleanup_close_ int lfd = -1;
    _cleanup_close_ int blobs_fd = -1;
    _cleanup_close_ int tmp_fd = -1;
    _cleanup_close_ int refs_fd = -1;
    int ret = -1;

    if (root == NULL || root[0] == '\0')
        return kiln_error_set(err, 0, "prune: no store root given");
    if (kiln_fs_mkdir_p(root, 0700, err) < 0)
        return kiln_error_prefix(err, "blob store %s", root);
    gate = open_lock(root, "gate", err);
    if (gate < 0)
        return -1;
    lfd = open_lock(root, "lock", err);
    if (lfd < 0)
        return -1;
    /* close the gate first: new builds wait, running ones finish */
    if (lock_fd(gate, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0 ||
        lock_fd(lfd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        if (errno == EWOULDBLOCK)
            return kiln_error_set(err, EBUSY,
                                  "blob store %s is in use by a running build or pull; retry "
                                  "later",
                                  root);
        return kiln_error_set(err, errno, "blob store %s: lock", root);
    }
    if ((blobs_fd = open_subdir(root, "blobs/sha256", err)) < 0 ||
        (tmp_fd = open_subdir(root, "tmp", err)) < 0 ||
        (refs_fd = open_subdir(root, "refs", err)) < 0)
        return -1;

    m.cap = 1024;
    m.slots = kiln_xzalloc(m.cap * sizeof(*m.slots));
    m.used = kiln_xzalloc(m.cap);
    lowers.cap = 256;
    lowers.slots = kiln_xzalloc(lowers.cap * sizeof(*lowers.slots));
    lowers.used = kiln_xzalloc(lowers.cap);
    if (refs_walk(refs_fd, mark_ref, &m, err) < 0)
        goto out;
    while (m.stack_n > 0) {
        kiln_digest_t d = m.stack[--m.stack_n];
        if (faccessat(blobs_fd, d.hex, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
            st.refs_dangling++;
            continue;
        }
        mark_children(&m, &lowers, blobs_fd, &d);
    }
    if (prune_tmp(tmp_fd, dry_run, &st, err) < 0 ||
        prune_blobs(blobs_fd, &m, dry_run, &st, err) < 0 ||
        prune_lowers(root, &lowers, dry_run, &st, err) < 0)
        goto out;
    if (!dry_run)
        fsync(blobs_fd);
    if (stats != NULL)
        *stats = st;
    ret = 0;
out:
    free(m.slots);
    free(m.used);
    free(m.stack);
    free(lowers.slots);
    free(lowers.used);
    free(lowers.stack);
    return ret;
}
