/* libFuzzer target: oci/pinflate, the parallel gzip decoder, against the sequential one
 * (oci/compress) on the same bytes. Both must agree: the same output when the sequential
 * one succeeds, a failure when it fails, and neither may read outside its buffers. Chunks
 * are cut small (from 64 bytes in), with two workers, so that a short input crosses many
 * cuts; the first byte picks the cut sizes and how the input is handed over. An input that
 * does not start with gzip's magic gets a plain header put in front, so the fuzzer works on
 * the DEFLATE data. Output beyond 8 MiB is not compared (a bomb is not a divergence). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/compress.h"
#include "oci/pinflate.h"
#include "utils/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (8u << 20)

struct src {
    const unsigned char *buf;
    size_t len, pos, step;
};

static const void *src_block(void *ctx, size_t *len, kiln_error_t *err)
{
    (void)err;
    struct src *s = ctx;
    size_t n = s->len - s->pos < s->step ? s->len - s->pos : s->step;
    const void *r = s->buf + s->pos;
    s->pos += n;
    *len = n;
    return r;
}

/* Decodes buf into out (up to OUT_MAX): 0 at the end, 1 when cut at OUT_MAX, -1 failed. */
static int decode(const unsigned char *buf, size_t len, int par, size_t step, size_t cmin,
                  unsigned char *out, size_t *olen)
{
    struct src s = {buf, len, 0, step};
    kiln_decompressor_t *d = NULL;
    kiln_error_t err = {0};
    if (kiln_decompressor_new_blocks(src_block, &s, NULL, NULL, NULL, NULL, &d, &err) < 0)
        return -1;
    if (kiln_decompressor_format(d) != KILN_COMPRESSION_GZIP)
        abort(); /* (the magic is always there) */
    kiln_pinflate_t *p = par ? kiln_pinflate_new_sized(d, 2, cmin, cmin * 4) : NULL;
    int rc = 0;
    *olen = 0;
    for (;;) {
        size_t room = OUT_MAX - *olen < 4096 ? OUT_MAX - *olen : 4096;
        if (room == 0) {
            rc = 1;
            break;
        }
        ssize_t n = par ? kiln_pinflate_read(p, out + *olen, room, &err)
                        : kiln_decompressor_read(d, out + *olen, room, &err);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        *olen += (size_t)n;
    }
    if (rc < 0 && err.msg[0] == '\0')
        abort(); /* a failure always says why */
    kiln_pinflate_free(p);
    kiln_decompressor_free(d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    size_t cmin = 64u << (data[0] & 7), step = 1 + ((size_t)data[0] >> 3) * 97;
    data++, size--;
    unsigned char *in = malloc(size + 10);
    if (in == NULL)
        abort();
    size_t len = 0;
    if (size < 2 || data[0] != 0x1f || data[1] != 0x8b) {
        static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
        memcpy(in, hdr, 10);
        len = 10;
    }
    memcpy(in + len, data, size);
    len += size;
    unsigned char *a = malloc(OUT_MAX), *b = malloc(OUT_MAX);
    if (a == NULL || b == NULL)
        abort();
    size_t alen, blen;
    int ra = decode(in, len, 0, step, cmin, a, &alen);
    int rb = decode(in, len, 1, step, cmin, b, &blen);
    /* both failed, or both gave the same bytes (up to where either stopped) */
    if ((ra < 0) != (rb < 0) && ra != 1 && rb != 1)
        abort();
    size_t n = alen < blen ? alen : blen;
    if (ra >= 0 && rb >= 0 && (memcmp(a, b, n) != 0 || (ra == 0 && rb == 0 && alen != blen)))
        abort();
    free(a);
    free(b);
    free(in);
    return 0;
}
