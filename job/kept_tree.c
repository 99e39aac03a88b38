/* kiln — the lock of a kept work tree, shared by its builds and gc (see kept_tree.h). */
#include "job/kept_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_kept_tree_hold(int fd, const char *lock, kiln_error_t *err)
{
    struct stat held, now;

    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? 1 : kiln_error_set(err, errno, "lock %s", lock);
    /* gc renames the tree away while it holds the lock: the file held is then elsewhere */
    if (fstat(fd, &held) < 0)
        return kiln_error_set(err, errno, "stat %s", lock);
    if (lstat(lock, &now) < 0 || now.st_dev != held.st_dev || now.st_ino != held.st_ino) {
        flock(fd, LOCK_UN);
        return 2;
    }
    return 0;
}

int kiln_kept_tree_lock(const char *dir, int *fd, kiln_error_t *err)
{
    _cleanup_free_ char *lock = kiln_xasprintf("%s/lock", dir);

    /* a tree gc moved away between the open and the lock: once more with the new one */
    for (int tries = 0; tries < 3; tries++) {
        _cleanup_close_ int f = -1;
        int r;
        if (kiln_fs_mkdir_p(dir, 0700, err) < 0)
            return -1;
        f = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (f < 0 && errno == ENOENT)
            continue; /* gc moved the directory after it was made */
        if (f < 0)
            return kiln_error_set(err, errno, "open %s", lock);
        r = kiln_kept_tree_hold(f, lock, err);
        if (r < 0 || r == 1)
            return r; /* held by another build: the caller checks out afresh */
        if (r == 0) {
            futimens(f, NULL); /* its age is the tree's last use (kiln gc) */
            *fd = steal_fd(&f);
            return 0;
        }
    }
    return 1;
}

int kiln_kept_tree_claim(int wtfd, const char *name, double max_age_s, char **gone,
                         kiln_error_t *err)
{
    _cleanup_free_ char *lock = kiln_xasprintf("%s/lock", name);
    _cleanup_free_ char *to = kiln_xasprintf(".gc-%s", name);
    _cleanup_close_ int fd = openat(wtfd, lock, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (gone)
        *gone = NULL;
    if (fd < 0 && errno != ENOENT)
        return kiln_error_set(err, errno, "open %s", lock);
    if (fd >= 0) {
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
            return errno == EWOULDBLOCK ? 0 : kiln_error_set(err, errno, "lock %s", lock);
        /* checked again under the lock: a build may have used it since gc looked */
        if (fstat(fd, &st) < 0)
            return kiln_error_set(err, errno, "stat %s", lock);
        if (max_age_s > 0 && (double)time(NULL) - (double)st.st_mtime <= max_age_s)
            return 0;
    } else if (fstatat(wtfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
               (max_age_s > 0 && (double)time(NULL) - (double)st.st_mtime <= max_age_s)) {
        return 0; /* no lock yet: a build is making the tree, or it is gone */
    }
    if (gone == NULL)
        return 1; /* a dry run: it would go */
    if (renameat(wtfd, name, wtfd, to) < 0) {
        /* .gc-NAME left by a gc that stopped before deleting it */
        if ((errno != ENOTEMPTY && errno != EEXIST) || kiln_fs_rm_rf_at(wtfd, to, NULL) < 0 ||
            renameat(wtfd, name, wtfd, to) < 0)
            return kiln_error_set(err, errno, "rename %s to %s", name, to);
    }
    *gone = steal_pointer(&to);
    return 1; /* the lock goes with fd: a build that opened it finds it moved */
}
