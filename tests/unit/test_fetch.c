/* Host-side fetch policy: git URL transports, the git source rules (before
 * any fetch), and the curl guard on utils/http (loopback only). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utils/git.h"
#include "utils/http.h"
#include "utils/netpolicy.h"

static void test_transport(void **state)
{
    static const struct {
        const char *url;
        kiln_git_transport_t t;
    } table[] = {
        {"https://github.com/a/b.git", KILN_GIT_HTTPS},
        {"http://git.example/a.git", KILN_GIT_HTTP},
        {"git://git.example/a.git", KILN_GIT_PLAIN},
        {"ssh://git@host/a.git", KILN_GIT_SSH},
        {"git+ssh://host/a.git", KILN_GIT_SSH},
        {"ssh+git://host/a.git", KILN_GIT_SSH},
        {"git@github.com:a/b.git", KILN_GIT_SSH},
        {"host:path/repo.git", KILN_GIT_SSH},
        {"[::1]:repo.git", KILN_GIT_SSH},
        {"file:///var/lib/kiln/git/x.git", KILN_GIT_LOCAL},
        {"/var/lib/kiln/git/x.git", KILN_GIT_LOCAL},
        {"../lib.git", KILN_GIT_LOCAL},
        {"./lib", KILN_GIT_LOCAL},
        {"lib", KILN_GIT_LOCAL},
        {"dir/with:colon", KILN_GIT_LOCAL}, /* a '/' before the ':' */
        {"ext::sh -c touch% /tmp/x", KILN_GIT_OTHER},
        {"fd::3", KILN_GIT_OTHER},
        {"FILE:///etc", KILN_GIT_OTHER}, /* libgit2 matches schemes case-sensitively */
        {"HTTPS://host/a.git", KILN_GIT_OTHER},
        {"svn://host/repo", KILN_GIT_OTHER},
        {"", KILN_GIT_OTHER},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (kiln_git_url_transport(table[i].url) != table[i].t)
            fail_msg("%s: got %d, want %d", table[i].url, kiln_git_url_transport(table[i].url),
                     table[i].t);
    }
}

/* The source rules refuse before anything is fetched or written. */
static void refused(const kiln_git_policy_t *p, const char *url, const char *want)
{
    kiln_git_opts_t o = {.cache_dir = "/nonexistent/kiln-test-cache", .policy = *p};
    kiln_error_t err = {0};
    char *commit = NULL;

    assert_int_equal(kiln_git_checkout(url, NULL, &o, "/nonexistent/kiln-test-dest", &commit, &err),
                     -1);
    if (strstr(err.msg, want) == NULL)
        fail_msg("%s: \"%s\" does not say \"%s\"", url, err.msg, want);
    assert_null(commit);
}

static void test_git_rules(void **state)
{
    kiln_git_policy_t server = {.server_mode = 1}, cli = {0};
    (void)state;
    refused(&server, "file:///var/lib/kiln/git/other.git",
            "git source file:///var/lib/kiln/git/other.git is not allowed for server builds "
            "(only https:// and ssh://)");
    refused(&server, "/var/lib/kiln/git/other.git", "not allowed for server builds");
    refused(&server, "ext::sh -c id", "git source ext::sh -c id is not allowed for server builds");
    refused(&server, "http://git.example/a.git",
            "plain-text git needs \"policy\": {\"allow_http_git\": true} in the server config");
    refused(&server, "git://git.example/a.git", "allow_http_git");
    refused(&cli, "http://git.example/a.git", "plain-text git needs --allow-http-git");
    refused(&cli, "http://user:hunter2@git.example/a.git", "http://***@git.example/a.git");
}

static void test_http_guard(void **state)
{
    kiln_netpolicy_t *p = kiln_netpolicy_new(KILN_NETPOLICY_PUBLIC);
    kiln_http_t *h = kiln_http_new();
    kiln_http_request_t rq = {.method = "GET",
                              .url = "http://127.0.0.1:1/x?token=s3cr3t",
                              .body_fd = -1,
                              .timeout_seconds = 10};
    kiln_http_response_t resp = {0};
    kiln_error_t err = {0};
    (void)state;

    kiln_http_set_policy(h, p);
    assert_int_equal(kiln_http_do(h, &rq, &resp, &err), -1);
    assert_int_equal(err.code, EACCES);
    assert_non_null(strstr(err.msg, "GET http://127.0.0.1:1/x: 127.0.0.1 port 1: loopback "
                                    "address, refused by the address policy (an operator can "
                                    "allow it with --allow-address 127.0.0.1/32)"));
    assert_null(strstr(err.msg, "s3cr3t"));
    assert_non_null(kiln_http_refusal(h));

    /* allowed: the connection is attempted (and refused by the closed port) */
    assert_int_equal(kiln_netpolicy_allow(p, "127.0.0.1/32", NULL), 0);
    kiln_http_set_policy(h, p);
    kiln_error_clear(&err);
    assert_int_equal(kiln_http_do(h, &rq, &resp, &err), -1);
    assert_int_not_equal(err.code, EACCES);
    assert_null(kiln_http_refusal(h));

    /* without a policy nothing is checked */
    kiln_http_set_policy(h, NULL);
    kiln_error_clear(&err);
    assert_int_equal(kiln_http_do(h, &rq, &resp, &err), -1);
    assert_null(kiln_http_refusal(h));
    kiln_http_free(h);
    kiln_netpolicy_free(p);
}

static void test_policy_with(void **state)
{
    const char *good[] = {"10.0.0.0/8", "[fd00::1]:443"}, *bad[] = {"10.0.0.0/8", "mirror.lan"};
    kiln_netpolicy_t *p = NULL;
    kiln_error_t err = {0};
    (void)state;

    assert_int_equal(kiln_netpolicy_with(KILN_NETPOLICY_PUBLIC, good, 2, &p, &err), 0);
    assert_int_equal(kiln_netpolicy_mode(p), KILN_NETPOLICY_PUBLIC);
    kiln_netpolicy_free(p);
    p = NULL;
    assert_int_equal(kiln_netpolicy_with(KILN_NETPOLICY_PUBLIC, bad, 2, &p, &err), -1);
    assert_null(p);
    assert_non_null(strstr(err.msg, "mirror.lan"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport),
        cmocka_unit_test(test_git_rules),
        cmocka_unit_test(test_http_guard),
        cmocka_unit_test(test_policy_with),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
