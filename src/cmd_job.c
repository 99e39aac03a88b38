/* kiln job run — runs one job spec (job/spec.h, JSON in) through the build path `kiln build`
 * uses, and reports JSON-lines events (job/stream.h) carrying the job's ids: what the server
 * and workers are meant to run instead of assembling `kiln build` arguments and reading its
 * log. The spec is read as a local spec (it comes from whoever runs kiln), or with --untrusted
 * as a tenant's (no host paths); it is checked completely before anything runs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/statcache.h"
#include "job/codec.h"
#include "job/request.h"
#include "job/run.h"
#include "job/source.h"
#include "job/stream.h"
#include "src/build_opts.h"
#include "src/build_report.h"
#include "src/build_spec.h"
#include "src/cli_gitpolicy.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/mem.h"

extern char **environ;

#define SPEC_MAX (1u << 20)
#define LINE_MAX_BYTES (64u << 10)
#define META_MAX (16u << 20)

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln job run [OPTIONS]\n\n"
            "Runs a job spec (JSON: the API's build request plus build_id, tenant, repo,\n"
            "commit, branch, trigger, plan, platform, cache) as `kiln build` would, and writes\n"
            "one JSON event per line: phase, step_start, step_end (cache_hit), log, output,\n"
            "pushed, error (with a code), result (last). Exit status as kiln build's.\n"
            "The job's source is put on disk first (a git checkout with the credential the\n"
            "spec names as secret .git, read from its file; an uploaded context).\n\n"
            "  --spec FILE         read the spec from FILE (- = stdin)\n"
            "  --spec-fd N         read the spec from file descriptor N\n"
            "  --events FILE       write the events to FILE (default: stdout)\n"
            "  --events-fd M       write the events to file descriptor M\n"
            "  --root DIR          kiln root (blob store and build cache)\n"
            "  --metadata-file F   keep the build's metadata (its completion event) in F\n"
            "  --caller-group      the build stays in this process group, which the caller\n"
            "                      ends (cancel) and times out (a server's child)\n"
            "  --secrets-dir DIR   secrets the spec names without a source: DIR/NAME (the\n"
            "                      git source's credential: DIR/.git)\n"
            "  --contexts-dir DIR  uploaded contexts (source.context ID): DIR/ID, or the\n"
            "                      tarball DIR/ID.tar\n"
            "  --untrusted         the spec is a tenant's (an API request's): no host paths\n"
            "                      (directory source, plan file, secret files, paths outside)\n"
            "  --build-option ARG  pass ARG to the build as a `kiln build` option (repeatable;\n"
            "                      the operator's: e.g. --build-option=--insecure-registry=H)\n");
}

typedef struct run {
    const kiln_job_spec_t *spec;
    int events_fd;
    int failed_write;  /* an event could not be written: reported once */
    long long timeout; /* seconds the build may take (0 = none) */
    int timed_out;     /* the build's process group was killed at the timeout */
    /* --caller-group: the build stays in our process group, so that the caller's kill of
     * the group (a server's cancel, its timeout, its crash recovery) ends all of it; the
     * timeout is then the caller's */
    int caller_group;
    struct timespec t0;  /* when the job started: the timeout counts the checkout too */
    char build_code[32]; /* the build's error event: its code and message */
    char *build_msg;
} run_t;

/* Writes ev (reference stolen). An events stream that stops taking events does not stop
 * the build; it is reported on stderr once. */
static void send_ev(run_t *r, json_t *ev)
{
    kiln_error_t err = {0};

    if (kiln_job_event_write(r->events_fd, ev, &err) < 0 && !r->failed_write) {
        r->failed_write = 1;
        fprintf(stderr, "kiln job: %s\n", err.msg);
    }
    json_decref(ev);
}

static void send_phase(run_t *r, const char *phase)
{
    json_t *ev = kiln_job_event_new(r->spec, "phase");
    json_object_set_new(ev, "phase", json_string(phase));
    send_ev(r, ev);
}

/* An error event (with the failing step's details when a step failed: job/failure.h),
 * then the result: the end of a failed job. */
static void send_failure_at(run_t *r, const char *code, const char *message, json_t *failure)
{
    json_t *ev = kiln_job_event_new(r->spec, "error");
    json_object_set_new(ev, "code", json_string(code));
    json_object_set_new(ev, "message", json_string(message));
    if (json_is_object(failure))
        json_object_set(ev, "failure", failure);
    send_ev(r, ev);
    ev = kiln_job_event_new(r->spec, "result");
    json_object_set_new(ev, "status", json_string("failed"));
    json_object_set_new(ev, "code", json_string(code));
    send_ev(r, ev);
}

static void send_failure(run_t *r, const char *code, const char *message)
{
    send_failure_at(r, code, message, NULL);
}

/* One line of the build's stderr/stdout: a log event, whatever it says (nothing the build
 * or its steps print is taken for an event). */
static void relay_log(run_t *r, const char *line)
{
    json_t *ev = kiln_job_event_new(r->spec, "log");
    json_object_set_new(ev, "text", json_string(line));
    send_ev(r, ev);
}

/* One line of the build's typed events (--events-fd): a phase is the job's, a step event
 * becomes a step_start/step_end/log event with the job's ids, the build's error is kept for
 * the job's own (sent last, with the result). Anything else is dropped. */
static void relay_event(run_t *r, const char *line)
{
    json_t *in = json_loads(line, JSON_REJECT_DUPLICATES, NULL), *ev;
    const char *type = json_string_value(json_object_get(in, "event"));

    if (type && strcmp(type, "phase") == 0 && json_is_string(json_object_get(in, "phase"))) {
        send_phase(r, json_string_value(json_object_get(in, "phase")));
    } else if (type && strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(in, "code"));
        const char *msg = json_string_value(json_object_get(in, "message"));
        snprintf(r->build_code, sizeof(r->build_code), "%s", code ? code : "");
        free(r->build_msg);
        r->build_msg = msg ? kiln_xstrdup(msg) : NULL;
    } else if ((ev = kiln_job_event_from_progress(r->spec, line)) != NULL) {
        send_ev(r, ev);
    }
    json_decref(in);
}

/* A stream of lines from the build (its log, or its events): split, each line handed to
 * its relay; a line longer than LINE_MAX_BYTES is cut there (the rest comes as further
 * lines). */
typedef struct stream {
    int fd;
    char *buf;
    size_t len;
    void (*line)(run_t *r, const char *line);
} stream_t;

/* Reads what is there; 0 at the end of the stream. */
static int stream_read(run_t *r, stream_t *st)
{
    ssize_t n = read(st->fd, st->buf + st->len, LINE_MAX_BYTES - st->len);
    char *nl, *start = st->buf;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (n <= 0) {
        if (st->len > 0) {
            st->buf[st->len] = '\0';
            st->line(r, st->buf);
            st->len = 0;
        }
        return 0;
    }
    st->len += (size_t)n;
    while ((nl = memchr(start, '\n', st->len - (size_t)(start - st->buf))) != NULL) {
        *nl = '\0';
        st->line(r, start);
        start = nl + 1;
    }
    st->len -= (size_t)(start - st->buf);
    memmove(st->buf, start, st->len);
    if (st->len == LINE_MAX_BYTES) {
        st->buf[st->len] = '\0';
        st->line(r, st->buf);
        st->len = 0;
    }
    return 1;
}

/* Reads the build's log and events until both close. At the job's timeout (counted from the
 * job's start, its checkout included) the build's process group is killed; what it wrote
 * until then is still read. */
static void relay(run_t *r, int log_fd, int ev_fd, pid_t pgid)
{
    stream_t st[2] = {{.fd = log_fd, .line = relay_log}, {.fd = ev_fd, .line = relay_event}};
    int open_n = 2;
    st[0].buf = kiln_xmalloc(LINE_MAX_BYTES + 1);
    st[1].buf = kiln_xmalloc(LINE_MAX_BYTES + 1);
    while (open_n > 0) {
        struct pollfd pfd[2] = {{.fd = st[0].fd, .events = POLLIN},
                                {.fd = st[1].fd, .events = POLLIN}};
        int wait_ms = -1;
        if (r->timeout > 0 && !r->timed_out) {
            struct timespec now;
            long long left;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left = r->timeout * 1000 - ((long long)(now.tv_sec - r->t0.tv_sec) * 1000 +
                                        (now.tv_nsec - r->t0.tv_nsec) / 1000000);
            if (left <= 0) {
                kill(-pgid, SIGKILL);
                r->timed_out = 1;
            } else {
                wait_ms = left > 60000 ? 60000 : (int)left;
            }
        }
        if (poll(pfd, 2, wait_ms) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (st[i].fd >= 0 && pfd[i].revents && !stream_read(r, &st[i])) {
                st[i].fd = -1;
                open_n--;
            }
        }
    }
    free(st[0].buf);
    free(st[1].buf);
}

/* The outputs of the build's metadata (its completion event): one output event each, and a
 * pushed event for each reference sent to a registry. */
static void send_outputs(run_t *r, json_t *meta)
{
    json_t *outs = json_object_get(json_object_get(meta, "kiln.event"), "outputs");
    const char *kind;
    json_t *list;

    json_object_foreach(outs, kind, list)
    {
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
        {
            json_t *ev = kiln_job_event_new(r->spec, "output");
            json_object_update(ev, item);
            if (json_object_get(item, "type") == NULL)
                json_object_set_new(ev, "type", json_string(kind));
            json_object_set_new(ev, "event", json_string("output"));
            send_ev(r, ev);
            if (strcmp(json_string_value(json_object_get(item, "type")) ?: "", "registry") == 0) {
                ev = kiln_job_event_new(r->spec, "pushed");
                json_object_set(ev, "ref", json_object_get(item, "ref"));
                json_object_set(ev, "digest", json_object_get(item, "digest"));
                send_ev(r, ev);
            }
        }
    }
}

/* Runs the job's build (job/run.h, the entry point kiln build calls too) in a child: its
 * terminal lines (stdout, stderr) relayed as log events and its typed events (ro->ud's
 * events_fd, ev[1]) as the job's. Returns its exit status. */
static int run_build(run_t *r, const kiln_job_spec_t *spec, const kiln_job_run_opts_t *ro,
                     int ev[2])
{
    int p[2], status = 0;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        kiln_job_run_result_t res;
        kiln_error_t err = {0};
        int devnull;
        /* its own process group: a timeout kills the build and everything it started */
        if (!r->caller_group)
            setpgid(0, 0);
        else
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* the build writes its log here and its events to ev[1]; only the parent writes
         * the job's events */
        if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(p[1], STDOUT_FILENO) < 0 ||
            dup2(p[1], STDERR_FILENO) < 0)
            _exit(KILN_EXIT_FAIL);
        close(ev[0]);
        if (r->events_fd > STDERR_FILENO)
            close(r->events_fd);
        signal(SIGPIPE, SIG_DFL);
        status = kiln_job_run(spec, ro, &res, &err) < 0 ? KILN_EXIT_FAIL : KILN_EXIT_OK;
        fflush(NULL);
        _exit(status);
    }
    if (!r->caller_group)
        setpgid(pid, pid); /* also here: the group exists before a kill, whoever runs first */
    close(p[1]);
    close(ev[1]);
    ev[1] = -1;
    relay(r, p[0], ev[0], pid);
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return KILN_EXIT_FAIL;
}

/* The operator's `kiln build` options (--build-option, never a spec's) read by kiln build's
 * own parser into *op and added to the spec (registries, isolation, limits as defaults, …).
 * -1 after a usage error (reported). */
static int operator_opts(const char *const *extra, size_t n, kiln_build_opts_t *op,
                         kiln_job_spec_t *spec)
{
    _cleanup_free_ char **av = kiln_xzalloc((n + 2) * sizeof(char *));
    kiln_error_t err = {0};

    av[0] = (char *)"build";
    for (size_t i = 0; i < n; i++)
        av[i + 1] = (char *)extra[i];
    if (n > 0 && (kiln_build_opts_parse((int)n + 1, av, op) != KILN_EXIT_OK || op->help))
        return -1;
    if (n > 0 && optind != (int)n + 1) {
        kiln_cli_usage_error("job run", "--build-option %s: not an option", av[optind]);
        return -1;
    }
    if (kiln_build_spec_operator(op, spec, &err) < 0) {
        kiln_cli_usage_error("job run", "%s", err.msg);
        return -1;
    }
    return 0;
}

/* The checkout's git policy: the operator's build options that are checkout options too
 * (kiln_cli_gitpolicy_arg). -1 after a usage error. */
static int git_policy(const char *const *extra, kiln_cli_gitpolicy_t *gp)
{
    for (size_t i = 0; extra && extra[i]; i++)
        if (kiln_cli_gitpolicy_arg(gp, "job run", extra[i]) < 0)
            return -1;
    return 0;
}

/* Puts a git or uploaded source on disk (job/source.h) and makes the spec build that tree:
 * the commit the checkout resolved and the context's stat cache identity go with the job's
 * events and the build from here on; the git credential is dropped. A directory source is
 * left to the build (it reads "-" from stdin itself). */
static int place_source(run_t *r, kiln_job_spec_t *spec, const kiln_job_source_opts_t *so,
                        kiln_auto_source_t *src, kiln_error_t *err)
{
    int whole;

    if (spec->source_kind != KILN_JOB_SOURCE_GIT && spec->source_kind != KILN_JOB_SOURCE_CONTEXT)
        return 0;
    if (spec->source_kind == KILN_JOB_SOURCE_GIT)
        send_phase(r, "checkout");
    if (kiln_job_source_fetch(spec, so, src, err) < 0)
        return -1;
    if (spec->commit == NULL && src->commit)
        spec->commit = kiln_xstrdup(src->commit);
    if (spec->repo == NULL && spec->source_kind == KILN_JOB_SOURCE_GIT)
        spec->repo = kiln_job_redact_url(spec->source);
    if (src->commit) {
        /* who wrote the commit checked out and what it says, for the build's record */
        json_t *ev = kiln_job_event_new(spec, "source");
        if (src->author)
            json_object_set_new(ev, "author", json_string(src->author));
        if (src->message)
            json_object_set_new(ev, "message", json_string(src->message));
        send_ev(r, ev);
    }
    if (spec->context_id == NULL && src->context_id)
        spec->context_id = kiln_xstrdup(src->context_id);
    if (src->context_id) {
        /* a kept tree wrote only the changed files: the stat cache finds the others */
        _cleanup_free_ char *line =
            src->kept_lock ? kiln_xasprintf("checkout: the kept work tree updated in place (%llu "
                                            "files written)",
                                            (unsigned long long)src->notes.noted)
                           : kiln_xasprintf("stat cache: %llu files noted, %llu kept their hash",
                                            (unsigned long long)src->notes.noted,
                                            (unsigned long long)src->notes.kept);
        relay_log(r, line);
    }
    if (src->warning)
        relay_log(r, src->warning);
    kiln_job_source_drop_credential(spec);
    /* an auto build of a subdirectory sees the whole tree (a workspace package is built
     * from the repository's root); any other build's context is the subdirectory */
    whole = spec->dockerfile == NULL && src->subdir && kiln_auto_wanted(src->dir, NULL, spec->plan);
    free(spec->source);
    free(spec->ref);
    free(spec->source_commit);
    spec->ref = spec->source_commit = NULL;
    spec->source = kiln_xstrdup(whole ? src->top : src->dir);
    if (!whole) {
        free(spec->subdir);
        spec->subdir = NULL;
    }
    spec->source_kind = KILN_JOB_SOURCE_DIR;
    return 0;
}

/* Reads the spec text from --spec FILE, --spec-fd N or stdin. */
static int read_spec(const char *file, int fd, char **text, size_t *len, kiln_error_t *err)
{
    if (file && strcmp(file, "-") != 0)
        return kiln_fs_read_file(file, SPEC_MAX, text, len, err);
    return kiln_fs_read_fd(fd >= 0 ? fd : STDIN_FILENO, SPEC_MAX, text, len, err);
}

static int parse_fd(const char *s, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 65535 || fcntl((int)v, F_GETFD) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int job_run(int argc, char **argv)
{
    enum {
        O_SPEC = 256,
        O_SPEC_FD,
        O_EVENTS,
        O_EVENTS_FD,
        O_ROOT,
        O_SECRETS,
        O_BUILD_OPT,
        O_UNTRUSTED,
        O_METADATA,
        O_CALLER_GROUP,
        O_CONTEXTS
    };
    static const struct option lopts[] = {{"spec", required_argument, NULL, O_SPEC},
                                          {"spec-fd", required_argument, NULL, O_SPEC_FD},
                                          {"events", required_argument, NULL, O_EVENTS},
                                          {"events-fd", required_argument, NULL, O_EVENTS_FD},
                                          {"root", required_argument, NULL, O_ROOT},
                                          {"secrets-dir", required_argument, NULL, O_SECRETS},
                                          {"build-option", required_argument, NULL, O_BUILD_OPT},
                                          {"untrusted", no_argument, NULL, O_UNTRUSTED},
                                          {"metadata-file", required_argument, NULL, O_METADATA},
                                          {"caller-group", no_argument, NULL, O_CALLER_GROUP},
                                          {"contexts-dir", required_argument, NULL, O_CONTEXTS},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *spec_file = NULL, *events_file = NULL, *root = NULL, *secrets_dir = NULL,
               *metadata = NULL, *contexts_dir = NULL;
    kiln_cli_gitpolicy_t gp = {0};
    kiln_auto_source_t src = {0};
    int spec_fd = -1, c, rc = KILN_EXIT_FAIL;
    unsigned flags = KILN_JOB_JSON_LOCAL;
    run_t r = {.events_fd = STDOUT_FILENO};
    kiln_job_spec_t spec = {0};
    kiln_error_t err = {0};
    _cleanup_close_ int events_own = -1;
    int bev[2] = {-1, -1};
    _cleanup_free_ char *text = NULL, *tmp = NULL, *meta_path = NULL, *meta_text = NULL;
    kiln_build_opts_t op;
    kiln_job_run_opts_t ro;
    _cleanup_free_ const char **extra = NULL;
    size_t n_extra = 0;
    size_t len = 0;
    json_t *meta = NULL, *ev;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_SPEC:
            spec_file = optarg;
            break;
        case O_SPEC_FD:
            if (parse_fd(optarg, &spec_fd) < 0)
                return kiln_cli_usage_error("job run", "--spec-fd %s: not an open descriptor",
                                            optarg);
            break;
        case O_EVENTS:
            events_file = optarg;
            break;
        case O_EVENTS_FD:
            if (parse_fd(optarg, &r.events_fd) < 0)
                return kiln_cli_usage_error("job run", "--events-fd %s: not an open descriptor",
                                            optarg);
            break;
        case O_ROOT:
            root = optarg;
            break;
        case O_SECRETS:
            secrets_dir = optarg;
            break;
        case O_UNTRUSTED:
            flags = 0;
            break;
        case O_METADATA:
            metadata = optarg;
            break;
        case O_CALLER_GROUP:
            r.caller_group = 1;
            break;
        case O_CONTEXTS:
            contexts_dir = optarg;
            break;
        case O_BUILD_OPT:
            if (optarg[0] != '-')
                return kiln_cli_usage_error("job run", "--build-option %s: not an option", optarg);
            extra = kiln_xrealloc(extra, (n_extra + 2) * sizeof(*extra));
            extra[n_extra++] = optarg;
            extra[n_extra] = NULL;
            break;
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            return KILN_EXIT_USAGE;
        }
    }
    if (optind != argc)
        return kiln_cli_usage_error("job run", "unexpected argument '%s'", argv[optind]);
    if (spec_file && spec_fd >= 0)
        return kiln_cli_usage_error("job run", "--spec and --spec-fd exclude each other");
    if (git_policy(extra, &gp) < 0)
        return KILN_EXIT_USAGE;
    if (events_file) {
        events_own = open(events_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (events_own < 0) {
            kiln_error_set(&err, errno, "opening %s", events_file);
            return kiln_cli_fail(&err);
        }
        r.events_fd = events_own;
    }
    signal(SIGPIPE, SIG_IGN);

    if (read_spec(spec_file, spec_fd, &text, &len, &err) < 0 ||
        kiln_job_parse(text, len, flags, &spec, NULL, &err) < 0) {
        send_failure(&r, KILN_JOB_ERR_INVALID_SPEC, err.msg);
        fprintf(stderr, "kiln job run: %s\n", err.msg);
        return KILN_EXIT_USAGE;
    }
    r.spec = &spec;
    kiln_build_opts_init(&op);
    {
        const char *max = kiln_env_get(environ, "KILN_STAT_CACHE_MAX");
        if (max && kiln_statcache_parse_max(max, &op.stat_cache_max, &err) < 0) {
            kiln_error_prefix(&err, "KILN_STAT_CACHE_MAX");
            goto internal;
        }
    }
    if (operator_opts(extra, n_extra, &op, &spec) < 0) {
        send_failure(&r, KILN_JOB_ERR_INVALID_SPEC, "the operator's --build-option is not valid");
        rc = KILN_EXIT_USAGE;
        goto out;
    }
    /* the smaller of the request's timeout and its wall time limit */
    clock_gettime(CLOCK_MONOTONIC, &r.t0);
    r.timeout = spec.timeout_seconds;
    if (spec.limits.wall_time && (r.timeout == 0 || (long long)spec.limits.wall_time < r.timeout))
        r.timeout = (long long)spec.limits.wall_time;
    if (r.caller_group)
        r.timeout = 0;
    send_phase(&r, "validate");
    {
        const char *tdir = getenv("TMPDIR");
        if (kiln_fs_mkdtemp(tdir && *tdir ? tdir : "/tmp", "kiln-job-", &tmp, &err) < 0)
            goto internal;
    }
    meta_path = metadata ? kiln_xstrdup(metadata) : kiln_xasprintf("%s/metadata.json", tmp);
    {
        kiln_job_source_opts_t so = {.root = root,
                                     .env = environ,
                                     .git_policy = &gp.policy,
                                     .contexts_dir = contexts_dir,
                                     .secrets_dir = secrets_dir};

        so.stat_cache_max = op.stat_cache_max;
        if (place_source(&r, &spec, &so, &src, &err) < 0) {
            send_failure(
                &r, kiln_fs_errno_no_space(err.code) ? KILN_JOB_ERR_NO_SPACE : KILN_JOB_ERR_SOURCE,
                err.msg);
            fprintf(stderr, "kiln job run: %s\n", err.msg);
            rc = KILN_EXIT_FAIL;
            goto out;
        }
    }
    /* close-on-exec: the build is this process forked, never an exec, so it keeps the
     * descriptor while what its steps run does not */
    if (pipe2(bev, O_CLOEXEC) < 0) {
        kiln_error_set(&err, errno, "a pipe for the build's events");
        goto internal;
    }
    {
        /* what the build will be given is checked before it starts: a secret without a
         * source, a git credential left in the spec */
        kiln_job_request_t jr = {0};
        if (kiln_job_request_make(&spec, secrets_dir, &jr, &err) < 0) {
            send_failure(&r, KILN_JOB_ERR_INVALID_SPEC, err.msg);
            fprintf(stderr, "kiln job run: %s\n", err.msg);
            rc = KILN_EXIT_USAGE;
            goto out;
        }
        kiln_job_request_clear(&jr);
    }
    op.events_fd = bev[1];
    op.progress = KILN_PROGRESS_JSON;
    op.root = root;
    op.metadata_file = meta_path;
    kiln_build_run_opts(&op, &ro);
    ro.secrets_dir = secrets_dir;
    ro.source_author = src.author;
    ro.source_message = src.message;
    rc = run_build(&r, &spec, &ro, bev);
    if (rc < 0) {
        kiln_error_set(&err, errno, "starting the build");
        goto internal;
    }
    if (kiln_fs_read_file(meta_path, META_MAX, &meta_text, &len, NULL) == 0)
        meta = json_loadb(meta_text, len, 0, NULL);
    send_outputs(&r, meta);
    send_phase(&r, "done");
    if (r.timed_out) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the job ran longer than its %lld seconds (stopped)", r.timeout);
        send_failure(&r, KILN_JOB_ERR_TIMEOUT, msg);
        rc = KILN_EXIT_FAIL;
    } else if (rc == KILN_EXIT_OK) {
        ev = kiln_job_event_new(&spec, "result");
        json_object_set_new(ev, "status", json_string("succeeded"));
        json_object_set(ev, "digest", json_object_get(meta, "containerimage.digest"));
        if (json_object_get(json_object_get(meta, "kiln.event"), "image_size"))
            json_object_set(ev, "image_size",
                            json_object_get(json_object_get(meta, "kiln.event"), "image_size"));
        send_ev(&r, ev);
    } else {
        /* the build's own typed error (its code: no_space, disk_limit, build_failed) */
        const char *msg =
            r.build_msg
                ? r.build_msg
                : json_string_value(json_object_get(json_object_get(meta, "kiln.event"), "error"));
        send_failure_at(&r,
                        rc == KILN_EXIT_USAGE ? KILN_JOB_ERR_INVALID_SPEC
                        : r.build_code[0]     ? r.build_code
                                              : KILN_JOB_ERR_BUILD_FAILED,
                        msg ? msg : "the build failed (see its log events)",
                        json_object_get(json_object_get(meta, "kiln.event"), "failure"));
    }
    goto out;
internal:
    send_failure(&r, KILN_JOB_ERR_INTERNAL, err.msg);
    kiln_cli_fail(&err);
    rc = KILN_EXIT_FAIL;
out:
    for (int i = 0; i < 2; i++)
        if (bev[i] >= 0)
            close(bev[i]);
    free(r.build_msg);
    kiln_build_opts_clear(&op);
    json_decref(meta);
    kiln_auto_source_release(&src);
    if (tmp)
        kiln_fs_rm_rf(tmp, NULL);
    kiln_job_spec_clear(&spec);
    return rc;
}

int kiln_cmd_job(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return job_run(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return KILN_EXIT_OK;
    }
    return kiln_cli_usage_error("job", "the subcommand is 'run'");
}
