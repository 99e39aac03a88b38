#define _GNU_SOURCE
/* /proc/1/root and /proc/self/exe tricks: neither may reach the host
 * (argv[1] = a file only on the host) nor let the step write kiln's binary. */
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    char p[PATH_MAX];
    int fd;

    if (argc < 2)
        return 2;
    snprintf(p, sizeof(p), "/proc/1/root%s", argv[1]);
    if (access(p, F_OK) == 0)
        return escaped("/proc/1/root reaches the host");
    fd = open("/proc/1/exe", O_WRONLY);
    if (fd >= 0)
        return escaped("opened /proc/1/exe (kiln) for writing");
    fd = open("/proc/self/exe", O_WRONLY);
    if (fd >= 0)
        return escaped("opened /proc/self/exe for writing");
    for (int pid = 1; pid < 64; pid++) {
        snprintf(p, sizeof(p), "/proc/%d/cwd%s", pid, argv[1]);
        if (access(p, F_OK) == 0)
            return escaped("/proc/PID/cwd reaches the host");
    }
    printf("BLOCKED proc tricks\n");
    return 0;
}
