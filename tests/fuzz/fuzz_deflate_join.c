/* libFuzzer target: oci/deflate_join's walk of a raw DEFLATE stream (the one
 * kiln_deflate_make_nonfinal does on each compressed block before joining).
 * It must never read outside the stream or its KILN_DEFLATE_JOIN_EXTRA bytes
 * of room, must leave a refused stream untouched, and when it accepts a
 * stream that zlib inflates whole, the joined piece followed by an empty final
 * block must inflate to the same bytes (the walk found the real final block). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "oci/deflate_join.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Raw-inflates buf[0..n) into out (cap bytes); the length, or -1 unless the
 * stream ends exactly at the end of buf. */
static long inflate_all(const unsigned char *buf, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -15) != Z_OK)
        abort();
    zs.next_in = (unsigned char *)buf;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int r = inflate(&zs, Z_FINISH);
    long got = r == Z_STREAM_END && zs.avail_in == 0 ? (long)zs.total_out : -1;
    inflateEnd(&zs);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    /* Exactly the room the walk may use: ASan sees a byte more. */
    unsigned char *buf = malloc(size + KILN_DEFLATE_JOIN_EXTRA + 2);
    if (buf == NULL)
        abort();
    memcpy(buf, data, size);
    size_t n = size;
    if (kiln_deflate_make_nonfinal(buf, &n) < 0) {
        if (n != size || memcmp(buf, data, size) != 0)
            abort(); /* a refused stream is left as it was */
        free(buf);
        return 0;
    }
    if (n > size + KILN_DEFLATE_JOIN_EXTRA)
        abort();
    memcpy(buf + n, KILN_DEFLATE_EMPTY_FINAL, 2);
    const size_t cap = (size_t)1 << 24; /* DEFLATE expands at most 1032:1 */
    unsigned char *a = malloc(cap), *b = malloc(cap);
    if (a == NULL || b == NULL)
        abort();
    long la = inflate_all(data, size, a, cap);
    if (la >= 0) {
        long lb = inflate_all(buf, n + 2, b, cap);
        if (lb != la || memcmp(a, b, (size_t)la) != 0)
            abort();
    }
    free(a);
    free(b);
    free(buf);
    return 0;
}
