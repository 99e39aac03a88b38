/* kiln — the typed job spec: building one up and checking it completely (see spec.h).
 * Pure: no I/O (a local spec's files are opened by whoever runs it). */
#include "job/spec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/remote_store.h"
#include "job/options.h"
#include "oci/reference.h"
#include "utils/aws/notify.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define NAME_MAX_LEN 128

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kiln_job_kv_free(kiln_job_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void kiln_job_spec_clear(kiln_job_spec_t *s)
{
    char **strs[] = {&s->build_id,   &s->tenant,         &s->repo,       &s->commit,
                     &s->branch,     &s->trigger,        &s->source,     &s->ref,
                     &s->subdir,     &s->source_commit,  &s->dockerfile, &s->plan,
                     &s->target,     &s->platform,       &s->cache_to,   &s->cache_namespace,
                     &s->context_id, &s->remote_cache_to};

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    kiln_job_options_clear(s);
    kiln_job_kv_free(s->build_args, s->n_build_args);
    kiln_job_kv_free(s->env, s->n_env);
    for (size_t i = 0; i < s->n_secrets; i++) {
        free(s->secrets[i].id);
        free(s->secrets[i].src);
        free(s->secrets[i].env);
    }
    free(s->secrets);
    for (size_t i = 0; i < s->n_outputs; i++) {
        for (size_t k = 0; k < s->outputs[i].n_opts; k++) {
            free(s->outputs[i].opts[k].key);
            free(s->outputs[i].opts[k].value);
        }
        free(s->outputs[i].opts);
        free(s->outputs[i].type);
    }
    free(s->outputs);
    free_strv(s->allow, s->n_allow);
    free_strv(s->tags, s->n_tags);
    free_strv(s->notify, s->n_notify);
    free_strv(s->cache_from, s->n_cache_from);
    free_strv(s->remote_cache_from, s->n_remote_cache_from);
    memset(s, 0, sizeof(*s));
}

void kiln_job_spec_add_str(char ***list, size_t *n, const char *s)
{
    *list = kiln_xrealloc(*list, (*n + 2) * sizeof(char *));
    (*list)[(*n)++] = kiln_xstrdup(s);
    (*list)[*n] = NULL;
}

kiln_job_output_t *kiln_job_spec_add_output(kiln_job_spec_t *s, const char *type)
{
    kiln_job_output_t *o;

    s->outputs = kiln_xrealloc(s->outputs, (s->n_outputs + 1) * sizeof(*s->outputs));
    o = &s->outputs[s->n_outputs++];
    memset(o, 0, sizeof(*o));
    o->type = kiln_xstrdup(type);
    return o;
}

void kiln_job_output_add_opt(kiln_job_output_t *o, const char *key, const char *value,
                             kiln_job_value_kind_t kind)
{
    o->opts = kiln_xrealloc(o->opts, (o->n_opts + 1) * sizeof(*o->opts));
    o->opts[o->n_opts++] =
        (kiln_job_opt_t){.key = kiln_xstrdup(key), .value = kiln_xstrdup(value), .kind = kind};
}

void kiln_job_spec_add_kv(kiln_job_kv_t **list, size_t *n, const char *key, const char *value)
{
    *list = kiln_xrealloc(*list, (*n + 1) * sizeof(**list));
    (*list)[(*n)++] =
        (kiln_job_kv_t){.key = kiln_xstrdup(key), .value = value ? kiln_xstrdup(value) : NULL};
}

kiln_job_secret_t *kiln_job_spec_add_secret(kiln_job_spec_t *s, const char *id)
{
    s->secrets = kiln_xrealloc(s->secrets, (s->n_secrets + 1) * sizeof(*s->secrets));
    s->secrets[s->n_secrets] = (kiln_job_secret_t){.id = kiln_xstrdup(id)};
    return &s->secrets[s->n_secrets++];
}

int kiln_job_spec_add_output_text(kiln_job_spec_t *s, const char *arg, kiln_error_t *err)
{
    kiln_export_opts_t out = {0};
    kiln_job_output_t *o;

    if (kiln_export_parse(arg, &out, err) < 0)
        return -1;
    o = kiln_job_spec_add_output(s, out.type);
    for (size_t i = 0; i < out.n; i++)
        kiln_job_output_add_opt(o, out.kv[i].key, out.kv[i].value, KILN_JOB_VALUE_STRING);
    kiln_export_opts_free(&out);
    return 0;
}

const char *kiln_job_output_get(const kiln_job_output_t *o, const char *key)
{
    for (size_t i = 0; i < o->n_opts; i++)
        if (strcmp(o->opts[i].key, key) == 0)
            return o->opts[i].value;
    return NULL;
}

/* ---- output types ---- */

/* The output types, their options and their own checks are the exporters' (export/). */
#define OUT_TYPES_LIST kiln_exporter_names

const kiln_job_output_type_t *kiln_job_output_type_find(const char *name)
{
    return kiln_exporter_find(name);
}

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

int kiln_job_output_type_is_file(const char *type)
{
    const kiln_job_output_type_t *t = kiln_job_output_type_find(type);
    return t != NULL && t->file;
}

int kiln_job_output_key_is_bool(const char *key)
{
    return kiln_export_key_is_bool(key);
}

#define FILE_DEST_DEPTH_MAX 32

int kiln_job_file_dest_check(const char *dest, kiln_error_t *err)
{
    size_t depth = 0;

    if (dest[0] == '\0')
        return kiln_error_set(err, 0, "is empty");
    if (dest[0] == '/')
        return kiln_error_set(err, 0,
                              "'%s' is absolute: a file output is written into the build's "
                              "artifacts directory, give a relative path such as 'site'",
                              dest);
    for (const char *p = dest;; p++) {
        size_t n = strcspn(p, "/");
        if (n == 0)
            return kiln_error_set(err, 0, "'%s' has an empty path segment ('//' or a trailing '/')",
                                  dest);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return kiln_error_set(err, 0,
                                  "'%s' has a '%.*s' segment: a file output stays inside the "
                                  "build's artifacts directory",
                                  dest, (int)n, p);
        for (size_t i = 0; i < n; i++)
            if (!isalnum((unsigned char)p[i]) && !strchr("._+@-", p[i]))
                return kiln_error_set(err, 0,
                                      "'%s' has the character '%c' (0x%02x): a path segment "
                                      "holds only letters, digits and . _ + @ -",
                                      dest, isprint((unsigned char)p[i]) ? p[i] : '?',
                                      (unsigned char)p[i]);
        if (++depth > FILE_DEST_DEPTH_MAX)
            return kiln_error_set(err, 0, "'%s' is more than %d segments deep", dest,
                                  FILE_DEST_DEPTH_MAX);
        p += n;
        if (*p == '\0')
            return 0;
    }
}

/* "true"/"1" → 1, "false"/"0" → 0, else -1 (as `kiln build --output` reads booleans). */
static int bool_text(const char *s)
{
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0))
        return 1;
    if (s && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0))
        return 0;
    return -1;
}

int kiln_job_output_pushes(const kiln_job_output_t *o)
{
    if (strcmp(o->type, "registry") == 0)
        return 1;
    return strcmp(o->type, "image") == 0 && bool_text(kiln_job_output_get(o, "push")) == 1;
}

int kiln_job_spec_pushes(const kiln_job_spec_t *s)
{
    for (size_t i = 0; i < s->n_outputs; i++)
        if (kiln_job_output_pushes(&s->outputs[i]))
            return 1;
    return 0;
}

/* ---- checks ---- */

int kiln_job_field_err(kiln_error_t *err, const char *field, const char *fmt, ...)
{
    char what[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return kiln_error_set(err, 0, "field '%s': %s", field, what);
}

#define field_err kiln_job_field_err

/* A string value: not empty, bounded, no control characters and not starting with '-' (it
 * may end up as a command-line argument). */
static int check_text(const char *s, const char *field, size_t max, kiln_error_t *err)
{
    size_t n = strlen(s);

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

/* A variable-like name: [A-Za-z_][A-Za-z0-9_<extra>]*, at most 128 bytes. */
static int name_ok(const char *s, const char *extra)
{
    if (*s == '\0' || strlen(s) > NAME_MAX_LEN)
        return 0;
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !strchr(extra, *s))
            return 0;
    return 1;
}

/* A path relative to the source: not absolute, no ".." segment. */
static int check_rel_path(const char *s, const char *field, kiln_error_t *err)
{
    if (check_text(s, field, KILN_JOB_STR_MAX, err) < 0)
        return -1;
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

int kiln_job_check_plain(const char *s, const char *field, size_t max, kiln_error_t *err)
{
    if (s[0] == '\0')
        return field_err(err, field, "must not be empty");
    if (strlen(s) > max)
        return field_err(err, field, "is too long");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return field_err(err, field, "contains a control character");
    return 0;
}

/* A local path (CLI): any path, but a string the shell could have given. */
static int check_local_path(const char *s, const char *field, kiln_error_t *err)
{
    return kiln_job_check_plain(s, field, KILN_JOB_STR_MAX, err);
}

/* A path: relative inside the source for remote specs, any for local ones. */
static int check_path(const kiln_job_spec_t *s, const char *v, const char *field, kiln_error_t *err)
{
    return s->local ? check_local_path(v, field, err) : check_rel_path(v, field, err);
}

static int check_hex(const char *s, const char *field, kiln_error_t *err)
{
    if (check_text(s, field, 64, err) < 0)
        return -1;
    if (strlen(s) < 7 || strspn(s, "0123456789abcdef") != strlen(s))
        return field_err(err, field, "must be a hex commit id");
    return 0;
}

static int check_git_ref(const char *s, const char *field, kiln_error_t *err)
{
    if (check_text(s, field, 256, err) < 0)
        return -1;
    if (strpbrk(s, "#: ~^?*[\\"))
        return field_err(err, field, "is not a valid git ref");
    return 0;
}

/* The ids: plain tokens, so that they are safe in paths, logs and queue attributes. */
static int check_id(const char *s, const char *field, size_t max, const char *extra,
                    kiln_error_t *err)
{
    if (check_text(s, field, max, err) < 0)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(extra, *p))
            return field_err(err, field, "may hold only letters, digits and %s", extra);
    return 0;
}

/* A git URL kiln can fetch: a scheme it knows, nothing that reads as a URL fragment. */
static int check_git_url(const char *url, const char *field, kiln_error_t *err)
{
    if (check_text(url, field, KILN_JOB_STR_MAX, err) < 0)
        return -1;
    if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7) && strncmp(url, "git://", 6) &&
        strncmp(url, "ssh://", 6) && strncmp(url, "file://", 7) && strncmp(url, "git@", 4))
        return field_err(err, field,
                         "must be an https://, http://, ssh://, git://, file:// or git@ URL");
    if (strchr(url, '#') || strchr(url, ' '))
        return field_err(err, field, "must not contain '#' or spaces");
    return 0;
}

static int check_source(const kiln_job_spec_t *s, kiln_error_t *err)
{
    switch (s->source_kind) {
    case KILN_JOB_SOURCE_NONE:
        return field_err(err, "source", "is required");
    case KILN_JOB_SOURCE_CONTEXT:
        if (check_text(s->source, "source.context", 64, err) < 0)
            return -1;
        if (strncmp(s->source, "ctx-", 4) != 0 ||
            strspn(s->source + 4, "0123456789abcdef") != strlen(s->source + 4))
            return field_err(err, "source.context", "is not an uploaded context id");
        if (s->ref || s->source_commit || s->subdir || s->source_timeout)
            return field_err(err, "source", "'context' takes no other field");
        return 0;
    case KILN_JOB_SOURCE_DIR:
        if (!s->local)
            return field_err(err, "source.dir", "is only for local builds");
        if (check_local_path(s->source, "source.dir", err) < 0)
            return -1;
        break;
    case KILN_JOB_SOURCE_GIT:
        if (check_git_url(s->source, "source.git", err) < 0)
            return -1;
        break;
    }
    if (s->ref && check_git_ref(s->ref, "source.ref", err) < 0)
        return -1;
    if (s->source_timeout < 0 || s->source_timeout > KILN_JOB_CHECKOUT_TIMEOUT_MAX)
        return field_err(err, "source.timeout_seconds", "must be from 1 to %d seconds",
                         KILN_JOB_CHECKOUT_TIMEOUT_MAX);
    if (s->source_commit && check_hex(s->source_commit, "source.commit", err) < 0)
        return -1;
    if (s->subdir) {
        if (check_rel_path(s->subdir, "source.subdir", err) < 0)
            return -1;
        if (strpbrk(s->subdir, "#:"))
            return field_err(err, "source.subdir", "must not contain '#' or ':'");
    }
    return 0;
}

static int check_kv(const kiln_job_spec_t *s, const kiln_job_kv_t *kv, size_t n, const char *field,
                    kiln_error_t *err)
{
    char f[200];

    if (n > KILN_JOB_MAP_MAX)
        return field_err(err, field, "has too many entries");
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof(f), "%s.%.128s", field, kv[i].key);
        if (!name_ok(kv[i].key, s->local ? "-." : ""))
            return field_err(err, f, "is not a valid name");
        if (kv[i].value == NULL && !s->local)
            return field_err(err, f, "must be a string");
        if (kv[i].value && strlen(kv[i].value) > KILN_JOB_STR_MAX)
            return field_err(err, f, "is too long");
    }
    return 0;
}

static int check_secrets(const kiln_job_spec_t *s, kiln_error_t *err)
{
    char f[200];

    if (s->n_secrets > KILN_JOB_MAP_MAX)
        return field_err(err, "secrets", "has too many entries");
    for (size_t i = 0; i < s->n_secrets; i++) {
        const kiln_job_secret_t *x = &s->secrets[i];
        snprintf(f, sizeof(f), "secrets.%.128s", x->id);
        /* ids name files of the server's secrets directory: no '/', no "..", no controls */
        if (!name_ok(x->id, "-.") && strcmp(x->id, KILN_JOB_GIT_SECRET) != 0)
            return field_err(err, f,
                             "is not a valid secret id (letters, digits, '_', '-' and '.', "
                             "starting with a letter or '_')");
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->secrets[k].id, x->id) == 0)
                return field_err(err, f, "is given twice");
        if ((x->src || x->env) && !s->local)
            return field_err(err, f, "a secret's file or variable is only for local builds");
        if (x->src && x->env)
            return field_err(err, f, "takes a file or a variable, not both");
        if (x->src && check_local_path(x->src, f, err) < 0)
            return -1;
        if (x->env && !name_ok(x->env, ""))
            return field_err(err, f, "'%s' is not an environment variable name", x->env);
    }
    return 0;
}

static int check_allow(const kiln_job_spec_t *s, kiln_error_t *err)
{
    char f[64];

    if (s->n_allow > 2)
        return field_err(err, "allow", "has too many entries");
    for (size_t i = 0; i < s->n_allow; i++) {
        snprintf(f, sizeof(f), "allow[%zu]", i);
        if (strcmp(s->allow[i], "network.host") && strcmp(s->allow[i], "security.insecure"))
            return field_err(err, f, "is not an entitlement (network.host, security.insecure)");
    }
    return 0;
}

/* A reference that is pushed (a tag, an output's name, a cache image). */
static int check_reference(const char *ref, const char *field, kiln_error_t *err)
{
    kiln_reference_t r = {0};
    kiln_error_t e = {0};

    if (check_text(ref, field, KILN_REFERENCE_MAX, err) < 0)
        return -1;
    if (kiln_reference_parse(ref, &r, &e) < 0)
        return field_err(err, field, "%s", e.msg);
    kiln_reference_free(&r);
    return 0;
}

/* A remote cache spec (engine/remote_store: type=s3, bucket, prefix, ...). */
static int check_remote_cache(const char *spec, const char *field, kiln_error_t *err)
{
    kiln_rcache_spec_t rs = {0};
    kiln_error_t e = {0};
    if (check_text(spec, field, KILN_JOB_STR_MAX, err) < 0)
        return -1;
    if (kiln_rcache_spec_parse(spec, 0, &rs, &e) < 0)
        return field_err(err, field, "%s", e.msg);
    if (strcmp(rs.type, "s3") != 0) {
        kiln_rcache_spec_clear(&rs);
        return field_err(err, field,
                         "must be type=s3,... (a registry cache goes in cache.from/to)");
    }
    kiln_rcache_spec_clear(&rs);
    return 0;
}

/* The exporter's own checks of an output (an s3 dest's bucket and options), on a view of the
 * job's options. */
static int check_exporter(const kiln_job_output_type_t *t, const kiln_job_output_t *o,
                          const char *field, kiln_error_t *err)
{
    kiln_export_opts_t v = {.type = o->type, .n = o->n_opts};
    kiln_error_t e = {0};
    int ret;

    if (t->validate == NULL)
        return 0;
    v.kv = kiln_xmalloc((o->n_opts ? o->n_opts : 1) * sizeof(*v.kv));
    for (size_t k = 0; k < o->n_opts; k++)
        v.kv[k] = (kiln_export_kv_t){.key = o->opts[k].key, .value = o->opts[k].value};
    ret = t->validate(&v, &e);
    free(v.kv);
    return ret < 0 ? field_err(err, field, "%s", e.msg) : 0;
}

static int check_output(const kiln_job_spec_t *s, size_t i, kiln_error_t *err)
{
    const kiln_job_output_t *o = &s->outputs[i];
    const kiln_job_output_type_t *t;
    char f[200];

    snprintf(f, sizeof(f), "outputs[%zu].type", i);
    if (check_text(o->type, f, 32, err) < 0)
        return -1;
    if ((t = kiln_job_output_type_find(o->type)) == NULL)
        return field_err(err, f, "unknown output type '%s' (%s)", o->type, OUT_TYPES_LIST);
    for (size_t k = 0; k < o->n_opts; k++) {
        const kiln_job_opt_t *x = &o->opts[k];
        snprintf(f, sizeof(f), "outputs[%zu].%.128s", i, x->key);
        if (!name_ok(x->key, "-"))
            return field_err(err, f, "is not a valid option name");
        if (!in_list(t->keys, x->key)) {
            kiln_buf_t b;
            _cleanup_free_ char *keys = NULL;
            kiln_buf_init(&b, 0);
            for (size_t j = 0; t->keys[j]; j++)
                kiln_buf_appendf(&b, NULL, "%s%s", j ? ", " : "", t->keys[j]);
            keys = kiln_buf_steal(&b, NULL);
            return field_err(err, f, "not an option of type=%s (%s)", t->name, keys);
        }
        for (size_t j = 0; j < k; j++)
            if (strcmp(o->opts[j].key, x->key) == 0)
                return field_err(err, f, "is given twice");
        if (kiln_job_output_key_is_bool(x->key) && bool_text(x->value) < 0)
            return field_err(err, f, "must be true or false");
        if (x->kind != KILN_JOB_VALUE_STRING)
            continue;
        if (s->local ? check_local_path(x->value, f, err) < 0
                     : check_text(x->value, f, KILN_JOB_STR_MAX, err) < 0)
            return -1;
        /* the value becomes part of a `kiln build --output` argument */
        if (!s->local && strpbrk(x->value, ",\"="))
            return field_err(err, f, "must not contain ',', '=' or '\"'");
    }
    snprintf(f, sizeof(f), "outputs[%zu].dest", i);
    if ((t->file || strcmp(t->name, "s3") == 0) && kiln_job_output_get(o, "dest") == NULL)
        return field_err(err, f, "type=%s needs a dest", t->name);
    if (t->file && !s->local) {
        /* a tenant's file output stays inside the directory the job writes into */
        kiln_error_t e = {0};
        if (kiln_job_file_dest_check(kiln_job_output_get(o, "dest"), &e) < 0)
            return field_err(err, f, "%s", e.msg);
    }
    if (check_exporter(t, o, f, err) < 0)
        return -1;
    if (kiln_job_output_pushes(o)) {
        const char *name = kiln_job_output_get(o, "name");
        snprintf(f, sizeof(f), "outputs[%zu].name", i);
        if (name && check_reference(name, f, err) < 0)
            return -1;
        if (name == NULL && s->n_tags == 0) {
            snprintf(f, sizeof(f), "outputs[%zu]", i);
            return field_err(err, f, "a push needs a name (name= or a tag)");
        }
    }
    return 0;
}

/* Two file outputs' paths: equal, or one a directory the other lies in (whole segments). */
static int nested(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;

    return strncmp(a, b, n) == 0 && (na == nb || (na < nb ? b[n] : a[n]) == '/');
}

/* The paths a file output writes: dest, and for a function package also function.json
 * beside it (*extra, malloc'ed). */
static void claimed_paths(const kiln_job_output_t *o, const char *paths[2], char **extra)
{
    const char *dest = kiln_job_output_get(o, "dest"), *slash = strrchr(dest, '/');

    paths[0] = dest;
    paths[1] = NULL;
    *extra = NULL;
    if (strcmp(o->type, "function") == 0) {
        *extra = slash ? kiln_xasprintf("%.*s/function.json", (int)(slash - dest), dest)
                       : kiln_xstrdup("function.json");
        paths[1] = *extra;
    }
}

/* A tenant's file outputs share one directory: none writes inside (or over) another's path
 * (a directory one writes may hold the image's symlinks; writing beneath it could follow
 * one out). */
static int check_disjoint(const kiln_job_spec_t *s, kiln_error_t *err)
{
    for (size_t i = 0; i < s->n_outputs; i++) {
        const kiln_job_output_t *a = &s->outputs[i];
        if (!kiln_job_output_type_is_file(a->type))
            continue;
        for (size_t j = i + 1; j < s->n_outputs; j++) {
            const kiln_job_output_t *b = &s->outputs[j];
            const char *pa[2], *pb[2];
            _cleanup_free_ char *ea = NULL, *eb = NULL;
            char f[64];
            if (!kiln_job_output_type_is_file(b->type))
                continue;
            claimed_paths(a, pa, &ea);
            claimed_paths(b, pb, &eb);
            snprintf(f, sizeof(f), "outputs[%zu].dest", j);
            for (int x = 0; x < 2 && pa[x]; x++)
                for (int y = 0; y < 2 && pb[y]; y++)
                    if (nested(pa[x], pb[y]))
                        return field_err(err, f,
                                         "'%s' and outputs[%zu].dest '%s' write the same path "
                                         "or one inside the other (%s, %s): give each file "
                                         "output its own path",
                                         pb[0], i, pa[0], pa[x], pb[y]);
        }
    }
    return 0;
}

/* A list of strings: bounded, each a string value (check, when given, checks more). */
static int check_list(char *const *v, size_t n, const char *field,
                      int (*check)(const char *, const char *, kiln_error_t *), kiln_error_t *err)
{
    char f[200];

    if (n > KILN_JOB_LIST_MAX)
        return field_err(err, field, "has too many entries");
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (check_text(v[i], f, KILN_JOB_STR_MAX, err) < 0 || (check && check(v[i], f, err) < 0))
            return -1;
    }
    return 0;
}

static int check_notify(const char *t, const char *field, kiln_error_t *err)
{
    kiln_error_t e = {0};

    if (strncmp(t, "sqs://", 6) && strncmp(t, "sns://", 6))
        return field_err(err, field, "must start with sqs:// or sns://");
    if (kiln_notify_check_target(t, &e) < 0)
        return field_err(err, field, "%s", e.msg);
    return 0;
}

static int check_ids(const kiln_job_spec_t *s, kiln_error_t *err)
{
    if (s->build_id && check_id(s->build_id, "build_id", 128, "-_.", err) < 0)
        return -1;
    if (s->tenant && check_id(s->tenant, "tenant", 63, "-_", err) < 0)
        return -1;
    if (s->trigger && check_id(s->trigger, "trigger", 32, "-_.", err) < 0)
        return -1;
    if (s->repo && check_text(s->repo, "repo", KILN_JOB_STR_MAX, err) < 0)
        return -1;
    if (s->commit && check_hex(s->commit, "commit", err) < 0)
        return -1;
    if (s->branch && check_git_ref(s->branch, "branch", err) < 0)
        return -1;
    if (s->cache_namespace && check_id(s->cache_namespace, "cache.namespace", 63, "-_", err) < 0)
        return -1;
    if (s->context_id && check_text(s->context_id, "cache.context_id", KILN_JOB_STR_MAX, err) < 0)
        return -1;
    return 0;
}

int kiln_job_spec_validate(const kiln_job_spec_t *s, kiln_error_t *err)
{
    if (check_ids(s, err) < 0 || check_source(s, err) < 0)
        return -1;
    if (s->dockerfile && !(s->local && strcmp(s->dockerfile, "-") == 0) &&
        check_path(s, s->dockerfile, "dockerfile", err) < 0)
        return -1;
    if (s->plan && !s->local)
        return field_err(err, "plan", "a plan file is only for local builds");
    if (s->plan && check_local_path(s->plan, "plan", err) < 0)
        return -1;
    if (s->target && check_text(s->target, "target", 128, err) < 0)
        return -1;
    if (s->platform && strcmp(s->platform, "linux/amd64") != 0)
        return field_err(err, "platform", "only linux/amd64 is supported, not '%.64s'",
                         s->platform);
    if (check_kv(s, s->build_args, s->n_build_args, "build_args", err) < 0 ||
        check_kv(s, s->env, s->n_env, "env", err) < 0 || check_secrets(s, err) < 0 ||
        check_allow(s, err) < 0 || kiln_job_limits_check(&s->limits, err) < 0)
        return -1;
    if (s->timeout_seconds < 0 || (unsigned long long)s->timeout_seconds > KILN_JOB_MAX_SECONDS)
        return field_err(err, "timeout_seconds", "must be a positive number of seconds");
    if (check_list(s->tags, s->n_tags, "tags", check_reference, err) < 0 ||
        check_list(s->notify, s->n_notify, "notify", check_notify, err) < 0 ||
        check_list(s->cache_from, s->n_cache_from, "cache.from", check_reference, err) < 0)
        return -1;
    if (s->cache_to && check_reference(s->cache_to, "cache.to", err) < 0)
        return -1;
    if (check_list(s->remote_cache_from, s->n_remote_cache_from, "cache.remote_from",
                   check_remote_cache, err) < 0 ||
        (s->remote_cache_to && check_remote_cache(s->remote_cache_to, "cache.remote_to", err) < 0))
        return -1;
    if (s->n_outputs > KILN_JOB_OUTPUTS_MAX)
        return field_err(err, "outputs", "has too many entries");
    for (size_t i = 0; i < s->n_outputs; i++)
        if (check_output(s, i, err) < 0)
            return -1;
    if (kiln_job_options_validate(s, err) < 0)
        return -1;
    return s->local ? 0 : check_disjoint(s, err);
}

char *kiln_job_repo_key(const char *url)
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
