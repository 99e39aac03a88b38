/* kiln server — runs one child process (`kiln job run …`) in its own
 * process group: stdout+stderr go to the build's append-only log (capped); a job's spec is
 * handed to it on descriptor 3 and its events (job/stream.h, one JSON object per line) read
 * from descriptor 4 (no log text is ever interpreted); the whole group is killed on cancel,
 * timeout or when the server dies (PR_SET_PDEATHSIG). */
#ifndef KILN_SERVER_RUNNER_H
#define KILN_SERVER_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "utils/error.h"

/* Where `kiln job run` finds its spec and writes its events: --spec-fd 3 --events-fd 4
 * (the same numbers spelled in job.c's arguments). */
#define KILN_RUNNER_SPEC_FD 3
#define KILN_RUNNER_EVENTS_FD 4

typedef struct kiln_runner_ops {
    /* The child started as the leader of process group pgid. */
    void (*started)(void *opaque, pid_t pgid, uint64_t start_ticks);
    /* One event of a job (kiln_runner_run_job), borrowed; its log and step events are
     * already in the log. May be NULL. */
    void (*event)(void *opaque, json_t *ev);
    /* Polled about every 200 ms: non-zero stops the build (its group is killed). */
    int (*should_stop)(void *opaque);
} kiln_runner_ops_t;

typedef struct kiln_runner_result {
    int exit_code; /* when it exited, else -1 */
    int signal;    /* when killed by a signal, else 0 */
    int timed_out; /* stopped by the timeout */
    int stopped;   /* stopped by should_stop */
} kiln_runner_result_t;

/* Runs argv[0] with argv and environment envp (NULL: the server's own) in directory cwd
 * (NULL: the current one), appending output to
 * log_path (at most log_cap bytes in total), for at most timeout_s seconds (0 = no limit).
 * Returns 0 once the child is gone (look at *res), -1 when it could not be started. */
int kiln_runner_run(char *const argv[], char *const envp[], const char *cwd, const char *log_path,
                    size_t log_cap, int timeout_s, const kiln_runner_ops_t *ops, void *opaque,
                    kiln_runner_result_t *res, kiln_error_t *err);

/* kiln_runner_run for `kiln job run`: spec (JSON text) is its descriptor 3 (a memfd), its
 * events pipe its descriptor 4; each event line goes to ops->event, and the text of log and
 * step events to the log as `kiln build` prints them. */
int kiln_runner_run_job(char *const argv[], char *const envp[], const char *cwd, const char *spec,
                        const char *log_path, size_t log_cap, int timeout_s,
                        const kiln_runner_ops_t *ops, void *opaque, kiln_runner_result_t *res,
                        kiln_error_t *err);

/* The log line of a log, step_start or step_end event ("#N text", "#N CACHED", "#N DONE
 * 1.2s", "#N ERROR: …"), malloc'ed; NULL for other events. */
char *kiln_runner_event_text(json_t *ev);

/* The start time of pid in clock ticks since boot (field 22 of /proc/PID/stat), 0 if gone. */
uint64_t kiln_runner_start_ticks(pid_t pid);

/* Kills a process group recorded earlier (after a crash), unless its leader is a different
 * process now (start time differs). */
void kiln_runner_kill_stale(pid_t pgid, uint64_t start_ticks);

/* Appends a line (a note from the server, e.g. "attempt 2") to a build log. */
int kiln_runner_log_note(const char *log_path, const char *line, kiln_error_t *err);

#endif
