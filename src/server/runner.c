#include "src/server/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "src/server/modes.h"
#include "utils/cleanup.h"
#include "utils/fs.h"

#define LINE_MAX_LEN 4096

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

/* Maps one progress line to a status: `--progress=json` objects carry "phase" (or
 * "status"); plain BuildKit-style lines "#N …" mean building, and export/push/upload
 * lines mean the matching phase. Returns NULL for lines that do not change it. */
static const char *line_phase(const char *line)
{
    static const char *const names[] = {"cloning", "building", "pushing", "uploading"};
    if (line[0] == '{') {
        json_t *o = json_loads(line, 0, NULL);
        const char *p = NULL;
        if (o) {
            const char *v = json_string_value(json_object_get(o, "phase"));
            if (v == NULL)
                v = json_string_value(json_object_get(o, "status"));
            for (size_t i = 0; v && i < 4; i++)
                if (strcmp(v, names[i]) == 0)
                    p = names[i];
            json_decref(o);
        }
        return p;
    }
    if (line[0] != '#')
        return NULL;
    if (strstr(line, "cloning") || strstr(line, "fetching git"))
        return "cloning";
    if (strstr(line, "pushing") || strstr(line, "exporting to registry"))
        return "pushing";
    if (strstr(line, "uploading"))
        return "uploading";
    return "building";
}

typedef struct run_state {
    int log_fd;
    size_t logged;
    size_t cap;
    int truncated;
    char line[LINE_MAX_LEN + 1];
    size_t line_len;
    const char *last_phase;
    const kiln_runner_ops_t *ops;
    void *opaque;
} run_state_t;

static void feed_line(run_state_t *st)
{
    const char *p;
    st->line[st->line_len] = '\0';
    if (st->ops && st->ops->line)
        st->ops->line(st->opaque, st->line);
    p = line_phase(st->line);
    if (p && p != st->last_phase) {
        st->last_phase = p;
        if (st->ops && st->ops->phase)
            st->ops->phase(st->opaque, p);
    }
    st->line_len = 0;
}

/* Logs a chunk of child output (up to the cap) and scans it for progress lines. */
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
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            feed_line(st);
        } else if (st->line_len < LINE_MAX_LEN) {
            st->line[st->line_len++] = data[i];
        }
    }
}

/* In the child: own process group, die with the parent thread, output to the pipe. */
static void __attribute__((noreturn))
child_exec(char *const argv[], char *const envp[], const char *cwd, int out_fd, pid_t parent)
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
    if (cwd && chdir(cwd) < 0) {
        dprintf(2, "kiln: cannot enter %s: %s\n", cwd, strerror(errno));
        _exit(127);
    }
    execve(argv[0], argv, envp ? envp : environ);
    dprintf(2, "kiln: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int kiln_runner_run(char *const argv[], char *const envp[], const char *cwd, const char *log_path,
                    size_t log_cap, int timeout_s, const kiln_runner_ops_t *ops, void *opaque,
                    kiln_runner_result_t *res, kiln_error_t *err)
{
    run_state_t *st = calloc(1, sizeof(*st));
    kiln_runner_result_t r = {.exit_code = -1};
    int pfd[2] = {-1, -1};
    pid_t parent = getpid(), pid;
    double start = mono_now(), exited_at = 0;
    int status = 0, reaped = 0, eof = 0, killed = 0;
    char buf[16384];

    if (st == NULL)
        return kiln_error_set(err, ENOMEM, "runner state");
    st->cap = log_cap;
    st->ops = ops;
    st->opaque = opaque;
    st->log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (st->log_fd < 0) {
        kiln_error_set(err, errno, "open log %s", log_path);
        free(st);
        return -1;
    }
    {
        struct stat sb;
        if (fstat(st->log_fd, &sb) == 0)
            st->logged = (size_t)sb.st_size;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        kiln_error_set(err, errno, "pipe");
        close(st->log_fd);
        free(st);
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        kiln_error_set(err, errno, "fork");
        close(pfd[0]);
        close(pfd[1]);
        close(st->log_fd);
        free(st);
        return -1;
    }
    if (pid == 0)
        child_exec(argv, envp, cwd, pfd[1], parent);
    close(pfd[1]);
    setpgid(pid, pid); /* also here, so the group exists before we may kill it */
    if (ops && ops->started)
        ops->started(opaque, pid, kiln_runner_start_ticks(pid));

    while (!eof || !reaped) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int pr = eof ? 0 : poll(&p, 1, 200);
        if (eof)
            usleep(50000);
        if (pr > 0) {
            ssize_t n = read(pfd[0], buf, sizeof(buf));
            if (n > 0)
                consume(st, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                eof = 1;
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
        if (reaped && !eof && mono_now() - exited_at > 2.0)
            break;
    }
    if (st->line_len > 0)
        feed_line(st);
    close(pfd[0]);
    close(st->log_fd);
    free(st);
    if (WIFEXITED(status))
        r.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r.signal = WTERMSIG(status);
    *res = r;
    return 0;
}
