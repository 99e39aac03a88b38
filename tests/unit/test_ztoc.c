/* Unit tests for oci/ztoc*: a zTOC built from a gzip tar made here (PAX long name, links,
 * a directory, data large enough for many checkpoints at the smallest span), its
 * flatbuffers round trip, the checkpoint math, verification span by span, and hostile
 * zTOCs (truncated, offsets out of range, tampered checkpoints, digests and entries)
 * refused with a message naming what is wrong. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "oci/ztoc.h"
#include "oci/ztoc_tar.h"
#include "utils/mem.h"

typedef struct tarbuf {
    uint8_t *b;
    size_t len;
} tarbuf_t;

static void tar_put(tarbuf_t *t, const void *p, size_t n)
{
    size_t pad = (n + 511) / 512 * 512;
    t->b = kiln_xrealloc(t->b, t->len + pad);
    memset(t->b + t->len, 0, pad);
    memcpy(t->b + t->len, p, n);
    t->len += pad;
}

/* One ustar header (+ data). */
static void tar_entry(tarbuf_t *t, const char *name, char type, const char *link, const void *data,
                      size_t n)
{
    uint8_t h[512] = {0};
    unsigned sum = 0;

    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
    snprintf((char *)h + 108, 8, "%07o", 1000);
    snprintf((char *)h + 116, 8, "%07o", 1000);
    snprintf((char *)h + 124, 12, "%011zo", type == 'x' || type == '0' ? n : (size_t)0);
    snprintf((char *)h + 136, 12, "%011o", 1700000000);
    memset(h + 148, ' ', 8);
    h[156] = (uint8_t)type;
    if (link)
        snprintf((char *)h + 157, 100, "%s", link);
    memcpy(h + 257,
           "ustar\0"
           "00",
           8);
    snprintf((char *)h + 265, 32, "app");
    snprintf((char *)h + 297, 32, "app");
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[154] = 0;
    h[155] = ' ';
    tar_put(t, h, 512);
    if (n && (type == '0' || type == 'x'))
        tar_put(t, data, n);
}

static size_t big_len = 700 * 1024;

/* The test layer, gzip-compressed, in a memfd; *tar_out the plain tar. */
static int make_layer(tarbuf_t *tar_out, uint64_t *size)
{
    tarbuf_t t = {0};
    uint8_t *big = kiln_xmalloc(big_len);
    char pax[300], longname[200];
    uint32_t x = 12345;
    z_stream zs = {0};
    uint8_t *gz;
    int fd;

    /* compressible but not trivially so: many deflate blocks */
    for (size_t i = 0; i < big_len; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (uint8_t)("abcdefghij"[(x >> 16) % 10]);
    }
    tar_entry(&t, "app/", '5', NULL, NULL, 0);
    tar_entry(&t, "app/small.txt", '0', NULL, "hello\n", 6);
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    memcpy(longname, "app/", 4);
    {
        int body = (int)strlen(longname) + 7; /* " path=" + name + "\n" */
        int digits = snprintf(NULL, 0, "%d", body + 3);
        int rec = snprintf(pax, sizeof(pax), "%d path=%s\n", body + digits, longname);
        assert_int_equal(rec, body + digits);
        tar_entry(&t, "PaxHeaders/x", 'x', NULL, pax, (size_t)rec);
    }
    tar_entry(&t, "app/placeholder", '0', NULL, big, big_len);
    tar_entry(&t, "app/link", '2', "small.txt", NULL, 0);
    tar_entry(&t, "app/hard", '1', "app/small.txt", NULL, 0);
    {
        uint8_t zero[1024] = {0};
        t.b = kiln_xrealloc(t.b, t.len + 1024);
        memcpy(t.b + t.len, zero, 1024);
        t.len += 1024;
    }
    free(big);

    gz = kiln_xmalloc(t.len + 4096);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = t.b;
    zs.avail_in = (uInt)t.len;
    zs.next_out = gz;
    zs.avail_out = (uInt)(t.len + 4096);
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *size = zs.total_out;
    deflateEnd(&zs);
    fd = memfd_create("layer", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, gz, *size), (ssize_t)*size);
    free(gz);
    *tar_out = t;
    return fd;
}

static kiln_ztoc_t *build(int fd, uint64_t size)
{
    kiln_ztoc_t *z = NULL;
    kiln_error_t err = {0};
    if (kiln_ztoc_build(fd, size, KILN_ZTOC_MIN_SPAN, "kiln test", &z, &err) < 0)
        fail_msg("build: %s", err.msg);
    return z;
}

static void test_build_toc(void **state)
{
    tarbuf_t t;
    uint64_t size;
    int fd = make_layer(&t, &size);
    kiln_ztoc_t *z = build(fd, size);

    assert_string_equal(z->version, "0.9");
    assert_int_equal(z->compressed_size, (int64_t)size);
    assert_int_equal(z->n_files, 5);
    assert_string_equal(z->files[0].name, "app/");
    assert_string_equal(z->files[0].type, "dir");
    assert_string_equal(z->files[1].type, "reg");
    assert_int_equal(z->files[1].offset, 1024);
    assert_memory_equal(t.b + z->files[1].offset, "hello\n", 6);
    /* the PAX path replaces the header's name; the record is kept like Go's PAXRecords */
    assert_int_equal(strlen(z->files[2].name), 199);
    assert_int_equal(z->files[2].n_xattrs, 1);
    assert_string_equal(z->files[2].xattrs[0].key, "path");
    assert_int_equal(z->files[2].size, (int64_t)big_len);
    assert_int_equal(z->files[2].uid, 1000);
    assert_string_equal(z->files[2].uname, "app");
    assert_string_equal(z->files[2].mod_time, "2023-11-14T22:13:20Z");
    assert_int_equal(z->files[2].mode, 0644);
    assert_string_equal(z->files[3].type, "symlink");
    assert_string_equal(z->files[3].linkname, "small.txt");
    assert_string_equal(z->files[4].type, "hardlink");
    /* the end is after the two zero blocks, as Go's tar reader stops */
    assert_int_equal(z->uncompressed_size, (int64_t)t.len);
    /* 700 KiB at 64 KiB spans (rounded up to deflate blocks): several checkpoints */
    if (z->n_span_digests < 4)
        fail_msg("%zu spans", z->n_span_digests);
    assert_int_equal(z->max_span_id + 1, (int32_t)z->n_span_digests);
    kiln_ztoc_free(z);
    free(t.b);
    close(fd);
}

static void test_checkpoint_math(void **state)
{
    tarbuf_t t;
    uint64_t size;
    int fd = make_layer(&t, &size);
    kiln_ztoc_t *z = build(fd, size);
    kiln_zinfo_point_t *p = NULL;
    kiln_error_t err = {0};
    size_t n;
    int64_t span, s, e;

    assert_int_equal(kiln_zinfo_parse(z->checkpoints, z->checkpoints_len, &p, &n, &span, &err), 0);
    assert_int_equal(span, KILN_ZTOC_MIN_SPAN);
    assert_int_equal(z->checkpoints_len, 12 + n * KILN_ZTOC_CHECKPOINT_BYTES);
    /* the first checkpoint is right after the 10-byte gzip header, before any output */
    assert_int_equal(p[0].in, 10);
    assert_int_equal(p[0].out, 0);
    assert_int_equal(p[0].bits, 0);
    for (size_t i = 1; i < n; i++) {
        assert_true(p[i].out - p[i - 1].out > KILN_ZTOC_MIN_SPAN);
        /* the window is the 32 KiB of output before the checkpoint */
        assert_memory_equal(p[i].window, t.b + p[i].out - KILN_ZTOC_WINDOW, KILN_ZTOC_WINDOW);
        kiln_zinfo_span_range(p, n, i, (int64_t)size, &s, &e);
        assert_int_equal(s, p[i].in - (p[i].bits ? 1 : 0));
        assert_int_equal(e, i + 1 < n ? p[i + 1].in : (int64_t)size);
    }
    free(p);
    kiln_ztoc_free(z);
    free(t.b);
    close(fd);
}

static void test_roundtrip_verify(void **state)
{
    tarbuf_t t;
    uint64_t size;
    int fd = make_layer(&t, &size);
    kiln_ztoc_t *z = build(fd, size), *d = NULL;
    kiln_error_t err = {0};
    kiln_ztoc_verify_stats_t st = {0};
    uint8_t *buf, *buf2;
    size_t len, len2;

    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    assert_int_equal(kiln_ztoc_decode(buf, len, &d, &err), 0);
    assert_int_equal(d->n_files, z->n_files);
    for (size_t i = 0; i < z->n_files; i++)
        assert_int_equal(kiln_ztoc_file_compare(&d->files[i], &z->files[i], &err), 0);
    assert_memory_equal(d->checkpoints, z->checkpoints, z->checkpoints_len);
    assert_string_equal(d->span_digests[3], z->span_digests[3]);
    assert_string_equal(d->build_tool, "kiln test");
    assert_int_equal(kiln_ztoc_encode(d, &buf2, &len2, &err), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    if (kiln_ztoc_verify(d, fd, size, &st, &err) < 0)
        fail_msg("verify: %s", err.msg);
    assert_int_equal(st.files, 5);
    assert_int_equal(st.spans, z->n_span_digests);
    free(buf);
    free(buf2);
    kiln_ztoc_free(d);
    kiln_ztoc_free(z);
    free(t.b);
    close(fd);
}

/* Verifying a tampered zTOC fails with the expected words. */
static void expect_verify_fail(kiln_ztoc_t *z, int fd, uint64_t size, const char *words)
{
    kiln_error_t err = {0};
    assert_int_equal(kiln_ztoc_verify(z, fd, size, NULL, &err), -1);
    if (strstr(err.msg, words) == NULL)
        fail_msg("'%s' does not say '%s'", err.msg, words);
}

static void test_verify_tampered(void **state)
{
    tarbuf_t t;
    uint64_t size;
    int fd = make_layer(&t, &size);
    kiln_ztoc_t *z = build(fd, size);
    uint8_t *cp3 = z->checkpoints + 12 + 3 * KILN_ZTOC_CHECKPOINT_BYTES;
    char keep[80];

    /* a window byte near the end of checkpoint 3: the span no longer inflates the same */
    cp3[17 + KILN_ZTOC_WINDOW - 7] ^= 0x55;
    expect_verify_fail(z, fd, size, "span 3");
    cp3[17 + KILN_ZTOC_WINDOW - 7] ^= 0x55;
    /* a span digest */
    snprintf(keep, sizeof(keep), "%s", z->span_digests[2]);
    z->span_digests[2][10] = z->span_digests[2][10] == 'a' ? 'b' : 'a';
    expect_verify_fail(z, fd, size, "span 2: digest");
    snprintf(z->span_digests[2], strlen(keep) + 1, "%s", keep);
    /* a file's data offset */
    z->files[1].offset += 512;
    expect_verify_fail(z, fd, size, "entry 1 ('app/small.txt'): data offset");
    z->files[1].offset -= 512;
    /* the layer's size */
    z->compressed_size++;
    expect_verify_fail(z, fd, size, "byte layer");
    z->compressed_size--;
    /* untouched again: passes */
    {
        kiln_error_t err = {0};
        assert_int_equal(kiln_ztoc_verify(z, fd, size, NULL, &err), 0);
    }
    kiln_ztoc_free(z);
    free(t.b);
    close(fd);
}

static void expect_decode_fail(const uint8_t *buf, size_t len, const char *words)
{
    kiln_ztoc_t *z = NULL;
    kiln_error_t err = {0};
    assert_int_equal(kiln_ztoc_decode(buf, len, &z, &err), -1);
    assert_null(z);
    if (strstr(err.msg, words) == NULL)
        fail_msg("'%s' does not say '%s'", err.msg, words);
}

static void test_decode_hostile(void **state)
{
    tarbuf_t t;
    uint64_t size;
    int fd = make_layer(&t, &size);
    kiln_ztoc_t *z = build(fd, size);
    kiln_error_t err = {0};
    uint8_t *buf, *bad;
    size_t len;
    uint32_t root;

    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    bad = kiln_xmalloc(len);
    /* truncated anywhere: refused, never read past the end */
    for (size_t cut = 0; cut < len; cut += len / 97 + 1)
        expect_decode_fail(buf, cut, "zTOC");
    /* the root offset past the end */
    memcpy(bad, buf, len);
    bad[0] = 0xff;
    bad[1] = 0xff;
    bad[2] = 0xff;
    bad[3] = 0x7f;
    expect_decode_fail(bad, len, "root: offset points past the end");
    /* the root table's vtable moved outside the buffer */
    memcpy(bad, buf, len);
    root = (uint32_t)bad[0] | ((uint32_t)bad[1] << 8);
    bad[root] = 0x00;
    bad[root + 1] = 0x00;
    bad[root + 2] = 0x00;
    bad[root + 3] = 0x80;
    expect_decode_fail(bad, len, "vtable");
    /* a wrong version */
    z->version[0] = '7';
    free(buf);
    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    expect_decode_fail(buf, len, "version '7.9' is not 0.9");
    z->version[0] = '0';
    /* checkpoint count that does not match the blob */
    z->checkpoints[0]++;
    free(buf);
    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    expect_decode_fail(buf, len, "compression_info.checkpoints: zinfo says");
    z->checkpoints[0]--;
    /* max_span_id disagreeing with the digests */
    z->max_span_id++;
    free(buf);
    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    expect_decode_fail(buf, len, "max_span_id");
    z->max_span_id--;
    /* a span digest that is not a digest */
    z->span_digests[0][0] = 'x';
    free(buf);
    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    expect_decode_fail(buf, len, "span_digests[0]");
    free(buf);
    free(bad);
    kiln_ztoc_free(z);
    free(t.b);
    close(fd);
}

static void test_tar_walker_hostile(void **state)
{
    kiln_ztoc_tar_t t = {0};
    kiln_error_t err = {0};
    uint8_t blk[512] = {0};

    /* a header with a bad checksum */
    memcpy(blk, "file", 4);
    memcpy(blk + 148, "0000000", 7);
    assert_int_equal(kiln_ztoc_tar_feed(&t, blk, sizeof(blk), &err), -1);
    assert_non_null(strstr(err.msg, "bad header checksum at byte 0"));
    kiln_ztoc_tar_clear(&t);
    /* a stream ending inside a header */
    memset(blk, 0, sizeof(blk));
    assert_int_equal(kiln_ztoc_tar_feed(&t, blk, 100, &err), 0);
    assert_int_equal(kiln_ztoc_tar_finish(&t, &err), -1);
    assert_non_null(strstr(err.msg, "ends inside an entry"));
    kiln_ztoc_tar_clear(&t);
}

/* gzip of buf in one member appended to out. */
static void gzip_member(const uint8_t *buf, size_t len, uint8_t **out, size_t *olen)
{
    z_stream zs = {0};
    *out = kiln_xrealloc(*out, *olen + len + 4096);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (uint8_t *)buf;
    zs.avail_in = (uInt)len;
    zs.next_out = *out + *olen;
    zs.avail_out = (uInt)(len + 4096);
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *olen += zs.total_out;
    deflateEnd(&zs);
}

/* A layer of two concatenated gzip members (parallel compressors write such): the offsets
 * run on across the members, and every span still inflates from its checkpoint. */
static void test_multi_member(void **state)
{
    tarbuf_t t;
    uint64_t size;
    int fd = make_layer(&t, &size), fd2 = memfd_create("layer2", MFD_CLOEXEC);
    uint8_t *gz = NULL;
    size_t len = 0, cut = t.len / 2 + 1234;
    kiln_ztoc_t *z;
    kiln_error_t err = {0};

    gzip_member(t.b, cut, &gz, &len);
    gzip_member(t.b + cut, t.len - cut, &gz, &len);
    assert_int_equal(write(fd2, gz, len), (ssize_t)len);
    z = build(fd2, len);
    assert_int_equal(z->n_files, 5);
    assert_int_equal(z->uncompressed_size, (int64_t)t.len);
    if (kiln_ztoc_verify(z, fd2, len, NULL, &err) < 0)
        fail_msg("verify: %s", err.msg);
    /* trailing garbage after the last member is refused */
    assert_int_equal(write(fd2, "junkjunk", 8), 8);
    kiln_ztoc_free(z);
    z = NULL;
    assert_int_equal(kiln_ztoc_build(fd2, len + 8, KILN_ZTOC_MIN_SPAN, "t", &z, &err), -1);
    assert_non_null(strstr(err.msg, "gzip stream is corrupt"));
    free(gz);
    free(t.b);
    close(fd);
    close(fd2);
}

static void test_not_gzip(void **state)
{
    int fd = memfd_create("plain", MFD_CLOEXEC);
    kiln_ztoc_t *z = NULL;
    kiln_error_t err = {0};
    uint8_t junk[4096] = {0};

    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    assert_int_equal(kiln_ztoc_build(fd, sizeof(junk), KILN_ZTOC_DEFAULT_SPAN, "t", &z, &err), -1);
    assert_non_null(strstr(err.msg, "gzip stream is corrupt"));
    assert_int_equal(kiln_ztoc_build(fd, sizeof(junk), 1000, "t", &z, &err), -1);
    assert_non_null(strstr(err.msg, "span size 1000"));
    close(fd);
}

/* KILN_ZTOC_SEED_DIR=DIR: writes the fuzz seeds there: a small layer and its zTOC (the
 * fuzz target's LEN + layer + zTOC form) and the layer's tar. */
static void write_seeds(const char *dir)
{
    tarbuf_t t;
    uint64_t size;
    size_t keep = big_len, len;
    kiln_ztoc_t *z;
    kiln_error_t err = {0};
    uint8_t *buf, *gz, n4[4];
    char path[4096];
    FILE *f;
    int fd;

    big_len = 3000;
    fd = make_layer(&t, &size);
    z = build(fd, size);
    assert_int_equal(kiln_ztoc_encode(z, &buf, &len, &err), 0);
    gz = kiln_xmalloc(size);
    assert_int_equal(pread(fd, gz, size, 0), (ssize_t)size);
    for (int i = 0; i < 4; i++)
        n4[i] = (uint8_t)(size >> (8 * i));
    snprintf(path, sizeof(path), "%s/layer-and-ztoc", dir);
    assert_non_null(f = fopen(path, "we"));
    assert_int_equal(fwrite(n4, 1, 4, f), 4);
    assert_int_equal(fwrite(gz, 1, size, f), size);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    snprintf(path, sizeof(path), "%s/tar-pax-links", dir);
    assert_non_null(f = fopen(path, "we"));
    assert_int_equal(fwrite(t.b, 1, t.len, f), t.len);
    fclose(f);
    free(gz);
    free(buf);
    kiln_ztoc_free(z);
    free(t.b);
    close(fd);
    big_len = keep;
}

int main(void)
{
    if (getenv("KILN_ZTOC_SEED_DIR"))
        write_seeds(getenv("KILN_ZTOC_SEED_DIR"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_toc),        cmocka_unit_test(test_checkpoint_math),
        cmocka_unit_test(test_roundtrip_verify), cmocka_unit_test(test_verify_tampered),
        cmocka_unit_test(test_decode_hostile),   cmocka_unit_test(test_tar_walker_hostile),
        cmocka_unit_test(test_not_gzip),         cmocka_unit_test(test_multi_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
