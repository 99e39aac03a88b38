/* kiln — the step seccomp programs compiled at build time (written by
 * sandbox/seccomp_gen from sandbox/seccomp_rules.c into the build dir). */
#ifndef KILN_SANDBOX_SECCOMP_BPF_H
#define KILN_SANDBOX_SECCOMP_BPF_H

#include <linux/filter.h>

extern const struct sock_filter kiln_seccomp_bpf_default[];
extern const unsigned short kiln_seccomp_bpf_default_len;
/* the chroot variant */
extern const struct sock_filter kiln_seccomp_bpf_strict[];
extern const unsigned short kiln_seccomp_bpf_strict_len;
/* the libseccomp version that compiled them */
extern const char kiln_seccomp_bpf_libseccomp[];

#endif
