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

#include "oci/unpack_impl.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

#define WHITEOUT_PREFIX ".wh."
#define OPAQUE_MARKER ".wh..wh..opq"

/* The process umask's complement (0 when unknown), read without changing it
 * (umask(2) would race with other threads creating files); read at each
 * unpack: a server child sets its own. */
static mode_t read_create_mask(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    unsigned m;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Umask: %o", &m) == 1)
            return (mode_t)(~m & 0777);
    return 0;
}

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

/* Closes a cached parent (the pool told: the fd's number may come back for another). */
static void slot_clear(struct unpack *u, struct parent_slot *sl)
{
    free(sl->path);
    sl->path = NULL;
    if (sl->fd >= 0) {
        kiln_unpack_pool_forget_dir(u->pool);
        close(sl->fd);
    }
    sl->fd = -1;
}

/* Forgets every cached parent (after a removal, or a directory's mode changed). */
static void invalidate_parent(struct unpack *u)
{
    for (int i = 0; i < PARENT_SLOTS; i++)
        slot_clear(u, &u->parents[i]);
}

/* Opens (O_PATH) directory `dir` inside the root, creating missing
 * components (0755). Returns a new fd or -1. */
int kiln_unpack_open_dir(struct unpack *u, const char *dir, const char *entry, kiln_error_t *err)
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
    _cleanup_close_ int pfd = kiln_unpack_open_dir(u, parent, entry, err);
    if (pfd < 0)
        return -1;
    if (mkdirat(pfd, base, 0755) == 0) {
        /* recorded where it is (a link of this layer on the way followed), as the merge sees
         * it; an entry of its own later makes the layer one to apply in place */
        _cleanup_free_ char *at = NULL;
        if (u->opts->record != NULL)
            kiln_unpack_strv_push(&u->opts->record->implicit, &u->opts->record->n_implicit,
                                  kiln_pathres_resolve(u->rootfd, dir, 0, &at, NULL) == 0
                                      ? at + (at[0] == '/')
                                      : dir);
    } else if (errno != EEXIST) {
        return kiln_error_set(err, errno, "layer entry '%.512s': creating directory '%.512s'",
                              entry, dir);
    }
    fd = openat(pfd, base, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': opening directory '%.512s'", entry,
                              dir);
    return fd;
}

/* The (cached) fd of the parent directory of an entry. Not to be closed. */
int kiln_unpack_parent_fd(struct unpack *u, const char *parent, const char *entry,
                          kiln_error_t *err)
{
    struct parent_slot *lru = &u->parents[0];
    for (int i = 0; i < PARENT_SLOTS; i++) {
        struct parent_slot *sl = &u->parents[i];
        if (sl->path != NULL && strcmp(sl->path, parent) == 0) {
            sl->used = ++u->tick;
            u->cached_plain = sl->plain;
            return sl->fd;
        }
        if (sl->path == NULL || (lru->path != NULL && sl->used < lru->used))
            lru = sl;
    }
    int fd = kiln_unpack_open_dir(u, parent, entry, err);
    if (fd < 0)
        return -1;
    slot_clear(u, lru);
    lru->path = kiln_xstrdup(parent);
    lru->fd = fd;
    lru->used = ++u->tick;
    /* entries made under a setgid directory take its group (and directories
     * its setgid bit): their owner and mode then always get set explicitly */
    struct stat st;
    lru->plain = u->cached_plain = fstat(fd, &st) == 0 && !(st.st_mode & S_ISGID);
    return fd;
}

/* Removes dirfd/name (recursively) when it exists. */
int kiln_unpack_remove(struct unpack *u, int dirfd, const char *name, const char *entry,
                       kiln_error_t *err)
{
    int r = kiln_fs_rm_rf_at(dirfd, name, err);
    invalidate_parent(u); /* the cached parent may have been (under) what was removed */
    if (r < 0)
        return kiln_error_prefix(err, "layer entry '%.512s'", entry);
    return 0;
}

/* Whether a new entry under the cached parent gets exactly the mode it asks
 * for from open/mkdir (no setgid parent, no default ACL, umask known). */
static int plain_parent(const struct unpack *u)
{
    return u->cached_plain && u->create_mask != 0 && !u->acl_seen;
}

/* The mode to create an entry with: its own permission bits where the
 * creation gives exactly those (then no fchmod follows), else `safe`. */
static mode_t create_mode(const struct unpack *u, struct archive_entry *e, mode_t safe)
{
    mode_t want = archive_entry_mode(e) & 07777;
    return plain_parent(u) && !(want & ~0777u) && (want & u->create_mask) == want ? want : safe;
}

/* Whether an entry just created with mode `made` under the cached parent
 * still needs its fchown / fchmod: a new entry is owned by euid:egid, and has
 * `made` when create_mode gave its own bits. */
static int need_chown(const struct unpack *u, struct archive_entry *e, int fresh)
{
    if (!u->do_chown)
        return 0;
    return !(fresh && plain_parent(u) &&
             (uid_t)(archive_entry_uid(e) + u->opts->id_shift) == u->euid &&
             (gid_t)(archive_entry_gid(e) + u->opts->id_shift) == u->egid);
}

static int need_chmod(const struct unpack *u, struct archive_entry *e, int fresh, mode_t made)
{
    return !(fresh && plain_parent(u) && made == (archive_entry_mode(e) & 07777));
}

/* chown + chmod + xattrs + times on an open fd (regular file or directory);
 * fresh: created just now with mode `made` (owner and mode set only when they
 * differ from what the creation gave). */
static int apply_meta_fd(struct unpack *u, int fd, struct archive_entry *e, const char *entry,
                         int set_times, int fresh, mode_t made, kiln_error_t *err)
{
    if (need_chown(u, e, fresh)) {
        uid_t uid = (uid_t)(archive_entry_uid(e) + u->opts->id_shift);
        gid_t gid = (gid_t)(archive_entry_gid(e) + u->opts->id_shift);
        if (fchown(fd, uid, gid) < 0 && !(errno == EPERM && u->opts->chown == -1))
            return kiln_error_set(err, errno, "layer entry '%.512s': chown %u:%u", entry,
                                  (unsigned)uid, (unsigned)gid);
    }
    if (need_chmod(u, e, fresh, made) && fchmod(fd, archive_entry_mode(e) & 07777) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': chmod", entry);
    const char *name;
    const void *val;
    size_t len;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &len) == ARCHIVE_OK) {
        if (strncmp(name, "system.posix_acl_default", 24) == 0)
            u->acl_seen = 1; /* entries made under it get the ACL's modes, not ~umask */
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

/* Writes the data of the current entry into fd straight from the reader's
 * blocks (no copy); holes of a sparse entry are skipped, its size set. */
static int copy_data(struct unpack *u, int fd, struct archive_entry *e, const char *entry,
                     kiln_error_t *err)
{
    int64_t pos = 0;
    for (;;) {
        const void *buf;
        size_t n;
        int64_t off;
        int r = kiln_tar_reader_data_block(u->tr, &buf, &n, &off, err);
        if (r < 0)
            return kiln_error_prefix(err, "layer entry '%.512s'", entry);
        if (r == 0)
            break;
        if (n == 0)
            continue;
        if (off != pos && lseek(fd, (off_t)off, SEEK_SET) < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': seeking to %lld", entry,
                                  (long long)off);
        if (kiln_fs_write_all(fd, buf, n, err) < 0)
            return kiln_error_prefix(err, "layer entry '%.512s'", entry);
        pos = off + (int64_t)n;
    }
    if (pos < archive_entry_size(e) && ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
        return kiln_error_set(err, errno, "layer entry '%.512s': setting its size", entry);
    return 0;
}

/* Hands a new regular file to the pool, its data copied out of the reader's blocks: 0
 * queued, 1 not one for the pool (big, sparse, with xattrs: made here), -1 with err. */
static int pool_file(struct unpack *u, struct archive_entry *e, int pfd, const char *name,
                     const char *path, const char *orig, mode_t made, kiln_error_t *err)
{
    int64_t size = archive_entry_size(e);
    if (size < 0 || size > KILN_UNPACK_POOL_FILE_MAX || archive_entry_sparse_count(e) != 0 ||
        archive_entry_xattr_count(e) != 0 || kiln_unpack_pool_behind(u->pool))
        return 1;
    /* while the reader waits for the inflate, writers would only take CPU from it */
    if (u->inf != NULL && !kiln_inflate_thread_ahead(u->inf))
        return 1;
    kiln_unpack_pool_file_t f = {.name = name,
                                 .entry = orig,
                                 .made = made,
                                 .chown = -1,
                                 .chmod = need_chmod(u, e, 1, made & u->create_mask),
                                 .mode = archive_entry_mode(e) & 07777,
                                 .mtime = {archive_entry_mtime(e), archive_entry_mtime_nsec(e)},
                                 .len = (size_t)size};
    if (need_chown(u, e, 1)) {
        f.chown = u->opts->chown == -1 ? 0 : 1;
        f.uid = (uid_t)(archive_entry_uid(e) + u->opts->id_shift);
        f.gid = (gid_t)(archive_entry_gid(e) + u->opts->id_shift);
    }
    unsigned char *buf = kiln_unpack_pool_reserve(u->pool, &f, err);
    if (buf == NULL)
        return -1;
    size_t pos = 0; /* what is filled: the bytes after it are zeros, as in a file's hole */
    for (;;) {
        const void *b;
        size_t n;
        int64_t off;
        int r = kiln_tar_reader_data_block(u->tr, &b, &n, &off, err);
        if (r < 0)
            return kiln_error_prefix(err, "layer entry '%.512s'", orig);
        if (r == 0)
            break;
        if (off < 0 || (uint64_t)off > f.len || n > f.len - (size_t)off)
            return kiln_error_set(err, EINVAL, "layer entry '%.512s': data beyond its size %zu",
                                  orig, f.len);
        if ((size_t)off > pos)
            memset(buf + pos, 0, (size_t)off - pos);
        memcpy(buf + off, b, n);
        if ((size_t)off + n > pos)
            pos = (size_t)off + n;
    }
    memset(buf + pos, 0, f.len - pos);
    if (kiln_unpack_pool_add(u->pool, pfd, err) < 0)
        return -1;
    kiln_strset_add(&u->pooled, path);
    return 0;
}

/* Creates a hardlink parent/name → target (a path inside the root): 0, 1
 * when something is in the way at name, -1 with err. */
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
    if (errno == EEXIST)
        return 1;
    /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc form does not. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", tfd);
    if (linkat(AT_FDCWD, proc, pfd, name, AT_SYMLINK_FOLLOW) < 0)
        return errno == EEXIST
                   ? 1
                   : kiln_error_set(err, errno, "layer entry '%.512s': hardlink to '%.512s'", entry,
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

/* Creates entry `name` (not a hardlink) of `type` under pfd: 0 done, 1 when
 * something is in the way (EEXIST, err untouched), -1 with err. exists: a
 * directory entry whose directory is already there (its metadata set). */
static int make_entry(struct unpack *u, struct archive_entry *e, mode_t type, int pfd,
                      const char *name, const char *path, const char *orig, int exists,
                      kiln_error_t *err)
{
    switch (type) {
    case AE_IFREG: {
        mode_t made = create_mode(u, e, 0600);
        if (u->pool_ok) {
            int r = pool_file(u, e, pfd, name, path, orig, made, err);
            if (r <= 0)
                return r;
        }
        _cleanup_close_ int fd =
            openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, made);
        if (fd < 0)
            return errno == EEXIST
                       ? 1
                       : kiln_error_set(err, errno, "layer entry '%.512s': creating the file",
                                        orig);
        if (copy_data(u, fd, e, orig, err) < 0)
            return -1;
        return apply_meta_fd(u, fd, e, orig, 1, 1, made & u->create_mask, err);
    }
    case AE_IFDIR: {
        mode_t made = create_mode(u, e, 0700);
        if (!exists && mkdirat(pfd, name, made) < 0)
            return errno == EEXIST
                       ? 1
                       : kiln_error_set(err, errno, "layer entry '%.512s': mkdir", orig);
        dir_time_add(u, path, e);
        /* a new directory made with its own mode and owner needs no more */
        if (!exists && !need_chown(u, e, 1) && !need_chmod(u, e, 1, made & u->create_mask) &&
            archive_entry_xattr_reset(e) == 0)
            return 0;
        _cleanup_close_ int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_set(err, errno, "layer entry '%.512s': opening the directory", orig);
        if (exists && (archive_entry_mode(e) & S_ISGID))
            invalidate_parent(u); /* a cached parent may become setgid here */
        return apply_meta_fd(u, fd, e, orig, 0, !exists, made & u->create_mask, err);
    }
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (target == NULL)
            return kiln_error_set(err, EINVAL, "layer entry '%.512s': symlink without target",
                                  orig);
        if (symlinkat(target, pfd, name) < 0)
            return errno == EEXIST
                       ? 1
                       : kiln_error_set(err, errno, "layer entry '%.512s': symlink", orig);
        if (u->pool != NULL)
            kiln_strset_add(&u->links, path);
        if (need_chown(u, e, 1)) {
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
            return errno == EEXIST
                       ? 1
                       : kiln_error_set(err, errno, "layer entry '%.512s': mknod", orig);
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

/* Waits for the queued files (when there is a pool): 0, or -1 with the first failure. */
static int pool_drain(struct unpack *u, kiln_error_t *err)
{
    if (u->pool == NULL)
        return 0;
    kiln_strset_free(&u->pooled);
    memset(&u->pooled, 0, sizeof(u->pooled));
    return kiln_unpack_pool_drain(u->pool, err);
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

    /* whiteouts remove, hardlinks name what may still be queued */
    const char *hardlink = archive_entry_hardlink(e);
    if ((hardlink != NULL || strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0) &&
        pool_drain(u, err) < 0)
        return -1;
    if (strcmp(name, OPAQUE_MARKER) == 0)
        return kiln_unpack_opaque(u, parent, orig, err);
    if (strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
        return kiln_unpack_whiteout(u, parent, name + strlen(WHITEOUT_PREFIX), orig, err);

    mode_t type = archive_entry_filetype(e);
    if ((type == AE_IFCHR || type == AE_IFBLK) && !u->opts->allow_devices)
        return kiln_error_set(
            err, EPERM, "layer entry '%.512s': device nodes are not allowed in a layer", orig);
    int was = kiln_strset_has(&u->created, path);
    /* new to this layer's empty directory: nothing can be in its way (a path under one of
     * its symlinks may name one made before); any other entry, or one under a queued file,
     * waits for the queued files first */
    int fresh = hardlink == NULL && !was && !kiln_strset_has(&u->held, path) &&
                !kiln_strset_has_dir_of(&u->links, parent);
    if (u->pool != NULL && (!fresh || kiln_strset_has_dir_of(&u->pooled, parent)) &&
        pool_drain(u, err) < 0)
        return -1;
    u->pool_ok = u->pool != NULL && fresh;
    int pfd = kiln_unpack_parent_fd(u, parent, orig, err);
    if (pfd < 0)
        return -1;
    kiln_unpack_created_add(u, path);

    /* Created without looking first (a fresh tree has nothing there); an
     * entry in the way is removed and the creation tried once more, an
     * existing directory kept for a directory entry. */
    int exists = 0;
    for (int attempt = 0;; attempt++) {
        int r;
        if (hardlink != NULL) {
            _cleanup_free_ char *target = kiln_xstrdup(hardlink);
            r = apply_hardlink(u, pfd, name, target, orig, err);
        } else {
            r = make_entry(u, e, type, pfd, name, path, orig, exists, err);
        }
        if (r <= 0)
            return r;
        if (attempt > 0)
            return kiln_error_set(err, EEXIST, "layer entry '%.512s': still exists once removed",
                                  orig);
        /* what is in the way may be a queued file: made before it is looked at */
        u->pool_ok = 0;
        if (pool_drain(u, err) < 0)
            return -1;
        int is_dir = hardlink == NULL && type == AE_IFDIR;
        if (u->opts->record != NULL &&
            kiln_unpack_record_replace(u, pfd, name, orig, is_dir, was, err) < 0)
            return -1;
        struct stat st;
        if (is_dir && fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            exists = 1;
            continue;
        }
        if (kiln_unpack_remove(u, pfd, name, orig, err) < 0)
            return -1;
        pfd = kiln_unpack_parent_fd(u, parent, orig, err);
        if (pfd < 0)
            return -1;
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
    kiln_unpack_pool_free(u->pool); /* before the fds its files are made under */
    u->pool = NULL;
    kiln_strset_free(&u->links);
    kiln_strset_free(&u->pooled);
    invalidate_parent(u);
    kiln_tar_reader_free(u->tr);
    kiln_inflate_thread_stop(u->inf);
    kiln_sha256_dispose(&u->raw);
    kiln_sha256_dispose(&u->out);
    kiln_strset_free(&u->created);
    kiln_strset_free(&u->held);
    for (size_t i = 0; i < u->ndirs; i++)
        free(u->dirs[i].path);
    free(u->dirs);
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
    kiln_error_set(err, 0, "layer %s mismatch: expected %s, got %s", what, kiln_digest_str(want, a),
                   kiln_digest_str(got, b));
    if (err != NULL) /* the bytes' own fault, wherever they are unpacked (no strerror text) */
        err->code = EBADMSG;
    return -1;
}

/* Where a layer is read from: fd, or fn(ctx) when fn is set, or blocks from block(ctx). */
struct unpack_src {
    int fd;
    kiln_read_fn fn;
    kiln_block_fn block;
    void *ctx;
};

/* The decompressor of src, hashing what unpack_run asks for. */
static int src_decompressor(const struct unpack_src *src, struct unpack *u, int want_raw,
                            int want_out, kiln_decompressor_t **dec, kiln_error_t *err)
{
    kiln_hash_fn rh = want_raw ? raw_hash : NULL, oh = want_out ? out_hash : NULL;
    if (src->block != NULL)
        return kiln_decompressor_new_blocks(src->block, src->ctx, rh, u, oh, u, dec, err);
    if (src->fn != NULL)
        return kiln_decompressor_new_reader(src->fn, src->ctx, rh, u, oh, u, dec, err);
    return kiln_decompressor_new(src->fd, rh, u, oh, u, dec, err);
}

/* The body of an unpack once the state is set up. Digests are computed only
 * when checked or asked for (stats): hashing is most of an unpack's CPU. */
static int unpack_run(struct unpack *u, const struct unpack_src *src, kiln_unpack_stats_t *stats,
                      kiln_error_t *err)
{
    int want_raw = (stats != NULL && !u->opts->stats_no_digest) || u->opts->expect_digest != NULL;
    int want_out = stats != NULL || u->opts->expect_diff_id != NULL;
    kiln_decompressor_t *dec = NULL;
    if ((want_raw && kiln_sha256_init(&u->raw, err) < 0) ||
        (want_out && kiln_sha256_init(&u->out, err) < 0))
        return -1;
    if (src_decompressor(src, u, want_raw, want_out, &dec, err) < 0)
        return -1;
    u->format = kiln_decompressor_format(dec);
    if (u->format != KILN_COMPRESSION_NONE && (u->inf = kiln_inflate_thread_start(dec)) != NULL) {
        if (kiln_tar_reader_open_blocks(kiln_inflate_thread_block, u->inf, &u->tr, err) < 0)
            return -1;
    } else if (kiln_tar_reader_open_dec(dec, &u->tr, err) < 0) {
        return -1;
    }
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
    /* every file made before the directories' times (and before the digests say the layer
     * is whole) */
    if (kiln_tar_reader_finish(u->tr, err) < 0 || pool_drain(u, err) < 0 ||
        apply_dir_times(u, err) < 0)
        return -1;
    if (u->opts->record != NULL)
        kiln_unpack_record_end(u);
    /* it read its input to the end: the digests are complete */
    kiln_inflate_thread_stop(u->inf);
    u->inf = NULL;
    kiln_unpack_stats_t res;
    memset(&res, 0, sizeof(res));
    res.format = u->format;
    res.entries = entries;
    res.size = u->raw_bytes;
    res.diff_size = u->out_bytes;
    if (want_raw)
        kiln_sha256_final(&u->raw, &res.digest);
    if (want_out)
        kiln_sha256_final(&u->out, &res.diff_id);
    if (check_digest(u->opts->expect_digest, &res.digest, "digest", err) < 0 ||
        check_digest(u->opts->expect_diff_id, &res.diff_id, "diff_id", err) < 0)
        return -1;
    if (stats)
        *stats = res;
    return 0;
}

/* Sets up the state for rootfs and runs the unpack from src. */
static int unpack_from(const struct unpack_src *src, const char *rootfs,
                       const kiln_unpack_opts_t *opts, kiln_unpack_stats_t *stats,
                       kiln_error_t *err)
{
    kiln_unpack_opts_t defaults;
    if (opts == NULL) {
        kiln_unpack_opts_init(&defaults);
        opts = &defaults;
    }
    struct unpack u;
    memset(&u, 0, sizeof(u));
    u.opts = opts;
    for (int i = 0; i < PARENT_SLOTS; i++)
        u.parents[i].fd = -1;
    u.euid = geteuid();
    u.egid = getegid();
    u.create_mask = read_create_mask();
    u.do_chown = opts->chown == 1 || (opts->chown == -1 && u.euid == 0);
    u.rootfd = open(rootfs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (u.rootfd < 0)
        return kiln_error_set(err, errno, "opening the rootfs %s", rootfs);
    /* under a default ACL creation modes are not ~umask (see plain_parent) */
    if (fgetxattr(u.rootfd, "system.posix_acl_default", NULL, 0) >= 0 ||
        (errno != ENODATA && errno != ENOTSUP))
        u.acl_seen = 1;
    /* a layer in an empty directory: its new small files go to writer threads */
    if (opts->record != NULL || kiln_fs_dir_empty_at(u.rootfd))
        u.pool = kiln_unpack_pool_new(kiln_unpack_pool_auto_threads());
    int r = unpack_run(&u, src, stats, err);
    unpack_free(&u);
    if (r < 0)
        return kiln_error_prefix(err, "unpacking a layer into %s", rootfs);
    return 0;
}

int kiln_layer_unpack(int fd, const char *rootfs, const kiln_unpack_opts_t *opts,
                      kiln_unpack_stats_t *stats, kiln_error_t *err)
{
    struct unpack_src src = {.fd = fd};
    return unpack_from(&src, rootfs, opts, stats, err);
}

int kiln_unpack_reader(kiln_read_fn fn, void *ctx, const char *rootfs,
                       const kiln_unpack_opts_t *opts, kiln_unpack_stats_t *stats,
                       kiln_error_t *err)
{
    struct unpack_src src = {.fd = -1, .fn = fn, .ctx = ctx};
    return unpack_from(&src, rootfs, opts, stats, err);
}

int kiln_unpack_blocks(kiln_block_fn fn, void *ctx, const char *rootfs,
                       const kiln_unpack_opts_t *opts, kiln_unpack_stats_t *stats,
                       kiln_error_t *err)
{
    struct unpack_src src = {.fd = -1, .block = fn, .ctx = ctx};
    return unpack_from(&src, rootfs, opts, stats, err);
}
