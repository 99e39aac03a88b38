/* kiln — seccomp filter, capabilities and no_new_privs for a step. */
#include "sandbox/seccomp.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/seccomp_bpf.h"

int kiln_seccomp_prepare(kiln_seccomp_profile_t profile, int strict, kiln_error_t *err)
{
    /* The programs were compiled at build time (sandbox/seccomp_gen from
     * sandbox/seccomp_rules): nothing to prepare, nor libseccomp to load. */
    (void)profile, (void)strict, (void)err;
    return 0;
}

int kiln_seccomp_install(kiln_seccomp_profile_t profile, int strict)
{
    struct sock_fprog p;

    if (profile == KILN_SECCOMP_UNCONFINED)
        return 0;
    p.len = strict ? kiln_seccomp_bpf_strict_len : kiln_seccomp_bpf_default_len;
    p.filter = (struct sock_filter *)(strict ? kiln_seccomp_bpf_strict : kiln_seccomp_bpf_default);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p, 0, 0) < 0)
        return -errno;
    return 0;
}

int kiln_caps_drop_bounding(uint64_t caps)
{
    int last = CAP_LAST_CAP;

    for (int c = 0; c <= last + 8 && c < 64; c++) {
        if (caps & (1ull << c))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
            return -errno;
    }
    return 0;
}

int kiln_caps_restrict(uint64_t caps)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];

    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    memset(data, 0, sizeof(data));
    data[0].effective = data[0].permitted = data[0].inheritable = (uint32_t)caps;
    data[1].effective = data[1].permitted = data[1].inheritable = (uint32_t)(caps >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;
    return 0;
}
