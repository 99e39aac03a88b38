/* kiln server — per-build sandbox limits: the "limits" field of a build request
 * ({"memory": "512m" | BYTES, "pids": N, "cpu_time": SECONDS}), the defaults and
 * maxima of `kiln serve` / `kiln worker` (--build-memory, --max-build-memory, …), and
 * the `kiln build` flags they become (--memory, --pids-limit, --cpu-time). */
#ifndef KILN_SERVER_LIMITS_H
#define KILN_SERVER_LIMITS_H

#include <getopt.h>
#include <jansson.h>
#include <stdint.h>

#include "utils/error.h"

typedef struct kiln_limit_values {
    uint64_t memory;   /* bytes, 0 = none */
    uint64_t pids;     /* processes, 0 = none */
    uint64_t cpu_time; /* CPU seconds, 0 = none */
} kiln_limit_values_t;

typedef struct kiln_limits_policy {
    kiln_limit_values_t def; /* applied when a request does not say */
    kiln_limit_values_t max; /* a request may not ask for more (0 = no maximum) */
} kiln_limits_policy_t;

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
    "  --build-memory SIZE     memory limit of each build step (e.g. 2g; default none)\n"          \
    "  --build-pids N          process limit of each build step (default none)\n"                  \
    "  --build-cpu-time SECS   CPU time limit of each build step (default none)\n"                 \
    "  --max-build-memory SIZE, --max-build-pids N, --max-build-cpu-time SECS\n"                   \
    "                          the most a request's \"limits\" may ask for (default: the\n"        \
    "                          --build-* value when one is set, else no maximum)\n"

/* Takes a policy option (c = its id); 1 when taken, 0 when c is not one, -1 on a bad value
 * (err names the option). */
int kiln_limits_opt(kiln_limits_policy_t *p, int c, const char *arg, kiln_error_t *err);

/* Completes a policy after the options: a default without a maximum is the maximum. Fails
 * when a default is above its maximum. */
int kiln_limits_policy_finish(kiln_limits_policy_t *p, kiln_error_t *err);

/* Validates a request's "limits" value; *out is its normalized form (memory as "512m"),
 * new reference. On failure err names the field ("limits.memory", …). */
int kiln_limits_parse(json_t *v, json_t **out, kiln_error_t *err);

/* The normalized object of vals: only the limits that are set, memory as "512m". */
json_t *kiln_limits_json(const kiln_limit_values_t *vals);

/* Reads a normalized "limits" object (NULL: none set). */
void kiln_limits_values(json_t *limits, kiln_limit_values_t *out);

/* Sets stored["limits"] to the request's limits with the policy's defaults filled in;
 * fails (err names the field) when the request asks for more than a maximum. */
int kiln_limits_apply(json_t *stored, const kiln_limits_policy_t *p, kiln_error_t *err);

#endif
