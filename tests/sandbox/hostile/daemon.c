#define _GNU_SOURCE
/* Leaves a daemon running (double fork + setsid) and exits at once. The
 * daemon keeps this program's command line ("daemon TOKEN") so the test can
 * look for it from outside: it must not survive the step. "daemon sleep
 * TOKEN" just sleeps in the foreground. */
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
            /* The daemon: its command line (with TOKEN) is what the test looks for. */
            for (;;)
                pause();
        }
        _exit(0);
    }
    printf("daemon started\n");
    return 0;
}
