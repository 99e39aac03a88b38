/* libFuzzer target: the path resolver. A hostile tree (links absolute,
 * relative, escaping, looping) is made once; each input is a path resolved
 * through openat2 and through the walk: both must agree, and whatever they
 * open, resolve or create must be inside the root. The first byte picks the
 * operation and flags. */
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../unit/pathres_tree.h"
#include "utils/fs.h"
#include "utils/pathres.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *base;
static char root[PATH_MAX];
static int rootfd = -1;

static void teardown(void)
{
    if (rootfd >= 0)
        close(rootfd);
    rootfd = -1;
    kiln_fs_rm_rf(base, NULL);
    free(base);
    base = NULL;
}

static void setup(void)
{
    kiln_error_t err = {0};
    if (kiln_fs_mkdtemp("/tmp", "kiln-fuzz-pathres-", &base, &err) < 0 ||
        pathres_make_tree(base) < 0)
        abort();
    snprintf(root, sizeof(root), "%s/root", base);
    if (kiln_pathres_open_root(root, &rootfd, &err) < 0)
        abort();
}

/* Aborts unless fd names something under the root. */
static void check_inside(int fd)
{
    char link[64], where[PATH_MAX];
    size_t n = strlen(root);
    ssize_t l;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    l = readlink(link, where, sizeof(where) - 1);
    if (l < 0)
        abort();
    where[l] = '\0';
    if (strncmp(where, root, n) != 0 || (where[n] != '\0' && where[n] != '/'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    unsigned op;
    char *path;
    int fd[2] = {-1, -1}, r[2];
    kiln_error_t werr[2] = {{0}, {0}};
    struct stat a, b;

    if (rootfd < 0) {
        setup();
        atexit(teardown);
    }
    if (size < 1)
        return 0;
    op = data[0];
    path = strndup((const char *)data + 1, size - 1); /* stops at a NUL */
    if (path == NULL)
        return 0;
    if (op & 0x80) {
        /* mkdir -p: only inside the root; the tree is made again every 256
         * of them so that it stays small */
        static unsigned made;
        int d = -1;
        if (++made % 256 == 0) {
            teardown();
            setup();
        }
        kiln_pathres_force_walk(op & 1);
        if (kiln_pathres_mkdir_p(rootfd, path, 0755, &d, &err) == 0) {
            check_inside(d);
            close(d);
        }
        kiln_pathres_force_walk(false);
        free(path);
        return 0;
    }
    for (int w = 0; w < 2; w++) {
        kiln_pathres_force_walk(w);
        r[w] = kiln_pathres_open(rootfd, path, O_PATH, 0, (op & 1) ? KILN_PATHRES_NOFOLLOW : 0,
                                 &fd[w], &werr[w]);
        if (r[w] == 0)
            check_inside(fd[w]);
    }
    kiln_pathres_force_walk(false);
    if (r[0] != r[1]) {
        fprintf(stderr, "openat2 and the walk disagree on '%s': [%s] vs [%s]\n", path, werr[0].msg,
                werr[1].msg);
        abort();
    }
    if (r[0] == 0) {
        if (fstat(fd[0], &a) < 0 || fstat(fd[1], &b) < 0 || a.st_ino != b.st_ino ||
            a.st_dev != b.st_dev)
            abort();
        close(fd[0]);
        close(fd[1]);
    }
    {
        char *canon = NULL;
        unsigned fl =
            ((op & 1) ? KILN_PATHRES_NOFOLLOW : 0) | ((op & 2) ? KILN_PATHRES_MISSING_OK : 0);
        if (kiln_pathres_resolve(rootfd, path, fl, &canon, &err) == 0) {
            /* canonical: absolute, no "." or ".." component, no "//" */
            if (canon[0] != '/' || strstr(canon, "/../") || strstr(canon, "/./") ||
                strstr(canon, "//"))
                abort();
            if (!(op & 2) && r[0] != 0)
                abort(); /* resolvable without missing parts, yet it did not open */
            free(canon);
        }
    }
    free(path);
    return 0;
}
