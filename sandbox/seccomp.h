/* kiln — the confinement a step's process applies to itself right before
 * exec: capabilities, no_new_privs and a seccomp filter modelled on Docker's
 * default profile. */
#ifndef KILN_SANDBOX_SECCOMP_H
#define KILN_SANDBOX_SECCOMP_H

#include <stdint.h>

#include "sandbox/sandbox.h"
#include "utils/error.h"

/* Readies the filter for `profile` (the chroot variant when strict): nothing
 * since the programs are compiled at build time (sandbox/seccomp_rules.h), kept
 * so callers need not know. Thread-safe. Returns negative on failure. */
int kiln_seccomp_prepare(kiln_seccomp_profile_t profile, int strict, kiln_error_t *err);

/* Installs the prepared filter in the calling process (after no_new_privs).
 * `strict` selects the variant for chroot isolation (no ptrace, chroot,
 * unshare: there is no pid/user namespace around the step). Async-signal-safe:
 * meant for a freshly forked child. Returns -errno. */
int kiln_seccomp_install(kiln_seccomp_profile_t profile, int strict);

/* Drops every capability not in `caps` (bit mask of CAP_*) from the calling
 * process's bounding set (what a later execve can hold). Returns -errno.
 * Async-signal-safe. */
int kiln_caps_drop_bounding(uint64_t caps);

/* Bounds the capability sets to `caps`: sets effective/permitted/inheritable,
 * clears the ambient set (the bounding set is kiln_caps_drop_bounding's, done
 * before). Returns -errno. Async-signal-safe. */
int kiln_caps_restrict(uint64_t caps);

#endif
