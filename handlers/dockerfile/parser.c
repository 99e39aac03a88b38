/* kiln — Dockerfile parser (BuildKit's AST): directives (escape, syntax, check), comments,
 * line continuations, one node per instruction with its line numbers, ONBUILD sub-nodes,
 * heredocs, warnings; each instruction's arguments read by its form (parser_args.c). The
 * dump BuildKit's tests compare is parser_dump.c. */
#include "handlers/dockerfile/parser.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/dockerfile/parser_args.h"
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
    _cleanup_free_ char *trimmed = kiln_df_trim_space_dup(line, strlen(line));
    _cleanup_free_ char *rest = NULL;
    kiln_df_strv_t flags = {0}, args = {0};
    size_t k = 0;
    bool json = false;
    int ret = 0;
    static const char *const json_list[] = {"add", "copy", "volume", NULL};
    static const char *const maybe_json_kw[] = {"cmd", "entrypoint", "run", "shell", NULL};
    static const char *const ws_list[] = {"expose", "from", NULL};
    static const char *const str_kw[] = {"maintainer", "stopsignal", "user", "workdir", NULL};

    memset(node, 0, sizeof(*node));
    while (trimmed[k] && !kiln_df_is_ws_token((unsigned char)trimmed[k]))
        k++;
    node->keyword = kiln_xstrndup(trimmed, k);
    for (char *p = node->keyword; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    node->original = kiln_xstrdup(line);
    if (trimmed[k]) {
        const char *r;
        while (trimmed[k] && kiln_df_is_ws_token((unsigned char)trimmed[k]))
            k++;
        r = kiln_df_args_flags(trimmed + k, &flags);
        rest = kiln_df_trim_space_dup(r, strlen(r));
    } else {
        rest = kiln_xstrdup("");
    }

    if (kw_is(node->keyword, json_list)) {
        ret = kiln_df_args_json(rest, true, &args, &json, err);
    } else if (kw_is(node->keyword, maybe_json_kw)) {
        ret = kiln_df_args_json(rest, false, &args, &json, err);
    } else if (strcmp(node->keyword, "arg") == 0) {
        kiln_df_args_words(rest, d->escape, &args);
    } else if (strcmp(node->keyword, "env") == 0 || strcmp(node->keyword, "label") == 0) {
        ret = kiln_df_args_name_val(rest, strcmp(node->keyword, "env") == 0 ? "ENV" : "LABEL",
                                    d->escape, &args, err);
    } else if (kw_is(node->keyword, ws_list)) {
        if (rest[0])
            kiln_df_args_split_ws(rest, -1, &args);
    } else if (kw_is(node->keyword, str_kw)) {
        if (rest[0])
            kiln_df_strv_push(&args, rest);
    } else if (strcmp(node->keyword, "healthcheck") == 0) {
        size_t sep = 0, nx;
        while (rest[sep] && !kiln_df_is_go_space((unsigned char)rest[sep]))
            sep++;
        nx = sep;
        while (rest[nx] && kiln_df_is_go_space((unsigned char)rest[nx]))
            nx++;
        if (sep > 0) {
            kiln_df_strv_push_n(&args, rest, sep);
            ret = kiln_df_args_json(rest + nx, false, &args, &json, err);
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
        kiln_df_strv_push(&args, ""); /* unknown instruction: BuildKit keeps an empty argument */
    }

    if (ret < 0) {
        kiln_df_strv_clear(&flags);
        kiln_df_strv_clear(&args);
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
    while (i < n && kiln_df_is_go_space((unsigned char)l[i]))
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
