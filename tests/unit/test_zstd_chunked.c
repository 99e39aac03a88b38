/* Unit tests for oci/zstd_chunked: a tar (directory, files, an empty file, a link, a hard link,
 * a PAX long name) written as zstd:chunked and read back: the whole blob inflates to the tar
 * (skippable frames ignored), the annotations match the footer, every file's frame inflates
 * alone to its content; a changed byte, a wrong annotation, a cut blob are refused by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "oci/zstd_chunked.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* One ustar header (+ content and padding) appended to b. */
static void tar_add(kiln_buf_t *b, const char *name, char type, const char *link, const void *data,
                    size_t size)
{
    char h[512] = {0};
    unsigned sum = 0;
    snprintf(h, 100, "%s", name);
    snprintf(h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
    snprintf(h + 108, 8, "%07o", 0);
    snprintf(h + 116, 8, "%07o", 0);
    snprintf(h + 124, 12, "%011zo", size);
    snprintf(h + 136, 12, "%011o", 1700000000);
    h[156] = type;
    if (link)
        snprintf(h + 157, 100, "%s", link);
    memcpy(h + 257,
           "ustar\0"
           "00",
           8);
    memset(h + 148, ' ', 8);
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    kiln_buf_append(b, h, 512, NULL);
    if (size) {
        static const char zero[512];
        kiln_buf_append(b, data, size, NULL);
        kiln_buf_append(b, zero, (512 - size % 512) % 512, NULL);
    }
}

static kiln_buf_t make_tar(void)
{
    kiln_buf_t b;
    char big_name[300];
    char pax[400];
    size_t big = 3u << 20;
    char *data = kiln_xmalloc(big);
    static const char zero[1024];
    uint32_t x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1103515245 + 12345;
        data[i] = (char)((i % 7 == 0) ? (int)(x >> 16) : 'a' + (int)(i % 13));
    }
    kiln_buf_init(&b, 0);
    tar_add(&b, "d/", '5', NULL, NULL, 0);
    tar_add(&b, "d/big", '0', NULL, data, big);
    tar_add(&b, "d/empty", '0', NULL, NULL, 0);
    tar_add(&b, "d/link", '2', "big", NULL, 0);
    tar_add(&b, "d/hard", '1', "d/big", NULL, 0);
    memset(big_name, 'n', sizeof(big_name) - 1);
    big_name[sizeof(big_name) - 1] = '\0';
    memcpy(big_name, "d/", 2);
    /* "NNN path=...\n": 299 + 7 bytes of " path=" and "\n" + 3 digits = 309 */
    snprintf(pax, sizeof(pax), "%d path=%s\n", 309, big_name);
    tar_add(&b, "PaxHeaders/x", 'x', NULL, pax, strlen(pax));
    tar_add(&b, "d/short-name", '0', NULL, "hello\n", 6);
    kiln_buf_append(&b, zero, sizeof(zero), NULL);
    free(data);
    return b;
}

static int write_blob(const kiln_buf_t *tar, kiln_zstd_chunked_info_t *info)
{
    int tfd = memfd_create("tar", MFD_CLOEXEC), bfd = memfd_create("blob", MFD_CLOEXEC);
    kiln_sink_t sink = kiln_sink_fd(&bfd);
    kiln_error_t err = {0};
    assert_int_equal(write(tfd, tar->data, tar->len), (ssize_t)tar->len);
    lseek(tfd, 0, SEEK_SET);
    assert_int_equal(kiln_zstd_chunked_write_fd(tfd, 3, &sink, info, &err), 0);
    close(tfd);
    return bfd;
}

static void test_round_trip(void **state)
{
    kiln_buf_t tar = make_tar();
    kiln_zstd_chunked_info_t info;
    int fd = write_blob(&tar, &info);
    kiln_digest_t want;
    kiln_error_t err = {0};
    _cleanup_free_ char *ck = NULL;
    _cleanup_free_ char *pos = NULL;
    json_t *toc = NULL, *e;
    size_t i, regs = 0;
    (void)state;
    kiln_digest_bytes(tar.data, tar.len, &want);
    assert_true(kiln_digest_equal(&want, &info.diff_id));
    assert_int_equal((uint64_t)lseek(fd, 0, SEEK_END), info.size);
    /* a plain zstd reader gets the tar back (the skippable frames are skipped) */
    {
        char *blob = kiln_xmalloc(info.size), *outb = kiln_xmalloc(tar.len + 1);
        ZSTD_DCtx *d = ZSTD_createDCtx();
        ZSTD_inBuffer in = {blob, info.size, 0};
        ZSTD_outBuffer o = {outb, tar.len + 1, 0};
        assert_int_equal(pread(fd, blob, info.size, 0), (ssize_t)info.size);
        while (in.pos < in.size)
            assert_false(ZSTD_isError(ZSTD_decompressStream(d, &o, &in)));
        assert_int_equal(o.pos, tar.len);
        assert_memory_equal(outb, tar.data, tar.len);
        ZSTD_freeDCtx(d);
        free(blob);
        free(outb);
    }
    kiln_zstd_chunked_annotations(&info, &ck, &pos);
    assert_int_equal(kiln_zstd_chunked_verify(fd, info.size, ck, pos, &toc, &err), 0);
    assert_int_equal(json_array_size(json_object_get(toc, "entries")), 6);
    json_array_foreach(json_object_get(toc, "entries"), i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        const char *n = json_string_value(json_object_get(e, "name"));
        if (strcmp(t, "reg") == 0 && json_integer_value(json_object_get(e, "size")) > 0)
            regs++;
        if (strcmp(n, "d/link") == 0)
            assert_string_equal(json_string_value(json_object_get(e, "linkName")), "big");
        if (strcmp(n, "d/hard") == 0)
            assert_string_equal(t, "hardlink");
        if (i == 5) /* d/short-name under its PAX path */
            assert_int_equal(strlen(n), 299);
    }
    assert_int_equal(regs, 2);
    json_decref(toc);

    /* wrong annotations */
    kiln_error_clear(&err);
    assert_int_equal(kiln_zstd_chunked_verify(fd, info.size, "sha256:00", pos, NULL, &err), -1);
    assert_non_null(strstr(err.msg, KILN_ZSTD_CHUNKED_CHECKSUM));
    kiln_error_clear(&err);
    assert_int_equal(kiln_zstd_chunked_verify(fd, info.size, ck, "1:2:3:1", NULL, &err), -1);
    assert_non_null(strstr(err.msg, KILN_ZSTD_CHUNKED_POSITION));
    /* cut short: no footer */
    kiln_error_clear(&err);
    assert_int_equal(kiln_zstd_chunked_verify(fd, info.size - 1, NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "footer"));
    /* one byte of d/big's frame changed: named */
    {
        unsigned char c;
        assert_int_equal(pread(fd, &c, 1, 2000), 1);
        c ^= 0x55;
        assert_int_equal(pwrite(fd, &c, 1, 2000), 1);
        kiln_error_clear(&err);
        assert_int_equal(kiln_zstd_chunked_verify(fd, info.size, ck, pos, NULL, &err), -1);
        assert_non_null(strstr(err.msg, "d/big"));
    }
    close(fd);
    kiln_buf_free(&tar);
}

static void test_not_chunked(void **state)
{
    int fd = memfd_create("x", MFD_CLOEXEC);
    char junk[200];
    kiln_error_t err = {0};
    (void)state;
    memset(junk, 'x', sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    assert_int_equal(kiln_zstd_chunked_verify(fd, sizeof(junk), NULL, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no zstd:chunked footer"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_not_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
