#define _GNU_SOURCE
/* Mounting anything (a tmpfs, /proc again) must fail. */
#include <sys/mount.h>
#include <sys/stat.h>

#include "hostile.h"

int main(void)
{
    mkdir("/mnt-hostile", 0755);
    if (mount("tmpfs", "/mnt-hostile", "tmpfs", 0, NULL) == 0)
        return escaped("mount tmpfs");
    if (mount("proc", "/mnt-hostile", "proc", 0, NULL) == 0)
        return escaped("mount proc");
    return blocked("mount", errno);
}
