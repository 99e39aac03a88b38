/* kiln — cgroup limits for a step: memory and pids, through cgroup v1
 * (memory/, pids/ hierarchies) or v2 (unified, with the controllers enabled),
 * whichever is writable. Each step gets its own cgroup "kiln-<pid>-<n>" under
 * kiln's own, removed after the step (killing anything left inside). */
#ifndef KILN_SANDBOX_CGROUP_H
#define KILN_SANDBOX_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "utils/error.h"

typedef struct kiln_cgroup {
    char *dirs[3]; /* cgroup dirs made (v1 memory, v1 pids, or one v2 dir) */
    int v2;
    int has_memory, has_pids;
} kiln_cgroup_t;

/* Creates the step's cgroup(s) with the limits (0 = none). When neither a
 * memory nor a pids cgroup is writable, succeeds with none made (callers
 * fall back to rlimits: see has_memory / has_pids). */
int kiln_cgroup_create(kiln_cgroup_t *cg, uint64_t memory, uint64_t pids, kiln_error_t *err);

/* Moves pid into the step's cgroup(s). */
int kiln_cgroup_add(kiln_cgroup_t *cg, pid_t pid, kiln_error_t *err);

/* True when the memory controller killed a process for running out. */
int kiln_cgroup_oom_killed(const kiln_cgroup_t *cg);

/* Kills what is left in the cgroup(s), removes them, frees cg. */
void kiln_cgroup_destroy(kiln_cgroup_t *cg);

/* Removes kiln-* cgroups whose kiln process is gone (killing what is left in
 * them). Returns how many were removed. */
int kiln_cgroup_sweep(kiln_error_t *err);

#endif
