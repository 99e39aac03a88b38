/* kiln — apply a layer tar stream onto a rootfs, never writing outside it. */
#include "oci/unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "oci/tar_reader.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

#define WRITE_CHUNK (1024 * 1024)
#define WHITEOUT_PREFIX ".wh."
#define OPAQUE_MARKER ".wh..wh..opq"

/* A directory whose mtime is set once all its children are in place. */
struct dir_time {
    char *path;
    struct timespec mtime;
};

struct unpack {
    const kiln_unpack_opts_t *opts;
    int rootfd;
    int do_chown;
    kiln_tar_reader_t *tr;
    kiln_sha256_t raw, out;
    uint64_t raw_bytes, out_bytes;
    char *wbuf;
    /* paths created by this layer (for opaque directories) */
    char **created;
    size_t ncreated, created_alloc;
    struct dir_time *dirs;
    size_t ndirs, dirs_alloc;
    /* cached parent directory */
    char *cached_parent;
    int cached_fd;
};

void kiln_unpack_opts_init(kiln_unpack_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->chown = -1;
}

static void raw_hash(void *ctx, const void *buf, size_t len)
{
    struct unpack *u = ctx;
    kiln_sha256_update(&u->raw, buf, len);
    u->raw_bytes += len;
}

static void out_hash(void *ctx, const void *buf, size_t len)
{
    struct unpack *u = ctx;
    kiln_sha256_update(&u->out, buf, len);
    u->out_bytes += len;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Records a path created by this layer. */
static void created_add(struct unpack *u, const char *path)
{
    if ((u->ncreated + 1) * 2 > u->created_alloc) {
        size_t nalloc = u->created_alloc ? u->created_alloc * 2 : 1024;
        char **nt = kiln_xzalloc(nalloc * sizeof(*nt));
        for (size_t j = 0; j < u->created_alloc; j++) {
            if (u->created[j] == NULL)
                continue;
            size_t i = hash_str(u->created[j]) % nalloc;
            while (nt[i] != NULL)
                i = (i + 1) % nalloc;
            nt[i] = u->created[j];
        }
        free(u->created);
        u->created = nt;
        u->created_alloc = nalloc;
    }
    size_t i = hash_str(path) % u->created_alloc;
    while (u->created[i] != NULL) {
        if (strcmp(u->created[i], path) == 0)
            return;
        i = (i + 1) % u->created_alloc;
    }
    u->created[i] = kiln_xstrdup(path);
    u->ncreated++;
}

static int created_has(const struct unpack *u, const char *path)
{
    if (u->created_alloc == 0)
        return 0;
    size_t i = hash_str(path) % u->created_alloc;
    while (u->created[i] != NULL) {
        if (strcmp(u->created[i], path) == 0)
            return 1;
        i = (i + 1) % u->created_alloc;
    }
    return 0;
}

int kiln_layer_clean_path(char *p, const char *what, const char *orig, kiln_error_t *err)
{
    if (p[0] == '/')
        return kiln_error_set(err, EINVAL, "layer entry '%.512s': %s is an absolute path", orig,
                              what);
    char *w = p;
    const char *r = p;
    while (*r) {
        while (*r == '/')
            r++;
        const char *c = r;
        while (*r && *r != '/')
            r++;
        size_t n = (size_t)(r - c);
        if (n == 0 || (n == 1 && c[0] == '.'))
            continue;
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return kiln_error_set(err, EINVAL, "layer entry '%.512s': %s contains a '..' component",
                                  orig, what);
        if (w != p)
            *w++ = '/';
        memmove(w, c, n);
        w += n;
    }
    *w = '\0';
    return 0;
}

static void invalidate_parent(struct unpack *u)
{
    free(u->cached_parent);
    u->cached_parent = NULL;
    if (u->cached_fd >= 0)
        close(u->cached_fd);
    u->cached_fd = -1;
}

/* Opens (O_PATH) directory `dir` inside the root, creating missing
 * components (0755). Returns a new fd or -1. */
static int open_dir_create(struct unpack *u, const char *dir, const char *entry, kiln_error_t *err)
{
    int fd = kiln_pathres_openat(u->rootfd, dir, O_PATH | O_DIRECTORY);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT)
        return kiln_error_set(err, errno, "layer entry '%.512s': opening directory '%.512s'", entry,
                              dir);
    const char *slash = strrchr(dir, '/');
    _cleanup_free_ char *parent =
        slash ? kiln_xstrndup(dir, (size_t)(slash - dir)) : kiln_xstrdup("");
    const char *base = slash ? slash + 1 : dir;
    _cleanup_close_ int pfd = open_dir_create(u, parent, entry, err);
    if (pfd < 0)
        return -1;
    if (mkdirat(pfd, base, 0755) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "layer entry '%.512s': creating directory '%.512s'",
                              entry, dir);
    fd = openat(pfd, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': opening directory '%.512s'", entry,
                              dir);
    return fd;
}

/* The (cached) fd of the parent directory of an entry. Not to be closed. */
static int parent_fd(struct unpack *u, const char *parent, const char *entry, kiln_error_t *err)
{
    if (u->cached_parent != NULL && strcmp(u->cached_parent, parent) == 0)
        return u->cached_fd;
    invalidate_parent(u);
    int fd = open_dir_create(u, parent, entry, err);
    if (fd < 0)
        return -1;
    u->cached_parent = kiln_xstrdup(parent);
    u->cached_fd = fd;
    return fd;
}

/* Removes dirfd/name (recursively) when it exists. */
static int remove_existing(struct unpack *u, int dirfd, const char *name, const char *entry,
                           kiln_error_t *err)
{
    int r = kiln_fs_rm_rf_at(dirfd, name, err);
    invalidate_parent(u); /* the cached parent may have been (under) what was removed */
    if (r < 0)
        return kiln_error_prefix(err, "layer entry '%.512s'", entry);
    return 0;
}

/* chown + chmod + xattrs + times on an open fd (regular file or directory). */
static int apply_meta_fd(struct unpack *u, int fd, struct archive_entry *e, const char *entry,
                         int set_times, kiln_error_t *err)
{
    if (u->do_chown) {
        uid_t uid = (uid_t)(archive_entry_uid(e) + u->opts->id_shift);
        gid_t gid = (gid_t)(archive_entry_gid(e) + u->opts->id_shift);
        if (fchown(fd, uid, gid) < 0 && !(errno == EPERM && u->opts->chown == -1))
            return kiln_error_set(err, errno, "layer entry '%.512s': chown %u:%u", entry,
                                  (unsigned)uid, (unsigned)gid);
    }
    if (fchmod(fd, archive_entry_mode(e) & 07777) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': chmod", entry);
    const char *name;
    const void *val;
    size_t len;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
        if (fsetxattr(fd, name, val, len, 0) < 0) {
            /* Not permitted or not supported here (e.g. trusted.* as non-root). */
            if (errno == EPERM || errno == ENOTSUP || errno == EACCES)
                continue;
            return kiln_error_set(err, errno, "layer entry '%.512s': setting xattr %s", entry,
                                  name);
        }
    }
    if (set_times) {
        struct timespec ts[2];
        ts[0].tv_sec = ts[1].tv_sec = archive_entry_mtime(e);
        ts[0].tv_nsec = ts[1].tv_nsec = archive_entry_mtime_nsec(e);
        if (futimens(fd, ts) < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': setting mtime", entry);
    }
    return 0;
}

/* Writes the data of the current entry into fd. */
static int copy_data(struct unpack *u, int fd, const char *entry, kiln_error_t *err)
{
    for (;;) {
        ssize_t n = kiln_tar_reader_data(u->tr, u->wbuf, WRITE_CHUNK, err);
        if (n < 0)
            return kiln_error_prefix(err, "layer entry '%.512s'", entry);
        if (n == 0)
            return 0;
        if (kiln_fs_write_all(fd, u->wbuf, (size_t)n, err) < 0)
            return kiln_error_prefix(err, "layer entry '%.512s'", entry);
    }
}

/* Removes from directory `dir` everything this layer did not create. */
static int apply_opaque(struct unpack *u, const char *dir, const char *entry, kiln_error_t *err)
{
    _cleanup_close_ int pfd = open_dir_create(u, dir, entry, err);
    if (pfd < 0)
        return -1;
    if (u->opts->overlay_form) {
        const char *x =
            u->opts->overlay_user_xattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
        _cleanup_close_ int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsetxattr(fd, x, "y", 1, 0) < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': setting %s", entry, x);
        return 0;
    }
    int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': opening '%.512s'", entry, dir);
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return kiln_error_set(err, errno, "layer entry '%.512s': listing '%.512s'", entry, dir);
    }
    struct dirent *de;
    int ret = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *p =
            dir[0] ? kiln_xasprintf("%s/%s", dir, de->d_name) : kiln_xstrdup(de->d_name);
        if (created_has(u, p))
            continue;
        if (remove_existing(u, dirfd(d), de->d_name, entry, err) < 0) {
            ret = -1;
            break;
        }
    }
    closedir(d);
    return ret;
}

/* Applies a whiteout for parent/name. */
static int apply_whiteout(struct unpack *u, const char *parent, const char *name, const char *entry,
                          kiln_error_t *err)
{
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return kiln_error_set(err, EINVAL, "layer entry '%.512s': invalid whiteout", entry);
    int pfd = parent_fd(u, parent, entry, err);
    if (pfd < 0)
        return -1;
    if (remove_existing(u, pfd, name, entry, err) < 0)
        return -1;
    if (!u->opts->overlay_form)
        return 0;
    pfd = parent_fd(u, parent, entry, err);
    if (pfd < 0)
        return -1;
    if (mknodat(pfd, name, S_IFCHR | 0600, makedev(0, 0)) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': creating the overlay whiteout",
                              entry);
    _cleanup_free_ char *p = parent[0] ? kiln_xasprintf("%s/%s", parent, name) : kiln_xstrdup(name);
    created_add(u, p);
    return 0;
}

/* Creates a hardlink parent/name → target (a path inside the root). */
static int apply_hardlink(struct unpack *u, int pfd, const char *name, char *target,
                          const char *entry, kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("its hardlink target '%.512s'", target);
    if (kiln_layer_clean_path(target, what, entry, err) < 0)
        return -1;
    _cleanup_close_ int tfd = kiln_pathres_openat(u->rootfd, target, O_PATH | O_NOFOLLOW);
    if (tfd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': hardlink target '%.512s'", entry,
                              target);
    struct stat st;
    if (fstat(tfd, &st) < 0 || S_ISDIR(st.st_mode))
        return kiln_error_set(err, EPERM,
                              "layer entry '%.512s': hardlink target '%.512s' is a directory",
                              entry, target);
    if (linkat(tfd, "", pfd, name, AT_EMPTY_PATH) == 0)
        return 0;
    /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc form does not. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tfd);
    if (linkat(AT_FDCWD, proc, pfd, name, AT_SYMLINK_FOLLOW) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': hardlink to '%.512s'", entry,
                              target);
    return 0;
}

static void dir_time_add(struct unpack *u, const char *path, struct archive_entry *e)
{
    if (u->ndirs == u->dirs_alloc) {
        u->dirs_alloc = u->dirs_alloc ? u->dirs_alloc * 2 : 64;
        u->dirs = kiln_xrealloc(u->dirs, u->dirs_alloc * sizeof(*u->dirs));
    }
    u->dirs[u->ndirs].path = kiln_xstrdup(path);
    u->dirs[u->ndirs].mtime.tv_sec = archive_entry_mtime(e);
    u->dirs[u->ndirs].mtime.tv_nsec = archive_entry_mtime_nsec(e);
    u->ndirs++;
}

/* Applies one tar entry. */
static int apply_entry(struct unpack *u, struct archive_entry *e, kiln_error_t *err)
{
    const char *orig = archive_entry_pathname(e);
    if (orig == NULL || orig[0] == '\0')
        return kiln_error_set(err, EINVAL, "layer entry without a name");
    if (strlen(orig) >= PATH_MAX)
        return kiln_error_set(err, ENAMETOOLONG, "layer entry '%.128s...': name too long", orig);
    _cleanup_free_ char *path = kiln_xstrdup(orig);
    if (kiln_layer_clean_path(path, "its name", orig, err) < 0)
        return -1;
    if (path[0] == '\0')
        return 0; /* "./": the root itself keeps its own metadata */
    char *slash = strrchr(path, '/');
    _cleanup_free_ char *parent =
        slash ? kiln_xstrndup(path, (size_t)(slash - path)) : kiln_xstrdup("");
    const char *name = slash ? slash + 1 : path;

    if (strcmp(name, OPAQUE_MARKER) == 0)
        return apply_opaque(u, parent, orig, err);
    if (strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
        return apply_whiteout(u, parent, name + strlen(WHITEOUT_PREFIX), orig, err);

    mode_t type = archive_entry_filetype(e);
    if ((type == AE_IFCHR || type == AE_IFBLK) && !u->opts->allow_devices)
        return kiln_error_set(
            err, EPERM, "layer entry '%.512s': device nodes are not allowed in a layer", orig);
    int pfd = parent_fd(u, parent, orig, err);
    if (pfd < 0)
        return -1;
    struct stat st;
    int exists = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !(S_ISDIR(st.st_mode) && type == AE_IFDIR)) {
        if (remove_existing(u, pfd, name, orig, err) < 0)
            return -1;
        pfd = parent_fd(u, parent, orig, err);
        if (pfd < 0)
            return -1;
        exists = 0;
    }
    created_add(u, path);

    const char *hardlink = archive_entry_hardlink(e);
    if (hardlink != NULL) {
        _cleanup_free_ char *target = kiln_xstrdup(hardlink);
        return apply_hardlink(u, pfd, name, target, orig, err);
    }
    switch (type) {
    case AE_IFREG: {
        _cleanup_close_ int fd =
            openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': creating the file", orig);
        if (copy_data(u, fd, orig, err) < 0)
            return -1;
        return apply_meta_fd(u, fd, e, orig, 1, err);
    }
    case AE_IFDIR: {
        if (!exists && mkdirat(pfd, name, 0700) < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': mkdir", orig);
        _cleanup_close_ int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': opening the directory", orig);
        dir_time_add(u, path, e);
        return apply_meta_fd(u, fd, e, orig, 0, err);
    }
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (target == NULL)
            return kiln_error_set(err, EINVAL, "layer entry '%.512s': symlink without target",
                                  orig);
        if (symlinkat(target, pfd, name) < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': symlink", orig);
        if (u->do_chown) {
            uid_t uid = (uid_t)(archive_entry_uid(e) + u->opts->id_shift);
            gid_t gid = (gid_t)(archive_entry_gid(e) + u->opts->id_shift);
            if (fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
                !(errno == EPERM && u->opts->chown == -1))
                return kiln_error_set(err, errno, "layer entry '%.512s': chown", orig);
        }
        struct timespec ts[2];
        ts[0].tv_sec = ts[1].tv_sec = archive_entry_mtime(e);
        ts[0].tv_nsec = ts[1].tv_nsec = archive_entry_mtime_nsec(e);
        (void)utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
        dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (mknodat(pfd, name, type | 0600, type == AE_IFIFO ? 0 : dev) < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': mknod", orig);
        _cleanup_close_ int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': opening", orig);
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (u->do_chown)
            (void)chown(proc, (uid_t)(archive_entry_uid(e) + u->opts->id_shift),
                        (gid_t)(archive_entry_gid(e) + u->opts->id_shift));
        (void)chmod(proc, archive_entry_mode(e) & 07777);
        return 0;
    }
    default:
        return kiln_error_set(err, EINVAL, "layer entry '%.512s': unsupported entry type 0%o", orig,
                              (unsigned)type);
    }
}

/* Sets the directories' mtimes, deepest last-created first. */
static int apply_dir_times(struct unpack *u, kiln_error_t *err)
{
    for (size_t i = u->ndirs; i-- > 0;) {
        _cleanup_close_ int fd =
            kiln_pathres_openat(u->rootfd, u->dirs[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd < 0)
            continue; /* removed again by a later entry */
        struct timespec ts[2] = {u->dirs[i].mtime, u->dirs[i].mtime};
        if (futimens(fd, ts) < 0)
            return kiln_error_set(err, errno, "setting the mtime of '%.512s'", u->dirs[i].path);
    }
    return 0;
}

static void unpack_free(struct unpack *u)
{
    invalidate_parent(u);
    kiln_tar_reader_free(u->tr);
    kiln_sha256_dispose(&u->raw);
    kiln_sha256_dispose(&u->out);
    for (size_t i = 0; i < u->created_alloc; i++)
        free(u->created[i]);
    free(u->created);
    for (size_t i = 0; i < u->ndirs; i++)
        free(u->dirs[i].path);
    free(u->dirs);
    free(u->wbuf);
    if (u->rootfd >= 0)
        close(u->rootfd);
}

/* Compares a computed digest with the expected one. */
static int check_digest(const kiln_digest_t *want, const kiln_digest_t *got, const char *what,
                        kiln_error_t *err)
{
    char a[KILN_DIGEST_STR_MAX], b[KILN_DIGEST_STR_MAX];
    if (want == NULL || kiln_digest_equal(want, got))
        return 0;
    return kiln_error_set(err, 0, "layer %s mismatch: expected %s, got %s", what,
                          kiln_digest_str(want, a), kiln_digest_str(got, b));
}

/* The body of kiln_layer_unpack once the state is set up. */
static int unpack_run(struct unpack *u, int fd, kiln_unpack_stats_t *stats, kiln_error_t *err)
{
    if (kiln_sha256_init(&u->raw, err) < 0 || kiln_sha256_init(&u->out, err) < 0)
        return -1;
    if (kiln_tar_reader_open(fd, raw_hash, out_hash, u, &u->tr, err) < 0)
        return -1;
    uint64_t entries = 0;
    for (;;) {
        struct archive_entry *e;
        int r = kiln_tar_reader_next(u->tr, &e, err);
        if (r < 0)
            return kiln_error_prefix(err, "after %llu entries", (unsigned long long)entries);
        if (r == 0)
            break;
        if (apply_entry(u, e, err) < 0)
            return -1;
        entries++;
    }
    if (kiln_tar_reader_finish(u->tr, err) < 0 || apply_dir_times(u, err) < 0)
        return -1;
    kiln_unpack_stats_t res;
    memset(&res, 0, sizeof(res));
    res.format = kiln_tar_reader_format(u->tr);
    res.entries = entries;
    res.size = u->raw_bytes;
    res.diff_size = u->out_bytes;
    kiln_sha256_final(&u->raw, &res.digest);
    kiln_sha256_final(&u->out, &res.diff_id);
    if (check_digest(u->opts->expect_digest, &res.digest, "digest", err) < 0 ||
        check_digest(u->opts->expect_diff_id, &res.diff_id, "diff_id", err) < 0)
        return -1;
    if (stats)
        *stats = res;
    return 0;
}

int kiln_layer_unpack(int fd, const char *rootfs, const kiln_unpack_opts_t *opts,
                      kiln_unpack_stats_t *stats, kiln_error_t *err)
{
    kiln_unpack_opts_t defaults;
    if (opts == NULL) {
        kiln_unpack_opts_init(&defaults);
        opts = &defaults;
    }
    struct unpack u;
    memset(&u, 0, sizeof(u));
    u.opts = opts;
    u.cached_fd = -1;
    u.do_chown = opts->chown == 1 || (opts->chown == -1 && geteuid() == 0);
    u.rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (u.rootfd < 0)
        return kiln_error_set(err, errno, "opening the rootfs %s", rootfs);
    u.wbuf = kiln_xmalloc(WRITE_CHUNK);
    int r = unpack_run(&u, fd, stats, err);
    unpack_free(&u);
    if (r < 0)
        return kiln_error_prefix(err, "unpacking a layer into %s", rootfs);
    return 0;
}
