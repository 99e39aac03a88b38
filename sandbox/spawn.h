/* kiln — how a step's init is started (internal to sandbox/): the namespaces it gets, and
 * the clone itself.
 *
 * In sandbox isolation the init is cloned with CLONE_VM by a short-lived thread of kiln
 * (the "spawner") instead of being a fork of kiln: a build process holds megabytes of
 * memory and ~140 mappings, whose page tables a fork copies and whose every page kiln
 * then writes takes a copy-on-write fault, on each step. The init runs on its own stack
 * and the spawner's thread-local storage (errno, malloc's cache): the spawner sleeps in its
 * clone (CLONE_VFORK) until the init ends, so nothing else uses them meanwhile. The init
 * reads only its own copy of the plan, its stack and what the plan points to; the command
 * it starts (vfork) execs, and so has a memory of its own. What sharing kiln's memory asks
 * of the init, and how each is met:
 *  - no signal handler of kiln may run in it: every handler is reset in the init before
 *    any signal is let through (the spawner blocks them all);
 *  - the kernel's OOM killer kills every process sharing a victim's memory: it never picks
 *    a vfork child that shares its parent's (the init is one, of the spawner thread), and
 *    the command has its own memory from its exec;
 *  - a step must not reach kiln's memory through the init: the init is not dumpable (and
 *    the memory's owner is the host's user namespace), so no process of the step may
 *    ptrace it or open its /proc/1/{mem,maps,environ,fd}; this makes kiln's own process
 *    not dumpable either (no core dump of kiln after its first step);
 *  - the cgroup namespace is rooted where the init starts, and clone(2) of libc cannot
 *    start it in the step's cgroup (CLONE_INTO_CGROUP is clone3's): kiln moves it there
 *    and the init unshares its cgroup namespace after kiln's go (plan->unshare_cgroupns).
 * Chroot isolation and no isolation fork as before. */
#ifndef KILN_SANDBOX_SPAWN_H
#define KILN_SANDBOX_SPAWN_H

#include <sys/types.h>

#include "sandbox/init.h"

/* The clone flags of a step's namespaces for an isolation and network mode. */
unsigned long kiln_spawn_ns_flags(kiln_isolation_t iso, kiln_net_mode_t net);

/* Whether a clone's errno says the host refuses those namespaces. */
int kiln_spawn_ns_refused(int e);

/* Starts the step's init with `flags` (the init runs kiln_sandbox_init_main on the plan as it
 * is now, and never returns here); with a namespace of step->netns_pool, inside it instead of
 * a new one (*netns_slot: the slot taken, else -1). Sets plan->have_*, plan->pooled_netns
 * and plan->unshare_cgroupns. Returns the init's pid, or -1 with errno
 * (KILN_SANDBOX_NO_NAMESPACES=1 refuses every namespace, to test the paths of hosts without them).
 */
pid_t kiln_spawn_init(kiln_sandbox_plan_t *plan, unsigned long flags, int *netns_slot);

#endif
