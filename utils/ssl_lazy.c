/* kiln — OpenSSL's libssl loaded on first use (utils/lazylib): kiln calls
 * a few of its functions (SSL_CTX_ctrl through the chain macros), from libcurl's
 * SSL context callback (a client certificate, extra CA certificates), by when
 * libcurl has loaded it. Missing,
 * kiln ends naming it, as the loader would have (see utils/crypto_lazy.c). */
#include <openssl/ssl.h>

#include "utils/lazylib.h"

#define SSL_FUNCS(F, V)                                                                            \
    F(X509_STORE *, SSL_CTX_get_cert_store, (const SSL_CTX *c), (c), 0)                            \
    F(int, SSL_CTX_use_certificate, (SSL_CTX * c, X509 * x), (c, x), 0)                            \
    F(int, SSL_CTX_use_PrivateKey, (SSL_CTX * c, EVP_PKEY * k), (c, k), 0)                         \
    F(long, SSL_CTX_ctrl, (SSL_CTX * c, int cmd, long larg, void *parg), (c, cmd, larg, parg), 0)

#define SSL_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(SSL_FUNCS, SSL_HANDWRITTEN, "libssl.so.3",
                             "for TLS client certificates and extra CAs of registries")
KILN_LAZYLIB_PRELOADER(ssl)
