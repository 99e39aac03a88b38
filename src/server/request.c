#include "src/server/request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "job/argv.h"
#include "job/codec.h"
#include "src/server/outconf.h"
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

/* Where a stored request's build reads its secrets and writes its files: every file output
 * under KILN_OUTCONF_DIR, each secret from its file (the git credential only for the
 * checkout), the context from context_dir when given. */
static int place_spec(kiln_job_spec_t *s, const char *context_dir, json_t *secret_files,
                      kiln_error_t *err)
{
    size_t k = 0;

    for (size_t i = 0; i < s->n_outputs; i++) {
        kiln_job_output_t *o = &s->outputs[i];
        if (!kiln_outconf_type_is_local(o->type))
            continue;
        for (size_t j = 0; j < o->n_opts; j++) {
            if (strcmp(o->opts[j].key, "dest") == 0) {
                char *dest = kiln_xasprintf("%s/%s", KILN_OUTCONF_DIR, o->opts[j].value);
                free(o->opts[j].value);
                o->opts[j].value = dest;
            }
        }
    }
    for (size_t i = 0; i < s->n_secrets; i++) {
        const char *id = s->secrets[i].id;
        if (strcmp(id, KILN_REQUEST_GIT_SECRET) != 0 &&
            !json_is_string(json_object_get(secret_files, id)))
            return kiln_error_set(err, ENOENT, "secret '%s' is not available", id);
    }
    for (size_t i = 0; i < s->n_secrets; i++) {
        kiln_job_secret_t *x = &s->secrets[i];
        if (strcmp(x->id, KILN_REQUEST_GIT_SECRET) == 0) {
            free(x->id); /* for kiln checkout only (kiln_job_run), never a build step's */
            continue;
        }
        x->src = kiln_xstrdup(json_string_value(json_object_get(secret_files, x->id)));
        s->secrets[k++] = *x;
    }
    s->n_secrets = k;
    if (context_dir) {
        /* the checkout (or the upload) is the source now: its ref and commit are the ids' */
        free(s->source);
        free(s->subdir);
        free(s->ref);
        free(s->source_commit);
        s->subdir = s->ref = s->source_commit = NULL;
        s->source = kiln_xstrdup(context_dir);
        s->source_kind = KILN_JOB_SOURCE_DIR;
    } else if (s->source_kind != KILN_JOB_SOURCE_GIT) {
        return kiln_error_set(err, 0, "request has an uploaded context but no directory");
    }
    return 0;
}

int kiln_request_job_spec(json_t *stored, const char *context_dir, json_t *secret_files,
                          const kiln_request_ids_t *ids, char **spec_json, kiln_error_t *err)
{
    kiln_job_spec_t spec = {0};
    const char *dup[][2] = {{ids->build_id, NULL}, {ids->repo, NULL},    {ids->commit, NULL},
                            {ids->branch, NULL},   {ids->trigger, NULL}, {ids->context_id, NULL}};
    char **slots[] = {&spec.build_id, &spec.repo,    &spec.commit,
                      &spec.branch,   &spec.trigger, &spec.context_id};
    json_t *j;
    int ret = -1;

    if (!json_is_object(json_object_get(stored, "source")))
        return kiln_error_set(err, 0, "request has no source");
    if (kiln_outconf_check_shape(stored, err) < 0 ||
        kiln_job_from_json(stored, 0, &spec, NULL, err) < 0)
        return -1;
    if (place_spec(&spec, context_dir, secret_files, err) < 0)
        goto out;
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
        if (dup[i][0] && *slots[i] == NULL)
            *slots[i] = kiln_xstrdup(dup[i][0]);
    if (spec.tenant)
        spec.cache_namespace = kiln_xstrdup(spec.tenant);
    /* the paths are the server's own now (the context, secret files, outputs under the
     * build's directory): a local spec for `kiln job run`, checked again as one */
    spec.local = 1;
    if (kiln_job_spec_validate(&spec, err) < 0)
        goto out;
    j = kiln_job_to_json(&spec);
    *spec_json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    ret = *spec_json ? 0 : kiln_error_set(err, ENOMEM, "job spec");
out:
    kiln_job_spec_clear(&spec);
    return ret;
}

int kiln_request_argv(json_t *stored, const char *context_dir, json_t *secret_files,
                      const char *metadata_file, char ***argv, kiln_error_t *err)
{
    kiln_job_spec_t spec = {0};
    kiln_job_argv_opts_t ao = {.metadata_file = metadata_file, .progress = "plain"};
    int ret;

    if (!json_is_object(json_object_get(stored, "source")))
        return kiln_error_set(err, 0, "request has no source");
    /* again when the job runs: a request stored by an older version is held to it too */
    if (kiln_outconf_check_shape(stored, err) < 0 ||
        kiln_job_from_json(stored, 0, &spec, NULL, err) < 0)
        return -1;
    ret = place_spec(&spec, context_dir, secret_files, err);
    if (ret == 0)
        ret = kiln_job_build_argv(&spec, &ao, argv, err);
    kiln_job_spec_clear(&spec);
    return ret;
}
