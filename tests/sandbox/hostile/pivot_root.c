#define _GNU_SOURCE
/* pivot_root must fail. */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    mkdir("/pivot-hostile", 0755);
    mkdir("/pivot-hostile/old", 0755);
    return verdict("pivot_root", syscall(SYS_pivot_root, "/pivot-hostile", "/pivot-hostile/old"));
}
