/* Unit tests for per-tenant credentials (src/server/tenantcreds): the "credentials" config
 * (errors naming the tenant and key, never a secret), where each tenant's credentials come
 * from (own, the server's, none), and the handoff to a build's children: 0600 files in the
 * build's 0700 secrets directory and an environment without the server's credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/server/config.h"
#include "src/server/tenant.h"
#include "src/server/tenantcreds.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/mem.h"

static char tmp[256];

static int setup(void **state)
{
    char *d = NULL;
    if (kiln_fs_mkdtemp("/tmp", "kiln-tenantcreds-test.", &d, NULL) < 0)
        return -1;
    snprintf(tmp, sizeof(tmp), "%s", d);
    free(d);
    unsetenv("KILN_API_TOKENS");
    return 0;
}

static int teardown(void **state)
{
    kiln_fs_rm_rf(tmp, NULL);
    return 0;
}

/* Writes text to tmp/name; returns the path (malloc'ed). */
static char *put(const char *name, const char *text)
{
    char *p = kiln_xasprintf("%s/%s", tmp, name);
    assert_int_equal(kiln_fs_write_file_atomic(p, text, strlen(text), 0600, NULL), 0);
    return p;
}

/* Checks a "credentials" value given as JSON text for tenant 'acme'; returns its result. */
static int check(const char *json, kiln_error_t *err)
{
    json_t *v = json_loads(json, 0, NULL);
    int rc;
    assert_non_null(v);
    kiln_error_clear(err);
    rc = kiln_tenantcreds_check(v, "tenant 'acme'", err);
    json_decref(v);
    return rc;
}

static void test_config_errors(void **state)
{
    _cleanup_free_ char *auth = put("auth.json", "{\"auths\": {\"r.example:5000\": {\"auth\": "
                                                 "\"dTpTRUNSRVRwYXNz\"}}}");
    _cleanup_free_ char *helper =
        put("helper.json", "{\"credHelpers\": {\"r.example\": \"pass\"}, \"auths\": {}}");
    _cleanup_free_ char *store = put("store.json", "{\"credsStore\": \"desktop\"}");
    _cleanup_free_ char *aws = put("aws", "[default]\naws_access_key_id = AKIDFILE\n"
                                          "aws_secret_access_key = fileSECRETvalue\n"
                                          "[other]\naws_access_key_id = AKIDONLY\n");
    _cleanup_free_ char *pw = put("pw", "SECRETpw\n");
    kiln_error_t err = {0};
    char buf[2048];
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"[]", "tenant 'acme'.credentials: must be an object"},
        {"{\"registy\": {}}", "tenant 'acme'.credentials: unknown key 'registy'"},
        {"{\"inherit\": 1}", "tenant 'acme'.credentials.inherit: must be true or false"},
        {"{\"registry\": {}}", "tenant 'acme'.credentials.registry: needs \"auth_file\" or "
                               "\"hosts\""},
        {"{\"registry\": {\"auth_file\": \"rel.json\"}}",
         "tenant 'acme'.credentials.registry.auth_file: must be an absolute path"},
        {"{\"registry\": {\"hosts\": {\"bad host\": {}}}}",
         "tenant 'acme'.credentials.registry.hosts[bad host]: not a registry host (HOST[:PORT])"},
        {"{\"registry\": {\"hosts\": {\"r.example\": {\"username\": \"u\"}}}}",
         "tenant 'acme'.credentials.registry.hosts[r.example]: needs \"username\" and one of "
         "\"password\", \"password_file\" (or \"helper\": \"ecr-login\")"},
        {"{\"registry\": {\"hosts\": {\"r.example\": {\"helper\": \"pass\"}}}}",
         "tenant 'acme'.credentials.registry.hosts[r.example].helper: only \"ecr-login\" (kiln's "
         "own, with the tenant's AWS credentials) is allowed; another helper reads a store shared "
         "by every tenant"},
        {"{\"registry\": {\"hosts\": {\"r.example\": {\"username\": \"u\", \"passwd\": \"x\"}}}}",
         "tenant 'acme'.credentials.registry.hosts[r.example]: unknown key 'passwd'"},
        {"{\"aws\": {}}", "tenant 'acme'.credentials.aws: needs \"credentials_file\" or "
                          "\"role_arn\""},
        {"{\"aws\": {\"role_arn\": \"arn:aws:iam::1:user/x\"}}",
         "tenant 'acme'.credentials.aws.role_arn: must be arn:aws:iam::ACCOUNT:role/NAME"},
        {"{\"aws\": {\"role_arn\": \"arn:aws:iam::1:role/x\", \"duration\": 60}}",
         "tenant 'acme'.credentials.aws.duration: seconds from 900 to 43200"},
        {"{\"aws\": {\"role_arn\": \"arn:aws:iam::1:role/x\", \"sts_endpoint\": \"ftp://x\"}}",
         "tenant 'acme'.credentials.aws.sts_endpoint: must be an http(s):// URL"},
        {"{\"aws\": {\"role_arn\": \"arn:aws:iam::1:role/x\", \"external_id\": \"a b\"}}",
         "tenant 'acme'.credentials.aws.external_id: 2 to 1224 of [A-Za-z0-9+=,.@:/_-]"},
        {"{\"aws\": {\"role_arn\": \"arn:aws:iam::1:role/x\", \"profile\": \"p\"}}",
         "tenant 'acme'.credentials.aws.profile: a profile name ([A-Za-z0-9_.+@-]) of the "
         "tenant's credentials_file"},
        /* inih cuts longer section names: a longer one could name another tenant's profile */
        {"{\"aws\": {\"credentials_file\": \"/x\", \"profile\": "
         "\"acme-AWSAdministratorAccess-eu-west-1-123456789012\"}}",
         "tenant 'acme'.credentials.aws.profile: at most 48 characters"},
        {"{\"aws\": {\"credentials_file\": \"/x\", \"external_id\": \"abc\"}}",
         "tenant 'acme'.credentials.aws: external_id, session_name, duration and sts_endpoint "
         "go with role_arn"},
        {"{\"aws\": {\"credentials_file\": \"/x\", \"regoin\": \"x\"}}",
         "tenant 'acme'.credentials.aws: unknown key 'regoin'"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(check(bad[i].json, &err), -1);
        assert_string_equal(err.msg, bad[i].msg);
    }
    /* files are read at load: a missing one, a profile without keys, a helper in the file */
    snprintf(buf, sizeof(buf), "{\"aws\": {\"credentials_file\": \"%s\", \"profile\": \"other\"}}",
             aws);
    assert_int_equal(check(buf, &err), -1);
    assert_non_null(strstr(err.msg, "tenant 'acme'.credentials.aws.credentials_file "));
    assert_non_null(strstr(err.msg, ": profile [other] has no aws_access_key_id and "
                                    "aws_secret_access_key"));
    assert_null(strstr(err.msg, "AKIDONLY"));
    snprintf(buf, sizeof(buf), "{\"registry\": {\"auth_file\": \"%s/missing.json\"}}", tmp);
    assert_int_equal(check(buf, &err), -1);
    assert_non_null(strstr(err.msg, "tenant 'acme'.credentials.registry.auth_file"));
    assert_non_null(strstr(err.msg, "missing.json"));
    snprintf(buf, sizeof(buf), "{\"registry\": {\"auth_file\": \"%s\"}}", helper);
    assert_int_equal(check(buf, &err), -1);
    assert_non_null(strstr(err.msg, "credHelpers[r.example]: only \"ecr-login\""));
    snprintf(buf, sizeof(buf), "{\"registry\": {\"auth_file\": \"%s\"}}", store);
    assert_int_equal(check(buf, &err), -1);
    assert_non_null(strstr(err.msg, "credsStore is not allowed"));
    /* good ones; no secret in any message above */
    snprintf(buf, sizeof(buf),
             "{\"registry\": {\"auth_file\": \"%s\", \"hosts\": {\"r2.example:443\": "
             "{\"username\": \"ci\", \"password_file\": \"%s\"}, \"1.dkr.ecr.eu-west-1."
             "amazonaws.com\": {\"helper\": \"ecr-login\"}}}, \"aws\": {\"credentials_file\": "
             "\"%s\", \"region\": \"eu-west-1\"}, \"inherit\": false}",
             auth, pw, aws);
    assert_int_equal(check(buf, &err), 0);
    assert_int_equal(check("{\"aws\": {\"role_arn\": \"arn:aws:iam::123456789012:role/acme\", "
                           "\"external_id\": \"ext-1\", \"duration\": 3600, \"session_name\": "
                           "\"kiln-acme\", \"sts_endpoint\": \"http://127.0.0.1:1\"}}",
                           &err),
                     0);
}

/* The tenants loader checks "credentials" and names the tenant. */
static void test_config_load(void **state)
{
    _cleanup_free_ char *path = put("server.json", "{\"tenants\": [{\"name\": \"acme\", "
                                                   "\"tokens\": [\"acme-token-0001\"], "
                                                   "\"credentials\": {\"aws\": {}}}]}");
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};

    assert_int_equal(kiln_config_load(path, &c, &err), -1);
    assert_non_null(strstr(err.msg, "tenant 'acme'.credentials.aws: needs"));
    assert_null(c);
}

static void test_sources(void **state)
{
    json_t *own = json_loads("{\"registry\": {\"hosts\": {}}}", 0, NULL);
    json_t *inherit = json_loads("{\"registry\": {\"hosts\": {}}, \"inherit\": true}", 0, NULL);

    /* no "credentials": the server's only for tenant default (and jobs naming none) */
    assert_int_equal(kiln_tenantcreds_source(NULL, "default", "aws"), KILN_CREDS_SERVER);
    assert_int_equal(kiln_tenantcreds_source(NULL, NULL, "registry"), KILN_CREDS_SERVER);
    assert_int_equal(kiln_tenantcreds_source(NULL, "acme", "aws"), KILN_CREDS_NONE);
    assert_int_equal(kiln_tenantcreds_source(NULL, "acme", "registry"), KILN_CREDS_NONE);
    assert_int_equal(kiln_tenantcreds_source(own, "acme", "registry"), KILN_CREDS_OWN);
    assert_int_equal(kiln_tenantcreds_source(own, "acme", "aws"), KILN_CREDS_NONE);
    /* a default tenant with credentials of its own inherits nothing unless it says so */
    assert_int_equal(kiln_tenantcreds_source(own, "default", "aws"), KILN_CREDS_NONE);
    assert_int_equal(kiln_tenantcreds_source(inherit, "acme", "aws"), KILN_CREDS_SERVER);
    assert_int_equal(kiln_tenantcreds_source(inherit, "acme", "registry"), KILN_CREDS_OWN);
    json_decref(own);
    json_decref(inherit);
}

/* The mode of path & 0777, -1 when missing. */
static int mode_of(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 ? (int)(sb.st_mode & 0777) : -1;
}

/* The whole environment as one string (entries separated by '\n'). */
static char *env_text(char **env)
{
    kiln_buf_t b = {0};
    for (size_t i = 0; env[i]; i++)
        kiln_buf_appendf(&b, NULL, "%s\n", env[i]);
    return kiln_buf_steal(&b, NULL);
}

static char *const server_env[] = {"PATH=/usr/bin",
                                   "HOME=/root",
                                   "AWS_ACCESS_KEY_ID=AKIDSERVER",
                                   "AWS_SECRET_ACCESS_KEY=serverSECRET",
                                   "AWS_SESSION_TOKEN=serverSESSION",
                                   "AWS_PROFILE=server",
                                   "AWS_SHARED_CREDENTIALS_FILE=/root/.aws/credentials",
                                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/creds",
                                   "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token",
                                   "AWS_ROLE_ARN=arn:aws:iam::1:role/server",
                                   "AWS_REGION=us-east-1",
                                   "AWS_ENDPOINT_URL=http://127.0.0.1:4566",
                                   "AWS_ENDPOINT_URL_S3=http://127.0.0.1:4567",
                                   "AWS_MAX_ATTEMPTS=3",
                                   "DOCKER_CONFIG=/root/.docker",
                                   "REGISTRY_AUTH_FILE=/run/containers/auth.json",
                                   "KILN_GIT_TOKEN=serverGITtoken",
                                   "KILN_GIT_TOKEN_GITHUB_COM=serverGIThostTOKEN",
                                   "SSH_AUTH_SOCK=/tmp/ssh-server/agent.1",
                                   "KILN_GIT_CREDENTIALS=/etc/kiln/git-credentials",
                                   "KILN_API_TOKENS=serverAPItoken",
                                   "KILN_JOB_KEY_FILE=/etc/kiln/job.key",
                                   "KILN_REGISTRIES_CONFIG=/etc/kiln/registries.json",
                                   NULL};

static void test_prepare_own(void **state)
{
    _cleanup_free_ char *pw = put("pw", "acmePASSWORD\n");
    _cleanup_free_ char *aws = put("aws", "[acme]\naws_access_key_id = AKIDACME\n"
                                          "aws_secret_access_key = acmeSECRET\n");
    _cleanup_free_ char *secrets = kiln_xasprintf("%s/secrets/b-1", tmp);
    _cleanup_free_ char *dir = kiln_xasprintf("%s/.creds", secrets);
    _cleanup_free_ char *cfg_path = kiln_xasprintf("%s/docker/config.json", dir);
    _cleanup_free_ char *cred_path = kiln_xasprintf("%s/aws/credentials", dir);
    _cleanup_free_ char *conf_path = kiln_xasprintf("%s/aws/config", dir);
    _cleanup_free_ char *json =
        kiln_xasprintf("{\"registry\": {\"hosts\": {\"127.0.0.1:5001\": {\"username\": \"acme\", "
                       "\"password_file\": \"%s\"}}}, \"aws\": {\"credentials_file\": \"%s\", "
                       "\"profile\": \"acme\", \"region\": \"eu-west-1\"}}",
                       pw, aws);
    json_t *creds = json_loads(json, 0, NULL);
    _cleanup_strv_ char **env = NULL;
    _cleanup_free_ char *text = NULL, *cfg = NULL, *cred = NULL, *conf = NULL;
    kiln_error_t err = {0};
    json_t *doc;

    assert_int_equal(kiln_tenantcreds_prepare(creds, "acme", secrets, server_env, &env, &err), 0);
    /* the files: 0600 in 0700 directories */
    assert_int_equal(mode_of(secrets), 0700);
    assert_int_equal(mode_of(dir), 0700);
    assert_int_equal(mode_of(cfg_path), 0600);
    assert_int_equal(mode_of(cred_path), 0600);
    assert_int_equal(mode_of(conf_path), 0600);
    assert_int_equal(kiln_fs_read_file(cfg_path, 1 << 20, &cfg, NULL, NULL), 0);
    doc = json_loads(cfg, 0, NULL);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(doc, "auths"), "127.0.0.1:5001"), "password")),
        "acmePASSWORD");
    json_decref(doc);
    assert_int_equal(kiln_fs_read_file(cred_path, 1 << 20, &cred, NULL, NULL), 0);
    assert_string_equal(cred, "[default]\naws_access_key_id = AKIDACME\naws_secret_access_key = "
                              "acmeSECRET\n");
    assert_int_equal(kiln_fs_read_file(conf_path, 1 << 20, &conf, NULL, NULL), 0);
    assert_string_equal(conf, "[default]\nregion = eu-west-1\n");
    /* the environment: paths, no secret, none of the server's credentials */
    text = env_text(env);
    assert_null(strstr(text, "SECRET"));
    assert_null(strstr(text, "PASSWORD"));
    assert_null(strstr(text, "AKID"));
    assert_null(strstr(text, "serverSESSION"));
    assert_null(strstr(text, "serverGITtoken"));
    assert_null(strstr(text, "serverGIThostTOKEN"));
    assert_null(strstr(text, "SSH_AUTH_SOCK"));
    assert_null(strstr(text, "serverAPItoken"));
    assert_null(strstr(text, "/root/.docker"));
    assert_null(strstr(text, "REGISTRY_AUTH_FILE"));
    assert_null(strstr(text, "AWS_CONTAINER_CREDENTIALS"));
    assert_null(strstr(text, "AWS_WEB_IDENTITY_TOKEN_FILE"));
    assert_null(strstr(text, "AWS_ROLE_ARN"));
    assert_null(strstr(text, "KILN_JOB_KEY_FILE"));
    assert_null(strstr(text, "us-east-1"));
    assert_string_equal(kiln_env_get(env, "PATH"), "/usr/bin");
    assert_string_equal(kiln_env_get(env, "AWS_ENDPOINT_URL_S3"), "http://127.0.0.1:4567");
    assert_string_equal(kiln_env_get(env, "AWS_MAX_ATTEMPTS"), "3");
    assert_string_equal(kiln_env_get(env, "KILN_REGISTRIES_CONFIG"), "/etc/kiln/registries.json");
    assert_string_equal(kiln_env_get(env, "AWS_REGION"), "eu-west-1");
    assert_string_equal(kiln_env_get(env, "AWS_PROFILE"), "default");
    assert_string_equal(kiln_env_get(env, "AWS_EC2_METADATA_DISABLED"), "true");
    {
        _cleanup_free_ char *d = kiln_xasprintf("%s/docker", dir);
        _cleanup_free_ char *g = kiln_xasprintf("%s/git-credentials", dir);
        assert_string_equal(kiln_env_get(env, "DOCKER_CONFIG"), d);
        assert_string_equal(kiln_env_get(env, "AWS_SHARED_CREDENTIALS_FILE"), cred_path);
        assert_string_equal(kiln_env_get(env, "AWS_CONFIG_FILE"), conf_path);
        assert_string_equal(kiln_env_get(env, "KILN_GIT_CREDENTIALS"), g);
        assert_int_equal(mode_of(g), 0600);
    }
    json_decref(creds);
}

static void test_prepare_none_and_default(void **state)
{
    _cleanup_free_ char *secrets = kiln_xasprintf("%s/secrets/b-2", tmp);
    _cleanup_free_ char *cfg_path = kiln_xasprintf("%s/.creds/docker/config.json", secrets);
    _cleanup_free_ char *cred_path = kiln_xasprintf("%s/.creds/aws/credentials", secrets);
    _cleanup_strv_ char **env = NULL, **denv = NULL;
    _cleanup_free_ char *text = NULL, *cfg = NULL, *cred = NULL;
    kiln_error_t err = {0};
    size_t n = 0;

    /* a tenant without credentials: empty files, none of the server's */
    assert_int_equal(kiln_tenantcreds_prepare(NULL, "globex", secrets, server_env, &env, &err), 0);
    text = env_text(env);
    assert_null(strstr(text, "AKIDSERVER"));
    assert_null(strstr(text, "serverSECRET"));
    assert_null(strstr(text, "/root/"));
    assert_null(strstr(text, "serverGITtoken"));
    assert_null(strstr(text, "serverGIThostTOKEN"));
    assert_null(kiln_env_get(env, "SSH_AUTH_SOCK"));
    assert_string_equal(kiln_env_get(env, "AWS_REGION"), "us-east-1");
    assert_int_equal(kiln_fs_read_file(cfg_path, 1 << 20, &cfg, NULL, NULL), 0);
    assert_string_equal(cfg, "{}");
    assert_null(strstr(cfg, "auth\""));
    assert_int_equal(kiln_fs_read_file(cred_path, 1 << 20, &cred, NULL, NULL), 0);
    assert_string_equal(cred, "");

    /* tenant default (single-tenant installs) keeps the server's, minus API tokens and job key */
    assert_int_equal(kiln_tenantcreds_prepare(NULL, "default", secrets, server_env, &denv, &err),
                     0);
    while (denv[n])
        n++;
    assert_int_equal(n, sizeof(server_env) / sizeof(server_env[0]) - 3);
    assert_string_equal(kiln_env_get(denv, "AWS_SECRET_ACCESS_KEY"), "serverSECRET");
    assert_string_equal(kiln_env_get(denv, "DOCKER_CONFIG"), "/root/.docker");
    assert_string_equal(kiln_env_get(denv, "KILN_GIT_TOKEN"), "serverGITtoken");
    assert_string_equal(kiln_env_get(denv, "SSH_AUTH_SOCK"), "/tmp/ssh-server/agent.1");
    assert_null(kiln_env_get(denv, "KILN_API_TOKENS"));
    assert_null(kiln_env_get(denv, "KILN_JOB_KEY_FILE"));
}

/* A failing role (no STS answers) fails the build's preparation naming the tenant and the
 * role, never a key. */
static void test_prepare_role_fails(void **state)
{
    _cleanup_free_ char *aws = put("aws", "[default]\naws_access_key_id = AKIDBASE\n"
                                          "aws_secret_access_key = baseSECRET\n");
    _cleanup_free_ char *secrets = kiln_xasprintf("%s/secrets/b-3", tmp);
    _cleanup_free_ char *json = kiln_xasprintf(
        "{\"aws\": {\"credentials_file\": \"%s\", \"role_arn\": "
        "\"arn:aws:iam::123456789012:role/acme\", \"sts_endpoint\": \"http://127.0.0.1:9\"}}",
        aws);
    json_t *creds = json_loads(json, 0, NULL);
    char **env = NULL;
    kiln_error_t err = {0};

    setenv("AWS_MAX_ATTEMPTS", "1", 1);
    assert_int_equal(kiln_tenantcreds_prepare(creds, "acme", secrets, server_env, &env, &err), -1);
    assert_null(env);
    assert_non_null(strstr(err.msg, "tenant 'acme'.credentials.aws.role_arn: sts AssumeRole "
                                    "arn:aws:iam::123456789012:role/acme"));
    assert_null(strstr(err.msg, "SECRET"));
    assert_null(strstr(err.msg, "AKIDBASE"));
    json_decref(creds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_load, setup, teardown),
        cmocka_unit_test(test_sources),
        cmocka_unit_test_setup_teardown(test_prepare_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_none_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_role_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
