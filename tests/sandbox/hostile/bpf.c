#define _GNU_SOURCE
/* bpf() must fail (EPERM). */
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return verdict("bpf map create", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr)));
}
