/* kiln — Cargo.toml and rust-toolchain(.toml) for the Rust provider (see cargo.h),
 * read through the one TOML reader (utils/toml). */
#include "handlers/cargo.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/toml.h"

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

static int add(char **list, size_t *n, char *item, const char *what, kiln_error_t *err)
{
    if (*n >= KILN_CARGO_MAX_LIST) {
        free(item);
        return kiln_error_set(err, 0, "%s: more than %d entries", what, KILN_CARGO_MAX_LIST);
    }
    list[(*n)++] = item;
    return 0;
}

/* The string `key` of object `o`, or NULL. */
static const char *str_of(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Records every `path` string below `v` (dependencies in any table, patches,
 * [[bin]]/[lib] targets) as "<table>\t<path>", `label` being the dotted name of
 * the table holding it; [package]'s own keys are read by read_cargo. The TOML
 * reader caps the document's nesting, which bounds this recursion. */
static int walk_paths(json_t *v, const char *label, kiln_cargo_t *c, const char *what,
                      kiln_error_t *err)
{
    const char *k;
    json_t *item;
    size_t i;

    if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (walk_paths(item, label, c, what, err) < 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    json_object_foreach(v, k, item)
    {
        if (json_is_string(item) && strcmp(k, "path") == 0 && strcmp(label, "package") != 0) {
            if (add(c->paths, &c->n_paths,
                    kiln_xasprintf("%s\t%s", label[0] ? label : "path", json_string_value(item)),
                    what, err) < 0)
                return -1;
        } else if (json_is_object(item) || json_is_array(item)) {
            _cleanup_free_ char *sub =
                label[0] ? kiln_xasprintf("%s.%s", label, k) : kiln_xstrdup(k);
            if (walk_paths(item, sub, c, what, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* Reads the fields the Rust provider needs out of the parsed document. */
static int read_cargo(json_t *doc, const char *what, kiln_cargo_t *c, kiln_error_t *err)
{
    json_t *pkg = json_object_get(doc, "package"), *ws = json_object_get(doc, "workspace");
    json_t *item;
    size_t i;

    if (json_is_object(pkg)) {
        const char *s;
        c->has_package = 1;
        if ((s = str_of(pkg, "name")) != NULL)
            c->name = kiln_xstrdup(s);
        if ((s = str_of(pkg, "rust-version")) != NULL)
            c->rust_version = kiln_xstrdup(s);
        if ((s = str_of(pkg, "default-run")) != NULL)
            c->default_run = kiln_xstrdup(s);
        if ((s = str_of(pkg, "workspace")) != NULL &&
            add(c->paths, &c->n_paths, kiln_xasprintf("package.workspace\t%s", s), what, err) < 0)
            return -1;
        if ((s = str_of(pkg, "build")) != NULL &&
            add(c->paths, &c->n_paths, kiln_xasprintf("package.build\t%s", s), what, err) < 0)
            return -1;
    }
    if (json_is_object(ws)) {
        c->has_workspace = 1;
        json_array_foreach(json_object_get(ws, "members"), i, item)
        {
            if (json_is_string(item) && add(c->members, &c->n_members,
                                            kiln_xstrdup(json_string_value(item)), what, err) < 0)
                return -1;
        }
    }
    json_array_foreach(json_object_get(doc, "bin"), i, item)
    {
        const char *name = str_of(item, "name");
        if (name != NULL && add(c->bins, &c->n_bins, kiln_xstrdup(name), what, err) < 0)
            return -1;
    }
    return walk_paths(doc, "", c, what, err);
}

int kiln_cargo_parse(const char *text, size_t len, const char *what, kiln_cargo_t *out,
                     kiln_error_t *err)
{
    kiln_cargo_t c = {0};
    json_t *doc = NULL;

    if (kiln_toml_load(what, text, len, &doc, err) < 0)
        return -1;
    if (read_cargo(doc, what, &c, err) < 0) {
        json_decref(doc);
        kiln_cargo_clear(&c);
        return -1;
    }
    json_decref(doc);
    *out = c;
    return 0;
}

int kiln_cargo_toolchain(const char *text, size_t len, int toml, const char *what, char **channel,
                         kiln_error_t *err)
{
    json_t *doc = NULL;
    const char *ch;

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
    if (kiln_toml_load(what, text, len, &doc, err) < 0)
        return -1;
    ch = json_string_value(json_object_get(json_object_get(doc, "toolchain"), "channel"));
    *channel = ch != NULL ? kiln_xstrdup(ch) : NULL;
    json_decref(doc);
    return 0;
}
