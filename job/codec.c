/* kiln — the job spec's JSON codec, reading (see codec.h; writing is job/codec_write). Reading
 * checks the JSON's shape (types, unknown fields, bounds of what is copied) and takes secret
 * values out; what the values mean is checked by kiln_job_spec_validate, for JSON and CLI
 * flags alike. */
#include "job/codec.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

static int field_err(kiln_error_t *err, const char *field, const char *what)
{
    kiln_error_set(err, 0, "field '%s': %s", field, what);
    return -1;
}

/* A string field, copied into *out (replacing what was there). */
static int get_str(json_t *v, const char *field, char **out, kiln_error_t *err)
{
    if (!json_is_string(v))
        return field_err(err, field, "must be a string");
    if (json_string_length(v) != strlen(json_string_value(v)))
        return field_err(err, field, "contains a NUL byte");
    if (json_string_length(v) > KILN_JOB_SECRET_MAX)
        return field_err(err, field, "is too long");
    free(*out);
    *out = kiln_xstrdup(json_string_value(v));
    return 0;
}

/* A list of strings. */
static int get_strv(json_t *v, const char *field, char ***list, size_t *n, kiln_error_t *err)
{
    size_t i;
    json_t *x;
    char f[200];

    if (!json_is_array(v))
        return field_err(err, field, "must be a list of strings");
    if (json_array_size(v) > KILN_JOB_LIST_MAX)
        return field_err(err, field, "has too many entries");
    json_array_foreach(v, i, x)
    {
        char *s = NULL;
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (get_str(x, f, &s, err) < 0)
            return -1;
        kiln_job_spec_add_str(list, n, s);
        free(s);
    }
    return 0;
}

/* {K: V} of strings. */
static int get_map(json_t *v, const char *field, int local, kiln_job_kv_t **list, size_t *n,
                   kiln_error_t *err)
{
    const char *k;
    json_t *x;
    char f[200];

    if (!json_is_object(v))
        return field_err(err, field, "must be an object of strings");
    if (json_object_size(v) > KILN_JOB_MAP_MAX)
        return field_err(err, field, "has too many entries");
    json_object_foreach(v, k, x)
    {
        snprintf(f, sizeof(f), "%s.%.128s", field, k);
        if (local && json_is_null(x)) { /* "K" alone: taken from the environment */
            kiln_job_spec_add_kv(list, n, k, NULL);
            continue;
        }
        if (!json_is_string(x))
            return field_err(err, f, "must be a string");
        if (json_string_length(x) > KILN_JOB_STR_MAX)
            return field_err(err, f, "is too long");
        kiln_job_spec_add_kv(list, n, k, json_string_value(x));
    }
    return 0;
}

/* Decodes %XX escapes of n bytes of s (a URL's userinfo, as git would); malloc'ed. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = kiln_xmalloc(n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Splits the credential out of a scheme:// URL: "user:password@" (any scheme) or "token@"
 * (http/https) becomes *cred ("USER:PASSWORD" or "TOKEN", decoded) and *bare is the URL
 * without it. An ssh user name alone ("ssh://git@host") is not a secret and stays. Both are
 * NULL when there is nothing to take out. */
static void split_userinfo(const char *url, char **bare, char **cred)
{
    const char *host = strstr(url, "://"), *end, *at = NULL;

    *bare = *cred = NULL;
    if (host == NULL)
        return;
    host += 3;
    end = host + strcspn(host, "/?");
    for (const char *p = host; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL || (memchr(host, ':', (size_t)(at - host)) == NULL &&
                       strncmp(url, "https://", 8) && strncmp(url, "http://", 7)))
        return;
    {
        const char *colon = memchr(host, ':', (size_t)(at - host));
        _cleanup_free_ char *user = pct_decode(host, (size_t)((colon ? colon : at) - host));
        _cleanup_free_ char *pass = colon ? pct_decode(colon + 1, (size_t)(at - colon - 1)) : NULL;
        *cred = pass ? kiln_xasprintf("%s:%s", user, pass) : kiln_xstrdup(user);
    }
    *bare = kiln_xasprintf("%.*s%s", (int)(host - url), url, at + 1);
}

static int get_int(json_t *v, const char *field, long long lo, long long hi, long long *out,
                   kiln_error_t *err);

/* "source": one of git (with ref, commit, subdir, token), context, dir (local). A credential
 * in the URL or token goes to *cred: it is a secret, kept out of the spec (the record, events,
 * lists, logs) and of every command line. */
static int get_source(json_t *src, unsigned flags, kiln_job_spec_t *s, char **cred,
                      kiln_error_t *err)
{
    static const char *const keys[] = {"git",     "ref",   "commit", "subdir",
                                       "context", "token", "dir",    "timeout_seconds"};
    const char *key;
    json_t *v, *git, *ctx, *dir;
    int kinds;

    if (!json_is_object(src))
        return field_err(err, "source", "must be an object with 'git' or 'context'");
    json_object_foreach(src, key, v)
    {
        size_t i = 0;
        while (i < sizeof(keys) / sizeof(keys[0]) && strcmp(key, keys[i]) != 0)
            i++;
        if (i == sizeof(keys) / sizeof(keys[0]) ||
            (strcmp(key, "dir") == 0 && !(flags & KILN_JOB_JSON_LOCAL))) {
            char f[160];
            snprintf(f, sizeof(f), "source.%.128s", key);
            return field_err(err, f, "unknown field");
        }
    }
    git = json_object_get(src, "git");
    ctx = json_object_get(src, "context");
    dir = json_object_get(src, "dir");
    kinds = (git != NULL) + (ctx != NULL) + (dir != NULL);
    if (kinds != 1)
        return field_err(err, "source", "needs exactly one of 'git' or 'context'");
    if (ctx) {
        s->source_kind = KILN_JOB_SOURCE_CONTEXT;
        if (json_object_size(src) != 1)
            return field_err(err, "source", "'context' takes no other field");
        return get_str(ctx, "source.context", &s->source, err);
    }
    if (dir) {
        s->source_kind = KILN_JOB_SOURCE_DIR;
        if (get_str(dir, "source.dir", &s->source, err) < 0)
            return -1;
    } else {
        _cleanup_free_ char *bare = NULL;
        s->source_kind = KILN_JOB_SOURCE_GIT;
        if (get_str(git, "source.git", &s->source, err) < 0)
            return -1;
        split_userinfo(s->source, &bare, cred);
        if (*cred && **cred == '\0') {
            free(*cred);
            *cred = NULL;
        }
        if (bare) {
            free(s->source);
            s->source = steal_pointer(&bare);
        }
    }
    if ((v = json_object_get(src, "token")) != NULL) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return field_err(err, "source.token", "must be a string");
        if (get_str(v, "source.token", cred, err) < 0)
            return -1;
    }
    if ((v = json_object_get(src, "ref")) && get_str(v, "source.ref", &s->ref, err) < 0)
        return -1;
    if ((v = json_object_get(src, "commit")) &&
        get_str(v, "source.commit", &s->source_commit, err) < 0)
        return -1;
    if ((v = json_object_get(src, "subdir")) && get_str(v, "source.subdir", &s->subdir, err) < 0)
        return -1;
    if ((v = json_object_get(src, "timeout_seconds")) &&
        get_int(v, "source.timeout_seconds", 1, KILN_JOB_CHECKOUT_TIMEOUT_MAX, &s->source_timeout,
                err) < 0)
        return -1;
    return 0;
}

/* "secrets": {NAME: VALUE} in a request (values into *values), a list of names or
 * {"id", "src" | "env"} references otherwise. */
static int get_secrets(json_t *v, unsigned flags, kiln_job_spec_t *s, json_t *values,
                       kiln_error_t *err)
{
    char f[200];
    size_t i;
    json_t *x;

    if (flags & KILN_JOB_JSON_REQUEST) {
        const char *k;
        if (!json_is_object(v))
            return field_err(err, "secrets", "must be an object of strings");
        if (json_object_size(v) > KILN_JOB_MAP_MAX)
            return field_err(err, "secrets", "has too many entries");
        json_object_foreach(v, k, x)
        {
            snprintf(f, sizeof(f), "secrets.%.128s", k);
            if (!json_is_string(x))
                return field_err(err, f, "must be a string");
            if (json_string_length(x) > KILN_JOB_SECRET_MAX)
                return field_err(err, f, "is too long");
            kiln_job_spec_add_secret(s, k);
            json_object_set(values, k, x);
        }
        return 0;
    }
    if (!json_is_array(v))
        return field_err(err, "secrets", "must be a list of secret names or {\"id\": ...}");
    if (json_array_size(v) > KILN_JOB_MAP_MAX)
        return field_err(err, "secrets", "has too many entries");
    json_array_foreach(v, i, x)
    {
        const char *k;
        json_t *y;
        kiln_job_secret_t *sec;
        snprintf(f, sizeof(f), "secrets[%zu]", i);
        if (json_is_string(x)) {
            kiln_job_spec_add_secret(s, json_string_value(x));
            continue;
        }
        if (!json_is_object(x) || !json_is_string(json_object_get(x, "id")))
            return field_err(err, f, "must be a secret name or {\"id\": NAME, ...}");
        sec = kiln_job_spec_add_secret(s, json_string_value(json_object_get(x, "id")));
        json_object_foreach(x, k, y)
        {
            char g[240];
            snprintf(g, sizeof(g), "%s.%.64s", f, k);
            if (strcmp(k, "src") == 0 && get_str(y, g, &sec->src, err) < 0)
                return -1;
            if (strcmp(k, "env") == 0 && get_str(y, g, &sec->env, err) < 0)
                return -1;
            if (strcmp(k, "id") && strcmp(k, "src") && strcmp(k, "env"))
                return field_err(err, g, "unknown field");
        }
    }
    return 0;
}

static int get_outputs(json_t *v, kiln_job_spec_t *s, kiln_error_t *err)
{
    size_t i;
    json_t *o;
    char f[200];

    if (!json_is_array(v))
        return field_err(err, "outputs", "must be a list of objects");
    if (json_array_size(v) > KILN_JOB_OUTPUTS_MAX)
        return field_err(err, "outputs", "has too many entries");
    json_array_foreach(v, i, o)
    {
        const char *k;
        json_t *x;
        kiln_job_output_t *out;
        char *type = NULL;
        snprintf(f, sizeof(f), "outputs[%zu]", i);
        if (!json_is_object(o))
            return field_err(err, f, "must be an object");
        snprintf(f, sizeof(f), "outputs[%zu].type", i);
        if (get_str(json_object_get(o, "type"), f, &type, err) < 0)
            return -1;
        out = kiln_job_spec_add_output(s, type);
        free(type);
        json_object_foreach(o, k, x)
        {
            char num[32];
            if (strcmp(k, "type") == 0)
                continue;
            snprintf(f, sizeof(f), "outputs[%zu].%.128s", i, k);
            /* where an output goes is a path, URL or reference: text only */
            if ((strcmp(k, "dest") == 0 || strcmp(k, "name") == 0) && !json_is_string(x))
                return field_err(err, f, "must be a string");
            if (json_is_boolean(x)) {
                kiln_job_output_add_opt(out, k, json_is_true(x) ? "true" : "false",
                                        KILN_JOB_VALUE_BOOL);
            } else if (json_is_integer(x)) {
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(x));
                kiln_job_output_add_opt(out, k, num, KILN_JOB_VALUE_INT);
            } else {
                char *val = NULL;
                if (get_str(x, f, &val, err) < 0)
                    return -1;
                kiln_job_output_add_opt(out, k, val, KILN_JOB_VALUE_STRING);
                free(val);
            }
        }
    }
    return 0;
}

static int get_limits(json_t *v, kiln_job_limits_t *l, kiln_error_t *err)
{
    return kiln_job_limits_from_json(v, "limits", 1, l, err);
}

/* "type=s3,..." entries of cache.from / cache.to are remote caches (remote_from/remote_to). */
static void move_remote(kiln_job_spec_t *s)
{
    size_t w = 0;
    for (size_t i = 0; i < s->n_cache_from; i++) {
        if (strncmp(s->cache_from[i], "type=s3,", 8) == 0) {
            kiln_job_spec_add_str(&s->remote_cache_from, &s->n_remote_cache_from, s->cache_from[i]);
            free(s->cache_from[i]);
        } else {
            s->cache_from[w++] = s->cache_from[i];
        }
    }
    if (s->cache_from)
        s->cache_from[w] = NULL;
    s->n_cache_from = w;
    if (s->cache_to && strncmp(s->cache_to, "type=s3,", 8) == 0) {
        free(s->remote_cache_to);
        s->remote_cache_to = s->cache_to;
        s->cache_to = NULL;
    }
}

static int get_cache(json_t *v, kiln_job_spec_t *s, kiln_error_t *err)
{
    const char *key;
    json_t *x;

    if (!json_is_object(v))
        return field_err(err, "cache",
                         "must be an object (disabled, from, to, mode, remote_from, remote_to, "
                         "namespace, context_id)");
    json_object_foreach(v, key, x)
    {
        if (strcmp(key, "disabled") == 0) {
            if (!json_is_boolean(x))
                return field_err(err, "cache.disabled", "must be true or false");
            s->no_cache = json_is_true(x);
        } else if (strcmp(key, "from") == 0) {
            if (get_strv(x, "cache.from", &s->cache_from, &s->n_cache_from, err) < 0)
                return -1;
            move_remote(s);
        } else if (strcmp(key, "to") == 0) {
            if (get_str(x, "cache.to", &s->cache_to, err) < 0)
                return -1;
            move_remote(s);
        } else if (strcmp(key, "remote_from") == 0) {
            if (get_strv(x, "cache.remote_from", &s->remote_cache_from, &s->n_remote_cache_from,
                         err) < 0)
                return -1;
        } else if (strcmp(key, "remote_to") == 0) {
            if (get_str(x, "cache.remote_to", &s->remote_cache_to, err) < 0)
                return -1;
        } else if (strcmp(key, "namespace") == 0) {
            if (get_str(x, "cache.namespace", &s->cache_namespace, err) < 0)
                return -1;
        } else if (strcmp(key, "context_id") == 0) {
            if (get_str(x, "cache.context_id", &s->context_id, err) < 0)
                return -1;
        } else if (strcmp(key, "mode") == 0) {
            const char *m = json_string_value(x);
            if (m == NULL || (strcmp(m, "max") && strcmp(m, "min")))
                return field_err(err, "cache.mode", "must be \"max\" or \"min\"");
            s->cache_to_max = strcmp(m, "max") == 0;
        } else if (strcmp(key, "max_size") == 0) {
            json_int_t n = json_integer_value(x);
            if (!json_is_integer(x) || n <= 0)
                return field_err(err, "cache.max_size", "must be a positive number of bytes");
            s->cache_to_max_size = (uint64_t)n;
        } else {
            char f[100];
            snprintf(f, sizeof(f), "cache.%.64s", key);
            return field_err(err, f, "unknown field");
        }
    }
    return 0;
}

/* An integer field from lo to hi. */
static int get_int(json_t *v, const char *field, long long lo, long long hi, long long *out,
                   kiln_error_t *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char what[96];
        snprintf(what, sizeof(what), "must be a whole number from %lld to %lld", lo, hi);
        return field_err(err, field, what);
    }
    *out = json_integer_value(v);
    return 0;
}

/* "registry": {"mirrors": [...], "insecure": [...]}. */
static int get_registry(json_t *v, kiln_job_spec_t *s, kiln_error_t *err)
{
    const char *key;
    json_t *x;

    if (!json_is_object(v))
        return field_err(err, "registry", "must be an object (mirrors, insecure)");
    json_object_foreach(v, key, x)
    {
        if (strcmp(key, "mirrors") == 0) {
            if (get_strv(x, "registry.mirrors", &s->registry_mirrors, &s->n_registry_mirrors, err) <
                0)
                return -1;
        } else if (strcmp(key, "insecure") == 0) {
            if (get_strv(x, "registry.insecure", &s->insecure_registries, &s->n_insecure_registries,
                         err) < 0)
                return -1;
        } else {
            char f[100];
            snprintf(f, sizeof(f), "registry.%.64s", key);
            return field_err(err, f, "unknown field");
        }
    }
    return 0;
}

/* One of the build options (job/options.h) into s: 1 when key is one, 0 when it is not (or
 * not one a request may carry), -1 with err naming the field. */
static int get_option(const char *key, json_t *v, unsigned flags, kiln_job_spec_t *s,
                      kiln_error_t *err)
{
    long long n = 0;
    int r = 0;

    if (strcmp(key, "labels") == 0)
        r = get_map(v, key, 0, &s->labels, &s->n_labels, err);
    else if (strcmp(key, "compression") == 0)
        r = get_str(v, key, &s->compression, err);
    else if (strcmp(key, "network") == 0)
        r = get_str(v, key, &s->network, err);
    else if (strcmp(key, "compression_level") == 0) {
        r = get_int(v, key, 0, 19, &n, err);
        s->compression_level = (int)n;
        s->has_compression_level = 1;
    } else if (strcmp(key, "source_date_epoch") == 0) {
        r = get_int(v, key, 0, 253402300799LL, &n, err);
        s->source_date_epoch = n;
        s->has_source_date_epoch = 1;
    } else if (strcmp(key, "sbom") == 0 || strcmp(key, "provenance") == 0) {
        if (!json_is_boolean(v))
            return field_err(err, key, "must be true or false");
        *(key[0] == 's' ? &s->sbom : &s->provenance) = json_is_true(v);
    } else if (strcmp(key, "soci") == 0) {
        if (!json_is_boolean(v))
            return field_err(err, key, "must be true or false");
        s->soci = json_is_true(v);
    } else if (strcmp(key, "soci_min_layer_size") == 0) {
        r = get_int(v, key, 0, 1LL << 40, &s->soci_min_layer_size, err);
        s->has_soci_min_layer_size = 1;
    } else if (strcmp(key, "ulimits") == 0) {
        /* a request's too: the server caps them (its config's max_ulimits, max_shm_size) */
        r = get_strv(v, key, &s->ulimits, &s->n_ulimits, err);
    } else if (strcmp(key, "shm_size") == 0) {
        r = get_int(v, key, 1, 1LL << 40, &s->shm_size, err);
    } else if (flags & KILN_JOB_JSON_REQUEST)
        return 0;
    else if (strcmp(key, "build_contexts") == 0)
        r = get_map(v, key, 0, &s->contexts, &s->n_contexts, err);
    else if (strcmp(key, "registry") == 0)
        r = get_registry(v, s, err);
    else if (strcmp(key, "isolation") == 0)
        r = get_str(v, key, &s->isolation, err);
    else if (strcmp(key, "ssh") == 0)
        r = get_str(v, key, &s->ssh, err);
    else if (strcmp(key, "add_hosts") == 0)
        r = get_strv(v, key, &s->add_hosts, &s->n_add_hosts, err);
    else
        return 0;
    return r < 0 ? -1 : 1;
}

/* The top-level string fields: their name, slot, and whether a request may carry them. */
static char **str_field(kiln_job_spec_t *s, const char *key, unsigned flags)
{
    const struct {
        const char *name;
        char **slot;
        int request;
    } f[] = {
        {"dockerfile", &s->dockerfile, 1}, {"target", &s->target, 1},   {"tenant", &s->tenant, 1},
        {"build_id", &s->build_id, 0},     {"repo", &s->repo, 0},       {"commit", &s->commit, 0},
        {"branch", &s->branch, 0},         {"trigger", &s->trigger, 0}, {"plan", &s->plan, 0},
        {"platform", &s->platform, 0},
    };

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (strcmp(key, f[i].name) == 0)
            return (f[i].request || !(flags & KILN_JOB_JSON_REQUEST)) ? f[i].slot : NULL;
    return NULL;
}

/* One top-level field into s; unknown ones refused. */
static int get_field(const char *key, json_t *v, unsigned flags, kiln_job_spec_t *s, json_t *values,
                     char **cred, kiln_error_t *err)
{
    char **slot;
    int opt;

    if ((slot = str_field(s, key, flags)) != NULL)
        return get_str(v, key, slot, err);
    if ((opt = get_option(key, v, flags, s, err)) != 0)
        return opt < 0 ? -1 : 0;
    if (strcmp(key, "source") == 0)
        return get_source(v, flags, s, cred, err);
    if (strcmp(key, "build_args") == 0)
        return get_map(v, key, s->local, &s->build_args, &s->n_build_args, err);
    if (strcmp(key, "env") == 0)
        return get_map(v, key, s->local, &s->env, &s->n_env, err);
    if (strcmp(key, "secrets") == 0)
        return get_secrets(v, flags, s, values, err);
    if (strcmp(key, "outputs") == 0)
        return get_outputs(v, s, err);
    if (strcmp(key, "tags") == 0)
        return get_strv(v, key, &s->tags, &s->n_tags, err);
    if (strcmp(key, "notify") == 0)
        return get_strv(v, key, &s->notify, &s->n_notify, err);
    if (strcmp(key, "allow") == 0) {
        if (!json_is_array(v))
            return field_err(err, "allow", "must be a list of entitlements");
        return get_strv(v, key, &s->allow, &s->n_allow, err);
    }
    if (strcmp(key, "limits") == 0)
        return get_limits(v, &s->limits, err);
    if (strcmp(key, "timeout_seconds") == 0) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            json_integer_value(v) > 7 * 24 * 3600)
            return field_err(err, key, "must be a positive number of seconds");
        s->timeout_seconds = json_integer_value(v);
        return 0;
    }
    if (strcmp(key, "cache") == 0 && !(flags & KILN_JOB_JSON_REQUEST))
        return get_cache(v, s, err);
    return field_err(err, key, "unknown field");
}

int kiln_job_from_json(json_t *root, unsigned flags, kiln_job_spec_t *out, json_t **secrets,
                       kiln_error_t *err)
{
    kiln_job_spec_t s = {.local = (flags & KILN_JOB_JSON_LOCAL) != 0};
    json_t *values = json_object();
    _cleanup_free_ char *cred = NULL;
    const char *key;
    json_t *v;

    if (secrets)
        *secrets = NULL;
    if (!json_is_object(root)) {
        kiln_error_set(err, 0, "the job must be a JSON object");
        goto fail;
    }
    json_object_foreach(root, key, v)
    {
        if (get_field(key, v, flags, &s, values, &cred, err) < 0)
            goto fail;
    }
    if (cred) {
        /* the git credential travels and is stored like the other secrets, by name */
        size_t i = 0;
        while (i < s.n_secrets && strcmp(s.secrets[i].id, KILN_JOB_GIT_SECRET) != 0)
            i++;
        if (i == s.n_secrets)
            kiln_job_spec_add_secret(&s, KILN_JOB_GIT_SECRET);
        json_object_set_new(values, KILN_JOB_GIT_SECRET, json_string(cred));
    }
    if (json_object_size(values) > 0 && secrets == NULL) {
        kiln_error_set(err, 0, "field 'secrets': secret values are not accepted here");
        goto fail;
    }
    if (kiln_job_spec_validate(&s, err) < 0)
        goto fail;
    if (secrets && json_object_size(values) > 0)
        *secrets = json_incref(values);
    json_decref(values);
    *out = s;
    return 0;
fail:
    json_decref(values);
    kiln_job_spec_clear(&s);
    return -1;
}

json_t *kiln_job_json_load(const char *text, size_t len, kiln_error_t *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

    if (root == NULL)
        kiln_error_set(err, 0, "malformed JSON at line %d column %d: %s", je.line, je.column,
                       je.text);
    return root;
}

int kiln_job_parse(const char *text, size_t len, unsigned flags, kiln_job_spec_t *out,
                   json_t **secrets, kiln_error_t *err)
{
    json_t *root = kiln_job_json_load(text, len, err);
    int ret;

    if (root == NULL)
        return -1;
    ret = kiln_job_from_json(root, flags, out, secrets, err);
    json_decref(root);
    return ret;
}
