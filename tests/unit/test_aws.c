/* Unit tests for utils/aws: shared-file parsing, credential chain (env and
 * files), region and endpoint resolution, S3 naming policy, ECR hosts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "utils/aws/client.h"
#include "utils/aws/credentials.h"
#include "utils/aws/ecr.h"
#include "utils/aws/endpoint.h"
#include "utils/aws/s3.h"
#include "utils/aws/sigv4.h"
#include "utils/aws/sts.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static const char *const aws_vars[] = {"AWS_ACCESS_KEY_ID",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",
                                       "AWS_PROFILE",
                                       "AWS_DEFAULT_PROFILE",
                                       "AWS_REGION",
                                       "AWS_DEFAULT_REGION",
                                       "AWS_CONFIG_FILE",
                                       "AWS_SHARED_CREDENTIALS_FILE",
                                       "AWS_ENDPOINT_URL",
                                       "AWS_ENDPOINT_URL_S3",
                                       "AWS_ENDPOINT_URL_SQS",
                                       "AWS_ENDPOINT_URL_ECR",
                                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                       "AWS_CONTAINER_CREDENTIALS_FULL_URI"};

static char tmpdir[256];

static int setup(void **state)
{
    kiln_error_t err = {0};
    char *d = NULL;
    for (size_t i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
        unsetenv(aws_vars[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    if (kiln_fs_mkdtemp("/tmp", "kiln-aws-test.", &d, &err) < 0)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "%s", d);
    free(d);
    setenv("HOME", tmpdir, 1);
    return 0;
}

static int teardown(void **state)
{
    kiln_fs_rm_rf(tmpdir, NULL);
    return 0;
}

static void write_file(const char *name, const char *text)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", tmpdir, name);
    assert_int_equal(kiln_fs_write_file_atomic(p, text, strlen(text), 0600, NULL), 0);
}

static void test_ini(void **state)
{
    const char *t = "# comment\n[default]\naws_access_key_id = AKID1\n"
                    "  nested = ignored\n; other\n[profile dev]\nregion=eu-west-3\r\n"
                    "aws_secret_access_key =  s p a c e  \n[ empty ]\n";
    _cleanup_free_ char *a = kiln_aws_ini_get(t, strlen(t), "default", "aws_access_key_id");
    _cleanup_free_ char *b = kiln_aws_ini_get(t, strlen(t), "profile dev", "region");
    _cleanup_free_ char *c = kiln_aws_ini_get(t, strlen(t), "profile dev", "AWS_SECRET_ACCESS_KEY");
    _cleanup_free_ char *d = kiln_aws_ini_get(t, strlen(t), "default", "nested");
    _cleanup_free_ char *e = kiln_aws_ini_get(t, strlen(t), "dev", "region");
    assert_string_equal(a, "AKID1");
    assert_string_equal(b, "eu-west-3");
    assert_string_equal(c, "s p a c e");
    assert_null(d);
    assert_null(e);
}

/* Looks key up in section of t; NULL-safe comparison against want. */
static void ini_is(const char *t, const char *section, const char *key, const char *want)
{
    _cleanup_free_ char *v = kiln_aws_ini_get(t, strlen(t), section, key);
    if (want == NULL)
        assert_null(v);
    else
        assert_string_equal(v, want);
}

static void test_ini_semantics(void **state)
{
    /* nested settings (indented) continue "s3 =", they are not keys of the profile */
    const char *nested = "[default]\ns3 =\n    region = bad\n    max_concurrent_requests = 20\n"
                         "region = good\n";
    /* no inline comments (as botocore): the value keeps " ; x" and "#" */
    const char *inl = "[default]\nregion = eu-west-1 ; comment\naws_secret_access_key = a#b\n";
    /* the first value wins; a section may come back; "key: value" works */
    const char *dup = "[default]\nregion = one\n[other]\nregion = two\n[default]\nregion = three\n"
                      "output: json\n";
    /* a key before any section, a line without '=', a bad section line: skipped */
    const char *junk = "region = top\n[default\nnot a pair\n[default]\nbogus line\nregion = ok\n";
    /* a UTF-8 BOM, CRLF, tabs */
    const char *bom = "\xef\xbb\xbf[default]\r\n\tregion\t=\tap-east-1\t\r\n";
    /* a NUL ends the text: the key after it is not read */
    const char nul[] = "[default]\nregion = a\0\nregion2 = b\n";
    _cleanup_free_ char *token = kiln_xzalloc(4001);
    _cleanup_free_ char *long_text = NULL;
    _cleanup_free_ char *v = NULL;
    _cleanup_free_ char *w = NULL;

    ini_is(nested, "default", "region", "good");
    ini_is(nested, "default", "s3", "");
    ini_is(nested, "default", "max_concurrent_requests", NULL);
    ini_is(inl, "default", "region", "eu-west-1 ; comment");
    ini_is(inl, "default", "aws_secret_access_key", "a#b");
    ini_is(dup, "default", "region", "one");
    ini_is(dup, "other", "region", "two");
    ini_is(dup, "default", "output", "json");
    ini_is(junk, "default", "region", "ok");
    ini_is(junk, "", "region", NULL);
    ini_is(bom, "default", "region", "ap-east-1");
    v = kiln_aws_ini_get(nul, sizeof(nul) - 1, "default", "region2");
    assert_null(v);
    w = kiln_aws_ini_get(nul, sizeof(nul) - 1, "default", "region");
    assert_string_equal(w, "a");

    /* a 4000-byte session token is one value, not cut into lines (inih's default is 200) */
    memset(token, 'T', 4000);
    long_text = kiln_xasprintf("[ci]\naws_session_token = %s\naws_access_key_id = K\n", token);
    ini_is(long_text, "ci", "aws_session_token", token);
    ini_is(long_text, "ci", "aws_access_key_id", "K");
}

static void test_ini_long_sections(void **state)
{
    /* inih keeps 49 bytes of a section name: two profiles that differ after them must never be
     * taken for each other, so such names are not found at all */
    const char *t = "[profile org-AWSAdministratorAccess-prod-eu-west-1-123456789012]\n"
                    "aws_access_key_id = PROD\n"
                    "[profile org-AWSAdministratorAccess-prod-eu-west-1-999999999999]\n"
                    "aws_access_key_id = OTHER\n"
                    "[profile forty-chars-profile-name-is-just-right]\naws_access_key_id = FIT\n";
    kiln_aws_creds_t c = {0};
    kiln_error_t err = {0};
    ini_is(t, "profile org-AWSAdministratorAccess-prod-eu-west-1-123456789012", "aws_access_key_id",
           NULL);
    ini_is(t, "profile org-AWSAdministratorAccess-prod-eu-west-1-999999999999", "aws_access_key_id",
           NULL);
    ini_is(t, "profile org-AWSAdministratorAccess-prod-eu-west-1", "aws_access_key_id", NULL);
    ini_is(t, "profile forty-chars-profile-name-is-just-right", "aws_access_key_id", "FIT");

    /* the credential chain says why */
    write_file("config", t);
    setenv("AWS_CONFIG_FILE", "~/config", 1);
    setenv("AWS_PROFILE", "org-AWSAdministratorAccess-prod-eu-west-1-123456789012", 1);
    assert_int_equal(kiln_aws_credentials_resolve(&c, &err), -1);
    assert_non_null(strstr(err.msg, "section [profile org-AWSAdministratorAccess-prod-eu-west-1-"
                                    "123456789012] is over 48 bytes"));
    assert_null(strstr(err.msg, "OTHER"));
}

static void test_credentials_env_and_files(void **state)
{
    kiln_aws_creds_t c = {0};
    kiln_error_t err = {0};

    assert_int_equal(kiln_aws_credentials_resolve(&c, &err), -1);
    assert_int_equal(err.code, ENOENT);
    assert_non_null(strstr(err.msg, "environment"));
    assert_non_null(strstr(err.msg, "shared credentials file"));
    assert_non_null(strstr(err.msg, "ECS container credentials"));
    assert_non_null(strstr(err.msg, "AWS_EC2_METADATA_DISABLED"));

    write_file("creds", "[default]\naws_access_key_id=FILEKEY\naws_secret_access_key=FILESECRET\n"
                        "[ci]\naws_access_key_id=CIKEY\naws_secret_access_key=CISECRET\n"
                        "aws_session_token=CITOKEN\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "~/creds", 1);
    assert_int_equal(kiln_aws_credentials_resolve(&c, &err), 0);
    assert_string_equal(c.access_key_id, "FILEKEY");
    assert_null(c.session_token);
    kiln_aws_creds_clear(&c);
    setenv("AWS_PROFILE", "ci", 1);
    assert_int_equal(kiln_aws_credentials_resolve(&c, &err), 0);
    assert_string_equal(c.access_key_id, "CIKEY");
    assert_string_equal(c.session_token, "CITOKEN");
    assert_string_equal(c.source, "shared credentials file");
    kiln_aws_creds_clear(&c);

    /* config file, [profile NAME] */
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    write_file("config", "[profile ci]\nregion = ap-south-1\naws_access_key_id = CFGKEY\n"
                         "aws_secret_access_key = CFGSECRET\n");
    setenv("AWS_CONFIG_FILE", "~/config", 1);
    assert_int_equal(kiln_aws_credentials_resolve(&c, &err), 0);
    assert_string_equal(c.access_key_id, "CFGKEY");
    kiln_aws_creds_clear(&c);

    /* env wins */
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
    assert_int_equal(kiln_aws_credentials_resolve(&c, &err), 0);
    assert_string_equal(c.access_key_id, "ENVKEY");
    assert_string_equal(c.source, "environment");
    kiln_aws_creds_clear(&c);
    assert_null(c.access_key_id);
}

static void test_provider_caches(void **state)
{
    kiln_aws_cred_provider_t *p = kiln_aws_cred_provider_new();
    kiln_aws_creds_t c = {0};
    setenv("AWS_ACCESS_KEY_ID", "ONE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S", 1);
    assert_int_equal(kiln_aws_cred_provider_get(p, &c, NULL), 0);
    assert_string_equal(c.access_key_id, "ONE");
    kiln_aws_creds_clear(&c);
    setenv("AWS_ACCESS_KEY_ID", "TWO", 1); /* long-term credentials are kept */
    assert_int_equal(kiln_aws_cred_provider_get(p, &c, NULL), 0);
    assert_string_equal(c.access_key_id, "ONE");
    kiln_aws_creds_clear(&c);
    kiln_aws_cred_provider_free(p);
}

static void test_region_and_endpoints(void **state)
{
    kiln_aws_endpoint_t e = {0};
    kiln_error_t err = {0};
    char *r = kiln_aws_region_resolve();
    assert_string_equal(r, "us-east-1");
    free(r);
    write_file("config", "[default]\nregion = eu-north-1\n");
    setenv("AWS_CONFIG_FILE", "~/config", 1);
    r = kiln_aws_region_resolve();
    assert_string_equal(r, "eu-north-1");
    free(r);
    setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
    r = kiln_aws_region_resolve();
    assert_string_equal(r, "us-west-1");
    free(r);
    setenv("AWS_REGION", "sa-east-1", 1);
    r = kiln_aws_region_resolve();
    assert_string_equal(r, "sa-east-1");
    free(r);

    assert_int_equal(kiln_aws_endpoint_resolve("s3", "eu-west-1", &e, &err), 0);
    assert_string_equal(e.host, "s3.eu-west-1.amazonaws.com");
    assert_string_equal(e.scheme, "https");
    assert_false(e.custom);
    kiln_aws_endpoint_clear(&e);
    assert_int_equal(kiln_aws_endpoint_resolve("ecr", "cn-north-1", &e, &err), 0);
    assert_string_equal(e.host, "api.ecr.cn-north-1.amazonaws.com.cn");
    kiln_aws_endpoint_clear(&e);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566/", 1);
    setenv("AWS_ENDPOINT_URL_SQS", "http://localhost:9324/base/", 1);
    assert_int_equal(kiln_aws_endpoint_resolve("s3", "eu-west-1", &e, &err), 0);
    assert_string_equal(e.host, "127.0.0.1:4566");
    assert_string_equal(e.base_path, "");
    assert_true(e.custom);
    kiln_aws_endpoint_clear(&e);
    assert_int_equal(kiln_aws_endpoint_resolve("sqs", "eu-west-1", &e, &err), 0);
    assert_string_equal(e.host, "localhost:9324");
    assert_string_equal(e.base_path, "/base");
    kiln_aws_endpoint_clear(&e);
    setenv("AWS_ENDPOINT_URL_S3", "ftp://nope", 1);
    assert_int_equal(kiln_aws_endpoint_resolve("s3", "eu-west-1", &e, &err), -1);
    assert_non_null(strstr(err.msg, "AWS_ENDPOINT_URL_S3"));
    assert_non_null(strstr(err.msg, "ftp://nope"));
}

static void test_s3_naming(void **state)
{
    char *b = NULL, *p = NULL;
    kiln_error_t err = {0};
    assert_int_equal(kiln_s3_parse_url("s3://my-site/a/b/", &b, &p, &err), 0);
    assert_string_equal(b, "my-site");
    assert_string_equal(p, "a/b");
    free(b);
    free(p);
    assert_int_equal(kiln_s3_parse_url("s3://bucket", &b, &p, &err), 0);
    assert_string_equal(p, "");
    free(b);
    free(p);
    assert_int_equal(kiln_s3_parse_url("https://bucket/x", &b, &p, &err), -1);
    assert_int_equal(kiln_s3_parse_url("s3://Bad_Bucket/x", &b, &p, &err), -1);
    assert_non_null(strstr(err.msg, "Bad_Bucket"));
    assert_int_equal(kiln_s3_parse_url("s3://ab/x", &b, &p, &err), -1);

    assert_string_equal(kiln_s3_content_type("a/index.html"), "text/html; charset=utf-8");
    assert_string_equal(kiln_s3_content_type("x.WOFF2"), "font/woff2");
    assert_string_equal(kiln_s3_content_type("noext"), "application/octet-stream");
    assert_string_equal(kiln_s3_content_type("dir.d/file"), "application/octet-stream");

    assert_string_equal(kiln_s3_cache_control("index.html"), KILN_S3_CACHE_HTML);
    assert_string_equal(kiln_s3_cache_control("assets/main.3f9a1c2b.js"), KILN_S3_CACHE_IMMUTABLE);
    assert_string_equal(kiln_s3_cache_control("assets/index-DiwrgTda.js"), KILN_S3_CACHE_IMMUTABLE);
    assert_string_equal(kiln_s3_cache_control("static/css/main.8c8b27cf.chunk.css"),
                        KILN_S3_CACHE_IMMUTABLE);
    assert_string_equal(kiln_s3_cache_control("robots.txt"), KILN_S3_CACHE_DEFAULT);
    assert_string_equal(kiln_s3_cache_control("MyComponent.js"), KILN_S3_CACHE_DEFAULT);
    assert_string_equal(kiln_s3_cache_control("jquery-3.7.1.min.js"), KILN_S3_CACHE_DEFAULT);
    assert_string_equal(kiln_s3_cache_control("app.deadbeef.js"), KILN_S3_CACHE_DEFAULT);
}

static void test_s3_output_spec(void **state)
{
    kiln_s3_output_t o = {0};
    kiln_error_t err = {0};
    size_t n = 0;
    assert_int_equal(kiln_s3_output_parse("type=s3,dest=s3://b-1/p,cache-control=public, "
                                          "max-age=60,part-size=16M,concurrency=4,full=true",
                                          &o, &err),
                     0);
    assert_string_equal(o.dest, "s3://b-1/p");
    assert_string_equal(o.opts.cache_control, "public, max-age=60");
    assert_int_equal(o.opts.part_size, 16u << 20);
    assert_int_equal(o.opts.concurrency, 4);
    assert_true(o.opts.full);
    kiln_s3_output_clear(&o);
    assert_int_equal(kiln_s3_output_parse("dest=s3://b-1/p,type=s3", &o, &err), 0);
    assert_null(o.opts.cache_control);
    kiln_s3_output_clear(&o);
    assert_int_equal(kiln_s3_output_parse("type=oci,dest=x", &o, &err), -1);
    assert_int_equal(kiln_s3_output_parse("type=s3", &o, &err), -1);
    assert_int_equal(kiln_s3_output_parse("type=s3,dest=/tmp/x", &o, &err), -1);
    assert_int_equal(kiln_s3_output_parse("type=s3,dest=s3://b/p,concurrency=0", &o, &err), -1);
    assert_int_equal(kiln_s3_output_parse("type=s3,dest=s3://b/p,part-size=12Q", &o, &err), -1);
    assert_non_null(strstr(err.msg, "part-size"));
    assert_int_equal(kiln_s3_output_parse("bogus=1,type=s3", &o, &err), -1);
    assert_int_equal(kiln_s3_parse_size("8MiB", &n), 0);
    assert_int_equal(n, 8u << 20);
    assert_int_equal(kiln_s3_parse_size("5242880", &n), 0);
    assert_int_equal(n, 5242880);
    assert_int_equal(kiln_s3_parse_size("-1", &n), -1);
    assert_int_equal(kiln_s3_parse_size("99999999999999999999G", &n), -1);
}

static void test_ecr_hosts(void **state)
{
    char *acct = NULL, *region = NULL;
    assert_int_equal(
        kiln_ecr_parse_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com", &acct, &region), 1);
    assert_string_equal(acct, "123456789012");
    assert_string_equal(region, "eu-west-1");
    free(acct);
    free(region);
    assert_int_equal(
        kiln_ecr_parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn:443", NULL, &region),
        1);
    assert_string_equal(region, "cn-north-1");
    free(region);
    assert_int_equal(kiln_ecr_parse_host("12345678901.dkr.ecr.eu-west-1.amazonaws.com", NULL, NULL),
                     0);
    assert_int_equal(
        kiln_ecr_parse_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.test", NULL, NULL),
        0);
    assert_int_equal(kiln_ecr_parse_host("registry.example.com", NULL, NULL), 0);
    assert_int_equal(kiln_ecr_parse_host("123456789012.dkr.ecr..amazonaws.com", NULL, NULL), 0);
}

/* Sets resp's body to a string. */
static void set_body(kiln_http_response_t *resp, long status, const char *body)
{
    resp->status = status;
    resp->body = (char *)body;
    resp->body_len = strlen(body);
}

static void test_errors(void **state)
{
    kiln_http_response_t resp = {0};
    kiln_error_t err = {0};
    set_body(&resp, 403, "<Error><Code>AccessDenied</Code><Message>nope</Message></Error>");
    kiln_aws_error_from_response(&resp, &err, "PUT s3://b/k");
    assert_string_equal(err.msg, "PUT s3://b/k: HTTP 403 AccessDenied: nope");
    assert_int_equal(err.code, EACCES);
    /* S3 as sent: declaration, entities, a RequestId after the message */
    set_body(&resp, 404,
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
             "<Message>The key &quot;a&amp;b&quot; &lt;does not&gt; exist</Message>"
             "<Key>a&amp;b</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>");
    kiln_aws_error_from_response(&resp, &err, "GET s3://b/a&b");
    assert_string_equal(err.msg,
                        "GET s3://b/a&b: HTTP 404 NoSuchKey: The key \"a&b\" <does not> exist");
    assert_int_equal(err.code, EIO);
    /* the query protocol's envelope (SNS, SQS, STS), namespaced */
    set_body(&resp, 400,
             "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\n  <Error>\n"
             "    <Type>Sender</Type>\n    <Code>NotFound</Code>\n"
             "    <Message>Topic does not exist</Message>\n  </Error>\n"
             "  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>\n</ErrorResponse>");
    kiln_aws_error_from_response(&resp, &err, "SNS Publish to t");
    assert_string_equal(err.msg, "SNS Publish to t: HTTP 400 NotFound: Topic does not exist");
    /* the Errors list of EC2 (and of moto for every query-protocol service) */
    set_body(&resp, 403,
             "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ErrorResponse><Errors><Error>"
             "<Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated "
             "does not match</Message><Type>Sender</Type></Error></Errors></ErrorResponse>");
    kiln_aws_error_from_response(&resp, &err, "sts AssumeRole r");
    assert_string_equal(err.msg, "sts AssumeRole r: HTTP 403 SignatureDoesNotMatch: The request "
                                 "signature we calculated does not match");
    set_body(&resp, 400,
             "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>bad"
             "</Message></Error></Errors><RequestID>r</RequestID></Response>");
    kiln_aws_error_from_response(&resp, &err, "x");
    assert_string_equal(err.msg, "x: HTTP 400 InvalidParameterValue: bad");
    /* a Code outside the error element is not the error's code (strstr took the first one) */
    set_body(&resp, 500, "<Other><Code>Decoy</Code></Other>");
    kiln_aws_error_from_response(&resp, &err, "x");
    assert_string_equal(err.msg, "x: HTTP 500");
    /* not XML, or a DTD: the status alone */
    set_body(&resp, 502, "<html><body>Bad Gateway</body>");
    kiln_aws_error_from_response(&resp, &err, "x");
    assert_string_equal(err.msg, "x: HTTP 502");
    set_body(&resp, 400,
             "<!DOCTYPE Error [<!ENTITY c \"Throttling\">]><Error><Code>&c;</Code></Error>");
    kiln_aws_error_from_response(&resp, &err, "x");
    assert_string_equal(err.msg, "x: HTTP 400");
    resp.status = 400;
    resp.body = (char *)"{\"__type\":\"com.amazonaws.sqs#QueueDoesNotExist\",\"message\":\"gone\"}";
    resp.body_len = strlen(resp.body);
    kiln_aws_error_from_response(&resp, &err, "send");
    assert_string_equal(err.msg, "send: HTTP 400 QueueDoesNotExist: gone");
}

static const char sts_ok[] =
    "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleResult>\n"
    "    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/acme/kiln</Arn>"
    "<AssumedRoleId>AROA:kiln</AssumedRoleId></AssumedRoleUser>\n"
    "    <Credentials>\n"
    "      <AccessKeyId>ASIAACMETEMP0001</AccessKeyId>\n"
    "      <SecretAccessKey>tempSecret/0123+abc</SecretAccessKey>\n"
    "      <SessionToken>FwoGZXIvYXdzEJr//////////wEaDA==</SessionToken>\n"
    "      <Expiration>2026-12-03T08:00:00Z</Expiration>\n"
    "    </Credentials>\n"
    "  </AssumeRoleResult>\n"
    "</AssumeRoleResponse>\n";

static void test_sts_body_and_parse(void **state)
{
    kiln_aws_sts_assume_t a = {.role_arn = "arn:aws:iam::123456789012:role/acme-builds",
                               .external_id = "acme ext/1=2",
                               .duration_s = 900};
    kiln_aws_creds_t c = {0};
    kiln_error_t err = {0};
    _cleanup_free_ char *body = kiln_aws_sts_assume_body(&a);

    /* every value percent-encoded (':' '/' ' ' '='), defaults for the session name */
    assert_string_equal(body, "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%"
                              "3A123456789012%3Arole%2Facme-builds&RoleSessionName=kiln&"
                              "DurationSeconds=900&ExternalId=acme%20ext%2F1%3D2");
    assert_int_equal(kiln_aws_sts_parse(sts_ok, strlen(sts_ok), &c, &err), 0);
    assert_string_equal(c.access_key_id, "ASIAACMETEMP0001");
    assert_string_equal(c.secret_access_key, "tempSecret/0123+abc");
    assert_string_equal(c.session_token, "FwoGZXIvYXdzEJr//////////wEaDA==");
    assert_int_equal((long long)c.expiration, 1796284800LL);
    kiln_aws_creds_clear(&c);

    /* an answer without one of the four: named, and no value of the others in the message */
    {
        const char *drop[] = {"SessionToken>", "Expiration>", "Credentials>"};
        const char *expect[] = {"<SessionToken>", "<Expiration>", "<Credentials>"};
        for (size_t i = 0; i < 3; i++) {
            _cleanup_free_ char *bad = kiln_xstrdup(sts_ok);
            /* <XessionToken>…</XessionToken>: well-formed, no longer the element */
            for (char *p = bad; (p = strstr(p, drop[i])) != NULL; p++)
                p[0] = 'X';
            memset(&c, 0, sizeof(c));
            assert_int_equal(kiln_aws_sts_parse(bad, strlen(bad), &c, &err), -1);
            assert_non_null(strstr(err.msg, expect[i] + 1));
            assert_null(strstr(err.msg, "tempSecret"));
            assert_null(strstr(err.msg, "ASIAACMETEMP0001"));
            assert_null(c.secret_access_key);
        }
    }
    {
        _cleanup_free_ char *bad = kiln_xstrdup(sts_ok);
        memcpy(strstr(bad, "2026-12-03T"), "yesterday!!", 11);
        assert_int_equal(kiln_aws_sts_parse(bad, strlen(bad), &c, &err), -1);
        assert_string_equal(err.msg, "sts AssumeRole: <Expiration> is not a time");
    }
    {
        /* the credentials must sit at AssumeRoleResponse/AssumeRoleResult/Credentials, and a
         * broken answer is refused, naming neither key nor secret */
        _cleanup_free_ char *moved = kiln_xstrdup(sts_ok);
        _cleanup_free_ char *cut =
            kiln_xstrndup(sts_ok, strstr(sts_ok, "</SecretAccessKey>") - sts_ok);
        memcpy(strstr(moved, "<AssumeRoleResult>"), "<AssumeRoleResulX>", 18);
        memcpy(strstr(moved, "</AssumeRoleResult>"), "</AssumeRoleResulX>", 19);
        assert_int_equal(kiln_aws_sts_parse(moved, strlen(moved), &c, &err), -1);
        assert_string_equal(err.msg, "sts AssumeRole: the answer has no <Credentials>");
        assert_int_equal(kiln_aws_sts_parse(cut, strlen(cut), &c, &err), -1);
        assert_non_null(strstr(err.msg, "sts AssumeRole: answer is not valid XML (line 6"));
        assert_null(strstr(err.msg, "tempSecret"));
        assert_null(strstr(err.msg, "ASIAACMETEMP0001"));
    }
}

/* A one-shot HTTP peer on 127.0.0.1: reads one request into req (headers + body), answers
 * status with body. Returns the child's pid; *port is where it listens. */
static pid_t one_shot(int *port, int status, const char *body, int req_fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pid_t pid;

    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[65536], out[8192];
        size_t got = 0;
        int c = accept(ls, NULL, NULL);
        const char *hend = NULL;
        long clen = -1;
        while (c >= 0 && got < sizeof(buf) - 1) {
            ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
                const char *cl = strcasestr(buf, "\r\nContent-Length:");
                clen = cl ? strtol(cl + 17, NULL, 10) : 0;
            }
            if (hend && (long)(got - (size_t)(hend + 4 - buf)) >= clen)
                break;
        }
        (void)!write(req_fd, buf, got);
        snprintf(out, sizeof(out),
                 "HTTP/1.1 %d X\r\nContent-Type: text/xml\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s",
                 status, strlen(body), body);
        (void)!write(c, out, strlen(out));
        close(c);
        _exit(0);
    }
    close(ls);
    return pid;
}

static void test_sts_assume_role_request(void **state)
{
    static const char denied[] =
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not "
        "authorized to perform sts:AssumeRole</Message></Error></ErrorResponse>";
    kiln_aws_creds_t base = {.access_key_id = (char *)"AKIDSERVERBASE01",
                             .secret_access_key = (char *)"serverSecret+000",
                             .session_token = (char *)"serverSession=="};
    kiln_aws_creds_t c = {0};
    kiln_error_t err = {0};
    char url[64], req[65536];
    int port, p[2], wst;
    ssize_t n;
    pid_t pid;

    for (int round = 0; round < 2; round++) {
        kiln_aws_t *aws = kiln_aws_new("eu-west-1");
        kiln_aws_sts_assume_t a = {.role_arn = "arn:aws:iam::123456789012:role/acme",
                                   .session_name = "kiln-acme",
                                   .endpoint = url};
        aws->max_attempts = 1;
        kiln_aws_cred_provider_set(aws->creds, &base);
        assert_int_equal(pipe(p), 0);
        pid = one_shot(&port, round == 0 ? 200 : 403, round == 0 ? sts_ok : denied, p[1]);
        close(p[1]);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
        memset(&c, 0, sizeof(c));
        if (round == 0) {
            assert_int_equal(kiln_aws_sts_assume_role(aws, &a, &c, &err), 0);
            assert_string_equal(c.access_key_id, "ASIAACMETEMP0001");
            assert_non_null(c.session_token);
            kiln_aws_creds_clear(&c);
        } else {
            assert_int_equal(kiln_aws_sts_assume_role(aws, &a, &c, &err), -1);
            assert_string_equal(err.msg, "sts AssumeRole arn:aws:iam::123456789012:role/acme: "
                                         "HTTP 403 AccessDenied: not authorized to perform "
                                         "sts:AssumeRole");
            assert_null(strstr(err.msg, "serverSecret"));
        }
        n = read(p[0], req, sizeof(req) - 1);
        close(p[0]);
        waitpid(pid, &wst, 0);
        assert_true(n > 0);
        req[n] = '\0';
        /* a SigV4 POST for sts in the region, signed with the base credentials */
        assert_true(strncmp(req, "POST / HTTP/1.1\r\n", 17) == 0);
        assert_non_null(strcasestr(req, "\r\nAuthorization: AWS4-HMAC-SHA256 "
                                        "Credential=AKIDSERVERBASE01/"));
        assert_non_null(strstr(req, "/eu-west-1/sts/aws4_request, SignedHeaders="));
        assert_non_null(strcasestr(req, "\r\nX-Amz-Security-Token: serverSession=="));
        assert_non_null(
            strcasestr(req, "\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8"));
        assert_non_null(strstr(req, "\r\n\r\nAction=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws"
                                    "%3Aiam%3A%3A123456789012%3Arole%2Facme&RoleSessionName=kiln-"
                                    "acme&DurationSeconds=3600"));
        assert_null(strstr(req, "serverSecret"));
        kiln_aws_free(aws);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ini, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ini_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ini_long_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_env_and_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_caches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region_and_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_naming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_output_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ecr_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sts_body_and_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sts_assume_role_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
