/* kiln — a TOML 1.0 reader into jansson (see toml.h). */
#include "utils/toml.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

typedef struct parser {
    const char *name;
    const char *p, *end;
    int line;
    kiln_error_t *err;
} parser_t;

static int fail(parser_t *ps, const char *what)
{
    return kiln_error_set(ps->err, EINVAL, "%s line %d: %s", ps->name, ps->line, what);
}

static bool at_end(const parser_t *ps)
{
    return ps->p >= ps->end;
}

static int peek(const parser_t *ps, size_t off)
{
    return ps->p + off < ps->end ? (unsigned char)ps->p[off] : -1;
}

static void skip_ws(parser_t *ps)
{
    while (!at_end(ps) && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

/* A comment runs to the end of the line; control characters other than tab are refused. */
static int skip_comment(parser_t *ps)
{
    if (at_end(ps) || *ps->p != '#')
        return 0;
    for (; !at_end(ps) && *ps->p != '\n'; ps->p++) {
        unsigned char c = (unsigned char)*ps->p;
        if ((c < 0x20 && c != '\t' && !(c == '\r' && peek(ps, 1) == '\n')) || c == 0x7f)
            return fail(ps, "control character in a comment");
    }
    return 0;
}

/* Consumes a newline (LF or CRLF); returns true when there was one. */
static bool newline(parser_t *ps)
{
    if (peek(ps, 0) == '\n') {
        ps->p++;
        ps->line++;
        return true;
    }
    if (peek(ps, 0) == '\r' && peek(ps, 1) == '\n') {
        ps->p += 2;
        ps->line++;
        return true;
    }
    return false;
}

/* Whitespace, comments and newlines (inside arrays). */
static int skip_blank(parser_t *ps)
{
    for (;;) {
        skip_ws(ps);
        if (skip_comment(ps) < 0)
            return -1;
        if (!newline(ps))
            return 0;
    }
}

/* The end of a key/value line or header: whitespace, a comment, a newline or the end. */
static int end_of_line(parser_t *ps)
{
    skip_ws(ps);
    if (skip_comment(ps) < 0)
        return -1;
    if (at_end(ps) || newline(ps))
        return 0;
    return fail(ps, "expected the end of the line");
}

/* Appends code point `cp` as UTF-8. */
static int put_utf8(parser_t *ps, kiln_buf_t *b, unsigned long cp)
{
    char u[4];
    size_t n;

    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return fail(ps, "escape names no Unicode scalar value");
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return kiln_buf_append(b, u, n, ps->err);
}

/* One escape after a backslash in a basic string. */
static int escape(parser_t *ps, kiln_buf_t *b)
{
    static const char from[] = "btnfr\"\\e", to[] = "\b\t\n\f\r\"\\\x1b";
    const char *hit;
    int c = peek(ps, 0);
    size_t n;
    unsigned long cp = 0;

    if (c < 0)
        return fail(ps, "unterminated string");
    ps->p++;
    if (c != 0 && (hit = strchr(from, c)) != NULL)
        return kiln_buf_append(b, &to[hit - from], 1, ps->err);
    if (c != 'u' && c != 'U')
        return fail(ps, "unknown escape in a string");
    n = c == 'u' ? 4 : 8;
    for (size_t i = 0; i < n; i++) {
        int h = peek(ps, 0);
        if (h < 0 || !isxdigit(h))
            return fail(ps, "\\u escape needs hex digits");
        cp = cp * 16 + (unsigned long)(isdigit(h) ? h - '0' : (tolower(h) - 'a' + 10));
        ps->p++;
    }
    return put_utf8(ps, b, cp);
}

/* A string of any of the four kinds at ps->p (its opening quote); *out malloc'ed,
 * NUL-terminated, length in *len. */
static int parse_string(parser_t *ps, char **out, size_t *len)
{
    char q = *ps->p;
    bool multi = peek(ps, 1) == q && peek(ps, 2) == q;
    kiln_buf_t b;

    kiln_buf_init(&b, KILN_TOML_DOC_MAX);
    ps->p += multi ? 3 : 1;
    /* a newline right after the opening delimiter is trimmed */
    if (multi)
        newline(ps);
    for (;;) {
        unsigned char c;
        if (at_end(ps)) {
            fail(ps, "unterminated string");
            goto bad;
        }
        c = (unsigned char)*ps->p;
        if (c == (unsigned char)q) {
            if (!multi) {
                ps->p++;
                break;
            }
            if (peek(ps, 1) == q && peek(ps, 2) == q) {
                /* up to two quotes may stand just before the closing three */
                size_t extra = 0;
                while (extra < 2 && peek(ps, 3 + extra) == q)
                    extra++;
                if (kiln_buf_append(&b, ps->p, extra, ps->err) < 0)
                    goto bad;
                ps->p += 3 + extra;
                break;
            }
            if (kiln_buf_append(&b, ps->p++, 1, ps->err) < 0)
                goto bad;
            continue;
        }
        if (multi && (c == '\n' || (c == '\r' && peek(ps, 1) == '\n'))) {
            if (kiln_buf_append(&b, "\n", 1, ps->err) < 0)
                goto bad;
            newline(ps);
            continue;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fail(ps, "control character in a string");
            goto bad;
        }
        if (c == '\\' && q == '"') {
            ps->p++;
            if (multi) {
                /* a line-ending backslash trims the newline and the whitespace after it */
                const char *s = ps->p;
                while (s < ps->end && (*s == ' ' || *s == '\t'))
                    s++;
                if (s < ps->end && (*s == '\n' || *s == '\r')) {
                    ps->p = s;
                    if (!newline(ps)) {
                        fail(ps, "bare carriage return in a string");
                        goto bad;
                    }
                    for (;;) {
                        while (!at_end(ps) && (*ps->p == ' ' || *ps->p == '\t'))
                            ps->p++;
                        if (!newline(ps))
                            break;
                    }
                    continue;
                }
            }
            if (escape(ps, &b) < 0)
                goto bad;
            continue;
        }
        if (kiln_buf_append(&b, ps->p++, 1, ps->err) < 0)
            goto bad;
    }
    *len = b.len;
    *out = kiln_buf_steal(&b, NULL);
    return 0;
bad:
    kiln_buf_free(&b);
    return -1;
}

static bool bare_key_char(int c)
{
    return c >= 0 && (isalnum(c) || c == '_' || c == '-');
}

/* One part of a key: bare, "basic" or 'literal' (not multi-line). */
static int parse_simple_key(parser_t *ps, char **out)
{
    const char *s = ps->p;
    size_t len;

    if (peek(ps, 0) == '"' || peek(ps, 0) == '\'') {
        if (peek(ps, 1) == peek(ps, 0) && peek(ps, 2) == peek(ps, 0))
            return fail(ps, "a key cannot be a multi-line string");
        if (parse_string(ps, out, &len) < 0)
            return -1;
        if (strlen(*out) != len) {
            free(*out);
            *out = NULL;
            return fail(ps, "a key holds a NUL character");
        }
        return 0;
    }
    while (!at_end(ps) && bare_key_char((unsigned char)*ps->p))
        ps->p++;
    if (ps->p == s)
        return fail(ps, "expected a key");
    *out = kiln_xstrndup(s, (size_t)(ps->p - s));
    return 0;
}

typedef struct key {
    char *part[KILN_TOML_DOC_DEPTH];
    size_t n;
} key_t_;

static void key_free(key_t_ *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->part[i]);
    k->n = 0;
}

/* A dotted key: parts separated by '.', whitespace allowed around the dots. */
static int parse_key(parser_t *ps, key_t_ *k)
{
    for (;;) {
        skip_ws(ps);
        if (k->n == KILN_TOML_DOC_DEPTH)
            return fail(ps, "a dotted key has too many parts");
        if (parse_simple_key(ps, &k->part[k->n]) < 0)
            return -1;
        k->n++;
        skip_ws(ps);
        if (peek(ps, 0) != '.')
            return 0;
        ps->p++;
    }
}

static int parse_value(parser_t *ps, int depth, json_t **out);

/* The table named `part` under `tab` (made when missing). `header`: a table header walks
 * into the last table of an array of tables. */
static int descend(parser_t *ps, json_t *tab, const char *part, bool header, json_t **out)
{
    json_t *v = json_object_get(tab, part);

    if (v == NULL) {
        v = json_object();
        if (json_object_set_new(tab, part, v) < 0)
            return fail(ps, "cannot store a table");
    } else if (json_is_array(v) && header && json_array_size(v) > 0 &&
               json_is_object(json_array_get(v, json_array_size(v) - 1))) {
        v = json_array_get(v, json_array_size(v) - 1);
    } else if (!json_is_object(v)) {
        return kiln_error_set(ps->err, EINVAL, "%s line %d: key \"%.64s\" already holds a value",
                              ps->name, ps->line, part);
    }
    *out = v;
    return 0;
}

/* key = value into `tab`. */
static int parse_keyval(parser_t *ps, json_t *tab, int depth)
{
    key_t_ k = {.n = 0};
    json_t *v = NULL;
    int r = -1;

    if (parse_key(ps, &k) < 0)
        goto out;
    if (peek(ps, 0) != '=') {
        fail(ps, "expected = after a key");
        goto out;
    }
    ps->p++;
    skip_ws(ps);
    for (size_t i = 0; i + 1 < k.n; i++)
        if (descend(ps, tab, k.part[i], false, &tab) < 0)
            goto out;
    if (json_object_get(tab, k.part[k.n - 1]) != NULL) {
        kiln_error_set(ps->err, EINVAL, "%s line %d: key \"%.64s\" is defined twice", ps->name,
                       ps->line, k.part[k.n - 1]);
        goto out;
    }
    if (parse_value(ps, depth, &v) < 0)
        goto out;
    if (json_object_set_new(tab, k.part[k.n - 1], v) < 0) {
        fail(ps, "cannot store a value");
        goto out;
    }
    r = 0;
out:
    key_free(&k);
    return r;
}

static int parse_array(parser_t *ps, int depth, json_t **out)
{
    json_t *a = json_array();

    ps->p++; /* [ */
    for (;;) {
        json_t *v;
        if (skip_blank(ps) < 0)
            goto bad;
        if (peek(ps, 0) == ']')
            break;
        if (parse_value(ps, depth + 1, &v) < 0)
            goto bad;
        json_array_append_new(a, v);
        if (skip_blank(ps) < 0)
            goto bad;
        if (peek(ps, 0) == ',') {
            ps->p++;
            continue;
        }
        if (peek(ps, 0) != ']') {
            fail(ps, "expected , or ] in an array");
            goto bad;
        }
        break;
    }
    ps->p++; /* ] */
    *out = a;
    return 0;
bad:
    json_decref(a);
    return -1;
}

static int parse_inline_table(parser_t *ps, int depth, json_t **out)
{
    json_t *t = json_object();

    ps->p++; /* { */
    skip_ws(ps);
    if (peek(ps, 0) == '}') {
        ps->p++;
        *out = t;
        return 0;
    }
    for (;;) {
        if (parse_keyval(ps, t, depth + 1) < 0)
            goto bad;
        skip_ws(ps);
        if (peek(ps, 0) == ',') {
            ps->p++;
            continue;
        }
        if (peek(ps, 0) != '}') {
            fail(ps, "expected , or } in an inline table");
            goto bad;
        }
        ps->p++;
        break;
    }
    *out = t;
    return 0;
bad:
    json_decref(t);
    return -1;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* A date, time or date-time: kept as its text. Returns 1 when one was read. */
static int parse_datetime(parser_t *ps, json_t **out)
{
    const char *s = ps->p, *q = s;
    size_t n = (size_t)(ps->end - s);

    if (n >= 10 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) && s[7] == '-' &&
        all_digits(s + 8, 2)) {
        q = s + 10;
        if (q + 1 < ps->end && (*q == 'T' || *q == 't' || *q == ' ') && q + 3 <= ps->end &&
            all_digits(q + 1, 2) && q + 3 < ps->end && q[3] == ':')
            q++;
        else
            goto done;
    } else if (!(n >= 5 && all_digits(s, 2) && s[2] == ':')) {
        return 0;
    }
    /* the time and an offset: digits, ':', '.', 'Z', '+', '-' */
    while (q < ps->end && (isdigit((unsigned char)*q) || *q == ':' || *q == '.' || *q == 'Z' ||
                           *q == 'z' || *q == '+' || *q == '-'))
        q++;
done:
    ps->p = q;
    *out = json_stringn(s, (size_t)(q - s));
    return 1;
}

/* An integer or float (underscores only between digits). */
static int parse_number(parser_t *ps, json_t **out)
{
    const char *s = ps->p;
    char buf[128];
    size_t n = 0;
    int base = 10;
    bool is_float = false;
    char *end;

    while (!at_end(ps) && (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '+' ||
                           *ps->p == '-' || *ps->p == '.')) {
        char c = *ps->p;
        if (c == '_') {
            if (ps->p == s || !isalnum((unsigned char)ps->p[-1]) || ps->p + 1 >= ps->end ||
                !isalnum((unsigned char)ps->p[1]))
                return fail(ps, "misplaced _ in a number");
        } else {
            if (n + 1 >= sizeof(buf))
                return fail(ps, "number too long");
            buf[n++] = c;
        }
        ps->p++;
    }
    buf[n] = '\0';
    if (n == 0)
        return fail(ps, "expected a value");
    {
        const char *d = buf + (buf[0] == '+' || buf[0] == '-');
        if (strcmp(d, "inf") == 0 || strcmp(d, "nan") == 0) {
            *out = json_string(buf);
            return 0;
        }
        if (d[0] == '0' && (d[1] == 'x' || d[1] == 'o' || d[1] == 'b')) {
            if (d != buf)
                return fail(ps, "a hex, octal or binary number cannot have a sign");
            base = d[1] == 'x' ? 16 : d[1] == 'o' ? 8 : 2;
            memmove(buf, buf + 2, n - 1);
        } else {
            is_float = strpbrk(d, ".eE") != NULL;
            if (d[0] == '0' && isdigit((unsigned char)d[1]))
                return fail(ps, "leading zero in a number");
            if (!isdigit((unsigned char)d[0]))
                return fail(ps, "expected a value");
        }
    }
    errno = 0;
    if (is_float) {
        double v = strtod(buf, &end);
        if (*end || errno || end[-1] == '.' || strstr(buf, ".e") || strstr(buf, ".E"))
            return fail(ps, "malformed float");
        *out = json_real(v);
    } else {
        long long v = strtoll(buf, &end, base);
        if (*end || end == buf || errno || (base != 10 && !isalnum((unsigned char)buf[0])))
            return fail(ps, "malformed or too large integer");
        *out = json_integer(v);
    }
    if (*out == NULL)
        return fail(ps, "number out of range");
    return 0;
}

static int parse_value(parser_t *ps, int depth, json_t **out)
{
    int c = peek(ps, 0);

    if (depth > KILN_TOML_DOC_DEPTH)
        return fail(ps, "arrays or inline tables nested too deep");
    if (c == '"' || c == '\'') {
        _cleanup_free_ char *s = NULL;
        size_t len;
        if (parse_string(ps, &s, &len) < 0)
            return -1;
        if ((*out = json_stringn(s, len)) == NULL)
            return fail(ps, "string is not valid UTF-8");
        return 0;
    }
    if (c == '[')
        return parse_array(ps, depth, out);
    if (c == '{')
        return parse_inline_table(ps, depth, out);
    if (ps->end - ps->p >= 4 && memcmp(ps->p, "true", 4) == 0 && !bare_key_char(peek(ps, 4))) {
        ps->p += 4;
        *out = json_true();
        return 0;
    }
    if (ps->end - ps->p >= 5 && memcmp(ps->p, "false", 5) == 0 && !bare_key_char(peek(ps, 5))) {
        ps->p += 5;
        *out = json_false();
        return 0;
    }
    if (parse_datetime(ps, out))
        return *out ? 0 : fail(ps, "cannot store a date");
    return parse_number(ps, out);
}

/* [table] or [[array of tables]]: *cur becomes the table keys go into. */
static int parse_header(parser_t *ps, json_t *root, json_t **cur)
{
    bool aot = peek(ps, 1) == '[';
    key_t_ k = {.n = 0};
    json_t *tab = root, *v;
    int r = -1;

    ps->p += aot ? 2 : 1;
    if (parse_key(ps, &k) < 0)
        goto out;
    if (peek(ps, 0) != ']' || (aot && peek(ps, 1) != ']')) {
        fail(ps, aot ? "expected ]] after a table name" : "expected ] after a table name");
        goto out;
    }
    ps->p += aot ? 2 : 1;
    for (size_t i = 0; i + 1 < k.n; i++)
        if (descend(ps, tab, k.part[i], true, &tab) < 0)
            goto out;
    v = json_object_get(tab, k.part[k.n - 1]);
    if (aot) {
        json_t *t = json_object();
        if (v == NULL) {
            v = json_array();
            json_object_set_new(tab, k.part[k.n - 1], v);
        } else if (!json_is_array(v)) {
            json_decref(t);
            kiln_error_set(ps->err, EINVAL, "%s line %d: \"%.64s\" is not an array of tables",
                           ps->name, ps->line, k.part[k.n - 1]);
            goto out;
        }
        json_array_append_new(v, t);
        *cur = t;
    } else {
        if (v != NULL && !json_is_object(v)) {
            kiln_error_set(ps->err, EINVAL, "%s line %d: table \"%.64s\" already holds a value",
                           ps->name, ps->line, k.part[k.n - 1]);
            goto out;
        }
        if (descend(ps, tab, k.part[k.n - 1], false, cur) < 0)
            goto out;
    }
    r = 0;
out:
    key_free(&k);
    return r;
}

int kiln_toml_load(const char *name, const char *text, size_t len, json_t **out, kiln_error_t *err)
{
    parser_t ps = {.name = name, .p = text, .end = text + len, .line = 1, .err = err};
    json_t *root, *cur;

    if (len > KILN_TOML_DOC_MAX)
        return kiln_error_set(err, EFBIG, "%s: larger than %d bytes", name, KILN_TOML_DOC_MAX);
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        ps.p += 3;
    root = cur = json_object();
    while (!at_end(&ps)) {
        skip_ws(&ps);
        if (skip_comment(&ps) < 0)
            goto bad;
        if (newline(&ps) || at_end(&ps))
            continue;
        if (*ps.p == '[') {
            if (parse_header(&ps, root, &cur) < 0)
                goto bad;
        } else if (parse_keyval(&ps, cur, 0) < 0) {
            goto bad;
        }
        if (end_of_line(&ps) < 0)
            goto bad;
    }
    *out = root;
    return 0;
bad:
    json_decref(root);
    return -1;
}
