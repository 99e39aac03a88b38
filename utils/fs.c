/* kiln — filesystem helpers (see fs.h): reads with caps, atomic writes, mkdir -p, temp
 * directories, rm -rf without following links. All fds are O_CLOEXEC. */
#include "utils/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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

/* Removes everything inside the directory fd (consumed). */
static int rm_dir_contents(int dfd, const char *what, kiln_error_t *err)
{
    DIR *d = fdopendir(dfd);
    struct dirent *de;
    int ret = 0;

    if (d == NULL) {
        close(dfd);
        return kiln_error_set(err, errno, "opendir %s", what);
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        ret = kiln_fs_rm_rf_at(dirfd(d), de->d_name, err);
        if (ret < 0)
            break;
    }
    closedir(d);
    return ret;
}

int kiln_fs_rm_rf_at(int dirfd, const char *name, kiln_error_t *err)
{
    struct stat st;
    int fd;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return kiln_error_set(err, errno, "stat %s", name);
    }
    if (S_ISDIR(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_set(err, errno, "open %s", name);
        /* Make sure we can list and unlink inside even if modes say otherwise. */
        (void)fchmod(fd, 0700);
        if (rm_dir_contents(fd, name, err) < 0)
            return -1;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
            return kiln_error_set(err, errno, "rmdir %s", name);
        return 0;
    }
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
        return kiln_error_set(err, errno, "unlink %s", name);
    return 0;
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
