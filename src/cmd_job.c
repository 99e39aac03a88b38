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

#include "job/argv.h"
#include "job/codec.h"
#include "job/stream.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

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
            "pushed, error (with a code), result (last). Exit status as kiln build's.\n\n"
            "  --spec FILE         read the spec from FILE (- = stdin)\n"
            "  --spec-fd N         read the spec from file descriptor N\n"
            "  --events FILE       write the events to FILE (default: stdout)\n"
            "  --events-fd M       write the events to file descriptor M\n"
            "  --root DIR          kiln root (blob store and build cache)\n"
            "  --metadata-file F   keep the build's metadata (its completion event) in F\n"
            "  --caller-group      the build stays in this process group, which the caller\n"
            "                      ends (cancel) and times out (a server's child)\n"
            "  --secrets-dir DIR   secrets the spec names without a source: DIR/NAME\n"
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
} run_t;

/* Writes ev (reference stolen). An events stream that stops taking events does not stop
 * the build; it is reported on stderr once. */
static void send(run_t *r, json_t *ev)
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
    send(r, ev);
}

/* An error event, then the result: the end of a failed job. */
static void send_failure(run_t *r, const char *code, const char *message)
{
    json_t *ev = kiln_job_event_new(r->spec, "error");
    json_object_set_new(ev, "code", json_string(code));
    json_object_set_new(ev, "message", json_string(message));
    send(r, ev);
    ev = kiln_job_event_new(r->spec, "result");
    json_object_set_new(ev, "status", json_string("failed"));
    json_object_set_new(ev, "code", json_string(code));
    send(r, ev);
}

/* One line of the build's stderr/stdout: its progress events become step events, anything
 * else a log event. */
static void relay_line(run_t *r, const char *line)
{
    json_t *ev = kiln_job_event_from_progress(r->spec, line);

    if (ev == NULL) {
        ev = kiln_job_event_new(r->spec, "log");
        json_object_set_new(ev, "text", json_string(line));
    }
    send(r, ev);
}

/* Reads the build's output until it closes, line by line (a line longer than
 * LINE_MAX_BYTES is cut there: the rest comes as further lines). At the job's timeout the
 * build's process group is killed; what it wrote until then is still read. */
static void relay(run_t *r, int fd, pid_t pgid)
{
    char *buf = kiln_xmalloc(LINE_MAX_BYTES + 1);
    size_t len = 0;
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int wait_ms = -1;
        ssize_t n;
        char *nl, *start = buf;
        if (r->timeout > 0 && !r->timed_out) {
            struct timespec now;
            long long left;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left = r->timeout * 1000 - ((long long)(now.tv_sec - t0.tv_sec) * 1000 +
                                        (now.tv_nsec - t0.tv_nsec) / 1000000);
            if (left <= 0) {
                kill(-pgid, SIGKILL);
                r->timed_out = 1;
            } else {
                wait_ms = left > 60000 ? 60000 : (int)left;
            }
        }
        if (poll(&pfd, 1, wait_ms) == 0)
            continue;
        n = read(fd, buf + len, LINE_MAX_BYTES - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
            *nl = '\0';
            relay_line(r, start);
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == LINE_MAX_BYTES) {
            buf[len] = '\0';
            relay_line(r, buf);
            len = 0;
        }
    }
    if (len > 0) {
        buf[len] = '\0';
        relay_line(r, buf);
    }
    free(buf);
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
            send(r, ev);
            if (strcmp(json_string_value(json_object_get(item, "type")) ?: "", "registry") == 0) {
                ev = kiln_job_event_new(r->spec, "pushed");
                json_object_set(ev, "ref", json_object_get(item, "ref"));
                json_object_set(ev, "digest", json_object_get(item, "digest"));
                send(r, ev);
            }
        }
    }
}

/* Runs `kiln build argv` in a child (the same code as the command), its stdout and stderr
 * relayed as events. Returns its exit status. */
static int run_build(run_t *r, char **argv)
{
    int p[2], status = 0, argc = 0;
    pid_t pid;

    while (argv[argc])
        argc++;
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
        int devnull;
        /* its own process group: a timeout kills the build and everything it started */
        if (!r->caller_group)
            setpgid(0, 0);
        else
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* the build writes its progress and result here; only the parent writes events */
        if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(p[1], STDOUT_FILENO) < 0 ||
            dup2(p[1], STDERR_FILENO) < 0)
            _exit(KILN_EXIT_FAIL);
        if (r->events_fd > STDERR_FILENO)
            close(r->events_fd);
        signal(SIGPIPE, SIG_DFL);
        status = kiln_cmd_build(argc, argv);
        fflush(NULL);
        _exit(status);
    }
    if (!r->caller_group)
        setpgid(pid, pid); /* also here: the group exists before a kill, whoever runs first */
    close(p[1]);
    relay(r, p[0], pid);
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return KILN_EXIT_FAIL;
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
        O_CALLER_GROUP
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
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    const char *spec_file = NULL, *events_file = NULL, *root = NULL, *secrets_dir = NULL,
               *metadata = NULL;
    int spec_fd = -1, c, rc = KILN_EXIT_FAIL;
    unsigned flags = KILN_JOB_JSON_LOCAL;
    run_t r = {.events_fd = STDOUT_FILENO};
    kiln_job_spec_t spec = {0};
    kiln_error_t err = {0};
    _cleanup_close_ int events_own = -1;
    _cleanup_free_ char *text = NULL, *tmp = NULL, *meta_path = NULL, *meta_text = NULL;
    _cleanup_strv_ char **bargv = NULL;
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
    /* the smaller of the request's timeout and its wall time limit */
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
        kiln_job_argv_opts_t ao = {.root = root,
                                   .metadata_file = meta_path,
                                   .secrets_dir = secrets_dir,
                                   .progress = "json",
                                   .extra = extra};
        if (kiln_job_build_argv(&spec, &ao, &bargv, &err) < 0) {
            send_failure(&r, KILN_JOB_ERR_INVALID_SPEC, err.msg);
            fprintf(stderr, "kiln job run: %s\n", err.msg);
            rc = KILN_EXIT_USAGE;
            goto out;
        }
    }
    send_phase(&r, "build");
    rc = run_build(&r, bargv);
    if (rc < 0) {
        kiln_error_set(&err, errno, "starting the build");
        goto internal;
    }
    if (kiln_fs_read_file(meta_path, META_MAX, &meta_text, &len, NULL) == 0)
        meta = json_loadb(meta_text, len, 0, NULL);
    {
        /* the commit the checkout resolved, for the events from here on */
        const char *commit = json_string_value(json_object_get(
            json_object_get(json_object_get(meta, "kiln.event"), "source"), "commit"));
        if (spec.commit == NULL && commit && strspn(commit, "0123456789abcdef") == strlen(commit))
            spec.commit = kiln_xstrdup(commit);
    }
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
        send(&r, ev);
    } else {
        const char *msg =
            json_string_value(json_object_get(json_object_get(meta, "kiln.event"), "error"));
        send_failure(&r,
                     rc == KILN_EXIT_USAGE ? KILN_JOB_ERR_INVALID_SPEC : KILN_JOB_ERR_BUILD_FAILED,
                     msg ? msg : "the build failed (see its log events)");
    }
    goto out;
internal:
    send_failure(&r, KILN_JOB_ERR_INTERNAL, err.msg);
    kiln_cli_fail(&err);
    rc = KILN_EXIT_FAIL;
out:
    json_decref(meta);
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
