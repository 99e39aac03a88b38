#define _GNU_SOURCE
/* kexec_load / kexec_file_load must be refused (EPERM). */
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    if (syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0UL) == 0 || errno != EPERM)
        return escaped("kexec_load was not refused with EPERM");
    if (syscall(SYS_kexec_file_load, -1, -1, 0UL, "", 0UL) == 0 || errno != EPERM)
        return escaped("kexec_file_load was not refused with EPERM");
    return blocked("kexec", EPERM);
}
