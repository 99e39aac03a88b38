/* kiln server — per-build limits: the "limits" field of a build request
 * ({"memory": "512m" | BYTES, "pids": N, "cpu_time": SECONDS, "wall_time": SECONDS,
 *   "disk": "10g" | BYTES}), the
 * defaults and maxima of `kiln serve` / `kiln worker` (the config's "limits" and
 * "max_limits", a tenant's "limits", --build-memory, --max-build-memory, …, built-in
 * defaults), and the `kiln build` flags they become (--memory, --pids-limit, --cpu-time,
 * --disk-limit; wall_time is the runner's timeout of the whole build, and the runner
 * watches the file outputs against disk). */
#ifndef KILN_SERVER_LIMITS_H
#define KILN_SERVER_LIMITS_H

#include <getopt.h>
#include <jansson.h>
#include <stdint.h>

#include "job/limits.h"
#include "utils/error.h"

/* memory: bytes, 0 = none; pids: processes; cpu_time: CPU seconds of each process;
 * wall_time: seconds of the whole build (checkout + build); disk: bytes each RUN step may
 * write (its upper dir; no file larger) and the build's file outputs (./kiln-out) may take.
 * Parsed by job/limits (the one parser of limits). */
typedef kiln_job_limits_t kiln_limit_values_t;

typedef struct kiln_limits_policy {
    kiln_limit_values_t def; /* applied when a request does not say */
    kiln_limit_values_t max; /* a request may not ask for more (0 = no maximum) */
} kiln_limits_policy_t;

/* Built-in defaults of a server that runs builds, when neither its command line nor its
 * config says: every build is bounded (see kiln_limits_policy_builtin). */
#define KILN_LIMITS_BUILTIN_MEMORY (4ULL << 30)
#define KILN_LIMITS_BUILTIN_PIDS 4096ULL
#define KILN_LIMITS_BUILTIN_DISK (20ULL << 30)

/* Long options of the policy, for serve and worker (ids from KILN_LIMITS_OPT_BASE). */
#define KILN_LIMITS_OPT_BASE 900
#define KILN_LIMITS_LONGOPTS                                                                       \
    {"build-memory", required_argument, NULL, KILN_LIMITS_OPT_BASE},                               \
        {"build-pids", required_argument, NULL, KILN_LIMITS_OPT_BASE + 1},                         \
        {"build-cpu-time", required_argument, NULL, KILN_LIMITS_OPT_BASE + 2},                     \
        {"max-build-memory", required_argument, NULL, KILN_LIMITS_OPT_BASE + 3},                   \
        {"max-build-pids", required_argument, NULL, KILN_LIMITS_OPT_BASE + 4},                     \
    {                                                                                              \
        "max-build-cpu-time", required_argument, NULL, KILN_LIMITS_OPT_BASE + 5                    \
    }
#define KILN_LIMITS_HELP                                                                           \
    "  --build-memory SIZE     memory limit of each build step (default 4g)\n"                     \
    "  --build-pids N          process limit of each build step (default 4096)\n"                  \
    "  --build-cpu-time SECS   CPU time limit of each process (default none)\n"                    \
    "  --max-build-memory SIZE, --max-build-pids N, --max-build-cpu-time SECS\n"                   \
    "                          the most a request's (or a tenant's) \"limits\" may ask for\n"      \
    "                          (default: the default). kiln serve: the config's \"limits\" and\n"  \
    "                          \"max_limits\" (also wall_time, disk 20g) apply where these are\n"  \
    "                          not given\n"

/* Takes a policy option (c = its id); 1 when taken, 0 when c is not one, -1 on a bad value
 * (err names the option). */
int kiln_limits_opt(kiln_limits_policy_t *p, int c, const char *arg, kiln_error_t *err);

/* Validates the config's "limits" and "max_limits" objects (either may be NULL) and fills
 * what the command line left unset (0) in p from them. err names the key ("limits.memory",
 * "max_limits.pids"). */
int kiln_limits_policy_config(kiln_limits_policy_t *p, json_t *limits, json_t *max_limits,
                              kiln_error_t *err);

/* Fills unset defaults with the built-in ones: memory 4g, pids 4096, disk 20g, wall_time (the
 * --build-timeout of the command; 0 = none). Only the process that runs builds does this
 * (kiln serve without --queue, kiln worker), so a queue's workers set their own. */
void kiln_limits_policy_builtin(kiln_limits_policy_t *p, uint64_t wall_time);

/* Completes a policy: a default without a maximum is the maximum. Fails when a default is
 * above its maximum (err names both). */
int kiln_limits_policy_finish(kiln_limits_policy_t *p, kiln_error_t *err);

/* The policy of a tenant: the server's, with the tenant's "limits" object (NULL: none)
 * replacing the defaults it names. Fails naming the limit when one is malformed or above
 * the server's maximum. */
int kiln_limits_policy_tenant(const kiln_limits_policy_t *server, json_t *tenant_limits,
                              kiln_limits_policy_t *out, kiln_error_t *err);

/* Reads a normalized "limits" object (NULL: none set). */
void kiln_limits_values(json_t *limits, kiln_limit_values_t *out);

/* Sets stored["limits"] to the request's limits (its "timeout_seconds" counting as
 * wall_time) with the policy's defaults filled in; fails (err names the field) when the
 * request asks for more than a maximum. */
int kiln_limits_apply(json_t *stored, const kiln_limits_policy_t *p, kiln_error_t *err);

/* The caps of a request's docker step options (the config's "max_shm_size" and
 * "max_ulimits"): shm_size at most shm_size bytes; each ulimit only for a resource ulimits
 * names ({"nofile": N, …}), its hard value (soft ≤ hard) at most N. */
typedef struct kiln_stepcaps {
    uint64_t shm_size;
    json_t *ulimits; /* owned; never NULL once configured */
} kiln_stepcaps_t;

/* Without a config's keys: docker's default /dev/shm (64m), nofile 65536 and nproc 4096. */
#define KILN_STEPCAPS_SHM_DEFAULT (64ULL << 20)
#define KILN_STEPCAPS_NOFILE_DEFAULT 65536
#define KILN_STEPCAPS_NPROC_DEFAULT 4096

/* Reads the config's "max_shm_size" (a size) and "max_ulimits" (known names to counts; a
 * count may be -1: unlimited) into c, either NULL for its default. Fails naming the key. */
int kiln_stepcaps_config(kiln_stepcaps_t *c, json_t *max_shm, json_t *max_ulimits,
                         kiln_error_t *err);

/* Checks the stored request's "shm_size" and "ulimits" against c; fails naming the field,
 * the value and the cap ("field 'shm_size': 128m is above the server's maximum 64m
 * (max_shm_size)"). */
int kiln_stepcaps_check(const kiln_stepcaps_t *c, json_t *stored, kiln_error_t *err);

void kiln_stepcaps_clear(kiln_stepcaps_t *c);

/* The wall time of a build: the smallest of cap and the stored request's limits.wall_time
 * and timeout_seconds that are set (0 = none). */
int kiln_limits_wall_time(json_t *stored, int cap);

#endif
