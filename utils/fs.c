/* kiln — filesystem helpers (see fs.h): reads with caps, atomic writes, mkdir -p, temp
 * directories, rm -rf without following links. All fds are O_CLOEXEC. */
#include "utils/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

int kiln_fs_mkdir_p(const char *path, mode_t mode, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xstrdup(path);
    size_t len = strlen(p);

    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return kiln_error_set(err, errno, "mkdir %s", p);
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", p);
    return 0;
}

/* The most directory fds one removal keeps open (one per level down to here): deeper, a
 * level lets go of its parent's and comes back up by "..", checked to be the same
 * directory, so no tree a process could make runs it out of fds. */
#define RM_FDS 16
/* The deepest tree removed: the walk recurses once per level (a few hundred bytes of stack
 * each); a layer's paths (PATH_MAX) nest at most 2048 deep. */
#define RM_MAX_DEPTH 4096

static int rm_tree(int *dirfd, const char *name, unsigned depth, kiln_error_t *err);

/* A listing of directory fd on an fd of its own, or NULL with err. */
static DIR *rm_list(int fd, const char *what, kiln_error_t *err)
{
    int dup = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dup < 0 ? NULL : fdopendir(dup);
    if (d == NULL) {
        kiln_error_set(err, errno, "opendir %s", what);
        if (dup >= 0)
            close(dup);
    }
    return d;
}

/* The name of a directory (or an entry of unknown type) in directory fd to remove next into
 * out, "" when none is left; the other entries read on the way are unlinked. -1 with err. */
static int rm_next(int fd, const char *what, char out[NAME_MAX + 1], kiln_error_t *err)
{
    DIR *d = rm_list(fd, what, err);
    if (d == NULL)
        return -1;
    out[0] = '\0';
    struct dirent *de;
    int ret = 0;
    while (ret == 0 && out[0] == '\0' && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)
            snprintf(out, NAME_MAX + 1, "%s", de->d_name);
        else if (unlinkat(fd, de->d_name, 0) < 0 && errno != ENOENT)
            ret = kiln_error_set(err, errno, "unlink %s", de->d_name);
    }
    closedir(d);
    return ret;
}

/* Removes everything inside directory *fd (`depth` levels below the removal's start). From
 * RM_FDS levels down, the entries' walks close *fd and re-open it by ".." when done, so the
 * directory is listed afresh after each. */
static int rm_dir_contents(int *fd, const char *what, unsigned depth, kiln_error_t *err)
{
    if (depth >= RM_FDS) {
        _cleanup_free_ char *name = kiln_xmalloc(NAME_MAX + 1); /* (not on the stack) */
        for (;;) {
            if (rm_next(*fd, what, name, err) < 0)
                return -1;
            if (name[0] == '\0')
                return 0;
            if (rm_tree(fd, name, depth + 1, err) < 0)
                return -1;
        }
    }
    DIR *d = rm_list(*fd, what, err);
    if (d == NULL)
        return -1;
    struct dirent *de;
    int ret = 0;
    while (ret == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        ret = rm_tree(fd, de->d_name, depth + 1, err);
    }
    closedir(d);
    return ret;
}

/* Removes *dirfd/name (`depth` levels below the start) without following links. Deeper than
 * RM_FDS, *dirfd is closed while below and re-opened by ".." (its device and inode checked:
 * a directory moved meanwhile fails). 0, or -1 with err naming the entry. */
static int rm_tree(int *dirfd, const char *name, unsigned depth, kiln_error_t *err)
{
    struct stat st;
    if (fstatat(*dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return kiln_error_set(err, errno, "stat %s", name);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(*dirfd, name, 0) < 0 && errno != ENOENT)
            return kiln_error_set(err, errno, "unlink %s", name);
        return 0;
    }
    if (depth > RM_MAX_DEPTH)
        return kiln_error_set(err, ELOOP, "rmdir %s: directories nested more than %u deep", name,
                              RM_MAX_DEPTH);
    _cleanup_close_ int fd = openat(*dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", name);
    /* Make sure we can list and unlink inside even if modes say otherwise. */
    (void)fchmod(fd, 0700);
    int let_go = depth > RM_FDS;
    if (let_go) { /* st: now the directory's, to check it is the one come back to */
        if (fstat(*dirfd, &st) < 0)
            return kiln_error_set(err, errno, "stat the directory of %s", name);
        close(*dirfd);
        *dirfd = -1;
    }
    dev_t up_dev = st.st_dev;
    ino_t up_ino = st.st_ino;
    int ret = rm_dir_contents(&fd, name, depth, err);
    if (let_go) {
        *dirfd = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (*dirfd < 0)
            return kiln_error_set(err, errno, "open the directory of %s", name);
        if (fstat(*dirfd, &st) < 0 || st.st_dev != up_dev || st.st_ino != up_ino)
            return kiln_error_set(err, EXDEV, "rmdir %s: its directory moved during the removal",
                                  name);
    }
    if (ret < 0)
        return -1;
    if (unlinkat(*dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return kiln_error_set(err, errno, "rmdir %s", name);
    return 0;
}

int kiln_fs_rm_rf_at(int dirfd, const char *name, kiln_error_t *err)
{
    int at = dirfd; /* depth 0: never closed */
    return rm_tree(&at, name, 0, err);
}

int kiln_fs_open_below(int dirfd, const char *rel, int oflags)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    while (fd >= 0 && *rel != '\0') {
        while (*rel == '/')
            rel++;
        size_t n = strcspn(rel, "/");
        if (n == 0)
            break;
        if (n >= NAME_MAX + 1) {
            close(fd);
            errno = ENAMETOOLONG;
            return -1;
        }
        char name[NAME_MAX + 1];
        memcpy(name, rel, n);
        name[n] = '\0';
        rel += n;
        while (*rel == '/')
            rel++;
        int flags = *rel == '\0' ? oflags : O_PATH | O_DIRECTORY;
        int next = openat(fd, name, flags | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        errno = e;
        fd = next;
    }
    return fd;
}

/* kiln_fs_usage_at below `depth` levels, adding to *total. */
static int usage_walk(int at, const char *name, unsigned depth, unsigned max_depth, uint64_t stop,
                      uint64_t *total, kiln_error_t *err)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    int fd, r = 0;

    if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "stat %s", name);
    *total += (uint64_t)st.st_blocks * 512;
    if (!S_ISDIR(st.st_mode) || (stop && *total > stop))
        return 0;
    if (depth >= max_depth)
        return kiln_error_set(err, ELOOP, "%s: directories nested more than %u deep", name,
                              max_depth);
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "open %s", name);
    if ((d = fdopendir(fd)) == NULL) {
        close(fd);
        return kiln_error_set(err, errno, "list %s", name);
    }
    while (r == 0 && (e = readdir(d)) != NULL && !(stop && *total > stop)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        r = usage_walk(dirfd(d), e->d_name, depth + 1, max_depth, stop, total, err);
    }
    closedir(d);
    return r;
}

int kiln_fs_usage_at(int dirfd, const char *name, unsigned max_depth, uint64_t stop, uint64_t *out,
                     kiln_error_t *err)
{
    uint64_t total = 0;

    if (usage_walk(dirfd, name, 0, max_depth, stop, &total, err) < 0)
        return -1;
    *out = total;
    return 0;
}

int kiln_fs_rm_rf(const char *path, kiln_error_t *err)
{
    return kiln_fs_rm_rf_at(AT_FDCWD, path, err);
}

int kiln_fs_read_fd(int fd, size_t cap, char **out, size_t *len, kiln_error_t *err)
{
    kiln_buf_t b;
    char tmp[65536];
    ssize_t n;

    kiln_buf_init(&b, cap);
    for (;;) {
        n = read(fd, tmp, sizeof(tmp));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            kiln_buf_free(&b);
            return kiln_error_set(err, errno, "read");
        }
        if (n == 0)
            break;
        if (kiln_buf_append(&b, tmp, (size_t)n, NULL) < 0) {
            kiln_buf_free(&b);
            return kiln_error_set(err, EFBIG, "file larger than %zu bytes", cap);
        }
    }
    *out = kiln_buf_steal(&b, len);
    return 0;
}

int kiln_fs_read_file(const char *path, size_t cap, char **out, size_t *len, kiln_error_t *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", path);
    if (kiln_fs_read_fd(fd, cap, out, len, err) < 0)
        return kiln_error_prefix(err, "%s", path);
    return 0;
}

int kiln_fs_write_all(int fd, const void *buf, size_t len, kiln_error_t *err)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return kiln_error_set(err, errno, "write");
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kiln_fs_fsync_parent(const char *path, kiln_error_t *err)
{
    _cleanup_free_ char *copy = kiln_xstrdup(path);
    _cleanup_close_ int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return kiln_error_set(err, errno, "open parent of %s", path);
    if (fsync(fd) < 0 && errno != EINVAL)
        return kiln_error_set(err, errno, "fsync parent of %s", path);
    return 0;
}

int kiln_fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                              kiln_error_t *err)
{
    _cleanup_free_ char *tmp = kiln_xasprintf("%s.tmp-XXXXXX", path);
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);

    if (fd < 0)
        return kiln_error_set(err, errno, "create temp file for %s", path);
    if (kiln_fs_write_all(fd, data, len, err) < 0 || fchmod(fd, mode) < 0 || fsync(fd) < 0) {
        if (!kiln_error_is_set(err))
            kiln_error_set(err, errno, "write %s", tmp);
        unlink(tmp);
        return kiln_error_prefix(err, "%s", path);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return kiln_error_set(err, e, "rename %s to %s", tmp, path);
    }
    return kiln_fs_fsync_parent(path, err);
}

int kiln_fs_mkdtemp(const char *parent, const char *prefix, char **out, kiln_error_t *err)
{
    char *p = kiln_xasprintf("%s/%sXXXXXX", parent, prefix);
    if (mkdtemp(p) == NULL) {
        int e = errno;
        kiln_error_set(err, e, "mkdtemp %s", p);
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

bool kiln_fs_dir_empty_at(int fd)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return false;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return false;
    }
    bool empty = true;
    for (struct dirent *de; empty && (de = readdir(d)) != NULL;)
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}
