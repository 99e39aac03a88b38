/* kiln — a job spec as the engine's build request (see request.h). */
#include "job/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "job/options.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* "type=T,k=v,…" as an exporter reads it: a value holding ',' is quoted (an s3
 * cache-control is kept as it is: its parser reads commas itself). */
static char *output_text(const kiln_job_output_t *o)
{
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "type=%s", o->type);
    for (size_t i = 0; i < o->n_opts; i++) {
        const char *v = o->opts[i].value;
        int quote = strchr(v, ',') != NULL && strcmp(o->type, "s3") != 0;
        kiln_buf_appendf(&b, NULL, ",%s=%s%s%s", o->opts[i].key, quote ? "\"" : "", v,
                         quote ? "\"" : "");
    }
    return kiln_buf_steal(&b, NULL);
}

void kiln_job_request_add_output(kiln_job_request_t *r, const char *text)
{
    r->outputs = kiln_xrealloc(r->outputs, (r->n_outputs + 2) * sizeof(char *));
    r->outputs[r->n_outputs++] = kiln_xstrdup(text);
    r->outputs[r->n_outputs] = NULL;
}

/* The secrets as the engine reads them: from their file or variable (local specs), else
 * secrets_dir/ID. */
static int secret_texts(const kiln_job_spec_t *s, const char *secrets_dir, char ***out,
                        kiln_error_t *err)
{
    char **v = kiln_xzalloc((s->n_secrets + 1) * sizeof(char *));

    for (size_t i = 0; i < s->n_secrets; i++) {
        const kiln_job_secret_t *x = &s->secrets[i];
        if (strcmp(x->id, KILN_JOB_GIT_SECRET) == 0) {
            kiln_error_set(err, 0,
                           "field 'secrets.%s': a git credential is handed to the checkout, not "
                           "the build",
                           x->id);
            goto fail;
        }
        if (x->src)
            v[i] = kiln_xasprintf("id=%s,src=%s", x->id, x->src);
        else if (x->env)
            v[i] = kiln_xasprintf("id=%s,env=%s", x->id, x->env);
        else if (secrets_dir)
            v[i] = kiln_xasprintf("id=%s,src=%s/%s", x->id, secrets_dir, x->id);
        else {
            kiln_error_set(err, 0,
                           "field 'secrets.%.128s': has no source (src, env, or a secrets "
                           "directory)",
                           x->id);
            goto fail;
        }
    }
    *out = v;
    return 0;
fail:
    kiln_strv_free(v);
    return -1;
}

int kiln_job_add_host_line(const char *spec, const char *network, char **line, kiln_error_t *err)
{
    const char *colon = strrchr(spec, ':');
    _cleanup_free_ char *mapped = NULL;

    if (colon == NULL || strcmp(colon + 1, "host-gateway") != 0)
        return kiln_add_host_parse(spec, line, err);
    if (network && strcmp(network, "none") == 0)
        return kiln_error_set(err, 0,
                              "--add-host %s: a step on --network none reaches no host; use the "
                              "default network (with --allow-address 127.0.0.1:PORT) or --network "
                              "host",
                              spec);
    mapped = kiln_xasprintf("%.*s:%s", (int)(colon - spec), spec,
                            network && strcmp(network, "host") == 0 ? KILN_JOB_HOST_GATEWAY_HOST
                                                                    : KILN_JOB_HOST_GATEWAY_NAT);
    return kiln_add_host_parse(mapped, line, err);
}

/* The spec's --add-host and --ulimit as the sandbox takes them, and --shm-size. */
static int step_flags(const kiln_job_spec_t *s, kiln_job_request_t *r, kiln_error_t *err)
{
    kiln_build_request_t *q = &r->req;

    r->hosts = kiln_xzalloc((s->n_add_hosts + 1) * sizeof(char *));
    for (size_t i = 0; i < s->n_add_hosts; i++)
        if (kiln_job_add_host_line(s->add_hosts[i], s->network, &r->hosts[i], err) < 0)
            return kiln_error_prefix(err, "field 'add_hosts[%zu]'", i);
    r->ulimits = kiln_xzalloc((s->n_ulimits + 1) * sizeof(*r->ulimits));
    for (size_t i = 0; i < s->n_ulimits; i++)
        if (kiln_ulimit_parse(s->ulimits[i], &r->ulimits[i], err) < 0)
            return kiln_error_prefix(err, "field 'ulimits[%zu]'", i);
    q->extra_hosts = (const char *const *)r->hosts;
    q->n_extra_hosts = s->n_add_hosts;
    q->ulimits = r->ulimits;
    q->n_ulimits = s->n_ulimits;
    q->shm_size = s->shm_size > 0 ? (uint64_t)s->shm_size : 0;
    return 0;
}

static size_t count(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

int kiln_job_request_make(const kiln_job_spec_t *s, const char *secrets_dir,
                          kiln_job_request_t *out, kiln_error_t *err)
{
    kiln_job_request_t r = {0};
    kiln_build_request_t *q = &r.req;
    kiln_compression_t comp = KILN_COMPRESSION_GZIP;

    if (s->source_kind != KILN_JOB_SOURCE_DIR && s->source_kind != KILN_JOB_SOURCE_GIT)
        return kiln_error_set(err, 0, "field '%s': the source is put on disk first (job/source)",
                              s->source_kind == KILN_JOB_SOURCE_CONTEXT ? "source.context"
                                                                        : "source");
    if (secret_texts(s, secrets_dir, &r.secrets, err) < 0)
        return -1;
    /* the API's "env" entries are build arguments too, after build_args */
    {
        _cleanup_strv_ char **a = kiln_job_kv_strv(s->build_args, s->n_build_args);
        _cleanup_strv_ char **e = kiln_job_kv_strv(s->env, s->n_env);
        size_t na = count(a), ne = count(e);
        r.build_args = kiln_xzalloc((na + ne + 1) * sizeof(char *));
        memcpy(r.build_args, a, na * sizeof(char *));
        memcpy(r.build_args + na, e, ne * sizeof(char *));
        free(steal_pointer(&a));
        free(steal_pointer(&e));
    }
    r.labels = kiln_job_kv_strv(s->labels, s->n_labels);
    r.contexts = kiln_job_kv_strv(s->contexts, s->n_contexts);
    for (size_t i = 0; i < s->n_outputs; i++) {
        char *t = output_text(&s->outputs[i]);
        kiln_job_request_add_output(&r, t);
        free(t);
    }
    for (size_t i = 0; i < s->n_allow; i++)
        if (kiln_entitlement_parse(s->allow[i], &q->entitlements, err) < 0) {
            kiln_error_prefix(err, "field 'allow[%zu]'", i);
            kiln_job_request_clear(&r);
            return -1;
        }
    if (s->compression && kiln_compression_parse(s->compression, &comp, err) < 0) {
        kiln_error_prefix(err, "field 'compression'");
        kiln_job_request_clear(&r);
        return -1;
    }
    q->target = s->target;
    q->build_args = (const char *const *)r.build_args;
    q->n_build_args = count(r.build_args);
    q->secrets = (const char *const *)r.secrets;
    q->n_secrets = s->n_secrets;
    q->labels = (const char *const *)r.labels;
    q->n_labels = s->n_labels;
    q->contexts = (const char *const *)r.contexts;
    q->n_contexts = s->n_contexts;
    q->insecure_registries = (const char *const *)s->insecure_registries;
    q->mirrors = (const char *const *)s->registry_mirrors;
    q->ssh_socket = s->ssh;
    if (step_flags(s, &r, err) < 0) {
        kiln_job_request_clear(&r);
        return -1;
    }
    q->no_cache = s->no_cache;
    q->cache_from = (const char *const *)s->cache_from;
    q->n_cache_from = s->n_cache_from;
    q->cache_to = s->cache_to;
    q->cache_to_max = s->cache_to_max;
    q->cache_to_max_size = s->cache_to_max_size;
    q->remote_cache_from = (const char *const *)s->remote_cache_from;
    q->n_remote_cache_from = s->n_remote_cache_from;
    q->remote_cache_to = s->remote_cache_to;
    q->source_date_epoch = s->has_source_date_epoch ? (int64_t)s->source_date_epoch : -1;
    q->compression = comp;
    q->compression_level = s->has_compression_level ? s->compression_level : -1;
    q->network = s->network;
    q->isolation = s->isolation;
    q->memory_limit = s->limits.memory;
    q->pids_limit = s->limits.pids;
    q->cpu_time_limit = s->limits.cpu_time;
    q->disk_limit = s->limits.disk;
    q->cache_namespace = s->cache_namespace;
    q->context_id = s->context_id;
    *out = r;
    return 0;
}

void kiln_job_request_clear(kiln_job_request_t *r)
{
    kiln_strv_free(r->build_args);
    kiln_strv_free(r->secrets);
    kiln_strv_free(r->hosts);
    free(r->ulimits);
    kiln_strv_free(r->labels);
    kiln_strv_free(r->contexts);
    kiln_strv_free(r->outputs);
    memset(r, 0, sizeof(*r));
}
