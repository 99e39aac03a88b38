/* kiln — package manager calls of a start command expanded into the scripts they run
 * (see node_script.h). */
#include "handlers/node_script.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Nested script calls followed, words of one command looked at, text made. */
#define EXPAND_DEPTH 8
#define MAX_WORDS 64
#define EXPAND_CAP (16 * 1024)

typedef struct {
    json_t *pkg;
    bool hooks;     /* pre/post scripts run (not under yarn Berry) */
    bool *used_bun; /* set when a call runs bun itself; NULL: the run image has no bun */
    char **event;   /* the first script the command runs (npm_lifecycle_event), or NULL */
} script_ctx_t;

/* One simple command split into words (unquoted words are what is looked at). */
typedef struct {
    char *w[MAX_WORDS];
    bool quoted[MAX_WORDS];
    size_t n;
} words_t;

static void words_free(words_t *ws)
{
    for (size_t i = 0; i < ws->n; i++)
        free(ws->w[i]);
    ws->n = 0;
}

static const char *script_of(json_t *pkg, const char *name)
{
    json_t *s = json_object_get(json_object_get(pkg, "scripts"), name);
    return json_is_string(s) ? json_string_value(s) : NULL;
}

static bool is_op(char c)
{
    return c == '&' || c == '|' || c == ';' || c == '(' || c == ')' || c == '\n';
}

/* Splits the simple command s[0..n) into words; false when it has more than MAX_WORDS. */
static bool split_words(const char *s, size_t n, words_t *ws)
{
    size_t i = 0;

    ws->n = 0;
    while (i < n) {
        size_t st;
        bool q = false;
        char quote = 0;
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= n)
            break;
        if (ws->n == MAX_WORDS)
            return false;
        for (st = i; i < n && (quote || (s[i] != ' ' && s[i] != '\t')); i++) {
            if (quote ? s[i] == quote : (s[i] == '\'' || s[i] == '"')) {
                quote = quote ? 0 : s[i];
                q = true;
            } else if (s[i] == '\\' && quote != '\'' && i + 1 < n) {
                i++;
                q = true;
            }
        }
        ws->quoted[ws->n] = q;
        ws->w[ws->n++] = kiln_xstrndup(s + st, i - st);
    }
    return true;
}

/* True for an assignment word NAME=value. */
static bool is_assign(const char *w)
{
    const char *eq = strchr(w, '=');
    if (eq == NULL || eq == w || (w[0] >= '0' && w[0] <= '9'))
        return false;
    for (const char *p = w; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static bool is_manager(const char *w)
{
    static const char *const m[] = {"npm", "npx", "pnpm", "pnpx", "yarn", "bun", "bunx"};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (strcmp(w, m[i]) == 0)
            return true;
    return false;
}

/* True when text holds a shell operator outside quotes (it is then grouped in ( )). */
static bool has_op(const char *t)
{
    char quote = 0;
    for (; *t; t++) {
        if (quote ? *t == quote : (*t == '\'' || *t == '"'))
            quote = quote ? 0 : *t;
        else if (!quote && is_op(*t))
            return true;
    }
    return false;
}

static int expand_text(const script_ctx_t *c, const char *text, int depth, const char *chain,
                       kiln_buf_t *out, kiln_error_t *err);

/* The error of a call that needs the package manager itself. */
static int needs_manager(const char *chain, const char *call, const char *why, kiln_error_t *err)
{
    return kiln_error_set(err, 0,
                          "%s: `%.120s` %s; kiln's Node run image has node only (no npm, pnpm, "
                          "yarn or bun): start the server with node (package.json "
                          "scripts.start, kiln.json \"start\" or KILN_START_CMD)",
                          chain, call, why);
}

/* scripts.NAME with its hooks, each part expanded, into out. */
static int expand_script(const script_ctx_t *c, const char *name, int depth, const char *chain,
                         kiln_buf_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *pre = kiln_xasprintf("pre%s", name),
                        *post = kiln_xasprintf("post%s", name);
    _cleanup_free_ char *here = kiln_xasprintf("%s → scripts.%s", chain, name);
    const char *parts[3] = {c->hooks ? script_of(c->pkg, pre) : NULL, script_of(c->pkg, name),
                            c->hooks ? script_of(c->pkg, post) : NULL};
    bool first = true;

    if (depth >= EXPAND_DEPTH)
        return kiln_error_set(err, 0, "%s: scripts call each other more than %d deep (a loop?)",
                              here, EXPAND_DEPTH);
    for (int i = 0; i < 3; i++) {
        kiln_buf_t sub;
        _cleanup_free_ char *t = NULL;
        if (parts[i] == NULL)
            continue;
        kiln_buf_init(&sub, EXPAND_CAP);
        if (expand_text(c, parts[i], depth + 1, here, &sub, err) < 0) {
            kiln_buf_free(&sub);
            return -1;
        }
        t = kiln_buf_steal(&sub, NULL);
        if (kiln_buf_appendf(out, err, "%s%s%s%s", first ? "" : " && ",
                             parts[0] || parts[2] ? (has_op(t) ? "(" : "") : "", t,
                             parts[0] || parts[2] ? (has_op(t) ? ")" : "") : "") < 0)
            return -1;
        first = false;
    }
    return 0;
}

/* For the manager call ws->w[k..]: sets *script (a script to run, with its arguments
 * from *args on) or *cmd (the index of the command word to run as is). */
static int resolve_call(const script_ctx_t *c, const words_t *ws, size_t k, const char *chain,
                        const char *call, const char **script, size_t *args, size_t *cmd,
                        kiln_error_t *err)
{
    const char *m = ws->w[k];
    size_t i = k + 1;

    *script = NULL;
    *cmd = 0;
    if (strcmp(m, "npx") == 0 || strcmp(m, "pnpx") == 0 || strcmp(m, "bunx") == 0) {
        while (i < ws->n &&
               (strcmp(ws->w[i], "-y") == 0 || strcmp(ws->w[i], "--yes") == 0 ||
                strcmp(ws->w[i], "--no-install") == 0 || strcmp(ws->w[i], "--no") == 0 ||
                strcmp(ws->w[i], "-q") == 0 || strcmp(ws->w[i], "--quiet") == 0))
            i++;
        if (i >= ws->n || ws->w[i][0] == '-')
            return needs_manager(chain, call, "runs a package the app may not have", err);
        *cmd = i;
        return 0;
    }
    while (i < ws->n && ws->w[i][0] == '-')
        i++; /* npm -s run X, yarn --silent X */
    if (i >= ws->n)
        return needs_manager(chain, call, "runs the package manager itself", err);
    if (strcmp(ws->w[i], "exec") == 0 || (strcmp(m, "npm") == 0 && strcmp(ws->w[i], "x") == 0)) {
        for (i++; i < ws->n && ws->w[i][0] == '-'; i++)
            if (strcmp(ws->w[i], "--") == 0) {
                i++;
                break;
            }
        if (i >= ws->n || strcmp(m, "bun") == 0)
            return needs_manager(chain, call, "runs the package manager itself", err);
        *cmd = i;
        return 0;
    }
    if (strcmp(ws->w[i], "run") == 0 || strcmp(ws->w[i], "run-script") == 0) {
        for (i++; i < ws->n && ws->w[i][0] == '-';)
            i++;
        if (i >= ws->n)
            return needs_manager(chain, call, "lists the scripts", err);
    } else if (strcmp(m, "npm") == 0 && strcmp(ws->w[i], "start") != 0 &&
               strcmp(ws->w[i], "test") != 0 && strcmp(ws->w[i], "stop") != 0) {
        return needs_manager(chain, call, "runs npm itself", err);
    }
    if (ws->quoted[i])
        return needs_manager(chain, call, "names its script in quotes", err);
    if (script_of(c->pkg, ws->w[i]) != NULL) {
        *script = ws->w[i];
        *args = i + 1;
        if (*args < ws->n && strcmp(ws->w[*args], "--") == 0)
            (*args)++;
        return 0;
    }
    if (strcmp(m, "bun") == 0 && c->used_bun != NULL) {
        /* bun runs a file (bun run index.ts): the run image carries bun */
        *c->used_bun = true;
        *cmd = k;
        return 0;
    }
    if (strcmp(m, "npm") == 0 || strcmp(m, "bun") == 0 || strcmp(ws->w[i - 1], "run") == 0 ||
        strcmp(ws->w[i - 1], "run-script") == 0)
        return needs_manager(chain, call,
                             strcmp(m, "bun") == 0
                                 ? "needs bun (no such script: bun would run it as a file)"
                                 : "calls a script package.json does not have",
                             err);
    {
        /* yarn BIN / pnpm BIN run a dependency's executable, unless BIN is one of theirs */
        static const char *const own[] = {
            "install",    "add",    "remove", "dlx",    "create", "up",    "upgrade", "workspace",
            "workspaces", "global", "link",   "unlink", "import", "prune", "deploy"};
        for (size_t j = 0; j < sizeof(own) / sizeof(own[0]); j++)
            if (strcmp(ws->w[i], own[j]) == 0)
                return needs_manager(chain, call, "runs the package manager itself", err);
    }
    *cmd = i;
    return 0;
}

/* Appends words [from, to) joined by spaces. */
static int append_words(kiln_buf_t *out, const words_t *ws, size_t from, size_t to,
                        kiln_error_t *err)
{
    for (size_t i = from; i < to; i++)
        if (kiln_buf_appendf(out, err, "%s%s", i > from ? " " : "", ws->w[i]) < 0)
            return -1;
    return 0;
}

/* One simple command s[0..n): as it is, or its manager call expanded. */
static int expand_command(const script_ctx_t *c, const char *s, size_t n, int depth, bool alone,
                          const char *chain, kiln_buf_t *out, kiln_error_t *err)
{
    words_t ws = {0};
    size_t k = 0, args = 0, cmd = 0, trail = 0;
    const char *script = NULL;
    _cleanup_free_ char *call = kiln_xstrndup(s, n), *body = NULL;
    kiln_buf_t sub;
    int r = -1;

    for (size_t e = strlen(call); e > 0 && (call[e - 1] == ' ' || call[e - 1] == '\t');)
        call[--e] = '\0';
    if (!split_words(s, n, &ws)) {
        words_free(&ws);
        return kiln_buf_append(out, s, n, err);
    }
    while (k < ws.n && !ws.quoted[k] && is_assign(ws.w[k]))
        k++;
    if (k >= ws.n || ws.quoted[k] || !is_manager(ws.w[k])) {
        words_free(&ws);
        return kiln_buf_append(out, s, n, err);
    }
    kiln_buf_init(&sub, EXPAND_CAP);
    if (resolve_call(c, &ws, k, chain, call + strspn(call, " \t"), &script, &args, &cmd, err) < 0)
        goto out;
    if (script != NULL) {
        if (c->event != NULL && *c->event == NULL)
            *c->event = kiln_xstrdup(script);
        if (expand_script(c, script, depth, chain, &sub, err) < 0)
            goto out;
        if (args < ws.n && has_op(sub.data ? sub.data : "")) {
            needs_manager(chain, call + strspn(call, " \t"),
                          "passes arguments to a script of several commands", err);
            goto out;
        }
        if (args < ws.n &&
            (kiln_buf_appendf(&sub, err, " ") < 0 || append_words(&sub, &ws, args, ws.n, err) < 0))
            goto out;
    } else if (append_words(&sub, &ws, cmd, ws.n, err) < 0) {
        goto out;
    }
    body = kiln_buf_steal(&sub, NULL);
    if (kiln_buf_append(out, s, strspn(s, " \t"), err) < 0)
        goto out;
    if (k > 0) {
        /* the call's assignments hold for the whole expansion */
        if (kiln_buf_appendf(out, err, "(export ") < 0 || append_words(out, &ws, 0, k, err) < 0)
            goto out;
        r = kiln_buf_appendf(out, err, "; %s)", body);
    } else {
        /* grouped when it has operators and more commands follow or precede it */
        bool group = !alone && has_op(body);
        r = kiln_buf_appendf(out, err, "%s%s%s", group ? "(" : "", body, group ? ")" : "");
    }
    /* the blanks before the next operator */
    while (trail < n && (s[n - 1 - trail] == ' ' || s[n - 1 - trail] == '\t'))
        trail++;
    if (r == 0)
        r = kiln_buf_append(out, s + n - trail, trail, err);
out:
    kiln_buf_free(&sub);
    words_free(&ws);
    return r;
}

/* The text with each of its simple commands expanded; operators and quotes kept. */
static int expand_text(const script_ctx_t *c, const char *text, int depth, const char *chain,
                       kiln_buf_t *out, kiln_error_t *err)
{
    const char *p = text, *st = text;
    char quote = 0;

    for (;; p++) {
        if (*p != '\0' && (quote || !is_op(*p))) {
            if (quote ? *p == quote : (*p == '\'' || *p == '"'))
                quote = quote ? 0 : *p;
            else if (*p == '\\' && quote != '\'' && p[1] != '\0')
                p++;
            continue;
        }
        if (expand_command(c, st, (size_t)(p - st), depth, st == text && *p == '\0', chain, out,
                           err) < 0)
            return -1;
        if (*p == '\0')
            return 0;
        if (kiln_buf_append(out, p, 1, err) < 0)
            return -1;
        st = p + 1;
    }
}

int kiln_node_script_expand(json_t *pkg, const char *pm, const char *cmd, char **out,
                            bool *needs_bun, char **event, kiln_error_t *err)
{
    bool bun = pm != NULL && strcmp(pm, "bun") == 0;
    script_ctx_t c = {.pkg = pkg,
                      .hooks = pm == NULL || strcmp(pm, "yarn-berry") != 0,
                      .used_bun = bun ? needs_bun : NULL,
                      .event = event};
    _cleanup_free_ char *chain = kiln_xasprintf("start command `%.120s`", cmd);
    kiln_buf_t b;

    kiln_buf_init(&b, EXPAND_CAP);
    if (event != NULL)
        *event = NULL;
    if (expand_text(&c, cmd, 0, chain, &b, err) < 0) {
        kiln_buf_free(&b);
        if (event != NULL) {
            free(*event);
            *event = NULL;
        }
        return -1;
    }
    if (needs_bun != NULL && !bun)
        *needs_bun = false;
    *out = kiln_buf_steal(&b, NULL);
    if (*out == NULL)
        *out = kiln_xstrdup("");
    return 0;
}
