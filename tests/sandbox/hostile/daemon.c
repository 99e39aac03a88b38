#define _GNU_SOURCE
/* Leaves a daemon running (double fork + setsid) and exits at once. The
 * daemon re-execs itself as "daemon sleep TOKEN" so the test can look for it
 * from outside: it must not survive the step. */
#include <signal.h>
#include <unistd.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "sleep") == 0) {
        for (;;)
            pause();
    }
    if (argc < 2)
        return 2;
    if (fork() == 0) {
        setsid();
        signal(SIGHUP, SIG_IGN);
        if (fork() == 0) {
            execl("/proc/self/exe", argv[0], "sleep", argv[1], (char *)NULL);
            _exit(3);
        }
        _exit(0);
    }
    printf("daemon started\n");
    return 0;
}
