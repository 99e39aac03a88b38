#define _GNU_SOURCE
/* Writes to /sys must fail. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    static const char *const files[] = {"/sys/kernel/mm/transparent_hugepage/enabled",
                                        "/sys/kernel/uevent_helper", "/sys/power/state",
                                        "/sys/module/kernel/parameters/panic"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        int fd = open(files[i], O_WRONLY);
        if (fd >= 0) {
            printf("opened %s for writing\n", files[i]);
            return escaped("write to /sys");
        }
    }
    if (mkdir("/sys/kiln-hostile", 0755) == 0)
        return escaped("mkdir in /sys");
    return blocked("/sys writes", errno);
}
