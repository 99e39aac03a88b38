/* kiln — Python version constraints (see pyspec.h). */
#include "handlers/pyspec.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define PARTS 4

typedef struct ver {
    long n[PARTS];
    int len;       /* release numbers given */
    bool wildcard; /* ended in ".*" */
} ver_t;

/* Reads "3", "3.11", "3.11.2", "3.12.*", "v3.11", "3.11rc1" (the suffix ignored) at *s.
 * Returns 0 and moves *s past it, or -1. */
static int read_ver(const char **s, ver_t *v)
{
    const char *p = *s;

    memset(v, 0, sizeof(*v));
    if (*p == 'v' || *p == 'V')
        p++;
    for (;;) {
        char *end;
        if (*p == '*' && v->len > 0) {
            v->wildcard = true;
            p++;
            break;
        }
        if (!isdigit((unsigned char)*p))
            return -1;
        if (v->len < PARTS) {
            long x = strtol(p, &end, 10);
            if (end - p > 6)
                return -1;
            v->n[v->len] = x;
        } else {
            strtol(p, &end, 10);
        }
        v->len++;
        p = end;
        if (*p != '.')
            break;
        p++;
    }
    /* pre/post/dev/local suffixes: letters, digits, '.', '-', '+', '_' */
    while (isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+' || *p == '_')
        p++;
    *s = p;
    return 0;
}

/* Release comparison, missing parts being 0. */
static int cmp(const ver_t *a, const ver_t *b)
{
    for (int i = 0; i < PARTS; i++)
        if (a->n[i] != b->n[i])
            return a->n[i] < b->n[i] ? -1 : 1;
    return 0;
}

/* True when the first `len` parts of a and b are equal (a prefix match: "==3.11.*"). */
static bool prefix(const ver_t *a, const ver_t *b, int len)
{
    for (int i = 0; i < len && i < PARTS; i++)
        if (a->n[i] != b->n[i])
            return false;
    return true;
}

/* One clause ("op version") against `have`: 1, 0 or -1 (unreadable). */
static int clause(const char **s, const ver_t *have)
{
    const char *p = *s;
    char op[4] = "";
    size_t ol = 0;
    ver_t v, hi;
    int r;

    while (ol < 3 && strchr("<>=!~^", *p) && *p)
        op[ol++] = *p++;
    op[ol] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '*' && (ol == 0 || strcmp(op, "==") == 0)) {
        *s = p + 1;
        return 1;
    }
    if (read_ver(&p, &v) < 0)
        return -1;
    *s = p;
    if (v.wildcard && strcmp(op, "==") != 0 && strcmp(op, "!=") != 0 && ol != 0)
        return -1;
    if (ol == 0 || strcmp(op, "==") == 0 || strcmp(op, "=") == 0 || strcmp(op, "===") == 0)
        return v.wildcard ? prefix(have, &v, v.len) : cmp(have, &v) == 0;
    if (strcmp(op, "!=") == 0)
        return v.wildcard ? !prefix(have, &v, v.len) : cmp(have, &v) != 0;
    if (strcmp(op, ">=") == 0)
        return cmp(have, &v) >= 0;
    if (strcmp(op, "<=") == 0)
        return cmp(have, &v) <= 0;
    if (strcmp(op, ">") == 0)
        return cmp(have, &v) > 0;
    if (strcmp(op, "<") == 0)
        return cmp(have, &v) < 0;
    if (strcmp(op, "~=") == 0) {
        /* ~=3.10 is >=3.10 and ==3.*; it needs two parts */
        if (v.len < 2)
            return -1;
        return cmp(have, &v) >= 0 && prefix(have, &v, v.len - 1);
    }
    hi = v;
    if (strcmp(op, "^") == 0) {
        /* the first non-zero part may not change */
        int i = 0;
        while (i < v.len - 1 && i < PARTS - 1 && v.n[i] == 0)
            i++;
        memset(hi.n, 0, sizeof(hi.n));
        for (int j = 0; j < i; j++)
            hi.n[j] = v.n[j];
        hi.n[i] = v.n[i] + 1;
    } else if (strcmp(op, "~") == 0) {
        /* ~3.11 / ~3.11.2: the minor may not change; ~3: the major */
        int i = v.len >= 2 ? 1 : 0;
        memset(hi.n, 0, sizeof(hi.n));
        for (int j = 0; j < i; j++)
            hi.n[j] = v.n[j];
        hi.n[i] = v.n[i] + 1;
    } else {
        return -1;
    }
    r = cmp(have, &v) >= 0 && cmp(have, &hi) < 0;
    return r;
}

/* One alternative: clauses joined by ',' or whitespace, all must hold. */
static int conjunction(const char *s, const char *end, const ver_t *have)
{
    int all = 1, any = 0;

    while (s < end) {
        int r;
        while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
            s++;
        if (s >= end)
            break;
        r = clause(&s, have);
        if (r < 0 || s > end)
            return -1;
        if (s < end && *s != ' ' && *s != '\t' && *s != ',')
            return -1;
        all &= r;
        any = 1;
    }
    return any ? all : -1;
}

int kiln_pyspec_allows(const char *spec, const char *version, kiln_error_t *err)
{
    const char *p = version, *s;
    ver_t have;
    int result = 0;

    if (strlen(spec) > KILN_PYSPEC_MAX)
        return kiln_error_set(err, 0, "Python version constraint longer than %d characters",
                              KILN_PYSPEC_MAX);
    if (read_ver(&p, &have) < 0 || have.wildcard)
        return kiln_error_set(err, 0, "cannot read the Python version \"%.32s\"", version);
    for (s = spec; *s == ' ' || *s == '\t'; s++)
        ;
    if (*s == '\0')
        return 1;
    /* Poetry: "^3.9 || ^4.0" (also a single '|') */
    while (*s) {
        const char *bar = strchr(s, '|');
        const char *end = bar ? bar : s + strlen(s);
        int r = conjunction(s, end, &have);
        if (r < 0)
            return kiln_error_set(err, 0, "cannot read the Python version constraint \"%.128s\"",
                                  spec);
        result |= r;
        if (bar == NULL)
            break;
        s = bar + 1;
        if (*s == '|')
            s++;
    }
    return result;
}
