/* Helpers of the fuzz targets that detect a plan from a small source tree. */
#ifndef KILN_TESTS_FUZZ_FUZZ_FILES_H
#define KILN_TESTS_FUZZ_FUZZ_FILES_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* Writes `len` bytes to dir/name; returns -1 on failure. */
static inline int fuzz_put(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[512];
    int fd, ok;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ok = len == 0 || write(fd, buf, len) == (ssize_t)len;
    close(fd);
    return ok ? 0 : -1;
}

#endif
