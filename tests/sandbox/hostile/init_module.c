#define _GNU_SOURCE
/* Loading a kernel module must be refused (EPERM). */
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    static char image[64];
    if (syscall(SYS_init_module, image, sizeof(image), "") == 0 || errno != EPERM)
        return escaped("init_module was not refused with EPERM");
    if (syscall(SYS_finit_module, 0, "", 0) == 0 || errno != EPERM)
        return escaped("finit_module was not refused with EPERM");
    return blocked("module loading", EPERM);
}
