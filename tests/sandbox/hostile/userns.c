#define _GNU_SOURCE
/* A nested user namespace (the usual first step of a kernel exploit) must fail. */
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    long pid;
    if (unshare(CLONE_NEWUSER) == 0)
        return escaped("unshare(CLONE_NEWUSER)");
    if (unshare(CLONE_NEWNS) == 0)
        return escaped("unshare(CLONE_NEWNS)");
    pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        waitpid((pid_t)pid, NULL, 0);
        return escaped("clone(CLONE_NEWUSER)");
    }
    return blocked("nested user namespace", errno);
}
