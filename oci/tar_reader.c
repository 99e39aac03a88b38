/* kiln — libarchive tar reading over kiln's decompressor. */
#include "oci/tar_reader.h"

#include <errno.h>
#include <stdlib.h>

#include "utils/mem.h"

#define READ_CHUNK (256 * 1024)

struct kiln_tar_reader {
    struct archive *a;
    kiln_decompressor_t *dec;
    kiln_block_fn block; /* or blocks of plain tar from here */
    void *block_ctx;
    unsigned char *buf;
    kiln_error_t err; /* error raised inside the read callback */
    int failed;
};

static la_ssize_t read_cb(struct archive *a, void *ctx, const void **buf)
{
    kiln_tar_reader_t *t = ctx;
    if (t->block != NULL) {
        size_t len = 0;
        const void *b = t->block(t->block_ctx, &len, &t->err);
        if (b == NULL) {
            t->failed = 1;
            archive_set_error(a, EIO, "%s", t->err.msg);
            return -1;
        }
        *buf = b;
        return (la_ssize_t)len;
    }
    ssize_t n = kiln_decompressor_read(t->dec, t->buf, READ_CHUNK, &t->err);
    if (n < 0) {
        t->failed = 1;
        archive_set_error(a, EIO, "%s", t->err.msg);
        return -1;
    }
    *buf = t->buf;
    return n;
}

/* Reports a libarchive failure: the decompressor's own error when it caused it. */
static int fail(kiln_tar_reader_t *t, const char *what, kiln_error_t *err)
{
    if (t->failed) {
        if (err)
            *err = t->err;
        return -1;
    }
    const char *m = archive_error_string(t->a);
    return kiln_error_set(err, 0, "%s: %s", what, m ? m : "invalid tar data");
}

static int tar_open(kiln_tar_reader_t *t, kiln_tar_reader_t **res, kiln_error_t *err);

int kiln_tar_reader_open(int fd, kiln_hash_fn raw_hash, kiln_hash_fn out_hash, void *hash_ctx,
                         kiln_tar_reader_t **res, kiln_error_t *err)
{
    kiln_decompressor_t *dec;
    if (kiln_decompressor_new(fd, raw_hash, hash_ctx, out_hash, hash_ctx, &dec, err) < 0)
        return -1;
    return kiln_tar_reader_open_dec(dec, res, err);
}

int kiln_tar_reader_open_dec(kiln_decompressor_t *dec, kiln_tar_reader_t **res, kiln_error_t *err)
{
    kiln_tar_reader_t *t = kiln_xzalloc(sizeof(*t));
    t->dec = dec;
    return tar_open(t, res, err);
}

int kiln_tar_reader_open_blocks(kiln_block_fn fn, void *ctx, kiln_tar_reader_t **res,
                                kiln_error_t *err)
{
    kiln_tar_reader_t *t = kiln_xzalloc(sizeof(*t));
    t->block = fn;
    t->block_ctx = ctx;
    return tar_open(t, res, err);
}

/* Opens the archive over t's input (freeing t on failure). */
static int tar_open(kiln_tar_reader_t *t, kiln_tar_reader_t **res, kiln_error_t *err)
{
    t->buf = kiln_xmalloc(READ_CHUNK);
    t->a = archive_read_new();
    if (t->a == NULL) {
        kiln_tar_reader_free(t);
        return kiln_error_set(err, ENOMEM, "cannot allocate a tar reader");
    }
    archive_read_support_format_tar(t->a);
    if (archive_read_open(t->a, t, NULL, read_cb, NULL) != ARCHIVE_OK) {
        fail(t, "not a tar stream", err);
        kiln_tar_reader_free(t);
        return -1;
    }
    *res = t;
    return 0;
}

int kiln_tar_reader_next(kiln_tar_reader_t *t, struct archive_entry **entry, kiln_error_t *err)
{
    int r = archive_read_next_header(t->a, entry);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r < ARCHIVE_WARN)
        return fail(t, "reading the tar stream", err);
    return 1;
}

ssize_t kiln_tar_reader_data(kiln_tar_reader_t *t, void *buf, size_t len, kiln_error_t *err)
{
    la_ssize_t n = archive_read_data(t->a, buf, len);
    if (n < 0)
        return fail(t, "reading entry data", err);
    return n;
}

int kiln_tar_reader_data_block(kiln_tar_reader_t *t, const void **buf, size_t *len, int64_t *offset,
                               kiln_error_t *err)
{
    la_int64_t off = 0;
    int r = archive_read_data_block(t->a, buf, len, &off);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r < ARCHIVE_WARN)
        return fail(t, "reading entry data", err);
    *offset = off;
    return 1;
}

int kiln_tar_reader_finish(kiln_tar_reader_t *t, kiln_error_t *err)
{
    if (t->dec != NULL)
        return kiln_decompressor_drain(t->dec, err);
    for (;;) {
        size_t len = 0;
        if (t->block(t->block_ctx, &len, err) == NULL)
            return -1;
        if (len == 0)
            return 0;
    }
}

kiln_compression_t kiln_tar_reader_format(const kiln_tar_reader_t *t)
{
    return t->dec != NULL ? kiln_decompressor_format(t->dec) : KILN_COMPRESSION_NONE;
}

void kiln_tar_reader_free(kiln_tar_reader_t *t)
{
    if (t == NULL)
        return;
    if (t->a != NULL)
        archive_read_free(t->a);
    kiln_decompressor_free(t->dec);
    free(t->buf);
    free(t);
}
