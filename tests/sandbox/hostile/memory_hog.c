#define _GNU_SOURCE
/* Allocates and touches argv[1] MiB; the memory limit must stop it (the
 * kernel kills it, or allocation fails). */
#include <stdlib.h>
#include <string.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (p == NULL)
            return blocked("memory hog: malloc", ENOMEM);
        memset(p, 1, 1 << 20);
    }
    return escaped("memory hog got all its memory");
}
