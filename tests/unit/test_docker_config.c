/* Unit tests for oci/docker_config: config.json lookups, login storage and
 * built-in credential providers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/docker_config.h"
#include "oci/registry.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static char *dir;

static int setup(void **state)
{
    if (kiln_fs_mkdtemp("/tmp", "kiln-dc-", &dir, NULL) < 0)
        return -1;
    setenv("DOCKER_CONFIG", dir, 1);
    return 0;
}

static int teardown(void **state)
{
    kiln_fs_rm_rf(dir, NULL);
    free(dir);
    return 0;
}

static void write_config(const char *json)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/config.json", dir);
    assert_int_equal(kiln_fs_write_file_atomic(p, json, strlen(json), 0600, NULL), 0);
}

static void test_auths(void **state)
{
    kiln_cred_t c = {0};
    kiln_error_t err = {0};
    /* "alice:pw:with:colons" */
    write_config(
        "{\"auths\":{\"https://r.example:5000\":{\"auth\":\"YWxpY2U6cHc6d2l0aDpjb2xvbnM=\"},"
        "\"https://index.docker.io/v1/\":{\"username\":\"bob\",\"password\":\"pb\"},"
        "\"t.example\":{\"identitytoken\":\"rt\"}}}");
    assert_int_equal(kiln_docker_config_get("r.example:5000", &c, &err), 1);
    assert_string_equal(c.username, "alice");
    assert_string_equal(c.password, "pw:with:colons");
    kiln_cred_clear(&c);
    assert_int_equal(kiln_docker_config_get("docker.io", &c, &err), 1);
    assert_string_equal(c.username, "bob");
    kiln_cred_clear(&c);
    assert_int_equal(kiln_docker_config_get("t.example", &c, &err), 1);
    assert_string_equal(c.identity_token, "rt");
    assert_null(c.password);
    kiln_cred_clear(&c);
    assert_int_equal(kiln_docker_config_get("other.example", &c, &err), 0);
}

static void test_bad_config(void **state)
{
    kiln_cred_t c = {0};
    kiln_error_t err = {0};
    write_config("{\"auths\":{\"r\":{\"auth\":\"bm9jb2xvbg==\"}}}"); /* "nocolon" */
    assert_int_equal(kiln_docker_config_get("r", &c, &err), -1);
    assert_non_null(strstr(err.msg, "not user:password"));
    assert_null(strstr(err.msg, "nocolon"));
    write_config("{\"auths\": [");
    assert_int_equal(kiln_docker_config_get("r", &c, &err), -1);
}

static int provider(const char *host, kiln_cred_t *out, void *ud, kiln_error_t *err)
{
    if (strstr(host, ".dkr.ecr.") == NULL)
        return 0;
    out->username = kiln_xstrdup("AWS");
    out->password = kiln_xstrdup((const char *)ud);
    return 1;
}

static void test_provider_and_store(void **state)
{
    kiln_cred_t c = {0};
    kiln_error_t err = {0};
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *p = kiln_xasprintf("%s/config.json", dir);
    struct stat st;
    size_t len;

    write_config("{\"credHelpers\":{\"123.dkr.ecr.example\":\"ecr-login\"},\"other\":1}");
    assert_int_equal(kiln_registry_set_cred_provider("ecr-login", provider, "tok"), 0);
    assert_int_equal(kiln_docker_config_get("123.dkr.ecr.example", &c, &err), 1);
    assert_string_equal(c.username, "AWS");
    assert_string_equal(c.password, "tok");
    kiln_cred_clear(&c);
    kiln_registry_set_cred_provider("ecr-login", NULL, NULL);

    /* login storage keeps the other keys and writes mode 0600 */
    assert_int_equal(kiln_docker_config_store("r.example", "u", "p@ss", &err), 0);
    assert_int_equal(kiln_fs_read_file(p, 65536, &text, &len, NULL), 0);
    assert_non_null(strstr(text, "\"other\": 1"));
    assert_non_null(strstr(text, "dTpwQHNz")); /* base64("u:p@ss") */
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(kiln_docker_config_get("r.example", &c, &err), 1);
    assert_string_equal(c.password, "p@ss");
    kiln_cred_clear(&c);
    assert_int_equal(kiln_docker_config_erase("r.example", &err), 1);
    assert_int_equal(kiln_docker_config_get("r.example", &c, &err), 0);
}

/* ECR hosts use the built-in ecr-login provider without any config.json
 * entry; other hosts without one get no credentials. */
static void test_ecr_default(void **state)
{
    kiln_cred_t c = {0};
    kiln_error_t err = {0};
    _cleanup_free_ char *p = kiln_xasprintf("%s/config.json", dir);

    unlink(p);
    assert_int_equal(kiln_registry_set_cred_provider("ecr-login", provider, "tok2"), 0);
    assert_int_equal(
        kiln_docker_config_get("123456789012.dkr.ecr.eu-west-1.amazonaws.com", &c, &err), 1);
    assert_string_equal(c.username, "AWS");
    assert_string_equal(c.password, "tok2");
    kiln_cred_clear(&c);
    assert_int_equal(kiln_docker_config_get("registry.example.com", &c, &err), 0);
    write_config("{\"auths\":{}}");
    assert_int_equal(
        kiln_docker_config_get("123456789012.dkr.ecr.eu-west-1.amazonaws.com", &c, &err), 1);
    kiln_cred_clear(&c);
    kiln_registry_set_cred_provider("ecr-login", NULL, NULL);
    assert_int_equal(
        kiln_docker_config_get("123456789012.dkr.ecr.eu-west-1.amazonaws.com", &c, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auths),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_provider_and_store),
        cmocka_unit_test(test_ecr_default),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
