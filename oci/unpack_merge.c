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
#include "utils/pathres.h"

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

/* The layer's opaque directories and whiteouts, applied to the lower layers' tree. */
static int apply_removals(const struct merge *m, kiln_error_t *err)
{
    for (size_t i = 0; i < m->rec->n_opaques; i++) {
        _cleanup_close_ int fd =
            kiln_pathres_openat(m->rootfd, m->rec->opaques[i], O_RDONLY | O_DIRECTORY);
        if (fd < 0 && errno != ENOENT)
            return kiln_error_set(err, errno, "opaque directory '%.512s'", m->rec->opaques[i]);
        if (fd >= 0 && empty_dir(fd, m->rec->opaques[i], err) < 0)
            return -1;
    }
    for (size_t i = 0; i < m->rec->n_whiteouts; i++) {
        const char *w = m->rec->whiteouts[i];
        const char *slash = strrchr(w, '/');
        _cleanup_free_ char *parent = slash ? kiln_xstrndup(w, (size_t)(slash - w)) : NULL;
        _cleanup_close_ int pfd =
            parent ? kiln_pathres_openat(m->rootfd, parent, O_PATH | O_DIRECTORY) : -1;
        if (parent != NULL && pfd < 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue; /* nothing below to remove */
            return kiln_error_set(err, errno, "whiteout '%.512s'", w);
        }
        if (kiln_fs_rm_rf_at(parent ? pfd : m->rootfd, slash ? slash + 1 : w, err) < 0)
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
    if (S_ISDIR(ls.st_mode) && here) {
        int imp = implicit(m, lpath);
        _cleanup_close_ int cfd = -1;
        _cleanup_free_ char *canon = NULL;
        if (S_ISDIR(bs.st_mode)) {
            cfd = openat(bfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        } else if (imp && S_ISLNK(bs.st_mode)) {
            /* entries under a directory the layer only implied go where the link leads,
             * inside the root, as when the layer is applied in place */
            if (kiln_pathres_resolve(m->rootfd, bpath, 0, &canon, err) < 0)
                return kiln_error_prefix(err, "layer entries under '%.512s'", lpath);
            cfd = kiln_pathres_openat(m->rootfd, canon, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        } else if (imp) {
            return kiln_error_set(err, ENOTDIR, "layer entries under '%.512s': not a directory",
                                  lpath);
        }
        if (cfd < 0 && (S_ISDIR(bs.st_mode) || imp))
            return kiln_error_set(err, errno, "'%.512s': opening the directory", bpath);
        if (cfd >= 0) {
            _cleanup_close_ int lcfd =
                openat(lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (lcfd < 0)
                return kiln_error_set(err, errno, "'%.512s': opening the directory", lpath);
            if (merge_dir(m, lcfd, cfd, canon ? canon : bpath, lpath, depth + 1, err) < 0)
                return -1;
            if (imp)
                return 0;
            /* the layer's own directory entry: its metadata, its mtime once filled */
            struct timespec ts[2] = {ls.st_mtim, ls.st_mtim};
            if (copy_dir_meta(cfd, lcfd, &ls, bpath, err) < 0)
                return -1;
            if (futimens(cfd, ts) < 0)
                return kiln_error_set(err, errno, "'%.512s': setting the mtime", bpath);
            return 0;
        }
    }
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
    if (apply_removals(&m, err) < 0 || merge_dir(&m, lfd, rootfd, "", "", 0, err) < 0)
        return kiln_error_prefix(err, "merging a layer into %s", rootfs);
    return 0;
}
