/* kiln — a build's limits, the one parser of them: the "limits" object of a job spec, an API
 * request, a server's config ("limits", "max_limits", a tenant's) and the command-line values
 * of kiln serve / kiln worker ({"memory": "512m" | BYTES, "pids": N, "cpu_time": SECONDS,
 * "wall_time": SECONDS, "disk": "10g" | BYTES}), each value checked (a size or a positive
 * count, not above its largest) with an error naming its key. */
#ifndef KILN_JOB_LIMITS_H
#define KILN_JOB_LIMITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "utils/error.h"

/* Limits of the build (0 = not set): memory (bytes) and pids of each step, CPU seconds of
 * each process, wall time of the whole job (seconds), disk (bytes each step may write). */
typedef struct kiln_job_limits {
    uint64_t memory, pids, cpu_time, wall_time, disk;
} kiln_job_limits_t;

/* The longest time a limit may name (a week): cpu_time, wall_time, a timeout. */
#define KILN_JOB_MAX_SECONDS (7ULL * 24 * 3600)

/* The limits by index, in the struct's order: memory, pids, cpu_time, wall_time, disk. */
#define KILN_JOB_LIMITS_N 5
#define KILN_JOB_LIMIT_WALL_TIME 3
const char *kiln_job_limit_name(size_t i);
int kiln_job_limit_is_size(size_t i);
uint64_t *kiln_job_limit_slot(kiln_job_limits_t *l, size_t i);
uint64_t kiln_job_limit_get(const kiln_job_limits_t *l, size_t i);

/* One value as people read it ("512m" for a size, else the number) into buf. */
void kiln_job_limit_show(size_t i, uint64_t v, char *buf, size_t len);

/* Parses value i from text (a size, else a positive count not above its largest); 0 is
 * refused. -1 with err saying what is wrong (the caller names the key). */
int kiln_job_limit_parse(size_t i, const char *s, uint64_t *out, kiln_error_t *err);

/* Reads a limits object (NULL: none, all 0) into *out. where names it ("limits",
 * "max_limits", "tenants[acme].limits"); quoted: messages read "field 'where.key': …" as
 * for request fields, else "where.key: …". Fails naming the key that is unknown or
 * malformed. */
int kiln_job_limits_from_json(json_t *v, const char *where, int quoted, kiln_job_limits_t *out,
                              kiln_error_t *err);

/* Checks values set without the parser (command-line flags): none above its largest.
 * Fails naming "limits.KEY". */
int kiln_job_limits_check(const kiln_job_limits_t *l, kiln_error_t *err);

/* The limits that are set as a JSON object (sizes as "512m", counts as numbers). */
json_t *kiln_job_limits_to_json(const kiln_job_limits_t *l);

#endif
