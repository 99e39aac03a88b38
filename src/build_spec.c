/* kiln build — the job spec of a command line (see build_spec.h). */
#include "src/build_spec.h"

#include <string.h>

#include "engine/entitlement.h"
#include "engine/secrets.h"
#include "export/export.h"
#include "oci/compress.h"
#include "utils/cleanup.h"
#include "utils/git.h"
#include "utils/mem.h"

/* Splits a --secret value ("id=ID,src=FILE" | "id=ID,env=VAR", keys in any order; "source"
 * is src) into a secret reference of s. */
static void spec_add_secret(kiln_job_spec_t *s, const char *arg)
{
    kiln_secret_spec_t sp;
    kiln_job_secret_t *sec;

    kiln_secret_spec_parse(arg, &sp);
    sec = kiln_job_spec_add_secret(s, sp.id ? sp.id : "");
    sec->src = steal_pointer(&sp.src);
    sec->env = steal_pointer(&sp.env);
    kiln_secret_spec_clear(&sp);
}

/* "K=V" (or "K") as a key/value pair of list. */
static void add_kv(kiln_job_kv_t **list, size_t *n, const char *arg, const char *bare)
{
    const char *eq = strchr(arg, '=');
    _cleanup_free_ char *k = eq ? kiln_xstrndup(arg, (size_t)(eq - arg)) : kiln_xstrdup(arg);

    kiln_job_spec_add_kv(list, n, k, eq ? eq + 1 : bare);
}

/* The build options of o (job/options.h) added to s: lists appended, the others set where
 * s has none. */
static void add_options(const kiln_build_opts_t *o, kiln_job_spec_t *s)
{
    /* an operator's --soci: for the builds that push */
    s->soci |= o->soci && kiln_job_spec_pushes(s);
    if (!s->has_soci_min_layer_size && o->soci_min_layer >= 0 && kiln_job_spec_pushes(s)) {
        s->soci_min_layer_size = o->soci_min_layer;
        s->has_soci_min_layer_size = 1;
    }
    for (size_t i = 0; i < o->n_labels; i++)
        add_kv(&s->labels, &s->n_labels, o->labels[i], "");
    for (size_t i = 0; i < o->n_contexts; i++)
        add_kv(&s->contexts, &s->n_contexts, o->contexts[i], NULL);
    for (size_t i = 0; i < o->n_mirrors; i++)
        kiln_job_spec_add_str(&s->registry_mirrors, &s->n_registry_mirrors, o->mirrors[i]);
    for (size_t i = 0; i < o->n_insecure; i++)
        kiln_job_spec_add_str(&s->insecure_registries, &s->n_insecure_registries, o->insecure[i]);
    if (s->compression == NULL && o->compression_given)
        s->compression = kiln_xstrdup(kiln_compression_name(o->compression));
    if (!s->has_compression_level && o->compression_level >= 0) {
        s->compression_level = o->compression_level;
        s->has_compression_level = 1;
    }
    if (!s->has_source_date_epoch && o->sde >= 0) {
        s->source_date_epoch = o->sde;
        s->has_source_date_epoch = 1;
    }
    if (s->network == NULL && o->network)
        s->network = kiln_xstrdup(o->network);
    if (s->isolation == NULL && o->isolation)
        s->isolation = kiln_xstrdup(o->isolation);
    if (s->ssh == NULL && o->ssh)
        s->ssh = kiln_xstrdup(o->ssh);
    for (size_t i = 0; i < o->n_add_hosts; i++)
        kiln_job_spec_add_str(&s->add_hosts, &s->n_add_hosts, o->add_hosts[i]);
    for (size_t i = 0; i < o->n_ulimits; i++)
        kiln_job_spec_add_str(&s->ulimits, &s->n_ulimits, o->ulimits[i]);
    if (s->shm_size == 0 && o->shm_size)
        s->shm_size = (long long)o->shm_size;
}

/* A copy of v, or NULL. */
static char *dup_or_null(const char *v)
{
    return v ? kiln_xstrdup(v) : NULL;
}

/* The job spec of a `kiln build` command line (job/spec.h), so that every output, reference,
 * URL and limit is checked before any work starts. Fails naming the flag's field. */
int kiln_build_spec_from_opts(const kiln_build_opts_t *o, const char *context, kiln_job_spec_t *s,
                              kiln_error_t *err)
{
    s->local = 1;
    s->trigger = kiln_xstrdup(o->trigger ? o->trigger : "cli");
    s->build_id = dup_or_null(o->build_id);
    /* what a server checked out into CONTEXT and who asked (kiln build's internal flags) */
    s->repo = dup_or_null(o->source_repo);
    s->commit = dup_or_null(o->source_commit);
    s->branch = dup_or_null(o->source_branch);
    s->tenant = dup_or_null(o->tenant);
    s->cache_namespace = dup_or_null(o->cache_namespace);
    s->context_id = dup_or_null(o->context_id);
    if (kiln_git_is_url(context)) {
        /* URL[#REF[:SUBDIR]] */
        const char *hash = strchr(context, '#');
        s->source_kind = KILN_JOB_SOURCE_GIT;
        s->source = hash ? kiln_xstrndup(context, (size_t)(hash - context)) : kiln_xstrdup(context);
        if (hash && hash[1]) {
            const char *colon = strchr(hash + 1, ':');
            if (colon != hash + 1)
                s->ref = colon ? kiln_xstrndup(hash + 1, (size_t)(colon - hash - 1))
                               : kiln_xstrdup(hash + 1);
            if (colon && colon[1])
                s->subdir = kiln_xstrdup(colon + 1);
        }
    } else {
        s->source_kind = KILN_JOB_SOURCE_DIR;
        s->source = kiln_xstrdup(context);
    }
    if (o->subdir) {
        free(s->subdir);
        s->subdir = kiln_xstrdup(o->subdir);
    }
    s->dockerfile = o->file ? kiln_xstrdup(o->file) : NULL;
    s->plan = o->plan_file ? kiln_xstrdup(o->plan_file) : NULL;
    s->target = o->target ? kiln_xstrdup(o->target) : NULL;
    for (size_t i = 0; i < o->n_args; i++)
        add_kv(&s->build_args, &s->n_build_args, o->args[i], NULL);
    for (size_t i = 0; i < o->n_secrets; i++)
        spec_add_secret(s, o->secrets[i]);
    for (unsigned bit = 1; bit < (1u << KILN_ENTITLEMENT_COUNT); bit <<= 1)
        if (o->entitlements & bit)
            kiln_job_spec_add_str(&s->allow, &s->n_allow, kiln_entitlement_name(bit));
    s->limits = (kiln_job_limits_t){.memory = o->limits.memory,
                                    .pids = o->limits.pids,
                                    .cpu_time = o->limits.cpu_time,
                                    .disk = o->limits.disk};
    for (size_t i = 0; i < o->n_tags; i++)
        kiln_job_spec_add_str(&s->tags, &s->n_tags, o->tags[i]);
    for (size_t i = 0; i < o->n_notify; i++)
        kiln_job_spec_add_str(&s->notify, &s->n_notify, o->notify[i]);
    for (size_t i = 0; i < o->n_cache_from; i++)
        kiln_job_spec_add_str(&s->cache_from, &s->n_cache_from, o->cache_from[i]);
    s->cache_to = o->cache_to ? kiln_xstrdup(o->cache_to) : NULL;
    s->cache_to_max = o->cache_to_max;
    s->cache_to_max_size = o->cache_to_max_size;
    for (size_t i = 0; i < o->n_remote_cache_from; i++)
        kiln_job_spec_add_str(&s->remote_cache_from, &s->n_remote_cache_from,
                              o->remote_cache_from[i]);
    s->remote_cache_to = o->remote_cache_to ? kiln_xstrdup(o->remote_cache_to) : NULL;
    s->no_cache = o->no_cache;
    for (size_t i = 0; i < o->n_outputs; i++)
        if (kiln_job_spec_add_output_text(s, o->outputs[i], err) < 0)
            return kiln_error_prefix(err, "field 'outputs[%zu]'", i);
    if (o->push)
        kiln_job_spec_add_output(s, "registry");
    s->sbom = o->sbom;
    s->provenance = o->provenance;
    s->soci = o->soci; /* without a push: refused by the validation, naming the field */
    if (o->soci_min_layer >= 0) {
        s->soci_min_layer_size = o->soci_min_layer;
        s->has_soci_min_layer_size = 1;
    }
    add_options(o, s);
    return kiln_job_spec_validate(s, err);
}

int kiln_build_spec_operator(const kiln_build_opts_t *o, kiln_job_spec_t *s, kiln_error_t *err)
{
    const char *job_flag = o->file            ? "-f"
                           : o->n_tags        ? "-t"
                           : o->n_outputs     ? "--output"
                           : o->push          ? "--push"
                           : o->n_args        ? "--build-arg"
                           : o->n_secrets     ? "--secret"
                           : o->target        ? "--target"
                           : o->subdir        ? "--subdir"
                           : o->plan_file     ? "--plan"
                           : o->n_notify      ? "--notify"
                           : o->metadata_file ? "--metadata-file"
                           : o->digest_file   ? "--digest-file"
                           : o->build_id      ? "--build-id"
                           : o->n_contexts    ? "--build-context"
                                              : NULL;

    if (job_flag)
        return kiln_error_set(err, 0, "--build-option %s: the job's own, not an operator's",
                              job_flag);
    add_options(o, s);
    /* the operator's limits are the defaults of those the job does not set */
    for (size_t i = 0; i < KILN_JOB_LIMITS_N; i++)
        if (kiln_job_limit_get(&s->limits, i) == 0)
            *kiln_job_limit_slot(&s->limits, i) = kiln_job_limit_get(&o->limits, i);
    for (unsigned bit = 1; bit < (1u << KILN_ENTITLEMENT_COUNT); bit <<= 1) {
        const char *name = kiln_entitlement_name(bit);
        int have = 0;
        for (size_t i = 0; i < s->n_allow; i++)
            have |= strcmp(s->allow[i], name) == 0;
        if ((o->entitlements & bit) && !have)
            kiln_job_spec_add_str(&s->allow, &s->n_allow, name);
    }
    s->no_cache |= o->no_cache;
    for (size_t i = 0; i < o->n_cache_from; i++)
        kiln_job_spec_add_str(&s->cache_from, &s->n_cache_from, o->cache_from[i]);
    if (s->cache_to == NULL && o->cache_to) {
        s->cache_to = kiln_xstrdup(o->cache_to);
        s->cache_to_max = o->cache_to_max;
        s->cache_to_max_size = o->cache_to_max_size;
    }
    for (size_t i = 0; i < o->n_remote_cache_from; i++)
        kiln_job_spec_add_str(&s->remote_cache_from, &s->n_remote_cache_from,
                              o->remote_cache_from[i]);
    if (s->remote_cache_to == NULL && o->remote_cache_to)
        s->remote_cache_to = kiln_xstrdup(o->remote_cache_to);
    if (s->cache_namespace == NULL && o->cache_namespace)
        s->cache_namespace = kiln_xstrdup(o->cache_namespace);
    return 0;
}
