/* kiln — OpenSSL's libssl loaded on first use (utils/lazylib): kiln calls
 * three of its functions, from libcurl's SSL context callback (a client
 * certificate, extra CA certificates), by when libcurl has loaded it. Missing,
 * kiln ends naming it, as the loader would have (see utils/crypto_lazy.c). */
#include <openssl/ssl.h>

#include "utils/lazylib.h"

#define SSL_FUNCS(F, V)                                                                            \
    F(X509_STORE *, SSL_CTX_get_cert_store, (const SSL_CTX *c), (c), 0)                            \
    F(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX * c, const char *f, int type), (c, f, type), 0)   \
    F(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX * c, const char *f), (c, f), 0)

#define SSL_HANDWRITTEN(F, V)

KILN_LAZYLIB_DEFINE_REQUIRED(SSL_FUNCS, SSL_HANDWRITTEN, "libssl.so.3",
                             "for TLS client certificates and extra CAs of registries")
KILN_LAZYLIB_PRELOADER(ssl)
