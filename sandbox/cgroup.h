/* kiln — cgroup limits for a step: memory and pids, each through cgroup v2
 * (the unified hierarchy, where kiln's cgroup has the controller or may
 * enable it) or else cgroup v1 (the controller's own hierarchy), whichever
 * is writable; the caller falls back to rlimits for what neither gives.
 *
 * Hierarchies are found in /proc/self/mountinfo (cgroup2, and cgroup with
 * the controller among its options), kiln's own cgroups in /proc/self/cgroup.
 * Each step gets "kiln-<pid>-<n>" under kiln's own cgroup in each hierarchy
 * it uses, removed after the step (killing anything left inside). Where a
 * unified hierarchy is writable, the step also gets a cgroup there even
 * without controllers (hybrid hosts): its processes are then killed with
 * cgroup.kill. On pure v2, when kiln's cgroup holds processes and cannot
 * enable a controller for its children (the "no internal processes" rule),
 * kiln moves itself into a leaf "kiln-self" below it and enables it then. */
#ifndef KILN_SANDBOX_CGROUP_H
#define KILN_SANDBOX_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "utils/error.h"

typedef enum kiln_cgroup_by {
    KILN_CGROUP_BY_NONE = 0, /* not limited by a cgroup (rlimits instead) */
    KILN_CGROUP_BY_V1,
    KILN_CGROUP_BY_V2,
} kiln_cgroup_by_t;

typedef struct kiln_cgroup {
    char *dirs[3]; /* cgroup dirs made: [0] v1 memory, [1] v1 pids, [2] v2 */
    int v2;        /* dirs[2] is made */
    int has_memory, has_pids;
    kiln_cgroup_by_t memory_by, pids_by;
    char why_not[256]; /* why a wanted controller is not used ("" if all are) */
} kiln_cgroup_t;

/* Creates the step's cgroup(s) with the limits (0 = none). When neither a
 * memory nor a pids cgroup is writable, succeeds with none made (callers
 * fall back to rlimits: see has_memory / has_pids, and why_not). Returns
 * negative when a cgroup was made but a limit could not be set in it. */
int kiln_cgroup_create(kiln_cgroup_t *cg, uint64_t memory, uint64_t pids, kiln_error_t *err);

/* Moves pid into the step's cgroup(s). */
int kiln_cgroup_add(kiln_cgroup_t *cg, pid_t pid, kiln_error_t *err);

/* True when the memory controller killed a process for running out. */
int kiln_cgroup_oom_killed(const kiln_cgroup_t *cg);

/* The cgroup file enforcing a limit, for the step log: "cgroup v2
 * memory.max", "cgroup v1 pids.max", …; NULL when no cgroup enforces it. */
const char *kiln_cgroup_mechanism(const kiln_cgroup_t *cg, int pids);

/* Kills what is left in the cgroup(s), removes them, frees cg. */
void kiln_cgroup_destroy(kiln_cgroup_t *cg);

/* Removes kiln-* cgroups whose kiln process is gone (killing what is left in
 * them). Returns how many were removed. */
int kiln_cgroup_sweep(kiln_error_t *err);

#endif
