/* kiln — the rules of a step's seccomp filter (modelled on Docker's default
 * profile, sandbox/seccomp.h) compiled into a BPF program with libseccomp.
 *
 * kiln does not compile them at run time: sandbox/seccomp_gen runs this at
 * build time and kiln carries the two programs (sandbox/seccomp.c), so a
 * `kiln run` or a build neither loads libseccomp nor spends its start on the
 * compile; the unit test test_seccomp_bpf checks the carried programs equal
 * a fresh compile instruction for instruction. */
#ifndef KILN_SANDBOX_SECCOMP_RULES_H
#define KILN_SANDBOX_SECCOMP_RULES_H

#include <linux/filter.h>

#include "utils/error.h"

/* Compiles the filter (`strict`: the chroot variant, which also refuses
 * ptrace, process_vm_*, kcmp, chroot and unshare) into out->filter
 * (malloc'ed) and out->len. Returns negative with err set on failure. */
int kiln_seccomp_compile(int strict, struct sock_fprog *out, kiln_error_t *err);

#endif
