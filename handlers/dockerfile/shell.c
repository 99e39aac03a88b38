/* kiln — Dockerfile word expansion (BuildKit shell lexer semantics). */
#include "handlers/dockerfile/shell.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Expansion output cap: a Dockerfile word never legitimately gets this big. */
#define SHELL_OUT_CAP (64u << 20)
/* Nesting cap for ${a:-${b:-${c…}}} so hostile input cannot blow the stack. */
#define SHELL_MAX_DEPTH 64
#define SH_EOF (-1)

typedef struct shell_word {
    const char *s;
    size_t len;
    size_t pos;
    char escape;
    bool raw_quotes;
    bool raw_escapes;
    bool skip_unset;
    bool skip_quotes;
    int depth;
    const kiln_shell_env_t *env;
} shell_word_t;

typedef struct words {
    kiln_buf_t buf;
    char **v;
    size_t n, alloc;
    bool in_word;
} words_t;

/* Length of the UTF-8 sequence starting at p (1 for an invalid byte). */
static size_t utf8_len(const char *p, size_t avail)
{
    unsigned char c = (unsigned char)p[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n > avail)
        return 1;
    for (size_t i = 1; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80)
            return 1;
    return n;
}

/* unicode.IsSpace for one UTF-8 sequence (ASCII space set, U+0085, U+00A0). */
static bool is_space_seq(const char *p, size_t l)
{
    if (l == 1)
        return p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r');
    if (l == 2 && (unsigned char)p[0] == 0xC2)
        return (unsigned char)p[1] == 0x85 || (unsigned char)p[1] == 0xA0;
    return false;
}

static int peek(const shell_word_t *sw)
{
    return sw->pos < sw->len ? (unsigned char)sw->s[sw->pos] : SH_EOF;
}

/* Consumes one character (a whole UTF-8 sequence); returns its length, 0 at EOF. */
static size_t next_seq(shell_word_t *sw, const char **start)
{
    size_t l;
    if (sw->pos >= sw->len)
        return 0;
    *start = sw->s + sw->pos;
    l = utf8_len(sw->s + sw->pos, sw->len - sw->pos);
    sw->pos += l;
    return l;
}

static void words_push(words_t *w)
{
    if (w->n + 2 > w->alloc) {
        w->alloc = w->alloc ? w->alloc * 2 : 8;
        w->v = kiln_xrealloc(w->v, w->alloc * sizeof(char *));
    }
    w->v[w->n++] = kiln_buf_steal(&w->buf, NULL);
    w->v[w->n] = NULL;
    w->in_word = false;
}

static int words_add_raw(words_t *w, const char *p, size_t l, kiln_error_t *err)
{
    w->in_word = true;
    return kiln_buf_append(&w->buf, p, l, err);
}

static int words_add_char(words_t *w, const char *p, size_t l, kiln_error_t *err)
{
    if (is_space_seq(p, l)) {
        if (w->in_word && w->buf.len != 0)
            words_push(w);
        return 0;
    }
    return words_add_raw(w, p, l, err);
}

static int words_add_string(words_t *w, const char *s, kiln_error_t *err)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(s + i, n - i);
        if (words_add_char(w, s + i, l, err) < 0)
            return -1;
        i += l;
    }
    return 0;
}

static char **words_finish(words_t *w, size_t *n)
{
    if (w->buf.len > 0)
        words_push(w);
    kiln_buf_free(&w->buf);
    if (w->v == NULL)
        w->v = kiln_xzalloc(sizeof(char *));
    if (n)
        *n = w->n;
    w->n = 0;
    return steal_pointer(&w->v);
}

static void words_free(words_t *w)
{
    kiln_buf_free(&w->buf);
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
    w->v = NULL;
    w->n = 0;
}

/* Looks a variable up: the callback first, then vars (last one wins). */
static const char *get_env(const shell_word_t *sw, const char *name)
{
    const kiln_shell_env_t *env = sw->env;
    const char *val = NULL;
    size_t nl = strlen(name);

    if (env == NULL)
        return NULL;
    if (env->lookup != NULL)
        val = env->lookup(env->ctx, name);
    for (size_t i = env->n_vars; val == NULL && i > 0; i--) {
        const char *kv = env->vars[i - 1];
        if (strncmp(kv, name, nl) == 0 && (kv[nl] == '=' || kv[nl] == '\0'))
            val = kv[nl] == '=' ? kv + nl + 1 : "";
    }
    if (env->on_use != NULL)
        env->on_use(env->ctx, name, val != NULL);
    return val;
}

static int process_stop_on(shell_word_t *sw, int stop, bool raw_escapes, char **out, words_t *words,
                           kiln_error_t *err);
static int process_dollar(shell_word_t *sw, char **out, kiln_error_t *err);

static bool is_special_param(int c)
{
    return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!' ||
           c == '0';
}

static bool is_name_char(int c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

/* Reads a variable name: all digits, one special parameter, or [letters digits _]+. */
static char *process_name(shell_word_t *sw)
{
    size_t start = sw->pos;
    int c = peek(sw);

    if (c >= '0' && c <= '9') {
        while (peek(sw) >= '0' && peek(sw) <= '9')
            sw->pos++;
    } else if (is_special_param(c)) {
        sw->pos++;
    } else {
        while (sw->pos < sw->len && is_name_char(peek(sw)))
            sw->pos += utf8_len(sw->s + sw->pos, sw->len - sw->pos);
    }
    return kiln_xstrndup(sw->s + start, sw->pos - start);
}

static int process_single_quote(shell_word_t *sw, kiln_buf_t *res, kiln_error_t *err)
{
    sw->pos++; /* the opening quote */
    if (sw->raw_quotes && kiln_buf_append(res, "'", 1, err) < 0)
        return -1;
    for (;;) {
        const char *p;
        size_t l = next_seq(sw, &p);
        if (l == 0)
            return kiln_error_set(
                err, 0, "unexpected end of statement while looking for matching single-quote");
        if (l == 1 && *p == '\'')
            return sw->raw_quotes ? kiln_buf_append(res, "'", 1, err) : 0;
        if (kiln_buf_append(res, p, l, err) < 0)
            return -1;
    }
}

static int process_double_quote(shell_word_t *sw, kiln_buf_t *res, kiln_error_t *err)
{
    sw->pos++;
    if (sw->raw_quotes && kiln_buf_append(res, "\"", 1, err) < 0)
        return -1;
    for (;;) {
        int c = peek(sw);
        const char *p;
        size_t l;

        if (c == SH_EOF)
            return kiln_error_set(
                err, 0, "unexpected end of statement while looking for matching double-quote");
        if (c == '"') {
            sw->pos++;
            return sw->raw_quotes ? kiln_buf_append(res, "\"", 1, err) : 0;
        }
        if (c == '$') {
            _cleanup_free_ char *v = NULL;
            if (process_dollar(sw, &v, err) < 0 || kiln_buf_append(res, v, strlen(v), err) < 0)
                return -1;
            continue;
        }
        l = next_seq(sw, &p);
        if (l == 1 && *p == sw->escape) {
            int n = peek(sw);
            if (sw->raw_escapes && kiln_buf_append(res, p, 1, err) < 0)
                return -1;
            if (n == SH_EOF)
                continue;
            if (n == '"' || n == '$' || n == sw->escape)
                l = next_seq(sw, &p);
        }
        if (kiln_buf_append(res, p, l, err) < 0)
            return -1;
    }
}

/* Full match of a shell pattern (`*`, `?`, `\x`) against str[0..n). Returns
 * 1 on match, 0 on no match, -1 on an invalid escape. */
static int glob_full(const char *pat, size_t pl, const char *str, size_t n)
{
    size_t i = 0;
    while (i < pl) {
        char c = pat[i];
        if (c == '*') {
            for (size_t k = 0; k <= n; k++) {
                int r = glob_full(pat + i + 1, pl - i - 1, str + k, n - k);
                if (r != 0)
                    return r;
            }
            return 0;
        }
        if (c == '?') {
            size_t l;
            if (n == 0)
                return 0;
            l = utf8_len(str, n);
            str += l;
            n -= l;
            i++;
            continue;
        }
        if (c == '\\') {
            if (i + 1 < pl && (pat[i + 1] == '}' || pat[i + 1] == '/')) {
                i++;
                continue;
            }
            if (i + 1 >= pl || (pat[i + 1] != '*' && pat[i + 1] != '?' && pat[i + 1] != '\\'))
                return -1;
            i++;
            c = pat[i];
        }
        if (n == 0 || *str != c)
            return 0;
        str++;
        n--;
        i++;
    }
    return n == 0 ? 1 : 0;
}

/* Does the pattern match str[0..n)? Fails on an invalid pattern. */
static int glob_check(const char *pat, const char *str, size_t n, bool *match, kiln_error_t *err)
{
    int r = glob_full(pat, strlen(pat), str, n);
    if (r < 0)
        return kiln_error_set(err, 0, "invalid pattern (%s) in substitution", pat);
    *match = r == 1;
    return 0;
}

/* ${V#p} ${V##p} ${V%p} ${V%%p}: removes the shortest/longest matching prefix/suffix. */
static int trim_affix(const char *pat, const char *value, bool suffix, bool greedy, char **out,
                      kiln_error_t *err)
{
    size_t n = strlen(value);
    for (size_t k = 0; k <= n; k++) {
        size_t l = greedy ? n - k : k;
        bool m = false;
        if (glob_check(pat, suffix ? value + n - l : value, l, &m, err) < 0)
            return -1;
        if (m) {
            *out = suffix ? kiln_xstrndup(value, n - l) : kiln_xstrdup(value + l);
            return 0;
        }
    }
    *out = kiln_xstrdup(value);
    return 0;
}

/* ${V/p/r} and ${V//p/r}: leftmost, longest match replaced once or everywhere. */
static int replace_pattern(const char *pat, const char *repl, const char *value, bool all,
                           char **out, kiln_error_t *err)
{
    kiln_buf_t b;
    size_t n = strlen(value), i = 0;
    bool done = false;

    kiln_buf_init(&b, SHELL_OUT_CAP);
    while (i <= n) {
        size_t found = (size_t)-1;
        if (!done) {
            for (size_t e = n; e + 1 > i; e--) {
                bool m = false;
                if (glob_check(pat, value + i, e - i, &m, err) < 0) {
                    kiln_buf_free(&b);
                    return -1;
                }
                if (m) {
                    found = e;
                    break;
                }
            }
        }
        if (found != (size_t)-1) {
            if (kiln_buf_append(&b, repl, strlen(repl), err) < 0)
                goto fail;
            if (!all)
                done = true;
            if (found > i) {
                i = found;
                continue;
            }
        }
        if (i == n)
            break;
        {
            size_t l = utf8_len(value + i, n - i);
            if (kiln_buf_append(&b, value + i, l, err) < 0)
                goto fail;
            i += l;
        }
    }
    *out = kiln_buf_steal(&b, NULL);
    return 0;
fail:
    kiln_buf_free(&b);
    return -1;
}

/* Reads the word of ${V<op>word} up to its closing brace. */
static int stop_on_brace(shell_word_t *sw, bool raw, char **word, kiln_error_t *err)
{
    int r;
    sw->depth++;
    r = process_stop_on(sw, '}', raw, word, NULL, err);
    sw->depth--;
    if (r < 0 && peek(sw) == SH_EOF)
        return kiln_error_set(err, 0, "syntax error: missing '}'");
    return r;
}

/* Processes a `$…` reference at the scanner position; *out is malloc'ed. */
static int process_dollar(shell_word_t *sw, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *name = NULL;
    _cleanup_free_ char *word = NULL;
    const char *value;
    char chs[3] = {0};
    bool null_is_unset = false;
    int c;

    sw->pos++; /* '$' */
    if (peek(sw) != '{') {
        name = process_name(sw);
        if (name[0] == '\0') {
            *out = kiln_xstrdup("$");
            return 0;
        }
        value = get_env(sw, name);
        if (value == NULL && sw->skip_unset)
            *out = kiln_xasprintf("$%s", name);
        else
            *out = kiln_xstrdup(value ? value : "");
        return 0;
    }
    sw->pos++;
    c = peek(sw);
    if (c == SH_EOF)
        return kiln_error_set(err, 0, "syntax error: missing '}'");
    if (c == '{' || c == '}' || c == ':')
        return kiln_error_set(err, 0, "syntax error: bad substitution");
    if (sw->depth >= SHELL_MAX_DEPTH)
        return kiln_error_set(err, 0, "substitutions nested too deeply");
    name = process_name(sw);
    c = peek(sw);
    if (c != SH_EOF)
        sw->pos++;
    chs[0] = c == SH_EOF ? '?' : (char)c;

    if (c == '}') {
        value = get_env(sw, name);
        if (value == NULL && sw->skip_unset)
            *out = kiln_xasprintf("${%s}", name);
        else
            *out = kiln_xstrdup(value ? value : "");
        return 0;
    }
    if (c == ':') {
        null_is_unset = true;
        c = peek(sw);
        if (c != SH_EOF)
            sw->pos++;
        chs[1] = c == SH_EOF ? '?' : (char)c;
    }
    if (c == '+' || c == '-' || c == '?' || c == '#' || c == '%') {
        bool raw = c == '#' || c == '%';
        if (null_is_unset && raw)
            return kiln_error_set(err, 0, "unsupported modifier (%s) in substitution", chs);
        if (stop_on_brace(sw, raw, &word, err) < 0)
            return -1;
        value = get_env(sw, name);
        if (value == NULL && sw->skip_unset) {
            *out = kiln_xasprintf("${%s%s%s}", name, chs, word);
            return 0;
        }
        switch (c) {
        case '-':
            *out =
                kiln_xstrdup(value == NULL || (null_is_unset && value[0] == '\0') ? word : value);
            return 0;
        case '+':
            *out = kiln_xstrdup(value == NULL || (null_is_unset && value[0] == '\0') ? "" : word);
            return 0;
        case '?':
            if (value == NULL)
                return kiln_error_set(err, 0, "%s: %s", name,
                                      word[0] ? word : "is not allowed to be unset");
            if (null_is_unset && value[0] == '\0')
                return kiln_error_set(err, 0, "%s: %s", name,
                                      word[0] ? word : "is not allowed to be empty");
            *out = kiln_xstrdup(value);
            return 0;
        default: {
            bool greedy = word[0] == (char)c;
            return trim_affix(greedy ? word + 1 : word, value ? value : "", c == '%', greedy, out,
                              err);
        }
        }
    }
    if (c == '/' && !null_is_unset) {
        _cleanup_free_ char *pattern = NULL;
        bool all = peek(sw) == '/';
        int r;
        if (all)
            sw->pos++;
        sw->depth++;
        r = process_stop_on(sw, '/', true, &pattern, NULL, err);
        if (r < 0) {
            sw->depth--;
            if (peek(sw) == SH_EOF)
                return kiln_error_set(err, 0, "syntax error: missing '/' in ${}");
            return -1;
        }
        r = stop_on_brace(sw, true, &word, err);
        sw->depth--;
        if (r < 0)
            return -1;
        value = get_env(sw, name);
        if (value == NULL && sw->skip_unset) {
            *out = kiln_xasprintf("${%s/%s/%s}", name, pattern, word);
            return 0;
        }
        return replace_pattern(pattern, word, value ? value : "", all, out, err);
    }
    return kiln_error_set(err, 0, "unsupported modifier (%s) in substitution", chs);
}

/* Processes until `stop` (or the end when stop is SH_EOF). *out gets the
 * joined result; when words is not NULL the split words are collected there. */
static int process_stop_on(shell_word_t *sw, int stop, bool raw_escapes, char **out,
                           words_t *words_out, kiln_error_t *err)
{
    kiln_buf_t res;
    words_t words = {0};
    bool saved_raw = sw->raw_escapes;
    int ret = -1;

    kiln_buf_init(&res, SHELL_OUT_CAP);
    kiln_buf_init(&words.buf, SHELL_OUT_CAP);
    sw->raw_escapes = raw_escapes;
    while (peek(sw) != SH_EOF) {
        int c = peek(sw);
        const char *p;
        size_t l;

        if (stop != SH_EOF && c == stop) {
            sw->pos++;
            goto ok;
        }
        if (c == '$' || (!sw->skip_quotes && (c == '\'' || c == '"'))) {
            _cleanup_free_ char *tmp = NULL;
            if (c == '$') {
                if (process_dollar(sw, &tmp, err) < 0)
                    goto out;
            } else {
                kiln_buf_t q;
                int r;
                kiln_buf_init(&q, SHELL_OUT_CAP);
                r = c == '\'' ? process_single_quote(sw, &q, err)
                              : process_double_quote(sw, &q, err);
                tmp = kiln_buf_steal(&q, NULL);
                if (r < 0)
                    goto out;
            }
            if (kiln_buf_append(&res, tmp, strlen(tmp), err) < 0)
                goto out;
            if (c == '$' ? words_add_string(&words, tmp, err) < 0
                         : words_add_raw(&words, tmp, strlen(tmp), err) < 0)
                goto out;
            continue;
        }
        l = next_seq(sw, &p);
        if (l == 1 && *p == sw->escape) {
            if (sw->raw_escapes &&
                (words_add_raw(&words, p, 1, err) < 0 || kiln_buf_append(&res, p, 1, err) < 0))
                goto out;
            l = next_seq(sw, &p);
            if (l == 0)
                break;
            if (words_add_raw(&words, p, l, err) < 0)
                goto out;
        } else if (words_add_char(&words, p, l, err) < 0) {
            goto out;
        }
        if (kiln_buf_append(&res, p, l, err) < 0)
            goto out;
    }
    if (stop != SH_EOF) {
        kiln_error_set(err, 0, "unexpected end of statement while looking for matching %c",
                       (char)stop);
        goto out;
    }
ok:
    ret = 0;
    *out = kiln_buf_steal(&res, NULL);
    if (words_out != NULL) {
        size_t n;
        words_out->v = words_finish(&words, &n);
        words_out->n = n;
    }
out:
    sw->raw_escapes = saved_raw;
    kiln_buf_free(&res);
    words_free(&words);
    return ret;
}

static void sw_init(shell_word_t *sw, const char *word, const kiln_shell_opts_t *opts,
                    const kiln_shell_env_t *env)
{
    memset(sw, 0, sizeof(*sw));
    sw->s = word;
    sw->len = strlen(word);
    sw->env = env;
    sw->escape = opts && opts->escape ? opts->escape : '\\';
    if (opts) {
        sw->raw_quotes = opts->raw_quotes;
        sw->raw_escapes = opts->raw_escapes;
        sw->skip_unset = opts->skip_unset;
        sw->skip_quotes = opts->skip_quotes;
    }
}

int kiln_shell_process_word(const char *word, const kiln_shell_opts_t *opts,
                            const kiln_shell_env_t *env, char **out, kiln_error_t *err)
{
    shell_word_t sw;
    sw_init(&sw, word, opts, env);
    if (process_stop_on(&sw, SH_EOF, sw.raw_escapes, out, NULL, err) < 0)
        return kiln_error_prefix(err, "failed to process \"%s\"", word);
    return 0;
}

int kiln_shell_process_words(const char *word, const kiln_shell_opts_t *opts,
                             const kiln_shell_env_t *env, char ***out, size_t *n, kiln_error_t *err)
{
    shell_word_t sw;
    words_t words = {0};
    _cleanup_free_ char *joined = NULL;

    sw_init(&sw, word, opts, env);
    if (process_stop_on(&sw, SH_EOF, sw.raw_escapes, &joined, &words, err) < 0)
        return kiln_error_prefix(err, "failed to process \"%s\"", word);
    *out = words.v;
    if (n)
        *n = words.n;
    return 0;
}
