/* kiln — read-only access to a source tree for the detection handlers (see tree.h): every
 * lookup resolved inside the tree's root, files read with a cap. */
#include "handlers/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

int kiln_tree_open(const char *path, kiln_tree_t *tree, kiln_error_t *err)
{
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return kiln_error_set(err, errno, "source directory %s", path);
    tree->fd = fd;
    tree->path = kiln_xstrdup(path);
    return 0;
}

void kiln_tree_close(kiln_tree_t *tree)
{
    if (tree->fd >= 0)
        close(tree->fd);
    tree->fd = -1;
    free(tree->path);
    tree->path = NULL;
}

/* Opens `rel` under the root with `flags`; symlinks and ".." stay inside the
 * root. Returns the fd or -1 with errno set. */
static int tree_openat(const kiln_tree_t *tree, const char *rel, int flags)
{
    return kiln_pathres_openat(tree->fd, rel, flags);
}

/* stat of `rel` inside the tree; -1 when missing or unreadable. */
static int tree_stat(const kiln_tree_t *tree, const char *rel, struct stat *st)
{
    _cleanup_close_ int fd = tree_openat(tree, rel, O_PATH);

    if (fd < 0)
        return -1;
    return fstat(fd, st);
}

bool kiln_tree_is_file(const kiln_tree_t *tree, const char *rel)
{
    struct stat st;
    return tree_stat(tree, rel, &st) == 0 && S_ISREG(st.st_mode);
}

bool kiln_tree_is_dir(const kiln_tree_t *tree, const char *rel)
{
    struct stat st;
    return tree_stat(tree, rel, &st) == 0 && S_ISDIR(st.st_mode);
}

int kiln_tree_read(const kiln_tree_t *tree, const char *rel, char **out, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    char *data = NULL;
    size_t len = 0;

    fd = tree_openat(tree, rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return kiln_error_set(err, errno, "open %s in %s", rel, tree->path);
    }
    if (fstat(fd, &st) < 0)
        return kiln_error_set(err, errno, "stat %s in %s", rel, tree->path);
    if (!S_ISREG(st.st_mode))
        return kiln_error_set(err, 0, "%s in %s is not a regular file", rel, tree->path);
    if (kiln_fs_read_fd(fd, KILN_TREE_FILE_CAP, &data, &len, err) < 0)
        return kiln_error_prefix(err, "%s in %s", rel, tree->path);
    if (memchr(data, '\0', len) != NULL) {
        free(data);
        return kiln_error_set(err, 0, "%s in %s is not a text file", rel, tree->path);
    }
    *out = data;
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **kiln_tree_list(const kiln_tree_t *tree, const char *rel, size_t max, kiln_error_t *err)
{
    int fd = tree_openat(tree, rel, O_RDONLY | O_DIRECTORY);
    _cleanup_closedir_ DIR *d = NULL;
    struct dirent *de;
    char **v;
    size_t n = 0;

    if (fd < 0) {
        kiln_error_set(err, errno, "list %s in %s", rel, tree->path);
        return NULL;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        kiln_error_set(err, errno, "list %s in %s", rel, tree->path);
        return NULL;
    }
    v = kiln_xzalloc((max + 1) * sizeof(char *));
    while (n < max && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strcmp(de->d_name, ".git") == 0)
            continue;
        v[n++] = kiln_xstrdup(de->d_name);
    }
    qsort(v, n, sizeof(char *), cmp_str);
    return v;
}
