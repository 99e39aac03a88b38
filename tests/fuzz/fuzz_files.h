/* Helpers of the fuzz targets that work on files: a scratch directory and small files in it. */
#ifndef KILN_TESTS_FUZZ_FUZZ_FILES_H
#define KILN_TESTS_FUZZ_FUZZ_FILES_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "utils/fs.h"

static char *fuzz_scratch;

static inline void fuzz_scratch_remove(void)
{
    kiln_fs_rm_rf(fuzz_scratch, NULL);
    free(fuzz_scratch);
    fuzz_scratch = NULL;
}

/* The target's scratch directory /tmp/<prefix>XXXXXX, made on the first call and removed
 * when libFuzzer exits normally (a crash keeps it for a look): each run or CI replay would
 * otherwise leave one behind. Aborts when it cannot be made. */
static inline const char *fuzz_scratch_dir(const char *prefix)
{
    if (fuzz_scratch == NULL) {
        if (kiln_fs_mkdtemp("/tmp", prefix, &fuzz_scratch, NULL) < 0)
            abort();
        atexit(fuzz_scratch_remove);
    }
    return fuzz_scratch;
}

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
