/* kiln — Dockerfile parser (BuildKit's AST, line numbers, heredocs). */
#include "handlers/dockerfile/parser.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/dockerfile/shell.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* A line longer than this is refused (BuildKit's scanner has a similar cap). */
#define DF_LINE_MAX (1u << 20)
#define DF_MAX_NODES 100000
#define DF_MAX_WARNINGS 64

typedef struct directives {
    char escape;
    bool done;
    bool seen_escape, seen_syntax, seen_check;
    char *syntax;
} directives_t;

/* A growable NULL-terminated string vector with optional lengths. */
typedef struct strv {
    char **v;
    size_t *lens;
    size_t n, alloc;
} strv_t;

static void strv_push_n(strv_t *s, const char *p, size_t n)
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

static void strv_push(strv_t *s, const char *p)
{
    strv_push_n(s, p, strlen(p));
}

static void strv_clear(strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    free(s->lens);
    memset(s, 0, sizeof(*s));
}

static bool is_go_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* BuildKit's reWhitespace: [\t\v\f\r ] (no newline). */
static bool is_ws_token(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static char *trim_space_dup(const char *s, size_t n)
{
    while (n > 0 && is_go_space((unsigned char)s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_go_space((unsigned char)s[n - 1]))
        n--;
    return kiln_xstrndup(s, n);
}

static void node_clear(kiln_df_node_t *n);

static void node_free(kiln_df_node_t *n)
{
    if (n == NULL)
        return;
    node_clear(n);
    free(n);
}

static void node_clear(kiln_df_node_t *n)
{
    free(n->keyword);
    free(n->original);
    kiln_strv_free(n->flags);
    kiln_strv_free(n->args);
    free(n->arg_lens);
    node_free(n->sub);
    for (size_t i = 0; i < n->n_heredocs; i++) {
        free(n->heredocs[i].name);
        free(n->heredocs[i].content);
    }
    free(n->heredocs);
    memset(n, 0, sizeof(*n));
}

void kiln_dockerfile_free(kiln_dockerfile_t *df)
{
    if (df == NULL)
        return;
    for (size_t i = 0; i < df->n_nodes; i++)
        node_clear(&df->nodes[i]);
    free(df->nodes);
    free(df->syntax);
    kiln_strv_free(df->warnings);
    free(df);
}

/* `# key=value` parser directives, only before anything else. */
static int possible_directive(directives_t *d, const char *line, size_t n, kiln_error_t *err)
{
    size_t i = 1, ks, ke, vs, ve;
    char key[16];

    if (d->done)
        return 0;
    if (n == 0 || line[0] != '#')
        goto done;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\f' || line[i] == '\r'))
        i++;
    ks = i;
    if (i >= n || !isalpha((unsigned char)line[i]))
        goto done;
    while (i < n && isalnum((unsigned char)line[i]))
        i++;
    ke = i;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\f' || line[i] == '\r'))
        i++;
    if (i >= n || line[i] != '=')
        goto done;
    i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\f' || line[i] == '\r'))
        i++;
    vs = i;
    ve = n;
    while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t' || line[ve - 1] == '\f' ||
                       line[ve - 1] == '\r'))
        ve--;
    if (ve == vs || ke - ks >= sizeof(key))
        goto done;
    for (size_t k = ks; k < ke; k++)
        key[k - ks] = (char)tolower((unsigned char)line[k]);
    key[ke - ks] = '\0';
    if (strcmp(key, "escape") == 0) {
        if (d->seen_escape)
            return kiln_error_set(err, 0, "only one escape parser directive can be used");
        d->seen_escape = true;
        if (ve - vs != 1 || (line[vs] != '`' && line[vs] != '\\'))
            return kiln_error_set(err, 0, "invalid escape token '%.*s' does not match ` or \\",
                                  (int)(ve - vs), line + vs);
        d->escape = line[vs];
        return 0;
    }
    if (strcmp(key, "syntax") == 0) {
        if (d->seen_syntax)
            return kiln_error_set(err, 0, "only one syntax parser directive can be used");
        d->seen_syntax = true;
        d->syntax = kiln_xstrndup(line + vs, ve - vs);
        return 0;
    }
    if (strcmp(key, "check") == 0) {
        if (d->seen_check)
            return kiln_error_set(err, 0, "only one check parser directive can be used");
        d->seen_check = true;
        return 0;
    }
done:
    d->done = true;
    return 0;
}

/* Removes the trailing escape token (and spaces after it) that continues the
 * line. Returns true when the line is complete (no continuation). */
static bool trim_continuation(char *line, size_t *n, char esc)
{
    size_t k = *n;
    while (k > 0 && (line[k - 1] == ' ' || line[k - 1] == '\t'))
        k--;
    if (k == 0 || line[k - 1] != esc)
        return true;
    k--; /* the escape token */
    if (k > 0 && line[k - 1] == esc)
        return true; /* an escaped escape token */
    *n = k;
    line[k] = '\0';
    return false;
}

/* BuildKit's parseWords: splits on whitespace, keeps quotes and escapes. */
static void parse_words(const char *rest, char esc, strv_t *out)
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
            if (is_go_space((unsigned char)ch))
                continue;
            phase = IN_WORD;
        }
        if (pos == n) {
            if (blank_ok || word.len > 0)
                strv_push_n(out, word.data ? word.data : "", word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (is_go_space((unsigned char)ch)) {
                phase = IN_SPACES;
                if (blank_ok || word.len > 0)
                    strv_push_n(out, word.data ? word.data : "", word.len);
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
static void split_ws(const char *s, int max, strv_t *out)
{
    size_t n = strlen(s), start = 0, i = 0;
    int parts = 0;
    while (i < n) {
        if (is_ws_token((unsigned char)s[i]) && (max < 0 || parts + 1 < max)) {
            size_t j = i;
            while (j < n && is_ws_token((unsigned char)s[j]))
                j++;
            strv_push_n(out, s + start, i - start);
            parts++;
            start = i = j;
            continue;
        }
        i++;
    }
    strv_push_n(out, s + start, n - start);
}

enum { JSON_OK = 0, JSON_NOT_JSON = 1, JSON_NOT_STRINGS = 2 };

/* A JSON array of strings → args. */
static int parse_json(const char *rest, strv_t *out)
{
    json_t *arr;
    json_error_t jerr;
    size_t i;
    json_t *v;

    while (*rest && is_go_space((unsigned char)*rest))
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
            strv_clear(out);
            return JSON_NOT_STRINGS;
        }
        strv_push_n(out, json_string_value(v), json_string_length(v));
    }
    json_decref(arr);
    return JSON_OK;
}

/* The `--flag[=value]` words before the arguments (BuildKit's extractBuilderFlags).
 * Returns the rest of the line (pointer into `line`). */
static const char *extract_flags(const char *line, strv_t *flags)
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
            if (is_go_space((unsigned char)ch))
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
                strv_push_n(flags, word.data ? word.data : "", word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (is_go_space((unsigned char)ch)) {
                phase = IN_SPACES;
                if (word.len == 2 && memcmp(word.data, "--", 2) == 0) {
                    ret = line + pos;
                    goto out;
                }
                if (blank_ok || word.len > 0)
                    strv_push_n(flags, word.data ? word.data : "", word.len);
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

static int parse_name_val(const char *rest, const char *key, char esc, strv_t *args,
                          kiln_error_t *err)
{
    strv_t words = {0};
    int ret = 0;

    parse_words(rest, esc, &words);
    if (words.n == 0)
        return 0;
    if (strchr(words.v[0], '=') == NULL) {
        strv_t parts = {0};
        split_ws(rest, 2, &parts);
        if (parts.n < 2) {
            ret = kiln_error_set(err, 0, "%s must have two arguments", key);
        } else {
            strv_push(args, parts.v[0]);
            strv_push(args, parts.v[1]);
            strv_push(args, "");
        }
        strv_clear(&parts);
        strv_clear(&words);
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
        strv_push_n(args, words.v[i], (size_t)(eq - words.v[i]));
        strv_push(args, eq + 1);
        strv_push(args, "=");
    }
    strv_clear(&words);
    return ret;
}

static int maybe_json(const char *rest, bool to_list, strv_t *args, bool *json, kiln_error_t *err)
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
            split_ws(rest, -1, args);
        return 0;
    }
    strv_push(args, rest);
    return 0;
}

static bool kw_is(const char *kw, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(kw, *list) == 0)
            return true;
    return false;
}

/* Splits the instruction keyword and flags off a joined line and parses the
 * arguments the way that instruction expects. */
static int node_from_line(const char *line, directives_t *d, int depth, kiln_df_node_t *node,
                          kiln_error_t *err)
{
    _cleanup_free_ char *trimmed = trim_space_dup(line, strlen(line));
    _cleanup_free_ char *rest = NULL;
    strv_t flags = {0}, args = {0};
    size_t k = 0;
    bool json = false;
    int ret = 0;
    static const char *const json_list[] = {"add", "copy", "volume", NULL};
    static const char *const maybe_json_kw[] = {"cmd", "entrypoint", "run", "shell", NULL};
    static const char *const ws_list[] = {"expose", "from", NULL};
    static const char *const str_kw[] = {"maintainer", "stopsignal", "user", "workdir", NULL};

    memset(node, 0, sizeof(*node));
    while (trimmed[k] && !is_ws_token((unsigned char)trimmed[k]))
        k++;
    node->keyword = kiln_xstrndup(trimmed, k);
    for (char *p = node->keyword; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    node->original = kiln_xstrdup(line);
    if (trimmed[k]) {
        const char *r;
        while (trimmed[k] && is_ws_token((unsigned char)trimmed[k]))
            k++;
        r = extract_flags(trimmed + k, &flags);
        rest = trim_space_dup(r, strlen(r));
    } else {
        rest = kiln_xstrdup("");
    }

    if (kw_is(node->keyword, json_list)) {
        ret = maybe_json(rest, true, &args, &json, err);
    } else if (kw_is(node->keyword, maybe_json_kw)) {
        ret = maybe_json(rest, false, &args, &json, err);
    } else if (strcmp(node->keyword, "arg") == 0) {
        parse_words(rest, d->escape, &args);
    } else if (strcmp(node->keyword, "env") == 0 || strcmp(node->keyword, "label") == 0) {
        ret = parse_name_val(rest, strcmp(node->keyword, "env") == 0 ? "ENV" : "LABEL", d->escape,
                             &args, err);
    } else if (kw_is(node->keyword, ws_list)) {
        if (rest[0])
            split_ws(rest, -1, &args);
    } else if (kw_is(node->keyword, str_kw)) {
        if (rest[0])
            strv_push(&args, rest);
    } else if (strcmp(node->keyword, "healthcheck") == 0) {
        size_t sep = 0, nx;
        while (rest[sep] && !is_go_space((unsigned char)rest[sep]))
            sep++;
        nx = sep;
        while (rest[nx] && is_go_space((unsigned char)rest[nx]))
            nx++;
        if (sep > 0) {
            strv_push_n(&args, rest, sep);
            ret = maybe_json(rest + nx, false, &args, &json, err);
        }
    } else if (strcmp(node->keyword, "onbuild") == 0) {
        if (rest[0]) {
            if (depth > 0) {
                ret = kiln_error_set(err, 0, "ONBUILD ONBUILD is not allowed");
            } else {
                node->sub = kiln_xzalloc(sizeof(*node->sub));
                ret = node_from_line(rest, d, depth + 1, node->sub, err);
            }
        }
    } else {
        strv_push(&args, ""); /* unknown instruction: BuildKit keeps an empty argument */
    }

    if (ret < 0) {
        strv_clear(&flags);
        strv_clear(&args);
        node_clear(node);
        return ret;
    }
    node->flags = flags.v ? flags.v : kiln_xzalloc(sizeof(char *));
    node->n_flags = flags.n;
    free(flags.lens);
    node->args = args.v ? args.v : kiln_xzalloc(sizeof(char *));
    node->n_args = args.n;
    node->arg_lens = args.lens;
    node->json = json;
    return 0;
}

/* `^(\d*)<<(-?)([^<]*)$` on one word, then BuildKit's heredocFromMatch. Sets
 * *found when the word is a heredoc start. */
static int heredoc_from_word(const char *w, kiln_df_heredoc_t *h, bool *found, kiln_error_t *err)
{
    const char *p = w, *rest;
    unsigned long fd = 0;
    bool chomp = false;
    kiln_shell_opts_t o = {.escape = '\\', .skip_unset = true};
    _cleanup_strv_ char **words = NULL;
    _cleanup_strv_ char **raw = NULL;
    size_t nw = 0, nr = 0, q1 = 0, q2 = 0;

    *found = false;
    while (*p >= '0' && *p <= '9') {
        fd = fd * 10 + (unsigned long)(*p - '0');
        if (fd > 1000000)
            return 0;
        p++;
    }
    if (p[0] != '<' || p[1] != '<')
        return 0;
    p += 2;
    if (*p == '-') {
        chomp = true;
        p++;
    }
    rest = p;
    if (strchr(rest, '<') != NULL || rest[0] == '\0')
        return 0;
    if (kiln_shell_process_words(rest, &o, NULL, &words, &nw, err) < 0)
        return -1;
    if (nw != 1)
        return 0;
    o.raw_quotes = true;
    if (kiln_shell_process_words(rest, &o, NULL, &raw, &nr, err) < 0)
        return -1;
    if (nr != nw)
        return kiln_error_set(err, 0,
                              "internal lexing of heredoc produced inconsistent results: %s", rest);
    for (const char *c = words[0]; *c; c++)
        q1 += *c == '\'' || *c == '"';
    for (const char *c = raw[0]; *c; c++)
        q2 += *c == '\'' || *c == '"';
    h->name = kiln_xstrdup(words[0]);
    h->fd = (unsigned)fd;
    h->chomp = chomp;
    h->expand = q1 == q2;
    h->content = NULL;
    *found = true;
    return 0;
}

static bool can_contain_heredoc(const kiln_df_node_t *n)
{
    static const char *const kws[] = {"add", "copy", "run", NULL};
    if (strcmp(n->keyword, "onbuild") == 0 && n->sub != NULL)
        n = n->sub;
    return kw_is(n->keyword, kws) && !n->json;
}

typedef struct line_iter {
    const char *p, *end;
} line_iter_t;

/* Next line including its newline; false at the end. */
static bool next_line(line_iter_t *it, const char **line, size_t *n)
{
    const char *nl;
    if (it->p >= it->end)
        return false;
    nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    *line = it->p;
    *n = nl ? (size_t)(nl - it->p) + 1 : (size_t)(it->end - it->p);
    it->p += *n;
    return true;
}

static size_t trim_newline_len(const char *l, size_t n)
{
    while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == '\n'))
        n--;
    return n;
}

static size_t leading_ws(const char *l, size_t n)
{
    size_t i = 0;
    while (i < n && is_go_space((unsigned char)l[i]))
        i++;
    return i;
}

static bool is_comment_line(const char *l, size_t n)
{
    size_t t = trim_newline_len(l, n), i = leading_ws(l, t);
    return i < t && l[i] == '#';
}

/* processLine: trims the newline, optionally leading whitespace, looks for a
 * directive and drops a comment. Returns a malloc'ed line. */
static int process_line(directives_t *d, const char *l, size_t n, bool strip, char **out,
                        size_t *outn, kiln_error_t *err)
{
    size_t t = trim_newline_len(l, n), s = strip ? leading_ws(l, t) : 0;
    if (t - s > DF_LINE_MAX)
        return kiln_error_set(err, 0, "dockerfile line greater than max allowed size of %u",
                              DF_LINE_MAX);
    if (possible_directive(d, l + s, t - s, err) < 0)
        return -1;
    if (t > s && l[s] == '#')
        s = t;
    *out = kiln_xstrndup(l + s, t - s);
    *outn = strlen(*out); /* a NUL byte ends the line */
    return 0;
}

static int add_warning(kiln_dockerfile_t *df, const char *line)
{
    if (df->n_warnings >= DF_MAX_WARNINGS)
        return 0;
    df->warnings = kiln_xrealloc(df->warnings, (df->n_warnings + 2) * sizeof(char *));
    df->warnings[df->n_warnings++] =
        kiln_xasprintf("[WARNING]: Empty continuation line found in:\n    %s", line);
    df->warnings[df->n_warnings] = NULL;
    return 0;
}

static int parse_heredocs(kiln_df_node_t *child, const char *line, line_iter_t *it, int *cur,
                          int start, const char *name, kiln_error_t *err)
{
    kiln_shell_opts_t o = {
        .escape = '\\', .raw_quotes = true, .raw_escapes = true, .skip_unset = true};
    _cleanup_strv_ char **words = NULL;
    size_t nw = 0;
    kiln_error_t ignored = {0};

    if (kiln_shell_process_words(line, &o, NULL, &words, &nw, &ignored) < 0)
        return 0; /* BuildKit ignores lexing errors here: no heredocs */
    for (size_t i = 0; i < nw; i++) {
        kiln_df_heredoc_t h = {0};
        bool found = false, terminated = false;
        kiln_buf_t content;
        const char *l;
        size_t n;

        if (heredoc_from_word(words[i], &h, &found, err) < 0)
            return kiln_error_prefix(err, "%s:%d", name, start);
        if (!found)
            continue;
        kiln_buf_init(&content, KILN_DOCKERFILE_MAX);
        while (next_line(it, &l, &n)) {
            size_t t = trim_newline_len(l, n), s = 0;
            (*cur)++;
            if (h.chomp)
                while (s < t && l[s] == '\t')
                    s++;
            if (t - s == strlen(h.name) && memcmp(l + s, h.name, t - s) == 0) {
                terminated = true;
                break;
            }
            kiln_buf_append(&content, l, n, NULL);
        }
        h.content = kiln_buf_steal(&content, NULL);
        child->heredocs =
            kiln_xrealloc(child->heredocs, (child->n_heredocs + 1) * sizeof(kiln_df_heredoc_t));
        child->heredocs[child->n_heredocs++] = h;
        if (!terminated)
            return kiln_error_set(err, 0, "%s:%d: unterminated heredoc %s", name, start, h.name);
    }
    return 0;
}

int kiln_dockerfile_parse(const char *text, size_t len, const char *name, kiln_dockerfile_t **out,
                          kiln_error_t *err)
{
    directives_t d = {.escape = '\\'};
    kiln_dockerfile_t *df;
    line_iter_t it = {text, text + len};
    const char *l;
    size_t n;
    int cur = 0;
    size_t alloc = 0;

    if (name == NULL)
        name = "Dockerfile";
    if (len > KILN_DOCKERFILE_MAX)
        return kiln_error_set(err, EFBIG, "%s: larger than %u bytes", name, KILN_DOCKERFILE_MAX);
    df = kiln_xzalloc(sizeof(*df));
    df->start_line = -1;
    while (next_line(&it, &l, &n)) {
        _cleanup_free_ char *line = NULL;
        size_t ln;
        int start;
        bool end, has_empty = false;
        kiln_buf_t joined;
        kiln_df_node_t child;

        if (cur == 0 && n >= 3 && memcmp(l, "\xEF\xBB\xBF", 3) == 0) {
            l += 3;
            n -= 3;
        }
        if (process_line(&d, l, n, true, &line, &ln, err) < 0) {
            kiln_error_prefix(err, "%s:%d", name, cur + 1);
            goto fail;
        }
        cur++;
        start = cur;
        end = trim_continuation(line, &ln, d.escape);
        if (end && ln == 0)
            continue;
        kiln_buf_init(&joined, KILN_DOCKERFILE_MAX);
        kiln_buf_append(&joined, line, ln, NULL);
        while (!end && next_line(&it, &l, &n)) {
            _cleanup_free_ char *cl = NULL;
            size_t cn;
            if (process_line(&d, l, n, false, &cl, &cn, err) < 0) {
                kiln_buf_free(&joined);
                kiln_error_prefix(err, "%s:%d", name, cur + 1);
                goto fail;
            }
            cur++;
            if (is_comment_line(l, n))
                continue;
            if (leading_ws(cl, cn) == cn) {
                has_empty = true;
                continue;
            }
            end = trim_continuation(cl, &cn, d.escape);
            kiln_buf_append(&joined, cl, cn, NULL);
        }
        if (joined.data == NULL)
            kiln_buf_append(&joined, "", 0, NULL);
        if (has_empty)
            add_warning(df, joined.data);
        if (node_from_line(joined.data, &d, 0, &child, err) < 0) {
            kiln_error_prefix(err, "%s:%d", name, start);
            kiln_buf_free(&joined);
            goto fail;
        }
        if (can_contain_heredoc(&child) &&
            parse_heredocs(&child, joined.data, &it, &cur, start, name, err) < 0) {
            kiln_buf_free(&joined);
            node_clear(&child);
            goto fail;
        }
        kiln_buf_free(&joined);
        if (df->n_nodes >= DF_MAX_NODES) {
            node_clear(&child);
            kiln_error_set(err, 0, "%s: more than %d instructions", name, DF_MAX_NODES);
            goto fail;
        }
        if (df->n_nodes == alloc) {
            alloc = alloc ? alloc * 2 : 32;
            df->nodes = kiln_xrealloc(df->nodes, alloc * sizeof(kiln_df_node_t));
        }
        child.start_line = start;
        child.end_line = cur;
        df->nodes[df->n_nodes++] = child;
        if (df->start_line < 0)
            df->start_line = start;
        df->end_line = cur;
    }
    if (df->start_line < 0) {
        kiln_error_set(err, 0, "%s:%d: file with no instructions", name, cur);
        goto fail;
    }
    df->escape = d.escape;
    df->syntax = steal_pointer(&d.syntax);
    if (df->warnings == NULL)
        df->warnings = kiln_xzalloc(sizeof(char *));
    *out = df;
    return 0;
fail:
    free(d.syntax);
    kiln_dockerfile_free(df);
    return -1;
}

int kiln_df_go_quote(const char *s, kiln_buf_t *out, kiln_error_t *err)
{
    return kiln_df_go_quote_n(s, strlen(s), out, err);
}

int kiln_df_go_quote_n(const char *s, size_t n, kiln_buf_t *out, kiln_error_t *err)
{
    static const char hex[] = "0123456789abcdef";
    if (kiln_buf_append(out, "\"", 1, err) < 0)
        return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char esc[12];
        size_t el = 0;
        if (c >= 0x80) {
            size_t l = 1;
            unsigned cp = 0;
            if ((c >> 5) == 6)
                l = 2, cp = c & 0x1F;
            else if ((c >> 4) == 14)
                l = 3, cp = c & 0x0F;
            else if ((c >> 3) == 30)
                l = 4, cp = c & 0x07;
            for (size_t k = 1; k < l; k++) {
                if (i + k >= n || ((unsigned char)s[i + k] & 0xC0) != 0x80) {
                    l = 1;
                    break;
                }
                cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
            }
            if (l == 1 || (l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) ||
                (l == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
                esc[0] = '\\', esc[1] = 'x', esc[2] = hex[c >> 4], esc[3] = hex[c & 15];
                if (kiln_buf_append(out, esc, 4, err) < 0)
                    return -1;
                i++;
                continue;
            }
            /* Go escapes non-printable runes; the common ones are C1 controls,
             * NBSP, soft hyphen, line/paragraph separators and the BOM. */
            if ((cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x2028 || cp == 0x2029 ||
                cp == 0xFEFF) {
                int w = snprintf(esc, sizeof(esc), "\\u%04x", cp);
                if (kiln_buf_append(out, esc, (size_t)w, err) < 0)
                    return -1;
            } else if (kiln_buf_append(out, s + i, l, err) < 0) {
                return -1;
            }
            i += l;
            continue;
        }
        {
            /* Go's short escapes, in the order of `shorts`. */
            static const char shorts[] = "\a\b\f\n\r\t\v\"\\";
            static const char letters[] = "abfnrtv\"\\";
            const char *hit = c ? strchr(shorts, (char)c) : NULL;
            if (hit != NULL) {
                esc[0] = '\\', esc[1] = letters[hit - shorts];
                el = 2;
            } else if (c < 0x20 || c == 0x7F) {
                esc[0] = '\\', esc[1] = 'x', esc[2] = hex[c >> 4], esc[3] = hex[c & 15];
                el = 4;
            } else {
                esc[0] = (char)c;
                el = 1;
            }
        }
        if (kiln_buf_append(out, esc, el, err) < 0)
            return -1;
        i++;
    }
    return kiln_buf_append(out, "\"", 1, err);
}

int kiln_df_node_dump(const kiln_df_node_t *node, kiln_buf_t *out, kiln_error_t *err)
{
    if (kiln_buf_append(out, node->keyword, strlen(node->keyword), err) < 0)
        return -1;
    if (node->n_flags > 0) {
        if (kiln_buf_append(out, " [", 2, err) < 0)
            return -1;
        for (size_t i = 0; i < node->n_flags; i++) {
            if ((i > 0 && kiln_buf_append(out, " ", 1, err) < 0) ||
                kiln_df_go_quote(node->flags[i], out, err) < 0)
                return -1;
        }
        if (kiln_buf_append(out, "]", 1, err) < 0)
            return -1;
    }
    if (node->sub != NULL) {
        if (kiln_buf_append(out, " (", 2, err) < 0 || kiln_df_node_dump(node->sub, out, err) < 0 ||
            kiln_buf_append(out, ")", 1, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < node->n_args; i++) {
        size_t l = node->arg_lens ? node->arg_lens[i] : strlen(node->args[i]);
        if (kiln_buf_append(out, " ", 1, err) < 0 ||
            kiln_df_go_quote_n(node->args[i], l, out, err) < 0)
            return -1;
    }
    return 0;
}

int kiln_dockerfile_dump(const kiln_dockerfile_t *df, kiln_buf_t *out, kiln_error_t *err)
{
    for (size_t i = 0; i < df->n_nodes; i++) {
        if (kiln_buf_append(out, "(", 1, err) < 0 ||
            kiln_df_node_dump(&df->nodes[i], out, err) < 0 ||
            kiln_buf_append(out, ")\n", 2, err) < 0)
            return -1;
    }
    return 0;
}

char *kiln_df_heredoc_content(const kiln_df_heredoc_t *h)
{
    kiln_buf_t b;
    const char *p = h->content ? h->content : "";
    bool bol = true;

    if (!h->chomp)
        return kiln_xstrdup(p);
    kiln_buf_init(&b, 0);
    for (; *p; p++) {
        if (bol && *p == '\t')
            continue;
        bol = *p == '\n';
        kiln_buf_append(&b, p, 1, NULL);
    }
    return kiln_buf_steal(&b, NULL);
}
