/* libFuzzer target: opening sealed job secrets (the "secrets" object of an SQS job
 * message, see src/server/jobkey.h) with a fixed key. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "src/server/jobkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kiln_jobkey_t *key;

/* The fixed key, loaded once from a temporary key file. */
static kiln_jobkey_t *fixed_key(void)
{
    char path[] = "/tmp/kiln-fuzz-key.XXXXXX";
    static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    int fd;

    if (key)
        return key;
    fd = mkstemp(path);
    if (fd < 0 || write(fd, hex, sizeof(hex) - 1) != (ssize_t)(sizeof(hex) - 1))
        abort();
    close(fd);
    if (kiln_jobkey_load(path, &key, NULL) < 0)
        abort();
    unlink(path);
    return key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *sealed = json_loadb((const char *)data, size, 0, NULL);
    kiln_error_t err = {0};
    char *plain = NULL;
    size_t len = 0;

    if (kiln_jobkey_open(fixed_key(), "b-0123456789abcdef", sealed, &plain, &len, &err) == 0)
        free(plain);
    json_decref(sealed);
    return 0;
}
