/* kiln — OpenSSL's libcrypto loaded on first use (utils/lazylib).
 *
 * kiln is not linked against libcrypto: these definitions of the functions
 * kiln calls (digests, HMAC, AES-GCM, base64, Ed25519 checks, random bytes,
 * PEM) load libcrypto.so.3 the first time one runs and forward to it. Its
 * loading and relocation cost every command 0.6 ms of CPU at start-up,
 * `kiln run` and each build step's sandbox included, which hash nothing.
 *
 * Callers take these functions as infallible (an unchecked EVP_Digest would
 * leave a garbage digest), so a missing library ends kiln naming it, as the
 * dynamic loader would have at start-up (KILN_LAZYLIB_DEFINE_REQUIRED). */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <string.h>

#include "utils/lazylib.h"

typedef EVP_CIPHER_CTX CC;
typedef unsigned char U;

#define CRYPTO_FUNCS(F, V)                                                                         \
    F(int, CRYPTO_memcmp, (const void *a, const void *b, size_t n), (a, b, n), 0)                  \
    F(const char *, OpenSSL_version, (int type), (type), 0)                                        \
    F(int, RAND_bytes, (U * buf, int n), (buf, n), 0)                                              \
    F(const EVP_MD *, EVP_md5, (void), (), 0)                                                      \
    F(const EVP_MD *, EVP_sha256, (void), (), 0)                                                   \
    F(EVP_MD *, EVP_MD_fetch, (OSSL_LIB_CTX * l, const char *alg, const char *props),              \
      (l, alg, props), 0)                                                                          \
    F(const EVP_MD *, EVP_sha512, (void), (), 0)                                                   \
    F(const EVP_MD *, EVP_sha1, (void), (), 0)                                                     \
    F(const EVP_MD *, EVP_sha224, (void), (), 0)                                                   \
    F(const EVP_CIPHER *, EVP_aes_256_gcm, (void), (), 0)                                          \
    F(EVP_MD_CTX *, EVP_MD_CTX_new, (void), (), 0)                                                 \
    V(EVP_MD_CTX_free, (EVP_MD_CTX * c), (c))                                                      \
    F(int, EVP_DigestInit_ex, (EVP_MD_CTX * c, const EVP_MD *md, ENGINE *e), (c, md, e), 0)        \
    F(int, EVP_DigestUpdate, (EVP_MD_CTX * c, const void *d, size_t n), (c, d, n), 0)              \
    F(int, EVP_DigestFinal_ex, (EVP_MD_CTX * c, U * md, unsigned int *n), (c, md, n), 0)           \
    F(int, EVP_Digest,                                                                             \
      (const void *d, size_t n, U *md, unsigned int *size, const EVP_MD *t, ENGINE *e),            \
      (d, n, md, size, t, e), 0)                                                                   \
    F(U *, SHA256, (const U *d, size_t n, U *md), (d, n, md), 0)                                   \
    F(U *, HMAC,                                                                                   \
      (const EVP_MD *md, const void *key, int klen, const U *d, size_t n, U *out,                  \
       unsigned int *olen),                                                                        \
      (md, key, klen, d, n, out, olen), 0)                                                         \
    F(EVP_MAC *, EVP_MAC_fetch, (OSSL_LIB_CTX * l, const char *alg, const char *props),            \
      (l, alg, props), 0)                                                                          \
    V(EVP_MAC_free, (EVP_MAC * m), (m))                                                            \
    F(EVP_MAC_CTX *, EVP_MAC_CTX_new, (EVP_MAC * m), (m), 0)                                       \
    V(EVP_MAC_CTX_free, (EVP_MAC_CTX * c), (c))                                                    \
    F(int, EVP_MAC_init, (EVP_MAC_CTX * c, const U *key, size_t klen, const OSSL_PARAM p[]),       \
      (c, key, klen, p), 0)                                                                        \
    F(int, EVP_MAC_update, (EVP_MAC_CTX * c, const U *d, size_t n), (c, d, n), 0)                  \
    F(int, EVP_MAC_final, (EVP_MAC_CTX * c, U * out, size_t * olen, size_t size),                  \
      (c, out, olen, size), 0)                                                                     \
    F(OSSL_PARAM, OSSL_PARAM_construct_end, (void), (), (OSSL_PARAM){0})                           \
    F(OSSL_PARAM, OSSL_PARAM_construct_utf8_string, (const char *key, char *buf, size_t n),        \
      (key, buf, n), (OSSL_PARAM){0})                                                              \
    F(CC *, EVP_CIPHER_CTX_new, (void), (), 0)                                                     \
    V(EVP_CIPHER_CTX_free, (CC * c), (c))                                                          \
    F(int, EVP_CIPHER_CTX_ctrl, (CC * c, int type, int arg, void *ptr), (c, type, arg, ptr), 0)    \
    F(int, EVP_EncryptInit_ex,                                                                     \
      (CC * c, const EVP_CIPHER *ci, ENGINE *e, const U *key, const U *iv), (c, ci, e, key, iv),   \
      0)                                                                                           \
    F(int, EVP_EncryptUpdate, (CC * c, U * out, int *olen, const U *in, int n),                    \
      (c, out, olen, in, n), 0)                                                                    \
    F(int, EVP_EncryptFinal_ex, (CC * c, U * out, int *olen), (c, out, olen), 0)                   \
    F(int, EVP_DecryptInit_ex,                                                                     \
      (CC * c, const EVP_CIPHER *ci, ENGINE *e, const U *key, const U *iv), (c, ci, e, key, iv),   \
      0)                                                                                           \
    F(int, EVP_DecryptUpdate, (CC * c, U * out, int *olen, const U *in, int n),                    \
      (c, out, olen, in, n), 0)                                                                    \
    F(int, EVP_DecryptFinal_ex, (CC * c, U * out, int *olen), (c, out, olen), 0)                   \
    F(int, EVP_EncodeBlock, (U * t, const U *f, int n), (t, f, n), 0)                              \
    F(int, EVP_DecodeBlock, (U * t, const U *f, int n), (t, f, n), 0)                              \
    F(EVP_PKEY *, EVP_PKEY_new_raw_public_key, (int type, ENGINE *e, const U *pub, size_t n),      \
      (type, e, pub, n), 0)                                                                        \
    V(EVP_PKEY_free, (EVP_PKEY * k), (k))                                                          \
    F(int, EVP_DigestVerifyInit,                                                                   \
      (EVP_MD_CTX * c, EVP_PKEY_CTX * *pc, const EVP_MD *t, ENGINE *e, EVP_PKEY *k),               \
      (c, pc, t, e, k), 0)                                                                         \
    F(int, EVP_DigestVerify, (EVP_MD_CTX * c, const U *sig, size_t slen, const U *tbs, size_t n),  \
      (c, sig, slen, tbs, n), 0)                                                                   \
    F(X509 *, PEM_read_X509, (FILE * f, X509 * *x, pem_password_cb * cb, void *u), (f, x, cb, u),  \
      0)                                                                                           \
    V(X509_free, (X509 * x), (x))                                                                  \
    F(int, X509_STORE_add_cert, (X509_STORE * s, X509 * x), (s, x), 0)                             \
    F(X509 *, PEM_read_X509_AUX, (FILE * f, X509 * *x, pem_password_cb * cb, void *u),             \
      (f, x, cb, u), 0)                                                                            \
    F(EVP_PKEY *, PEM_read_PrivateKey, (FILE * f, EVP_PKEY * *x, pem_password_cb * cb, void *u),   \
      (f, x, cb, u), 0)                                                                            \
    V(ERR_clear_error, (void), ())

#define CRYPTO_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(CRYPTO_FUNCS, CRYPTO_HANDWRITTEN, "libcrypto.so.3",
                             "for SHA-256 digests, HMAC, AES-GCM, Ed25519 and base64")
KILN_LAZYLIB_PRELOADER(crypto)

/* Wiping memory needs no library: libc's explicit_bzero is the same promise
 * (not optimised away), and freeing a credential never loads libcrypto. */
void OPENSSL_cleanse(void *p, size_t n)
{
    explicit_bzero(p, n);
}
