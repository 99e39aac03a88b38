#define _GNU_SOURCE
/* The classic chroot escape: chroot into a subdir, then walk ".." past the
 * root. argv[1] names a file that exists only on the host. */
#include <sys/stat.h>
#include <unistd.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    mkdir("/chroot-hostile", 0755);
    if (chroot("/chroot-hostile") < 0)
        return blocked("chroot", errno);
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0)
            break;
    if (chroot(".") < 0)
        return blocked("second chroot", errno);
    if (access(argv[1], F_OK) == 0)
        return escaped("chroot .. escape reached the host");
    printf("BLOCKED chroot escape: %s not visible\n", argv[1]);
    return 0;
}
