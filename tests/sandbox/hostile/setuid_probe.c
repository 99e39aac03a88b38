#define _GNU_SOURCE
/* Installed setuid-root by the test and run as an unprivileged user: it must
 * not gain privilege (no_new_privs). */
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    if (geteuid() == 0 || getuid() == 0)
        return escaped("setuid binary gave euid 0");
    printf("BLOCKED setuid: euid %d\n", (int)geteuid());
    return 0;
}
