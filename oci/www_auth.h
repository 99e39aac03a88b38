/* kiln — parser for the HTTP WWW-Authenticate header (RFC 7235) as registries
 * send it:  Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"
 * A header may carry several challenges; kiln uses Bearer when offered, else Basic. */
#ifndef KILN_OCI_WWW_AUTH_H
#define KILN_OCI_WWW_AUTH_H

#include <stddef.h>

#include "utils/error.h"

#define KILN_WWW_AUTH_MAX 8192

typedef enum {
    KILN_WWW_AUTH_BASIC = 1,
    KILN_WWW_AUTH_BEARER = 2,
} kiln_www_auth_scheme_t;

typedef struct kiln_www_auth {
    kiln_www_auth_scheme_t scheme;
    char *realm;   /* may be NULL for Basic */
    char *service; /* NULL when absent */
    char *scope;   /* NULL when absent */
    char *error;   /* e.g. "insufficient_scope", NULL when absent */
} kiln_www_auth_t;

/* Parses a header value. Fails (EINVAL) on malformed syntax, on a header with
 * neither a Basic nor a Bearer challenge, and on a Bearer challenge without a
 * realm. `out` is written only on success. */
int kiln_www_auth_parse(const char *value, kiln_www_auth_t *out, kiln_error_t *err);

void kiln_www_auth_free(kiln_www_auth_t *a);

#endif
