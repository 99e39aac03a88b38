/* kiln — walking differ (base tree vs changed tree → layer entries) and the
 * tree copy the step runs in when overlayfs is not available. */
#include "sandbox/diff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define MAX_DEPTH 256
#define XATTR_LIST_MAX_BYTES 65536

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of dirfd/name (NULL-terminated; *n set). */
static int list_sorted(int fd, const char *what, char ***out, size_t *n, kiln_error_t *err)
{
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    DIR *d;
    struct dirent *e;
    char **v = NULL;
    size_t cnt = 0, alloc = 0;

    if (dfd < 0)
        return kiln_error_set(err, errno, "dup for %s", what);
    d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return kiln_error_set(err, errno, "opening directory %s", what);
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (cnt + 1 >= alloc) {
            alloc = alloc ? alloc * 2 : 32;
            v = kiln_xrealloc(v, alloc * sizeof(*v));
        }
        v[cnt++] = kiln_xstrdup(e->d_name);
    }
    closedir(d);
    if (v == NULL)
        v = kiln_xzalloc(sizeof(*v));
    v[cnt] = NULL;
    qsort(v, cnt, sizeof(*v), cmp_names);
    *out = v;
    *n = cnt;
    return 0;
}

/* Ancestors not yet written: written (in order) before the first change
 * found below them. */
typedef struct pending {
    int fds[MAX_DEPTH + 1];
    char *names[MAX_DEPTH + 1];
    char *paths[MAX_DEPTH + 1];
    int written[MAX_DEPTH + 1];
    int depth;
} pending_t;

static int flush(pending_t *p, kiln_layer_writer_t *w, kiln_error_t *err)
{
    for (int i = 0; i < p->depth; i++) {
        if (p->written[i])
            continue;
        if (kiln_layer_writer_add(w, p->fds[i], p->names[i], p->paths[i], err) < 0)
            return -1;
        p->written[i] = 1;
    }
    return 0;
}

static int xattrs_equal(int afd, const char *aname, int bfd, const char *bname)
{
    char ap[64], bp[64];
    char al[XATTR_LIST_MAX_BYTES], bl[XATTR_LIST_MAX_BYTES];
    ssize_t an, bn;
    _cleanup_close_ int a = openat(afd, aname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int b = openat(bfd, bname, O_PATH | O_NOFOLLOW | O_CLOEXEC);

    if (a < 0 || b < 0)
        return 0;
    snprintf(ap, sizeof(ap), "/proc/self/fd/%d", a);
    snprintf(bp, sizeof(bp), "/proc/self/fd/%d", b);
    an = llistxattr(ap, al, sizeof(al));
    bn = llistxattr(bp, bl, sizeof(bl));
    if (an < 0 || bn < 0)
        return an == bn;
    if (an != bn || memcmp(al, bl, (size_t)an) != 0)
        return 0;
    for (ssize_t off = 0; off < an; off += (ssize_t)strlen(al + off) + 1) {
        char av[4096], bv[4096];
        ssize_t x = lgetxattr(ap, al + off, av, sizeof(av));
        ssize_t y = lgetxattr(bp, al + off, bv, sizeof(bv));
        if (x != y || (x > 0 && memcmp(av, bv, (size_t)x) != 0))
            return 0;
    }
    return 1;
}

/* Whether base and changed entries differ (metadata, link target, xattrs). */
static int entry_changed(int bfd, int cfd, const char *name, const struct stat *b,
                         const struct stat *c)
{
    if ((b->st_mode & S_IFMT) != (c->st_mode & S_IFMT) || b->st_mode != c->st_mode ||
        b->st_uid != c->st_uid || b->st_gid != c->st_gid)
        return 1;
    if (!S_ISDIR(c->st_mode) &&
        (b->st_size != c->st_size || b->st_mtim.tv_sec != c->st_mtim.tv_sec ||
         b->st_mtim.tv_nsec != c->st_mtim.tv_nsec))
        return 1;
    if (S_ISDIR(c->st_mode) && b->st_mtim.tv_sec != c->st_mtim.tv_sec)
        return 1;
    if (S_ISLNK(c->st_mode)) {
        char bt[4096], ct[4096];
        ssize_t x = readlinkat(bfd, name, bt, sizeof(bt));
        ssize_t y = readlinkat(cfd, name, ct, sizeof(ct));
        if (x != y || (x > 0 && memcmp(bt, ct, (size_t)x) != 0))
            return 1;
    }
    if ((S_ISCHR(c->st_mode) || S_ISBLK(c->st_mode)) && b->st_rdev != c->st_rdev)
        return 1;
    return !xattrs_equal(bfd, name, cfd, name);
}

static int walk(int bfd, int cfd, const char *rel, pending_t *p, kiln_layer_writer_t *w,
                kiln_error_t *err);

/* Compares one name present in base and/or changed. */
static int diff_entry(int bfd, int cfd, const char *name, const char *rel, int in_b, int in_c,
                      pending_t *p, kiln_layer_writer_t *w, kiln_error_t *err)
{
    _cleanup_free_ char *path = rel[0] ? kiln_xasprintf("%s/%s", rel, name) : kiln_xstrdup(name);
    struct stat bs, cs;

    if (in_c && fstatat(cfd, name, &cs, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", path);
    if (in_b && fstatat(bfd, name, &bs, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat base %s", path);
    if (!in_c) {
        if (flush(p, w, err) < 0)
            return -1;
        return kiln_layer_writer_add_whiteout(w, path, err);
    }
    if (!in_b || (S_ISDIR(cs.st_mode) != S_ISDIR(bs.st_mode))) {
        if (flush(p, w, err) < 0)
            return -1;
        if (in_b && S_ISDIR(cs.st_mode)) {
            /* A directory where the base had a file: opaque, then its content. */
            _cleanup_close_ int dfd = -1;
            _cleanup_strv_ char **names = NULL;
            size_t n;
            if (kiln_layer_writer_add(w, cfd, name, path, err) < 0 ||
                kiln_layer_writer_add_opaque(w, path, err) < 0)
                return -1;
            dfd = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (dfd < 0)
                return kiln_error_set(err, errno, "opening %s", path);
            if (list_sorted(dfd, path, &names, &n, err) < 0)
                return -1;
            for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *cp = kiln_xasprintf("%s/%s", path, names[i]);
                if (kiln_layer_writer_add_tree(w, dfd, names[i], cp, err) < 0)
                    return -1;
            }
            return 0;
        }
        return kiln_layer_writer_add_tree(w, cfd, name, path, err);
    }
    if (S_ISDIR(cs.st_mode)) {
        _cleanup_close_ int nb = -1, nc = -1;
        int r;
        if (p->depth >= MAX_DEPTH)
            return kiln_error_set(err, ELOOP, "%s: nested deeper than %d", path, MAX_DEPTH);
        nb = openat(bfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        nc = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nb < 0 || nc < 0)
            return kiln_error_set(err, errno, "opening directory %s", path);
        p->fds[p->depth] = cfd;
        p->names[p->depth] = (char *)name;
        p->paths[p->depth] = path;
        p->written[p->depth] = 0;
        p->depth++;
        if (entry_changed(bfd, cfd, name, &bs, &cs) && flush(p, w, err) < 0) {
            p->depth--;
            return -1;
        }
        r = walk(nb, nc, path, p, w, err);
        p->depth--;
        return r;
    }
    if (!entry_changed(bfd, cfd, name, &bs, &cs))
        return 0;
    if (flush(p, w, err) < 0)
        return -1;
    return kiln_layer_writer_add(w, cfd, name, path, err);
}

/* Merges the sorted listings of base dir bfd and changed dir cfd. */
static int walk(int bfd, int cfd, const char *rel, pending_t *p, kiln_layer_writer_t *w,
                kiln_error_t *err)
{
    _cleanup_strv_ char **bn = NULL, **cn = NULL;
    size_t nb, nc, i = 0, j = 0;

    if (list_sorted(bfd, rel[0] ? rel : "/", &bn, &nb, err) < 0 ||
        list_sorted(cfd, rel[0] ? rel : "/", &cn, &nc, err) < 0)
        return -1;
    while (i < nb || j < nc) {
        int c = i == nb ? 1 : j == nc ? -1 : strcmp(bn[i], cn[j]);
        const char *name = c < 0 ? bn[i] : cn[j];
        if (diff_entry(bfd, cfd, name, rel, c <= 0, c >= 0, p, w, err) < 0)
            return -1;
        if (c <= 0)
            i++;
        if (c >= 0)
            j++;
    }
    return 0;
}

int kiln_diff_write(const char *base, const char *changed, kiln_layer_writer_t *w,
                    kiln_error_t *err)
{
    _cleanup_close_ int bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int cfd = open(changed, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    pending_t *p;
    int r;

    if (bfd < 0)
        return kiln_error_set(err, errno, "opening base tree %s", base);
    if (cfd < 0)
        return kiln_error_set(err, errno, "opening changed tree %s", changed);
    p = kiln_xzalloc(sizeof(*p));
    r = walk(bfd, cfd, "", p, w, err);
    free(p);
    return r;
}

/* --- copy ------------------------------------------------------------- */

static int copy_xattrs(int sfd, int dfd, const char *path, kiln_error_t *err)
{
    char list[XATTR_LIST_MAX_BYTES];
    ssize_t n = flistxattr(sfd, list, sizeof(list));

    for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(list + off) + 1) {
        char val[65536];
        ssize_t v = fgetxattr(sfd, list + off, val, sizeof(val));
        if (v >= 0 && fsetxattr(dfd, list + off, val, (size_t)v, 0) < 0 && errno != ENOTSUP &&
            errno != EPERM)
            return kiln_error_set(err, errno, "copying xattr %s of %s", list + off, path);
    }
    return 0;
}

static int copy_meta(int dfd, const struct stat *st, const char *path, kiln_error_t *err)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};

    if (fchown(dfd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
        return kiln_error_set(err, errno, "chown %s", path);
    if (fchmod(dfd, st->st_mode & 07777) < 0)
        return kiln_error_set(err, errno, "chmod %s", path);
    if (futimens(dfd, ts) < 0)
        return kiln_error_set(err, errno, "setting times of %s", path);
    return 0;
}

static int copy_entry(int sdir, const char *sname, int ddir, const char *name, const char *path,
                      int depth, kiln_error_t *err)
{
    struct stat st;

    if (depth > MAX_DEPTH)
        return kiln_error_set(err, ELOOP, "%s: nested deeper than %d", path, MAX_DEPTH);
    if (fstatat(sdir, sname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", path);
    if (S_ISDIR(st.st_mode)) {
        _cleanup_close_ int s = -1, d = -1;
        _cleanup_strv_ char **names = NULL;
        size_t n;
        if (mkdirat(ddir, name, 0700) < 0)
            return kiln_error_set(err, errno, "mkdir %s", path);
        s = openat(sdir, sname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s < 0 || d < 0)
            return kiln_error_set(err, errno, "opening %s", path);
        if (list_sorted(s, path, &names, &n, err) < 0)
            return -1;
        for (size_t i = 0; i < n; i++) {
            _cleanup_free_ char *cp = kiln_xasprintf("%s/%s", path, names[i]);
            if (copy_entry(s, names[i], d, names[i], cp, depth + 1, err) < 0)
                return -1;
        }
        if (copy_xattrs(s, d, path, err) < 0)
            return -1;
        return copy_meta(d, &st, path, err);
    }
    if (S_ISREG(st.st_mode)) {
        /* O_NONBLOCK: a FIFO swapped in since the stat is not waited on */
        _cleanup_close_ int s = openat(sdir, sname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        _cleanup_close_ int d = -1;
        off_t left = st.st_size;
        if (s < 0)
            return kiln_error_set(err, errno, "opening %s", path);
        d = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (d < 0)
            return kiln_error_set(err, errno, "creating %s", path);
        while (left > 0) {
            ssize_t k = copy_file_range(s, NULL, d, NULL, (size_t)left, 0);
            if (k <= 0) {
                if (k < 0 && errno == EINTR)
                    continue;
                return kiln_error_set(err, k < 0 ? errno : EIO, "copying %s", path);
            }
            left -= k;
        }
        if (copy_xattrs(s, d, path, err) < 0)
            return -1;
        return copy_meta(d, &st, path, err);
    }
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t k = readlinkat(sdir, sname, target, sizeof(target) - 1);
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        if (k < 0)
            return kiln_error_set(err, errno, "readlink %s", path);
        target[k] = '\0';
        if (symlinkat(target, ddir, name) < 0)
            return kiln_error_set(err, errno, "symlink %s", path);
        if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
            return kiln_error_set(err, errno, "chown %s", path);
        utimensat(ddir, name, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    /* fifos, sockets, devices */
    if (mknodat(ddir, name, st.st_mode, st.st_rdev) < 0)
        return kiln_error_set(err, errno, "mknod %s", path);
    if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
        return kiln_error_set(err, errno, "chown %s", path);
    {
        struct timespec ts[2] = {st.st_atim, st.st_mtim};
        utimensat(ddir, name, ts, AT_SYMLINK_NOFOLLOW);
    }
    return 0;
}

int kiln_diff_copy_tree(const char *src, const char *dst, kiln_error_t *err)
{
    _cleanup_free_ char *sparent = kiln_xstrdup(src), *dparent = kiln_xstrdup(dst);
    char *ss = strrchr(sparent, '/'), *ds = strrchr(dparent, '/');
    _cleanup_close_ int sfd = -1, dfd = -1;

    if (ss == NULL || ds == NULL || ss[1] == '\0' || ds[1] == '\0')
        return kiln_error_set(err, EINVAL, "copy %s → %s: need absolute paths", src, dst);
    *ss = '\0';
    *ds = '\0';
    sfd = open(sparent[0] ? sparent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    dfd = open(dparent[0] ? dparent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0 || dfd < 0)
        return kiln_error_set(err, errno, "opening the parents of %s and %s", src, dst);
    return copy_entry(sfd, ss + 1, dfd, ds + 1, dst, 0, err);
}
