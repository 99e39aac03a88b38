#define _GNU_SOURCE
/* ptrace of a host process (argv[1] = its host pid) must fail. */
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/types.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    pid_t pid;

    if (argc < 2)
        return 2;
    pid = (pid_t)strtol(argv[1], NULL, 10);
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0)
        return escaped("ptrace attach to a host pid");
    if (kill(pid, 0) == 0)
        return escaped("signal to a host pid");
    return blocked("ptrace", errno);
}
