/* Unit tests for output confinement (src/server/outconf): tables of tricky references, S3
 * URLs and file destinations against a tenant's prefixes, and whole requests (400/403 naming
 * the field and the rule). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "job/codec.h"
#include "job/spec.h"
#include "src/server/outconf.h"
#include "utils/cleanup.h"

#define ECR "123456789012.dkr.ecr.eu-west-1.amazonaws.com"

/* 1 inside, 0 outside, -1 malformed. */
typedef struct ref_case {
    const char *ref;
    int want;
} ref_case_t;

/* Runs a table through a checker; a refusal must list the prefixes (listed is one). */
/* A request as the server checks it: its shape by the job codec (job/spec, 400), then its
 * destinations against the tenant's rules (403). */
static int check_request(json_t *req, const kiln_outconf_rules_t *rules, unsigned *status,
                         kiln_error_t *err)
{
    kiln_job_spec_t spec = {0};
    json_t *secrets = NULL;
    int r;

    if (json_object_get(req, "source") == NULL)
        json_object_set_new(req, "source", json_pack("{s:s}", "git", "https://h.test/r"));
    r = kiln_job_from_json(req, KILN_JOB_JSON_REQUEST, &spec, &secrets, err);
    kiln_job_spec_clear(&spec);
    json_decref(secrets);
    if (r < 0) {
        *status = 400;
        return -1;
    }
    return kiln_outconf_check(req, rules, status, err);
}

static void run_table(const ref_case_t *cases, size_t n,
                      int (*check)(const char *, json_t *, kiln_error_t *), json_t *prefixes,
                      const char *listed)
{
    kiln_error_t err = {0};

    for (size_t i = 0; i < n; i++) {
        int got = check(cases[i].ref, prefixes, &err);
        if (got != cases[i].want)
            fail_msg("case %zu '%s': got %d (%s), want %d", i, cases[i].ref, got, err.msg,
                     cases[i].want);
        if (got == 0 && strstr(err.msg, listed) == NULL)
            fail_msg("case %zu: the refusal does not list the prefixes: %s", i, err.msg);
    }
}

static void test_registry_table(void **state)
{
    json_t *prefixes =
        json_pack("[s,s,s,s,s,s]", ECR "/acme/", "localhost:5000/acme/", "Ghcr.IO/acme/app",
                  "acme/", "docker.io/library/nginx", "[::1]:5001/");
    static const ref_case_t cases[] = {
        /* under the ECR prefix, tags and digests do not matter */
        {ECR "/acme/app", 1},
        {ECR "/acme/app:v1", 1},
        {ECR "/acme/team/app:v1", 1},
        {ECR "/acme/app@sha256:"
             "0123456789012345678901234567890123456789012345678901234567890123",
         1},
        {ECR "/acme/app:v1@sha256:"
             "0123456789012345678901234567890123456789012345678901234567890123",
         1},
        {"123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM/acme/app", 1}, /* hosts are caseless */
        /* whole segments only */
        {ECR "/acmex/app", 0},
        {ECR "/acme", 0}, /* "acme/" covers what is below acme, not acme itself */
        {ECR "/acm/app", 0},
        {ECR "/other/acme/app", 0},
        /* another host, port or account */
        {"210987654321.dkr.ecr.eu-west-1.amazonaws.com/acme/app", 0},
        {ECR ":443/acme/app", 0},
        {ECR ".evil.com/acme/app", 0},
        {"evil.com/" ECR "/acme/app", 0},
        {"localhost:5000/acme/app", 1},
        {"localhost:5001/acme/app", 0},
        {"localhost/acme/app", 0},
        {"127.0.0.1:5000/acme/app", 0},
        /* a prefix without a trailing '/': the repository itself and below it */
        {"ghcr.io/acme/app:1", 1},
        {"GHCR.io/acme/app/sub:1", 1},
        {"ghcr.io/acme/apps:1", 0},
        {"ghcr.io/acme/ap:1", 0},
        /* docker.io defaults */
        {"acme/app", 1},
        {"docker.io/acme/app", 1},
        {"index.docker.io/acme/app", 1},
        {"registry-1.docker.io/acme/app", 1},
        {"INDEX.DOCKER.IO/acme/app", 1},
        {"acmex/app", 0},
        {"nginx", 1}, /* docker.io/library/nginx */
        {"nginx:1.25", 1},
        {"library/nginx", 1},
        {"alpine", 0},
        {"app", 0},
        /* the whole registry */
        {"[::1]:5001/anything/at/all:1", 1},
        {"[::1]:5000/acme/app", 0},
        /* malformed: 400 */
        {ECR "/acme/../other/app", -1},
        {ECR "/acme/./app", -1},
        {ECR "/acme//app", -1},
        {ECR "/acme/app/", -1},
        {ECR "/acme/%2e%2e/app", -1},
        {ECR "/acme/%2E%2E/other", -1},
        {ECR "/acme/App", -1},
        {ECR "/acme/app:", -1},
        {ECR "/acme/app@sha256:abc", -1},
        {"/acme/app", -1},
        {"", -1},
        {"acme/app:v1:v2", -1},
        {"acme\\app", -1},
        {"https://" ECR "/acme/app", -1},
        {"user@" ECR "/acme/app", -1},
    };
    kiln_error_t err = {0};

    (void)state;
    run_table(cases, sizeof(cases) / sizeof(cases[0]), kiln_outconf_registry_allowed, prefixes,
              ECR "/acme/");
    /* no list: any valid reference; an empty list: none */
    assert_int_equal(kiln_outconf_registry_allowed("ghcr.io/x/y", NULL, &err), 1);
    assert_int_equal(kiln_outconf_registry_allowed("ghcr.io/x/..", NULL, &err), -1);
    json_decref(prefixes);
    prefixes = json_array();
    assert_int_equal(kiln_outconf_registry_allowed("ghcr.io/x/y", prefixes, &err), 0);
    assert_non_null(strstr(err.msg, "no push allowed"));
    json_decref(prefixes);
}

static void test_s3_table(void **state)
{
    json_t *prefixes =
        json_pack("[s,s,s]", "s3://sites/acme/", "s3://fn-bucket/acme/lambda", "s3://acme-all");
    static const ref_case_t cases[] = {
        {"s3://sites/acme/www", 1},
        {"s3://sites/acme/www/", 1},
        {"s3://sites/acme/a/b/c", 1},
        {"s3://sites/acme", 1}, /* objects go to acme/FILE */
        {"s3://sites/acme/", 1},
        {"s3://sites/acmex", 0},
        {"s3://sites/acmex/www", 0},
        {"s3://sites/acm", 0},
        {"s3://sites", 0},
        {"s3://sites/", 0},
        {"s3://sites/other/acme/www", 0},
        {"s3://sites-b/acme/www", 0},
        {"s3://fn-bucket/acme/lambda", 1},
        {"s3://fn-bucket/acme/lambda/v2", 1},
        {"s3://fn-bucket/acme/lambdas", 0},
        {"s3://fn-bucket/acme", 0},
        {"s3://acme-all", 1},
        {"s3://acme-all/", 1},
        {"s3://acme-all/any/where", 1},
        {"s3://acme-alls/x", 0},
        /* malformed: 400 */
        {"s3://sites/acme/../other", -1},
        {"s3://sites/acme/..", -1},
        {"s3://sites/acme/./www", -1},
        {"s3://sites/acme//www", -1},
        {"s3://sites//acme/www", -1},
        {"s3://sites/acme/%2e%2e/other", -1},
        {"s3://sites/acme/%2E%2E/other", -1},
        {"s3://sites/acme/a\\..\\b", -1},
        {"s3://sites/acme/www?x=1", -1},
        {"s3://sites/acme/www#x", -1},
        {"s3://sites/acme/w w", -1},
        {"s3://sites/acme/\xc3\xa9", -1},
        {"s3://Sites/acme/www", -1},
        {"s3://si/acme", -1},
        {"s3://sites..x/acme", -1},
        {"s3://.sites/acme", -1},
        {"s3://sites-/acme", -1},
        {"S3://sites/acme/www", -1},
        {"https://sites.s3.amazonaws.com/acme/www", -1},
        {"s3:/sites/acme", -1},
    };

    (void)state;
    run_table(cases, sizeof(cases) / sizeof(cases[0]), kiln_outconf_s3_allowed, prefixes,
              "s3://sites/acme/");
    json_decref(prefixes);
}

static void test_local_dest_table(void **state)
{
    static const ref_case_t cases[] = {
        {"site", 1},
        {"out/site", 1},
        {"function.zip", 1},
        {"a-b_c.d+e@f/x", 1},
        {"..x", 1}, /* a name, not a parent */
        {"x..", 1},
        {"/etc/cron.d/x", 0},
        {"/", 0},
        {"", 0},
        {"..", 0},
        {"../x", 0},
        {"a/../../x", 0},
        {"a/..", 0},
        {".", 0},
        {"./a", 0},
        {"a//b", 0},
        {"a/", 0},
        {"%2e%2e/x", 0},
        {"a\\..\\b", 0},
        {"a b", 0},
        {"a\nb", 0},
        {"~/x", 0},
        {"a:b", 0},
        {"caf\xc3\xa9", 0},
        {"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/0/1/2/3/4/5/6", 0},
    };
    kiln_error_t err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = kiln_job_file_dest_check(cases[i].ref, &err) == 0;
        if (got != cases[i].want)
            fail_msg("case %zu '%s': got %d (%s), want %d", i, cases[i].ref, got, err.msg,
                     cases[i].want);
    }
    assert_true(kiln_job_output_type_is_file("local"));
    assert_true(kiln_job_output_type_is_file("oci"));
    assert_true(kiln_job_output_type_is_file("docker"));
    assert_true(kiln_job_output_type_is_file("tar"));
    assert_true(kiln_job_output_type_is_file("function"));
    assert_false(kiln_job_output_type_is_file("registry"));
    assert_false(kiln_job_output_type_is_file("s3"));
    assert_false(kiln_job_output_type_is_file(NULL));
}

typedef struct req_case {
    const char *body;
    unsigned status;  /* 0 = accepted */
    const char *want; /* in the message */
} req_case_t;

/* Whole requests against a tenant "acme": status and the message naming field and rule. */
static void test_requests(void **state)
{
    static const req_case_t cases[] = {
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"" ECR "/acme/app:1\"}]}", 0, ""},
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"" ECR "/acmex/app:1\"}]}", 403,
         "field 'outputs[0].name': '" ECR "/acmex/app:1' is " ECR "/acmex/app, outside"},
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"ghcr.io/acme/app\"}]}", 403,
         "\"registry\": [...]"},
        /* every form that pushes */
        {"{\"outputs\": [{\"type\": \"image\", \"name\": \"ghcr.io/x/y\", \"push\": true}]}", 403,
         "outputs[0].name"},
        {"{\"outputs\": [{\"type\": \"image\", \"name\": \"ghcr.io/x/y\", \"push\": \"true\"}]}",
         403, "outputs[0].name"},
        {"{\"outputs\": [{\"type\": \"image\", \"name\": \"ghcr.io/x/y\", \"push\": 1}]}", 403,
         "outputs[0].name"},
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"ghcr.io/x/y\", \"push\": false}]}",
         403, "outputs[0].name"},
        {"{\"outputs\": [{\"type\": \"image\", \"name\": \"ghcr.io/x/y\", \"push\": false}]}", 0,
         ""},
        {"{\"outputs\": [{\"type\": \"image\", \"name\": \"ghcr.io/x/y\", \"push\": \"yes\"}]}",
         400, "outputs[0].push"},
        {"{\"tags\": [\"" ECR "/acme/app:1\", \"ghcr.io/x/y:1\"]}", 403, "field 'tags[1]'"},
        {"{\"tags\": [\"" ECR "/acme/app:1\"], \"outputs\": [{\"type\": \"registry\"}]}", 0, ""},
        {"{\"tags\": [\"" ECR "/acme/../x/app:1\"]}", 400, "field 'tags[0]'"},
        {"{\"outputs\": [{\"type\": \"registry\"}]}", 400, "outputs[0]': a push needs a name"},
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"" ECR "/acme/%2e%2e/x\"}]}", 400,
         "outputs[0].name"},
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"" ECR
         "/acme/app\", \"ecr-create-repository\": true}]}",
         0, ""},
        /* s3 */
        {"{\"outputs\": [{\"type\": \"s3\", \"dest\": \"s3://sites/acme/www\"}]}", 0, ""},
        {"{\"outputs\": [{\"type\": \"s3\", \"dest\": \"s3://sites/acmex/www\"}]}", 403,
         "field 'outputs[0].dest': 's3://sites/acmex/www' is outside the s3 prefixes "
         "(s3://sites/acme/)"},
        {"{\"outputs\": [{\"type\": \"s3\", \"dest\": \"s3://sites/acme/../x\"}]}", 400,
         "outputs[0].dest"},
        {"{\"outputs\": [{\"type\": \"s3\"}]}", 400, "type=s3 needs a dest"},
        /* notify: exact targets */
        {"{\"notify\": [\"sqs://https://sqs.eu-west-1.amazonaws.com/1/acme-events\"]}", 0, ""},
        {"{\"notify\": [\"sqs://https://sqs.eu-west-1.amazonaws.com/1/acme-events2\"]}", 403,
         "field 'notify[0]'"},
        {"{\"notify\": [\"sns://arn:aws:sns:eu-west-1:1:other\"]}", 403, "\"notify\": [...]"},
        /* file outputs */
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"site\"}, {\"type\": \"oci\", "
         "\"dest\": \"image\", \"tar\": true}, {\"type\": \"function\", \"dest\": \"fn.zip\"}]}",
         0, ""},
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"/etc/cron.d\"}]}", 400,
         "field 'outputs[0].dest': '/etc/cron.d' is absolute"},
        {"{\"outputs\": [{\"type\": \"oci\", \"dest\": \"../../x\"}]}", 400, "outputs[0].dest"},
        {"{\"outputs\": [{\"type\": \"docker\", \"dest\": \"a/../../x.tar\"}]}", 400,
         "outputs[0].dest"},
        {"{\"outputs\": [{\"type\": \"tar\", \"dest\": \"%2e%2e/x\"}]}", 400, "outputs[0].dest"},
        {"{\"outputs\": [{\"type\": \"local\"}]}", 400, "type=local needs a dest"},
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": 5}]}", 400, "outputs[0].dest"},
        /* one file output inside another's directory (could follow the image's symlinks) */
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"site\"}, {\"type\": \"local\", "
         "\"dest\": \"site/evil/x\"}]}",
         400, "field 'outputs[1].dest': 'site/evil/x' and outputs[0].dest 'site'"},
        {"{\"outputs\": [{\"type\": \"oci\", \"dest\": \"a/b\"}, {\"type\": \"local\", "
         "\"dest\": \"a\"}]}",
         400, "outputs[1].dest"},
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"a\"}, {\"type\": \"local\", "
         "\"dest\": \"a\"}]}",
         400, "outputs[1].dest"},
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"pkg/function.json\"}, {\"type\": "
         "\"function\", \"dest\": \"pkg/f.zip\"}]}",
         400, "outputs[1].dest"},
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"site\"}, {\"type\": \"local\", "
         "\"dest\": \"site2\"}]}",
         0, ""},
        /* types and keys */
        {"{\"outputs\": [{\"type\": \"cacheonly\"}]}", 400, "unknown output type 'cacheonly'"},
        {"{\"outputs\": [{\"type\": \"function\", \"dest\": \"f.zip\", \"x-dest\": "
         "\"/etc/x.zip\"}]}",
         400, "field 'outputs[0].x-dest': not an option of type=function (dest)"},
        {"{\"outputs\": [{\"type\": \"local\", \"dest\": \"a\", \"name\": \"x\"}]}", 400,
         "outputs[0].name"},
        {"{\"outputs\": [{\"type\": \"registry\", \"name\": \"" ECR "/acme/a\", \"dest\": "
         "\"/x\"}]}",
         400, "outputs[0].dest"},
        {"{\"outputs\": [{\"type\": \"oci\", \"dest\": \"a\", \"tar\": \"maybe\"}]}", 400,
         "outputs[0].tar"},
    };
    json_t *registry = json_pack("[s]", ECR "/acme/");
    json_t *s3 = json_pack("[s]", "s3://sites/acme/");
    json_t *notify = json_pack("[s]", "sqs://https://sqs.eu-west-1.amazonaws.com/1/acme-events");
    kiln_outconf_rules_t rules = {
        .tenant = "acme", .registry = registry, .s3 = s3, .notify = notify};
    kiln_outconf_rules_t open = {.tenant = "default"};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *req = json_loads(cases[i].body, 0, NULL);
        kiln_error_t err = {0};
        unsigned status = 1;
        int r;
        assert_non_null(req);
        r = check_request(req, &rules, &status, &err);
        if ((r == 0) != (cases[i].status == 0) || (r < 0 && status != cases[i].status) ||
            strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu %s: got %d status %u '%s', want %u '%s'", i, cases[i].body, r,
                     status, err.msg, cases[i].status, cases[i].want);
        if (cases[i].status == 403 && strstr(err.msg, "tenant 'acme'") == NULL)
            fail_msg("case %zu: the refusal does not name the tenant: %s", i, err.msg);
        /* without rules (the single-tenant forms) only the 400s remain */
        status = 1;
        memset(&err, 0, sizeof(err));
        r = check_request(req, &open, &status, &err);
        if ((r < 0) != (cases[i].status == 400))
            fail_msg("case %zu without rules: got %d '%s'", i, r, err.msg);
        json_decref(req);
    }
    json_decref(registry);
    json_decref(s3);
    json_decref(notify);
}

/* A tenant's rules are checked when the config is loaded: a bad prefix is named. */
static void test_rules_check(void **state)
{
    static const struct {
        const char *registry, *s3, *notify, *want;
    } cases[] = {
        {ECR "/acme/", "s3://sites/acme/", "sqs://https://q/1/x", NULL},
        {"acme/", "s3://sites", "sns://arn:aws:sns:eu-west-1:1:t", NULL},
        {"ghcr.io/", "s3://sites/", "sqs://x", NULL},
        {"ghcr.io//", "s3://sites/", "sqs://x", "outputs.registry[0]"},
        {"ghcr.io/acme/../x/", "s3://sites/", "sqs://x", "outputs.registry[0]"},
        {"ghcr.io/Acme/", "s3://sites/", "sqs://x", "outputs.registry[0]"},
        {"bad host/acme/", "s3://sites/", "sqs://x", "outputs.registry[0]"},
        {"/", "s3://sites/", "sqs://x", "outputs.registry[0]"},
        {"ghcr.io/acme/", "s3://sites/acme/../x", "sqs://x", "outputs.s3[0]"},
        {"ghcr.io/acme/", "sites/acme/", "sqs://x", "outputs.s3[0]"},
        {"ghcr.io/acme/", "s3://sites/", "https://x", "outputs.notify[0]"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = json_pack("[s]", cases[i].registry), *s = json_pack("[s]", cases[i].s3),
               *n = json_pack("[s]", cases[i].notify);
        kiln_outconf_rules_t rules = {.tenant = "acme", .registry = r, .s3 = s, .notify = n};
        kiln_error_t err = {0};
        int ret = kiln_outconf_rules_check(&rules, &err);
        if (cases[i].want == NULL ? ret != 0 : (ret == 0 || !strstr(err.msg, cases[i].want)))
            fail_msg("case %zu: got %d '%s', want %s", i, ret, err.msg,
                     cases[i].want ? cases[i].want : "accepted");
        json_decref(r);
        json_decref(s);
        json_decref(n);
    }
    {
        json_t *bad = json_pack("[i]", 1);
        kiln_outconf_rules_t rules = {.tenant = "acme", .s3 = bad};
        kiln_error_t err = {0};
        assert_int_equal(kiln_outconf_rules_check(&rules, &err), -1);
        assert_non_null(strstr(err.msg, "outputs.s3[0]: must be a string"));
        json_decref(bad);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_table),   cmocka_unit_test(test_s3_table),
        cmocka_unit_test(test_local_dest_table), cmocka_unit_test(test_requests),
        cmocka_unit_test(test_rules_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
