/* kiln — the step seccomp programs kiln carries (compiled at build time by
 * sandbox/seccomp_gen) equal a fresh compile of the rules with this
 * machine's libseccomp, instruction for instruction, and, installed, refuse
 * what the rules refuse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/seccomp.h"
#include "sandbox/seccomp_bpf.h"
#include "sandbox/seccomp_rules.h"

static void same_program(int strict, const struct sock_filter *carried, unsigned short len)
{
    struct sock_fprog fresh;
    kiln_error_t err = {0};

    assert_int_equal(kiln_seccomp_compile(strict, &fresh, &err), 0);
    assert_int_equal(fresh.len, len);
    assert_true(len > 100); /* the rules, not an empty allow-all */
    for (unsigned i = 0; i < len; i++) {
        assert_int_equal(fresh.filter[i].code, carried[i].code);
        assert_int_equal(fresh.filter[i].jt, carried[i].jt);
        assert_int_equal(fresh.filter[i].jf, carried[i].jf);
        assert_int_equal(fresh.filter[i].k, carried[i].k);
    }
    free(fresh.filter);
}

static void test_default_equals_fresh_compile(void **state)
{
    (void)state;
    same_program(0, kiln_seccomp_bpf_default, kiln_seccomp_bpf_default_len);
}

static void test_strict_equals_fresh_compile(void **state)
{
    (void)state;
    same_program(1, kiln_seccomp_bpf_strict, kiln_seccomp_bpf_strict_len);
    assert_true(kiln_seccomp_bpf_strict_len > kiln_seccomp_bpf_default_len);
}

/* In a child: installs the carried filter and reports, as its exit code, a
 * bit per expectation met. */
static int installed_child(int strict)
{
    int bits = 0;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        kiln_seccomp_install(KILN_SECCOMP_DEFAULT, strict) < 0)
        return 0;
    /* a path that does not exist: without the filter this is ENOENT, never a change */
    if (umount2("/nonexistent/kiln-test", 0) < 0 && errno == EPERM)
        bits |= 1;
    if (socket(AF_PACKET, SOCK_RAW, 0) < 0 && errno == EAFNOSUPPORT)
        bits |= 2;
    if (getpid() > 0) /* what the rules allow still works */
        bits |= 4;
    if (strict && chroot("/") < 0 && errno == EPERM)
        bits |= 8;
    return bits;
}

static void check_installed(int strict, int want)
{
    int st;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(installed_child(strict));
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), want);
}

static void test_installed_refuses(void **state)
{
    (void)state;
    check_installed(0, 7);
    check_installed(1, 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_equals_fresh_compile),
        cmocka_unit_test(test_strict_equals_fresh_compile),
        cmocka_unit_test(test_installed_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
