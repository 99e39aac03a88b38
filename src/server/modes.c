/* kiln server — file modes of the server's root (see modes.h). */
#include "src/server/modes.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Removes the "others" bits of `name` under dfd (never following a symlink), and with
 * depth > 0 of the entries of a directory too. A missing entry is not an error. */
static int tighten_at(int dfd, const char *name, int depth, const char *shown, kiln_error_t *err)
{
    _cleanup_close_ int fd =
        openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat sb;
    DIR *d;
    struct dirent *e;

    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? 0
                                                 : kiln_error_set(err, errno, "%s/%s", shown, name);
    if (fstat(fd, &sb) < 0 || ((sb.st_mode & 07) && fchmod(fd, sb.st_mode & 07770) < 0))
        return kiln_error_set(err, errno, "%s/%s: cannot remove the permissions of others", shown,
                              name);
    if (depth <= 0 || !S_ISDIR(sb.st_mode))
        return 0;
    if ((d = fdopendir(fd)) == NULL)
        return kiln_error_set(err, errno, "%s/%s", shown, name);
    fd = -1; /* owned by d now */
    {
        _cleanup_free_ char *sub = kiln_xasprintf("%s/%s", shown, name);
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (tighten_at(dirfd(d), e->d_name, depth - 1, sub, err) < 0) {
                closedir(d);
                return -1;
            }
        }
    }
    closedir(d);
    return 0;
}

int kiln_server_secure_root(const char *root, kiln_error_t *err)
{
    /* depth 1: the files of logs/; depth 2: secrets/<build>/<name> */
    static const struct {
        const char *name;
        int depth;
    } held[] = {{"kiln.db", 0}, {"kiln.db-wal", 0}, {"kiln.db-shm", 0}, {"logs", 1},
                {"secrets", 2}, {"builds", 0},      {"contexts", 0},    {"artifacts", 0}};
    _cleanup_close_ int fd = -1;

    umask(KILN_SERVER_UMASK);
    if (kiln_fs_mkdir_p(root, 0700, err) < 0)
        return -1;
    fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0700) < 0)
        return kiln_error_set(err, errno, "server root %s: cannot make it 0700", root);
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
        if (tighten_at(fd, held[i].name, held[i].depth, root, err) < 0)
            return -1;
    return 0;
}
