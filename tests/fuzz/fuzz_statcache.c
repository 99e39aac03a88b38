/* libFuzzer target: the stat cache file parser (engine/statcache.c) must never
 * crash, leak or accept a file with a path that is not clean and relative.
 * The input is taken as a file's body (its checksum appended here, so the
 * fuzzer reaches the parser) and as a whole file. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/statcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *file = malloc(size + 32);
    kiln_digest_t d;
    size_t n = 0;

    if (file == NULL)
        return 0;
    memcpy(file, data, size);
    kiln_digest_bytes(data, size, &d);
    for (size_t i = 0; i < 32; i++) {
        unsigned hi =
            (unsigned)(d.hex[2 * i] <= '9' ? d.hex[2 * i] - '0' : d.hex[2 * i] - 'a' + 10);
        unsigned lo = (unsigned)(d.hex[2 * i + 1] <= '9' ? d.hex[2 * i + 1] - '0'
                                                         : d.hex[2 * i + 1] - 'a' + 10);
        file[size + i] = (unsigned char)(hi << 4 | lo);
    }
    (void)kiln_statcache_check(file, size + 32, "fuzz", &n, NULL);
    (void)kiln_statcache_check(data, size, "fuzz", NULL, NULL);
    free(file);
    return 0;
}
