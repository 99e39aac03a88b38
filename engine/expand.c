/* kiln — word expansion inside a stage: the ARG and ENV variables a stage sees, the
 * build args a word used (for the step's cache key), heredoc bodies expanded raw. */
#include "engine/expand.h"

/* The variables visible to word expansion in a stage: ARGs then ENV (ENV wins). */
static void stage_vars(const stage_t *st, strv_t *out)
{
    json_t *env = json_object_get(json_object_get(st->config, "config"), "Env");
    size_t i;
    json_t *v;
    for (size_t k = 0; k < st->args.n; k++)
        strv_add(out, kiln_xstrdup(st->args.v[k]));
    json_array_foreach(env, i, v)
    {
        if (json_is_string(v))
            strv_add(out, kiln_xstrdup(json_string_value(v)));
    }
}

static void on_use(void *ctx, const char *name, bool found)
{
    used_args_t *u = ctx;
    const char *v;
    if (!found || u == NULL)
        return;
    v = kv_get(u->args, name);
    if (v != NULL && kv_get(&u->used, name) == NULL)
        kv_set(&u->used, name, v);
}

int kiln_expand_word(engine_t *e, const stage_t *st, const char *word, used_args_t *u, char **out,
                     kiln_error_t *err)
{
    strv_t vars = {0};
    kiln_shell_opts_t o = {.escape = e->df->escape};
    kiln_shell_env_t env = {0};
    int r;
    stage_vars(st, &vars);
    env.vars = vars.v;
    env.n_vars = vars.n;
    env.on_use = on_use;
    env.ctx = u;
    r = kiln_shell_process_word(word, &o, &env, out, err);
    strv_clear(&vars);
    return r;
}

/* Expands variables only (quotes kept): heredoc bodies of COPY/ADD. */
int kiln_expand_raw(engine_t *e, const stage_t *st, const char *text, char **out, kiln_error_t *err)
{
    strv_t vars = {0};
    kiln_shell_opts_t o = {.escape = e->df->escape, .skip_quotes = true, .raw_escapes = true};
    kiln_shell_env_t env = {0};
    int r;
    stage_vars(st, &vars);
    env.vars = vars.v;
    env.n_vars = vars.n;
    r = kiln_shell_process_word(text, &o, &env, out, err);
    strv_clear(&vars);
    return r;
}

const char *kiln_expand_build_arg(engine_t *e, const char *name)
{
    const char *v = kv_get(&e->build_args, name);
    return v;
}

int kiln_expand_cb(void *ctx, const char *word, char **out, kiln_error_t *err)
{
    expand_ctx_t *x = ctx;
    return kiln_expand_word(x->e, x->st, word, NULL, out, err);
}
