/* kiln server — one child process in its own process group (see runner.h): its output into
 * the build's capped log, a job's spec on descriptor 3, its events read from descriptor 4. */
#include "src/server/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/events.h"
#include "src/server/modes.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

extern char **environ;

uint64_t kiln_runner_start_ticks(pid_t pid)
{
    char path[64], buf[1024];
    _cleanup_close_ int fd = -1;
    ssize_t n;
    char *p;
    int field = 2;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may contain spaces and ')': fields start after the last ')'. */
    p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

void kiln_runner_kill_stale(pid_t pgid, uint64_t start_ticks)
{
    uint64_t now;

    if (pgid <= 1)
        return;
    now = kiln_runner_start_ticks(pgid);
    /* Leader still there but it is another process: the group is not ours. */
    if (now != 0 && start_ticks != 0 && now != start_ticks)
        return;
    kill(-pgid, SIGKILL);
}

int kiln_runner_log_note(const char *log_path, const char *line, kiln_error_t *err)
{
    _cleanup_close_ int fd =
        open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", log_path);
    if (kiln_fs_write_all(fd, line, strlen(line), err) < 0 ||
        kiln_fs_write_all(fd, "\n", 1, err) < 0)
        return -1;
    return 0;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct run_state {
    int log_fd;
    size_t logged;
    size_t cap;
    int truncated;
    const kiln_runner_ops_t *ops;
    void *opaque;
    /* the job's events (kiln job run --events-fd): one JSON object per line */
    char *ev_line;
    size_t ev_len;
    int ev_overlong; /* the current line went past EVENT_MAX: dropped */
} run_state_t;

#define EVENT_MAX (256u << 10)

static void consume(run_state_t *st, const char *data, size_t n);

/* One event line of the job: its log and step events go to the build log (as the plain
 * lines `kiln build` prints), then the event to ops->event. A line that is not a JSON
 * object is dropped: the events stream carries events only. */
static void feed_event(run_state_t *st)
{
    json_t *ev;
    const char *type;

    st->ev_line[st->ev_len] = '\0';
    ev = json_loads(st->ev_line, JSON_REJECT_DUPLICATES, NULL);
    st->ev_len = 0;
    if (!json_is_object(ev)) {
        json_decref(ev);
        return;
    }
    type = json_string_value(json_object_get(ev, "event"));
    if (type && (strcmp(type, "log") == 0 || strcmp(type, "step_start") == 0 ||
                 strcmp(type, "step_end") == 0)) {
        _cleanup_free_ char *text = kiln_runner_event_text(ev);
        if (text) {
            consume(st, text, strlen(text));
            consume(st, "\n", 1);
        }
    }
    if (st->ops && st->ops->event)
        st->ops->event(st->opaque, ev);
    json_decref(ev);
}

/* A chunk of the events stream, split into lines. */
static void consume_events(run_state_t *st, const char *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            if (!st->ev_overlong)
                feed_event(st);
            st->ev_len = 0;
            st->ev_overlong = 0;
        } else if (st->ev_len < EVENT_MAX) {
            st->ev_line[st->ev_len++] = data[i];
        } else {
            st->ev_overlong = 1;
        }
    }
}

/* Logs a chunk of child output (up to the cap); what it says is never interpreted. */
static void consume(run_state_t *st, const char *data, size_t n)
{
    size_t room = st->cap > st->logged ? st->cap - st->logged : 0;
    size_t w = n < room ? n : room;

    if (w > 0 && kiln_fs_write_all(st->log_fd, data, w, NULL) == 0)
        st->logged += w;
    if (w < n && !st->truncated) {
        static const char note[] = "\n[kiln: log truncated: size limit reached]\n";
        st->truncated = 1;
        (void)!write(st->log_fd, note, sizeof(note) - 1);
    }
}

/* In the child: own process group, die with the parent thread, output to the pipe; a job's
 * spec (spec_fd) and events pipe (ev_fd) become descriptors 3 and 4. */
static void __attribute__((noreturn))
child_exec(char *const argv[], char *const envp[], const char *cwd, int out_fd, int spec_fd,
           int ev_fd, pid_t parent)
{
    sigset_t none;
    int devnull;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* the server's umask keeps its own files private; a build creates files with the
     * usual modes (image layers, outputs) */
    umask(KILN_CHILD_UMASK);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    if (spec_fd >= 0) {
        /* moved above 4 first so that neither is overwritten by the other's dup2 */
        int s = fcntl(spec_fd, F_DUPFD_CLOEXEC, 10), e = fcntl(ev_fd, F_DUPFD_CLOEXEC, 10);
        if (s < 0 || e < 0 || dup2(s, KILN_RUNNER_SPEC_FD) < 0 ||
            dup2(e, KILN_RUNNER_EVENTS_FD) < 0) {
            dprintf(2, "kiln: cannot pass the job's descriptors: %s\n", strerror(errno));
            _exit(127);
        }
    }
    if (cwd && chdir(cwd) < 0) {
        dprintf(2, "kiln: cannot enter %s: %s\n", cwd, strerror(errno));
        _exit(127);
    }
    execve(argv[0], argv, envp ? envp : environ);
    dprintf(2, "kiln: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* The job's spec as a sealed in-memory file (never a path another process could swap). */
static int spec_memfd(const char *spec, kiln_error_t *err)
{
    int fd = memfd_create("kiln-job-spec", MFD_CLOEXEC);

    if (fd < 0)
        return kiln_error_set(err, errno, "memfd for the job spec");
    if (kiln_fs_write_all(fd, spec, strlen(spec), err) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void state_free(run_state_t *st)
{
    if (st->log_fd >= 0)
        close(st->log_fd);
    free(st->ev_line);
    free(st);
}

int kiln_runner_run(char *const argv[], char *const envp[], const char *cwd, const char *log_path,
                    size_t log_cap, int timeout_s, const kiln_runner_ops_t *ops, void *opaque,
                    kiln_runner_result_t *res, kiln_error_t *err)
{
    return kiln_runner_run_job(argv, envp, cwd, NULL, log_path, log_cap, timeout_s, ops, opaque,
                               res, err);
}

int kiln_runner_run_job(char *const argv[], char *const envp[], const char *cwd, const char *spec,
                        const char *log_path, size_t log_cap, int timeout_s,
                        const kiln_runner_ops_t *ops, void *opaque, kiln_runner_result_t *res,
                        kiln_error_t *err)
{
    run_state_t *st = calloc(1, sizeof(*st));
    kiln_runner_result_t r = {.exit_code = -1};
    int pfd[2] = {-1, -1}, efd[2] = {-1, -1};
    _cleanup_close_ int sfd = -1;
    pid_t parent = getpid(), pid;
    double start = mono_now(), exited_at = 0;
    int status = 0, reaped = 0, eof = 0, ev_eof = 1, killed = 0;
    char buf[16384];

    if (st == NULL)
        return kiln_error_set(err, ENOMEM, "runner state");
    st->cap = log_cap;
    st->ops = ops;
    st->opaque = opaque;
    st->log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (st->log_fd < 0) {
        kiln_error_set(err, errno, "open log %s", log_path);
        state_free(st);
        return -1;
    }
    {
        struct stat sb;
        if (fstat(st->log_fd, &sb) == 0)
            st->logged = (size_t)sb.st_size;
    }
    if (spec) {
        st->ev_line = malloc(EVENT_MAX + 1);
        if (st->ev_line == NULL || (sfd = spec_memfd(spec, err)) < 0 || pipe2(efd, O_CLOEXEC) < 0) {
            if (st->ev_line && sfd >= 0)
                kiln_error_set(err, errno, "pipe");
            else if (st->ev_line == NULL)
                kiln_error_set(err, ENOMEM, "event line");
            state_free(st);
            return -1;
        }
        ev_eof = 0;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        kiln_error_set(err, errno, "pipe");
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        kiln_error_set(err, errno, "fork");
        goto fail;
    }
    if (pid == 0)
        child_exec(argv, envp, cwd, pfd[1], sfd, efd[1], parent);
    close(pfd[1]);
    if (efd[1] >= 0)
        close(efd[1]);
    setpgid(pid, pid); /* also here, so the group exists before we may kill it */
    if (ops && ops->started)
        ops->started(opaque, pid, kiln_runner_start_ticks(pid));

    while (!eof || !ev_eof || !reaped) {
        struct pollfd p[2] = {{.fd = eof ? -1 : pfd[0], .events = POLLIN},
                              {.fd = ev_eof ? -1 : efd[0], .events = POLLIN}};
        int pr = eof && ev_eof ? 0 : poll(p, 2, 200);
        if (eof && ev_eof)
            usleep(50000);
        if (pr > 0 && p[0].revents) {
            ssize_t n = read(pfd[0], buf, sizeof(buf));
            if (n > 0)
                consume(st, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                eof = 1;
        }
        if (pr > 0 && p[1].revents) {
            ssize_t n = read(efd[0], buf, sizeof(buf));
            if (n > 0)
                consume_events(st, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                ev_eof = 1;
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                reaped = 1;
                exited_at = mono_now();
                /* Whatever the build left behind in its group goes with it. */
                kill(-pid, SIGKILL);
            }
        }
        if (!killed && !reaped) {
            if (timeout_s > 0 && mono_now() - start > timeout_s) {
                r.timed_out = 1;
                killed = 1;
            } else if (ops && ops->should_stop && ops->should_stop(opaque)) {
                r.stopped = 1;
                killed = 1;
            }
            if (killed)
                kill(-pid, SIGKILL);
        }
        /* Output held open by an escaped grandchild must not hold the build forever. */
        if (reaped && (!eof || !ev_eof) && mono_now() - exited_at > 2.0)
            break;
    }
    if (st->ev_line && st->ev_len > 0 && !st->ev_overlong)
        feed_event(st);
    close(pfd[0]);
    if (efd[0] >= 0)
        close(efd[0]);
    state_free(st);
    if (WIFEXITED(status))
        r.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r.signal = WTERMSIG(status);
    *res = r;
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (pfd[i] >= 0)
            close(pfd[i]);
        if (efd[i] >= 0)
            close(efd[i]);
    }
    state_free(st);
    return -1;
}

char *kiln_runner_event_text(json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "event"));
    json_t *step = json_object_get(ev, "step");
    kiln_step_event_t se = {.step = (int)json_integer_value(step), .seconds = -1};

    if (type == NULL)
        return NULL;
    if (strcmp(type, "log") == 0) {
        const char *text = json_string_value(json_object_get(ev, "text"));
        if (text == NULL)
            return NULL;
        if (!json_is_integer(step))
            return kiln_xstrdup(text);
        se.kind = KILN_STEP_EVENT_LOG;
        se.text = (char *)text;
    } else if (!json_is_integer(step)) {
        return NULL;
    } else if (strcmp(type, "step_start") == 0) {
        se.kind = KILN_STEP_EVENT_START;
        se.text = (char *)json_string_value(json_object_get(ev, "name"));
    } else if (strcmp(type, "step_end") == 0) {
        se.text = (char *)json_string_value(json_object_get(ev, "error"));
        se.kind = se.text                                          ? KILN_STEP_EVENT_ERROR
                  : json_is_true(json_object_get(ev, "cache_hit")) ? KILN_STEP_EVENT_CACHED
                                                                   : KILN_STEP_EVENT_DONE;
        if (se.kind == KILN_STEP_EVENT_DONE && json_is_number(json_object_get(ev, "seconds")))
            se.seconds = json_number_value(json_object_get(ev, "seconds"));
    } else {
        return NULL;
    }
    return kiln_step_event_plain(&se);
}
