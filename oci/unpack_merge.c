/* kiln — merge a layer unpacked on its own onto the layers below (see unpack_merge.h). */
#include "oci/unpack_merge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* The most directory levels a merge walks (a tar's path is shorter than PATH_MAX). */
#define MAX_DEPTH 2048

struct merge {
    int rootfd;
    const kiln_unpack_record_t *rec;
};

static int cmp_key(const void *key, const void *elem)
{
    return strcmp(key, *(char *const *)elem);
}

/* Whether the layer made directory path only to hold entries. */
static int implicit(const struct merge *m, const char *path)
{
    return m->rec->n_implicit > 0 &&
           bsearch(path, m->rec->implicit, m->rec->n_implicit, sizeof(char *), cmp_key) != NULL;
}

/* Empties directory fd (named path) of every entry. */
static int empty_dir(int fd, const char *path, kiln_error_t *err)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return kiln_error_set(err, errno, "opening '%.512s'", path);
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return kiln_error_set(err, errno, "listing '%.512s'", path);
    }
    struct dirent *de;
    int ret = 0;
    while (ret == 0 && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            ret = kiln_fs_rm_rf_at(dirfd(d), de->d_name, err);
    closedir(d);
    return ret < 0 ? kiln_error_prefix(err, "emptying '%.512s'", path) : 0;
}

/* Walks path (a directory of the layer) in the tree component by component, never following a
 * link: 0 with *out the tree's directory there; 2 when the tree has nothing of it (a component
 * missing, or a non-directory the layer's own directory entry replaced before anything of the
 * layer went below it); 1 when a component the layer only implied is a link or a
 * non-directory in the tree (applied in place the layer's entries go through that link, or
 * fail) or is missing under a setgid directory: the layer is applied in place; -1 with err. */
static int walk_tree(const struct merge *m, const char *path, int *out, kiln_error_t *err)
{
    _cleanup_close_ int fd = fcntl(m->rootfd, F_DUPFD_CLOEXEC, 3);
    _cleanup_free_ char *q = kiln_xstrdup(path);
    if (fd < 0)
        return kiln_error_set(err, errno, "'%.512s'", path);
    for (char *c = q, *end; *c != '\0'; c = end + (*end == '/')) {
        end = c + strcspn(c, "/");
        char keep = *end;
        *end = '\0';
        struct stat st, pst;
        if (fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                return kiln_error_set(err, errno, "'%.512s': stat", q);
            /* a directory made only to hold entries under a setgid one takes its group and
             * setgid bit in place (one with an entry of its own gets that entry's mode) */
            return implicit(m, q) && fstat(fd, &pst) == 0 && (pst.st_mode & S_ISGID) ? 1 : 2;
        }
        if (!S_ISDIR(st.st_mode))
            return implicit(m, q) ? 1 : 2;
        int next = openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            return kiln_error_set(err, errno, "'%.512s': opening the directory", q);
        close(fd);
        fd = next;
        *end = keep;
    }
    *out = steal_fd(&fd);
    return 0;
}

/* Whether an entry of the layer's directory lfd would be moved into a setgid directory of the
 * tree (bfd, or below it where both have a directory): 1, else 0; -1 with err. */
static int setgid_receiver(int lfd, int bfd, const char *lpath, unsigned depth, kiln_error_t *err)
{
    struct stat bst;
    if (depth > MAX_DEPTH)
        return kiln_error_set(err, ELOOP, "'%.512s': more than %d levels", lpath, MAX_DEPTH);
    if (fstat(bfd, &bst) < 0)
        return kiln_error_set(err, errno, "'%.512s': stat", lpath);
    int dfd = openat(lfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return kiln_error_set(err, errno, "listing '%.512s'", lpath);
    }
    struct dirent *de;
    int r = 0;
    while (r == 0 && (de = readdir(d)) != NULL) {
        struct stat ls, bs;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (bst.st_mode & S_ISGID)
            r = 1;
        else if (fstatat(lfd, de->d_name, &ls, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(ls.st_mode) &&
                 fstatat(bfd, de->d_name, &bs, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(bs.st_mode)) {
            _cleanup_close_ int lc =
                openat(lfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            _cleanup_close_ int bc =
                openat(bfd, de->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            r = lc < 0 || bc < 0 ? kiln_error_set(err, errno, "'%.512s/%.256s'", lpath, de->d_name)
                                 : setgid_receiver(lc, bc, lpath, depth + 1, err);
        }
    }
    closedir(d);
    return r;
}

/* Whether the layer can be merged as applied in place: 1 when one of its implicit directories
 * or the directory of a removal meets a link or a non-directory of the tree (walk_tree), or
 * when, not chowned, an entry would move into a setgid directory (in place it takes that
 * directory's group). */
static int needs_in_place(const struct merge *m, int lfd, kiln_error_t *err)
{
    if (m->rec->no_chown) {
        int r = setgid_receiver(lfd, m->rootfd, "", 0, err);
        if (r != 0)
            return r;
    }
    const kiln_unpack_record_t *rec = m->rec;
    for (size_t i = 0; i < rec->n_implicit + rec->n_opaques + rec->n_whiteouts; i++) {
        _cleanup_free_ char *dir = NULL;
        if (i < rec->n_implicit)
            dir = kiln_xstrdup(rec->implicit[i]);
        else if (i < rec->n_implicit + rec->n_opaques)
            dir = kiln_xstrdup(rec->opaques[i - rec->n_implicit]);
        else
            dir = kiln_xstrdup(rec->whiteouts[i - rec->n_implicit - rec->n_opaques]);
        char *slash = strrchr(dir, '/');
        if (i >= rec->n_implicit + rec->n_opaques) /* a whiteout's directory */
            *(slash ? slash : dir) = '\0';
        _cleanup_close_ int fd = -1;
        int r = walk_tree(m, dir, &fd, err);
        if (r != 0 && r != 2)
            return r;
    }
    return 0;
}

/* The layer's opaque directories and whiteouts, applied to the lower layers' tree (where
 * the layer's own directory replaced a link or a file on the way, they have nothing to
 * remove: applied in place they came after it). */
static int apply_removals(const struct merge *m, kiln_error_t *err)
{
    for (size_t i = 0; i < m->rec->n_opaques; i++) {
        _cleanup_close_ int fd = -1, dfd = -1;
        int r = walk_tree(m, m->rec->opaques[i], &fd, err);
        if (r < 0)
            return kiln_error_prefix(err, "opaque directory '%.512s'", m->rec->opaques[i]);
        if (r == 0 && (dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            return kiln_error_set(err, errno, "opaque directory '%.512s'", m->rec->opaques[i]);
        if (r == 0 && empty_dir(dfd, m->rec->opaques[i], err) < 0)
            return -1;
    }
    for (size_t i = 0; i < m->rec->n_whiteouts; i++) {
        const char *w = m->rec->whiteouts[i];
        const char *slash = strrchr(w, '/');
        _cleanup_free_ char *parent = kiln_xstrndup(w, slash ? (size_t)(slash - w) : 0);
        _cleanup_close_ int pfd = -1;
        int r = walk_tree(m, parent, &pfd, err);
        if (r < 0)
            return kiln_error_prefix(err, "whiteout '%.512s'", w);
        if (r == 0 && kiln_fs_rm_rf_at(pfd, slash ? slash + 1 : w, err) < 0)
            return kiln_error_prefix(err, "whiteout '%.512s'", w);
    }
    return 0;
}

/* Gives directory fd the owner, mode and xattrs of the layer's directory lfd (st). */
static int copy_dir_meta(int fd, int lfd, const struct stat *st, const char *path,
                         kiln_error_t *err)
{
    struct stat cur;
    if (fstat(fd, &cur) < 0)
        return kiln_error_set(err, errno, "'%.512s': stat", path);
    if ((cur.st_uid != st->st_uid || cur.st_gid != st->st_gid) &&
        fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
        return kiln_error_set(err, errno, "'%.512s': chown", path);
    if ((cur.st_mode & 07777) != (st->st_mode & 07777) && fchmod(fd, st->st_mode & 07777) < 0)
        return kiln_error_set(err, errno, "'%.512s': chmod", path);
    char list[4096];
    ssize_t n = flistxattr(lfd, list, sizeof(list));
    if (n < 0)
        return errno == ENOTSUP || errno == ENODATA || errno == ERANGE
                   ? 0
                   : kiln_error_set(err, errno, "'%.512s': listing xattrs", path);
    char val[4096];
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
        ssize_t len = fgetxattr(lfd, list + off, val, sizeof(val));
        if (len >= 0 && fsetxattr(fd, list + off, val, (size_t)len, 0) < 0 && errno != EPERM &&
            errno != ENOTSUP && errno != EACCES)
            return kiln_error_set(err, errno, "'%.512s': setting xattr %s", path, list + off);
    }
    return 0;
}

static int merge_dir(const struct merge *m, int lfd, int bfd, const char *bpath, const char *lpath,
                     unsigned depth, kiln_error_t *err);

/* Moves entry name of the layer's directory lfd (layer path lpath) into the tree's directory
 * bfd (its in-root path bpath). */
static int merge_entry(const struct merge *m, int lfd, int bfd, const char *name, const char *bpath,
                       const char *lpath, unsigned depth, kiln_error_t *err)
{
    struct stat ls, bs;
    if (fstatat(lfd, name, &ls, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "'%.512s': stat", lpath);
    int here = fstatat(bfd, name, &bs, AT_SYMLINK_NOFOLLOW) == 0;
    if (!here && errno != ENOENT)
        return kiln_error_set(err, errno, "'%.512s': stat", bpath);
    if (S_ISDIR(ls.st_mode) && here && S_ISDIR(bs.st_mode)) {
        _cleanup_close_ int cfd =
            openat(bfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int lcfd =
            openat(lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0 || lcfd < 0)
            return kiln_error_set(err, errno, "'%.512s': opening the directory", bpath);
        if (merge_dir(m, lcfd, cfd, bpath, lpath, depth + 1, err) < 0)
            return -1;
        if (implicit(m, lpath))
            return 0; /* the tree's directory as it is, as in place */
        /* the layer's own directory entry: its metadata, its mtime once filled */
        struct timespec ts[2] = {ls.st_mtim, ls.st_mtim};
        if (copy_dir_meta(cfd, lcfd, &ls, bpath, err) < 0)
            return -1;
        if (futimens(cfd, ts) < 0)
            return kiln_error_set(err, errno, "'%.512s': setting the mtime", bpath);
        return 0;
    }
    if (S_ISDIR(ls.st_mode) && here && implicit(m, lpath)) /* (needs_in_place said not) */
        return kiln_error_set(err, ENOTDIR, "layer entries under '%.512s': not a directory", lpath);
    if (here && kiln_fs_rm_rf_at(bfd, name, err) < 0)
        return kiln_error_prefix(err, "replacing '%.512s'", bpath);
    if (renameat2(lfd, name, bfd, name, RENAME_NOREPLACE) < 0)
        return kiln_error_set(err, errno, "moving layer entry '%.512s' into place", lpath);
    return 0;
}

/* Moves every entry of the layer's directory lfd into the tree's directory bfd. */
static int merge_dir(const struct merge *m, int lfd, int bfd, const char *bpath, const char *lpath,
                     unsigned depth, kiln_error_t *err)
{
    if (depth > MAX_DEPTH)
        return kiln_error_set(err, ELOOP, "'%.512s': more than %d levels", lpath, MAX_DEPTH);
    int dfd = dup(lfd);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return kiln_error_set(err, errno, "listing '%.512s'", lpath);
    }
    /* the names first: renaming entries out while reading the directory could skip some */
    char **names = NULL;
    size_t n = 0, alloc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == alloc)
            names = kiln_xrealloc(names, (alloc = alloc ? alloc * 2 : 16) * sizeof(*names));
        names[n++] = kiln_xstrdup(de->d_name);
    }
    closedir(d);
    int ret = 0;
    for (size_t i = 0; i < n; i++) {
        if (ret == 0) {
            _cleanup_free_ char *bp =
                bpath[0] ? kiln_xasprintf("%s/%s", bpath, names[i]) : kiln_xstrdup(names[i]);
            _cleanup_free_ char *lp =
                lpath[0] ? kiln_xasprintf("%s/%s", lpath, names[i]) : kiln_xstrdup(names[i]);
            ret = merge_entry(m, lfd, bfd, names[i], bp, lp, depth, err);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

int kiln_unpack_merge(const char *rootfs, const char *layerdir, const kiln_unpack_record_t *rec,
                      kiln_error_t *err)
{
    _cleanup_close_ int rootfd = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int lfd = open(layerdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0)
        return kiln_error_set(err, errno, "opening the rootfs %s", rootfs);
    if (lfd < 0)
        return kiln_error_set(err, errno, "opening the layer tree %s", layerdir);
    struct merge m = {.rootfd = rootfd, .rec = rec};
    int r = needs_in_place(&m, lfd, err);
    if (r == 0 && (apply_removals(&m, err) < 0 || merge_dir(&m, lfd, rootfd, "", "", 0, err) < 0))
        r = -1;
    if (r < 0)
        return kiln_error_prefix(err, "merging a layer into %s", rootfs);
    return r;
}
