/* Unit tests for the typed job (job/spec, job/codec): JSON → spec → JSON round trips, a table
 * of every validation error naming its field, limits, outputs, secrets by reference (no value
 * ever in the spec's JSON), local-only fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job/codec.h"
#include "job/codec_write.h"
#include "job/request.h"
#include "job/stream.h"
#include "utils/cleanup.h"

/* Parses text with flags; returns the spec's JSON (or NULL, err filled). */
static json_t *through(const char *text, unsigned flags, json_t **secrets, kiln_error_t *err)
{
    kiln_job_spec_t s = {0};
    json_t *j;

    if (kiln_job_parse(text, strlen(text), flags, &s, secrets, err) < 0)
        return NULL;
    j = kiln_job_to_json(&s);
    kiln_job_spec_clear(&s);
    return j;
}

static void assert_json_equal(json_t *a, json_t *b)
{
    if (!json_equal(a, b)) {
        _cleanup_free_ char *sa = json_dumps(a, JSON_SORT_KEYS);
        _cleanup_free_ char *sb = json_dumps(b, JSON_SORT_KEYS);
        fail_msg("JSON differs:\n  %s\n  %s", sa, sb);
    }
}

/* The strings of a NULL-terminated list are exactly want (NULL-terminated). */
static void assert_strv(const char *const *v, const char *const *want)
{
    size_t i;

    for (i = 0; want[i]; i++) {
        if (v == NULL || v[i] == NULL || strcmp(v[i], want[i]) != 0)
            fail_msg("entry %zu: got '%s', want '%s'", i, v && v[i] ? v[i] : "(end)", want[i]);
    }
    assert_true(v == NULL || v[i] == NULL);
}

/* A full spec (every field set) reads back to itself, and once more to the same JSON. */
static void test_round_trip(void **state)
{
    static const char *const specs[] = {
        "{\"source\": {\"git\": \"https://example.com/acme/app.git\", \"ref\": \"main\", "
        "\"commit\": \"0123456789abcdef0123456789abcdef01234567\", \"subdir\": \"svc/api\", "
        "\"timeout_seconds\": 120}, "
        "\"dockerfile\": \"docker/Dockerfile\", \"target\": \"prod\", \"tenant\": \"acme\", "
        "\"build_args\": {\"A\": \"1\", \"B_2\": \"x y\"}, \"env\": {\"NODE_ENV\": "
        "\"production\"}, "
        "\"secrets\": [\"npm\", \".git\"], "
        "\"outputs\": [{\"type\": \"local\", \"dest\": \"site\"}, {\"type\": \"oci\", \"dest\": "
        "\"img.tar\", \"tar\": true}, {\"type\": \"image\", \"push\": \"false\"}, {\"type\": "
        "\"s3\", \"dest\": \"s3://my-bucket/site\", \"concurrency\": 4}, {\"type\": "
        "\"registry\", \"name\": \"ghcr.io/acme/app:1\", \"ecr-create-repository\": false}], "
        "\"tags\": [\"ghcr.io/acme/app:latest\"], \"notify\": [\"sqs://sqs.eu-west-1.amazonaws"
        ".com/123/q\", \"sns://arn:aws:sns:eu-west-1:123:t\"], \"allow\": [\"network.host\"], "
        "\"timeout_seconds\": 600, \"limits\": {\"memory\": \"512m\", \"pids\": 100, "
        "\"cpu_time\": 60, \"wall_time\": 900, \"disk\": \"10g\"}, \"build_id\": \"b-123\", "
        "\"repo\": \"https://example.com/acme/app\", \"commit\": "
        "\"0123456789abcdef0123456789abcdef01234567\", \"branch\": \"main\", \"trigger\": "
        "\"webhook\", \"platform\": \"linux/amd64\", \"cache\": {\"disabled\": true, \"from\": "
        "[\"ghcr.io/acme/app:cache\"], \"to\": \"ghcr.io/acme/app:cache\", \"mode\": \"max\", "
        "\"namespace\": \"acme\", \"context_id\": \"git https://example.com/acme/app svc/api\"}, "
        "\"soci\": true, \"soci_min_layer_size\": 1048576, \"sbom\": true, \"provenance\": true}",
        "{\"source\": {\"context\": \"ctx-0123abcd\"}}",
        "{\"source\": {\"dir\": \"/src/app\"}, \"dockerfile\": \"-\", \"plan\": "
        "\"/tmp/plan.json\", "
        "\"build_args\": {\"FROM_ENV\": null}, \"secrets\": [{\"id\": \"tok\", \"src\": "
        "\"/run/tok\"}, {\"id\": \"key\", \"env\": \"KEY\"}], \"outputs\": [{\"type\": "
        "\"docker\", \"dest\": \"/tmp/img.tar\"}], \"cache\": {\"to\": \"localhost:5000/c:1\", "
        "\"mode\": \"min\", \"remote_from\": [\"type=s3,bucket=kcache,prefix=app\"], "
        "\"remote_to\": \"type=s3,bucket=kcache,prefix=app,mode=max,max-size=2G\"}}",
        /* the build options (job/options.h) */
        "{\"source\": {\"dir\": \"/src/app\"}, \"labels\": {\"org.k\": \"v 1\", \"e\": \"\"}, "
        "\"build_contexts\": {\"lib\": \"/w/lib\", \"img\": \"docker-image://alpine:3\"}, "
        "\"compression\": \"zstd\", \"compression_level\": 19, \"source_date_epoch\": 0, "
        "\"network\": \"host\", \"isolation\": \"chroot\", \"ssh\": \"/run/agent.sock\", "
        "\"registry\": {\"mirrors\": [\"docker.io=127.0.0.1:5000/hub\"], \"insecure\": "
        "[\"127.0.0.1:5000\"]}}",
    };

    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        kiln_error_t err = {0};
        json_t *want = json_loads(specs[i], 0, NULL);
        json_t *got = through(specs[i], KILN_JOB_JSON_LOCAL, NULL, &err);
        _cleanup_free_ char *text = NULL;
        json_t *again;
        if (got == NULL)
            fail_msg("spec %zu: %s", i, err.msg);
        assert_json_equal(got, want);
        text = json_dumps(got, 0);
        again = through(text, KILN_JOB_JSON_LOCAL, NULL, &err);
        assert_non_null(again);
        assert_json_equal(again, got);
        json_decref(want);
        json_decref(got);
        json_decref(again);
    }
}

/* An API request: what is stored is the request with secret values out (names only), the
 * git credential (URL userinfo, token) one of those secrets, limits normalised. */
static void test_request_form(void **state)
{
    kiln_error_t err = {0};
    json_t *secrets = NULL;
    json_t *got = through("{\"source\": {\"git\": \"https://bob:s3cr%40t@Example.COM/a/b.git/\", "
                          "\"ref\": \"dev\"}, \"secrets\": {\"npm\": \"NPM-VALUE\"}, "
                          "\"limits\": {\"memory\": 1073741824}, \"outputs\": [{\"type\": "
                          "\"local\", \"dest\": \"out\"}]}",
                          KILN_JOB_JSON_REQUEST, &secrets, &err);
    json_t *want = json_loads(
        "{\"source\": {\"git\": \"https://Example.COM/a/b.git/\", \"ref\": \"dev\"}, "
        "\"secrets\": [\"npm\", \".git\"], \"limits\": {\"memory\": \"1g\"}, \"outputs\": "
        "[{\"type\": \"local\", \"dest\": \"out\"}]}",
        0, NULL);
    _cleanup_free_ char *text = NULL;

    if (got == NULL)
        fail_msg("%s", err.msg);
    assert_json_equal(got, want);
    text = json_dumps(got, 0);
    assert_null(strstr(text, "NPM-VALUE"));
    assert_null(strstr(text, "s3cr"));
    assert_string_equal(json_string_value(json_object_get(secrets, "npm")), "NPM-VALUE");
    assert_string_equal(json_string_value(json_object_get(secrets, ".git")), "bob:s3cr@t");
    json_decref(secrets);
    json_decref(got);
    json_decref(want);

    /* source.token wins over the URL's; no values: *secrets stays NULL */
    secrets = NULL;
    got = through("{\"source\": {\"git\": \"https://example.com/a\", \"token\": \"T0K\"}}",
                  KILN_JOB_JSON_REQUEST, &secrets, &err);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(secrets, ".git")), "T0K");
    json_decref(secrets);
    json_decref(got);
    secrets = (json_t *)1;
    got = through("{\"source\": {\"context\": \"ctx-ab\"}}", KILN_JOB_JSON_REQUEST, &secrets, &err);
    assert_non_null(got);
    assert_null(secrets);
    json_decref(got);

    /* a spec (not a request) never takes values where none may go */
    got = through("{\"source\": {\"git\": \"https://u:p@example.com/a\"}}", 0, NULL, &err);
    assert_null(got);
    assert_non_null(strstr(err.msg, "field 'secrets': secret values are not accepted here"));
}

typedef struct bad_case {
    unsigned flags;
    const char *json; /* the fields after "source": {"git": "https://h/r"} */
    const char *want; /* a part of the message */
} bad_case_t;

#define GIT "{\"source\": {\"git\": \"https://h/r\"}"
#define LOCAL "{\"source\": {\"dir\": \"/src\"}"
#define REQ KILN_JOB_JSON_REQUEST
#define LOC KILN_JOB_JSON_LOCAL

/* Every validation error names its field. */
static void test_errors(void **state)
{
    static const bad_case_t cases[] = {
        {0, "[]", "the job must be a JSON object"},
        {0, "{\"source\": {\"git\": \"https://h/r\"}, \"sauce\": 1}",
         "field 'sauce': unknown field"},
        {0, "{}", "field 'source': is required"},
        {0, "{\"source\": {\"git\": \"https://h/r\"}, \"soci\": true}",
         "field 'soci': indexes the image a push writes: needs an output of type registry"},
        {0, "{\"source\": {\"git\": \"https://h/r\"}, \"soci\": \"yes\"}",
         "field 'soci': must be true or false"},
        {0, "{\"source\": {\"git\": \"https://h/r\"}, \"sbom\": \"yes\"}",
         "field 'sbom': must be true or false"},
        {0, "{\"source\": {\"git\": \"https://h/r\"}, \"provenance\": 1}",
         "field 'provenance': must be true or false"},
        {0,
         "{\"source\": {\"git\": \"https://h/r\"}, \"outputs\": [{\"type\": \"registry\", "
         "\"name\": \"h/r:1\"}], \"soci_min_layer_size\": -1}",
         "field 'soci_min_layer_size'"},
        {0,
         "{\"source\": {\"git\": \"https://h/r\"}, \"cache\": {\"remote_to\": "
         "\"type=s3,bucket=x\"}}",
         "field 'cache.remote_to': cache type=s3,bucket=x: bucket=x is not an S3 bucket name"},
        {0,
         "{\"source\": {\"git\": \"https://h/r\"}, \"cache\": {\"from\": "
         "[\"type=s3,bucket=kcache,prefix=a/../b\"]}}",
         "field 'cache.remote_from[0]': cache type=s3,bucket=kcache,prefix=a/../b: prefix=a/../b: "
         "path a/../b has a \"..\" component"},
        {0,
         "{\"source\": {\"git\": \"https://h/r\"}, \"cache\": {\"remote_from\": "
         "[\"type=registry,ref=x\"]}}",
         "field 'cache.remote_from[0]': must be type=s3"},
        {0, "{\"source\": 1}", "field 'source': must be an object with 'git' or 'context'"},
        {0, "{\"source\": {}}", "field 'source': needs exactly one of 'git' or 'context'"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"context\": \"ctx-1\"}}",
         "field 'source': needs exactly one"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"branch\": \"x\"}}",
         "field 'source.branch': unknown field"},
        {0, "{\"source\": {\"dir\": \"/x\"}}", "field 'source.dir': unknown field"},
        {0, "{\"source\": {\"git\": \"ftp://h/r\"}}", "field 'source.git': must be an https://"},
        {0, "{\"source\": {\"git\": \"https://h/r#main\"}}",
         "field 'source.git': must not contain '#'"},
        {0, "{\"source\": {\"git\": \"-https://h\"}}",
         "field 'source.git': must not start with '-'"},
        {0, "{\"source\": {\"git\": \"https://h/\\u0001\"}}",
         "field 'source.git': contains a control character"},
        {0, "{\"source\": {\"git\": 5}}", "field 'source.git': must be a string"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"ref\": \"a:b\"}}",
         "field 'source.ref': is not a valid git ref"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"commit\": \"xyz1234\"}}",
         "field 'source.commit': must be a hex commit id"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"subdir\": \"a/../../b\"}}",
         "field 'source.subdir': must not contain '..'"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"subdir\": \"/etc\"}}",
         "field 'source.subdir': must be a path relative to the source"},
        {0, "{\"source\": {\"context\": \"ctx-zz\"}}",
         "field 'source.context': is not an uploaded context id"},
        {0, "{\"source\": {\"context\": \"ctx-1\", \"ref\": \"x\"}}",
         "field 'source': 'context' takes no other field"},
        {0, GIT ", \"dockerfile\": \"../Dockerfile\"}",
         "field 'dockerfile': must not contain '..'"},
        {0, GIT ", \"dockerfile\": \"/etc/passwd\"}",
         "field 'dockerfile': must be a path relative"},
        {0, GIT ", \"dockerfile\": \"\"}", "field 'dockerfile': must not be empty"},
        {0, GIT ", \"target\": \"-x\"}", "field 'target': must not start with '-'"},
        {0, GIT ", \"plan\": \"/p.json\"}", "field 'plan': a plan file is only for local builds"},
        {REQ, GIT ", \"plan\": \"/p.json\"}", "field 'plan': unknown field"},
        {REQ, GIT ", \"build_id\": \"b1\"}", "field 'build_id': unknown field"},
        {REQ, GIT ", \"cache\": {}}", "field 'cache': unknown field"},
        {0, GIT ", \"build_id\": \"a/b\"}", "field 'build_id': may hold only"},
        {0, GIT ", \"tenant\": \"a b\"}", "field 'tenant': may hold only"},
        {0, GIT ", \"trigger\": \"\"}", "field 'trigger': must not be empty"},
        {0, GIT ", \"commit\": \"nothex!\"}", "field 'commit': must be a hex commit id"},
        {0, GIT ", \"branch\": \"a..b~1\"}", "field 'branch': is not a valid git ref"},
        {0, GIT ", \"platform\": \"linux/arm64\"}", "field 'platform': only linux/amd64"},
        {0, GIT ", \"build_args\": []}", "field 'build_args': must be an object of strings"},
        {0, GIT ", \"build_args\": {\"1A\": \"x\"}}", "field 'build_args.1A': is not a valid name"},
        {0, GIT ", \"build_args\": {\"A\": 1}}", "field 'build_args.A': must be a string"},
        {0, GIT ", \"build_args\": {\"A\": null}}", "field 'build_args.A': must be a string"},
        {0, GIT ", \"env\": {\"A-B\": \"x\"}}", "field 'env.A-B': is not a valid name"},
        {REQ, GIT ", \"secrets\": [\"a\"]}", "field 'secrets': must be an object of strings"},
        {REQ, GIT ", \"secrets\": {\"a b\": \"v\"}}",
         "field 'secrets.a b': is not a valid secret id (letters, digits, '_', '-' and '.', "
         "starting with a letter or '_')"},
        {REQ, GIT ", \"secrets\": {\"../../x\": \"v\"}}",
         "field 'secrets.../../x': is not a valid secret id"},
        {LOC, LOCAL ", \"secrets\": [{\"id\": \"a/b\", \"src\": \"/f\"}]}",
         "field 'secrets.a/b': is not a valid secret id"},
        {REQ, GIT ", \"secrets\": {\"a\": 1}}", "field 'secrets.a': must be a string"},
        {0, GIT ", \"secrets\": {\"a\": \"v\"}}", "field 'secrets': must be a list"},
        {0, GIT ", \"secrets\": [\"a\", \"a\"]}", "field 'secrets.a': is given twice"},
        {0, GIT ", \"secrets\": [{\"id\": \"a\", \"src\": \"/f\"}]}",
         "field 'secrets.a': a secret's file or variable is only for local builds"},
        {LOC, LOCAL ", \"secrets\": [{\"id\": \"a\", \"src\": \"/f\", \"env\": \"E\"}]}",
         "field 'secrets.a': takes a file or a variable, not both"},
        {LOC, LOCAL ", \"secrets\": [{\"id\": \"a\", \"value\": \"v\"}]}",
         "field 'secrets[0].value': unknown field"},
        {0, GIT ", \"allow\": \"network.host\"}", "field 'allow': must be a list of entitlements"},
        {0, GIT ", \"allow\": [\"root\"]}", "field 'allow[0]': is not an entitlement"},
        {0, GIT ", \"limits\": 5}", "field 'limits': must be an object"},
        {0, GIT ", \"limits\": {\"cpu\": 1}}", "field 'limits.cpu': unknown field"},
        {0, GIT ", \"limits\": {\"memory\": \"lots\"}}", "field 'limits.memory'"},
        {0, GIT ", \"limits\": {\"memory\": \"0\"}}", "field 'limits.memory': must not be 0"},
        {0, GIT ", \"limits\": {\"pids\": \"5\"}}",
         "field 'limits.pids': must be a positive integer"},
        {0, GIT ", \"limits\": {\"pids\": -1}}", "field 'limits.pids': must be a positive integer"},
        {0, GIT ", \"limits\": {\"pids\": 99999999}}",
         "field 'limits.pids': 99999999 is too large"},
        {0, GIT ", \"limits\": {\"cpu_time\": 99999999}}", "field 'limits.cpu_time'"},
        {0, GIT ", \"limits\": {\"wall_time\": 99999999}}", "field 'limits.wall_time'"},
        {0, GIT ", \"limits\": {\"disk\": true}}", "field 'limits.disk': must be a size"},
        {0, GIT ", \"timeout_seconds\": 0}", "field 'timeout_seconds': must be a positive number"},
        {0, GIT ", \"outputs\": {}}", "field 'outputs': must be a list of objects"},
        {0, GIT ", \"outputs\": [1]}", "field 'outputs[0]': must be an object"},
        {0, GIT ", \"outputs\": [{}]}", "field 'outputs[0].type': must be a string"},
        {0, GIT ", \"outputs\": [{\"type\": \"bogus\"}]}",
         "field 'outputs[0].type': unknown output type 'bogus'"},
        {0, GIT ", \"outputs\": [{\"type\": \"local\"}]}",
         "field 'outputs[0].dest': type=local needs a dest"},
        {0, GIT ", \"outputs\": [{\"type\": \"s3\"}]}",
         "field 'outputs[0].dest': type=s3 needs a dest"},
        {0, GIT ", \"outputs\": [{\"type\": \"s3\", \"dest\": \"s3://x\"}]}",
         "field 'outputs[0].dest': 's3://x': the bucket name must be 3 to 63"},
        {0, GIT ", \"outputs\": [{\"type\": \"s3\", \"dest\": \"s3://Bucket\"}]}",
         "is not a valid bucket name"},
        {0, GIT ", \"outputs\": [{\"type\": \"s3\", \"dest\": \"https://b/x\"}]}",
         "field 'outputs[0].dest': 'https://b/x' is not an s3://BUCKET[/PREFIX] URL"},
        {0, GIT ", \"outputs\": [{\"type\": \"oci\", \"dest\": \"o\", \"tar\": \"yes\"}]}",
         "field 'outputs[0].tar': must be true or false"},
        {0, GIT ", \"outputs\": [{\"type\": \"oci\", \"dest\": \"o\", \"name\": \"x\"}]}",
         "field 'outputs[0].name': not an option of type=oci (dest, tar)"},
        {0, GIT ", \"outputs\": [{\"type\": \"local\", \"dest\": \"a,b\"}]}",
         "field 'outputs[0].dest': must not contain ','"},
        {0, GIT ", \"outputs\": [{\"type\": \"local\", \"dest\": [\"a\"]}]}",
         "field 'outputs[0].dest': must be a string"},
        {0, GIT ", \"outputs\": [{\"type\": \"registry\"}]}",
         "field 'outputs[0]': a push needs a name"},
        {0, GIT ", \"outputs\": [{\"type\": \"image\", \"push\": true}]}",
         "field 'outputs[0]': a push needs a name"},
        {0, GIT ", \"outputs\": [{\"type\": \"registry\", \"name\": \"A/B\"}]}",
         "field 'outputs[0].name': invalid image reference"},
        {0, GIT ", \"outputs\": [{\"type\": \"local\", \"dest\": \"a\"}, {\"type\": \"x\"}]}",
         "field 'outputs[1].type'"},
        {0, GIT ", \"tags\": \"a\"}", "field 'tags': must be a list of strings"},
        {0, GIT ", \"tags\": [\"ok:1\", \"bad..name\"]}",
         "field 'tags[1]': invalid image reference"},
        {0, GIT ", \"notify\": [\"https://example.com/hook\"]}",
         "field 'notify[0]': must start with sqs:// or sns://"},
        {0, GIT ", \"notify\": [\"sns://topic\"]}", "field 'notify[0]': notify target"},
        {0, GIT ", \"cache\": {\"mode\": \"all\"}}",
         "field 'cache.mode': must be \"max\" or \"min\""},
        {0, GIT ", \"cache\": {\"disabled\": 1}}", "field 'cache.disabled': must be true or false"},
        {0, GIT ", \"cache\": {\"from\": [\"UP/x\"]}}", "field 'cache.from[0]': invalid image"},
        {0, GIT ", \"cache\": {\"to\": \"a..b\"}}", "field 'cache.to': invalid image reference"},
        {0, GIT ", \"cache\": {\"ttl\": 1}}", "field 'cache.ttl': unknown field"},
        {0, GIT ", \"cache\": {\"namespace\": \"a/b\"}}", "field 'cache.namespace': may hold only"},
        {0, GIT ", \"cache\": {\"namespace\": 1}}", "field 'cache.namespace'"},
        {0, GIT ", \"cache\": {\"context_id\": \"a\\nb\"}}", "field 'cache.context_id'"},
        {REQ, GIT ", \"cache\": {\"namespace\": \"acme\"}}", "field 'cache': unknown field"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"timeout_seconds\": 0}}",
         "field 'source.timeout_seconds': must be a whole number from 1 to 7200"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"timeout_seconds\": \"5\"}}",
         "field 'source.timeout_seconds': must be a whole number"},
        {0, "{\"source\": {\"git\": \"https://h/r\", \"timeout_seconds\": 7201}}",
         "field 'source.timeout_seconds'"},
        {0, "{\"source\": {\"context\": \"ctx-1\", \"timeout_seconds\": 5}}",
         "field 'source': 'context' takes no other field"},
        /* the build options */
        {0, GIT ", \"labels\": [\"a=b\"]}", "field 'labels': must be an object of strings"},
        {0, GIT ", \"labels\": {\"a\": 1}}", "field 'labels.a': must be a string"},
        {0, GIT ", \"labels\": {\"\": \"v\"}}", "field 'labels.': must not be empty"},
        {0, GIT ", \"compression\": \"lz4\"}", "field 'compression': "},
        {0, GIT ", \"compression_level\": 20}",
         "field 'compression_level': must be a whole number from 0 to 19"},
        {0, GIT ", \"compression\": \"gzip\", \"compression_level\": 13}",
         "field 'compression_level': "},
        {0, GIT ", \"source_date_epoch\": -1}",
         "field 'source_date_epoch': must be a whole number"},
        {0, GIT ", \"network\": \"bridge\"}",
         "field 'network': must be default, none or host, not 'bridge'"},
        {0, GIT ", \"network\": \"host\"}",
         "field 'network': host needs the network.host entitlement"},
        {0, GIT ", \"isolation\": \"chroot\"}", "field 'isolation': is the operator's choice"},
        {LOC, LOCAL ", \"isolation\": \"vm\"}",
         "field 'isolation': must be auto, sandbox, chroot or none, not 'vm'"},
        {0, GIT ", \"ssh\": \"/run/a.sock\"}",
         "field 'ssh': an SSH agent is only for local builds"},
        {0, GIT ", \"build_contexts\": {\"lib\": \"/etc\"}}",
         "field 'build_contexts.lib': a directory is only for local builds"},
        {0, GIT ", \"build_contexts\": {\"img\": \"docker-image://oci:/etc/x\"}}",
         "field 'build_contexts.img': "},
        {LOC, LOCAL ", \"build_contexts\": {\"a=b\": \"/x\"}}",
         "field 'build_contexts.a=b': a context's name has no '='"},
        {0, GIT ", \"registry\": {\"mirrors\": [\"nohost\"]}}",
         "field 'registry.mirrors[0]': wants SRC=HOST[/PREFIX], not 'nohost'"},
        {0, GIT ", \"registry\": {\"insecure\": [\"http://h/x\"]}}",
         "field 'registry.insecure[0]': wants HOST[:PORT]"},
        {0, GIT ", \"registry\": {\"ca\": \"x\"}}", "field 'registry.ca': unknown field"},
        {0, GIT ", \"registry\": []}", "field 'registry': must be an object (mirrors, insecure)"},
        {REQ, GIT ", \"registry\": {\"insecure\": [\"h\"]}}", "field 'registry': unknown field"},
        {REQ, GIT ", \"build_contexts\": {\"a\": \"docker-image://alpine\"}}",
         "field 'build_contexts': unknown field"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kiln_error_t err = {0};
        json_t *secrets = NULL;
        json_t *got = through(cases[i].json, cases[i].flags, &secrets, &err);
        if (got != NULL)
            fail_msg("case %zu (%s): accepted", i, cases[i].json);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu (%s): got '%s', want '%s'", i, cases[i].json, err.msg,
                     cases[i].want);
        assert_null(secrets);
    }
}

/* Limits: sizes normalised, counts kept, 0 and unset left out. */
static void test_limits(void **state)
{
    kiln_error_t err = {0};
    kiln_job_spec_t s = {0};
    const char *text = GIT ", \"limits\": {\"memory\": \"2048M\", \"disk\": 1024, \"pids\": 7}}";

    assert_int_equal(kiln_job_parse(text, strlen(text), 0, &s, NULL, &err), 0);
    assert_int_equal(s.limits.memory, 2ULL << 30);
    assert_int_equal(s.limits.disk, 1024);
    assert_int_equal(s.limits.pids, 7);
    assert_int_equal(s.limits.cpu_time, 0);
    {
        json_t *j = kiln_job_to_json(&s);
        json_t *l = json_object_get(j, "limits");
        assert_string_equal(json_string_value(json_object_get(l, "memory")), "2g");
        assert_string_equal(json_string_value(json_object_get(l, "disk")), "1k");
        assert_int_equal(json_integer_value(json_object_get(l, "pids")), 7);
        assert_null(json_object_get(l, "cpu_time"));
        json_decref(j);
    }
    kiln_job_spec_clear(&s);
}

/* A spec built in code (as the CLI does) is held to the same checks; local specs may name
 * paths anywhere, remote ones may not. */
static void test_built_spec(void **state)
{
    kiln_job_spec_t s = {.local = 1, .source_kind = KILN_JOB_SOURCE_DIR};
    kiln_error_t err = {0};
    kiln_job_output_t *o;

    s.source = strdup(".");
    o = kiln_job_spec_add_output(&s, "local");
    kiln_job_output_add_opt(o, "dest", "/tmp/out dir", KILN_JOB_VALUE_STRING);
    kiln_job_spec_add_kv(&s.build_args, &s.n_build_args, "FROM_ENV", NULL);
    kiln_job_spec_add_secret(&s, "tok")->src = strdup("/run/secrets/tok");
    s.dockerfile = strdup("-");
    assert_int_equal(kiln_job_spec_validate(&s, &err), 0);
    assert_int_equal(kiln_job_output_type_is_file("local"), 1);
    assert_int_equal(kiln_job_output_pushes(o), 0);

    s.local = 0;
    assert_int_equal(kiln_job_spec_validate(&s, &err), -1);
    assert_non_null(strstr(err.msg, "field 'source.dir': is only for local builds"));
    s.local = 1;
    o = kiln_job_spec_add_output(&s, "image");
    kiln_job_output_add_opt(o, "push", "true", KILN_JOB_VALUE_STRING);
    assert_int_equal(kiln_job_output_pushes(o), 1);
    assert_int_equal(kiln_job_spec_validate(&s, &err), -1);
    assert_non_null(strstr(err.msg, "field 'outputs[1]': a push needs a name"));
    kiln_job_spec_add_str(&s.tags, &s.n_tags, "localhost:5000/app:1");
    assert_int_equal(kiln_job_spec_validate(&s, &err), 0);
    {
        /* the JSON of a local spec names secrets' files, never their values */
        json_t *j = kiln_job_to_json(&s);
        json_t *sec = json_array_get(json_object_get(j, "secrets"), 0);
        assert_string_equal(json_string_value(json_object_get(sec, "src")), "/run/secrets/tok");
        assert_int_equal(json_object_size(sec), 2);
        json_decref(j);
    }
    kiln_job_spec_clear(&s);
    assert_null(s.source);
}

static void test_repo_key(void **state)
{
    char *k = kiln_job_repo_key("https://GitHub.COM/Acme/App.git/");
    assert_string_equal(k, "https://github.com/Acme/App");
    free(k);
    k = kiln_job_repo_key("git@GitHub.com:acme/app.git");
    assert_string_equal(k, "git@github.com:acme/app");
    free(k);
}

/* A spec as the engine's request: every field where the engine reads it, outputs as the
 * exporters' texts (a value holding ',' quoted), secrets from their directory. */
static void test_build_request(void **state)
{
    const char *text =
        "{\"source\": {\"git\": \"https://h/r\", \"ref\": \"dev\", \"subdir\": \"app\"}, "
        "\"build_id\": \"b1\", \"dockerfile\": \"d/Dockerfile\", \"target\": \"t\", "
        "\"build_args\": {\"A\": \"1\"}, \"env\": {\"E\": \"2\"}, \"secrets\": [\"npm\"], "
        "\"allow\": [\"network.host\"], \"limits\": {\"memory\": \"1g\", \"pids\": 9, "
        "\"disk\": \"2g\"}, \"tags\": [\"h/r:1\"], \"outputs\": [{\"type\": \"local\", "
        "\"dest\": \"a,b\"}, {\"type\": \"image\", \"push\": true, \"name\": \"h/r:2\"}], "
        "\"notify\": [\"sqs://q/1\"], \"cache\": {\"disabled\": true, \"from\": [\"h/c:1\"], "
        "\"to\": \"h/c:1\", \"mode\": \"max\", \"max_size\": 3000, \"namespace\": \"acme\", "
        "\"context_id\": \"git "
        "h/r app\"}, \"labels\": {\"org.k\": \"v 1\"}, \"build_contexts\": {\"lib\": \"/w/lib\"}, "
        "\"compression\": \"zstd\", \"compression_level\": 5, \"source_date_epoch\": 0, "
        "\"network\": \"none\", \"isolation\": \"chroot\", \"ssh\": \"/run/agent.sock\", "
        "\"registry\": {\"mirrors\": [\"docker.io=127.0.0.1:5000\"], \"insecure\": "
        "[\"127.0.0.1:5000\"]}}";
    static const char *const args[] = {"A=1", "E=2", NULL};
    static const char *const secrets[] = {"id=npm,src=/s/npm", NULL};
    static const char *const outputs[] = {"type=local,dest=\"a,b\"",
                                          "type=image,push=true,name=h/r:2", NULL};
    static const char *const labels[] = {"org.k=v 1", NULL};
    static const char *const contexts[] = {"lib=/w/lib", NULL};
    kiln_job_spec_t s = {0};
    kiln_job_request_t r = {0};
    kiln_error_t err = {0};

    (void)state;
    assert_int_equal(kiln_job_parse(text, strlen(text), KILN_JOB_JSON_LOCAL, &s, NULL, &err), 0);
    if (kiln_job_request_make(&s, "/s", &r, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(r.req.target, "t");
    assert_int_equal(r.req.n_build_args, 2);
    assert_strv(r.req.build_args, args);
    assert_int_equal(r.req.n_secrets, 1);
    assert_strv(r.req.secrets, secrets);
    assert_int_equal(r.n_outputs, 2);
    assert_strv((const char *const *)r.outputs, outputs);
    assert_strv(r.req.labels, labels);
    assert_strv(r.req.contexts, contexts);
    assert_int_equal(r.req.entitlements, 1u); /* network.host */
    assert_int_equal(r.req.memory_limit, 1ULL << 30);
    assert_int_equal(r.req.pids_limit, 9);
    assert_int_equal(r.req.disk_limit, 2ULL << 30);
    assert_true(r.req.no_cache);
    assert_int_equal(r.req.n_cache_from, 1);
    assert_string_equal(r.req.cache_from[0], "h/c:1");
    assert_string_equal(r.req.cache_to, "h/c:1");
    assert_true(r.req.cache_to_max);
    assert_int_equal(r.req.cache_to_max_size, 3000);
    assert_string_equal(r.req.cache_namespace, "acme");
    assert_string_equal(r.req.context_id, "git h/r app");
    assert_int_equal(r.req.compression, KILN_COMPRESSION_ZSTD);
    assert_int_equal(r.req.compression_level, 5);
    assert_int_equal(r.req.source_date_epoch, 0);
    assert_string_equal(r.req.network, "none");
    assert_string_equal(r.req.isolation, "chroot");
    assert_string_equal(r.req.ssh_socket, "/run/agent.sock");
    assert_string_equal(r.req.mirrors[0], "docker.io=127.0.0.1:5000");
    assert_null(r.req.mirrors[1]);
    assert_string_equal(r.req.insecure_registries[0], "127.0.0.1:5000");
    assert_null(r.req.insecure_registries[1]);
    kiln_job_request_clear(&r);

    /* what the build cannot be given is refused naming the field */
    assert_int_equal(kiln_job_request_make(&s, NULL, &r, &err), -1);
    assert_non_null(strstr(err.msg, "field 'secrets.npm': has no source"));
    kiln_job_spec_clear(&s);
    text = "{\"source\": {\"context\": \"ctx-12\"}}";
    assert_int_equal(kiln_job_parse(text, strlen(text), 0, &s, NULL, &err), 0);
    assert_int_equal(kiln_job_request_make(&s, NULL, &r, &err), -1);
    assert_non_null(strstr(err.msg, "field 'source.context'"));
    kiln_job_spec_clear(&s);
    /* no timestamp, compression or level given: the engine's defaults */
    text = "{\"source\": {\"dir\": \"/w\"}}";
    assert_int_equal(kiln_job_parse(text, strlen(text), KILN_JOB_JSON_LOCAL, &s, NULL, &err), 0);
    assert_int_equal(kiln_job_request_make(&s, NULL, &r, &err), 0);
    assert_int_equal(r.req.source_date_epoch, -1);
    assert_int_equal(r.req.compression, KILN_COMPRESSION_GZIP);
    assert_int_equal(r.req.compression_level, -1);
    kiln_job_request_clear(&r);
    kiln_job_spec_clear(&s);
}

/* Events: the ids on each, progress lines as step events, URLs redacted. */
static void test_events(void **state)
{
    kiln_job_spec_t s = {.build_id = "b1",
                         .tenant = "acme",
                         .trigger = "api",
                         .source_kind = KILN_JOB_SOURCE_GIT,
                         .source = "https://t@h/r?q#f",
                         .ref = "main",
                         .source_commit = "abcdef1"};
    /* progress lines: the step event each becomes (key's JSON value), or none (want NULL) */
    static const struct {
        const char *line, *event, *key, *want;
    } progress[] = {
        {"{\"step\":3,\"event\":\"cached\"}", "step_end", "cache_hit", "true"},
        {"{\"step\":3,\"event\":\"cached\"}", "step_end", "step", "3"},
        {"{\"step\":3,\"event\":\"done\",\"seconds\":1.5}", "step_end", "cache_hit", "false"},
        {"{\"step\":2,\"event\":\"error\",\"text\":\"x\"}", "step_end", "error", "\"x\""},
        {"{\"step\":1,\"event\":\"start\",\"text\":\"RUN a\"}", "step_start", "name", "\"RUN a\""},
        {"#1 RUN a", NULL, NULL, NULL},
        {"{\"event\":\"start\"}", NULL, NULL, NULL},
        {"{\"step\":1,\"event\":\"other\"}", NULL, NULL, NULL},
    };
    json_t *ev = kiln_job_event_new(&s, "phase");
    json_t *want = json_loads("{\"v\": 1, \"build_id\": \"b1\", \"tenant\": \"acme\", "
                              "\"repo\": \"https://h/r\", \"commit\": \"abcdef1\", "
                              "\"branch\": \"main\", \"trigger\": \"api\", \"event\": \"phase\"}",
                              0, NULL);
    char *r;

    assert_json_equal(ev, want);
    json_decref(ev);
    json_decref(want);

    for (size_t i = 0; i < sizeof(progress) / sizeof(progress[0]); i++) {
        _cleanup_free_ char *got = NULL;
        ev = kiln_job_event_from_progress(&s, progress[i].line);
        if (progress[i].want == NULL) {
            if (ev != NULL)
                fail_msg("%s: an event, want none", progress[i].line);
            continue;
        }
        if (ev == NULL)
            fail_msg("%s: no event", progress[i].line);
        got = json_dumps(json_object_get(ev, progress[i].key), JSON_ENCODE_ANY);
        if (strcmp(json_string_value(json_object_get(ev, "event")), progress[i].event) != 0 ||
            strcmp(got, progress[i].want) != 0)
            fail_msg("%s: %s %s=%s, want %s %s", progress[i].line,
                     json_string_value(json_object_get(ev, "event")), progress[i].key, got,
                     progress[i].event, progress[i].want);
        json_decref(ev);
    }
    ev = kiln_job_event_new(NULL, "error");
    assert_int_equal(json_object_size(ev), 2);
    json_decref(ev);

    r = kiln_job_redact_url("ssh://git:pw@h:22/r.git");
    assert_string_equal(r, "ssh://h:22/r.git");
    free(r);
    r = kiln_job_redact_url("git@h:r.git");
    assert_string_equal(r, "git@h:r.git");
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_request_form),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_built_spec),    cmocka_unit_test(test_repo_key),
        cmocka_unit_test(test_build_request), cmocka_unit_test(test_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
