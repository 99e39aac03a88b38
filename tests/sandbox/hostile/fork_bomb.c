#define _GNU_SOURCE
/* Forks until it cannot; the pids limit must stop it well before argv[1]
 * processes. The children sleep (killed when the step ends). */
#include <signal.h>
#include <unistd.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    long max = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    long n = 0;

    for (; n < max; n++) {
        pid_t p = fork();
        if (p < 0)
            break;
        if (p == 0) {
            pause();
            _exit(0);
        }
    }
    if (n >= max)
        return escaped("fork bomb was not limited");
    printf("BLOCKED fork bomb after %ld processes: %s\n", n, strerror(errno));
    return 0;
}
