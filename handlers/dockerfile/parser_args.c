/* kiln — the argument forms of Dockerfile instructions (see parser_args.h), as BuildKit's
 * parser reads them. */
#include "handlers/dockerfile/parser_args.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/mem.h"

void kiln_df_strv_push_n(kiln_df_strv_t *s, const char *p, size_t n)
{
    if (s->n + 2 > s->alloc) {
        s->alloc = s->alloc ? s->alloc * 2 : 8;
        s->v = kiln_xrealloc(s->v, s->alloc * sizeof(char *));
        s->lens = kiln_xrealloc(s->lens, s->alloc * sizeof(size_t));
    }
    s->v[s->n] = kiln_xstrndup(p, n);
    if (memchr(p, '\0', n) != NULL) { /* JSON "\u0000": keep bytes past the NUL */
        s->v[s->n] = kiln_xrealloc(s->v[s->n], n + 1);
        memcpy(s->v[s->n], p, n);
        s->v[s->n][n] = '\0';
    }
    s->lens[s->n] = n;
    s->v[++s->n] = NULL;
}

void kiln_df_strv_push(kiln_df_strv_t *s, const char *p)
{
    kiln_df_strv_push_n(s, p, strlen(p));
}

void kiln_df_strv_clear(kiln_df_strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s->lens);
    memset(s, 0, sizeof(*s));
}

bool kiln_df_is_go_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* BuildKit's reWhitespace: [\t\v\f\r ] (no newline). */
bool kiln_df_is_ws_token(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

char *kiln_df_trim_space_dup(const char *s, size_t n)
{
    while (n > 0 && kiln_df_is_go_space((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n > 0 && kiln_df_is_go_space((unsigned char)s[n - 1]))
        n--;
    return kiln_xstrndup(s, n);
}

/* BuildKit's parseWords: splits on whitespace, keeps quotes and escapes. */
void kiln_df_args_words(const char *rest, char esc, kiln_df_strv_t *out)
{
    size_t n = strlen(rest), pos = 0;
    kiln_buf_t word;
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    char quote = 0;
    bool blank_ok = false;

    kiln_buf_init(&word, 0);
    for (pos = 0; pos <= n; pos++) {
        char ch = pos < n ? rest[pos] : 0;
        if (phase == IN_SPACES) {
            if (pos == n)
                break;
            if (kiln_df_is_go_space((unsigned char)ch))
                continue;
            phase = IN_WORD;
        }
        if (pos == n) {
            if (blank_ok || word.len > 0)
                kiln_df_strv_push_n(out, word.data ? word.data : "", word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (kiln_df_is_go_space((unsigned char)ch)) {
                phase = IN_SPACES;
                if (blank_ok || word.len > 0)
                    kiln_df_strv_push_n(out, word.data ? word.data : "", word.len);
                word.len = 0;
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
            }
            if (ch == esc) {
                if (pos + 1 == n)
                    continue;
                kiln_buf_append(&word, &ch, 1, NULL);
                pos++;
                ch = rest[pos];
            }
            kiln_buf_append(&word, &ch, 1, NULL);
            continue;
        }
        /* IN_QUOTE */
        if (ch == quote)
            phase = IN_WORD;
        if (ch == esc && quote != '\'') {
            if (pos + 1 == n) {
                phase = IN_WORD;
                continue;
            }
            pos++;
            kiln_buf_append(&word, &ch, 1, NULL);
            ch = rest[pos];
        }
        kiln_buf_append(&word, &ch, 1, NULL);
    }
    kiln_buf_free(&word);
}

/* Splits on runs of [\t\v\f\r ]: regexp.Split(s, max) (max < 0: no limit). */
void kiln_df_args_split_ws(const char *s, int max, kiln_df_strv_t *out)
{
    size_t n = strlen(s), start = 0, i = 0;
    int parts = 0;
    while (i < n) {
        if (kiln_df_is_ws_token((unsigned char)s[i]) && (max < 0 || parts + 1 < max)) {
            size_t j = i;
            while (j < n && kiln_df_is_ws_token((unsigned char)s[j]))
                j++;
            kiln_df_strv_push_n(out, s + start, i - start);
            parts++;
            start = i = j;
            continue;
        }
        i++;
    }
    kiln_df_strv_push_n(out, s + start, n - start);
}

enum { JSON_OK = 0, JSON_NOT_JSON = 1, JSON_NOT_STRINGS = 2 };

/* A JSON array of strings → args. */
static int parse_json(const char *rest, kiln_df_strv_t *out)
{
    json_t *arr;
    json_error_t jerr;
    size_t i;
    json_t *v;

    while (*rest && kiln_df_is_go_space((unsigned char)*rest))
        rest++;
    if (*rest != '[')
        return JSON_NOT_JSON;
    arr = json_loadb(rest, strlen(rest), JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (arr == NULL)
        return JSON_NOT_JSON;
    if (!json_is_array(arr)) {
        json_decref(arr);
        return JSON_NOT_JSON;
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v)) {
            json_decref(arr);
            kiln_df_strv_clear(out);
            return JSON_NOT_STRINGS;
        }
        kiln_df_strv_push_n(out, json_string_value(v), json_string_length(v));
    }
    json_decref(arr);
    return JSON_OK;
}

/* The `--flag[=value]` words before the arguments (BuildKit's extractBuilderFlags).
 * Returns the rest of the line (pointer into `line`). */
const char *kiln_df_args_flags(const char *line, kiln_df_strv_t *flags)
{
    size_t n = strlen(line), pos;
    kiln_buf_t word;
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    char quote = 0;
    bool blank_ok = false;
    const char *ret = "";

    kiln_buf_init(&word, 0);
    for (pos = 0; pos <= n; pos++) {
        char ch = pos < n ? line[pos] : 0;
        if (phase == IN_SPACES) {
            if (pos == n)
                break;
            if (kiln_df_is_go_space((unsigned char)ch))
                continue;
            if (ch != '-' || pos + 1 == n || line[pos + 1] != '-') {
                ret = line + pos;
                goto out;
            }
            phase = IN_WORD;
        }
        if (pos == n) {
            bool dd = word.len == 2 && memcmp(word.data, "--", 2) == 0;
            if (!dd && (blank_ok || word.len > 0))
                kiln_df_strv_push_n(flags, word.data ? word.data : "", word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (kiln_df_is_go_space((unsigned char)ch)) {
                phase = IN_SPACES;
                if (word.len == 2 && memcmp(word.data, "--", 2) == 0) {
                    ret = line + pos;
                    goto out;
                }
                if (blank_ok || word.len > 0)
                    kiln_df_strv_push_n(flags, word.data ? word.data : "", word.len);
                word.len = 0;
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
                continue;
            }
            if (ch == '\\') {
                if (pos + 1 == n)
                    continue;
                pos++;
                ch = line[pos];
            }
            kiln_buf_append(&word, &ch, 1, NULL);
            continue;
        }
        if (ch == quote) {
            phase = IN_WORD;
            continue;
        }
        if (ch == '\\') {
            if (pos + 1 == n) {
                phase = IN_WORD;
                continue;
            }
            pos++;
            ch = line[pos];
        }
        kiln_buf_append(&word, &ch, 1, NULL);
    }
out:
    kiln_buf_free(&word);
    return ret;
}

int kiln_df_args_name_val(const char *rest, const char *key, char esc, kiln_df_strv_t *args,
                          kiln_error_t *err)
{
    kiln_df_strv_t words = {0};
    int ret = 0;

    kiln_df_args_words(rest, esc, &words);
    if (words.n == 0)
        return 0;
    if (strchr(words.v[0], '=') == NULL) {
        kiln_df_strv_t parts = {0};
        kiln_df_args_split_ws(rest, 2, &parts);
        if (parts.n < 2) {
            ret = kiln_error_set(err, 0, "%s must have two arguments", key);
        } else {
            kiln_df_strv_push(args, parts.v[0]);
            kiln_df_strv_push(args, parts.v[1]);
            kiln_df_strv_push(args, "");
        }
        kiln_df_strv_clear(&parts);
        kiln_df_strv_clear(&words);
        return ret;
    }
    for (size_t i = 0; i < words.n; i++) {
        char *eq = strchr(words.v[i], '=');
        if (eq == NULL) {
            ret = kiln_error_set(err, 0,
                                 "Syntax error - can't find = in \"%s\". Must be of the form: "
                                 "name=value",
                                 words.v[i]);
            break;
        }
        kiln_df_strv_push_n(args, words.v[i], (size_t)(eq - words.v[i]));
        kiln_df_strv_push(args, eq + 1);
        kiln_df_strv_push(args, "=");
    }
    kiln_df_strv_clear(&words);
    return ret;
}

int kiln_df_args_json(const char *rest, bool to_list, kiln_df_strv_t *args, bool *json,
                      kiln_error_t *err)
{
    int r;
    if (!to_list && rest[0] == '\0')
        return 0;
    r = parse_json(rest, args);
    if (r == JSON_OK) {
        *json = true;
        return 0;
    }
    if (r == JSON_NOT_STRINGS)
        return kiln_error_set(err, 0,
                              "when using JSON array syntax, arrays must be comprised of strings "
                              "only");
    if (to_list) {
        if (rest[0] != '\0')
            kiln_df_args_split_ws(rest, -1, args);
        return 0;
    }
    kiln_df_strv_push(args, rest);
    return 0;
}
