#define _GNU_SOURCE
/* Creating a block device node (to read the host disk) must fail. */
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "hostile.h"

int main(void)
{
    if (mknod("/hostile-sda", S_IFBLK | 0600, makedev(8, 0)) == 0)
        return escaped("mknod block device");
    if (mknod("/hostile-mem", S_IFCHR | 0600, makedev(1, 1)) == 0)
        return escaped("mknod /dev/mem");
    return blocked("mknod", errno);
}
