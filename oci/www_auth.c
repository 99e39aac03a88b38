/* kiln — WWW-Authenticate parsing.
 *
 * Grammar (RFC 7235 §4.1, simplified the way registries use it):
 *   challenges = challenge *( "," challenge )
 *   challenge  = scheme [ 1*SP ( token68 / param *( "," param ) ) ]
 *   param      = token BWS "=" BWS ( token / quoted-string )
 * A new challenge starts where a token is not followed by "=". */
#include "oci/www_auth.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

typedef struct {
    const char *p;
} cursor_t;

static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_ws(cursor_t *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
}

/* Reads a token; returns its length (0 when none). */
static size_t read_token(cursor_t *c, const char **start)
{
    *start = c->p;
    while (is_tchar(*c->p))
        c->p++;
    return (size_t)(c->p - *start);
}

/* Reads a quoted-string (cursor on the opening quote) into a new string. */
static int read_quoted(cursor_t *c, char **out, kiln_error_t *err)
{
    kiln_buf_t b;
    kiln_buf_init(&b, KILN_WWW_AUTH_MAX);
    c->p++;
    for (;;) {
        char ch = *c->p;
        if (ch == '\0') {
            kiln_buf_free(&b);
            return kiln_error_set(err, 0, "unterminated quoted string");
        }
        if (ch == '"') {
            c->p++;
            break;
        }
        if (ch == '\\') {
            c->p++;
            ch = *c->p;
            if (ch == '\0') {
                kiln_buf_free(&b);
                return kiln_error_set(err, 0, "unterminated quoted string");
            }
        }
        if ((unsigned char)ch < 0x20 && ch != '\t') {
            kiln_buf_free(&b);
            return kiln_error_set(err, 0, "control character in quoted string");
        }
        if (kiln_buf_append(&b, &ch, 1, err) < 0) {
            kiln_buf_free(&b);
            return -1;
        }
        c->p++;
    }
    if (b.data == NULL)
        *out = kiln_xstrdup("");
    else
        *out = kiln_buf_steal(&b, NULL);
    return 0;
}

static void set_param(kiln_www_auth_t *a, const char *name, size_t n, char *value)
{
    char **slot = NULL;
    if (n == 5 && strncasecmp(name, "realm", 5) == 0)
        slot = &a->realm;
    else if (n == 7 && strncasecmp(name, "service", 7) == 0)
        slot = &a->service;
    else if (n == 5 && strncasecmp(name, "scope", 5) == 0)
        slot = &a->scope;
    else if (n == 5 && strncasecmp(name, "error", 5) == 0)
        slot = &a->error;
    if (slot == NULL || *slot != NULL) {
        free(value); /* unknown or repeated parameter: first one wins */
        return;
    }
    *slot = value;
}

void kiln_www_auth_free(kiln_www_auth_t *a)
{
    if (a == NULL)
        return;
    free(a->realm);
    free(a->service);
    free(a->scope);
    free(a->error);
    memset(a, 0, sizeof(*a));
}

static void www_auth_cleanup(kiln_www_auth_t *a)
{
    kiln_www_auth_free(a);
}

int kiln_www_auth_parse(const char *value, kiln_www_auth_t *out, kiln_error_t *err)
{
    _cleanup_(www_auth_cleanup) kiln_www_auth_t best = {0};
    _cleanup_(www_auth_cleanup) kiln_www_auth_t cur = {0};
    cursor_t c = {value};
    int have_cur = 0;

    if (value == NULL)
        return kiln_error_set(err, 0, "malformed WWW-Authenticate header: missing");
    if (strlen(value) > KILN_WWW_AUTH_MAX)
        return kiln_error_set(err, 0, "malformed WWW-Authenticate header: too long");

        /* Commits the challenge being read: the first Bearer wins, else the first Basic. */
#define COMMIT()                                                                                   \
    do {                                                                                           \
        if (have_cur && cur.scheme != 0 &&                                                         \
            (best.scheme == 0 ||                                                                   \
             (best.scheme == KILN_WWW_AUTH_BASIC && cur.scheme == KILN_WWW_AUTH_BEARER))) {        \
            kiln_www_auth_free(&best);                                                             \
            best = cur;                                                                            \
            memset(&cur, 0, sizeof(cur));                                                          \
        }                                                                                          \
        kiln_www_auth_free(&cur);                                                                  \
        have_cur = 0;                                                                              \
    } while (0)

    for (;;) {
        const char *tok;
        size_t n;

        skip_ws(&c);
        while (*c.p == ',') {
            c.p++;
            skip_ws(&c);
        }
        if (*c.p == '\0')
            break;
        n = read_token(&c, &tok);
        if (n == 0)
            return kiln_error_set(
                err, EINVAL, "malformed WWW-Authenticate header: unexpected '%c' at offset %zu",
                *c.p, (size_t)(c.p - value));
        skip_ws(&c);
        if (*c.p == '=' && have_cur) {
            /* auth-param of the current challenge, or a token68 ending in '=' */
            _cleanup_free_ char *v = NULL;
            c.p++;
            skip_ws(&c);
            if (*c.p == '"') {
                if (read_quoted(&c, &v, err) < 0)
                    return kiln_error_prefix(err, "malformed WWW-Authenticate header");
            } else {
                const char *vs;
                size_t vn = read_token(&c, &vs);
                while (*c.p == '=') { /* token68 padding */
                    c.p++;
                    vn++;
                }
                v = kiln_xstrndup(vs, vn);
            }
            set_param(&cur, tok, n, steal_pointer(&v));
            skip_ws(&c);
            if (*c.p != ',' && *c.p != '\0')
                return kiln_error_set(
                    err, EINVAL, "malformed WWW-Authenticate header: expected ',' at offset %zu",
                    (size_t)(c.p - value));
            continue;
        }
        if (*c.p == '=')
            return kiln_error_set(err, 0,
                                  "malformed WWW-Authenticate header: parameter before scheme");
        /* a new challenge */
        COMMIT();
        have_cur = 1;
        if (n == 6 && strncasecmp(tok, "bearer", 6) == 0)
            cur.scheme = KILN_WWW_AUTH_BEARER;
        else if (n == 5 && strncasecmp(tok, "basic", 5) == 0)
            cur.scheme = KILN_WWW_AUTH_BASIC;
        else
            cur.scheme = 0; /* a scheme we do not speak: parse and ignore */
    }
    COMMIT();
#undef COMMIT

    if (best.scheme == 0)
        return kiln_error_set(err, 0,
                              "malformed WWW-Authenticate header: no Basic or Bearer challenge");
    if (best.scheme == KILN_WWW_AUTH_BEARER && (best.realm == NULL || best.realm[0] == '\0'))
        return kiln_error_set(err, 0,
                              "malformed WWW-Authenticate header: Bearer challenge without realm");
    *out = best;
    memset(&best, 0, sizeof(best));
    return 0;
}
