#define _GNU_SOURCE
/* reboot() must fail. Uses the harmless CAD_OFF command: even if it were
 * allowed it would only change the Ctrl-Alt-Del behaviour. */
#include <linux/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    return verdict("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                                     LINUX_REBOOT_CMD_CAD_OFF, NULL));
}
