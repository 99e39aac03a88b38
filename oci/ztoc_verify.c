/* kiln — a zTOC checked against its gzip layer, span by span, the way a lazy-loading
 * snapshotter uses it: each span's compressed range alone (its sha256 checked), inflated
 * from its checkpoint, must give the layer's bytes at that uncompressed offset, and the
 * tar entries read from those bytes must be the TOC's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "oci/ztoc.h"
#include "oci/ztoc_tar.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define CHUNK (256 * 1024)

/* The layer inflated from its start (the reference the spans are compared with). */
typedef struct refstream {
    int fd;
    uint64_t size, off;
    z_stream zs;
    int ended;
    uint8_t *in;
} refstream_t;

/* Reads exactly n reference bytes into buf. */
static int ref_read(refstream_t *r, uint8_t *buf, size_t n, kiln_error_t *err)
{
    r->zs.next_out = buf;
    r->zs.avail_out = (uInt)n;
    while (r->zs.avail_out > 0) {
        int ret;
        if (r->zs.avail_in == 0) {
            ssize_t got = r->off < r->size
                              ? pread(r->fd, r->in,
                                      r->size - r->off < CHUNK ? (size_t)(r->size - r->off) : CHUNK,
                                      (off_t)r->off)
                              : 0;
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return kiln_error_set(err, 0,
                                      "the layer inflates to fewer bytes than the "
                                      "zTOC says (%lu)",
                                      r->zs.total_out + 0UL);
            r->off += (uint64_t)got;
            r->zs.next_in = r->in;
            r->zs.avail_in = (uInt)got;
        }
        if (r->ended) {
            inflateReset(&r->zs);
            r->ended = 0;
        }
        ret = inflate(&r->zs, Z_NO_FLUSH);
        if (ret == Z_STREAM_END)
            r->ended = 1;
        else if (ret != Z_OK && ret != Z_BUF_ERROR)
            return kiln_error_set(err, 0, "the layer's gzip stream is corrupt (%s)",
                                  r->zs.msg ? r->zs.msg : "invalid data");
    }
    return 0;
}

/* Inflates span i from its checkpoint using only its compressed range [start, end):
 * want uncompressed bytes, each chunk compared with the reference and fed to the tar
 * walker. Also checks the range's sha256. */
static int check_span(int fd, const kiln_zinfo_point_t *p, size_t i, int64_t start, int64_t end,
                      int64_t want, const char *digest, refstream_t *ref, kiln_ztoc_tar_t *tar,
                      kiln_error_t *err)
{
    _cleanup_free_ uint8_t *in = kiln_xmalloc(CHUNK);
    _cleanup_free_ uint8_t *out = kiln_xmalloc(CHUNK);
    _cleanup_free_ uint8_t *cmp = kiln_xmalloc(CHUNK);
    z_stream zs = {0};
    kiln_sha256_t h;
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];
    int64_t pos = start, produced = 0;
    int primed = 0, member_end = 0, rc = -1;
    unsigned trailer = 0;

    if (kiln_sha256_init(&h, err) < 0)
        return -1;
    if (inflateInit2(&zs, -15) != Z_OK) {
        kiln_sha256_dispose(&h);
        return kiln_error_set(err, ENOMEM, "inflateInit2 failed");
    }
    if (p[i].bits == 0) {
        primed = 1;
        inflateSetDictionary(&zs, p[i].window, KILN_ZTOC_WINDOW);
    }
    /* all of the range is hashed even when the span's output ends before it */
    while (pos < end || (produced < want && zs.avail_in > 0)) {
        if (zs.avail_in == 0) {
            size_t n = end - pos < CHUNK ? (size_t)(end - pos) : CHUNK;
            ssize_t got = pread(fd, in, n, (off_t)pos);
            if (got <= 0) {
                kiln_error_set(err, EIO, "span %zu: reading the layer at byte %lld", i,
                               (long long)pos);
                goto out;
            }
            kiln_sha256_update(&h, in, (size_t)got);
            pos += got;
            zs.next_in = in;
            zs.avail_in = (uInt)got;
            if (!primed) { /* the checkpoint's bits come from the range's first byte */
                inflatePrime(&zs, p[i].bits, *zs.next_in >> (8 - p[i].bits));
                inflateSetDictionary(&zs, p[i].window, KILN_ZTOC_WINDOW);
                zs.next_in++;
                zs.avail_in--;
                primed = 1;
            }
        }
        while (produced < want && zs.avail_in > 0) {
            int ret;
            size_t n;
            if (member_end) { /* a next gzip member: skip the trailer, parse its header */
                while (trailer < 8 && zs.avail_in > 0) {
                    zs.next_in++;
                    zs.avail_in--;
                    trailer++;
                }
                if (trailer < 8)
                    break;
                inflateReset2(&zs, 31);
                member_end = 0;
                trailer = 0;
                continue;
            }
            zs.next_out = out;
            zs.avail_out = want - produced < CHUNK ? (uInt)(want - produced) : CHUNK;
            ret = inflate(&zs, Z_NO_FLUSH);
            if (ret == Z_STREAM_END)
                member_end = 1;
            else if (ret != Z_OK && ret != Z_BUF_ERROR) {
                kiln_error_set(err, 0,
                               "span %zu does not inflate from its checkpoint "
                               "(%s)",
                               i, zs.msg ? zs.msg : "invalid data");
                goto out;
            }
            n = (size_t)(zs.next_out - out);
            if (n == 0)
                continue;
            if (ref_read(ref, cmp, n, err) < 0)
                goto out;
            if (memcmp(out, cmp, n) != 0) {
                kiln_error_set(err, 0,
                               "span %zu inflated from its checkpoint differs from "
                               "the layer near uncompressed byte %lld",
                               i, (long long)(p[i].out + produced));
                goto out;
            }
            if (kiln_ztoc_tar_feed(tar, out, n, err) < 0) {
                kiln_error_prefix(err, "span %zu", i);
                goto out;
            }
            produced += (int64_t)n;
        }
    }
    if (produced < want) {
        kiln_error_set(err, 0,
                       "span %zu: its compressed bytes %lld..%lld give %lld of its "
                       "%lld uncompressed bytes",
                       i, (long long)start, (long long)end, (long long)produced, (long long)want);
        goto out;
    }
    kiln_sha256_final(&h, &d);
    if (strcmp(kiln_digest_str(&d, ds), digest) != 0) {
        inflateEnd(&zs);
        return kiln_error_set(err, 0,
                              "span %zu: digest of bytes %lld..%lld is %s, the "
                              "zTOC says %s",
                              i, (long long)start, (long long)end, ds, digest);
    }
    inflateEnd(&zs);
    return 0;
out:
    kiln_sha256_dispose(&h);
    inflateEnd(&zs);
    return rc;
}

int kiln_ztoc_verify(const kiln_ztoc_t *z, int fd, uint64_t size, kiln_ztoc_verify_stats_t *stats,
                     kiln_error_t *err)
{
    _cleanup_free_ kiln_zinfo_point_t *pts = NULL;
    kiln_ztoc_tar_t tar = {0};
    refstream_t ref = {.fd = fd, .size = size};
    size_t n;
    int64_t span;
    int rc = -1;

    if (z->compressed_size != (int64_t)size)
        return kiln_error_set(err, 0,
                              "the zTOC is for a %lld-byte layer, this one has %llu "
                              "bytes",
                              (long long)z->compressed_size, (unsigned long long)size);
    if (kiln_zinfo_parse(z->checkpoints, z->checkpoints_len, &pts, &n, &span, err) < 0)
        return -1;
    if (n != z->n_span_digests)
        return kiln_error_set(err, 0, "%zu checkpoints but %zu span digests", n, z->n_span_digests);
    if (inflateInit2(&ref.zs, 31) != Z_OK)
        return kiln_error_set(err, ENOMEM, "inflateInit2 failed");
    ref.in = kiln_xmalloc(CHUNK);
    for (size_t i = 0; i < n; i++) {
        int64_t start, end, upto, want;
        kiln_zinfo_span_range(pts, n, i, (int64_t)size, &start, &end);
        if (start < 0 || end <= start || end > (int64_t)size) {
            kiln_error_set(err, 0,
                           "span %zu: compressed range %lld..%lld is outside the "
                           "%llu-byte layer",
                           i, (long long)start, (long long)end, (unsigned long long)size);
            goto out;
        }
        /* the last span (and any checkpoint in the padding after the tar's end) runs to the
         * end of the archive as soci reads it, not of the stream */
        upto = i + 1 < n ? pts[i + 1].out : z->uncompressed_size;
        if (upto > z->uncompressed_size)
            upto = z->uncompressed_size;
        want = upto > pts[i].out ? upto - pts[i].out : 0;
        if (check_span(fd, pts, i, start, end, want, z->span_digests[i], &ref, &tar, err) < 0)
            goto out;
    }
    if (!tar.done && kiln_ztoc_tar_finish(&tar, err) < 0)
        goto out;
    if (tar.end != z->uncompressed_size) {
        kiln_error_set(err, 0, "the tar in the layer ends at byte %lld, the zTOC says %lld",
                       (long long)tar.end, (long long)z->uncompressed_size);
        goto out;
    }
    if (tar.n_files != z->n_files) {
        kiln_error_set(err, 0, "the zTOC lists %zu entries, the layer has %zu", z->n_files,
                       tar.n_files);
        goto out;
    }
    for (size_t i = 0; i < z->n_files; i++)
        if (kiln_ztoc_file_compare(&z->files[i], &tar.files[i], err) < 0) {
            kiln_error_prefix(err, "entry %zu ('%.200s')", i, tar.files[i].name);
            goto out;
        }
    if (stats) {
        stats->spans = n;
        stats->files = z->n_files;
        stats->uncompressed = (uint64_t)z->uncompressed_size;
    }
    rc = 0;
out:
    kiln_ztoc_tar_clear(&tar);
    inflateEnd(&ref.zs);
    free(ref.in);
    return rc;
}
