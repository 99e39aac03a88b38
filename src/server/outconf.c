/* kiln server — output confinement (see outconf.h). Pure: no I/O, only strings and JSON. */
#include "src/server/outconf.h"

#include <ctype.h>
#include <string.h>

#include "job/spec.h"
#include "oci/reference.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define PREFIX_MAX 1024

/* A boolean option as `kiln build --output` reads it: JSON true/false, "true"/"false", "1"/"0"
 * or 1/0. Returns 0/1, or -1 for anything else. */
static int bool_value(json_t *v)
{
    const char *s = json_string_value(v);

    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
        return (int)json_integer_value(v);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0))
        return 1;
    if (s && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0))
        return 0;
    return -1;
}

/* Whether an output pushes to a registry: type=registry always (kiln build pushes it whatever
 * push says), type=image with push=true. */
static int pushes(json_t *o)
{
    const char *type = json_string_value(json_object_get(o, "type"));

    if (type && strcmp(type, "registry") == 0)
        return 1;
    return type && strcmp(type, "image") == 0 && bool_value(json_object_get(o, "push")) == 1;
}

/* Lower-cased host[:port] with Docker Hub's other names folded into docker.io. */
static char *norm_host(const char *s, size_t n)
{
    char *h = kiln_xstrndup(s, n);

    for (char *p = h; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strcmp(h, "index.docker.io") == 0 || strcmp(h, "registry-1.docker.io") == 0) {
        free(h);
        h = kiln_xstrdup("docker.io");
    }
    return h;
}

typedef struct reg_prefix {
    char *host; /* normalised host[:port] */
    char *path; /* repository path without a trailing '/', "" = the whole registry */
    int under;  /* the prefix ended in '/': only repositories below path */
} reg_prefix_t;

static void reg_prefix_clear(reg_prefix_t *p)
{
    free(p->host);
    free(p->path);
}

/* A registry prefix: "HOST[:PORT]/[PATH[/]]" or "PATH[/]" (docker.io). The first segment is a
 * host when it has a '.' or ':', is "localhost" or a bracketed address, as in references. */
static int reg_prefix_parse(const char *s, reg_prefix_t *out, kiln_error_t *err)
{
    size_t n = strlen(s), first;
    const char *why;
    _cleanup_free_ char *copy = NULL;
    const char *path;

    if (n == 0 || n > PREFIX_MAX)
        return kiln_error_set(err, 0, "a registry prefix must be 1 to %d characters", PREFIX_MAX);
    copy = kiln_xstrdup(s);
    out->under = copy[n - 1] == '/';
    if (out->under)
        copy[--n] = '\0';
    first = strcspn(copy, "/");
    if (n == 0)
        return kiln_error_set(err, 0, "'%s' is not a registry prefix (HOST/NAMESPACE/)", s);
    if (memchr(copy, '.', first) || memchr(copy, ':', first) || copy[0] == '[' ||
        (first == 9 && strncmp(copy, "localhost", 9) == 0)) {
        if (!kiln_reference_domain_valid(copy, first))
            return kiln_error_set(err, 0, "'%s': '%.*s' is not a registry host[:port]", s,
                                  (int)first, copy);
        path = copy[first] ? copy + first + 1 : "";
        if (copy[first] && *path == '\0')
            return kiln_error_set(err, 0, "'%s' has an empty path segment", s);
        out->host = norm_host(copy, first);
    } else {
        path = copy;
        out->host = kiln_xstrdup("docker.io");
    }
    if (*path && (why = kiln_reference_path_check(path, strlen(path))) != NULL) {
        free(out->host);
        out->host = NULL;
        return kiln_error_set(err, 0, "'%s': %s", s, why);
    }
    out->path = kiln_xstrdup(path);
    return 0;
}

/* Whether repository repo of host lies under the prefix, on whole path segments. */
static int reg_prefix_covers(const reg_prefix_t *p, const char *host, const char *repo)
{
    size_t n = strlen(p->path);

    if (strcmp(p->host, host) != 0)
        return 0;
    if (n == 0)
        return 1;
    if (strncmp(repo, p->path, n) != 0)
        return 0;
    return repo[n] == '/' || (repo[n] == '\0' && !p->under);
}

/* "a, b, c" of a list of strings (for messages), bounded. */
static char *list_text(json_t *list)
{
    kiln_buf_t b;
    size_t i;
    json_t *v;

    kiln_buf_init(&b, 1024);
    json_array_foreach(list, i, v)
    {
        if (kiln_buf_appendf(&b, NULL, "%s%s", i ? ", " : "", json_string_value(v)) < 0) {
            b.len = 0;
            kiln_buf_appendf(&b, NULL, "%zu entries", json_array_size(list));
            break;
        }
    }
    return kiln_buf_steal(&b, NULL);
}

int kiln_outconf_registry_allowed(const char *ref, json_t *prefixes, kiln_error_t *err)
{
    kiln_reference_t r = {0};
    _cleanup_free_ char *host = NULL, *allowed = NULL;
    size_t i;
    json_t *v;

    if (kiln_reference_parse(ref, &r, err) < 0)
        return -1;
    host = norm_host(r.registry, strlen(r.registry));
    if (prefixes == NULL) {
        kiln_reference_free(&r);
        return 1;
    }
    json_array_foreach(prefixes, i, v)
    {
        reg_prefix_t p = {0};
        int ok;
        if (!json_is_string(v) || reg_prefix_parse(json_string_value(v), &p, NULL) < 0)
            continue; /* refused when the config was loaded; never a match */
        ok = reg_prefix_covers(&p, host, r.repository);
        reg_prefix_clear(&p);
        if (ok) {
            kiln_reference_free(&r);
            return 1;
        }
    }
    allowed = list_text(prefixes);
    kiln_error_set(err, 0, "'%s' is %s/%s, outside the registry prefixes (%s)", ref, host,
                   r.repository, *allowed ? allowed : "none: no push allowed");
    kiln_reference_free(&r);
    return 0;
}

int kiln_outconf_s3_allowed(const char *url, json_t *prefixes, kiln_error_t *err)
{
    _cleanup_free_ char *bucket = NULL, *key = NULL, *allowed = NULL;
    size_t i;
    json_t *v;

    if (kiln_export_s3_split(url, &bucket, &key, err) < 0)
        return -1;
    if (prefixes == NULL)
        return 1;
    json_array_foreach(prefixes, i, v)
    {
        _cleanup_free_ char *pb = NULL, *pk = NULL;
        size_t n;
        if (!json_is_string(v) || kiln_export_s3_split(json_string_value(v), &pb, &pk, NULL) < 0)
            continue;
        n = strlen(pk);
        /* every object goes to KEY/FILE: inside when KEY is the prefix or below it */
        if (strcmp(pb, bucket) == 0 &&
            (n == 0 || (strncmp(key, pk, n) == 0 && (key[n] == '\0' || key[n] == '/'))))
            return 1;
    }
    allowed = list_text(prefixes);
    kiln_error_set(err, 0, "'%s' is outside the s3 prefixes (%s)", url,
                   *allowed ? allowed : "none: no upload allowed");
    return 0;
}

/* Fails naming field: err's message after "field 'FIELD': ". */
static int field_fail(kiln_error_t *err, const char *field)
{
    return kiln_error_prefix(err, "field '%s'", field);
}

/* A 403 for field: err holds what lies outside; adds the tenant and the rule to change. */
static int refuse(kiln_error_t *err, unsigned *status, const char *field,
                  const kiln_outconf_rules_t *rules, const char *rule)
{
    kiln_error_t e = *err;

    *status = 403;
    kiln_error_set(err, 0,
                   "field '%s': %s; tenant '%s' may write only there (the server config's "
                   "tenant \"outputs\": {\"%s\": [...]} would have to cover it)",
                   field, e.msg, rules->tenant ? rules->tenant : "default", rule);
    return -1;
}

int kiln_outconf_check(json_t *request, const kiln_outconf_rules_t *rules, unsigned *status,
                       kiln_error_t *err)
{
    size_t i;
    json_t *v;
    char f[64];

    json_array_foreach(json_object_get(request, "outputs"), i, v)
    {
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *name = json_string_value(json_object_get(v, "name"));
        int r = 1;
        if (type == NULL)
            continue; /* the job codec refused such a request before */
        if (pushes(v) && name) {
            snprintf(f, sizeof(f), "outputs[%zu].name", i);
            r = kiln_outconf_registry_allowed(name, rules->registry, err);
            if (r == 0)
                return refuse(err, status, f, rules, "registry");
        } else if (strcmp(type, "s3") == 0 && json_is_string(json_object_get(v, "dest"))) {
            snprintf(f, sizeof(f), "outputs[%zu].dest", i);
            r = kiln_outconf_s3_allowed(json_string_value(json_object_get(v, "dest")), rules->s3,
                                        err);
            if (r == 0)
                return refuse(err, status, f, rules, "s3");
        }
        if (r < 0) {
            *status = 400;
            return field_fail(err, f);
        }
    }
    /* tags are pushed by every pushing output: each is a registry destination */
    json_array_foreach(json_object_get(request, "tags"), i, v)
    {
        int r;
        if (!json_is_string(v))
            continue; /* the job codec refused such a request before */
        r = kiln_outconf_registry_allowed(json_string_value(v), rules->registry, err);
        snprintf(f, sizeof(f), "tags[%zu]", i);
        if (r < 0) {
            *status = 400;
            return field_fail(err, f);
        }
        if (r == 0)
            return refuse(err, status, f, rules, "registry");
    }
    json_array_foreach(json_object_get(request, "notify"), i, v)
    {
        size_t k;
        json_t *t;
        int found = rules->notify == NULL;
        json_array_foreach(rules->notify, k, t) found |= json_equal(t, v);
        if (!found) {
            _cleanup_free_ char *allowed = list_text(rules->notify);
            snprintf(f, sizeof(f), "notify[%zu]", i);
            kiln_error_set(err, 0, "'%s' is not one of the notify targets (%s)",
                           json_string_value(v) ? json_string_value(v) : "?",
                           *allowed ? allowed : "none: no notify allowed");
            return refuse(err, status, f, rules, "notify");
        }
    }
    return 0;
}

int kiln_outconf_rules_check(const kiln_outconf_rules_t *rules, kiln_error_t *err)
{
    static const char *const names[] = {"registry", "s3", "notify"};
    json_t *lists[] = {rules->registry, rules->s3, rules->notify};

    for (size_t l = 0; l < 3; l++) {
        size_t i;
        json_t *v;
        if (lists[l] == NULL)
            continue;
        if (!json_is_array(lists[l]))
            return kiln_error_set(err, 0, "outputs.%s: must be a list of strings", names[l]);
        json_array_foreach(lists[l], i, v)
        {
            const char *s = json_string_value(v);
            int bad = s == NULL;
            if (!bad && l == 0) {
                reg_prefix_t p = {0};
                bad = reg_prefix_parse(s, &p, err) < 0;
                reg_prefix_clear(&p);
            } else if (!bad && l == 1) {
                _cleanup_free_ char *b = NULL, *k = NULL;
                bad = kiln_export_s3_split(s, &b, &k, err) < 0;
            } else if (!bad && l == 2 && strncmp(s, "sqs://", 6) && strncmp(s, "sns://", 6)) {
                bad = 1;
                kiln_error_set(err, 0, "'%s' is not an sqs:// or sns:// target", s);
            }
            if (bad && s == NULL)
                kiln_error_set(err, 0, "must be a string");
            if (bad)
                return kiln_error_prefix(err, "outputs.%s[%zu]", names[l], i);
        }
    }
    return 0;
}
