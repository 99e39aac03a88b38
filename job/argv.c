/* kiln — a job spec as `kiln build` arguments (see argv.h). */
#include "job/argv.h"

#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

typedef struct strv_b {
    char **v;
    size_t n;
} strv_b_t;

static void push(strv_b_t *a, char *s)
{
    a->v = kiln_xrealloc(a->v, (a->n + 2) * sizeof(char *));
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void push2(strv_b_t *a, const char *flag, char *value)
{
    push(a, kiln_xstrdup(flag));
    push(a, value);
}

/* "type=T,k=v,…" as --output reads it: a value holding ',' is quoted (an s3 cache-control
 * is kept as it is: its parser reads commas itself). */
static char *output_arg(const kiln_job_output_t *o)
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

static int field_err(kiln_error_t *err, const char *field, const char *what)
{
    return kiln_error_set(err, 0, "field '%s': %s", field, what);
}

/* The build context: a directory, or URL#REF:SUBDIR (a commit pins the ref). */
static int context_arg(const kiln_job_spec_t *s, strv_b_t *a, kiln_error_t *err)
{
    const char *ref = s->source_commit ? s->source_commit : s->ref;

    switch (s->source_kind) {
    case KILN_JOB_SOURCE_DIR:
        if (s->subdir)
            push2(a, "--subdir", kiln_xstrdup(s->subdir));
        push(a, kiln_xstrdup(s->source));
        return 0;
    case KILN_JOB_SOURCE_GIT:
        if (ref || s->subdir)
            push(a, kiln_xasprintf("%s#%s%s%s", s->source, ref ? ref : "", s->subdir ? ":" : "",
                                   s->subdir ? s->subdir : ""));
        else
            push(a, kiln_xstrdup(s->source));
        return 0;
    case KILN_JOB_SOURCE_CONTEXT:
        return field_err(err, "source.context", "an uploaded context is run by the server");
    default:
        return field_err(err, "source", "is required");
    }
}

static int secret_args(const kiln_job_spec_t *s, const kiln_job_argv_opts_t *o, strv_b_t *a,
                       kiln_error_t *err)
{
    for (size_t i = 0; i < s->n_secrets; i++) {
        const kiln_job_secret_t *x = &s->secrets[i];
        char f[200];
        snprintf(f, sizeof(f), "secrets.%.128s", x->id);
        if (strcmp(x->id, KILN_JOB_GIT_SECRET) == 0)
            return field_err(err, f, "a git credential is handed to the checkout, not the build");
        if (x->src)
            push2(a, "--secret", kiln_xasprintf("id=%s,src=%s", x->id, x->src));
        else if (x->env)
            push2(a, "--secret", kiln_xasprintf("id=%s,env=%s", x->id, x->env));
        else if (o->secrets_dir)
            push2(a, "--secret", kiln_xasprintf("id=%s,src=%s/%s", x->id, o->secrets_dir, x->id));
        else
            return field_err(err, f, "has no source (src, env, or a secrets directory)");
    }
    return 0;
}

int kiln_job_build_argv(const kiln_job_spec_t *s, const kiln_job_argv_opts_t *o, char ***argv,
                        kiln_error_t *err)
{
    strv_b_t a = {0};
    char size[32];

    push(&a, kiln_xstrdup("build"));
    if (o->progress)
        push(&a, kiln_xasprintf("--progress=%s", o->progress));
    if (o->events_fd > 0)
        push(&a, kiln_xasprintf("--events-fd=%d", o->events_fd));
    if (o->root)
        push2(&a, "--root", kiln_xstrdup(o->root));
    if (o->metadata_file)
        push2(&a, "--metadata-file", kiln_xstrdup(o->metadata_file));
    for (size_t i = 0; o->extra && o->extra[i]; i++)
        push(&a, kiln_xstrdup(o->extra[i]));
    if (s->build_id)
        push2(&a, "--build-id", kiln_xstrdup(s->build_id));
    /* the job's ids for the completion event (the repository already without credentials) */
    if (s->repo)
        push2(&a, "--source-repo", kiln_xstrdup(s->repo));
    if (s->commit)
        push2(&a, "--source-commit", kiln_xstrdup(s->commit));
    if (s->branch)
        push2(&a, "--source-branch", kiln_xstrdup(s->branch));
    if (s->tenant)
        push2(&a, "--tenant", kiln_xstrdup(s->tenant));
    if (s->trigger)
        push2(&a, "--trigger", kiln_xstrdup(s->trigger));
    if (s->dockerfile)
        push2(&a, "-f", kiln_xstrdup(s->dockerfile));
    if (s->plan)
        push2(&a, "--plan", kiln_xstrdup(s->plan));
    if (s->target)
        push2(&a, "--target", kiln_xstrdup(s->target));
    if (s->platform)
        push2(&a, "--platform", kiln_xstrdup(s->platform));
    for (size_t i = 0; i < s->n_build_args; i++)
        push2(&a, "--build-arg",
              s->build_args[i].value
                  ? kiln_xasprintf("%s=%s", s->build_args[i].key, s->build_args[i].value)
                  : kiln_xstrdup(s->build_args[i].key));
    for (size_t i = 0; i < s->n_env; i++)
        push2(&a, "--build-arg", kiln_xasprintf("%s=%s", s->env[i].key, s->env[i].value));
    if (secret_args(s, o, &a, err) < 0)
        goto fail;
    for (size_t i = 0; i < s->n_allow; i++)
        push2(&a, "--allow", kiln_xstrdup(s->allow[i]));
    if (s->limits.memory) {
        kiln_size_format(s->limits.memory, size, sizeof(size));
        push2(&a, "--memory", kiln_xstrdup(size));
    }
    if (s->limits.pids)
        push(&a, kiln_xasprintf("--pids-limit=%llu", (unsigned long long)s->limits.pids));
    if (s->limits.cpu_time)
        push(&a, kiln_xasprintf("--cpu-time=%llu", (unsigned long long)s->limits.cpu_time));
    if (s->limits.disk) {
        kiln_size_format(s->limits.disk, size, sizeof(size));
        push(&a, kiln_xasprintf("--disk-limit=%s", size));
    }
    for (size_t i = 0; i < s->n_tags; i++)
        push2(&a, "-t", kiln_xstrdup(s->tags[i]));
    for (size_t i = 0; i < s->n_outputs; i++)
        push2(&a, "--output", output_arg(&s->outputs[i]));
    for (size_t i = 0; i < s->n_notify; i++)
        push2(&a, "--notify", kiln_xstrdup(s->notify[i]));
    if (s->no_cache)
        push(&a, kiln_xstrdup("--no-cache"));
    for (size_t i = 0; i < s->n_cache_from; i++)
        push2(&a, "--cache-from", kiln_xasprintf("type=registry,ref=%s", s->cache_from[i]));
    if (s->cache_to)
        push2(&a, "--cache-to",
              kiln_xasprintf("type=registry,ref=%s%s", s->cache_to,
                             s->cache_to_max ? ",mode=max" : ""));
    if (s->cache_namespace)
        push2(&a, "--cache-namespace", kiln_xstrdup(s->cache_namespace));
    if (s->context_id)
        push2(&a, "--context-id", kiln_xstrdup(s->context_id));
    if (context_arg(s, &a, err) < 0)
        goto fail;
    *argv = a.v;
    return 0;
fail:
    kiln_strv_free(a.v);
    return -1;
}
