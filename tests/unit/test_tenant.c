/* Unit tests for the server's tenants: the "tenants" config (names, clear and sha256: tokens,
 * restrictions, errors naming the tenant and key but never a token), the old single-tenant
 * forms as tenant "default", and webhook projects' tenants; the kiln.db tenant column is
 * test_server_db. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/entitlement.h"
#include "src/server/config.h"
#include "src/server/tenant.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Loads text as the server config with KILN_API_TOKENS set to env (NULL: unset). */
static int load(const char *text, const char *env, kiln_config_t **c, kiln_error_t *err)
{
    char path[] = "/tmp/kiln-tenant-config-XXXXXX";
    int fd = mkstemp(path), r;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    if (env)
        setenv("KILN_API_TOKENS", env, 1);
    else
        unsetenv("KILN_API_TOKENS");
    *c = NULL;
    kiln_error_clear(err);
    r = kiln_config_load(path, c, err);
    unsetenv("KILN_API_TOKENS");
    unlink(path);
    return r;
}

/* The tenant name of the bearer token tok, or "" when it has none. */
static const char *who(const kiln_config_t *c, const char *tok)
{
    static char header[256];
    const kiln_tenant_t *t;
    snprintf(header, sizeof(header), "Bearer %s", tok);
    t = kiln_config_tenant_for_token(c, header);
    return t ? t->name : "";
}

static char *sha256_token(const char *tok)
{
    unsigned char h[32];
    char *s = kiln_xmalloc(7 + 64 + 1);
    SHA256((const unsigned char *)tok, strlen(tok), h);
    memcpy(s, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(s + 7 + 2 * i, 3, "%02x", h[i]);
    return s;
}

static void test_two_tenants(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char *hash = sha256_token("globex-secret-2");
    char *text = kiln_xasprintf(
        "{\"tenants\": ["
        "{\"name\": \"acme\", \"tokens\": [\"acme-token-1\"],"
        " \"outputs\": {\"registry\": [\"reg.example/acme/\"], \"s3\": [\"s3://sites/acme/\"]},"
        " \"entitlements\": [\"network.host\"], \"limits\": {\"memory\": \"1g\"},"
        " \"max_concurrent\": 2, \"credentials\": {\"aws\": {\"role_arn\": "
        "\"arn:aws:iam::123456789012:role/x\"}}},"
        "{\"name\": \"globex\", \"tokens\": [\"%s\"]}],"
        " \"policy\": {\"entitlements\": [\"security.insecure\"]},"
        " \"projects\": [{\"name\": \"site\", \"github\": \"acme/site\", \"tenant\": \"acme\"}]}",
        hash);
    const kiln_tenant_t *a, *g;
    (void)state;

    assert_int_equal(load(text, NULL, &c, &err), 0);
    assert_int_equal(c->n_tenants, 2);
    assert_int_equal(kiln_config_token_count(c), 2);
    assert_string_equal(who(c, "acme-token-1"), "acme");
    assert_string_equal(who(c, "globex-secret-2"), "globex");
    /* the hash itself is not a token */
    assert_string_equal(who(c, hash), "");
    assert_string_equal(who(c, "acme-token-2"), "");
    assert_null(kiln_config_tenant_for_token(c, "Basic YWNtZS10b2tlbi0x"));
    assert_null(kiln_config_tenant_for_token(c, NULL));
    assert_null(kiln_config_tenant_for_token(c, "Bearer "));

    a = kiln_config_tenant_named(c, "acme");
    g = kiln_config_tenant_named(c, "globex");
    assert_non_null(a);
    assert_non_null(g);
    assert_null(kiln_config_tenant_named(c, "default"));
    assert_string_equal(json_string_value(json_array_get(a->registry_prefixes, 0)),
                        "reg.example/acme/");
    assert_string_equal(json_string_value(json_array_get(a->s3_prefixes, 0)), "s3://sites/acme/");
    /* a tenant's entitlements replace the policy's; without them, the policy's apply */
    assert_int_equal(a->entitlements, KILN_ENTITLEMENT_NETWORK_HOST);
    assert_int_equal(g->entitlements, KILN_ENTITLEMENT_SECURITY_INSECURE);
    assert_string_equal(json_string_value(json_object_get(a->limits, "memory")), "1g");
    assert_int_equal(a->max_concurrent, 2);
    assert_non_null(json_object_get(a->raw, "credentials"));
    assert_null(g->registry_prefixes);
    assert_null(g->s3_prefixes);
    assert_null(g->limits);
    assert_int_equal(g->max_concurrent, 0);
    /* the project's tenant */
    assert_string_equal(
        json_string_value(json_object_get(kiln_config_project(c, "github", "acme/site"), "tenant")),
        "acme");
    kiln_config_free(c);
    free(text);
    free(hash);
}

/* The old forms: top-level tokens and KILN_API_TOKENS are tenant "default"'s, with no output
 * restriction; without any, "default" exists with no token (--no-auth). */
static void test_default_tenant(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    const kiln_tenant_t *d;
    (void)state;

    assert_int_equal(load("{\"tokens\": [\"old-token-123\"], \"projects\": [{\"name\": \"p\", "
                          "\"github\": \"o/p\"}]}",
                          "env-token-456,,old-token-123", &c, &err),
                     0);
    assert_int_equal(c->n_tenants, 1);
    d = kiln_config_tenant_named(c, KILN_TENANT_DEFAULT);
    assert_non_null(d);
    assert_null(d->registry_prefixes);
    assert_null(d->s3_prefixes);
    assert_string_equal(who(c, "old-token-123"), "default");
    assert_string_equal(who(c, "env-token-456"), "default");
    assert_int_equal(kiln_config_token_count(c), 2); /* a repeat is one token */
    assert_string_equal(
        json_string_value(json_object_get(kiln_config_project(c, "github", "o/p"), "tenant")),
        "default");
    kiln_config_free(c);

    assert_int_equal(load("{}", NULL, &c, &err), 0);
    assert_int_equal(c->n_tenants, 1);
    assert_int_equal(kiln_config_token_count(c), 0);
    assert_non_null(kiln_config_tenant_named(c, "default"));
    kiln_config_free(c);

    /* tenants plus the old tokens: "default" is added beside them */
    assert_int_equal(load("{\"tenants\": [{\"name\": \"acme\", \"tokens\": [\"acme-token-1\"]}]}",
                          "env-token-456", &c, &err),
                     0);
    assert_int_equal(c->n_tenants, 2);
    assert_string_equal(who(c, "env-token-456"), "default");
    assert_string_equal(who(c, "acme-token-1"), "acme");
    kiln_config_free(c);
}

/* Each error names the tenant (or index) and the key, and never the token. */
static void test_errors(void **state)
{
    static const struct {
        const char *text, *env, *want;
    } cases[] = {
        {"{\"tenants\": {}}", NULL, "tenants: must be an array"},
        {"{\"tenants\": [7]}", NULL, "tenants[0]: must be an object"},
        {"{\"tenants\": [{\"tokens\": []}]}", NULL, "tenants[0].name: must match"},
        {"{\"tenants\": [{\"name\": \"Acme\"}]}", NULL, "tenants[0].name: must match"},
        {"{\"tenants\": [{\"name\": \"-acme\"}]}", NULL, "tenants[0].name: must match"},
        {"{\"tenants\": [{\"name\": "
         "\"a234567890123456789012345678901234567890123456789012345678901234\"}]}",
         NULL, "tenants[0].name: must match"},
        {"{\"tenants\": [{\"name\": \"acme\"}, {\"name\": \"acme\"}]}", NULL,
         "tenant 'acme': the name is used by another tenant"},
        {"{\"tenants\": [{\"name\": \"acme\", \"outputz\": {}}]}", NULL,
         "tenant 'acme': unknown key 'outputz'"},
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"docker\": []}}]}", NULL,
         "tenant 'acme'.outputs.docker: unknown key"},
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"s3\": [\"\"]}}]}", NULL,
         "tenant 'acme'.outputs.s3[0]: must be a non-empty string"},
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"registry\": \"r/\"}}]}", NULL,
         "tenant 'acme'.outputs.registry: must be an array"},
        /* each prefix parses as output confinement reads it (src/server/outconf) */
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"registry\": [\"r.io/a/../b/\"]}}]}",
         NULL, "tenant 'acme'.outputs.registry[0]: 'r.io/a/../b/'"},
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"s3\": [\"s3://bkt/a//c\"]}}]}", NULL,
         "tenant 'acme'.outputs.s3[0]: 's3://bkt/a//c' has an empty key segment"},
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"notify\": [\"https://q\"]}}]}", NULL,
         "tenant 'acme'.outputs.notify[0]: 'https://q' is not an sqs:// or sns:// target"},
        {"{\"tenants\": [{\"name\": \"acme\", \"tokens\": \"secret-token-1\"}]}", NULL,
         "tenant 'acme'.tokens: must be an array"},
        {"{\"tenants\": [{\"name\": \"acme\", \"tokens\": [\"short\"]}]}", NULL,
         "tenant 'acme'.tokens[0]: must be a string of 8+ characters"},
        {"{\"tenants\": [{\"name\": \"acme\", \"tokens\": [\"sha256:abcd\"]}]}", NULL,
         "tenant 'acme'.tokens[0]: a sha256: token must be sha256:<64 hex digits>"},
        {"{\"tenants\": [{\"name\": \"acme\", \"tokens\": [\"sha256:"
         "zz00000000000000000000000000000000000000000000000000000000000000\"]}]}",
         NULL, "tenant 'acme'.tokens[0]: a sha256: token"},
        {"{\"tenants\": [{\"name\": \"acme\", \"tokens\": [\"shared-token-1\"]}, "
         "{\"name\": \"globex\", \"tokens\": [\"shared-token-1\"]}]}",
         NULL, "tenant 'globex'.tokens[0]: the same token is also tenant 'acme''s"},
        {"{\"tenants\": [{\"name\": \"acme\", \"tokens\": [\"shared-token-1\"]}]}",
         "shared-token-1", "tokens[0]: the same token is also tenant 'acme''s"},
        {"{\"tenants\": [{\"name\": \"default\", \"tokens\": [\"t-123456789\"]}]}", "other-token-1",
         "tenant 'default': the top-level tokens"},
        {"{\"tenants\": [{\"name\": \"acme\", \"entitlements\": [\"root\"]}]}", NULL,
         "tenant 'acme'.entitlements[0]: must be network.host or security.insecure"},
        {"{\"tenants\": [{\"name\": \"acme\", \"max_concurrent\": -1}]}", NULL,
         "tenant 'acme'.max_concurrent: must be an integer"},
        {"{\"tenants\": [{\"name\": \"acme\", \"limits\": [1]}]}", NULL,
         "tenant 'acme'.limits: must be an object"},
        {"{\"tokens\": \"abcdefghij\"}", NULL, "tokens: must be an array of strings"},
        {"{\"tokens\": [\"short\"]}", NULL, "tokens[0]: must be a string of 8+ characters"},
        {"{\"tenants\": [{\"name\": \"acme\"}], \"projects\": [{\"name\": \"p\", \"github\": "
         "\"o/p\"}]}",
         NULL, "projects[0].tenant: no tenant 'default'"},
        {"{\"projects\": [{\"name\": \"p\", \"tenant\": \"nobody\"}]}", NULL,
         "projects[0].tenant: no tenant 'nobody'"},
        /* a project's pushes stay within its tenant's outputs (checked at load) */
        {"{\"tenants\": [{\"name\": \"acme\", \"outputs\": {\"registry\": [\"r.io/acme/\"]}}], "
         "\"projects\": [{\"name\": \"p\", \"github\": \"o/r\", \"tenant\": \"acme\", \"build\": "
         "{\"outputs\": [{\"type\": \"registry\", \"name\": \"r.io/beta/app\"}]}}]}",
         NULL,
         "projects[0].build: field 'outputs[0].name': 'r.io/beta/app' is r.io/beta/app, outside"},
        {"{\"projects\": [{\"name\": \"p\", \"github\": \"o/r\", \"build\": {\"outputs\": "
         "[{\"type\": \"local\", \"dest\": \"/etc\"}]}}]}",
         NULL, "projects[0].build: field 'outputs[0].dest': '/etc' is absolute"},
        {"{\"projects\": [{\"name\": \"p\", \"tenant\": 3}]}", NULL,
         "projects[0].tenant: must be a string"},
        {"{\"projects\": [{\"name\": \"p\", \"build\": {\"tenant\": \"default\"}}]}", NULL,
         "projects[0].build.tenant: the tenant of a project is projects[0].tenant"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_config_t *c = NULL;
        kiln_error_t err = {0};
        int r = load(cases[i].text, cases[i].env, &c, &err);
        if (r != -1 || strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: %s -> %d '%s', want '%s'", i, cases[i].text, r, err.msg,
                     cases[i].want);
        assert_null(c);
        /* no token in any message */
        assert_null(strstr(err.msg, "shared-token-1"));
        assert_null(strstr(err.msg, "secret-token-1"));
        assert_null(strstr(err.msg, "short\""));
    }
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(kiln_tenant_name_valid("a"));
    assert_true(kiln_tenant_name_valid("acme_2-prod"));
    assert_true(kiln_tenant_name_valid("0x"));
    assert_false(kiln_tenant_name_valid(""));
    assert_false(kiln_tenant_name_valid(NULL));
    assert_false(kiln_tenant_name_valid("_acme"));
    assert_false(kiln_tenant_name_valid("acme.corp"));
    assert_false(kiln_tenant_name_valid("acme/x"));
    assert_false(kiln_tenant_name_valid("ACME"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_tenants),
        cmocka_unit_test(test_default_tenant),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_name_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
