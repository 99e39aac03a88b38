/* libFuzzer target: unpacking an uploaded build context (any tar flavour/compression) must
 * never write outside its directory. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job/context.h"
#include "tests/fuzz/fuzz_files.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *base = fuzz_scratch_dir("kiln-fuzz-ctx.");
    _cleanup_free_ char *tar = NULL, *dir = NULL, *outside = NULL;
    struct stat sb;

    tar = kiln_xasprintf("%s/in.tar", base);
    dir = kiln_xasprintf("%s/a/b/ctx", base);
    outside = kiln_xasprintf("%s/a", base);
    if (kiln_fs_write_file_atomic(tar, data, size, 0600, NULL) < 0 ||
        kiln_fs_mkdir_p(dir, 0700, NULL) < 0)
        abort();
    kiln_context_unpack(tar, dir, NULL, NULL, NULL, NULL);
    /* Only ctx/ may have been written: a/ holds b/ and a/b holds ctx/, nothing else. */
    {
        _cleanup_free_ char *b = kiln_xasprintf("%s/a/b", base);
        _cleanup_closedir_ DIR *d1 = opendir(outside), *d2 = opendir(b);
        struct dirent *e;
        while (d1 && (e = readdir(d1)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "b"))
                abort();
        while (d2 && (e = readdir(d2)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "ctx"))
                abort();
    }
    if (stat(base, &sb) < 0)
        abort();
    kiln_fs_rm_rf(outside, NULL);
    unlink(tar);
    return 0;
}
