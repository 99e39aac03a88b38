#define _GNU_SOURCE
/* The kernel keyring (add_key, keyctl, request_key) must be unreachable. */
#include <linux/keyctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile.h"

int main(void)
{
    if (syscall(SYS_add_key, "user", "kiln-hostile", "x", 1, KEY_SPEC_PROCESS_KEYRING) >= 0)
        return escaped("add_key");
    if (syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) >= 0)
        return escaped("keyctl");
    return verdict("request_key", syscall(SYS_request_key, "user", "kiln-hostile", NULL, 0));
}
