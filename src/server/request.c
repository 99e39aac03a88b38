#include "src/server/request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "job/codec.h"
#include "src/server/limits.h"
#include "src/server/outconf.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* The request is a job spec's JSON form (job/codec.h): the codec checks every field and
 * takes the secret values out; what is stored is the spec's JSON, which names secrets only. */
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
    kiln_job_spec_t spec = {0};

    if (!json_is_object(root))
        return kiln_error_set(err, 0, "the request body must be a JSON object");
    if (kiln_job_from_json(root, KILN_JOB_JSON_REQUEST, &spec, &r.secrets, err) < 0)
        return -1;
    r.stored = kiln_job_to_json(&spec);
    r.repo = spec.source_kind == KILN_JOB_SOURCE_CONTEXT ? kiln_xstrdup("upload")
                                                         : kiln_job_repo_key(spec.source);
    kiln_job_spec_clear(&spec);
    /* the server's confinement of file outputs (inside the artifacts directory), on top of
     * the spec's checks */
    if (kiln_outconf_check_shape(r.stored, err) < 0) {
        kiln_request_free(&r);
        return -1;
    }
    *out = r;
    return 0;
}

int kiln_request_parse(const char *body, size_t len, kiln_request_t *out, kiln_error_t *err)
{
    json_t *root = kiln_job_json_load(body, len, err);
    int ret;

    if (root == NULL)
        return -1;
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
