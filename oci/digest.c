/* kiln — sha256 digests and the streaming hasher (OpenSSL EVP). */
#include "oci/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Copies a printable, bounded prefix of untrusted input for error messages. */
static void quote_prefix(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < n && i < 80; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    buf[i] = '\0';
}

/* Checks 64 lowercase hex digits followed by the end of the string. */
static int valid_hex64(const char *hex)
{
    size_t i;
    for (i = 0; i < 64; i++) {
        char c = hex[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return hex[64] == '\0';
}

int kiln_digest_parse_hex(const char *hex, kiln_digest_t *out, kiln_error_t *err)
{
    char q[96];

    if (hex == NULL)
        return kiln_error_set(err, 0, "missing digest");
    if (!valid_hex64(hex)) {
        quote_prefix(hex, q, sizeof(q));
        return kiln_error_set(err, 0, "invalid sha256 hex '%s': expected 64 lowercase hex digits",
                              q);
    }
    memcpy(out->hex, hex, 65);
    return 0;
}

int kiln_digest_parse(const char *s, kiln_digest_t *out, kiln_error_t *err)
{
    char q[96];
    const char *colon;

    if (s == NULL)
        return kiln_error_set(err, 0, "missing digest");
    quote_prefix(s, q, sizeof(q));
    colon = strchr(s, ':');
    if (colon == NULL)
        return kiln_error_set(err, 0, "invalid digest '%s': expected sha256:<64 hex>", q);
    if ((size_t)(colon - s) != 6 || memcmp(s, "sha256", 6) != 0)
        return kiln_error_set(err, 0, "invalid digest '%s': unsupported algorithm (only sha256)",
                              q);
    if (!valid_hex64(colon + 1))
        return kiln_error_set(err, 0,
                              "invalid digest '%s': expected 64 lowercase hex digits after "
                              "'sha256:'",
                              q);
    memcpy(out->hex, colon + 1, 65);
    return 0;
}

const char *kiln_digest_str(const kiln_digest_t *d, char buf[KILN_DIGEST_STR_MAX])
{
    memcpy(buf, "sha256:", 7);
    memcpy(buf + 7, d->hex, 65);
    return buf;
}

int kiln_digest_equal(const kiln_digest_t *a, const kiln_digest_t *b)
{
    return memcmp(a->hex, b->hex, 64) == 0;
}

/* Formats a 32-byte SHA-256 value as lowercase hex. */
static void md_to_hex(const unsigned char *md, kiln_digest_t *out)
{
    static const char hexd[] = "0123456789abcdef";
    for (unsigned int i = 0; i < 32; i++) {
        out->hex[2 * i] = hexd[md[i] >> 4];
        out->hex[2 * i + 1] = hexd[md[i] & 15];
    }
    out->hex[64] = '\0';
}

int kiln_sha256_init(kiln_sha256_t *h, kiln_error_t *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL)
        return kiln_error_set(err, ENOMEM, "sha256: cannot allocate digest context");
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return kiln_error_set(err, 0, "sha256: EVP_DigestInit_ex failed");
    }
    h->ctx = ctx;
    h->bytes = 0;
    return 0;
}

void kiln_sha256_update(kiln_sha256_t *h, const void *buf, size_t len)
{
    if (len == 0)
        return;
    EVP_DigestUpdate((EVP_MD_CTX *)h->ctx, buf, len);
    h->bytes += len;
}

void kiln_sha256_final(kiln_sha256_t *h, kiln_digest_t *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_DigestFinal_ex((EVP_MD_CTX *)h->ctx, md, &n);
    md_to_hex(md, out);
    kiln_sha256_dispose(h);
}

void kiln_sha256_dispose(kiln_sha256_t *h)
{
    if (h->ctx != NULL)
        EVP_MD_CTX_free((EVP_MD_CTX *)h->ctx);
    h->ctx = NULL;
}

static int sha256_sink_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    kiln_sha256_update(ctx, buf, len);
    return 0;
}

kiln_sink_t kiln_sha256_sink(kiln_sha256_t *h)
{
    kiln_sink_t s = {sha256_sink_write, h};
    return s;
}

void kiln_digest_bytes(const void *buf, size_t len, kiln_digest_t *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
    md_to_hex(md, out);
}

int kiln_digest_fd(int fd, kiln_digest_t *out, uint64_t *size, kiln_error_t *err)
{
    kiln_sha256_t h;
    kiln_sink_t sink = kiln_sha256_sink(&h);

    if (kiln_sha256_init(&h, err) < 0)
        return -1;
    if (kiln_sink_copy_fd(&sink, fd, err) < 0) {
        kiln_sha256_dispose(&h);
        return kiln_error_prefix(err, "hashing");
    }
    if (size != NULL)
        *size = h.bytes;
    kiln_sha256_final(&h, out);
    return 0;
}
