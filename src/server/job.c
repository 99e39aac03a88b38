#include "src/server/job.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "job/auto.h"
#include "job/stream.h"
#include "src/server/cli.h"
#include "src/server/limits.h"
#include "src/server/request.h"
#include "src/server/runner.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/size.h"

#define METADATA_CAP (1024 * 1024)

typedef struct run_ctx {
    const kiln_job_hooks_t *hooks;
    char commit[41];
    int checkout;           /* capture a commit line */
    const char *outputs;    /* the build's file outputs (./kiln-out), watched against disk */
    uint64_t disk;          /* limits.disk (0 = none) */
    uint64_t next_check_ms; /* monotonic */
    int disk_exceeded;
    /* what the job's events said, kept on the build record ("events" of its result):
     * {"phases": [NAME…], "pushed": [{"ref", "digest"}], "outputs": [...],
     *  "error": {"code", "message"}, "result": {"status", "digest", "code"}} */
    json_t *events;
    const char *last_phase;
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

/* A job's phase as the build's status: "build" is "building"; the server's own names pass;
 * NULL for the others (validate, done). */
static const char *job_status(const char *phase)
{
    static const char *const names[] = {"cloning", "building", "pushing", "uploading"};

    if (phase == NULL)
        return NULL;
    if (strcmp(phase, "build") == 0)
        return "building";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(phase, names[i]) == 0)
            return names[i];
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
    if (strcmp(type, "phase") == 0) {
        const char *p = job_status(json_string_value(json_object_get(ev, "phase")));
        if (p && p != c->last_phase) {
            c->last_phase = p;
            keep_event(c->events, "phases", json_string(p));
            if (c->hooks->phase)
                c->hooks->phase(c->hooks->opaque, p);
        }
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
        } else {
            json_object_set(x, "status", json_object_get(ev, "status"));
            json_object_set(x, "digest", json_object_get(ev, "digest"));
        }
        json_object_set_new(c->events, type, x);
    }
}

static int on_should_stop(void *opaque)
{
    run_ctx_t *c = opaque;

    /* the runner asks every 200 ms; the outputs are measured once a second, or less often
     * when a walk takes long (at most a tenth of the time walking) */
    if (c->disk && !c->checkout && mono_ms() >= c->next_check_ms) {
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

/* `kiln checkout` prints the commit it checked out as a line of 40 hex digits. */
static void on_line(void *opaque, const char *line)
{
    run_ctx_t *c = opaque;
    if (c->checkout && strlen(line) == 40 && strspn(line, "0123456789abcdef") == 40)
        memcpy(c->commit, line, 41);
}

static const kiln_runner_ops_t ops = {
    .started = on_started,
    .event = on_event,
    .should_stop = on_should_stop,
    .line = on_line,
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

/* Fills the outcome of a finished child; returns 1 when it succeeded. */
static int judge(const kiln_runner_result_t *rr, int timeout, const char *what,
                 const char *fail_reason, kiln_job_outcome_t *out)
{
    if (rr->stopped) {
        snprintf(out->status, sizeof(out->status), "stopped");
        return 0;
    }
    snprintf(out->status, sizeof(out->status), "failed");
    if (rr->timed_out) {
        snprintf(out->reason, sizeof(out->reason), "timeout");
        snprintf(out->error, sizeof(out->error), "the build ran longer than %d seconds", timeout);
    } else if (rr->exit_code != 0) {
        snprintf(out->reason, sizeof(out->reason), "%s", fail_reason);
        if (rr->signal)
            snprintf(out->error, sizeof(out->error), "%s was killed by signal %d", what,
                     rr->signal);
        else
            snprintf(out->error, sizeof(out->error), "%s exited with status %d", what,
                     rr->exit_code);
    } else {
        snprintf(out->status, sizeof(out->status), "succeeded");
        return 1;
    }
    return 0;
}

/* Whether the filesystem holding path has no block left for an unprivileged writer. */
static int fs_full(const char *path)
{
    struct statvfs sv;
    return path && statvfs(path, &sv) == 0 && sv.f_bavail == 0;
}

/* Whether the last 16 KiB of the build log hold needle (a child's own message). */
static int log_tail_has(const char *log_path, const char *needle)
{
    _cleanup_close_ int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    char buf[16384 + 1];
    struct stat st;
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) < 0)
        return 0;
    n = pread(fd, buf, sizeof(buf) - 1, st.st_size > 16384 ? st.st_size - 16384 : 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
}

/* Whether the job's error event (its build's error, not the log) says needle. */
static int error_event_has(const run_ctx_t *c, const char *needle)
{
    const char *msg =
        json_string_value(json_object_get(json_object_get(c->events, "error"), "message"));
    return msg && strstr(msg, needle) != NULL;
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

/* A failed job that ran out of disk space (its own error, the log's last lines, or a full
 * scratch/root filesystem) is failed with reason "no_space", so the cause is not a mystery
 * "exited with status 1". */
static void judge_space(const kiln_job_env_t *env, int err_code, kiln_job_outcome_t *out)
{
    char prev[sizeof(out->error)];

    if (strcmp(out->status, "failed") != 0 || strcmp(out->reason, "timeout") == 0)
        return;
    if (!kiln_fs_errno_no_space(err_code) && !fs_full(env->work_dir) && !fs_full(env->kiln_root) &&
        !log_tail_has(env->log_path, "No space left on device") &&
        !log_tail_has(env->log_path, "Disk quota exceeded"))
        return;
    snprintf(prev, sizeof(prev), "%s", out->error);
    snprintf(out->reason, sizeof(out->reason), "no_space");
    snprintf(out->error, sizeof(out->error), "no space left on the build server's disk: %.400s",
             prev);
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

/* What is left of the build's wall time (timeout seconds from t0; 0 = none) for its next
 * child: the checkout and the build share it. At least 1 s, so a spent one still ends. */
static int remaining(int timeout, time_t t0)
{
    time_t left = timeout - (time(NULL) - t0);
    return timeout == 0 ? 0 : left < 1 ? 1 : (int)left;
}

static void push_arg(char ***v, size_t *n, const char *s)
{
    *v = kiln_xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = kiln_xstrdup(s);
    (*v)[*n] = NULL;
}

/* The build's tenant as its cache namespace (utils/cachens): its cache mounts,
 * step cache entries, stat cache and git mirrors are the tenant's alone. */
static void push_namespace(char ***v, size_t *n, json_t *request)
{
    const char *tenant = json_string_value(json_object_get(request, "tenant"));
    if (tenant != NULL) {
        push_arg(v, n, "--cache-namespace");
        push_arg(v, n, tenant);
    }
}

void kiln_job_run(const kiln_job_env_t *env, json_t *request, json_t *secret_files,
                  const char *ctx_dir, const kiln_job_hooks_t *hooks, kiln_job_outcome_t *out)
{
    _cleanup_free_ char *meta = kiln_xasprintf("%s/metadata.json", env->work_dir);
    _cleanup_free_ char *src_dir = kiln_xasprintf("%s/src", env->work_dir);
    _cleanup_free_ char *context = NULL, *context_id = NULL, *spec_json = NULL;
    _cleanup_strv_ char **argv = NULL;
    json_t *source = json_object_get(request, "source");
    _cleanup_free_ char *outputs = kiln_xasprintf("%s/kiln-out", env->work_dir);
    run_ctx_t ctx = {.hooks = hooks, .outputs = outputs, .events = json_object()};
    kiln_limit_values_t lim;
    kiln_runner_result_t rr = {0};
    kiln_error_t err = {0};
    int timeout = kiln_limits_wall_time(request, env->timeout_s);
    time_t t0 = time(NULL);
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    kiln_limits_values(json_object_get(request, "limits"), &lim);
    ctx.disk = lim.disk;
    if (kiln_fs_rm_rf(env->work_dir, &err) < 0 || kiln_fs_mkdir_p(env->work_dir, 0700, &err) < 0)
        goto error;

    if (ctx_dir == NULL) {
        /* Check the source out: kiln checkout [--root R] URL#REF DIR */
        const char *url = json_string_value(json_object_get(source, "git"));
        const char *ref = json_string_value(json_object_get(source, "commit"));
        const char *sub = json_string_value(json_object_get(source, "subdir"));
        _cleanup_free_ char *spec = NULL;
        if (url == NULL) {
            kiln_error_set(&err, 0, "the request has no source");
            goto error;
        }
        if (ref == NULL)
            ref = json_string_value(json_object_get(source, "ref"));
        spec = ref ? kiln_xasprintf("%s#%s", url, ref) : kiln_xstrdup(url);
        push_arg(&argv, &n, env->build_cmd);
        push_arg(&argv, &n, "checkout");
        if (env->kiln_root) {
            push_arg(&argv, &n, "--root");
            push_arg(&argv, &n, env->kiln_root);
        }
        /* the git source policy of the build (server mode, allowlist, http) */
        for (size_t i = 0; env->build_options && env->build_options[i]; i++)
            if (kiln_server_checkout_option(env->build_options[i]))
                push_arg(&argv, &n, env->build_options[i]);
        push_namespace(&argv, &n, request);
        context_id = kiln_auto_git_context_id(url, sub);
        push_arg(&argv, &n, "--context-id");
        push_arg(&argv, &n, context_id);
        if (sub) {
            push_arg(&argv, &n, "--context-subdir");
            push_arg(&argv, &n, sub);
        }
        {
            /* the URL's credential: a 0600 file in the build's 0700 secrets directory,
             * named on the command line, never its value */
            const char *cred =
                json_string_value(json_object_get(secret_files, KILN_REQUEST_GIT_SECRET));
            if (cred) {
                push_arg(&argv, &n, "--credential-file");
                push_arg(&argv, &n, cred);
            }
        }
        push_arg(&argv, &n, spec);
        push_arg(&argv, &n, src_dir);
        ctx.checkout = 1;
        if (kiln_runner_run(argv, env->child_env, env->work_dir, env->log_path, env->log_cap,
                            timeout, &ops, &ctx, &rr, &err) < 0)
            goto error;
        kiln_strv_free(argv);
        argv = NULL;
        n = 0;
        if (!judge(&rr, timeout, "kiln checkout", "clone_failed", out)) {
            judge_space(env, 0, out);
            kiln_fs_rm_rf(env->work_dir, NULL);
            json_decref(ctx.events);
            return;
        }
        if (ctx.commit[0] && hooks->commit)
            hooks->commit(hooks->opaque, ctx.commit);
        ctx.checkout = 0;
        context = sub ? kiln_xasprintf("%s/%s", src_dir, sub) : kiln_xstrdup(src_dir);
        if (hooks->phase)
            hooks->phase(hooks->opaque, "building");
        /* the server's own phases, kept with the job's */
        keep_event(ctx.events, "phases", json_string("cloning"));
        keep_event(ctx.events, "phases", json_string("building"));
        ctx.last_phase = "building";
    } else {
        context = kiln_xstrdup(ctx_dir);
    }

    /* CMD job run --spec-fd 3 --events-fd 4 [--root R] --metadata-file M [--build-option
     * OPT]…: the job spec (the request placed in this build's directory, with its ids) in,
     * its events out; the server's build options stay the operator's */
    if (kiln_request_check_allow(request, env->entitlements, &err) < 0)
        goto error;
    {
        const char *ref = json_string_value(json_object_get(source, "ref"));
        _cleanup_free_ char *repo = NULL;
        const char *url = json_string_value(json_object_get(source, "git"));
        kiln_request_ids_t ids = {.build_id = env->build_id,
                                  .commit = ctx.commit[0] ? ctx.commit : NULL,
                                  .branch = ref,
                                  .trigger = env->trigger ? env->trigger : "api",
                                  .context_id = context_id};
        if (url)
            ids.repo = repo = kiln_job_redact_url(url);
        if (kiln_request_job_spec(request, context, secret_files, &ids, &spec_json, &err) < 0)
            goto error;
    }
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
    for (size_t i = 0; env->build_options && env->build_options[i]; i++) {
        push_arg(&argv, &n, "--build-option");
        push_arg(&argv, &n, env->build_options[i]);
    }
    if (kiln_runner_run_job(argv, env->child_env, env->work_dir, spec_json, env->log_path,
                            env->log_cap, remaining(timeout, t0), &ops, &ctx, &rr, &err) < 0)
        goto error;
    out->result = read_result(meta, ctx.events);
    if (ctx.disk_exceeded || (rr.exit_code == 0 && !rr.stopped && outputs_over(&ctx))) {
        fail_disk(ctx.disk, "its file outputs (./kiln-out) took more than", out);
    } else if (judge(&rr, timeout, "kiln build", "build_failed", out)) {
        keep_files(env, out);
    } else if (strcmp(out->reason, "build_failed") == 0 &&
               error_event_has(&ctx, "than the disk limit")) {
        fail_disk(ctx.disk, "a RUN step wrote more than", out);
    }
    judge_space(env, 0, out);
    kiln_fs_rm_rf(env->work_dir, NULL);
    json_decref(ctx.events);
    return;
error:
    snprintf(out->status, sizeof(out->status), "failed");
    snprintf(out->reason, sizeof(out->reason), "error");
    snprintf(out->error, sizeof(out->error), "%s", err.msg);
    judge_space(env, err.code, out);
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
