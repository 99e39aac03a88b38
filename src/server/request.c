#include "src/server/request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "job/codec.h"
#include "job/codec_write.h"
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
 * under KILN_OUTCONF_DIR, each secret from its file (the git credential's for the job's
 * checkout only, which drops it before the build). The source stays what the request named:
 * the job checks a git source out, or finds the uploaded context, itself. */
static int place_spec(kiln_job_spec_t *s, json_t *secret_files, kiln_error_t *err)
{
    for (size_t i = 0; i < s->n_outputs; i++) {
        kiln_job_output_t *o = &s->outputs[i];
        if (!kiln_job_output_type_is_file(o->type))
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
        kiln_job_secret_t *x = &s->secrets[i];
        const char *file = json_string_value(json_object_get(secret_files, x->id));
        if (file == NULL)
            return kiln_error_set(err, ENOENT, "secret '%s' is not available", x->id);
        x->src = kiln_xstrdup(file);
    }
    return 0;
}

int kiln_request_job_spec(json_t *stored, json_t *secret_files, const kiln_request_ids_t *ids,
                          char **spec_json, kiln_error_t *err)
{
    kiln_job_spec_t spec = {0};
    const char *dup[] = {ids->build_id, ids->repo, ids->commit, ids->branch, ids->trigger};
    char **slots[] = {&spec.build_id, &spec.repo, &spec.commit, &spec.branch, &spec.trigger};
    json_t *j;
    int ret = -1;

    if (!json_is_object(json_object_get(stored, "source")))
        return kiln_error_set(err, 0, "request has no source");
    /* again when the job runs: a request stored by an older version is held to it too */
    if (kiln_job_from_json(stored, 0, &spec, NULL, err) < 0)
        return -1;
    if (place_spec(&spec, secret_files, err) < 0)
        goto out;
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
        if (dup[i] && *slots[i] == NULL)
            *slots[i] = kiln_xstrdup(dup[i]);
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
