/* kiln — user namespace maps and the id-mapped overlay root of a step. */
#include "sandbox/idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"

static int write_map(pid_t pid, const char *file, unsigned base, unsigned count, kiln_error_t *err)
{
    char path[64], line[64];
    _cleanup_close_ int fd = -1;
    int n;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    n = snprintf(line, sizeof(line), "0 %u %u\n", base, count);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno, "opening %s", path);
    if (write(fd, line, (size_t)n) != n)
        return kiln_error_set(err, errno, "writing %s", path);
    return 0;
}

int kiln_idmap_write(pid_t pid, unsigned base, unsigned count, kiln_error_t *err)
{
    if (write_map(pid, "uid_map", base, count, err) < 0 ||
        write_map(pid, "gid_map", base, count, err) < 0)
        return -1;
    return 0;
}

/* Clones the tree at path as a detached mount, id-mapped through userns_fd
 * (when >= 0) and read-only when asked. Returns the mount fd or -1. */
static int mapped_tree(const char *path, int userns_fd, int readonly, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    struct mount_attr attr;

    fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return kiln_error_set(err, errno, "open_tree %s", path);
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = (readonly ? MOUNT_ATTR_RDONLY : 0) | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID;
    if (userns_fd >= 0) {
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = (unsigned)userns_fd;
    }
    if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
        return kiln_error_set(err, errno, "id-mapping %s", path);
    return steal_fd(&fd);
}

/* The parent dir of the upper, where upper and work both live. */
static int common_parent(const char *upper, const char *work, char **out, kiln_error_t *err)
{
    const char *su = strrchr(upper, '/'), *sw = strrchr(work, '/');

    if (su == NULL || sw == NULL || su - upper != sw - work ||
        strncmp(upper, work, (size_t)(su - upper)) != 0 || su == upper)
        return kiln_error_set(err, EINVAL, "upper %s and work %s must be siblings", upper, work);
    *out = strndup(upper, (size_t)(su - upper));
    if (*out == NULL)
        return kiln_error_set(err, ENOMEM, "strndup");
    return 0;
}

int kiln_idmap_trees(const kiln_step_t *step, int userns_fd, int *fds, kiln_error_t *err)
{
    _cleanup_free_ char *parent = NULL;
    size_t n = 0;

    if (step->rw_root != NULL) {
        fds[0] = mapped_tree(step->rw_root, userns_fd, 0, err);
        return fds[0] < 0 ? -1 : 0;
    }
    if (step->n_lowers == 0 || step->n_lowers > KILN_IDMAP_MAX_LOWERS)
        return kiln_error_set(err, EINVAL, "a step needs 1 to %d lower dirs (got %zu)",
                              KILN_IDMAP_MAX_LOWERS, step->n_lowers);
    if (step->upper != NULL && common_parent(step->upper, step->work, &parent, err) < 0)
        return -1;
    for (size_t i = 0; i < step->n_lowers; i++) {
        int map = step->lowers_shifted ? -1 : userns_fd;
        fds[n] = mapped_tree(step->lowers[i], map, 1, err);
        if (fds[n] < 0)
            goto fail;
        n++;
    }
    if (parent == NULL)
        return 0; /* the step's changes stay in memory (kiln_mounts_overlay) */
    fds[n] = mapped_tree(parent, userns_fd, 0, err);
    if (fds[n] < 0)
        goto fail;
    return 0;
fail:
    while (n > 0)
        close(fds[--n]);
    return -1;
}

int kiln_idmap_mounts(const kiln_step_t *step, int userns_fd, int *fds, kiln_error_t *err)
{
    int n = 0;

    if (step->n_mounts > KILN_SANDBOX_MAX_MOUNTS)
        return kiln_error_set(err, E2BIG, "a step takes at most %d mounts (got %zu)",
                              KILN_SANDBOX_MAX_MOUNTS, step->n_mounts);
    for (size_t i = 0; i < step->n_mounts; i++) {
        const kiln_mount_t *m = &step->mounts[i];
        int ro = m->type == KILN_MOUNT_SECRET || (m->type == KILN_MOUNT_BIND && m->readonly);
        if (m->type == KILN_MOUNT_TMPFS)
            continue;
        if (m->src == NULL) {
            kiln_error_set(err, EINVAL, "mount on %s has no source", m->dst);
            goto fail;
        }
        fds[n] = mapped_tree(m->src, userns_fd, ro, err);
        if (fds[n] < 0) {
            kiln_error_prefix(err, "mount source for %s", m->dst);
            goto fail;
        }
        n++;
    }
    return n;
fail:
    while (n > 0)
        close(fds[--n]);
    return -1;
}
