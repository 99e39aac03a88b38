/* kiln — Dockerfile instruction semantics on the image config. */
#include "handlers/dockerfile/instructions.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "oci/image.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

int kiln_df_error(const kiln_df_node_t *n, kiln_error_t *err, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    kiln_error_set(err, 0, "Dockerfile:%d: %s: %s", n->start_line, s ? s : "error", n->original);
    free(s);
    return -1;
}

static bool in_list(const char *kw, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(kw, list[i]) == 0)
            return true;
    return false;
}

static const char *const config_only[] = {
    "env",        "label", "user",       "stopsignal", "expose",      "volume", "cmd",
    "entrypoint", "shell", "maintainer", "onbuild",    "healthcheck", NULL};

bool kiln_df_is_config_only(const kiln_df_node_t *n)
{
    return in_list(n->keyword, config_only);
}

bool kiln_df_known_keyword(const char *kw)
{
    static const char *const others[] = {"from", "run", "copy", "add", "arg", "workdir", NULL};
    return in_list(kw, config_only) || in_list(kw, others);
}

json_t *kiln_df_command_argv(json_t *image_config, const kiln_df_node_t *n, size_t from)
{
    json_t *a = json_array();
    if (n->json) {
        for (size_t i = from; i < n->n_args; i++)
            json_array_append_new(a, json_string(n->args[i]));
    } else {
        json_t *sh = json_object_get(json_object_get(image_config, "config"), "Shell");
        size_t i;
        json_t *v;
        if (json_array_size(sh) > 0) {
            json_array_foreach(sh, i, v) json_array_append(a, v);
        } else {
            json_array_append_new(a, json_string("/bin/sh"));
            json_array_append_new(a, json_string("-c"));
        }
        json_array_append_new(a, json_string(n->n_args > from ? n->args[from] : ""));
    }
    return a;
}

static void set_argv_key(json_t *image_config, const char *key, json_t *arr)
{
    json_object_set_new(kiln_image_config_obj(image_config), key, arr);
}

int kiln_df_parse_duration(const char *s, int64_t *ns)
{
    double total = 0;
    const char *p = s;
    if (*p == '\0')
        return -1;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        double mul;
        if (end == p)
            return -1;
        p = end;
        if (strncmp(p, "ms", 2) == 0)
            mul = 1e6, p += 2;
        else if (strncmp(p, "us", 2) == 0)
            mul = 1e3, p += 2;
        else if (strncmp(p, "ns", 2) == 0)
            mul = 1, p += 2;
        else if (*p == 's')
            mul = 1e9, p++;
        else if (*p == 'm')
            mul = 60e9, p++;
        else if (*p == 'h')
            mul = 3600e9, p++;
        else if (*p == '\0' && v == 0)
            mul = 0;
        else
            return -1;
        total += v * mul;
    }
    *ns = (int64_t)total;
    return 0;
}

char *kiln_df_workdir(json_t *image_config, const char *dir)
{
    const char *cur =
        json_string_value(json_object_get(kiln_image_config_obj(image_config), "WorkingDir"));
    char *full = dir[0] == '/'
                     ? kiln_xstrdup(dir)
                     : kiln_xasprintf("%s/%s", cur && strcmp(cur, "/") != 0 ? cur : "", dir);
    while (strlen(full) > 1 && full[strlen(full) - 1] == '/')
        full[strlen(full) - 1] = '\0';
    return full;
}

int kiln_df_apply_config(json_t *image_config, const kiln_df_node_t *n, kiln_df_expand_fn expand,
                         void *ctx, char **history, kiln_error_t *err)
{
    const char *kw = n->keyword;
    kiln_buf_t hist;
    int ret = 0;
    json_t *cfg = kiln_image_config_obj(image_config);

    kiln_buf_init(&hist, 0);
    if (strcmp(kw, "env") == 0 || strcmp(kw, "label") == 0) {
        bool env = kw[0] == 'e';
        if (n->n_args == 0) {
            ret = kiln_df_error(n, err, "%s requires at least one argument", env ? "ENV" : "LABEL");
            goto out;
        }
        kiln_buf_appendf(&hist, NULL, "%s", env ? "ENV" : "LABEL");
        for (size_t i = 0; i + 2 < n->n_args + 1 && i + 1 < n->n_args; i += 3) {
            _cleanup_free_ char *k = NULL;
            _cleanup_free_ char *v = NULL;
            if (expand(ctx, n->args[i], &k, err) < 0 || expand(ctx, n->args[i + 1], &v, err) < 0) {
                ret = kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            if (env) {
                _cleanup_free_ char *kv = kiln_xasprintf("%s=%s", k, v);
                kiln_image_config_set_env(image_config, kv, NULL);
            } else {
                kiln_image_config_set_label(image_config, k, v);
            }
            kiln_buf_appendf(&hist, NULL, " %s=%s", k, v);
        }
    } else if (strcmp(kw, "user") == 0 || strcmp(kw, "stopsignal") == 0) {
        _cleanup_free_ char *v = NULL;
        if (n->n_args != 1) {
            ret = kiln_df_error(n, err, "%s requires exactly one argument",
                                kw[0] == 'u' ? "USER" : "STOPSIGNAL");
            goto out;
        }
        if (expand(ctx, n->args[0], &v, err) < 0) {
            ret = kiln_df_error(n, err, "%s", err->msg);
            goto out;
        }
        kiln_image_config_set_string(image_config, kw[0] == 'u' ? "User" : "StopSignal", v);
        kiln_buf_appendf(&hist, NULL, "%s %s", kw[0] == 'u' ? "USER" : "STOPSIGNAL", v);
    } else if (strcmp(kw, "expose") == 0) {
        kiln_buf_appendf(&hist, NULL, "EXPOSE map[");
        for (size_t i = 0; i < n->n_args; i++) {
            _cleanup_free_ char *v = NULL;
            if (expand(ctx, n->args[i], &v, err) < 0 ||
                kiln_image_config_add_port(image_config, v, err) < 0) {
                ret = kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            kiln_buf_appendf(&hist, NULL, "%s%s%s:{}", i ? " " : "", v,
                             strchr(v, '/') ? "" : "/tcp");
        }
        kiln_buf_appendf(&hist, NULL, "]");
    } else if (strcmp(kw, "volume") == 0) {
        kiln_buf_appendf(&hist, NULL, "VOLUME [");
        for (size_t i = 0; i < n->n_args; i++) {
            _cleanup_free_ char *v = NULL;
            if (expand(ctx, n->args[i], &v, err) < 0) {
                ret = kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            kiln_image_config_add_volume(image_config, v);
            kiln_buf_appendf(&hist, NULL, "%s%s", i ? " " : "", v);
        }
        kiln_buf_appendf(&hist, NULL, "]");
    } else if (strcmp(kw, "cmd") == 0 || strcmp(kw, "entrypoint") == 0) {
        json_t *a = kiln_df_command_argv(image_config, n, 0);
        char *s = json_dumps(a, JSON_COMPACT);
        bool cmd = kw[0] == 'c';
        if (!cmd && n->n_args == 0) {
            json_decref(a);
            a = json_null();
        }
        set_argv_key(image_config, cmd ? "Cmd" : "Entrypoint", a);
        if (!cmd) /* ENTRYPOINT resets CMD, as in Docker */
            json_object_del(cfg, "Cmd");
        kiln_buf_appendf(&hist, NULL, "%s %s", cmd ? "CMD" : "ENTRYPOINT", s);
        free(s);
    } else if (strcmp(kw, "shell") == 0) {
        json_t *a = json_array();
        if (!n->json || n->n_args == 0) {
            json_decref(a);
            ret = kiln_df_error(n, err, "SHELL requires the arguments to be in JSON form");
            goto out;
        }
        for (size_t i = 0; i < n->n_args; i++)
            json_array_append_new(a, json_string(n->args[i]));
        {
            char *s = json_dumps(a, JSON_COMPACT);
            kiln_buf_appendf(&hist, NULL, "SHELL %s", s);
            free(s);
        }
        set_argv_key(image_config, "Shell", a);
    } else if (strcmp(kw, "maintainer") == 0) {
        kiln_image_config_set_string(image_config, "Author", NULL);
        json_object_set_new(image_config, "author", json_string(n->n_args ? n->args[0] : ""));
        kiln_buf_appendf(&hist, NULL, "MAINTAINER %s", n->n_args ? n->args[0] : "");
    } else if (strcmp(kw, "onbuild") == 0) {
        const char *o = n->original;
        while (*o == ' ' || *o == '\t')
            o++;
        o += 7;
        while (*o == ' ' || *o == '\t')
            o++;
        kiln_image_config_add_onbuild(image_config, o);
        kiln_buf_appendf(&hist, NULL, "ONBUILD %s", o);
    } else if (strcmp(kw, "healthcheck") == 0) {
        json_t *hc = json_object();
        json_t *test = json_array();
        if (n->n_args == 0) {
            json_decref(hc);
            json_decref(test);
            ret = kiln_df_error(n, err, "HEALTHCHECK requires an argument");
            goto out;
        }
        if (strcasecmp(n->args[0], "none") == 0) {
            json_array_append_new(test, json_string("NONE"));
        } else if (strcasecmp(n->args[0], "cmd") == 0) {
            json_t *a = kiln_df_command_argv(image_config, n, 1);
            if (n->json) {
                json_array_append_new(test, json_string("CMD"));
                json_array_extend(test, a);
            } else {
                json_array_append_new(test, json_string("CMD-SHELL"));
                json_array_append_new(test, json_string(n->n_args > 1 ? n->args[1] : ""));
            }
            json_decref(a);
        } else {
            json_decref(hc);
            json_decref(test);
            ret = kiln_df_error(n, err, "Unknown type \"%s\" in HEALTHCHECK (try CMD)", n->args[0]);
            goto out;
        }
        json_object_set_new(hc, "Test", test);
        for (size_t i = 0; i < n->n_flags; i++) {
            static const struct {
                const char *flag, *key;
            } map[] = {{"--interval=", "Interval"},
                       {"--timeout=", "Timeout"},
                       {"--start-period=", "StartPeriod"},
                       {"--start-interval=", "StartInterval"}};
            bool done = false;
            for (size_t k = 0; k < 4; k++) {
                size_t fl = strlen(map[k].flag);
                if (strncmp(n->flags[i], map[k].flag, fl) == 0) {
                    int64_t ns;
                    if (kiln_df_parse_duration(n->flags[i] + fl, &ns) < 0) {
                        json_decref(hc);
                        ret = kiln_df_error(n, err, "invalid duration %s", n->flags[i]);
                        goto out;
                    }
                    if (ns != 0)
                        json_object_set_new(hc, map[k].key, json_integer(ns));
                    done = true;
                }
            }
            if (!done && strncmp(n->flags[i], "--retries=", 10) == 0) {
                long r = strtol(n->flags[i] + 10, NULL, 10);
                if (r != 0)
                    json_object_set_new(hc, "Retries", json_integer(r));
                done = true;
            }
            if (!done) {
                json_decref(hc);
                ret = kiln_df_error(n, err, "unknown flag: %s", n->flags[i]);
                goto out;
            }
        }
        {
            char *s = json_dumps(json_object_get(hc, "Test"), JSON_COMPACT);
            kiln_buf_appendf(&hist, NULL, "HEALTHCHECK &{%s}", s);
            free(s);
        }
        kiln_image_config_set_healthcheck(image_config, hc);
    } else {
        ret = kiln_df_error(n, err, "unknown instruction: %s", n->keyword);
        goto out;
    }
    *history = kiln_buf_steal(&hist, NULL);
out:
    kiln_buf_free(&hist);
    return ret;
}
