/* kiln — the run of a whole build job (see run.h): source → plan → engine → exporters →
 * completion event, notifications and metadata, reported through one typed callback. */
#include "job/run.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "job/attest.h"
#include "job/auto.h"
#include "job/event.h"
#include "job/explain.h"
#include "job/failure.h"
#include "job/request.h"
#include "job/stream.h"
#include "oci/imagesize.h"
#include "oci/imagestore.h"
#include "oci/registry.h"
#include "oci/store.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/git.h"
#include "utils/json.h"
#include "utils/mem.h"

/* One run: the options, the completion event and what the outputs pushed. */
typedef struct run {
    const kiln_job_spec_t *spec;
    const kiln_job_run_opts_t *o;
    json_t *ev;
    uint64_t pushed;
    kiln_job_failure_t *fail; /* the failing step, from the step events */
} run_t;

static void emit(const run_t *r, kiln_job_run_kind_t kind, const char *text)
{
    kiln_job_run_event_t e = {.kind = kind, .text = text};

    if (r->o->event)
        r->o->event(r->o->ud, &e);
}

static void emitf(const run_t *r, kiln_job_run_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void emitf(const run_t *r, kiln_job_run_kind_t kind, const char *fmt, ...)
{
    _cleanup_free_ char *text = NULL;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    va_end(ap);
    if (text)
        emit(r, kind, text);
}

/* The engine's lines and typed step events, handed on. */
static void engine_line(void *ud, const char *line)
{
    emit(ud, KILN_JOB_RUN_LOG, line);
}

/* A step event: noted for the failure's details, then handed on typed, or as the line the
 * engine would have written itself (progress decides its form; tty leaves out output). */
static void engine_step(void *ud, const kiln_step_event_t *step)
{
    const run_t *r = ud;
    kiln_job_run_event_t e = {.kind = KILN_JOB_RUN_STEP, .step = step};
    _cleanup_free_ char *line = NULL;

    kiln_job_failure_step(r->fail, step);
    if (r->o->typed_steps) {
        if (r->o->event)
            r->o->event(r->o->ud, &e);
        return;
    }
    if (step->kind == KILN_STEP_EVENT_LOG && r->o->progress == KILN_PROGRESS_TTY)
        return;
    line = r->o->progress == KILN_PROGRESS_JSON ? kiln_step_event_json(step)
                                                : kiln_step_event_plain(step);
    if (line)
        emit(r, KILN_JOB_RUN_LOG, line);
}

static void output_phase(void *ud, const char *phase)
{
    emit(ud, KILN_JOB_RUN_PHASE, phase);
}

/* Turns what an exporter wrote into the completion event's outputs (and, for S3, a note). */
static void output_done(void *ud, const kiln_export_result_t *x)
{
    const run_t *r = ud;

    if (strcmp(x->type, "s3") == 0) {
        emitf(r, KILN_JOB_RUN_NOTE, "s3 %s: %zu files, %zu uploaded, %zu unchanged, %llu bytes",
              x->location, x->files, x->uploaded, x->unchanged, (unsigned long long)x->bytes);
        if (!x->failed)
            kiln_event_add_output(r->ev, "s3",
                                  json_pack("{s:s, s:I, s:I, s:I}", "url", x->location, "files",
                                            (json_int_t)x->files, "uploaded",
                                            (json_int_t)x->uploaded, "unchanged",
                                            (json_int_t)x->unchanged));
    } else if (strcmp(x->type, "oci") == 0 || strcmp(x->type, "docker") == 0) {
        kiln_event_add_output(r->ev, "images",
                              json_pack("{s:s, s:s, s:s}", "type", x->type, "dest", x->location,
                                        "digest", x->digest));
    } else if (strcmp(x->type, "registry") == 0) {
        if (x->note) /* what --soci did */
            emitf(r, KILN_JOB_RUN_NOTE, "%s: %s", x->location, x->note);
        kiln_event_add_output(r->ev, "images",
                              json_pack("{s:s, s:s, s:s}", "type", "registry", "ref", x->location,
                                        "digest", x->digest));
    } else if (strcmp(x->type, "local") == 0 || strcmp(x->type, "tar") == 0) {
        kiln_event_add_output(r->ev, "local", json_pack("{s:s}", "dest", x->location));
    }
    /* a function zip is named by the function.json beside it, not in the event */
}

/* 1 when spec is a type=function output. */
static int is_function(const char *spec)
{
    return strncmp(spec, "type=function", 13) == 0 && (spec[13] == ',' || spec[13] == '\0');
}

/* Writes every output through its exporter: the function zips of an auto build first, then
 * the others in order, each announced as a phase. */
static int do_outputs(run_t *r, const kiln_job_request_t *jr, const char *root, kiln_store_t *store,
                      const kiln_build_result_t *res, const kiln_auto_build_t *ab,
                      kiln_error_t *err)
{
    _cleanup_free_ char *tmp = kiln_xasprintf("%s/build/tmp", root);
    const kiln_job_spec_t *s = r->spec;
    kiln_export_image_t img = {.store = store,
                               .manifest = &res->manifest,
                               .layers = res->layers,
                               .n_layers = res->n_layers,
                               .tags = s->n_tags ? (const char *const *)s->tags : NULL,
                               .n_tags = s->n_tags};
    kiln_export_ctx_t ctx = {.tmp_dir = tmp,
                             .insecure = (const char *const *)s->insecure_registries,
                             .registry_config = r->o->registry_config,
                             .ecr_create = r->o->ecr_create,
                             .tags_with_name = r->o->server_mode,
                             .soci = s->soci,
                             .soci_min_layer = s->soci_min_layer_size,
                             .has_soci_min_layer = s->has_soci_min_layer_size,
                             .ecr_create_fn = r->o->ecr_create_fn,
                             .function = ab->dockerfile != NULL,
                             .function_handler = ab->plan ? ab->plan->handler : NULL,
                             .function_runtime = ab->plan ? ab->plan->runtime : NULL,
                             .result = output_done,
                             .phase = output_phase,
                             .phase_ud = r,
                             .result_ud = r};
    kiln_netpolicy_t *policy = NULL; /* a tenant's push names any registry: as for FROM */
    int ret = 0;

    if (kiln_build_netpolicy(&jr->req, KILN_BUILD_FETCH_REGISTRY, &policy, err) < 0)
        return -1;
    ctx.policy = policy;
    for (int pass = ctx.function ? 0 : 1; pass < 2; pass++)
        for (size_t i = 0; i < jr->n_outputs && ret == 0; i++)
            if (is_function(jr->outputs[i]) == (pass == 0))
                ret = kiln_export_run(&ctx, &img, jr->outputs[i], err);
    /* -t names the image in kiln's store, as docker build -t does (a tenant's server build
     * names nothing on the machine: its names are its pushes') */
    if (ret == 0 && s->n_tags && !r->o->server_mode)
        ret = kiln_imagestore_tag(store, (const char *const *)s->tags, s->n_tags,
                                  &res->manifest.digest, err);
    r->pushed += ctx.pushed;
    kiln_export_ctx_clear(&ctx);
    kiln_netpolicy_free(policy);
    return ret;
}

/* The documents attached to each pushed image as referrers (job/attest.h). */
static int attest_push(const run_t *r, const kiln_job_request_t *jr, const kiln_job_attest_t *a,
                       kiln_store_t *store, const kiln_build_result_t *res, kiln_error_t *err)
{
    json_t *images = json_object_get(json_object_get(r->ev, "outputs"), "images"), *it;
    _cleanup_free_ const char **refs = kiln_xmalloc((json_array_size(images) + 1) * sizeof(char *));
    _cleanup_free_ char *tag = NULL;
    kiln_netpolicy_t *policy = NULL;
    kiln_registry_opts_t ro;
    size_t i, n = 0;
    int ret;

    json_array_foreach(images, i, it)
    {
        if (strcmp(kiln_json_get_string(it, "type"), "registry") == 0)
            refs[n++] = kiln_json_get_string(it, "ref");
    }
    if (n == 0)
        return 0;
    if (kiln_build_netpolicy(&jr->req, KILN_BUILD_FETCH_REGISTRY, &policy, err) < 0)
        return -1;
    kiln_registry_opts_init(&ro);
    ro.insecure = (const char *const *)r->spec->insecure_registries;
    if (r->o->registry_config)
        ro.config_file = r->o->registry_config;
    ro.policy = policy;
    emit(r, KILN_JOB_RUN_PHASE, "pushing");
    ret = kiln_job_attest_push(a, store, &res->manifest, refs, n, &ro, &tag, err);
    if (ret == 0)
        emitf(r, KILN_JOB_RUN_NOTE, "attestations attached as referrers (%s)", tag);
    kiln_netpolicy_free(policy);
    return ret;
}

/* --sbom / --provenance: the documents made from the image and written beside each file
 * output, each said in a note. */
static int do_attest(const run_t *r, const kiln_job_request_t *jr, kiln_store_t *store,
                     const kiln_build_result_t *res, const kiln_auto_build_t *ab,
                     const char *build_id, const char *started, kiln_error_t *err)
{
    _cleanup_free_ char *dir_url = NULL, *dir_commit = NULL;
    kiln_job_attest_in_t in = {.spec = r->spec,
                               .store = store,
                               .res = res,
                               .build_id = build_id,
                               .repo = ab->src.commit ? ab->src.display : NULL,
                               .commit = ab->src.commit,
                               .started = started};
    kiln_job_attest_t a;
    int ret = 0;

    /* an operator's build of a local directory in a git working tree: its HEAD and origin,
     * as buildx records a context's git information (a server's sources are checkouts or
     * uploads: theirs come from the spec) */
    if (r->spec->provenance && !r->o->server_mode && ab->src.commit == NULL &&
        r->spec->repo == NULL && r->spec->commit == NULL && jr->req.context_dir &&
        kiln_git_dir_info(jr->req.context_dir, &dir_url, &dir_commit) == 1) {
        in.repo = dir_url;
        in.commit = dir_commit;
    }
    if (kiln_job_attest_make(&in, &a, err) < 0)
        return -1;
    if (a.sbom)
        emitf(r, KILN_JOB_RUN_NOTE, "sbom: %zu packages", a.packages);
    for (size_t i = 0; i < jr->n_outputs && ret == 0; i++) {
        _cleanup_free_ char *path = NULL;
        ret = kiln_job_attest_write(&a, jr->outputs[i], &path, err);
        if (ret == 0 && path)
            emitf(r, KILN_JOB_RUN_NOTE, "sbom written to %s", path);
    }
    if (ret == 0)
        ret = attest_push(r, jr, &a, store, res, err);
    kiln_job_attest_clear(&a);
    return ret;
}

/* The metadata file: the image (res NULL when the build failed), step timings, the
 * completion event, what each notification did and the bytes pushed. */
static int write_metadata(const run_t *r, const kiln_build_result_t *res, json_t *notified,
                          kiln_error_t *err)
{
    const kiln_job_spec_t *s = r->spec;
    /* the limits of each step; the wall time is whoever runs the job's */
    kiln_job_limits_t lim = s->limits;
    json_t *j = json_object();
    char *text;
    int ret;

    lim.wall_time = 0;
    json_object_set(j, "kiln.event", r->ev);
    json_object_set_new(j, "kiln.bytes_pushed", json_integer((json_int_t)r->pushed));
    if (lim.memory || lim.pids || lim.cpu_time || lim.disk)
        json_object_set_new(j, "kiln.limits", kiln_job_limits_to_json(&lim));
    if (notified != NULL)
        json_object_set(j, "kiln.notify", notified);
    if (res != NULL) {
        char ds[KILN_DIGEST_STR_MAX], cs[KILN_DIGEST_STR_MAX];
        json_t *tags = json_array(), *steps = json_array();
        kiln_digest_str(&res->manifest.digest, ds);
        kiln_digest_str(&res->config_digest, cs);
        for (size_t i = 0; i < s->n_tags; i++)
            json_array_append_new(tags, json_string(s->tags[i]));
        for (size_t i = 0; i < res->n_steps; i++)
            json_array_append_new(steps,
                                  json_pack("{s:s,s:f,s:b}", "name", res->steps[i].name, "seconds",
                                            res->steps[i].seconds, "cached", res->steps[i].cached));
        json_object_set_new(j, "containerimage.digest", json_string(ds));
        json_object_set_new(j, "containerimage.config.digest", json_string(cs));
        json_object_set_new(j, "image.name", json_string(s->n_tags ? s->tags[0] : ""));
        json_object_set_new(j, "tags", tags);
        json_object_set_new(j, "steps", steps);
    }
    text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    ret = kiln_fs_write_file_atomic(r->o->metadata_file, text, strlen(text), 0644, err);
    free(text);
    return ret;
}

/* The image's size (compressed, uncompressed) on the completion event, in the result and as
 * a note; a layer that cannot be measured only leaves the size out. */
static void note_size(const run_t *r, kiln_store_t *store, const kiln_build_result_t *res,
                      kiln_job_run_result_t *out)
{
    kiln_image_size_t sz;
    kiln_error_t e = {0};
    char text[96];

    if (kiln_image_size(store, &res->manifest, &res->config_digest, res->layers, res->n_layers, &sz,
                        &e) < 0) {
        emitf(r, KILN_JOB_RUN_WARNING, "image size: %s", e.msg);
        return;
    }
    if (sz.unmeasured > 0) /* a lazy layer (oci/store_lazy) was not downloaded */
        sz.uncompressed = KILN_EVENT_SIZE_UNKNOWN;
    kiln_event_set_image_size(r->ev, sz.compressed, sz.uncompressed, text, sizeof(text));
    out->size_compressed = sz.compressed;
    out->size_uncompressed = sz.uncompressed;
    if (r->o->progress != KILN_PROGRESS_QUIET)
        emitf(r, KILN_JOB_RUN_NOTE, "image size: %s", text);
}

/* A checked-out git source (commit set): a note and the completion event's repo and commit. */
static void note_source(const run_t *r, const kiln_auto_source_t *src)
{
    if (src->commit == NULL)
        return;
    emitf(r, KILN_JOB_RUN_NOTE, "source %s at commit %s", src->display, src->commit);
    json_object_set_new(json_object_get(r->ev, "source"), "repo", json_string(src->display));
    json_object_set_new(json_object_get(r->ev, "source"), "commit", json_string(src->commit));
}

/* The source as job/auto reads it: a directory, or URL[#REF] (a commit pins the ref). */
static char *source_text(const kiln_job_spec_t *s)
{
    const char *ref = s->source_commit ? s->source_commit : s->ref;

    if (s->source_kind == KILN_JOB_SOURCE_GIT && ref)
        return kiln_xasprintf("%s#%s", s->source, ref);
    return kiln_xstrdup(s->source);
}

/* The code of a failed build (job/stream.h): the engine's own kind of failure, a write of
 * kiln's that found no space, else build_failed. */
static const char *fail_code(const kiln_build_result_t *res, const kiln_error_t *err)
{
    if (res->fail_code)
        return res->fail_code;
    return kiln_fs_errno_no_space(err->code) ? KILN_JOB_ERR_NO_SPACE : KILN_JOB_ERR_BUILD_FAILED;
}

static double elapsed(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The completion event's ids: the job's, as whoever accepted it set them. */
static void event_ids(run_t *r, const char *context, const char *author, const char *message)
{
    const kiln_job_spec_t *s = r->spec;
    json_t *src = json_object_get(r->ev, "source");

    json_object_set_new(src, "context", json_string(context));
    if (s->repo)
        json_object_set_new(src, "repo", json_string(s->repo));
    if (s->commit)
        json_object_set_new(src, "commit", json_string(s->commit));
    if (s->branch)
        json_object_set_new(src, "branch", json_string(s->branch));
    /* the checked-out commit's author and message (utils/git, capped) */
    if (author)
        json_object_set_new(src, "author", json_string(author));
    if (message)
        json_object_set_new(src, "message", json_string(message));
    if (s->tenant)
        json_object_set_new(r->ev, "tenant", json_string(s->tenant));
    json_object_set_new(r->ev, "trigger", json_string(s->trigger ? s->trigger : "cli"));
}

/* Puts the source on disk and, for an auto build, its plan rendered: fills the request's
 * context and Dockerfile. */
static int prepare_source(run_t *r, kiln_job_request_t *jr, const kiln_git_policy_t *gitpol,
                          kiln_auto_build_t *ab, char **git_dockerfile, kiln_error_t *err)
{
    const kiln_job_spec_t *s = r->spec;
    const kiln_job_run_opts_t *o = r->o;
    _cleanup_free_ char *text = source_text(s);
    kiln_build_request_t *q = &jr->req;

    q->context_dir = s->source;
    if (s->dockerfile == NULL && !o->scratch_context &&
        kiln_auto_wanted(text, s->subdir, s->plan)) {
        kiln_auto_build_opts_t ao = {.root = o->root,
                                     .subdir = s->subdir,
                                     .plan_file = s->plan,
                                     .env = o->env,
                                     .outputs = (const char *const *)jr->outputs,
                                     .n_outputs = jr->n_outputs,
                                     .secrets = q->secrets,
                                     .n_secrets = q->n_secrets,
                                     .git_policy = gitpol,
                                     .cache_namespace = s->cache_namespace,
                                     .stat_cache_max = o->stat_cache_max};
        emit(r, KILN_JOB_RUN_PHASE, "planning");
        if (kiln_auto_build_prepare(text, &ao, ab, err) < 0)
            return -1;
        note_source(r, &ab->src);
        q->context_dir = ab->src.dir;
        if (ab->dockerfile) {
            emitf(r, KILN_JOB_RUN_NOTE, "auto-build: provider %s, target %s", ab->plan->provider,
                  ab->target);
            q->dockerfile_text = ab->dockerfile;
            q->dockerfile_len = strlen(ab->dockerfile);
            q->ignore_file = ".kilnignore";
            if (q->target == NULL)
                q->target = ab->target;
            if (ab->context) {
                size_t n = q->n_contexts;
                jr->contexts = kiln_xrealloc(jr->contexts, (n + 2) * sizeof(char *));
                jr->contexts[n] = kiln_xstrdup(ab->context);
                jr->contexts[n + 1] = NULL;
                q->contexts = (const char *const *)jr->contexts;
                q->n_contexts = n + 1;
            }
            if (jr->n_outputs == 0)
                kiln_job_request_add_output(jr, ab->default_output);
        }
    } else if (s->source_kind == KILN_JOB_SOURCE_GIT) {
        /* kiln build -f FILE GIT_URL: the same checkout as an auto build's */
        kiln_auto_source_opts_t so = {.root = o->root,
                                      .subdir = s->subdir,
                                      .env = o->env,
                                      .git_policy = gitpol,
                                      .cache_namespace = s->cache_namespace,
                                      .stat_cache_max = o->stat_cache_max,
                                      .checkout_timeout = (unsigned)s->source_timeout};
        emit(r, KILN_JOB_RUN_PHASE, "checkout");
        if (kiln_auto_source_prepare(text, &so, &ab->src, err) < 0)
            return -1;
        note_source(r, &ab->src);
        q->context_dir = ab->src.dir;
        /* -f names a file of the repository (as buildx reads it for a git context), found
         * inside the checkout by the engine */
        if (s->dockerfile && strcmp(s->dockerfile, "-") != 0 && s->dockerfile[0] != '/')
            *git_dockerfile = kiln_xasprintf("%s/%s", ab->src.dir, s->dockerfile);
    }
    if (o->dockerfile_text) {
        q->dockerfile_text = o->dockerfile_text;
        q->dockerfile_len = o->dockerfile_len;
    } else if (q->dockerfile_text == NULL) {
        q->dockerfile_path = *git_dockerfile ? *git_dockerfile : s->dockerfile;
    }
    /* a git source's tree: the repository's identity, whose entries its checkout noted */
    if (q->context_id == NULL)
        q->context_id = ab->src.context_id;
    /* a context unpacked for this build is new every time: no stat of it is seen again */
    q->stat_cache_max = o->scratch_context && s->context_id == NULL ? -1 : o->stat_cache_max;
    return 0;
}

/* What each base image resolved to, in the completion event ("base_images": [{"ref",
 * "digest"}]), so a record says which bytes the image was built on (the FROM step's
 * progress says it too). */
static void event_bases(const run_t *r, const kiln_build_result_t *res)
{
    json_t *a = json_array();

    for (size_t i = 0; i < res->n_bases; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s}", "ref", res->bases[i].ref, "digest", res->bases[i].digest));
    json_object_set_new(r->ev, "base_images", a);
}

/* The end of every run, good or failed: timings, status, the failure event, notifications,
 * the metadata file. Returns rc, or -1 when the metadata file could not be written. */
static int finish(run_t *r, int rc, const kiln_build_result_t *res, int built,
                  const struct timespec *t0, const struct timespec *t1, kiln_job_run_result_t *out,
                  kiln_error_t *err)
{
    const kiln_job_spec_t *s = r->spec;
    kiln_error_t nerr = {0};
    json_t *notified = NULL;
    struct timespec t2;

    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (built)
        kiln_event_set_timing(r->ev, "outputs_ms", elapsed(t1, &t2));
    kiln_event_set_timing(r->ev, "total_ms", elapsed(t0, &t2));
    kiln_event_finish(r->ev, rc == 0 ? "succeeded" : "failed", rc == 0 ? NULL : err->msg);
    if (s->n_notify > 0)
        emit(r, KILN_JOB_RUN_PHASE, "notifying");
    /* a notification that fails is reported, but a good build stays good */
    if (kiln_event_notify(r->ev, (const char *const *)s->notify, s->n_notify, &notified, &nerr) < 0)
        emit(r, KILN_JOB_RUN_WARNING, nerr.msg);
    if (r->o->metadata_file && write_metadata(r, rc == 0 ? res : NULL, notified, &nerr) < 0) {
        kiln_job_run_event_t e = {.kind = rc == 0 ? KILN_JOB_RUN_FAILED : KILN_JOB_RUN_WARNING,
                                  .code = KILN_JOB_ERR_INTERNAL,
                                  .text = nerr.msg};
        if (r->o->event)
            r->o->event(r->o->ud, &e);
        if (rc == 0) {
            *err = nerr;
            out->code = KILN_JOB_ERR_INTERNAL;
            rc = -1;
        }
    }
    json_decref(notified);
    return rc;
}

int kiln_job_run(const kiln_job_spec_t *s, const kiln_job_run_opts_t *o, kiln_job_run_result_t *out,
                 kiln_error_t *err)
{
    run_t r = {.spec = s, .o = o, .fail = kiln_job_failure_new()};
    kiln_job_request_t jr = {0};
    kiln_git_policy_t gitpol = {.server_mode = o->server_mode,
                                .allow_http = o->allow_http_git,
                                .allow_addresses = o->allow_addresses,
                                .n_allow_addresses = o->n_allow_addresses};
    kiln_build_result_t res = {0};
    kiln_store_t *store = NULL;
    kiln_auto_build_t ab = {0};
    _cleanup_free_ char *root = NULL, *build_id = NULL, *git_dockerfile = NULL, *user_msg = NULL;
    struct timespec t0, t1 = {0};
    char started[32];
    int built = 0, rc = -1, in_build = 0;
    json_t *failure = NULL;

    memset(out, 0, sizeof(*out));
    build_id = s->build_id ? kiln_xstrdup(s->build_id)
                           : kiln_event_build_id(kiln_env_get(o->env, "KILN_BUILD_ID"));
    r.ev = kiln_event_new(build_id);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kiln_job_attest_time(s, started);
    if (kiln_job_request_make(s, o->secrets_dir, &jr, err) < 0) {
        out->code = KILN_JOB_ERR_INVALID_SPEC;
        goto done;
    }
    kiln_event_set_security(r.ev, s->isolation, jr.req.entitlements);
    if (s->isolation && strcmp(s->isolation, "chroot") == 0)
        emit(&r, KILN_JOB_RUN_NOTE,
             "kiln: isolation chroot (the operator's choice): RUN steps run as real root, "
             "without a user namespace");
    if (prepare_source(&r, &jr, &gitpol, &ab, &git_dockerfile, err) < 0) {
        /* a checkout that failed is the source's; a plan that failed, the build's */
        out->code = kiln_fs_errno_no_space(err->code)       ? KILN_JOB_ERR_NO_SPACE
                    : s->source_kind == KILN_JOB_SOURCE_GIT ? KILN_JOB_ERR_SOURCE
                                                            : KILN_JOB_ERR_BUILD_FAILED;
        goto done;
    }
    jr.req.registry_config = o->registry_config;
    jr.req.progress = o->progress;
    jr.req.log = engine_line;
    jr.req.event = engine_step;
    jr.req.log_ctx = &r;
    jr.req.env = o->env;
    jr.req.allow_addresses = o->allow_addresses;
    jr.req.n_allow_addresses = o->n_allow_addresses;
    jr.req.server_mode = o->server_mode;
    jr.req.allow_http_git = o->allow_http_git;
    jr.req.oci_dirs = o->oci_dirs;
    jr.req.n_oci_dirs = o->n_oci_dirs;

    root = o->root ? kiln_xstrdup(o->root) : kiln_store_default_root();
    if (root == NULL) {
        kiln_error_set(err, 0, "no store root: set HOME or XDG_DATA_HOME, or pass --root DIR");
        out->code = KILN_JOB_ERR_INTERNAL;
        goto done;
    }
    if (kiln_store_open(root, &store, err) < 0) {
        out->code = KILN_JOB_ERR_INTERNAL;
        goto done;
    }
    for (size_t i = 0; i < o->n_additional_stores; i++) {
        kiln_error_t aerr = {0};
        if (kiln_store_attach_additional(store, o->additional_stores[i], &aerr) < 0)
            emitf(&r, KILN_JOB_RUN_NOTE, "WARNING: %s; building without it", aerr.msg);
    }
    event_ids(&r,
              ab.src.display       ? ab.src.display
              : o->context_display ? o->context_display
                                   : s->source,
              ab.src.commit ? ab.src.author : o->source_author,
              ab.src.commit ? ab.src.message : o->source_message);
    /* the registry cache is pushed during the build: create its repository first */
    if (o->ecr_create && s->cache_to && o->ecr_create_fn &&
        o->ecr_create_fn((const char *const *)&s->cache_to, 1, err) < 0) {
        out->code = KILN_JOB_ERR_BUILD_FAILED;
        goto done;
    }
    emit(&r, KILN_JOB_RUN_PHASE, "building");
    if (kiln_build_run(&jr.req, store, &res, err) < 0) {
        /* an auto build's user never wrote the Dockerfile: say which of their steps failed */
        user_msg = ab.dockerfile ? kiln_explain_step_failure(ab.plan, ab.src.dir, err->msg) : NULL;
        out->code = fail_code(&res, err);
        in_build = 1;
        /* where it failed, for the record and the completion event */
        failure = kiln_job_failure_json(r.fail,
                                        ab.dockerfile   ? "Dockerfile (generated from the plan)"
                                        : s->dockerfile ? s->dockerfile
                                                        : "Dockerfile",
                                        res.fail_exit_status);
        if (failure)
            json_object_set(r.ev, "failure", failure);
        goto done;
    }
    built = out->built = 1;
    kiln_digest_str(&res.manifest.digest, out->digest);
    event_bases(&r, &res);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    kiln_event_set_timing(r.ev, "build_ms", elapsed(&t0, &t1));
    note_size(&r, store, &res, out);
    if (do_outputs(&r, &jr, root, store, &res, &ab, err) < 0) {
        out->code =
            kiln_fs_errno_no_space(err->code) ? KILN_JOB_ERR_NO_SPACE : KILN_JOB_ERR_BUILD_FAILED;
        goto done;
    }
    if ((s->sbom || s->provenance) &&
        do_attest(&r, &jr, store, &res, &ab, build_id, started, err) < 0) {
        out->code = KILN_JOB_ERR_BUILD_FAILED;
        goto done;
    }
    rc = 0;
done:
    if (rc < 0) {
        kiln_job_run_event_t e = {.kind = KILN_JOB_RUN_FAILED,
                                  .code = out->code,
                                  .text = err->msg,
                                  .explained = user_msg,
                                  .failure = failure,
                                  .in_build = in_build};
        if (o->event)
            o->event(o->ud, &e);
    }
    rc = finish(&r, rc, &res, built, &t0, &t1, out, err);
    if (rc < 0 && out->code == NULL)
        out->code = KILN_JOB_ERR_INTERNAL;
    json_decref(r.ev);
    json_decref(failure);
    kiln_job_failure_free(r.fail);
    kiln_job_request_clear(&jr);
    kiln_auto_build_release(&ab);
    kiln_build_result_clear(&res);
    kiln_store_close(store);
    return rc;
}
