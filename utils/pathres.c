/* kiln — untrusted paths resolved inside a root directory (see pathres.h): openat2
 * RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, or an equivalent walk one component at a time. */
#include "utils/pathres.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* The longest path a walk carries after link expansion (the input itself is
 * capped at PATH_MAX as the kernel does). */
#define WALK_TODO_MAX (8 * PATH_MAX)

static atomic_bool force_walk;
static atomic_bool no_openat2; /* the kernel (or a seccomp filter) refused it once */

void kiln_pathres_force_walk(bool on)
{
    atomic_store(&force_walk, on);
}

/* What a walk does with a component that does not exist. */
typedef enum { W_OPEN, W_RESOLVE, W_MKDIR } walk_mode_t;

typedef struct walk {
    int root;    /* borrowed */
    int cur;     /* O_PATH fd of the directory reached (owned) */
    char *canon; /* its in-root path: "" or "a/b" */
    size_t canon_len;
    int links;
    const char *path; /* for messages */
} walk_t;

static void walk_clear(walk_t *w)
{
    if (w->cur >= 0)
        close(w->cur);
    w->cur = -1;
    free(w->canon);
    w->canon = NULL;
}

static int walk_fail(walk_t *w, int errnum, const char *why, kiln_error_t *err)
{
    if (why != NULL)
        return kiln_error_set(err, errnum, "resolving %s: %s", w->path, why);
    return kiln_error_set(err, errnum, "resolving %s", w->path);
}

/* Back at the root: cur is the root again, canon empty. */
static int walk_to_root(walk_t *w, kiln_error_t *err)
{
    int fd = openat(w->root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return walk_fail(w, errno, NULL, err);
    if (w->cur >= 0)
        close(w->cur);
    w->cur = fd;
    w->canon_len = 0;
    w->canon[0] = '\0';
    return 0;
}

/* "..": drops the last resolved component and reopens its parent from the
 * root (each component O_NOFOLLOW|O_DIRECTORY, so a directory swapped for a
 * link meanwhile fails instead of leading out). At the root it stays. */
static int walk_up(walk_t *w, kiln_error_t *err)
{
    _cleanup_free_ char *keep = NULL;
    char *save = NULL;

    if (w->canon_len == 0)
        return 0;
    while (w->canon_len > 0 && w->canon[w->canon_len - 1] != '/')
        w->canon_len--;
    if (w->canon_len > 0)
        w->canon_len--;
    w->canon[w->canon_len] = '\0';
    keep = kiln_xstrdup(w->canon);
    if (walk_to_root(w, err) < 0)
        return -1;
    for (char *c = strtok_r(keep, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        int fd = openat(w->cur, c, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return walk_fail(w, errno, "a directory changed during the lookup", err);
        close(w->cur);
        w->cur = fd;
        if (w->canon_len > 0)
            w->canon[w->canon_len++] = '/';
        memcpy(w->canon + w->canon_len, c, strlen(c) + 1);
        w->canon_len += strlen(c);
    }
    return 0;
}

static void walk_push(walk_t *w, const char *name, int fd)
{
    size_t n = strlen(name);
    w->canon = kiln_xrealloc(w->canon, w->canon_len + n + 2);
    if (w->canon_len > 0)
        w->canon[w->canon_len++] = '/';
    memcpy(w->canon + w->canon_len, name, n + 1);
    w->canon_len += n;
    close(w->cur);
    w->cur = fd;
}

/* Appends the rest of a path lexically ("." dropped, ".." pops) to canon:
 * for KILN_PATHRES_MISSING_OK below a component that does not exist. */
static void walk_lexical(walk_t *w, const char *first, const char *rest)
{
    _cleanup_free_ char *all = kiln_xasprintf("%s/%s", first, rest);
    char *save = NULL;
    for (char *c = strtok_r(all, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            while (w->canon_len > 0 && w->canon[w->canon_len - 1] != '/')
                w->canon_len--;
            if (w->canon_len > 0)
                w->canon_len--;
            w->canon[w->canon_len] = '\0';
            continue;
        }
        w->canon = kiln_xrealloc(w->canon, w->canon_len + strlen(c) + 2);
        if (w->canon_len > 0)
            w->canon[w->canon_len++] = '/';
        memcpy(w->canon + w->canon_len, c, strlen(c) + 1);
        w->canon_len += strlen(c);
    }
}

/* A symlink met on the way: its target replaces it in what is left to walk
 * (absolute targets restart at the root). Magic links (procfs) are refused
 * as RESOLVE_NO_MAGICLINKS does. *todo is replaced. */
static int walk_link(walk_t *w, int linkfd, char **todo, const char *rest, bool trail,
                     kiln_error_t *err)
{
    char target[PATH_MAX];
    struct statfs sfs;
    ssize_t n;
    char *next;

    if (fstatfs(linkfd, &sfs) == 0 && sfs.f_type == PROC_SUPER_MAGIC)
        return walk_fail(w, ELOOP, "a magic link (procfs) on the way", err);
    if (++w->links > KILN_PATHRES_MAX_LINKS)
        return walk_fail(w, ELOOP, NULL, err);
    n = readlinkat(linkfd, "", target, sizeof(target) - 1);
    if (n < 0)
        return walk_fail(w, errno, NULL, err);
    target[n] = '\0';
    if (target[0] == '/' && walk_to_root(w, err) < 0)
        return -1;
    if (*rest)
        next = kiln_xasprintf("%s/%s", target, rest);
    else
        next = kiln_xasprintf("%s%s", target, trail ? "/" : "");
    if (strlen(next) > WALK_TODO_MAX) {
        free(next);
        return walk_fail(w, ENAMETOOLONG, NULL, err);
    }
    free(*todo);
    *todo = next;
    return 0;
}

/* Walks path under w->root. On return w->cur is the directory holding the
 * last component and *last its name ("." when the path ends at a directory),
 * or NULL in W_MKDIR mode (w->cur is then the directory made) and in
 * W_RESOLVE mode when a missing component was kept lexically. *trail tells
 * whether the path ended with '/'. Symlinks are followed inside the root,
 * except a last one with KILN_PATHRES_NOFOLLOW (and no trailing '/'). */
static int walk(walk_t *w, const char *path, unsigned flags, walk_mode_t mode, mode_t dmode,
                char **last, bool *trail, kiln_error_t *err)
{
    _cleanup_free_ char *todo = kiln_xstrdup(path);
    size_t off = 0;

    *last = NULL;
    *trail = false;
    if (strlen(path) >= PATH_MAX)
        return walk_fail(w, ENAMETOOLONG, NULL, err);
    for (;;) {
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int fd = -1;
        const char *p = todo + off, *q, *r;
        bool is_last, tr;
        struct stat st;

        while (*p == '/')
            p++;
        if (*p == '\0') {
            if (mode != W_MKDIR)
                *last = kiln_xstrdup(".");
            return 0;
        }
        q = p + strcspn(p, "/");
        r = q;
        while (*r == '/')
            r++;
        name = kiln_xstrndup(p, (size_t)(q - p));
        is_last = *r == '\0';
        tr = is_last && q != r;
        off = (size_t)(r - todo);
        if (is_last)
            *trail = tr;
        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            if (walk_up(w, err) < 0)
                return -1;
            continue;
        }
        fd = openat(w->cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && mode == W_MKDIR) {
            if (mkdirat(w->cur, name, dmode) < 0 && errno != EEXIST)
                return walk_fail(w, errno, NULL, err);
            fd = openat(w->cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0 && errno == ENOENT && is_last) {
            *last = steal_pointer(&name);
            return 0;
        }
        if (fd < 0 && errno == ENOENT && mode == W_RESOLVE && (flags & KILN_PATHRES_MISSING_OK)) {
            walk_lexical(w, name, todo + off);
            *trail = todo[strlen(todo) - 1] == '/';
            return 0;
        }
        if (fd < 0)
            return walk_fail(w, errno, NULL, err);
        if (fstat(fd, &st) < 0)
            return walk_fail(w, errno, NULL, err);
        if (S_ISLNK(st.st_mode)) {
            if (is_last && !tr && (flags & KILN_PATHRES_NOFOLLOW) && mode != W_MKDIR) {
                *last = steal_pointer(&name);
                return 0;
            }
            {
                _cleanup_free_ char *rest = kiln_xstrdup(todo + off);
                if (walk_link(w, fd, &todo, rest, tr, err) < 0)
                    return -1;
            }
            off = 0;
            continue;
        }
        if (is_last && mode != W_MKDIR) {
            if (tr && !S_ISDIR(st.st_mode))
                return walk_fail(w, ENOTDIR, NULL, err);
            *last = steal_pointer(&name);
            return 0;
        }
        if (!S_ISDIR(st.st_mode))
            return walk_fail(w, ENOTDIR, NULL, err);
        walk_push(w, name, fd);
        fd = -1;
    }
}

/* Starts a walk of path at rootfd (see walk()); on failure w is cleared. */
static int walk_start(walk_t *w, int rootfd, const char *path, unsigned flags, walk_mode_t mode,
                      mode_t dmode, char **last, bool *trail, kiln_error_t *err)
{
    memset(w, 0, sizeof(*w));
    w->root = rootfd;
    w->cur = -1;
    w->path = path;
    w->canon = kiln_xzalloc(PATH_MAX);
    if (walk_to_root(w, err) < 0 || walk(w, path, flags, mode, dmode, last, trail, err) < 0) {
        walk_clear(w);
        return -1;
    }
    return 0;
}

/* Opens name under the walk's directory (O_NOFOLLOW: the walk resolved
 * it, a link put there meanwhile is not followed out of the root) and ends
 * the walk. */
static int walk_finish_open(walk_t *w, const char *name, int oflags, mode_t mode, int *out,
                            kiln_error_t *err)
{
    int fd = openat(w->cur, name, oflags | O_NOFOLLOW | O_CLOEXEC, mode);
    int e = errno;
    walk_clear(w);
    if (fd < 0)
        return kiln_error_set(err, e, "opening %s", w->path);
    *out = fd;
    return 0;
}

/* kiln_pathres_open without openat2. */
static int open_walk(int rootfd, const char *path, int oflags, mode_t mode, unsigned flags,
                     int *out, kiln_error_t *err)
{
    walk_t w;
    _cleanup_free_ char *last = NULL;
    bool trail = false;

    if (walk_start(&w, rootfd, path, flags, W_OPEN, 0, &last, &trail, err) < 0)
        return -1;
    return walk_finish_open(&w, last, oflags | (trail ? O_DIRECTORY : 0), mode, out, err);
}

int kiln_pathres_open(int rootfd, const char *path, int oflags, mode_t mode, unsigned flags,
                      int *out, kiln_error_t *err)
{
    if (oflags & O_NOFOLLOW)
        flags |= KILN_PATHRES_NOFOLLOW;
    if (flags & KILN_PATHRES_NOFOLLOW)
        oflags |= O_NOFOLLOW;
    if (strlen(path) >= PATH_MAX)
        return kiln_error_set(err, ENAMETOOLONG, "resolving %s", path);
    if (!atomic_load(&force_walk) && !atomic_load(&no_openat2)) {
        struct open_how how = {0};
        how.flags = (unsigned long long)(oflags | O_CLOEXEC);
        how.mode = (oflags & (O_CREAT | O_TMPFILE)) ? mode : 0;
        how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
        for (int i = 0; i < 16; i++) {
            long fd = syscall(SYS_openat2, rootfd, path[0] ? path : ".", &how, sizeof(how));
            if (fd >= 0) {
                *out = (int)fd;
                return 0;
            }
            if (errno == EAGAIN || errno == EINTR)
                continue; /* a rename raced a ".." (RESOLVE_IN_ROOT is strict) */
            if (errno == ENOSYS || errno == EPERM || errno == E2BIG) {
                atomic_store(&no_openat2, true);
                break;
            }
            return kiln_error_set(err, errno, "opening %s", path);
        }
    }
    return open_walk(rootfd, path, oflags & ~O_NOFOLLOW, mode, flags, out, err);
}

int kiln_pathres_openat(int rootfd, const char *path, int oflags)
{
    kiln_error_t err = {0};
    int fd = -1;
    if (kiln_pathres_open(rootfd, path, oflags, 0, 0, &fd, &err) < 0) {
        errno = err.code ? err.code : EINVAL;
        return -1;
    }
    return fd;
}

int kiln_pathres_resolve(int rootfd, const char *path, unsigned flags, char **out,
                         kiln_error_t *err)
{
    walk_t w;
    _cleanup_free_ char *last = NULL;
    bool trail = false;

    if (walk_start(&w, rootfd, path, flags, W_RESOLVE, 0, &last, &trail, err) < 0)
        return -1;
    if (last != NULL && strcmp(last, ".") != 0) {
        if (!(flags & KILN_PATHRES_MISSING_OK) &&
            faccessat(w.cur, last, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
            int e = errno;
            walk_clear(&w);
            return kiln_error_set(err, e, "resolving %s", path);
        }
        walk_lexical(&w, last, "");
    }
    if (w.canon_len == 0)
        *out = kiln_xstrdup("/");
    else
        *out = kiln_xasprintf("/%s%s", w.canon, trail ? "/" : "");
    walk_clear(&w);
    return 0;
}

int kiln_pathres_mkdir_p(int rootfd, const char *path, mode_t mode, int *out, kiln_error_t *err)
{
    walk_t w;
    _cleanup_free_ char *last = NULL;
    bool trail = false;

    if (walk_start(&w, rootfd, path, 0, W_MKDIR, mode, &last, &trail, err) < 0)
        return -1;
    if (out == NULL) {
        walk_clear(&w);
        return 0;
    }
    return walk_finish_open(&w, ".", O_RDONLY | O_DIRECTORY, 0, out, err);
}

int kiln_pathres_read_file(int rootfd, const char *path, size_t cap, char **out, size_t *len,
                           kiln_error_t *err)
{
    _cleanup_close_ int pfd = -1;
    _cleanup_close_ int fd = -1;
    struct stat a, b;

    /* O_PATH first: the type is checked before anything is opened for
     * reading, so a FIFO is never waited on and a device never opened */
    if (kiln_pathres_open(rootfd, path, O_PATH, 0, 0, &pfd, err) < 0)
        return -1;
    if (fstat(pfd, &a) < 0)
        return kiln_error_set(err, errno, "stat %s", path);
    if (!S_ISREG(a.st_mode))
        return kiln_error_set(err, EINVAL, "%s is not a regular file", path);
    if (kiln_pathres_open(rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, 0, &fd, err) < 0)
        return -1;
    if (fstat(fd, &b) < 0 || b.st_dev != a.st_dev || b.st_ino != a.st_ino)
        return kiln_error_set(err, EAGAIN, "%s changed while being opened", path);
    if (kiln_fs_read_fd(fd, cap, out, len, err) < 0)
        return kiln_error_prefix(err, "reading %s", path);
    return 0;
}

int kiln_pathres_open_root(const char *dir, int *out, kiln_error_t *err)
{
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "opening %s", dir);
    *out = fd;
    return 0;
}
