#include "src/server/job.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job/stream.h"
#include "src/server/limits.h"
#include "src/server/request.h"
#include "src/server/runner.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/git.h"
#include "utils/mem.h"
#include "utils/size.h"

#define METADATA_CAP (1024 * 1024)

typedef struct run_ctx {
    const kiln_job_hooks_t *hooks;
    int commit_seen;        /* the commit the job's events carry was handed to hooks */
    const char *outputs;    /* the build's file outputs (./kiln-out), watched against disk */
    uint64_t disk;          /* limits.disk (0 = none) */
    uint64_t next_check_ms; /* monotonic */
    int disk_exceeded;
    /* what the job's events said, kept on the build record ("events" of its result):
     * {"phases": [NAME…], "pushed": [{"ref", "digest"}], "outputs": [...],
     *  "error": {"code", "message"}, "result": {"status", "digest", "code", "image_size"}} */
    json_t *events;
    char last_phase[32]; /* the job's last phase, kept once per change */
} run_ctx_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether the build's file outputs take more than its disk limit (a tree that cannot be
 * measured counts as more). */
static int outputs_over(run_ctx_t *c)
{
    uint64_t used = 0;

    if (c->disk == 0)
        return 0;
    if (kiln_fs_usage_at(AT_FDCWD, c->outputs, 128, c->disk, &used, NULL) < 0)
        return 1;
    return used > c->disk;
}

static void on_started(void *opaque, pid_t pgid, uint64_t ticks)
{
    run_ctx_t *c = opaque;
    if (c->hooks->started)
        c->hooks->started(c->hooks->opaque, pgid, ticks);
}

/* A job's phase (job/stream.h) as the build's status: "checkout" is "cloning"; building,
 * pushing and uploading pass; NULL for the others (validate, planning, exporting,
 * notifying, done), which only the record's events keep. */
static const char *job_status(const char *phase)
{
    static const char *const names[][2] = {{"checkout", "cloning"},
                                           {"building", "building"},
                                           {"pushing", "pushing"},
                                           {"uploading", "uploading"}};

    for (size_t i = 0; phase && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(phase, names[i][0]) == 0)
            return names[i][1];
    return NULL;
}

#define EVENTS_KEPT 64 /* outputs and pushed references kept on the record */

static void keep_event(json_t *events, const char *list, json_t *item)
{
    json_t *a = json_object_get(events, list);

    if (a == NULL) {
        a = json_array();
        json_object_set_new(events, list, a);
    }
    if (json_array_size(a) < EVENTS_KEPT)
        json_array_append_new(a, item);
    else
        json_decref(item);
}

/* One event of `kiln job run`: a phase moves the build's status; phases, pushed digests,
 * outputs, the error code and the result are kept for the build record. */
static void on_event(void *opaque, json_t *ev)
{
    run_ctx_t *c = opaque;
    const char *type = json_string_value(json_object_get(ev, "event"));
    json_t *x;

    if (type == NULL)
        return;
    x = json_object_get(ev, "commit");
    if (!c->commit_seen && json_string_length(x) == 40 &&
        strspn(json_string_value(x), "0123456789abcdef") == 40) {
        /* the commit the job's checkout resolved: every event after it carries it */
        c->commit_seen = 1;
        if (c->hooks->commit)
            c->hooks->commit(c->hooks->opaque, json_string_value(x));
    }
    if (strcmp(type, "phase") == 0) {
        const char *name = json_string_value(json_object_get(ev, "phase"));
        const char *p = job_status(name);
        if (name && strlen(name) < sizeof(c->last_phase) && strcmp(name, c->last_phase) != 0) {
            snprintf(c->last_phase, sizeof(c->last_phase), "%s", name);
            keep_event(c->events, "phases", json_string(name));
        }
        if (p && c->hooks->phase)
            c->hooks->phase(c->hooks->opaque, p);
    } else if (strcmp(type, "source") == 0) {
        const char *author = json_string_value(json_object_get(ev, "author"));
        const char *message = json_string_value(json_object_get(ev, "message"));
        /* the job caps them; a job that did not is cut here (the record's columns) */
        if (c->hooks->source && (author == NULL || strlen(author) <= KILN_GIT_AUTHOR_MAX) &&
            (message == NULL || strlen(message) <= KILN_GIT_MESSAGE_MAX))
            c->hooks->source(c->hooks->opaque, author, message);
    } else if (strcmp(type, "pushed") == 0) {
        x = json_object();
        json_object_set(x, "ref", json_object_get(ev, "ref"));
        json_object_set(x, "digest", json_object_get(ev, "digest"));
        keep_event(c->events, "pushed", x);
    } else if (strcmp(type, "output") == 0) {
        x = json_deep_copy(ev);
        /* the ids are the record's own */
        for (const char *const *k =
                 (const char *const[]){"v", "event", "build_id", "tenant", "repo", "commit",
                                       "branch", "trigger", NULL};
             *k; k++)
            json_object_del(x, *k);
        keep_event(c->events, "outputs", x);
    } else if (strcmp(type, "error") == 0 || strcmp(type, "result") == 0) {
        x = json_object();
        json_object_set(x, "code", json_object_get(ev, "code"));
        if (strcmp(type, "error") == 0) {
            json_object_set(x, "message", json_object_get(ev, "message"));
            /* the failing step: instruction, file:line, exit status, its last lines */
            if (json_is_object(json_object_get(ev, "failure")))
                json_object_set(x, "failure", json_object_get(ev, "failure"));
        } else {
            json_object_set(x, "status", json_object_get(ev, "status"));
            json_object_set(x, "digest", json_object_get(ev, "digest"));
            if (json_is_object(json_object_get(ev, "image_size")))
                json_object_set(x, "image_size", json_object_get(ev, "image_size"));
        }
        json_object_set_new(c->events, type, x);
    }
}

static int on_should_stop(void *opaque)
{
    run_ctx_t *c = opaque;

    /* the runner asks every 200 ms; the outputs are measured once a second, or less often
     * when a walk takes long (at most a tenth of the time walking) */
    if (c->disk && mono_ms() >= c->next_check_ms) {
        uint64_t t0 = mono_ms(), spent;
        if (outputs_over(c)) {
            c->disk_exceeded = 1;
            return 1;
        }
        spent = mono_ms() - t0;
        c->next_check_ms = mono_ms() + (spent * 10 > 1000 ? spent * 10 : 1000);
    }
    return c->hooks->should_stop ? c->hooks->should_stop(c->hooks->opaque) : 0;
}

static const kiln_runner_ops_t ops = {
    .started = on_started,
    .event = on_event,
    .should_stop = on_should_stop,
};

/* Reads the build's metadata file with the job's events ("events", see run_ctx_t) added;
 * NULL when there is neither. */
static char *read_result(const char *path, json_t *events)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    json_t *o;
    char *out;

    o = kiln_fs_read_file(path, METADATA_CAP, &text, &len, NULL) == 0
            ? json_loadb(text, len, 0, NULL)
            : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        if (json_object_size(events) == 0)
            return NULL;
        o = json_object();
    }
    if (json_object_size(events) > 0)
        json_object_set(o, "events", events);
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

/* The error code of the job's error event (job/stream.h), or "". */
static const char *error_code(const run_ctx_t *c)
{
    const char *code =
        json_string_value(json_object_get(json_object_get(c->events, "error"), "code"));
    return code ? code : "";
}

/* Fails the build for its disk limit (reason "disk_limit"); what: what went over. */
static void fail_disk(uint64_t disk, const char *what, kiln_job_outcome_t *out)
{
    char lim[32];

    kiln_size_format(disk, lim, sizeof(lim));
    snprintf(out->status, sizeof(out->status), "failed");
    snprintf(out->reason, sizeof(out->reason), "disk_limit");
    snprintf(out->error, sizeof(out->error), "the build went over its disk limit: %s %s", what,
             lim);
}

/* A failed job that ran out of disk space (its error code, or the server's own errno) is
 * failed with reason "no_space", so the cause is not a mystery "exited with status 1". */
static void fail_no_space(kiln_job_outcome_t *out)
{
    char prev[sizeof(out->error)];

    snprintf(prev, sizeof(prev), "%s", out->error);
    snprintf(out->status, sizeof(out->status), "failed");
    snprintf(out->reason, sizeof(out->reason), "no_space");
    snprintf(out->error, sizeof(out->error), "no space left on the build server's disk: %.400s",
             prev);
}

/* Fills the outcome of the finished job from how it ended and its error event's code;
 * returns 1 when it succeeded. */
static int judge(const run_ctx_t *c, const kiln_runner_result_t *rr, int timeout,
                 kiln_job_outcome_t *out)
{
    const char *code = error_code(c);
    const char *msg =
        json_string_value(json_object_get(json_object_get(c->events, "error"), "message"));

    if (rr->stopped) {
        snprintf(out->status, sizeof(out->status), "stopped");
        return 0;
    }
    snprintf(out->status, sizeof(out->status), "failed");
    if (rr->timed_out || strcmp(code, KILN_JOB_ERR_TIMEOUT) == 0) {
        snprintf(out->reason, sizeof(out->reason), "timeout");
        snprintf(out->error, sizeof(out->error), "the build ran longer than %d seconds", timeout);
        return 0;
    }
    if (rr->exit_code == 0 && rr->signal == 0) {
        snprintf(out->status, sizeof(out->status), "succeeded");
        return 1;
    }
    if (rr->signal)
        snprintf(out->error, sizeof(out->error), "kiln job run was killed by signal %d",
                 rr->signal);
    else if (msg)
        snprintf(out->error, sizeof(out->error), "%s", msg);
    else
        snprintf(out->error, sizeof(out->error), "kiln job run exited with status %d",
                 rr->exit_code);
    /* the reason from the job's typed error, never from its log */
    snprintf(out->reason, sizeof(out->reason), "%s",
             strcmp(code, KILN_JOB_ERR_SOURCE) == 0 ? "clone_failed" : "build_failed");
    if (strcmp(code, KILN_JOB_ERR_DISK_LIMIT) == 0)
        fail_disk(c->disk, "a RUN step wrote more than", out);
    else if (strcmp(code, KILN_JOB_ERR_NO_SPACE) == 0)
        fail_no_space(out);
    return 0;
}

#define MAX_FILES 1000

/* Lists regular files under dir (relative paths, sizes) into arr, at most MAX_FILES. */
static void list_files(int dfd, const char *prefix, json_t *arr, int depth)
{
    DIR *d;
    struct dirent *e;

    if (depth > 32 || (d = fdopendir(dfd)) == NULL) {
        close(dfd);
        return;
    }
    while ((e = readdir(d)) != NULL && json_array_size(arr) < MAX_FILES) {
        struct stat sb;
        _cleanup_free_ char *rel = NULL;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        rel = prefix[0] ? kiln_xasprintf("%s/%s", prefix, e->d_name) : kiln_xstrdup(e->d_name);
        if (S_ISREG(sb.st_mode)) {
            json_t *f = json_pack("{s:s,s:I}", "path", rel, "size", (json_int_t)sb.st_size);
            if (f)
                json_array_append_new(arr, f);
        } else if (S_ISDIR(sb.st_mode)) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                list_files(sub, rel, arr, depth + 1);
        }
    }
    closedir(d);
}

/* Keeps what the build wrote to ./kiln-out (static files, function packages) in
 * artifacts_dir and adds their list to the result. */
static void keep_files(const kiln_job_env_t *env, kiln_job_outcome_t *out)
{
    _cleanup_free_ char *src = kiln_xasprintf("%s/kiln-out", env->work_dir);
    json_t *res, *files = json_array();
    struct stat sb;
    int dfd;

    if (env->artifacts_dir == NULL || lstat(src, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        json_decref(files);
        return;
    }
    {
        _cleanup_free_ char *parent = kiln_xstrdup(env->artifacts_dir);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = '\0';
        if (kiln_fs_mkdir_p(parent, 0750, NULL) < 0 ||
            kiln_fs_rm_rf(env->artifacts_dir, NULL) < 0 || rename(src, env->artifacts_dir) < 0) {
            json_decref(files);
            return;
        }
    }
    dfd = open(env->artifacts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        list_files(dfd, "", files, 0);
    res = out->result ? json_loads(out->result, 0, NULL) : NULL;
    if (!json_is_object(res)) {
        json_decref(res);
        res = json_object();
    }
    json_object_set_new(res, "files", files);
    free(out->result);
    out->result = json_dumps(res, JSON_COMPACT);
    json_decref(res);
}

static void push_arg(char ***v, size_t *n, const char *s)
{
    *v = kiln_xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = kiln_xstrdup(s);
    (*v)[*n] = NULL;
}

void kiln_server_job_run(const kiln_job_env_t *env, json_t *request, json_t *secret_files,
                         const char *contexts_dir, const kiln_job_hooks_t *hooks,
                         kiln_job_outcome_t *out)
{
    _cleanup_free_ char *meta = kiln_xasprintf("%s/metadata.json", env->work_dir);
    _cleanup_free_ char *spec_json = NULL, *repo = NULL;
    _cleanup_strv_ char **argv = NULL;
    json_t *source = json_object_get(request, "source");
    _cleanup_free_ char *outputs = kiln_xasprintf("%s/kiln-out", env->work_dir);
    run_ctx_t ctx = {.hooks = hooks, .outputs = outputs, .events = json_object()};
    kiln_limit_values_t lim;
    kiln_runner_result_t rr = {0};
    kiln_error_t err = {0};
    int timeout = kiln_limits_wall_time(request, env->timeout_s);
    const char *url = json_string_value(json_object_get(source, "git"));
    kiln_request_ids_t ids = {.build_id = env->build_id,
                              .branch = json_string_value(json_object_get(source, "ref")),
                              .trigger = env->trigger ? env->trigger : "api"};
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    kiln_limits_values(json_object_get(request, "limits"), &lim);
    ctx.disk = lim.disk;
    if (kiln_fs_rm_rf(env->work_dir, &err) < 0 || kiln_fs_mkdir_p(env->work_dir, 0700, &err) < 0)
        goto error;
    /* CMD job run --spec-fd 3 --events-fd 4 [--root R] --metadata-file M --caller-group
     * [--contexts-dir D] [--build-option OPT]…: the job spec (the request placed in this
     * build's directory, with its ids and the git credential's file) in, its events out; the
     * job checks its source out itself; the server's build options stay the operator's */
    if (kiln_request_check_allow(request, env->entitlements, &err) < 0)
        goto error;
    if (url)
        ids.repo = repo = kiln_job_redact_url(url);
    if (kiln_request_job_spec(request, secret_files, &ids, &spec_json, &err) < 0)
        goto error;
    push_arg(&argv, &n, env->build_cmd);
    push_arg(&argv, &n, "job");
    push_arg(&argv, &n, "run");
    push_arg(&argv, &n, "--spec-fd");
    push_arg(&argv, &n, "3");
    push_arg(&argv, &n, "--events-fd");
    push_arg(&argv, &n, "4");
    if (env->kiln_root) {
        push_arg(&argv, &n, "--root");
        push_arg(&argv, &n, env->kiln_root);
    }
    push_arg(&argv, &n, "--metadata-file");
    push_arg(&argv, &n, meta);
    /* cancel and the timeout kill the runner's process group: the build must be in it */
    push_arg(&argv, &n, "--caller-group");
    if (contexts_dir) {
        push_arg(&argv, &n, "--contexts-dir");
        push_arg(&argv, &n, contexts_dir);
    }
    for (size_t i = 0; env->build_options && env->build_options[i]; i++) {
        push_arg(&argv, &n, "--build-option");
        push_arg(&argv, &n, env->build_options[i]);
    }
    if (kiln_runner_run_job(argv, env->child_env, env->work_dir, spec_json, env->log_path,
                            env->log_cap, timeout, &ops, &ctx, &rr, &err) < 0)
        goto error;
    out->result = read_result(meta, ctx.events);
    if (ctx.disk_exceeded || (rr.exit_code == 0 && !rr.stopped && outputs_over(&ctx)))
        fail_disk(ctx.disk, "its file outputs (./kiln-out) took more than", out);
    else if (judge(&ctx, &rr, timeout, out))
        keep_files(env, out);
    kiln_fs_rm_rf(env->work_dir, NULL);
    json_decref(ctx.events);
    return;
error:
    snprintf(out->status, sizeof(out->status), "failed");
    snprintf(out->reason, sizeof(out->reason), "error");
    snprintf(out->error, sizeof(out->error), "%s", err.msg);
    if (kiln_fs_errno_no_space(err.code))
        fail_no_space(out);
    kiln_fs_rm_rf(env->work_dir, NULL);
    json_decref(ctx.events);
}

void kiln_job_outcome_free(kiln_job_outcome_t *o)
{
    free(o->result);
    o->result = NULL;
}

int64_t kiln_job_bytes_pushed(const char *result_json)
{
    json_t *o = result_json ? json_loads(result_json, 0, NULL) : NULL;
    json_int_t n = json_integer_value(json_object_get(o, "kiln.bytes_pushed"));
    json_decref(o);
    return n > 0 ? (int64_t)n : 0;
}
