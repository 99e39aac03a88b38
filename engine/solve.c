/* kiln — solving a Dockerfile: its stages (split at FROM, global ARGs, platform ARGs), the
 * stages a target needs (FROM, --from, --mount from=; unused stages are skipped), the
 * order they run in (independent stages in parallel threads, in waves), and a stage's
 * instructions dispatched to the steps (ONBUILD triggers first). */
#include "engine/solve.h"

#include "engine/expand.h"
#include "engine/step_copy.h"
#include "engine/step_from.h"
#include "engine/step_meta.h"
#include "engine/step_run.h"
#include "engine/user.h"

static char *upper_kw(const char *kw)
{
    char *u = kiln_xstrdup(kw);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    return u;
}

static void record_step(engine_t *e, const char *name, double secs, int cached)
{
    kiln_build_result_t *r = e->res;
    pthread_mutex_lock(&e->lock);
    r->steps = kiln_xrealloc(r->steps, (r->n_steps + 1) * sizeof(*r->steps));
    r->steps[r->n_steps].name = kiln_xstrdup(name);
    r->steps[r->n_steps].seconds = secs;
    r->steps[r->n_steps].cached = cached;
    r->n_steps++;
    pthread_mutex_unlock(&e->lock);
}

/* Claims a stage for this thread. Returns 1 when it must be built by the
 * caller, 0 when it is already built (waiting while another thread builds
 * it), <0 on a failed stage or a dependency cycle. */
static int claim_stage(engine_t *e, stage_t *st, kiln_error_t *err)
{
    int r;
    pthread_mutex_lock(&e->lock);
    while (st->state == 1 && !pthread_equal(st->builder, pthread_self()))
        pthread_cond_wait(&e->cond, &e->lock);
    if (st->state == 2) {
        r = 0;
    } else if (st->state == 3) {
        r = kiln_error_set(err, 0, "stage %s failed", st->name ? st->name : "(unnamed)");
    } else if (st->state == 1) {
        r = kiln_error_set(err, 0, "Dockerfile:%d: circular dependency between stages",
                           e->df->nodes[st->first].start_line);
    } else {
        st->state = 1;
        st->builder = pthread_self();
        r = 1;
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

static void release_stage(engine_t *e, stage_t *st, bool ok)
{
    pthread_mutex_lock(&e->lock);
    st->state = ok ? 2 : 3;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static int dispatch(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    if (strcmp(n->keyword, "run") == 0)
        return kiln_step_run(e, st, n, err);
    if (strcmp(n->keyword, "copy") == 0 || strcmp(n->keyword, "add") == 0)
        return kiln_step_copy(e, st, n, n->keyword[0] == 'a', err);
    if (strcmp(n->keyword, "workdir") == 0)
        return kiln_step_workdir(e, st, n, err);
    return kiln_step_meta(e, st, n, err);
}

/* Runs the base image's ONBUILD triggers right after FROM (as BuildKit does)
 * and clears them from the new image. */
static int run_onbuild(engine_t *e, stage_t *st, kiln_error_t *err)
{
    json_t *cfg = kiln_image_config_obj(st->config);
    json_t *triggers = json_deep_copy(json_object_get(cfg, "OnBuild"));
    size_t i;
    json_t *t;
    int ret = 0;

    json_object_del(cfg, "OnBuild");
    json_array_foreach(triggers, i, t)
    {
        const char *text = json_string_value(t);
        kiln_dockerfile_t *df = NULL;
        if (text == NULL)
            continue;
        {
            _cleanup_free_ char *msg = kiln_xasprintf("ONBUILD %s", text);
            kiln_engine_event(e, st->step, "log", msg, -1);
        }
        if (kiln_dockerfile_parse(text, strlen(text), "ONBUILD", &df, err) < 0) {
            ret = -1;
            break;
        }
        for (size_t k = 0; k < df->n_nodes && ret >= 0; k++) {
            const char *kw = df->nodes[k].keyword;
            if (strcmp(kw, "from") == 0 || strcmp(kw, "onbuild") == 0 ||
                strcmp(kw, "maintainer") == 0)
                ret = kiln_error_set(err, 0, "ONBUILD trigger %s is not allowed: %s", kw, text);
            else
                ret = dispatch(e, st, &df->nodes[k], err);
        }
        kiln_dockerfile_free(df);
        if (ret < 0) {
            kiln_error_prefix(err, "ONBUILD trigger of the base image");
            break;
        }
    }
    json_decref(triggers);
    return ret < 0 ? -1 : 0;
}

int kiln_solve_run_stage(engine_t *e, stage_t *st, kiln_error_t *err)
{
    size_t total;
    _cleanup_free_ char *sname = NULL;
    int c = claim_stage(e, st, err);

    if (c <= 0)
        return c;
    total = st->end - st->first;
    sname = st->name ? kiln_xstrdup(st->name) : kiln_xasprintf("stage-%d", st->index);
    for (size_t i = st->first; i < st->end; i++) {
        const kiln_df_node_t *n = &e->df->nodes[i];
        _cleanup_free_ char *kwu = upper_kw(n->keyword);
        _cleanup_free_ char *title = NULL;
        const char *text = n->original;
        double t0 = kiln_engine_now();
        int r;
        while (*text == ' ' || *text == '\t')
            text++;
        text += strlen(n->keyword);
        while (*text == ' ' || *text == '\t')
            text++;
        title = kiln_xasprintf("[%s %zu/%zu] %s %s", sname, i - st->first + 1, total, kwu, text);
        pthread_mutex_lock(&e->lock);
        st->step = ++e->step_no;
        pthread_mutex_unlock(&e->lock);
        kiln_engine_event_at(e, st->step, "start", title, -1, n->start_line);
        if (i == st->first) {
            r = kiln_step_from(e, st, n, err);
            if (r >= 0 &&
                json_array_size(json_object_get(kiln_image_config_obj(st->config), "OnBuild")) > 0)
                r = run_onbuild(e, st, err);
        } else {
            r = dispatch(e, st, n, err);
        }
        if (r < 0) {
            kiln_engine_event(e, st->step, "error", err->msg, kiln_engine_now() - t0);
            release_stage(e, st, false);
            return -1;
        }
        if (r == 1)
            kiln_engine_event(e, st->step, "cached", NULL, kiln_engine_now() - t0);
        else
            kiln_engine_event(e, st->step, "done", NULL, kiln_engine_now() - t0);
        record_step(e, title, kiln_engine_now() - t0, r == 1);
    }
    release_stage(e, st, true);
    return 0;
}

/* The stage a FROM / --from / from= names, when it is an earlier stage.
 * Names with variables are expanded with the global ARGs. */
static stage_t *stage_ref(engine_t *e, const stage_t *st, const char *ref)
{
    _cleanup_free_ char *x = NULL;
    if (strchr(ref, '$') != NULL) {
        stage_t meta = {.args = e->meta_args, .config = json_object()};
        int r = kiln_expand_word(e, &meta, ref, NULL, &x, NULL);
        json_decref(meta.config);
        if (r < 0)
            return NULL;
        ref = x;
    }
    return kiln_solve_find(e, ref, (size_t)st->index);
}

/* Marks in deps[] the earlier stages st reads from (FROM, COPY/ADD --from,
 * RUN --mount from=). */
static void stage_deps(engine_t *e, const stage_t *st, bool *deps)
{
    for (size_t i = st->first; i < st->end; i++) {
        const kiln_df_node_t *n = &e->df->nodes[i];
        stage_t *d = NULL;
        if (i == st->first && n->n_args > 0 && (d = stage_ref(e, st, n->args[0])) != NULL)
            deps[d->index] = true;
        for (size_t k = 0; k < n->n_flags; k++) {
            const char *f = n->flags[k];
            const char *from = NULL;
            _cleanup_free_ char *tmp = NULL;
            if (strncmp(f, "--from=", 7) == 0) {
                from = f + 7;
            } else if (strncmp(f, "--mount=", 8) == 0 && (from = strstr(f, "from=")) != NULL) {
                tmp = kiln_xstrndup(from + 5, strcspn(from + 5, ","));
                from = tmp;
            }
            if (from != NULL && (d = stage_ref(e, st, from)) != NULL)
                deps[d->index] = true;
        }
    }
}

static void mark_needed(engine_t *e, const stage_t *st, bool *needed, bool **deps)
{
    if (needed[st->index])
        return;
    needed[st->index] = true;
    for (size_t i = 0; i < e->n_stages; i++)
        if (deps[st->index][i])
            mark_needed(e, &e->stages[i], needed, deps);
}

void kiln_solve_graph(engine_t *e, const stage_t *target, kiln_solve_graph_t *g)
{
    g->n = e->n_stages;
    g->target = (size_t)target->index;
    g->deps = kiln_xzalloc(g->n * sizeof(bool *));
    g->needed = kiln_xzalloc(g->n * sizeof(bool));
    for (size_t i = 0; i < g->n; i++) {
        g->deps[i] = kiln_xzalloc(g->n * sizeof(bool));
        stage_deps(e, &e->stages[i], g->deps[i]);
    }
    mark_needed(e, target, g->needed, g->deps);
}

void kiln_solve_graph_free(kiln_solve_graph_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->deps[i]);
    free(g->deps);
    free(g->needed);
    memset(g, 0, sizeof(*g));
}

size_t kiln_solve_wave(const kiln_solve_graph_t *g, const int *state, size_t *wave)
{
    size_t nw = 0;
    for (size_t i = 0; i < g->n && nw < MAX_PARALLEL; i++) {
        bool ready = g->needed[i] && state[i] == 0 && i != g->target;
        for (size_t k = 0; ready && k < g->n; k++)
            if (g->deps[i][k] && state[k] != 2)
                ready = false;
        if (ready)
            wave[nw++] = i;
    }
    return nw;
}

size_t kiln_solve_order(const kiln_solve_graph_t *g, size_t *order)
{
    int *state = kiln_xzalloc(g->n * sizeof(int));
    size_t wave[MAX_PARALLEL], n = 0, nw;

    while ((nw = kiln_solve_wave(g, state, wave)) > 0) {
        for (size_t k = 0; k < nw; k++) {
            state[wave[k]] = 2;
            order[n++] = wave[k];
        }
    }
    order[n++] = g->target;
    free(state);
    return n;
}

typedef struct stage_job {
    engine_t *e;
    stage_t *st;
    int rc;
} stage_job_t;

static void *stage_thread(void *arg)
{
    stage_job_t *j = arg;
    j->rc = kiln_solve_run_stage(j->e, j->st, &j->st->err);
    return NULL;
}

/* Builds the stages the target needs, independent ones in parallel (one
 * thread per ready stage, in waves), then the target. */
int kiln_solve_run(engine_t *e, stage_t *target, kiln_error_t *err)
{
    kiln_solve_graph_t g;
    int *state = kiln_xzalloc(e->n_stages * sizeof(int));
    int ret = 0;

    kiln_solve_graph(e, target, &g);
    for (;;) {
        stage_job_t jobs[MAX_PARALLEL];
        pthread_t th[MAX_PARALLEL];
        size_t wave[MAX_PARALLEL];
        size_t nj;
        for (size_t i = 0; i < g.n; i++)
            state[i] = e->stages[i].state; /* no stage runs between waves */
        nj = kiln_solve_wave(&g, state, wave);
        for (size_t k = 0; k < nj; k++)
            jobs[k] = (stage_job_t){.e = e, .st = &e->stages[wave[k]]};
        if (nj == 0)
            break;
        if (nj == 1) {
            stage_thread(&jobs[0]);
        } else {
            for (size_t k = 0; k < nj; k++)
                if (pthread_create(&th[k], NULL, stage_thread, &jobs[k]) != 0)
                    stage_thread(&jobs[k]), th[k] = 0;
            for (size_t k = 0; k < nj; k++)
                if (th[k] != 0)
                    pthread_join(th[k], NULL);
        }
        for (size_t k = 0; k < nj; k++) {
            if (jobs[k].rc < 0 && ret == 0) {
                *err = jobs[k].st->err;
                ret = -1;
            }
        }
        if (ret < 0)
            break;
    }
    kiln_solve_graph_free(&g);
    free(state);
    if (ret < 0)
        return ret;
    return kiln_solve_run_stage(e, target, err);
}

/* The stage named name (case-insensitive) or numbered name among the first before stages;
 * NULL when there is none. */
stage_t *kiln_solve_find(engine_t *e, const char *name, size_t before)
{
    for (size_t i = 0; i < before && i < e->n_stages; i++)
        if (e->stages[i].name && strcasecmp(e->stages[i].name, name) == 0)
            return &e->stages[i];
    if (kiln_user_all_digits(name)) {
        size_t i = (size_t)strtoul(name, NULL, 10);
        if (i < before && i < e->n_stages)
            return &e->stages[i];
    }
    return NULL;
}

int kiln_solve_split(engine_t *e, kiln_error_t *err)
{
    bool seen_from = false;
    /* BuildKit's automatic platform ARGs (global scope; a stage declares them
     * with a bare ARG to use them) */
    static const char *const platform_args[][2] = {{"TARGETPLATFORM", "linux/amd64"},
                                                   {"TARGETOS", "linux"},
                                                   {"TARGETARCH", "amd64"},
                                                   {"TARGETVARIANT", ""},
                                                   {"BUILDPLATFORM", "linux/amd64"},
                                                   {"BUILDOS", "linux"},
                                                   {"BUILDARCH", "amd64"},
                                                   {"BUILDVARIANT", ""}};
    for (size_t i = 0; i < sizeof(platform_args) / sizeof(platform_args[0]); i++)
        kv_set(&e->meta_args, platform_args[i][0], platform_args[i][1]);
    for (size_t i = 0; i < e->df->n_nodes; i++) {
        const kiln_df_node_t *n = &e->df->nodes[i];
        if (strcmp(n->keyword, "from") == 0) {
            stage_t *st;
            if (e->n_stages >= MAX_STAGES)
                return kiln_error_set(err, 0, "Dockerfile:%d: too many stages", n->start_line);
            if (e->n_stages > 0)
                e->stages[e->n_stages - 1].end = i;
            st = &e->stages[e->n_stages];
            memset(st, 0, sizeof(*st));
            st->first = i;
            st->end = e->df->n_nodes;
            st->index = (int)e->n_stages;
            st->e = e;
            if (n->n_args == 3 && strcasecmp(n->args[1], "as") == 0) {
                st->name = kiln_xstrdup(n->args[2]);
                for (char *p = st->name; *p; p++)
                    *p = (char)tolower_ascii(*p);
                for (size_t k = 0; k < e->n_stages; k++) {
                    if (e->stages[k].name && strcmp(e->stages[k].name, st->name) == 0) {
                        kiln_df_error(n, err, "duplicate stage name %s", st->name);
                        free(st->name); /* not counted yet: the cleanup would miss it */
                        st->name = NULL;
                        return -1;
                    }
                }
            }
            e->n_stages++;
            seen_from = true;
        } else if (!seen_from) {
            if (strcmp(n->keyword, "arg") != 0)
                return kiln_df_error(n, err, "no build stage in current context");
            for (size_t k = 0; k < n->n_args; k++) {
                _cleanup_free_ char *w = kiln_xstrdup(n->args[k]);
                char *eq = strchr(w, '=');
                const char *ov;
                if (eq)
                    *eq = '\0';
                ov = kiln_expand_build_arg(e, w);
                if (ov)
                    kv_set(&e->meta_args, w, ov);
                else if (eq) {
                    stage_t meta = {.args = e->meta_args, .config = json_object()};
                    _cleanup_free_ char *v = NULL;
                    int r = kiln_expand_word(e, &meta, eq + 1, NULL, &v, err);
                    json_decref(meta.config);
                    if (r < 0)
                        return kiln_df_error(n, err, "%s", err->msg);
                    kv_set(&e->meta_args, w, v);
                }
            }
        } else if (!kiln_df_known_keyword(n->keyword)) {
            return kiln_df_error(n, err, "unknown instruction: %s", n->keyword);
        }
    }
    if (e->n_stages == 0)
        return kiln_error_set(err, 0, "Dockerfile: no FROM instruction");
    return 0;
}

void kiln_solve_stage_clear(stage_t *st)
{
    free(st->name);
    json_decref(st->config);
    for (size_t i = 0; i < st->n_layers; i++)
        kiln_descriptor_clear(&st->layers[i].desc);
    free(st->layers);
    strv_clear(&st->args);
    free(st->rootfs);
    for (size_t i = 0; i < st->tail_n; i++)
        free(st->tail[i]);
    free(st->spare_upper); /* under the build's work dir, removed with it */
    free(st->spare_work);
}
