/* kiln — Go module zip dirhash (see dirhash.h). */
#include "utils/dirhash.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Files in one module zip (a Go toolchain has about 12,000; Go's own limit
 * on a module zip is 500 MB). */
#define FILES_MAX 100000
#define NAME_MAX_LEN 4096

/* True when every component of the path below the prefix is a plain name (no
 * "", "." or "..", no backslash): Go refuses other module zip names too. */
static bool plain_path(const char *p)
{
    if (*p == '\0' || strchr(p, '\\') != NULL)
        return false;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

typedef struct file_sum {
    char *name;
    char hex[2 * 32 + 1];
} file_sum_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const file_sum_t *)a)->name, ((const file_sum_t *)b)->name);
}

static void hex32(const unsigned char *md, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

/* Reads the zip's files into sums[] (name and sha256 of its data). */
static int read_sums(struct archive *in, const char *prefix, const char *what, file_sum_t *sums,
                     size_t *n, kiln_error_t *err)
{
    struct archive_entry *e;
    size_t pl = strlen(prefix);
    int r;

    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(e);
        EVP_MD_CTX *ctx;
        unsigned char md[32];
        const void *buf;
        size_t sz;
        la_int64_t off;

        if (archive_entry_filetype(e) == AE_IFDIR)
            continue;
        if (p == NULL || strncmp(p, prefix, pl) != 0 || strlen(p) > NAME_MAX_LEN ||
            strchr(p, '\n') != NULL || !plain_path(p + pl))
            return kiln_error_set(err, 0, "%s: the zip holds \"%.80s\", outside %s", what,
                                  p ? p : "", prefix);
        if (archive_entry_filetype(e) != AE_IFREG)
            return kiln_error_set(err, 0, "%s: %.200s is not a regular file", what, p);
        if (*n >= FILES_MAX)
            return kiln_error_set(err, 0, "%s: more than %d files", what, FILES_MAX);
        ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        while ((r = archive_read_data_block(in, &buf, &sz, &off)) == ARCHIVE_OK)
            EVP_DigestUpdate(ctx, buf, sz);
        EVP_DigestFinal_ex(ctx, md, NULL);
        EVP_MD_CTX_free(ctx);
        if (r != ARCHIVE_EOF)
            return kiln_error_set(err, 0, "%s: %s", what, archive_error_string(in));
        sums[*n].name = kiln_xstrdup(p);
        hex32(md, sums[*n].hex);
        (*n)++;
    }
    if (r != ARCHIVE_EOF)
        return kiln_error_set(err, 0, "%s: %s", what, archive_error_string(in));
    return 0;
}

int kiln_dirhash_zip(const void *data, size_t len, const char *prefix, const char *what, char **h1,
                     kiln_error_t *err)
{
    struct archive *in = archive_read_new();
    file_sum_t *sums = kiln_xzalloc(FILES_MAX * sizeof(*sums));
    size_t n = 0;
    kiln_buf_t b;
    unsigned char md[32], b64[64];
    unsigned int mdlen = 0;
    int ret = -1;

    kiln_buf_init(&b, 0);
    archive_read_support_format_zip_seekable(in);
    if (archive_read_open_memory(in, data, len) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "%s: not a zip: %s", what, archive_error_string(in));
        goto out;
    }
    if (read_sums(in, prefix, what, sums, &n, err) < 0)
        goto out;
    qsort(sums, n, sizeof(*sums), by_name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(sums[i - 1].name, sums[i].name) == 0) {
            kiln_error_set(err, 0, "%s: %.200s is in the zip twice", what, sums[i].name);
            goto out;
        }
        kiln_buf_appendf(&b, NULL, "%s  %s\n", sums[i].hex, sums[i].name);
    }
    EVP_Digest(b.data ? b.data : "", b.len, md, &mdlen, EVP_sha256(), NULL);
    EVP_EncodeBlock(b64, md, (int)mdlen);
    *h1 = kiln_xasprintf("h1:%s", b64);
    ret = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(sums[i].name);
    free(sums);
    kiln_buf_free(&b);
    archive_read_free(in);
    return ret;
}
