/* kiln server — build secrets sealed for the job queue (see jobkey.h): AES-256-GCM under the
 * shared key file, the build id as additional data. */
#include "src/server/jobkey.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define KEY_LEN 32
#define IV_LEN 12
#define TAG_LEN 16
#define SEALED_MAX (4u << 20) /* bigger than any message a queue takes */

struct kiln_jobkey {
    unsigned char key[KEY_LEN];
};

/* Decodes base64 text (no whitespace) into a new buffer; -1 when it is not base64. */
static int b64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
    unsigned char *buf;
    int got;
    size_t pad = 0;

    if (n == 0 || n % 4 != 0 || n > SEALED_MAX)
        return -1;
    if (s[n - 1] == '=')
        pad++;
    if (s[n - 2] == '=')
        pad++;
    buf = kiln_xmalloc(n / 4 * 3 + 1);
    got = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    if (got < 0 || (size_t)got < pad) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = (size_t)got - pad;
    return 0;
}

static char *b64_encode(const unsigned char *p, size_t n)
{
    char *out = kiln_xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

int kiln_jobkey_load(const char *path, kiln_jobkey_t **out, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    unsigned char *raw = NULL;
    kiln_jobkey_t *k;
    size_t len, raw_len = 0;

    if (kiln_fs_read_file(path, 4096, &text, &len, err) < 0)
        return kiln_error_prefix(err, "job key file");
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    k = kiln_xzalloc(sizeof(*k));
    if (len == 2 * KEY_LEN && strspn(text, "0123456789abcdefABCDEF") >= len) {
        for (size_t i = 0; i < KEY_LEN; i++)
            k->key[i] = (unsigned char)(hexval((unsigned char)text[2 * i]) << 4 |
                                        hexval((unsigned char)text[2 * i + 1]));
    } else if (b64_decode(text, len, &raw, &raw_len) == 0 && raw_len == KEY_LEN) {
        memcpy(k->key, raw, KEY_LEN);
    } else {
        OPENSSL_cleanse(text, len);
        if (raw)
            OPENSSL_cleanse(raw, raw_len);
        free(raw);
        free(k);
        return kiln_error_set(err, 0,
                              "job key file %s: want 32 bytes as 64 hex digits or base64 "
                              "(e.g. openssl rand -hex 32)",
                              path);
    }
    OPENSSL_cleanse(text, len);
    if (raw)
        OPENSSL_cleanse(raw, raw_len);
    free(raw);
    *out = k;
    return 0;
}

void kiln_jobkey_free(kiln_jobkey_t *k)
{
    if (k == NULL)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

int kiln_jobkey_seal(const kiln_jobkey_t *k, const char *aad, const void *plain, size_t len,
                     json_t **out, kiln_error_t *err)
{
    unsigned char iv[IV_LEN];
    unsigned char *ct;
    _cleanup_free_ char *iv64 = NULL, *ct64 = NULL;
    EVP_CIPHER_CTX *c;
    int n = 0, fin = 0, ok;

    if (len > SEALED_MAX)
        return kiln_error_set(err, 0, "secrets: %zu bytes is too much to seal", len);
    if (RAND_bytes(iv, IV_LEN) != 1)
        return kiln_error_set(err, 0, "secrets: no random bytes for the IV");
    ct = kiln_xmalloc(len + TAG_LEN);
    c = EVP_CIPHER_CTX_new();
    ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
         EVP_EncryptInit_ex(c, NULL, NULL, k->key, iv) == 1 &&
         EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
         EVP_EncryptUpdate(c, ct, &n, plain, (int)len) == 1 &&
         EVP_EncryptFinal_ex(c, ct + n, &fin) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, ct + len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(ct);
        return kiln_error_set(err, 0, "secrets: AES-256-GCM encryption failed");
    }
    iv64 = b64_encode(iv, IV_LEN);
    ct64 = b64_encode(ct, len + TAG_LEN);
    free(ct);
    *out = json_pack("{s:s,s:s,s:s}", "alg", "A256GCM", "iv", iv64, "ct", ct64);
    return 0;
}

int kiln_jobkey_open(const kiln_jobkey_t *k, const char *aad, json_t *sealed, char **plain,
                     size_t *len, kiln_error_t *err)
{
    json_t *ivj = json_object_get(sealed, "iv"), *ctj = json_object_get(sealed, "ct");
    const char *alg = json_string_value(json_object_get(sealed, "alg"));
    unsigned char *iv = NULL, *ct = NULL;
    size_t iv_len = 0, ct_len = 0;
    char *pt = NULL;
    EVP_CIPHER_CTX *c = NULL;
    int n = 0, fin = 0, ok = 0;

    if (alg == NULL || strcmp(alg, "A256GCM") != 0 || !json_is_string(ivj) ||
        !json_is_string(ctj) ||
        b64_decode(json_string_value(ivj), json_string_length(ivj), &iv, &iv_len) < 0 ||
        iv_len != IV_LEN ||
        b64_decode(json_string_value(ctj), json_string_length(ctj), &ct, &ct_len) < 0 ||
        ct_len < TAG_LEN) {
        kiln_error_set(err, 0, "sealed secrets: not an A256GCM object with iv and ct");
        goto out;
    }
    ct_len -= TAG_LEN;
    pt = kiln_xmalloc(ct_len + 1);
    c = EVP_CIPHER_CTX_new();
    ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) == 1 &&
         EVP_DecryptInit_ex(c, NULL, NULL, k->key, iv) == 1 &&
         EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1 &&
         EVP_DecryptUpdate(c, (unsigned char *)pt, &n, ct, (int)ct_len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, ct + ct_len) == 1 &&
         EVP_DecryptFinal_ex(c, (unsigned char *)pt + n, &fin) == 1;
    if (!ok) {
        kiln_error_set(err, 0,
                       "sealed secrets do not open: another job key, another job's secrets, "
                       "or they were changed");
        OPENSSL_cleanse(pt, ct_len);
        goto out;
    }
    pt[ct_len] = '\0';
    *plain = steal_pointer(&pt);
    *len = ct_len;
out:
    EVP_CIPHER_CTX_free(c);
    free(iv);
    free(ct);
    free(pt);
    return ok ? 0 : -1;
}
