#include "src/server/request.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/build/entitlement.h"
#include "src/server/limits.h"
#include "src/server/outconf.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define MAX_STR 4096
#define MAX_SECRET 65536
#define MAX_ITEMS 256

static int field_err(kiln_error_t *err, const char *field, const char *what)
{
    kiln_error_set(err, 0, "field '%s': %s", field, what);
    return -1;
}

/* A string field: present, a string, not empty, bounded, no control characters, and not
 * starting with '-' (it ends up as a command-line argument). */
static int check_str(json_t *v, const char *field, size_t max, kiln_error_t *err)
{
    const char *s;
    size_t n;

    if (!json_is_string(v))
        return field_err(err, field, "must be a string");
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0)
        return field_err(err, field, "must not be empty");
    if (n > max)
        return field_err(err, field, "is too long");
    if (s[0] == '-')
        return field_err(err, field, "must not start with '-'");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return field_err(err, field, "contains a control character");
    return 0;
}

static int check_name(const char *s, const char *extra)
{
    if (*s == '\0' || strlen(s) > 128)
        return 0;
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !strchr(extra, *s))
            return 0;
    return 1;
}

/* Validates a relative path inside the context: no "..", not absolute. */
static int check_rel_path(json_t *v, const char *field, kiln_error_t *err)
{
    const char *s;
    if (check_str(v, field, MAX_STR, err) < 0)
        return -1;
    s = json_string_value(v);
    if (s[0] == '/')
        return field_err(err, field, "must be a path relative to the source");
    for (const char *p = s; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
            return field_err(err, field, "must not contain '..'");
    }
    return 0;
}

char *kiln_request_repo_key(const char *url)
{
    char *k = kiln_xstrdup(url);
    size_t n = strlen(k);
    char *host = strstr(k, "://");

    while (n > 0 && k[n - 1] == '/')
        k[--n] = '\0';
    if (n > 4 && strcmp(k + n - 4, ".git") == 0)
        k[n - 4] = '\0';
    for (char *p = host ? host + 3 : k; *p && *p != '/' && *p != ':'; p++)
        *p = (char)tolower((unsigned char)*p);
    return k;
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

static int check_source(json_t *src, json_t *out, char **repo, char **cred, kiln_error_t *err)
{
    const char *key;
    json_t *v;

    if (!json_is_object(src))
        return field_err(err, "source", "must be an object with 'git' or 'context'");
    json_object_foreach(src, key, v)
    {
        if (strcmp(key, "git") && strcmp(key, "ref") && strcmp(key, "commit") &&
            strcmp(key, "subdir") && strcmp(key, "context") && strcmp(key, "token")) {
            char f[160];
            snprintf(f, sizeof(f), "source.%.128s", key);
            return field_err(err, f, "unknown field");
        }
    }
    json_t *git = json_object_get(src, "git"), *ctx = json_object_get(src, "context");
    if ((git == NULL) == (ctx == NULL))
        return field_err(err, "source", "needs exactly one of 'git' or 'context'");
    if (ctx) {
        const char *c;
        if (check_str(ctx, "source.context", 64, err) < 0)
            return -1;
        c = json_string_value(ctx);
        if (strncmp(c, "ctx-", 4) != 0 || strspn(c + 4, "0123456789abcdef") != strlen(c + 4))
            return field_err(err, "source.context", "is not an uploaded context id");
        if (json_object_size(src) != 1)
            return field_err(err, "source", "'context' takes no other field");
        json_object_set(out, "context", ctx);
        *repo = kiln_xstrdup("upload");
        return 0;
    }
    if (check_str(git, "source.git", MAX_STR, err) < 0)
        return -1;
    const char *url = json_string_value(git);
    if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7) && strncmp(url, "git://", 6) &&
        strncmp(url, "ssh://", 6) && strncmp(url, "file://", 7) && strncmp(url, "git@", 4))
        return field_err(err, "source.git",
                         "must be an https://, http://, ssh://, git://, file:// or git@ URL");
    if (strchr(url, '#') || strchr(url, ' '))
        return field_err(err, "source.git", "must not contain '#' or spaces");
    {
        /* a credential in the URL is a secret: kept out of the stored request (the record,
         * events, lists, logs) and of every command line */
        _cleanup_free_ char *bare = NULL;
        split_userinfo(url, &bare, cred);
        if (*cred && **cred == '\0') {
            free(*cred);
            *cred = NULL;
        }
        json_object_set_new(out, "git", json_string(bare ? bare : url));
        url = json_string_value(json_object_get(out, "git"));
    }
    v = json_object_get(src, "token");
    if (v) {
        if (check_str(v, "source.token", MAX_SECRET, err) < 0)
            return -1;
        free(*cred);
        *cred = kiln_xstrdup(json_string_value(v));
    }
    v = json_object_get(src, "ref");
    if (v) {
        if (check_str(v, "source.ref", 256, err) < 0)
            return -1;
        if (strpbrk(json_string_value(v), "#: ~^?*[\\"))
            return field_err(err, "source.ref", "is not a valid git ref");
        json_object_set(out, "ref", v);
    }
    v = json_object_get(src, "commit");
    if (v) {
        const char *c;
        if (check_str(v, "source.commit", 64, err) < 0)
            return -1;
        c = json_string_value(v);
        if (strlen(c) < 7 || strspn(c, "0123456789abcdef") != strlen(c))
            return field_err(err, "source.commit", "must be a hex commit id");
        json_object_set(out, "commit", v);
    }
    v = json_object_get(src, "subdir");
    if (v) {
        if (check_rel_path(v, "source.subdir", err) < 0)
            return -1;
        if (strpbrk(json_string_value(v), "#:"))
            return field_err(err, "source.subdir", "must not contain '#' or ':'");
        json_object_set(out, "subdir", v);
    }
    *repo = kiln_request_repo_key(url);
    return 0;
}

/* {K: V} of strings with K a variable name. */
static int check_map(json_t *v, const char *field, size_t max_value, kiln_error_t *err)
{
    const char *k;
    json_t *x;
    char f[200];

    if (!json_is_object(v))
        return field_err(err, field, "must be an object of strings");
    if (json_object_size(v) > MAX_ITEMS)
        return field_err(err, field, "has too many entries");
    json_object_foreach(v, k, x)
    {
        snprintf(f, sizeof(f), "%s.%.128s", field, k);
        if (!check_name(k, strcmp(field, "secrets") == 0 ? "-." : "") &&
            !(strcmp(field, "secrets") == 0 && strcmp(k, KILN_REQUEST_GIT_SECRET) == 0))
            return field_err(err, f, "is not a valid name");
        if (!json_is_string(x))
            return field_err(err, f, "must be a string");
        if (json_string_length(x) > max_value)
            return field_err(err, f, "is too long");
    }
    return 0;
}

static int check_outputs(json_t *v, kiln_error_t *err)
{
    size_t i;
    json_t *o;
    char f[200];

    if (!json_is_array(v))
        return field_err(err, "outputs", "must be a list of objects");
    if (json_array_size(v) > 16)
        return field_err(err, "outputs", "has too many entries");
    json_array_foreach(v, i, o)
    {
        const char *k;
        json_t *x;
        snprintf(f, sizeof(f), "outputs[%zu]", i);
        if (!json_is_object(o))
            return field_err(err, f, "must be an object");
        snprintf(f, sizeof(f), "outputs[%zu].type", i);
        if (check_str(json_object_get(o, "type"), f, 32, err) < 0)
            return -1;
        json_object_foreach(o, k, x)
        {
            snprintf(f, sizeof(f), "outputs[%zu].%.128s", i, k);
            if (!check_name(k, "-"))
                return field_err(err, f, "is not a valid option name");
            if (json_is_boolean(x) || json_is_integer(x))
                continue;
            if (check_str(x, f, MAX_STR, err) < 0)
                return -1;
            if (strpbrk(json_string_value(x), ",\"="))
                return field_err(err, f, "must not contain ',', '=' or '\"'");
        }
    }
    return 0;
}

static int check_strings(json_t *v, const char *field, kiln_error_t *err)
{
    size_t i;
    json_t *x;
    char f[200];

    if (!json_is_array(v))
        return field_err(err, field, "must be a list of strings");
    if (json_array_size(v) > 64)
        return field_err(err, field, "has too many entries");
    json_array_foreach(v, i, x)
    {
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (check_str(x, f, MAX_STR, err) < 0)
            return -1;
        if (strcmp(field, "notify") == 0 && strncmp(json_string_value(x), "sqs://", 6) &&
            strncmp(json_string_value(x), "sns://", 6))
            return field_err(err, f, "must start with sqs:// or sns://");
    }
    return 0;
}

/* "allow": a list of known entitlement names. */
static int check_allow(json_t *v, kiln_error_t *err)
{
    size_t i;
    json_t *x;
    char f[64];

    if (!json_is_array(v))
        return field_err(err, "allow", "must be a list of entitlements");
    if (json_array_size(v) > KILN_ENTITLEMENT_COUNT)
        return field_err(err, "allow", "has too many entries");
    json_array_foreach(v, i, x)
    {
        unsigned bit = 0;
        kiln_error_t e = {0};
        snprintf(f, sizeof(f), "allow[%zu]", i);
        if (check_str(x, f, 64, err) < 0)
            return -1;
        if (strchr(json_string_value(x), ',') ||
            kiln_entitlement_parse(json_string_value(x), &bit, &e) < 0)
            return field_err(err, f, "is not an entitlement (network.host, security.insecure)");
    }
    return 0;
}

int kiln_request_check_allow(json_t *stored, unsigned granted, kiln_error_t *err)
{
    size_t i;
    json_t *x;

    json_array_foreach(json_object_get(stored, "allow"), i, x)
    {
        unsigned bit = 0;
        if (kiln_entitlement_parse(json_string_value(x), &bit, NULL) < 0 || (bit & ~granted)) {
            kiln_error_set(err, 0,
                           "field 'allow[%zu]': the entitlement %s is not granted here (server "
                           "config \"policy\": {\"entitlements\": [...]}, kiln worker --allow)",
                           i, json_string_value(x));
            return -1;
        }
    }
    return 0;
}

int kiln_request_from_json(json_t *root, kiln_request_t *out, kiln_error_t *err)
{
    kiln_request_t r = {0};
    _cleanup_free_ char *cred = NULL;
    const char *key;
    json_t *v;

    if (!json_is_object(root))
        return kiln_error_set(err, 0, "the request body must be a JSON object");
    r.stored = json_object();
    json_object_foreach(root, key, v)
    {
        int ret = 0;
        if (strcmp(key, "source") == 0) {
            json_t *src = json_object();
            ret = check_source(v, src, &r.repo, &cred, err);
            json_object_set_new(r.stored, "source", src);
            if (ret < 0)
                goto fail;
            continue;
        }
        if (strcmp(key, "dockerfile") == 0)
            ret = check_rel_path(v, key, err);
        else if (strcmp(key, "target") == 0)
            ret = check_str(v, key, 128, err);
        else if (strcmp(key, "tenant") == 0)
            /* set by the server in what it stores and queues (a client's is refused before
             * this, kiln_routes_enqueue); the worker reads it back */
            ret = check_str(v, key, 63, err);
        else if (strcmp(key, "build_args") == 0 || strcmp(key, "env") == 0)
            ret = check_map(v, key, MAX_STR, err);
        else if (strcmp(key, "outputs") == 0)
            ret = check_outputs(v, err);
        else if (strcmp(key, "tags") == 0 || strcmp(key, "notify") == 0)
            ret = check_strings(v, key, err);
        else if (strcmp(key, "allow") == 0)
            ret = check_allow(v, err);
        else if (strcmp(key, "timeout_seconds") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
                json_integer_value(v) > 7 * 24 * 3600)
                ret = field_err(err, key, "must be a positive number of seconds");
        } else if (strcmp(key, "limits") == 0) {
            json_t *norm = NULL;
            if (kiln_limits_parse(v, &norm, err) < 0)
                goto fail;
            json_object_set_new(r.stored, "limits", norm);
            continue;
        } else if (strcmp(key, "secrets") == 0) {
            json_t *names = json_array();
            const char *k;
            json_t *x;
            ret = check_map(v, key, MAX_SECRET, err);
            if (ret < 0) {
                json_decref(names);
                goto fail;
            }
            json_object_foreach(v, k, x) json_array_append_new(names, json_string(k));
            json_object_set_new(r.stored, "secrets", names);
            r.secrets = json_deep_copy(v);
            continue;
        } else {
            ret = field_err(err, key, "unknown field");
        }
        if (ret < 0)
            goto fail;
        json_object_set(r.stored, key, v);
    }
    if (r.repo == NULL) {
        field_err(err, "source", "is required");
        goto fail;
    }
    /* output types, their keys, file outputs inside the artifacts directory, pushed names */
    if (kiln_outconf_check_shape(r.stored, err) < 0)
        goto fail;
    if (cred) {
        /* the git credential travels and is stored like the other secrets, by name */
        json_t *names = json_object_get(r.stored, "secrets");
        if (r.secrets == NULL)
            r.secrets = json_object();
        if (names == NULL)
            json_object_set_new(r.stored, "secrets", names = json_array());
        if (json_object_get(r.secrets, KILN_REQUEST_GIT_SECRET) == NULL)
            json_array_append_new(names, json_string(KILN_REQUEST_GIT_SECRET));
        json_object_set_new(r.secrets, KILN_REQUEST_GIT_SECRET, json_string(cred));
    }
    *out = r;
    return 0;
fail:
    kiln_request_free(&r);
    return -1;
}

int kiln_request_parse(const char *body, size_t len, kiln_request_t *out, kiln_error_t *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    int ret;

    if (root == NULL)
        return kiln_error_set(err, 0, "malformed JSON at line %d column %d: %s", je.line, je.column,
                              je.text);
    ret = kiln_request_from_json(root, out, err);
    json_decref(root);
    return ret;
}

void kiln_request_free(kiln_request_t *r)
{
    json_decref(r->stored);
    json_decref(r->secrets);
    free(r->repo);
    memset(r, 0, sizeof(*r));
}

typedef struct argv_b {
    char **v;
    size_t n;
} argv_b_t;

static void push(argv_b_t *a, char *s)
{
    a->v = kiln_xrealloc(a->v, (a->n + 2) * sizeof(char *));
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void push_map(argv_b_t *a, json_t *m, const char *flag)
{
    const char *k;
    json_t *x;
    json_object_foreach(m, k, x)
    {
        push(a, kiln_xstrdup(flag));
        push(a, kiln_xasprintf("%s=%s", k, json_string_value(x)));
    }
}

int kiln_request_argv(json_t *stored, const char *context_dir, json_t *secret_files,
                      const char *metadata_file, char ***argv, kiln_error_t *err)
{
    argv_b_t a = {0};
    json_t *src = json_object_get(stored, "source"), *v;
    size_t i;

    if (!json_is_object(src))
        return kiln_error_set(err, 0, "request has no source");
    /* again when the job runs: a request stored by an older version is held to it too */
    if (kiln_outconf_check_shape(stored, err) < 0)
        return -1;
    push(&a, kiln_xstrdup("build"));
    push(&a, kiln_xstrdup("--progress=plain"));
    push(&a, kiln_xstrdup("--metadata-file"));
    push(&a, kiln_xstrdup(metadata_file));
    if ((v = json_object_get(stored, "dockerfile")) != NULL) {
        push(&a, kiln_xstrdup("-f"));
        push(&a, kiln_xstrdup(json_string_value(v)));
    }
    if ((v = json_object_get(stored, "target")) != NULL) {
        push(&a, kiln_xstrdup("--target"));
        push(&a, kiln_xstrdup(json_string_value(v)));
    }
    push_map(&a, json_object_get(stored, "build_args"), "--build-arg");
    push_map(&a, json_object_get(stored, "env"), "--build-arg");
    json_array_foreach(json_object_get(stored, "secrets"), i, v)
    {
        const char *file = json_string_value(json_object_get(secret_files, json_string_value(v)));
        if (strcmp(json_string_value(v), KILN_REQUEST_GIT_SECRET) == 0)
            continue; /* for kiln checkout only (kiln_job_run), never a build step's */
        if (file == NULL) {
            kiln_strv_free(a.v);
            return kiln_error_set(err, ENOENT, "secret '%s' is not available",
                                  json_string_value(v));
        }
        push(&a, kiln_xstrdup("--secret"));
        push(&a, kiln_xasprintf("id=%s,src=%s", json_string_value(v), file));
    }
    json_array_foreach(json_object_get(stored, "tags"), i, v)
    {
        push(&a, kiln_xstrdup("-t"));
        push(&a, kiln_xstrdup(json_string_value(v)));
    }
    json_array_foreach(json_object_get(stored, "outputs"), i, v)
    {
        kiln_buf_t b;
        const char *k;
        json_t *x;
        kiln_buf_init(&b, 0);
        kiln_buf_appendf(&b, NULL, "type=%s", json_string_value(json_object_get(v, "type")));
        json_object_foreach(v, k, x)
        {
            if (strcmp(k, "type") == 0)
                continue;
            if (strcmp(k, "dest") == 0 &&
                kiln_outconf_type_is_local(json_string_value(json_object_get(v, "type"))))
                /* a file output goes into what becomes the build's artifacts directory */
                kiln_buf_appendf(&b, NULL, ",dest=%s/%s", KILN_OUTCONF_DIR, json_string_value(x));
            else if (json_is_string(x))
                kiln_buf_appendf(&b, NULL, ",%s=%s", k, json_string_value(x));
            else if (json_is_boolean(x))
                kiln_buf_appendf(&b, NULL, ",%s=%s", k, json_is_true(x) ? "true" : "false");
            else
                kiln_buf_appendf(&b, NULL, ",%s=%lld", k, (long long)json_integer_value(x));
        }
        push(&a, kiln_xstrdup("--output"));
        push(&a, kiln_buf_steal(&b, NULL));
    }
    {
        kiln_limit_values_t lim;
        kiln_limits_values(json_object_get(stored, "limits"), &lim);
        if (lim.memory) {
            push(&a, kiln_xstrdup("--memory"));
            push(&a, kiln_xstrdup(json_string_value(
                         json_object_get(json_object_get(stored, "limits"), "memory"))));
        }
        if (lim.pids)
            push(&a, kiln_xasprintf("--pids-limit=%llu", (unsigned long long)lim.pids));
        if (lim.cpu_time)
            push(&a, kiln_xasprintf("--cpu-time=%llu", (unsigned long long)lim.cpu_time));
        if (lim.disk)
            push(&a, kiln_xasprintf("--disk-limit=%llu", (unsigned long long)lim.disk));
    }
    json_array_foreach(json_object_get(stored, "allow"), i, v)
    {
        push(&a, kiln_xstrdup("--allow"));
        push(&a, kiln_xstrdup(json_string_value(v)));
    }
    json_array_foreach(json_object_get(stored, "notify"), i, v)
    {
        push(&a, kiln_xstrdup("--notify"));
        push(&a, kiln_xstrdup(json_string_value(v)));
    }
    if (context_dir) {
        push(&a, kiln_xstrdup(context_dir));
    } else {
        /* docker's git context syntax: URL#REF:SUBDIR (a commit pins the ref). */
        const char *url = json_string_value(json_object_get(src, "git"));
        const char *ref = json_string_value(json_object_get(src, "commit"));
        const char *sub = json_string_value(json_object_get(src, "subdir"));
        if (url == NULL) {
            kiln_strv_free(a.v);
            return kiln_error_set(err, 0, "request has an uploaded context but no directory");
        }
        if (ref == NULL)
            ref = json_string_value(json_object_get(src, "ref"));
        if (ref || sub)
            push(&a,
                 kiln_xasprintf("%s#%s%s%s", url, ref ? ref : "", sub ? ":" : "", sub ? sub : ""));
        else
            push(&a, kiln_xstrdup(url));
    }
    *argv = a.v;
    return 0;
}
