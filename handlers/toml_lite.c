/* kiln — the TOML reader of the build manifests (see toml_lite.h).
 *
 * A recursive-descent reader over the text with a position and a line count;
 * it keeps no tree: each pair goes to the callback as soon as it is read. */
#include "handlers/toml_lite.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define NAME_CAP 4096

/* One [[table]] name and how many times it was opened. */
typedef struct seen_array {
    char *name;
    size_t count;
} seen_array_t;

typedef struct rd {
    const char *s, *end, *what;
    unsigned line;
    kiln_toml_cb cb;
    void *data;
    kiln_error_t *err;
    char *table;
    bool array_table;
    size_t index;
    seen_array_t *arrays;
    size_t n_arrays;
    size_t pairs;
} rd_t;

static int fail(rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(rd_t *r, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kiln_error_set(r->err, 0, "%s line %u: %s", r->what, r->line, msg);
}

/* Skips spaces and tabs. */
static void skip_ws(rd_t *r)
{
    while (r->s < r->end && (*r->s == ' ' || *r->s == '\t'))
        r->s++;
}

/* Skips spaces, tabs, newlines and comments (inside arrays). */
static void skip_ws_nl(rd_t *r)
{
    while (r->s < r->end) {
        if (*r->s == ' ' || *r->s == '\t' || *r->s == '\r') {
            r->s++;
        } else if (*r->s == '\n') {
            r->line++;
            r->s++;
        } else if (*r->s == '#') {
            while (r->s < r->end && *r->s != '\n')
                r->s++;
        } else {
            break;
        }
    }
}

/* After a pair or header: only a comment may follow on the line. */
static int end_of_line(rd_t *r)
{
    skip_ws(r);
    if (r->s < r->end && *r->s == '#')
        while (r->s < r->end && *r->s != '\n')
            r->s++;
    if (r->s < r->end && *r->s == '\r')
        r->s++;
    if (r->s < r->end && *r->s != '\n')
        return fail(r, "unexpected '%c' after a value", *r->s);
    return 0;
}

/* Appends one byte to a string under the cap. */
static int put(rd_t *r, kiln_buf_t *b, char c)
{
    if (kiln_buf_append(b, &c, 1, NULL) < 0)
        return fail(r, "a string is over %d bytes", KILN_TOML_MAX_STRING);
    return 0;
}

/* A string of any of the four kinds at r->s; *out malloc'ed. */
static int read_string(rd_t *r, char **out)
{
    char q = *r->s;
    bool multi = r->end - r->s >= 3 && r->s[1] == q && r->s[2] == q;
    kiln_buf_t b;

    kiln_buf_init(&b, KILN_TOML_MAX_STRING);
    r->s += multi ? 3 : 1;
    if (multi && r->s < r->end && *r->s == '\n') { /* a newline right after """ is trimmed */
        r->s++;
        r->line++;
    }
    for (;;) {
        if (r->s >= r->end) {
            kiln_buf_free(&b);
            return fail(r, "a string is not closed");
        }
        char c = *r->s;
        if (c == q && (!multi || (r->end - r->s >= 3 && r->s[1] == q && r->s[2] == q))) {
            r->s += multi ? 3 : 1;
            break;
        }
        if (c == '\n') {
            if (!multi) {
                kiln_buf_free(&b);
                return fail(r, "a newline inside a one-line string");
            }
            r->line++;
        }
        if (c == '\\' && q == '"' && r->s + 1 < r->end) {
            char e = r->s[1], v;
            r->s += 2;
            switch (e) {
            case 'n':
                v = '\n';
                break;
            case 't':
                v = '\t';
                break;
            case 'r':
                v = '\r';
                break;
            case '"':
                v = '"';
                break;
            case '\\':
                v = '\\';
                break;
            case '\n': /* line-ending backslash: the newline and following space go */
                r->line++;
                while (r->s < r->end && (*r->s == ' ' || *r->s == '\t' || *r->s == '\n'))
                    r->line += *r->s++ == '\n';
                continue;
            default:
                v = e;
                break; /* \uXXXX and others kept as written, less the backslash */
            }
            if (put(r, &b, v) < 0) {
                kiln_buf_free(&b);
                return -1;
            }
            continue;
        }
        if (put(r, &b, c) < 0) {
            kiln_buf_free(&b);
            return -1;
        }
        r->s++;
    }
    *out = kiln_buf_steal(&b, NULL);
    return 0;
}

/* One key part: bare or quoted. */
static int read_key_part(rd_t *r, char **out)
{
    const char *st = r->s;
    if (r->s < r->end && (*r->s == '"' || *r->s == '\''))
        return read_string(r, out);
    while (r->s < r->end && ((*r->s >= 'a' && *r->s <= 'z') || (*r->s >= 'A' && *r->s <= 'Z') ||
                             (*r->s >= '0' && *r->s <= '9') || *r->s == '_' || *r->s == '-'))
        r->s++;
    if (r->s == st)
        return fail(r, "expected a key, found '%c'", r->s < r->end ? *r->s : '?');
    *out = kiln_xstrndup(st, (size_t)(r->s - st));
    return 0;
}

/* A dotted key ("a.b.c"); stops before '=' or ']'. */
static int read_key(rd_t *r, char **out)
{
    kiln_buf_t b;
    kiln_buf_init(&b, NAME_CAP);
    for (;;) {
        _cleanup_free_ char *part = NULL;
        skip_ws(r);
        if (read_key_part(r, &part) < 0) {
            kiln_buf_free(&b);
            return -1;
        }
        if (kiln_buf_appendf(&b, NULL, "%s%s", b.len ? "." : "", part) < 0) {
            kiln_buf_free(&b);
            return fail(r, "a key is over %d bytes", NAME_CAP);
        }
        skip_ws(r);
        if (r->s < r->end && *r->s == '.') {
            r->s++;
            continue;
        }
        break;
    }
    *out = kiln_buf_steal(&b, NULL);
    return 0;
}

static int emit(rd_t *r, const char *key, kiln_toml_kind_t kind, const char *value,
                char *const *items, size_t n)
{
    kiln_toml_pair_t p = {.table = r->table ? r->table : "",
                          .array_table = r->array_table,
                          .index = r->index,
                          .key = key,
                          .kind = kind,
                          .value = value,
                          .items = items,
                          .n_items = n,
                          .line = r->line};
    if (++r->pairs > KILN_TOML_MAX_PAIRS)
        return fail(r, "more than %d keys", KILN_TOML_MAX_PAIRS);
    return r->cb(&p, r->data, r->err);
}

static int read_value(rd_t *r, const char *key, int depth, char **str_out);

/* An array; its string items are emitted with `key` (when key is not NULL). */
static int read_array(rd_t *r, const char *key, int depth)
{
    char **items = NULL;
    size_t n = 0;
    int ret = -1;

    r->s++;
    for (;;) {
        char *s = NULL;
        skip_ws_nl(r);
        if (r->s >= r->end) {
            fail(r, "an array is not closed");
            goto out;
        }
        if (*r->s == ']') {
            r->s++;
            break;
        }
        if (read_value(r, NULL, depth + 1, &s) < 0)
            goto out;
        if (s != NULL) {
            if (n >= KILN_TOML_MAX_ITEMS) {
                free(s);
                fail(r, "an array has more than %d strings", KILN_TOML_MAX_ITEMS);
                goto out;
            }
            items = kiln_xrealloc(items, (n + 1) * sizeof(*items));
            items[n++] = s;
        }
        skip_ws_nl(r);
        if (r->s < r->end && *r->s == ',') {
            r->s++;
            continue;
        }
        skip_ws_nl(r);
        if (r->s < r->end && *r->s == ']') {
            r->s++;
            break;
        }
        fail(r, r->s >= r->end ? "an array is not closed" : "expected ',' or ']' in an array");
        goto out;
    }
    ret = key ? emit(r, key, KILN_TOML_ARRAY, NULL, items, n) : 0;
out:
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
    return ret;
}

/* An inline table: its pairs emitted as "<key>.<inner key>" (skipped when key is NULL). */
static int read_inline(rd_t *r, const char *key, int depth)
{
    r->s++;
    skip_ws(r);
    if (r->s < r->end && *r->s == '}') {
        r->s++;
        return 0;
    }
    for (;;) {
        _cleanup_free_ char *k = NULL, *full = NULL;
        if (read_key(r, &k) < 0)
            return -1;
        skip_ws(r);
        if (r->s >= r->end || *r->s != '=')
            return fail(r, "expected '=' after the key %.64s", k);
        r->s++;
        skip_ws(r);
        full = key ? kiln_xasprintf("%s.%s", key, k) : NULL;
        if (read_value(r, full, depth + 1, NULL) < 0)
            return -1;
        skip_ws(r);
        if (r->s < r->end && *r->s == ',') {
            r->s++;
            continue;
        }
        if (r->s < r->end && *r->s == '}') {
            r->s++;
            return 0;
        }
        return fail(r, "expected ',' or '}' in an inline table");
    }
}

/* One value. With str_out (array items), a string is handed back instead of
 * emitted; anything else gives NULL. */
static int read_value(rd_t *r, const char *key, int depth, char **str_out)
{
    if (str_out)
        *str_out = NULL;
    if (depth > KILN_TOML_MAX_DEPTH)
        return fail(r, "values nested deeper than %d", KILN_TOML_MAX_DEPTH);
    if (r->s >= r->end)
        return fail(r, "a value is missing");
    if (*r->s == '"' || *r->s == '\'') {
        _cleanup_free_ char *s = NULL;
        if (read_string(r, &s) < 0)
            return -1;
        if (str_out) {
            *str_out = steal_pointer(&s);
            return 0;
        }
        return key ? emit(r, key, KILN_TOML_STRING, s, NULL, 0) : 0;
    }
    if (*r->s == '[')
        return read_array(r, str_out ? NULL : key, depth);
    if (*r->s == '{')
        return read_inline(r, str_out ? NULL : key, depth);
    {
        const char *st = r->s;
        _cleanup_free_ char *raw = NULL;
        while (r->s < r->end && !strchr(" \t\r\n,]}#", *r->s))
            r->s++;
        if (r->s == st)
            return fail(r, "unexpected '%c' where a value belongs", *r->s);
        if (r->s - st > 256)
            return fail(r, "a value is over 256 bytes");
        raw = kiln_xstrndup(st, (size_t)(r->s - st));
        return key && !str_out ? emit(r, key, KILN_TOML_OTHER, raw, NULL, 0) : 0;
    }
}

/* A [table] or [[table]] header. */
static int read_header(rd_t *r)
{
    bool arr = r->end - r->s >= 2 && r->s[1] == '[';
    _cleanup_free_ char *name = NULL;

    r->s += arr ? 2 : 1;
    if (read_key(r, &name) < 0)
        return -1;
    skip_ws(r);
    if (r->s >= r->end || *r->s != ']' || (arr && (r->end - r->s < 2 || r->s[1] != ']')))
        return fail(r, "a table header is not closed");
    r->s += arr ? 2 : 1;
    free(r->table);
    r->table = steal_pointer(&name);
    r->array_table = arr;
    r->index = 0;
    if (arr) {
        size_t i;
        for (i = 0; i < r->n_arrays; i++)
            if (strcmp(r->arrays[i].name, r->table) == 0)
                break;
        if (i == r->n_arrays) {
            if (r->n_arrays >= KILN_TOML_MAX_ITEMS)
                return fail(r, "more than %d arrays of tables", KILN_TOML_MAX_ITEMS);
            r->arrays = kiln_xrealloc(r->arrays, (r->n_arrays + 1) * sizeof(*r->arrays));
            r->arrays[r->n_arrays++] = (seen_array_t){kiln_xstrdup(r->table), 0};
        }
        r->index = r->arrays[i].count++;
    }
    return end_of_line(r);
}

int kiln_toml_parse(const char *text, size_t len, const char *what, kiln_toml_cb cb, void *data,
                    kiln_error_t *err)
{
    rd_t r = {
        .s = text, .end = text + len, .what = what, .line = 1, .cb = cb, .data = data, .err = err};
    int ret = -1;

    for (;;) {
        skip_ws_nl(&r);
        if (r.s >= r.end)
            break;
        if (*r.s == '[') {
            if (read_header(&r) < 0)
                goto out;
            continue;
        }
        {
            _cleanup_free_ char *key = NULL;
            if (read_key(&r, &key) < 0)
                goto out;
            skip_ws(&r);
            if (r.s >= r.end || *r.s != '=') {
                fail(&r, "expected '=' after the key %.64s", key);
                goto out;
            }
            r.s++;
            skip_ws(&r);
            if (read_value(&r, key, 0, NULL) < 0 || end_of_line(&r) < 0)
                goto out;
        }
    }
    ret = 0;
out:
    free(r.table);
    for (size_t i = 0; i < r.n_arrays; i++)
        free(r.arrays[i].name);
    free(r.arrays);
    return ret;
}
