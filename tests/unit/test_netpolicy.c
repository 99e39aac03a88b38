/* Unit tests for utils/netpolicy: address classes, allowlist parsing, checks. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "utils/error.h"
#include "utils/netpolicy.h"

/* Fills ss from "ADDR" and port; returns its length. */
static socklen_t mk(const char *addr, unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(addr, ':') == NULL) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)port);
        assert_int_equal(inet_pton(AF_INET, addr, &s->sin_addr), 1);
        return sizeof(*s);
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, addr, &s->sin6_addr), 1);
    return sizeof(*s);
}

static kiln_netclass_t cls(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t l = mk(addr, 80, &ss);
    return kiln_netpolicy_classify((struct sockaddr *)&ss, l);
}

static void test_classes(void **state)
{
    static const struct {
        const char *addr;
        kiln_netclass_t c;
    } table[] = {
        {"169.254.169.254", KILN_NETCLASS_METADATA},
        {"169.254.170.2", KILN_NETCLASS_METADATA},
        {"fd00:ec2::254", KILN_NETCLASS_METADATA},
        {"::ffff:169.254.169.254", KILN_NETCLASS_METADATA},
        {"64:ff9b::a9fe:a9fe", KILN_NETCLASS_METADATA},
        {"::169.254.169.254", KILN_NETCLASS_METADATA},
        {"2002:a9fe:a9fe::1", KILN_NETCLASS_METADATA},
        {"100.100.100.200", KILN_NETCLASS_METADATA},
        {"169.254.1.1", KILN_NETCLASS_LINK_LOCAL},
        {"fe80::1", KILN_NETCLASS_LINK_LOCAL},
        {"febf::1", KILN_NETCLASS_LINK_LOCAL},
        {"127.0.0.1", KILN_NETCLASS_LOOPBACK},
        {"127.255.1.2", KILN_NETCLASS_LOOPBACK},
        {"0.0.0.0", KILN_NETCLASS_LOOPBACK},
        {"::1", KILN_NETCLASS_LOOPBACK},
        {"::", KILN_NETCLASS_LOOPBACK},
        {"::ffff:127.0.0.1", KILN_NETCLASS_LOOPBACK},
        {"10.0.2.2", KILN_NETCLASS_PRIVATE},
        {"172.16.0.1", KILN_NETCLASS_PRIVATE},
        {"172.31.255.255", KILN_NETCLASS_PRIVATE},
        {"192.168.1.1", KILN_NETCLASS_PRIVATE},
        {"fd12:3456::1", KILN_NETCLASS_PRIVATE},
        {"fc00::1", KILN_NETCLASS_PRIVATE},
        {"::ffff:10.1.2.3", KILN_NETCLASS_PRIVATE},
        {"100.64.0.1", KILN_NETCLASS_CGNAT},
        {"100.127.255.255", KILN_NETCLASS_CGNAT},
        {"224.0.0.1", KILN_NETCLASS_RESERVED},
        {"255.255.255.255", KILN_NETCLASS_RESERVED},
        {"ff02::1", KILN_NETCLASS_RESERVED},
        {"172.32.0.1", KILN_NETCLASS_PUBLIC},
        {"172.15.255.255", KILN_NETCLASS_PUBLIC},
        {"100.128.0.1", KILN_NETCLASS_PUBLIC},
        {"203.0.113.10", KILN_NETCLASS_PUBLIC},
        {"8.8.8.8", KILN_NETCLASS_PUBLIC},
        {"2a00:1450::1", KILN_NETCLASS_PUBLIC},
        {"169.253.255.255", KILN_NETCLASS_PUBLIC},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        kiln_netclass_t got = cls(table[i].addr);
        if (got != table[i].c)
            fail_msg("%s: class %d, want %d", table[i].addr, got, table[i].c);
    }
}

static void test_specs(void **state)
{
    static const char *const good[] = {
        "10.0.0.0/8", "10.1.2.3",  "127.0.0.1:8080",  "127.0.0.0/8:3128", "fd00::/8",
        "::1",        "[::1]:443", "[fd00::]/8:3128", "[fd00::/8]:53",    "0.0.0.0/0"};
    static const char *const bad[] = {"",
                                      "10.0.0.0/33",
                                      "10.0.0.0/",
                                      "10.0.0.0/-1",
                                      "10.0.0.1:0",
                                      "10.0.0.1:65536",
                                      "host.example:80",
                                      "[10.0.0.1]:80",
                                      "::1/129",
                                      "[::1",
                                      "1.2.3.4:x",
                                      "1.2.3.4/8:",
                                      "10.0.0.0/8/8"};
    kiln_error_t err = {0};
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (kiln_netpolicy_validate(good[i], &err) < 0)
            fail_msg("%s refused: %s", good[i], err.msg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (kiln_netpolicy_validate(bad[i], &err) == 0)
            fail_msg("%s accepted", bad[i]);
        assert_non_null(strstr(err.msg, "bad address allowlist entry"));
    }
}

static int check(const kiln_netpolicy_t *p, const char *addr, unsigned port, kiln_error_t *err)
{
    struct sockaddr_storage ss;
    socklen_t l = mk(addr, port, &ss);
    return kiln_netpolicy_check(p, (struct sockaddr *)&ss, l, err);
}

static void test_public_mode(void **state)
{
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_error_t err = {0};
    (void)state;
    assert_int_equal(check(p, "203.0.113.7", 443, &err), 0);
    assert_int_equal(check(p, "10.1.2.3", 80, &err), -1);
    assert_non_null(strstr(err.msg, "10.1.2.3 port 80"));
    assert_non_null(strstr(err.msg, "private network"));
    assert_non_null(strstr(err.msg, "--allow-address 10.1.2.3/32"));
    assert_int_equal(check(p, "127.0.0.1", 80, &err), -1);
    assert_int_equal(check(p, "::1", 80, &err), -1);
    assert_non_null(strstr(err.msg, "[::1]/128"));
    assert_int_equal(check(p, "100.64.1.1", 80, &err), -1);
    assert_int_equal(check(p, "fe80::1", 80, &err), -1);
    assert_int_equal(check(p, "169.254.169.254", 80, &err), -1);
    assert_non_null(strstr(err.msg, "never allowed"));

    assert_int_equal(kiln_netpolicy_allow(p, "127.0.0.0/8", &err), 0);
    assert_int_equal(kiln_netpolicy_allow(p, "10.1.0.0/16:3128", &err), 0);
    assert_int_equal(kiln_netpolicy_allow(p, "169.254.0.0/16", &err), 0);
    assert_int_equal(check(p, "127.0.0.1", 80, &err), 0);
    assert_int_equal(check(p, "::ffff:127.0.0.1", 80, &err), 0); /* mapped matches a v4 rule */
    assert_int_equal(check(p, "10.1.2.3", 3128, &err), 0);
    assert_int_equal(check(p, "10.1.2.3", 80, &err), -1);
    assert_int_equal(check(p, "10.2.2.3", 3128, &err), -1);
    assert_int_equal(check(p, "169.254.1.1", 80, &err), 0);
    /* metadata stays closed whatever the allowlist says */
    assert_int_equal(check(p, "169.254.169.254", 80, &err), -1);
    kiln_netpolicy_free(p);
}

static void test_no_link_local_mode(void **state)
{
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_NO_LINK_LOCAL);
    kiln_netpolicy_t *q;
    kiln_error_t err = {0};
    (void)state;
    assert_int_equal(check(p, "127.0.0.1", 5000, &err), 0);
    assert_int_equal(check(p, "10.0.0.1", 5000, &err), 0);
    assert_int_equal(check(p, "169.254.3.4", 80, &err), -1);
    assert_int_equal(kiln_netpolicy_allow(p, "169.254.0.0/16", &err), 0);
    assert_int_equal(check(p, "169.254.3.4", 80, &err), -1);
    assert_int_equal(check(p, "fd00:ec2::254", 80, &err), -1);
    q = kiln_netpolicy_dup(p);
    assert_int_equal(kiln_netpolicy_mode(q), KILN_NETPOLICY_NO_LINK_LOCAL);
    kiln_netpolicy_free(q);
    kiln_netpolicy_free(p);
}

static void test_resolvers(void **state)
{
    char path[] = "/tmp/kiln-resolv-XXXXXX";
    const char text[] = "# comment\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n"
                        "options ndots:1\n";
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_error_t err = {0};
    int fd = mkstemp(path);
    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
    close(fd);
    assert_int_equal(kiln_netpolicy_allow_resolvers(p, path, &err), 0);
    assert_int_equal(check(p, "10.0.0.2", 53, &err), 0);
    assert_int_equal(check(p, "10.0.0.2", 80, &err), -1);
    assert_int_equal(check(p, "fe80::1", 53, &err), 0);
    assert_int_equal(kiln_netpolicy_allow_resolvers(p, "/nonexistent/resolv.conf", &err), 0);
    unlink(path);
    kiln_netpolicy_free(p);
}

static void test_host_address(void **state)
{
    /* an address of this host that is public by class is still refused */
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_error_t err = {0};
    (void)state;
    /* the test cannot add an interface; loopback must be refused either way */
    assert_int_equal(check(p, "127.0.0.1", 1, &err), -1);
    assert_non_null(strstr(err.msg, "loopback"));
    kiln_netpolicy_free(p);
}

static void test_opens(void **state)
{
    /* the ranges a nat step keeps routed because the allowlist opens part of them */
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_error_t err = {0};
    (void)state;
    assert_false(kiln_netpolicy_opens(p, "10.0.0.0/8"));
    assert_int_equal(kiln_netpolicy_allow(p, "10.203.0.0/24", &err), 0);
    assert_int_equal(kiln_netpolicy_allow(p, "127.0.0.1:8080", &err), 0);
    assert_int_equal(kiln_netpolicy_allow(p, "[fd42::/16]:443", &err), 0);
    assert_true(kiln_netpolicy_opens(p, "10.0.0.0/8")); /* a smaller entry inside */
    assert_true(kiln_netpolicy_opens(p, "10.203.0.7")); /* an address inside an entry */
    assert_false(kiln_netpolicy_opens(p, "172.16.0.0/12"));
    assert_true(kiln_netpolicy_opens(p, "127.0.0.0/8")); /* a port does not matter */
    assert_true(kiln_netpolicy_opens(p, "fc00::/7"));
    assert_false(kiln_netpolicy_opens(p, "fe80::/10"));
    assert_false(kiln_netpolicy_opens(p, "not-a-cidr"));
    kiln_netpolicy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),     cmocka_unit_test(test_specs),
        cmocka_unit_test(test_public_mode), cmocka_unit_test(test_no_link_local_mode),
        cmocka_unit_test(test_resolvers),   cmocka_unit_test(test_host_address),
        cmocka_unit_test(test_opens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
