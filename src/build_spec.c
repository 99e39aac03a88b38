/* kiln build — the job spec of a command line (see build_spec.h). */
#include "src/build_spec.h"

#include <string.h>

#include "engine/entitlement.h"
#include "engine/secrets.h"
#include "export/export.h"
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

/* The job spec of a `kiln build` command line (job/spec.h), so that every output, reference,
 * URL and limit is checked before any work starts. Fails naming the flag's field. */
int kiln_build_spec_from_opts(const kiln_build_opts_t *o, const char *context, kiln_job_spec_t *s,
                              kiln_error_t *err)
{
    s->local = 1;
    s->trigger = kiln_xstrdup("cli");
    s->build_id = o->build_id ? kiln_xstrdup(o->build_id) : NULL;
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
    for (size_t i = 0; i < o->n_args; i++) {
        const char *eq = strchr(o->args[i], '=');
        _cleanup_free_ char *k =
            eq ? kiln_xstrndup(o->args[i], (size_t)(eq - o->args[i])) : kiln_xstrdup(o->args[i]);
        kiln_job_spec_add_kv(&s->build_args, &s->n_build_args, k, eq ? eq + 1 : NULL);
    }
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
    s->no_cache = o->no_cache;
    for (size_t i = 0; i < o->n_outputs; i++)
        if (kiln_job_spec_add_output_text(s, o->outputs[i], err) < 0)
            return kiln_error_prefix(err, "field 'outputs[%zu]'", i);
    if (o->push)
        kiln_job_spec_add_output(s, "registry");
    return kiln_job_spec_validate(s, err);
}
