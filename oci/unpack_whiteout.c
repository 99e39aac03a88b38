/* kiln — a layer's whiteouts and opaque directories: what the lower layers put there removed,
 * never an entry of the same layer (OCI image spec: "whiteout files MUST only apply to
 * resources in lower/parent layers"), whatever their order in the tar. In record mode
 * (oci/unpack_merge) they are recorded instead, or the layer is found to be one whose merge
 * could differ from applying it in place (see kiln_unpack_record_replace). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "oci/unpack_impl.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

void kiln_unpack_strv_push(char ***v, size_t *n, const char *s)
{
    if ((*n & (*n - 1)) == 0) /* 0, 1, 2, 4, ...: grown by doubling */
        *v = kiln_xrealloc(*v, (*n ? *n * 2 : 1) * sizeof(**v));
    (*v)[(*n)++] = kiln_xstrdup(s);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kiln_unpack_record_free(kiln_unpack_record_t *rec)
{
    if (rec == NULL)
        return;
    strv_free(rec->whiteouts, rec->n_whiteouts);
    strv_free(rec->opaques, rec->n_opaques);
    strv_free(rec->implicit, rec->n_implicit);
    memset(rec, 0, sizeof(*rec));
}

void kiln_unpack_created_add(struct unpack *u, const char *path)
{
    kiln_strset_add(&u->created, path);
    _cleanup_free_ char *up = kiln_xstrdup(path);
    for (char *slash; (slash = strrchr(up, '/')) != NULL;) {
        *slash = '\0';
        if (kiln_strset_has(&u->held, up))
            break; /* and every directory above it */
        kiln_strset_add(&u->held, up);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void kiln_unpack_record_end(struct unpack *u)
{
    kiln_unpack_record_t *rec = u->opts->record;
    rec->no_chown = !u->do_chown;
    if (rec->n_implicit > 1) /* (qsort of NULL is undefined, even for 0 items: UBSan) */
        qsort(rec->implicit, rec->n_implicit, sizeof(*rec->implicit), cmp_str);
}

/* The error that sends a layer unpacked on its own back to be applied in place. */
static int needs_tree(kiln_error_t *err, const char *entry, const char *why)
{
    return kiln_error_set(err, EAGAIN,
                          "layer entry '%.512s' %s: its result depends on the layers below (the "
                          "layer is applied onto them in place)",
                          entry, why);
}

int kiln_unpack_record_replace(struct unpack *u, int pfd, const char *name, const char *entry,
                               int is_dir, int was, kiln_error_t *err)
{
    /* the same path again, a directory over its directory or a non-directory over its
     * non-directory, does the same over any lower tree; anything else (a directory it only
     * implied, one made by a link of its own, a directory replaced by a file or back) took
     * or removed what the lower layers had there when applied in place */
    struct stat st;
    if (was && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode) == !is_dir)
        return 0;
    return needs_tree(err, entry, "replaces a path the same layer made before");
}

/* A listing of directory fd (named path), or NULL with err. */
static DIR *list_dir(int fd, const char *path, const char *entry, kiln_error_t *err)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
    if (d == NULL) {
        kiln_error_set(err, errno, "layer entry '%.512s': listing '%.512s'", entry, path);
        if (dfd >= 0)
            close(dfd);
    }
    return d;
}

/* Record mode: a removal (of name under pfd, or of what directory pfd holds when name is NULL)
 * in directory `dir` is recorded only where the merge's removals-first gives the result of
 * applying it in place: nothing of the layer there yet and no link of the layer on the way. */
static int record_removal(struct unpack *u, int pfd, const char *dir, const char *name,
                          const char *entry, kiln_error_t *err)
{
    struct stat st;
    int mine = 0;
    if (name != NULL) {
        mine = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    } else {
        DIR *d = list_dir(pfd, dir, entry, err);
        if (d == NULL)
            return -1;
        struct dirent *de;
        while (!mine && (de = readdir(d)) != NULL)
            mine = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
        closedir(d);
    }
    if (mine)
        return needs_tree(err, entry, "comes after entries of the same layer it names");
    _cleanup_free_ char *at = NULL;
    if (dir[0] != '\0' &&
        (kiln_pathres_resolve(u->rootfd, dir, 0, &at, NULL) < 0 || strcmp(at + 1, dir) != 0))
        return needs_tree(err, entry, "is reached through a symlink of the same layer");
    return 0;
}

/* The most directory fds one removal walk keeps open (one per level down to here): below,
 * each level re-opens its directory from where the walk started, so a layer nested as deep
 * as its paths allow (PATH_MAX) never runs out of fds. */
#define DROP_FDS 16

/* Where a removal walk started: the directory fd `anchor` is the path's first `skip` bytes. */
struct drop_walk {
    int anchor;
    size_t skip;
};

/* Directory `path` re-opened below the walk's start, each component O_NOFOLLOW (the walk only
 * went down through directories opened so); a new O_PATH fd, or -1 with err. */
static int drop_reopen(const struct drop_walk *w, const char *path, const char *entry,
                       kiln_error_t *err)
{
    const char *rel = strlen(path) > w->skip ? path + w->skip : "";
    int fd = kiln_fs_open_below(w->anchor, rel, O_PATH | O_DIRECTORY);
    if (fd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': opening '%.512s'", entry, path);
    return fd;
}

static int drop_lower(struct unpack *u, const struct drop_walk *w, int *dirfd, int owned,
                      const char *name, const char *path, const char *entry, unsigned depth,
                      kiln_error_t *err);

/* Removes from directory *fd (path, `depth` levels below the walk's start) what the lower
 * layers put there (drop_lower of each). Below DROP_FDS levels *fd is closed (set to -1)
 * once listed and re-opened for each child. */
static int drop_children(struct unpack *u, const struct drop_walk *w, int *fd, const char *path,
                         const char *entry, unsigned depth, kiln_error_t *err)
{
    DIR *d = list_dir(*fd, path, entry, err);
    if (d == NULL)
        return -1;
    /* the names first: removing entries while reading the directory could skip some */
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            kiln_unpack_strv_push(&names, &n, de->d_name);
    closedir(d);
    int deep = depth >= DROP_FDS;
    if (deep) {
        close(*fd);
        *fd = -1;
    }
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        _cleanup_free_ char *p =
            path[0] ? kiln_xasprintf("%s/%s", path, names[i]) : kiln_xstrdup(names[i]);
        _cleanup_close_ int re = deep ? drop_reopen(w, path, entry, err) : -1;
        if (deep && re < 0)
            ret = -1;
        else
            ret = drop_lower(u, w, deep ? &re : fd, deep, names[i], p, entry, depth, err);
    }
    strv_free(names, n);
    return ret;
}

/* Removes *dirfd/name (path) as far as the lower layers put it there: an entry of this layer
 * stays (a directory of its own walked for the lower layers' entries in it), a directory
 * holding some is walked, anything else is removed whole. An owned *dirfd is closed (set to
 * -1) before walking down, so the levels below DROP_FDS hold none. */
static int drop_lower(struct unpack *u, const struct drop_walk *w, int *dirfd, int owned,
                      const char *name, const char *path, const char *entry, unsigned depth,
                      kiln_error_t *err)
{
    int mine = kiln_strset_has(&u->created, path);
    struct stat st;
    if (!mine && !kiln_strset_has(&u->held, path))
        return kiln_unpack_remove(u, *dirfd, name, entry, err);
    if (fstatat(*dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "layer entry '%.512s'", entry);
    if (!S_ISDIR(st.st_mode)) /* held: a lower layer's link this layer's entries went through */
        return mine ? 0 : kiln_unpack_remove(u, *dirfd, name, entry, err);
    _cleanup_close_ int fd = openat(*dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': opening '%.512s'", entry, path);
    if (owned) {
        close(*dirfd);
        *dirfd = -1;
    }
    return drop_children(u, w, &fd, path, entry, depth + 1, err);
}

/* drop_children of directory fd (path), the start of the walk. */
static int drop_all(struct unpack *u, int fd, const char *path, const char *entry,
                    kiln_error_t *err)
{
    struct drop_walk w = {fd, path[0] ? strlen(path) + 1 : 0};
    _cleanup_close_ int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s'", entry);
    return drop_children(u, &w, &own, path, entry, 0, err);
}

/* Overlay form: directory fd hides the lower layers' directory of its name. */
static int overlay_opaque(struct unpack *u, int fd, const char *entry, kiln_error_t *err)
{
    const char *x = u->opts->overlay_user_xattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
    _cleanup_close_ int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsetxattr(dfd, x, "y", 1, 0) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': setting %s", entry, x);
    return 0;
}

int kiln_unpack_opaque(struct unpack *u, const char *dir, const char *entry, kiln_error_t *err)
{
    _cleanup_close_ int pfd = kiln_unpack_open_dir(u, dir, entry, err);
    if (pfd < 0)
        return -1;
    if (u->opts->record != NULL) { /* the lower layers are elsewhere: emptied at the merge */
        if (record_removal(u, pfd, dir, NULL, entry, err) < 0)
            return -1;
        kiln_unpack_strv_push(&u->opts->record->opaques, &u->opts->record->n_opaques, dir);
        return 0;
    }
    if (u->opts->overlay_form)
        return overlay_opaque(u, pfd, entry, err);
    return drop_all(u, pfd, dir, entry, err);
}

int kiln_unpack_whiteout(struct unpack *u, const char *parent, const char *name, const char *entry,
                         kiln_error_t *err)
{
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return kiln_error_set(err, EINVAL, "layer entry '%.512s': invalid whiteout", entry);
    int pfd = kiln_unpack_parent_fd(u, parent, entry, err);
    if (pfd < 0)
        return -1;
    _cleanup_free_ char *p = parent[0] ? kiln_xasprintf("%s/%s", parent, name) : kiln_xstrdup(name);
    if (u->opts->record != NULL) { /* the lower layers are elsewhere: removed at the merge */
        if (record_removal(u, pfd, parent, name, entry, err) < 0)
            return -1;
        kiln_unpack_strv_push(&u->opts->record->whiteouts, &u->opts->record->n_whiteouts, p);
        return 0;
    }
    struct stat st;
    if (u->opts->overlay_form &&
        (kiln_strset_has(&u->created, p) || kiln_strset_has(&u->held, p))) {
        /* this layer's own entry stays; a directory of it hides the lower layers' one */
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            return 0;
        _cleanup_close_ int fd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? kiln_error_set(err, errno, "layer entry '%.512s'", entry)
                      : overlay_opaque(u, fd, entry, err);
    }
    /* an fd of its own: a removal forgets the cached parents */
    _cleanup_close_ int dfd = fcntl(pfd, F_DUPFD_CLOEXEC, 3);
    if (dfd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s'", entry);
    struct drop_walk w = {dfd, parent[0] ? strlen(parent) + 1 : 0};
    int at = dfd; /* shared with the walk's anchor: not closed by it */
    if (drop_lower(u, &w, &at, 0, name, p, entry, 0, err) < 0)
        return -1;
    if (!u->opts->overlay_form)
        return 0;
    if (mknodat(dfd, name, S_IFCHR | 0600, makedev(0, 0)) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': creating the overlay whiteout",
                              entry);
    return 0;
}
