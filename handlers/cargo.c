/* kiln — Cargo.toml and rust-toolchain(.toml) for the Rust provider (see cargo.h). */
#include "handlers/cargo.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/toml_lite.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

static void free_list(char **list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(list[i]);
    *n = 0;
}

void kiln_cargo_clear(kiln_cargo_t *c)
{
    free(c->name);
    free(c->rust_version);
    free(c->default_run);
    free_list(c->bins, &c->n_bins);
    free_list(c->members, &c->n_members);
    free_list(c->paths, &c->n_paths);
    memset(c, 0, sizeof(*c));
}

static int add(char **list, size_t *n, char *item, const char *what, unsigned line,
               kiln_error_t *err)
{
    if (*n >= KILN_CARGO_MAX_LIST) {
        free(item);
        return kiln_error_set(err, 0, "%s line %u: more than %d entries", what, line,
                              KILN_CARGO_MAX_LIST);
    }
    list[(*n)++] = item;
    return 0;
}

/* True when `s` ends with `suffix` (after a '.' or as the whole string). */
static bool is_or_ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0 && (n == m || s[n - m - 1] == '.');
}

typedef struct parse_ctx {
    kiln_cargo_t *c;
    const char *what;
} parse_ctx_t;

static int on_pair(const kiln_toml_pair_t *p, void *data, kiln_error_t *err)
{
    parse_ctx_t *pc = data;
    kiln_cargo_t *c = pc->c;
    bool str = p->kind == KILN_TOML_STRING;

    if (strcmp(p->table, "package") == 0) {
        c->has_package = 1;
        if (str && strcmp(p->key, "name") == 0 && c->name == NULL)
            c->name = kiln_xstrdup(p->value);
        else if (str && strcmp(p->key, "rust-version") == 0 && c->rust_version == NULL)
            c->rust_version = kiln_xstrdup(p->value);
        else if (str && strcmp(p->key, "default-run") == 0 && c->default_run == NULL)
            c->default_run = kiln_xstrdup(p->value);
        else if (str && strcmp(p->key, "workspace") == 0)
            return add(c->paths, &c->n_paths, kiln_xasprintf("package.workspace\t%s", p->value),
                       pc->what, p->line, err);
        else if (str && strcmp(p->key, "build") == 0)
            return add(c->paths, &c->n_paths, kiln_xasprintf("package.build\t%s", p->value),
                       pc->what, p->line, err);
        return 0;
    }
    if (strncmp(p->table, "workspace", 9) == 0 && (p->table[9] == '\0' || p->table[9] == '.'))
        c->has_workspace = 1;
    if (strcmp(p->table, "workspace") == 0 && strcmp(p->key, "members") == 0 &&
        p->kind == KILN_TOML_ARRAY) {
        for (size_t i = 0; i < p->n_items; i++)
            if (add(c->members, &c->n_members, kiln_xstrdup(p->items[i]), pc->what, p->line, err) <
                0)
                return -1;
        return 0;
    }
    if (strcmp(p->table, "bin") == 0 && p->array_table && str && strcmp(p->key, "name") == 0)
        return add(c->bins, &c->n_bins, kiln_xstrdup(p->value), pc->what, p->line, err);
    /* every path: dependencies (any table), patches, [[bin]]/[lib] paths */
    if (str && is_or_ends(p->key, "path")) {
        const char *k = p->key;
        size_t kl = strlen(k);
        _cleanup_free_ char *dep =
            kl > 5 ? kiln_xstrndup(k, kl - 5) : kiln_xstrdup(p->table[0] ? p->table : "path");
        return add(
            c->paths, &c->n_paths,
            kiln_xasprintf("%s%s%s\t%s", p->table, kl > 5 ? "." : "", kl > 5 ? dep : "", p->value),
            pc->what, p->line, err);
    }
    return 0;
}

int kiln_cargo_parse(const char *text, size_t len, const char *what, kiln_cargo_t *out,
                     kiln_error_t *err)
{
    kiln_cargo_t c = {0};
    parse_ctx_t pc = {&c, what};

    if (kiln_toml_parse(text, len, what, on_pair, &pc, err) < 0) {
        kiln_cargo_clear(&c);
        return -1;
    }
    *out = c;
    return 0;
}

typedef struct tc_ctx {
    char *channel;
} tc_ctx_t;

static int on_toolchain(const kiln_toml_pair_t *p, void *data, kiln_error_t *err)
{
    tc_ctx_t *t = data;
    (void)err;
    if (strcmp(p->table, "toolchain") == 0 && strcmp(p->key, "channel") == 0 &&
        p->kind == KILN_TOML_STRING && t->channel == NULL)
        t->channel = kiln_xstrdup(p->value);
    return 0;
}

int kiln_cargo_toolchain(const char *text, size_t len, int toml, const char *what, char **channel,
                         kiln_error_t *err)
{
    tc_ctx_t t = {0};

    if (!toml) {
        /* the legacy file: the channel alone on its first line */
        size_t n = 0;
        while (n < len && isspace((unsigned char)text[n]))
            n++;
        text += n, len -= n;
        n = 0;
        while (n < len && !isspace((unsigned char)text[n]))
            n++;
        if (n > 128)
            return kiln_error_set(err, 0, "%s: the channel is over 128 bytes", what);
        /* a one-line file may also be TOML (rust-toolchain written as TOML) */
        if (n > 0 && text[0] == '[')
            return kiln_cargo_toolchain(text, len, 1, what, channel, err);
        *channel = n ? kiln_xstrndup(text, n) : NULL;
        return 0;
    }
    if (kiln_toml_parse(text, len, what, on_toolchain, &t, err) < 0) {
        free(t.channel);
        return -1;
    }
    *channel = t.channel;
    return 0;
}
