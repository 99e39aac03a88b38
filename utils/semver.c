/* kiln — semantic versions and node-semver ranges (see semver.h). */
#include "utils/semver.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS 16  /* `||` alternatives */
#define MAX_COMPS 32 /* comparators of one alternative */
#define WILD (-1L)

typedef enum { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ } op_t;

typedef struct {
    op_t op;
    kiln_semver_t v;
} comp_t;

typedef struct {
    comp_t c[MAX_COMPS];
    size_t n;
    bool none; /* a comparator no version satisfies (`>*`, `<0.0.0-0`) */
} cset_t;

typedef struct {
    cset_t s[MAX_SETS];
    size_t n;
} range_t;

/* A version as written in a range: each part a number or WILD, missing parts WILD. */
typedef struct {
    long part[3];
    char pre[KILN_SEMVER_PRE_MAX];
} partial_t;

/* Reads a number (no leading zeros beyond "0", at most 9 digits so it fits a long). */
static const char *read_num(const char *p, long *out)
{
    const char *s = p;
    long v = 0;

    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p)) {
        if (p - s >= 9)
            return NULL;
        v = v * 10 + (*p++ - '0');
    }
    if (p - s > 1 && *s == '0')
        return NULL;
    *out = v;
    return p;
}

/* Reads "-pre" identifiers and "+build" into pre; returns the end or NULL. */
static const char *read_pre_build(const char *p, char *pre)
{
    pre[0] = '\0';
    if (*p == '-') {
        const char *s = ++p;
        while (isalnum((unsigned char)*p) || *p == '-' || (*p == '.' && p[-1] != '.' && p != s))
            p++;
        if (p == s || p[-1] == '.' || (size_t)(p - s) >= KILN_SEMVER_PRE_MAX)
            return NULL;
        memcpy(pre, s, (size_t)(p - s));
        pre[p - s] = '\0';
    }
    if (*p == '+') {
        const char *s = ++p;
        while (isalnum((unsigned char)*p) || *p == '-' || *p == '.')
            p++;
        if (p == s)
            return NULL;
    }
    return p;
}

/* Parses a partial version (x-range parts allowed) from p; returns its end. */
static const char *read_partial(const char *p, partial_t *out)
{
    int i;

    while (*p == 'v' || *p == 'V' || *p == '=')
        p++;
    out->part[0] = out->part[1] = out->part[2] = WILD;
    out->pre[0] = '\0';
    for (i = 0; i < 3; i++) {
        if (*p == 'x' || *p == 'X' || *p == '*')
            p++;
        else if ((p = read_num(p, &out->part[i])) == NULL)
            return NULL;
        if (i > 0 && out->part[i - 1] == WILD)
            out->part[i] = WILD; /* 1.x.3 is 1.x */
        if (*p != '.' || i == 2)
            break;
        p++;
    }
    if (i == 2 && out->part[2] != WILD && (p = read_pre_build(p, out->pre)) == NULL)
        return NULL;
    return p;
}

static kiln_semver_t ver(long a, long b, long c, const char *pre)
{
    kiln_semver_t v = {(unsigned long)a, (unsigned long)b, (unsigned long)c, ""};
    if (pre)
        snprintf(v.pre, sizeof(v.pre), "%s", pre);
    return v;
}

static int add(cset_t *s, op_t op, kiln_semver_t v)
{
    if (s->n >= MAX_COMPS)
        return -1;
    s->c[s->n].op = op;
    s->c[s->n++].v = v;
    return 0;
}

/* The lowest version a partial names: wild parts as 0. */
static kiln_semver_t floor_of(const partial_t *x)
{
    return ver(x->part[0] == WILD ? 0 : x->part[0], x->part[1] == WILD ? 0 : x->part[1],
               x->part[2] == WILD ? 0 : x->part[2], x->pre);
}

/* The first version above everything a partial with wild parts names
 * (`1` → 2.0.0-0, `1.2` → 1.3.0-0); only called when part[0] is set. */
static kiln_semver_t ceil_of(const partial_t *x)
{
    if (x->part[1] == WILD)
        return ver(x->part[0] + 1, 0, 0, "0");
    return ver(x->part[0], x->part[1] + 1, 0, "0");
}

/* Desugars one comparator (`op` as written: "", "=", "<", "<=", ">", ">=",
 * "~", "^") into primitive ones. */
static int add_simple(cset_t *s, const char *op, const partial_t *x)
{
    bool full = x->part[2] != WILD, any = x->part[0] == WILD;

    if (op[0] == '\0' || strcmp(op, "=") == 0) {
        if (any)
            return 0;
        if (full)
            return add(s, OP_EQ, floor_of(x));
        return add(s, OP_GE, floor_of(x)) < 0 ? -1 : add(s, OP_LT, ceil_of(x));
    }
    if (op[0] == '~') {
        if (any)
            return 0;
        if (add(s, OP_GE, floor_of(x)) < 0)
            return -1;
        if (x->part[1] == WILD)
            return add(s, OP_LT, ver(x->part[0] + 1, 0, 0, "0"));
        return add(s, OP_LT, ver(x->part[0], x->part[1] + 1, 0, "0"));
    }
    if (op[0] == '^') {
        if (any)
            return 0;
        if (add(s, OP_GE, floor_of(x)) < 0)
            return -1;
        if (x->part[0] > 0 || x->part[1] == WILD)
            return add(s, OP_LT, ver(x->part[0] + 1, 0, 0, "0"));
        if (x->part[1] > 0 || x->part[2] == WILD)
            return add(s, OP_LT, ver(0, x->part[1] + 1, 0, "0"));
        return add(s, OP_LT, ver(0, 0, x->part[2] + 1, "0"));
    }
    if (strcmp(op, ">=") == 0)
        return any ? 0 : add(s, OP_GE, floor_of(x));
    if (strcmp(op, ">") == 0) {
        if (any) {
            s->none = true;
            return 0;
        }
        return full ? add(s, OP_GT, floor_of(x)) : add(s, OP_GE, ceil_of(x));
    }
    if (strcmp(op, "<") == 0) {
        if (any) {
            s->none = true;
            return 0;
        }
        if (full)
            return add(s, OP_LT, floor_of(x));
        kiln_semver_t v = floor_of(x);
        v.pre[0] = '0';
        v.pre[1] = '\0';
        return add(s, OP_LT, v);
    }
    /* "<=" */
    if (any)
        return 0;
    return full ? add(s, OP_LE, floor_of(x)) : add(s, OP_LT, ceil_of(x));
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses one `||` alternative [p, end) into s; returns NULL on success or the
 * position of the error. */
static const char *parse_set(const char *p, const char *end, cset_t *s)
{
    for (p = skip_ws(p); p < end; p = skip_ws(p)) {
        char op[3] = "";
        partial_t x, y;
        const char *q;

        if (p[0] == '~' && p[1] == '>')
            p += 2, op[0] = '~';
        else if (p[0] == '<' || p[0] == '>') {
            op[0] = *p++;
            if (*p == '=')
                op[1] = *p++;
        } else if (p[0] == '~' || p[0] == '^' || p[0] == '=')
            op[0] = *p++;
        p = skip_ws(p);
        q = read_partial(p, &x);
        if (q == NULL || q > end || (q < end && *q != ' ' && *q != '\t'))
            return p;
        p = skip_ws(q);
        if (op[0] == '\0' && p < end && p[0] == '-' && (p[1] == ' ' || p[1] == '\t')) {
            /* hyphen range: A - B */
            const char *b = skip_ws(p + 1);
            q = read_partial(b, &y);
            if (q == NULL || q > end || (q < end && *q != ' ' && *q != '\t'))
                return b;
            if (x.part[0] != WILD && add(s, OP_GE, floor_of(&x)) < 0)
                return p;
            if (y.part[0] != WILD && add(s, y.part[2] != WILD ? OP_LE : OP_LT,
                                         y.part[2] != WILD ? floor_of(&y) : ceil_of(&y)) < 0)
                return p;
            p = q;
            continue;
        }
        if (add_simple(s, op, &x) < 0)
            return p;
    }
    return NULL;
}

/* Parses a whole range; on failure err names the range and where it broke. */
static int parse_range(const char *range, range_t *r, kiln_error_t *err)
{
    const char *p = range;
    size_t len = strlen(range);

    memset(r, 0, sizeof(*r));
    if (len > KILN_SEMVER_RANGE_MAX)
        return kiln_error_set(err, 0, "version range \"%.40s…\" is longer than %d characters",
                              range, KILN_SEMVER_RANGE_MAX);
    for (;;) {
        const char *bar = strstr(p, "||"), *end = bar ? bar : p + strlen(p), *bad;
        if (r->n >= MAX_SETS)
            return kiln_error_set(err, 0, "version range \"%s\": more than %d alternatives", range,
                                  MAX_SETS);
        bad = parse_set(p, end, &r->s[r->n]);
        if (bad != NULL)
            return kiln_error_set(err, 0, "version range \"%s\": cannot read \"%.*s\"", range,
                                  (int)strcspn(bad, " \t|"), bad);
        r->n++;
        if (bar == NULL)
            return 0;
        p = bar + 2;
    }
}

/* Compares dot-separated prerelease identifiers: numeric ones numerically and
 * below alphanumeric ones; a release ("") above any prerelease. */
static int pre_cmp(const char *a, const char *b)
{
    if (*a == '\0' || *b == '\0')
        return (*a == '\0') - (*b == '\0');
    while (*a && *b) {
        size_t la = strcspn(a, "."), lb = strcspn(b, ".");
        bool na = strspn(a, "0123456789") == la, nb = strspn(b, "0123456789") == lb;
        int c;
        if (na && nb)
            c = la != lb ? (la < lb ? -1 : 1) : strncmp(a, b, la);
        else if (na != nb)
            c = na ? -1 : 1;
        else {
            c = strncmp(a, b, la < lb ? la : lb);
            if (c == 0 && la != lb)
                c = la < lb ? -1 : 1;
        }
        if (c != 0)
            return c < 0 ? -1 : 1;
        a += la + (a[la] == '.');
        b += lb + (b[lb] == '.');
    }
    return (*a != '\0') - (*b != '\0');
}

int kiln_semver_cmp(const kiln_semver_t *a, const kiln_semver_t *b)
{
    if (a->major != b->major)
        return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor)
        return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch)
        return a->patch < b->patch ? -1 : 1;
    return pre_cmp(a->pre, b->pre);
}

int kiln_semver_parse(const char *s, kiln_semver_t *v, kiln_error_t *err)
{
    partial_t x;
    const char *e = read_partial(s, &x);

    if (e == NULL || *e != '\0' || x.part[2] == WILD)
        return kiln_error_set(err, 0, "\"%.64s\" is not a version (major.minor.patch)", s);
    *v = floor_of(&x);
    return 0;
}

static bool comp_ok(const comp_t *c, const kiln_semver_t *v)
{
    int r = kiln_semver_cmp(v, &c->v);
    switch (c->op) {
    case OP_LT:
        return r < 0;
    case OP_LE:
        return r <= 0;
    case OP_GT:
        return r > 0;
    case OP_GE:
        return r >= 0;
    default:
        return r == 0;
    }
}

static bool set_ok(const cset_t *s, const kiln_semver_t *v)
{
    if (s->none)
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (!comp_ok(&s->c[i], v))
            return false;
    if (v->pre[0] == '\0')
        return true;
    /* a prerelease only where the range names one of the same version */
    for (size_t i = 0; i < s->n; i++) {
        const kiln_semver_t *c = &s->c[i].v;
        if (c->pre[0] != '\0' && strcmp(c->pre, "0") != 0 && c->major == v->major &&
            c->minor == v->minor && c->patch == v->patch)
            return true;
    }
    return false;
}

static bool range_ok(const range_t *r, const kiln_semver_t *v)
{
    for (size_t i = 0; i < r->n; i++)
        if (set_ok(&r->s[i], v))
            return true;
    return false;
}

int kiln_semver_range_check(const char *range, kiln_error_t *err)
{
    range_t r;
    return parse_range(range, &r, err);
}

int kiln_semver_satisfies(const char *range, const char *version)
{
    range_t r;
    kiln_semver_t v;

    if (parse_range(range, &r, NULL) < 0 || kiln_semver_parse(version, &v, NULL) < 0)
        return -1;
    return range_ok(&r, &v) ? 1 : 0;
}

const char *kiln_semver_max_satisfying(const char *range, const char *const *versions, size_t n,
                                       kiln_error_t *err)
{
    range_t r;
    kiln_semver_t best = {0}, v;
    const char *found = NULL;

    if (parse_range(range, &r, err) < 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (kiln_semver_parse(versions[i], &v, NULL) < 0 || !range_ok(&r, &v))
            continue;
        if (found == NULL || kiln_semver_cmp(&v, &best) > 0) {
            best = v;
            found = versions[i];
        }
    }
    return found;
}
