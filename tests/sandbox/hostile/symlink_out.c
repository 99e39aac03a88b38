#define _GNU_SOURCE
/* Writing through symlinks that point out of the rootfs (an absolute one
 * and a ../.. one, both aimed at argv[1], a host directory) must stay inside. */
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    char rel[PATH_MAX];
    int fd;

    if (argc < 2)
        return 2;
    unlink("/abs-link");
    unlink("/rel-link");
    if (symlink(argv[1], "/abs-link") < 0)
        return 2;
    snprintf(rel, sizeof(rel), "../../../../../../../..%s", argv[1]);
    if (symlink(rel, "/rel-link") < 0)
        return 2;
    /* The links resolve inside the rootfs: creating the directory there
     * makes the writes land inside too. */
    fd = open("/abs-link/pwned-abs", O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        close(fd);
    fd = open("/rel-link/pwned-rel", O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        close(fd);
    printf("BLOCKED symlink writes (checked from outside)\n");
    return 0;
}
