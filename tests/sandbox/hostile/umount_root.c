#define _GNU_SOURCE
/* Unmounting / (to reach what is under it) must fail. */
#include <sys/mount.h>

#include "hostile.h"

int main(void)
{
    if (umount2("/", MNT_DETACH) == 0)
        return escaped("umount /");
    if (umount2("/proc", MNT_DETACH) == 0)
        return escaped("umount /proc");
    return blocked("umount", errno);
}
