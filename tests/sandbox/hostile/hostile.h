/* Shared by the hostile-step programs: each tries one way out of the step
 * sandbox and exits 0 printing "BLOCKED ..." when the attempt failed, 1
 * printing "ESCAPED ..." when it worked, 2 on a setup problem. */
#ifndef KILN_TESTS_HOSTILE_H
#define KILN_TESTS_HOSTILE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int blocked(const char *what, int err)
{
    printf("BLOCKED %s: %s\n", what, strerror(err));
    return 0;
}

static inline int escaped(const char *what)
{
    printf("ESCAPED %s\n", what);
    return 1;
}

/* r < 0: blocked with errno, else escaped. */
static inline int verdict(const char *what, long r)
{
    return r < 0 ? blocked(what, errno) : escaped(what);
}

#endif
