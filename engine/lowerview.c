/* kiln — a partial merged view of overlay-form layer directories (see lowerview.h). */
#include "engine/lowerview.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Deepest directory nesting merged: a guard against runaway recursion. */
#define VIEW_MAX_DEPTH 1024
/* Entries of one merged directory, all layers together. */
#define VIEW_MAX_NAMES (1u << 20)
/* Components of a path asked for. */
#define VIEW_MAX_COMPONENTS 256

typedef struct view {
    const char *const *lowers;
    size_t n;
    /* kiln_lowerview_flatten: a tree that stands alone (every failure to
     * reproduce an entry is an error, directories get their xattrs) */
    bool flat;
} view_t;

/* What the union holds at a path. */
enum { ENTRY_NONE, ENTRY_OTHER, ENTRY_DIR };

static bool is_whiteout(const struct stat *st)
{
    return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool is_opaque(const char *path)
{
    char v[4];
    if (lgetxattr(path, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y')
        return true;
    return lgetxattr(path, "user.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y';
}

/* Looks rel up in the layers idx[0..n) (top-most first) with overlayfs rules:
 * the top-most entry decides; a directory merges with the directories below
 * it down to an opaque one, a whiteout or a non-directory. Returns ENTRY_NONE
 * (absent or whited out), ENTRY_OTHER (a non-directory in layer out[0]) or
 * ENTRY_DIR (out[0..*n_out) are the merging layers); *top is the top-most
 * entry's stat. -1 when a lookup fails for another reason than absence. */
static int resolve(const view_t *v, const size_t *idx, size_t n, const char *rel, size_t *out,
                   size_t *n_out, struct stat *top, kiln_error_t *err)
{
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/%s", v->lowers[idx[i]], rel);
        struct stat st;
        if (lstat(p, &st) < 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue;
            return kiln_error_set(err, errno, "stat %s", p);
        }
        if (*n_out == 0) {
            if (is_whiteout(&st))
                return ENTRY_NONE;
            *top = st;
            if (!S_ISDIR(st.st_mode)) {
                out[0] = idx[i];
                *n_out = 1;
                return ENTRY_OTHER;
            }
        } else if (!S_ISDIR(st.st_mode)) {
            break; /* a whiteout or non-directory hides everything below */
        }
        out[(*n_out)++] = idx[i];
        if (is_opaque(p))
            break;
    }
    return *n_out > 0 ? ENTRY_DIR : ENTRY_NONE;
}

/* Owner, mode and times of st onto path (mode not for symlinks). */
static void set_meta(const char *path, const struct stat *st)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    (void)lchown(path, st->st_uid, st->st_gid);
    if (!S_ISLNK(st->st_mode))
        (void)chmod(path, st->st_mode & 07777);
    (void)utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

/* Whether an xattr is overlayfs's own (opaque, origin, impure, ...): it
 * means nothing outside the overlay it was made for. */
static bool overlay_xattr(const char *name)
{
    return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}

/* Copies the xattrs of src but overlayfs's own onto dst (not following
 * links). -1 with err naming dst when one cannot be read or set. */
static int copy_xattrs(const char *src, const char *dst, kiln_error_t *err)
{
    char list[XATTR_LIST_MAX];
    _cleanup_free_ char *val = NULL;
    ssize_t n = llistxattr(src, list, sizeof(list));

    if (n < 0)
        return errno == ENOTSUP ? 0 : kiln_error_set(err, errno, "listing xattrs of %s", src);
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
        ssize_t v;
        if (overlay_xattr(list + off))
            continue;
        if (val == NULL)
            val = kiln_xmalloc(XATTR_SIZE_MAX);
        v = lgetxattr(src, list + off, val, XATTR_SIZE_MAX);
        if (v < 0) {
            if (errno == ENODATA)
                continue;
            return kiln_error_set(err, errno, "reading xattr %s of %s", list + off, src);
        }
        if (lsetxattr(dst, list + off, val, (size_t)v, 0) < 0)
            return kiln_error_set(err, errno, "setting xattr %s on %s", list + off, dst);
    }
    return 0;
}

/* set_meta for a flattened tree: owner, then mode (a chown clears set-id
 * bits), then the xattrs of src (a chown clears security.capability), then
 * the times; each failure is an error naming dst. */
static int set_meta_strict(const char *src, const char *dst, const struct stat *st,
                           kiln_error_t *err)
{
    struct timespec ts[2] = {st->st_atim, st->st_mtim};

    if (lchown(dst, st->st_uid, st->st_gid) < 0)
        return kiln_error_set(err, errno, "chown %s to %u:%u", dst, (unsigned)st->st_uid,
                              (unsigned)st->st_gid);
    if (!S_ISLNK(st->st_mode) && chmod(dst, st->st_mode & 07777) < 0)
        return kiln_error_set(err, errno, "chmod %s", dst);
    if (copy_xattrs(src, dst, err) < 0)
        return -1;
    if (utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "setting the times of %s", dst);
    return 0;
}

/* Copies a regular file's data to a new file dst. */
static int copy_data(const char *src, const char *dst, kiln_error_t *err)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_close_ int out = -1;
    char buf[1 << 14];
    ssize_t r;

    if (in < 0)
        return kiln_error_set(err, errno, "open %s", src);
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return kiln_error_set(err, errno, "create %s", dst);
    while ((r = copy_file_range(in, NULL, out, NULL, 1u << 30, 0)) > 0)
        ;
    if (r == 0)
        return 0;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
        return kiln_error_set(err, errno, "copy %s", src);
    while ((r = read(in, buf, sizeof(buf))) > 0)
        if (kiln_fs_write_all(out, buf, (size_t)r, err) < 0)
            return -1;
    return r < 0 ? kiln_error_set(err, errno, "read %s", src) : 0;
}

/* Puts the non-directory src at dst: a hardlink, or when linking is not
 * possible a copy (regular files and symlinks; COPY skips the other kinds, a
 * flattened tree makes devices and FIFOs again). */
static int place_other(const view_t *v, const char *src, const char *dst, const struct stat *st,
                       kiln_error_t *err)
{
    if (linkat(AT_FDCWD, src, AT_FDCWD, dst, 0) == 0 || errno == EEXIST)
        return 0; /* EEXIST: an earlier source of the same COPY put it there */
    if (errno != EXDEV && errno != EMLINK && errno != EPERM)
        return kiln_error_set(err, errno, "link %s", dst);
    if (S_ISLNK(st->st_mode)) {
        char target[4096];
        ssize_t l = readlink(src, target, sizeof(target) - 1);
        if (l < 0)
            return kiln_error_set(err, errno, "readlink %s", src);
        target[l] = '\0';
        if (symlink(target, dst) < 0)
            return kiln_error_set(err, errno, "symlink %s", dst);
    } else if (S_ISREG(st->st_mode)) {
        if (copy_data(src, dst, err) < 0)
            return -1;
    } else if (v->flat && !S_ISSOCK(st->st_mode)) {
        if (mknod(dst, st->st_mode & (S_IFMT | 07777), st->st_rdev) < 0)
            return kiln_error_set(err, errno, "mknod %s", dst);
    } else {
        return 0;
    }
    if (v->flat)
        return set_meta_strict(src, dst, st, err);
    set_meta(dst, st);
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory rel of the layers idx[0..n), sorted, duplicates kept. */
static int union_names(const view_t *v, const size_t *idx, size_t n, const char *rel, char ***out,
                       size_t *n_out, kiln_error_t *err)
{
    char **names = NULL;
    size_t count = 0, alloc = 0;

    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = kiln_xasprintf("%s/%s", v->lowers[idx[i]], rel);
        _cleanup_closedir_ DIR *d = opendir(p);
        struct dirent *de;
        if (d == NULL) {
            kiln_error_set(err, errno, "open directory %s", p);
            goto fail;
        }
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (count >= VIEW_MAX_NAMES) {
                kiln_error_set(err, E2BIG, "directory %s: more than %u entries", p, VIEW_MAX_NAMES);
                goto fail;
            }
            if (count == alloc) {
                alloc = alloc ? alloc * 2 : 64;
                names = kiln_xrealloc(names, alloc * sizeof(char *));
            }
            names[count++] = kiln_xstrdup(de->d_name);
        }
    }
    if (count > 1)
        qsort(names, count, sizeof(char *), cmp_name);
    *out = names;
    *n_out = count;
    return 0;
fail:
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return -1;
}

/* Merges directory rel of the layers idx[0..n) into dst (created), top is
 * the top-most layer's stat of it. */
static int merge_dir(const view_t *v, const size_t *idx, size_t n, const char *rel, const char *dst,
                     const struct stat *top, int depth, kiln_error_t *err)
{
    char **names = NULL;
    size_t n_names = 0;
    _cleanup_free_ size_t *cidx = NULL;
    int ret = 0;

    if (depth > VIEW_MAX_DEPTH)
        return kiln_error_set(err, ELOOP, "%s: directories nested deeper than %d", rel,
                              VIEW_MAX_DEPTH);
    if (mkdir(dst, 0700) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", dst);
    if (union_names(v, idx, n, rel, &names, &n_names, err) < 0)
        return -1;
    cidx = kiln_xmalloc((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n_names && ret == 0; i++) {
        _cleanup_free_ char *crel = NULL, *cdst = NULL;
        struct stat cst;
        size_t cn;
        int r;
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        crel = rel[0] ? kiln_xasprintf("%s/%s", rel, names[i]) : kiln_xstrdup(names[i]);
        cdst = kiln_xasprintf("%s/%s", dst, names[i]);
        r = resolve(v, idx, n, crel, cidx, &cn, &cst, err);
        if (r < 0) {
            ret = -1;
        } else if (r == ENTRY_OTHER) {
            _cleanup_free_ char *src = kiln_xasprintf("%s/%s", v->lowers[cidx[0]], crel);
            ret = place_other(v, src, cdst, &cst, err);
        } else if (r == ENTRY_DIR) {
            ret = merge_dir(v, cidx, cn, crel, cdst, &cst, depth + 1, err);
        }
    }
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    if (ret == 0 && v->flat) {
        /* the top-most copy of the directory decides its metadata */
        _cleanup_free_ char *src = kiln_xasprintf("%s/%s", v->lowers[idx[0]], rel);
        return set_meta_strict(src, dst, top, err);
    }
    if (ret == 0)
        set_meta(dst, top);
    return ret;
}

int kiln_lowerview_extract(const char *const *lowers, size_t n, const char *path, const char *dest,
                           kiln_error_t *err)
{
    view_t v = {.lowers = lowers, .n = n};
    _cleanup_free_ char *copy = kiln_xstrdup(path);
    _cleanup_free_ char *rel = NULL, *dst = NULL;
    _cleanup_free_ size_t *cur = kiln_xmalloc((n ? n : 1) * sizeof(size_t));
    _cleanup_free_ size_t *next = kiln_xmalloc((n ? n : 1) * sizeof(size_t));
    struct stat parents[VIEW_MAX_COMPONENTS];
    size_t ends[VIEW_MAX_COMPONENTS];
    char *comps[VIEW_MAX_COMPONENTS];
    size_t n_comps = 0, n_cur = n, n_next = 0;
    char *save = NULL;
    struct stat st;
    int r = ENTRY_DIR;

    for (size_t i = 0; i < n; i++)
        cur[i] = i;
    for (char *c = strtok_r(copy, "/", &save); c != NULL; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0 || n_comps == VIEW_MAX_COMPONENTS)
            return 0;
        comps[n_comps++] = c;
    }
    if (n == 0)
        return 1;
    if (n_comps == 0) {
        if (stat(lowers[0], &st) < 0)
            return kiln_error_set(err, errno, "stat %s", lowers[0]);
        return merge_dir(&v, cur, n_cur, "", dest, &st, 0, err) < 0 ? -1 : 1;
    }
    /* walk down: every component but the last must be a directory */
    for (size_t i = 0; i < n_comps; i++) {
        char *r2 = rel ? kiln_xasprintf("%s/%s", rel, comps[i]) : kiln_xstrdup(comps[i]);
        free(rel);
        rel = r2;
        r = resolve(&v, cur, n_cur, rel, next, &n_next, &st, err);
        if (r < 0)
            return -1;
        if (r == ENTRY_NONE)
            return 1; /* not found: the caller reports it */
        if (r == ENTRY_OTHER && S_ISLNK(st.st_mode))
            return 0; /* through or onto a symlink: needs the real rootfs */
        if (r == ENTRY_OTHER && i + 1 < n_comps)
            return 1; /* a file where a directory should be: not found */
        if (i + 1 < n_comps) {
            parents[i] = st;
            memcpy(cur, next, n_next * sizeof(size_t));
            n_cur = n_next;
        }
    }
    /* the parents, then the entry, then the parents' metadata (their mtimes
     * change while entries are made in them) */
    dst = kiln_xstrdup(dest);
    for (size_t i = 0; i < n_comps; i++) {
        char *d2 = kiln_xasprintf("%s/%s", dst, comps[i]);
        free(dst);
        dst = d2;
        ends[i] = strlen(dst);
        if (i + 1 < n_comps && mkdir(dst, 0700) < 0 && errno != EEXIST)
            return kiln_error_set(err, errno, "mkdir %s", dst);
    }
    if (r == ENTRY_DIR) {
        if (merge_dir(&v, next, n_next, rel, dst, &st, 0, err) < 0)
            return -1;
    } else {
        _cleanup_free_ char *src = kiln_xasprintf("%s/%s", lowers[next[0]], rel);
        if (place_other(&v, src, dst, &st, err) < 0)
            return -1;
    }
    for (size_t i = n_comps - 1; i-- > 0;) {
        dst[ends[i]] = '\0';
        set_meta(dst, &parents[i]);
    }
    return 1;
}

int kiln_lowerview_flatten(const char *const *lowers, size_t n, const char *dest, kiln_error_t *err)
{
    view_t v = {.lowers = lowers, .n = n, .flat = true};
    _cleanup_free_ size_t *idx = kiln_xmalloc((n ? n : 1) * sizeof(size_t));
    struct stat st;

    if (n == 0)
        return kiln_error_set(err, EINVAL, "flattening %s: no layers", dest);
    if (lstat(lowers[0], &st) < 0)
        return kiln_error_set(err, errno, "stat %s", lowers[0]);
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    /* the root merges like any directory: down to an opaque one */
    for (size_t i = 0; i < n; i++) {
        if (is_opaque(lowers[i])) {
            n = i + 1;
            break;
        }
    }
    return merge_dir(&v, idx, n, "", dest, &st, 0, err);
}

size_t kiln_lowerview_unique(char **lowers, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(lowers[j], lowers[i]) == 0;
        if (seen) {
            free(lowers[i]);
        } else {
            lowers[k++] = lowers[i];
        }
    }
    for (size_t i = k; i < n; i++)
        lowers[i] = NULL;
    return k;
}

/* A path being resolved in the union: the merged directory reached (canon,
 * "" or "a/b") and the layers that make it up (idx[0..n_idx), top-most first). */
typedef struct lwalk {
    view_t v;
    char *canon;
    size_t *idx, n_idx;
    size_t *next;
    int links;
} lwalk_t;

/* Sets the walk's canonical path to s; -1 (ENAMETOOLONG) past PATH_MAX. */
static int canon_set(lwalk_t *w, const char *s, kiln_error_t *err)
{
    size_t l = strlen(s);
    if (l > PATH_MAX)
        return kiln_error_set(err, ENAMETOOLONG, "resolving %.80s...", s);
    memcpy(w->canon, s, l + 1);
    return 0;
}

static void lwalk_root(lwalk_t *w)
{
    w->canon[0] = '\0';
    w->n_idx = w->v.n;
    for (size_t i = 0; i < w->v.n; i++)
        w->idx[i] = i;
}

/* Walks down the (link-free) canon again from the root: after "..". */
static int lwalk_rewalk(lwalk_t *w, kiln_error_t *err)
{
    _cleanup_free_ char *keep = kiln_xstrdup(w->canon);
    char *save = NULL;
    struct stat st;

    lwalk_root(w);
    for (char *c = strtok_r(keep, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        size_t n_next = 0;
        char *rel = w->canon[0] ? kiln_xasprintf("%s/%s", w->canon, c) : kiln_xstrdup(c);
        int r = resolve(&w->v, w->idx, w->n_idx, rel, w->next, &n_next, &st, err);
        if (r != ENTRY_DIR) {
            free(rel);
            return r < 0 ? -1 : kiln_error_set(err, ENOENT, "%s changed", w->canon);
        }
        r = canon_set(w, rel, err);
        free(rel);
        if (r < 0)
            return -1;
        memcpy(w->idx, w->next, n_next * sizeof(size_t));
        w->n_idx = n_next;
    }
    return 0;
}

int kiln_lowerview_resolve(const char *const *lowers, size_t n, const char *path, unsigned flags,
                           char **out, int *layer, kiln_error_t *err)
{
    lwalk_t w = {.v = {.lowers = lowers, .n = n}};
    _cleanup_free_ char *todo = kiln_xstrdup(path);
    _cleanup_free_ size_t *idx = kiln_xmalloc((n ? n : 1) * sizeof(size_t));
    _cleanup_free_ size_t *next = kiln_xmalloc((n ? n : 1) * sizeof(size_t));
    _cleanup_free_ char *canon = kiln_xzalloc(PATH_MAX + 1);
    bool trail = path[0] && path[strlen(path) - 1] == '/';
    int found = -2; /* -2: the directory canon itself */
    size_t off = 0;

    w.canon = canon;
    w.idx = idx;
    w.next = next;
    lwalk_root(&w);
    if (strlen(path) >= PATH_MAX)
        return kiln_error_set(err, ENAMETOOLONG, "resolving %s", path);
    for (;;) {
        _cleanup_free_ char *name = NULL;
        _cleanup_free_ char *rel = NULL;
        const char *p = todo + off, *q, *r;
        size_t n_next = 0;
        bool is_last;
        struct stat st;
        int k;

        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        q = p + strcspn(p, "/");
        for (r = q; *r == '/'; r++)
            ;
        name = kiln_xstrndup(p, (size_t)(q - p));
        is_last = *r == '\0';
        off = (size_t)(r - todo);
        if (strcmp(name, ".") == 0)
            continue;
        if (strcmp(name, "..") == 0) {
            char *slash = strrchr(w.canon, '/');
            if (slash)
                *slash = '\0';
            else
                w.canon[0] = '\0';
            if (lwalk_rewalk(&w, err) < 0)
                return kiln_error_prefix(err, "resolving %s", path);
            continue;
        }
        rel = w.canon[0] ? kiln_xasprintf("%s/%s", w.canon, name) : kiln_xstrdup(name);
        if (strlen(rel) >= PATH_MAX)
            return kiln_error_set(err, ENAMETOOLONG, "resolving %s", path);
        k = w.n_idx ? resolve(&w.v, w.idx, w.n_idx, rel, w.next, &n_next, &st, err) : ENTRY_NONE;
        if (k < 0)
            return kiln_error_prefix(err, "resolving %s", path);
        if (k == ENTRY_OTHER && S_ISLNK(st.st_mode) &&
            !(is_last && q == r && (flags & KILN_PATHRES_NOFOLLOW))) {
            /* a symlink of the merged tree: its target, inside the tree */
            _cleanup_free_ char *lp = kiln_xasprintf("%s/%s", lowers[w.next[0]], rel);
            char target[PATH_MAX];
            ssize_t tl = readlink(lp, target, sizeof(target) - 1);
            char *nt;
            if (tl < 0)
                return kiln_error_set(err, errno, "resolving %s", path);
            if (++w.links > KILN_PATHRES_MAX_LINKS)
                return kiln_error_set(err, ELOOP, "resolving %s", path);
            target[tl] = '\0';
            if (target[0] == '/')
                lwalk_root(&w);
            nt = *r ? kiln_xasprintf("%s/%s", target, r) : kiln_xstrdup(target);
            free(todo);
            todo = nt;
            off = 0;
            continue;
        }
        if (k == ENTRY_DIR && !is_last) {
            if (canon_set(&w, rel, err) < 0)
                return -1;
            memcpy(w.idx, w.next, n_next * sizeof(size_t));
            w.n_idx = n_next;
            continue;
        }
        if (k == ENTRY_NONE && !is_last && !(flags & KILN_PATHRES_MISSING_OK))
            return kiln_error_set(err, ENOENT, "resolving %s", path);
        if (k == ENTRY_OTHER && !is_last)
            return kiln_error_set(err, ENOTDIR, "resolving %s", path);
        if (k == ENTRY_NONE && !is_last) {
            /* the rest cannot exist: kept as written, ".." applied lexically */
            _cleanup_free_ char *rest = kiln_xasprintf("%s/%s", rel, r);
            char *save = NULL;
            w.canon[0] = '\0';
            for (char *c = strtok_r(rest, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                char *slash = strrchr(w.canon, '/');
                if (strcmp(c, ".") == 0)
                    continue;
                if (strcmp(c, "..") == 0) {
                    if (slash)
                        *slash = '\0';
                    else
                        w.canon[0] = '\0';
                    continue;
                }
                if (strlen(w.canon) + strlen(c) + 2 > PATH_MAX)
                    return kiln_error_set(err, ENAMETOOLONG, "resolving %s", path);
                {
                    size_t at = strlen(w.canon);
                    if (at > 0)
                        w.canon[at++] = '/';
                    memcpy(w.canon + at, c, strlen(c) + 1);
                }
            }
            found = -1;
            break;
        }
        /* the last component: a file, a directory, a link not followed, or missing */
        if (canon_set(&w, rel, err) < 0)
            return -1;
        found = k == ENTRY_NONE ? -1 : (int)w.next[0];
        break;
    }
    if (found == -2)
        found = w.n_idx ? (int)w.idx[0] : -1;
    if (found < 0 && !(flags & KILN_PATHRES_MISSING_OK))
        return kiln_error_set(err, ENOENT, "resolving %s", path);
    *out = kiln_xasprintf("/%s%s", w.canon, trail && w.canon[0] ? "/" : "");
    *layer = found;
    return 0;
}
