/* kiln — the job spec's JSON form written (see codec_write.h): only what is set, secrets by
 * name. */
#include "job/codec_write.h"

#include <stdlib.h>
#include <string.h>

#include "job/limits.h"

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v)
        json_object_set_new(o, key, json_string(v));
}

static void set_strv(json_t *o, const char *key, char *const *v, size_t n)
{
    json_t *a;

    if (n == 0)
        return;
    a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    json_object_set_new(o, key, a);
}

static void set_kv(json_t *o, const char *key, const kiln_job_kv_t *kv, size_t n)
{
    json_t *m;

    if (n == 0)
        return;
    m = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(m, kv[i].key, kv[i].value ? json_string(kv[i].value) : json_null());
    json_object_set_new(o, key, m);
}

static json_t *source_json(const kiln_job_spec_t *s)
{
    json_t *src = json_object();
    static const char *const kind_key[] = {NULL, "git", "context", "dir"};

    if (s->source_kind != KILN_JOB_SOURCE_NONE)
        set_str(src, kind_key[s->source_kind], s->source);
    set_str(src, "ref", s->ref);
    set_str(src, "commit", s->source_commit);
    set_str(src, "subdir", s->subdir);
    if (s->source_timeout)
        json_object_set_new(src, "timeout_seconds", json_integer(s->source_timeout));
    return src;
}

static json_t *output_json(const kiln_job_output_t *o)
{
    json_t *j = json_pack("{s:s}", "type", o->type);

    for (size_t k = 0; k < o->n_opts; k++) {
        const kiln_job_opt_t *x = &o->opts[k];
        json_t *v;
        if (x->kind == KILN_JOB_VALUE_BOOL)
            v = json_boolean(strcmp(x->value, "true") == 0 || strcmp(x->value, "1") == 0);
        else if (x->kind == KILN_JOB_VALUE_INT)
            v = json_integer(strtoll(x->value, NULL, 10));
        else
            v = json_string(x->value);
        json_object_set_new(j, x->key, v);
    }
    return j;
}

static json_t *secrets_json(const kiln_job_spec_t *s)
{
    json_t *a = json_array();

    for (size_t i = 0; i < s->n_secrets; i++) {
        const kiln_job_secret_t *x = &s->secrets[i];
        json_t *o;
        if (x->src == NULL && x->env == NULL) {
            json_array_append_new(a, json_string(x->id));
            continue;
        }
        o = json_pack("{s:s}", "id", x->id);
        set_str(o, "src", x->src);
        set_str(o, "env", x->env);
        json_array_append_new(a, o);
    }
    return a;
}

/* The build options (job/options.h) that are set into j. */
static void options_json(const kiln_job_spec_t *s, json_t *j)
{
    set_kv(j, "labels", s->labels, s->n_labels);
    set_kv(j, "build_contexts", s->contexts, s->n_contexts);
    set_str(j, "compression", s->compression);
    if (s->has_compression_level)
        json_object_set_new(j, "compression_level", json_integer(s->compression_level));
    if (s->has_source_date_epoch)
        json_object_set_new(j, "source_date_epoch", json_integer(s->source_date_epoch));
    set_str(j, "network", s->network);
    set_str(j, "isolation", s->isolation);
    set_str(j, "ssh", s->ssh);
    set_strv(j, "add_hosts", s->add_hosts, s->n_add_hosts);
    set_strv(j, "ulimits", s->ulimits, s->n_ulimits);
    if (s->shm_size > 0)
        json_object_set_new(j, "shm_size", json_integer(s->shm_size));
    if (s->sbom)
        json_object_set_new(j, "sbom", json_true());
    if (s->provenance)
        json_object_set_new(j, "provenance", json_true());
    if (s->soci)
        json_object_set_new(j, "soci", json_true());
    if (s->has_soci_min_layer_size)
        json_object_set_new(j, "soci_min_layer_size", json_integer(s->soci_min_layer_size));
    if (s->n_registry_mirrors || s->n_insecure_registries) {
        json_t *r = json_object();
        set_strv(r, "mirrors", s->registry_mirrors, s->n_registry_mirrors);
        set_strv(r, "insecure", s->insecure_registries, s->n_insecure_registries);
        json_object_set_new(j, "registry", r);
    }
}

json_t *kiln_job_to_json(const kiln_job_spec_t *s)
{
    json_t *j = json_object();
    const kiln_job_limits_t none = {0};

    json_object_set_new(j, "source", source_json(s));
    set_str(j, "dockerfile", s->dockerfile);
    set_str(j, "target", s->target);
    set_str(j, "tenant", s->tenant);
    set_kv(j, "build_args", s->build_args, s->n_build_args);
    set_kv(j, "env", s->env, s->n_env);
    if (s->n_secrets)
        json_object_set_new(j, "secrets", secrets_json(s));
    if (s->n_outputs) {
        json_t *a = json_array();
        for (size_t i = 0; i < s->n_outputs; i++)
            json_array_append_new(a, output_json(&s->outputs[i]));
        json_object_set_new(j, "outputs", a);
    }
    set_strv(j, "tags", s->tags, s->n_tags);
    set_strv(j, "notify", s->notify, s->n_notify);
    set_strv(j, "allow", s->allow, s->n_allow);
    if (s->timeout_seconds)
        json_object_set_new(j, "timeout_seconds", json_integer(s->timeout_seconds));
    if (memcmp(&s->limits, &none, sizeof(none)) != 0)
        json_object_set_new(j, "limits", kiln_job_limits_to_json(&s->limits));
    set_str(j, "build_id", s->build_id);
    set_str(j, "repo", s->repo);
    set_str(j, "commit", s->commit);
    set_str(j, "branch", s->branch);
    set_str(j, "trigger", s->trigger);
    set_str(j, "plan", s->plan);
    set_str(j, "platform", s->platform);
    if (s->no_cache || s->n_cache_from || s->cache_to || s->cache_namespace || s->context_id ||
        s->n_remote_cache_from || s->remote_cache_to) {
        json_t *c = json_object();
        if (s->no_cache)
            json_object_set_new(c, "disabled", json_true());
        set_strv(c, "from", s->cache_from, s->n_cache_from);
        set_str(c, "to", s->cache_to);
        if (s->cache_to)
            json_object_set_new(c, "mode", json_string(s->cache_to_max ? "max" : "min"));
        if (s->cache_to && s->cache_to_max_size)
            json_object_set_new(c, "max_size", json_integer((json_int_t)s->cache_to_max_size));
        set_strv(c, "remote_from", s->remote_cache_from, s->n_remote_cache_from);
        set_str(c, "remote_to", s->remote_cache_to);
        set_str(c, "namespace", s->cache_namespace);
        set_str(c, "context_id", s->context_id);
        json_object_set_new(j, "cache", c);
    }
    options_json(s, j);
    return j;
}
