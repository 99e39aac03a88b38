/* kiln — a zTOC built from a gzip layer: the zinfo checkpoints (zlib's inflate stopping at
 * every deflate block boundary, as zran.c and soci's gzip_zinfo do, so the checkpoints are
 * the ones soci would write), the TOC walked from the same output, the span digests. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "oci/ztoc.h"
#include "oci/ztoc_tar.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define IN_CHUNK (256 * 1024)

typedef struct zbuild {
    uint8_t *blob; /* the zinfo blob being written */
    size_t blob_len, blob_cap;
    uint32_t n;
} zbuild_t;

/* Appends a checkpoint: the window is the ring's last 32 KiB in order (left = bytes of
 * the ring not yet written this lap). */
static int add_checkpoint(zbuild_t *b, int64_t in, int64_t out, int bits, const uint8_t *ring,
                          unsigned left, kiln_error_t *err)
{
    uint8_t *c;

    if (b->blob_len + KILN_ZTOC_CHECKPOINT_BYTES > KILN_ZTOC_MAX_BYTES)
        return kiln_error_set(err, 0,
                              "the zTOC would pass %u MiB of checkpoints: use a "
                              "larger span size",
                              KILN_ZTOC_MAX_BYTES >> 20);
    if (b->blob_len + KILN_ZTOC_CHECKPOINT_BYTES > b->blob_cap) {
        b->blob_cap = b->blob_cap ? b->blob_cap * 2 : 16 * KILN_ZTOC_CHECKPOINT_BYTES;
        b->blob = kiln_xrealloc(b->blob, b->blob_cap);
    }
    c = b->blob + b->blob_len;
    for (int i = 0; i < 8; i++) {
        c[i] = (uint8_t)((uint64_t)in >> (8 * i));
        c[8 + i] = (uint8_t)((uint64_t)out >> (8 * i));
    }
    c[16] = (uint8_t)bits;
    if (left)
        memcpy(c + 17, ring + KILN_ZTOC_WINDOW - left, left);
    if (left < KILN_ZTOC_WINDOW)
        memcpy(c + 17 + left, ring, KILN_ZTOC_WINDOW - left);
    b->blob_len += KILN_ZTOC_CHECKPOINT_BYTES;
    b->n++;
    return 0;
}

/* Reads up to n bytes at off (short only at the end of the file). */
static ssize_t pread_full(int fd, void *buf, size_t n, off_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Pass 1: inflate the whole layer, record checkpoints, walk the tar. */
static int scan(int fd, uint64_t size, int64_t span, zbuild_t *b, kiln_ztoc_tar_t *tar,
                kiln_error_t *err)
{
    _cleanup_free_ uint8_t *input = kiln_xmalloc(IN_CHUNK);
    _cleanup_free_ uint8_t *ring = kiln_xzalloc(KILN_ZTOC_WINDOW);
    z_stream zs = {0};
    int64_t totin = 0, totout = 0, last = 0;
    uint64_t off = 0;
    int ret = Z_OK, rc = -1;

    if (inflateInit2(&zs, 31) != Z_OK)
        return kiln_error_set(err, ENOMEM, "inflateInit2 failed");
    zs.avail_out = 0;
    for (;;) {
        ssize_t got = pread_full(fd, input, IN_CHUNK, (off_t)off);
        if (got < 0) {
            kiln_error_set(err, errno, "reading the layer");
            goto out;
        }
        if (got == 0) {
            if (ret == Z_STREAM_END)
                break;
            kiln_error_set(err, 0, "gzip stream is truncated (ends at byte %llu)",
                           (unsigned long long)off);
            goto out;
        }
        off += (uint64_t)got;
        zs.next_in = input;
        zs.avail_in = (uInt)got;
        do {
            uint8_t *before;
            if (ret == Z_STREAM_END) {
                /* another gzip member follows (parallel compressors): counters go on */
                inflateReset(&zs);
            }
            if (zs.avail_out == 0) {
                zs.avail_out = KILN_ZTOC_WINDOW;
                zs.next_out = ring;
            }
            before = zs.next_out;
            totin += zs.avail_in;
            totout += zs.avail_out;
            ret = inflate(&zs, Z_BLOCK);
            totin -= zs.avail_in;
            totout -= zs.avail_out;
            if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR ||
                ret == Z_STREAM_ERROR) {
                kiln_error_set(err, 0, "gzip stream is corrupt at byte %lld (%s)", (long long)totin,
                               zs.msg ? zs.msg : "invalid data");
                goto out;
            }
            if (zs.next_out > before &&
                kiln_ztoc_tar_feed(tar, before, (size_t)(zs.next_out - before), err) < 0)
                goto out;
            if (ret == Z_STREAM_END)
                continue;
            /* at a block boundary that is not after the last block: maybe a checkpoint */
            if ((zs.data_type & 128) && !(zs.data_type & 64) &&
                (totout == 0 || totout - last > span)) {
                if (add_checkpoint(b, totin, totout, zs.data_type & 7, ring, zs.avail_out, err) < 0)
                    goto out;
                last = totout;
            }
        } while (zs.avail_in != 0);
        if (off >= size && ret != Z_STREAM_END) {
            kiln_error_set(err, 0, "gzip stream is truncated (ends at byte %llu)",
                           (unsigned long long)off);
            goto out;
        }
        if (off >= size)
            break;
    }
    rc = 0;
out:
    inflateEnd(&zs);
    return rc;
}

/* Pass 2: the sha256 of each span's compressed bytes. */
static int span_digests(int fd, uint64_t size, kiln_ztoc_t *z, kiln_error_t *err)
{
    _cleanup_free_ kiln_zinfo_point_t *pts = NULL;
    _cleanup_free_ uint8_t *buf = kiln_xmalloc(IN_CHUNK);
    size_t n;
    int64_t span;

    if (kiln_zinfo_parse(z->checkpoints, z->checkpoints_len, &pts, &n, &span, err) < 0)
        return -1;
    z->span_digests = kiln_xzalloc(n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        int64_t start, end;
        kiln_sha256_t h;
        kiln_digest_t d;
        char ds[KILN_DIGEST_STR_MAX];

        kiln_zinfo_span_range(pts, n, i, (int64_t)size, &start, &end);
        if (kiln_sha256_init(&h, err) < 0)
            return -1;
        while (start < end) {
            size_t want = end - start < IN_CHUNK ? (size_t)(end - start) : IN_CHUNK;
            ssize_t got = pread_full(fd, buf, want, (off_t)start);
            if (got <= 0) {
                kiln_sha256_dispose(&h);
                return kiln_error_set(err, EIO, "reading the layer at byte %lld", (long long)start);
            }
            kiln_sha256_update(&h, buf, (size_t)got);
            start += got;
        }
        kiln_sha256_final(&h, &d);
        z->span_digests[i] = kiln_xstrdup(kiln_digest_str(&d, ds));
        z->n_span_digests = i + 1;
    }
    z->max_span_id = (int32_t)n - 1;
    return 0;
}

int kiln_ztoc_build(int fd, uint64_t size, int64_t span, const char *build_tool, kiln_ztoc_t **out,
                    kiln_error_t *err)
{
    kiln_ztoc_tar_t tar = {0};
    zbuild_t b = {0};
    kiln_ztoc_t *z;

    if (span < KILN_ZTOC_MIN_SPAN)
        return kiln_error_set(err, 0, "SOCI span size %lld is below %d bytes", (long long)span,
                              KILN_ZTOC_MIN_SPAN);
    b.blob = kiln_xzalloc(KILN_ZTOC_ZINFO_HEADER + 16 * KILN_ZTOC_CHECKPOINT_BYTES);
    b.blob_cap = KILN_ZTOC_ZINFO_HEADER + 16 * KILN_ZTOC_CHECKPOINT_BYTES;
    b.blob_len = KILN_ZTOC_ZINFO_HEADER;
    if (scan(fd, size, span, &b, &tar, err) < 0 || kiln_ztoc_tar_finish(&tar, err) < 0) {
        free(b.blob);
        kiln_ztoc_tar_clear(&tar);
        return -1;
    }
    for (int i = 0; i < 4; i++)
        b.blob[i] = (uint8_t)(b.n >> (8 * i));
    for (int i = 0; i < 8; i++)
        b.blob[4 + i] = (uint8_t)((uint64_t)span >> (8 * i));
    z = kiln_xzalloc(sizeof(*z));
    z->version = kiln_xstrdup(KILN_ZTOC_VERSION);
    z->build_tool = kiln_xstrdup(build_tool ? build_tool : "");
    z->compressed_size = (int64_t)size;
    z->uncompressed_size = tar.end;
    z->files = tar.files;
    z->n_files = tar.n_files;
    tar.files = NULL;
    tar.n_files = 0;
    kiln_ztoc_tar_clear(&tar);
    z->algorithm = 1;
    z->checkpoints = b.blob;
    z->checkpoints_len = b.blob_len;
    if (span_digests(fd, size, z, err) < 0) {
        kiln_ztoc_free(z);
        return -1;
    }
    *out = z;
    return 0;
}
