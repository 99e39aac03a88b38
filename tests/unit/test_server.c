/* Unit tests for the build server's pure parts: HMAC signature verification, build request
 * validation and its translation to `kiln build` arguments, and list cursors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/entitlement.h"
#include "src/server/cli.h"
#include "src/server/config.h"
#include "src/server/cursor.h"
#include "src/server/db.h"
#include "src/server/jobkey.h"
#include "src/server/limits.h"
#include "src/server/request.h"
#include "src/server/runner.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/hmac.h"
#include "utils/mem.h"
#include "utils/size.h"

static void test_hmac_github_example(void **state)
{
    /* The example from GitHub's "Validating webhook deliveries". */
    const char *body = "Hello, World!";
    assert_true(kiln_hmac_verify_sha256_hex(
        "It's a Secret to Everybody", body, strlen(body),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert_true(kiln_hmac_verify_sha256_hex(
        "It's a Secret to Everybody", body, strlen(body),
        "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"));
    assert_false(kiln_hmac_verify_sha256_hex(
        "It's a Secret to Everybody", body, strlen(body) - 1,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert_false(kiln_hmac_verify_sha256_hex(
        "another secret", body, strlen(body),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
}

/* The streamed HMAC fed in pieces matches GitHub's example like the one-shot one; another
 * secret, a short body or a malformed header does not. */
static void test_hmac_stream(void **state)
{
    static const char sig[] =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    kiln_hmac_stream_t *h = kiln_hmac_stream_new("It's a Secret to Everybody");
    (void)state;

    assert_non_null(h);
    kiln_hmac_stream_update(h, "Hello, ", 7);
    kiln_hmac_stream_update(h, "", 0);
    kiln_hmac_stream_update(h, "World!", 6);
    assert_true(kiln_hmac_stream_verify_hex(h, sig));
    kiln_hmac_stream_free(h);

    h = kiln_hmac_stream_new("another secret");
    kiln_hmac_stream_update(h, "Hello, World!", 13);
    assert_false(kiln_hmac_stream_verify_hex(h, sig));
    kiln_hmac_stream_free(h);

    h = kiln_hmac_stream_new("It's a Secret to Everybody");
    kiln_hmac_stream_update(h, "Hello, World", 12);
    assert_false(kiln_hmac_stream_verify_hex(h, sig));
    kiln_hmac_stream_free(h);

    h = kiln_hmac_stream_new("It's a Secret to Everybody");
    kiln_hmac_stream_update(h, "Hello, World!", 13);
    assert_false(kiln_hmac_stream_verify_hex(h, "sha256=00"));
    kiln_hmac_stream_free(h);
    kiln_hmac_stream_free(NULL);
}

static void test_hmac_malformed_headers(void **state)
{
    const char *b = "x";
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, NULL));
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, ""));
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, "sha1=abcdef"));
    assert_false(kiln_hmac_verify_sha256_hex("k", b, 1, "sha256="));
    assert_false(kiln_hmac_verify_sha256_hex(
        "k", b, 1, "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    assert_false(kiln_hmac_verify_sha256_hex(
        "k", b, 1, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1"));
    assert_false(kiln_hmac_verify_sha256_hex(NULL, b, 1, "sha256=00"));
}

static void test_hmac_rfc4231(void **state)
{
    /* RFC 4231 test case 2. */
    static const uint8_t want[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                     0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                     0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                     0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    uint8_t out[32];
    const char *data = "what do ya want for nothing?";
    assert_int_equal(kiln_hmac_sha256("Jefe", 4, data, strlen(data), out), 0);
    assert_memory_equal(out, want, 32);
    assert_true(kiln_hmac_equal("abc", 3, "abc", 3));
    assert_false(kiln_hmac_equal("abc", 3, "abd", 3));
    assert_false(kiln_hmac_equal("abc", 3, "abcd", 4));
}

/* Parses body; returns 0 or -1 and the message in msg. */
static int parse(const char *body, char *msg, size_t len, kiln_request_t *out)
{
    kiln_error_t err = {0};
    kiln_request_t r = {0};
    int ret = kiln_request_parse(body, strlen(body), &r, &err);
    snprintf(msg, len, "%s", err.msg);
    if (out && ret == 0)
        *out = r;
    else if (ret == 0)
        kiln_request_free(&r);
    return ret;
}

static void test_request_errors_name_the_field(void **state)
{
    static const struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"[]", "JSON object"},
        {"{", "malformed JSON"},
        {"{}", "'source'"},
        {"{\"source\": 1}", "'source'"},
        {"{\"source\": {}}", "'source'"},
        {"{\"source\": {\"git\": 1}}", "'source.git'"},
        {"{\"source\": {\"git\": \"\"}}", "'source.git'"},
        {"{\"source\": {\"git\": \"ftp://x\"}}", "'source.git'"},
        {"{\"source\": {\"git\": \"-oProxyCommand=x\"}}", "'source.git'"},
        {"{\"source\": {\"git\": \"https://x/a#b\"}}", "'source.git'"},
        {"{\"source\": {\"git\": \"https://x/a\", \"ref\": \"a:b\"}}", "'source.ref'"},
        {"{\"source\": {\"git\": \"https://x/a\", \"commit\": \"xyz\"}}", "'source.commit'"},
        {"{\"source\": {\"git\": \"https://x/a\", \"subdir\": \"a/../../b\"}}", "'source.subdir'"},
        {"{\"source\": {\"git\": \"https://x/a\", \"subdir\": \"/abs\"}}", "'source.subdir'"},
        {"{\"source\": {\"git\": \"https://x/a\", \"branch\": \"x\"}}", "'source.branch'"},
        {"{\"source\": {\"git\": \"https://x/a\", \"context\": \"ctx-00\"}}", "'source'"},
        {"{\"source\": {\"context\": \"../x\"}}", "'source.context'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"build_args\": []}", "'build_args'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"build_args\": {\"1A\": \"x\"}}",
         "'build_args.1A'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"build_args\": {\"A\": 1}}", "'build_args.A'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"secrets\": {\"a b\": \"x\"}}",
         "'secrets.a b'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"outputs\": {}}", "'outputs'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"outputs\": [{}]}", "'outputs[0].type'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"outputs\": [{\"type\": \"s3\", \"dest\": "
         "\"a=b\"}]}",
         "'outputs[0].dest'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"notify\": [\"http://x\"]}", "'notify[0]'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"tags\": [\"a\\nb\"]}", "'tags[0]'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"timeout_seconds\": -1}", "'timeout_seconds'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"dockerfile\": \"../Dockerfile\"}",
         "'dockerfile'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"extra\": 1}", "'extra'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"allow\": \"network.host\"}", "'allow'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"allow\": [\"network.none\"]}", "'allow[0]'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"allow\": "
         "[\"network.host,security.insecure\"]}",
         "'allow[0]'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"allow\": [\"network.host\", 1]}",
         "'allow[1]'"},
        {"{\"source\": {\"git\": \"https://x/a\"}, \"source\": {\"git\": \"https://y\"}}",
         "duplicate"},
    };
    char msg[KILN_ERROR_MSG_MAX];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int ret = parse(cases[i].body, msg, sizeof(msg), NULL);
        if (ret == 0 || strstr(msg, cases[i].field) == NULL)
            fail_msg("case %zu (%s): got %d '%s', want an error naming %s", i, cases[i].body, ret,
                     msg, cases[i].field);
    }
}

static void test_request_secrets_stripped_and_argv(void **state)
{
    const char *body =
        "{\"source\": {\"git\": \"https://Git.Example.com/org/app.git/\", \"ref\": \"main\", "
        "\"subdir\": \"web\"}, \"dockerfile\": \"docker/Dockerfile\", \"target\": \"prod\", "
        "\"build_args\": {\"A\": \"1 2\"}, \"secrets\": {\"npm\": \"SECRET\"}, "
        "\"outputs\": [{\"type\": \"registry\", \"name\": \"r/x:1\", \"push\": true}], "
        "\"tags\": [\"r/x:2\"], \"notify\": [\"sqs://q\"]}";
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    _cleanup_free_ char *stored = NULL;
    _cleanup_strv_ char **argv = NULL;
    json_t *files = json_pack("{s:s}", "npm", "/s/npm");
    kiln_error_t err = {0};
    static const char *const want[] = {"build",
                                       "--progress=plain",
                                       "--metadata-file",
                                       "/m.json",
                                       "-f",
                                       "docker/Dockerfile",
                                       "--target",
                                       "prod",
                                       "--build-arg",
                                       "A=1 2",
                                       "--secret",
                                       "id=npm,src=/s/npm",
                                       "-t",
                                       "r/x:2",
                                       "--output",
                                       "type=registry,name=r/x:1,push=true",
                                       "--notify",
                                       "sqs://q",
                                       "https://Git.Example.com/org/app.git/#main:web",
                                       NULL};
    size_t i;

    assert_int_equal(parse(body, msg, sizeof(msg), &r), 0);
    assert_string_equal(r.repo, "https://git.example.com/org/app");
    stored = json_dumps(r.stored, JSON_COMPACT);
    assert_null(strstr(stored, "SECRET"));
    assert_non_null(strstr(stored, "\"secrets\":[\"npm\"]"));
    assert_string_equal(json_string_value(json_object_get(r.secrets, "npm")), "SECRET");
    assert_int_equal(kiln_request_argv(r.stored, NULL, files, "/m.json", &argv, &err), 0);
    for (i = 0; want[i]; i++) {
        assert_non_null(argv[i]);
        assert_string_equal(argv[i], want[i]);
    }
    assert_null(argv[i]);
    json_decref(files);
    kiln_request_free(&r);
}

/* The job spec a server build runs: the request placed in the build's directory (context,
 * secret files, file outputs under kiln-out), the ids the API gave it, the tenant as its cache
 * namespace; never a secret value or the git credential. */
static void test_request_job_spec(void **state)
{
    const char *body = "{\"source\": {\"git\": \"https://tok@git.example.com/org/app.git\", "
                       "\"ref\": \"main\"}, \"tenant\": \"acme\", \"secrets\": {\"npm\": "
                       "\"SECRET\"}, \"outputs\": [{\"type\": \"local\", \"dest\": \"site\"}]}";
    json_t *files = json_pack("{s:s,s:s}", "npm", "/s/npm", ".git", "/s/.git");
    kiln_request_ids_t ids = {.build_id = "b-0123456789abcdef",
                              .repo = "https://git.example.com/org/app.git",
                              .commit = "0123456789abcdef0123456789abcdef01234567",
                              .branch = "main",
                              .trigger = "api",
                              .context_id = "git https://git.example.com/org/app.git "};
    kiln_request_t r = {0};
    kiln_error_t err = {0};
    char msg[512], *spec = NULL;
    json_t *j, *want;

    (void)state;
    assert_int_equal(parse(body, msg, sizeof(msg), &r), 0);
    assert_int_equal(kiln_request_job_spec(r.stored, "/w/src", files, &ids, &spec, &err), 0);
    assert_null(strstr(spec, "SECRET"));
    assert_null(strstr(spec, "tok"));
    assert_null(strstr(spec, "/s/.git"));
    j = json_loads(spec, 0, NULL);
    want = json_loads(
        "{\"source\": {\"dir\": \"/w/src\"}, \"tenant\": \"acme\", \"secrets\": [{\"id\": "
        "\"npm\", \"src\": \"/s/npm\"}], \"outputs\": [{\"type\": \"local\", \"dest\": "
        "\"kiln-out/site\"}], \"build_id\": \"b-0123456789abcdef\", \"repo\": "
        "\"https://git.example.com/org/app.git\", \"commit\": "
        "\"0123456789abcdef0123456789abcdef01234567\", \"branch\": \"main\", \"trigger\": "
        "\"api\", \"cache\": {\"namespace\": \"acme\", \"context_id\": "
        "\"git https://git.example.com/org/app.git \"}}",
        0, NULL);
    assert_non_null(j);
    assert_non_null(want);
    if (!json_equal(j, want))
        fail_msg("spec: %s", spec);
    json_decref(j);
    json_decref(want);
    free(spec);
    spec = NULL;

    /* an id the spec would refuse fails the whole spec, naming it */
    ids.branch = "-bad ref";
    assert_int_equal(kiln_request_job_spec(r.stored, "/w/src", files, &ids, &spec, &err), -1);
    assert_non_null(strstr(err.msg, "field 'branch'"));
    assert_null(spec);
    json_decref(files);
    kiln_request_free(&r);
}

/* The log lines of a job's events: log text as it is, step events as `kiln build` prints
 * them; other events none. */
static void test_runner_event_text(void **state)
{
    static const struct {
        const char *ev, *want;
    } cases[] = {
        {"{\"event\": \"log\", \"text\": \"hello\"}", "hello"},
        {"{\"event\": \"log\", \"step\": 2, \"text\": \"out\"}", "#2 out"},
        {"{\"event\": \"step_start\", \"step\": 3, \"name\": \"[1/2] RUN make\"}",
         "#3 [1/2] RUN make"},
        {"{\"event\": \"step_end\", \"step\": 3, \"cache_hit\": true}", "#3 CACHED"},
        {"{\"event\": \"step_end\", \"step\": 3, \"cache_hit\": false, \"seconds\": 1.5}",
         "#3 DONE 1.5s"},
        {"{\"event\": \"step_end\", \"step\": 3, \"error\": \"exit 2\"}", "#3 ERROR: exit 2"},
        {"{\"event\": \"phase\", \"phase\": \"build\"}", NULL},
        {"{\"event\": \"log\"}", NULL},
        {"{\"event\": \"step_start\", \"step\": \"x\"}", NULL},
        {"{\"text\": \"no type\"}", NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *ev = json_loads(cases[i].ev, 0, NULL);
        _cleanup_free_ char *text = kiln_runner_event_text(ev);
        if (cases[i].want == NULL ? text != NULL : text == NULL || strcmp(text, cases[i].want) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, text ? text : "(none)",
                     cases[i].want ? cases[i].want : "(none)");
        json_decref(ev);
    }
}

/* A git URL's userinfo (or source.token) leaves the stored request and the argv, and becomes
 * the ".git" secret; an ssh user name alone stays. */
static void test_request_git_credential(void **state)
{
    static const struct {
        const char *source, *stored_url, *cred, *repo;
    } cases[] = {
        {"{\"git\": \"https://u:p%40ss@Host:8443/o/r.git\"}", "https://Host:8443/o/r.git", "u:p@ss",
         "https://host:8443/o/r"},
        {"{\"git\": \"https://TOK@h/r\"}", "https://h/r", "TOK", "https://h/r"},
        {"{\"git\": \"https://h/r\", \"token\": \"T2\"}", "https://h/r", "T2", "https://h/r"},
        {"{\"git\": \"ssh://git@h/r\"}", "ssh://git@h/r", NULL, "ssh://git@h/r"},
        {"{\"git\": \"ssh://git:pw@h/r\"}", "ssh://h/r", "git:pw", "ssh://h/r"},
    };
    char msg[KILN_ERROR_MSG_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_free_ char *body = kiln_xasprintf("{\"source\": %s}", cases[i].source);
        _cleanup_free_ char *stored = NULL;
        _cleanup_strv_ char **argv = NULL;
        json_t *files = json_pack("{s:s}", ".git", "/s/.git");
        kiln_request_t r = {0};
        kiln_error_t err = {0};
        assert_int_equal(parse(body, msg, sizeof(msg), &r), 0);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(r.stored, "source"), "git")),
            cases[i].stored_url);
        assert_string_equal(r.repo, cases[i].repo);
        stored = json_dumps(r.stored, JSON_COMPACT);
        if (cases[i].cred) {
            assert_null(strstr(stored, cases[i].cred));
            assert_string_equal(json_string_value(json_object_get(r.secrets, ".git")),
                                cases[i].cred);
            assert_non_null(strstr(stored, "\"secrets\":[\".git\"]"));
        } else {
            assert_null(r.secrets);
        }
        /* never a build step's secret */
        assert_int_equal(kiln_request_argv(r.stored, "/ctx", files, "/m.json", &argv, &err), 0);
        for (size_t j = 0; argv[j]; j++)
            assert_null(strstr(argv[j], ".git,"));
        json_decref(files);
        kiln_request_free(&r);
    }
}

static void test_request_context_and_commit(void **state)
{
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    _cleanup_strv_ char **argv = NULL, **argv2 = NULL;
    kiln_error_t err = {0};
    size_t n = 0;

    assert_int_equal(parse("{\"source\": {\"context\": \"ctx-0a1b\"}}", msg, sizeof(msg), &r), 0);
    assert_string_equal(r.repo, "upload");
    assert_int_equal(kiln_request_argv(r.stored, "/ctx/dir", NULL, "/m", &argv, &err), 0);
    while (argv[n])
        n++;
    assert_string_equal(argv[n - 1], "/ctx/dir");
    assert_int_equal(kiln_request_argv(r.stored, NULL, NULL, "/m", &argv2, &err), -1);
    kiln_request_free(&r);

    assert_int_equal(parse("{\"source\": {\"git\": \"git@h:o/r.git\", \"ref\": \"dev\", "
                           "\"commit\": \"0123abcd\"}, \"secrets\": {\"x\": \"y\"}}",
                           msg, sizeof(msg), &r),
                     0);
    /* A secret without its file is an error, never an argument without it. */
    assert_int_equal(kiln_request_argv(r.stored, NULL, NULL, "/m", &argv2, &err), -1);
    assert_non_null(strstr(err.msg, "secret 'x'"));
    kiln_request_free(&r);
}

/* File outputs are written under kiln-out/ of the build's scratch directory (the artifacts
 * directory); an absolute or escaping dest is refused naming the output, also when a stored
 * request (an older version's) reaches the argv. */
static void test_request_local_outputs(void **state)
{
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    _cleanup_strv_ char **argv = NULL, **argv2 = NULL;
    kiln_error_t err = {0};
    json_t *old;
    size_t n = 0;

    (void)state;
    assert_int_equal(parse("{\"source\": {\"context\": \"ctx-0a1b\"}, \"outputs\": "
                           "[{\"type\": \"local\", \"dest\": \"site\"}, {\"type\": \"oci\", "
                           "\"dest\": \"img/layout\", \"tar\": true}]}",
                           msg, sizeof(msg), &r),
                     0);
    assert_int_equal(kiln_request_argv(r.stored, "/ctx", NULL, "/m", &argv, &err), 0);
    while (argv[n] && strcmp(argv[n], "--output") != 0)
        n++;
    assert_non_null(argv[n]);
    assert_string_equal(argv[n + 1], "type=local,dest=kiln-out/site");
    assert_string_equal(argv[n + 3], "type=oci,dest=kiln-out/img/layout,tar=true");
    kiln_request_free(&r);

    assert_int_equal(parse("{\"source\": {\"context\": \"ctx-0a1b\"}, \"outputs\": "
                           "[{\"type\": \"local\", \"dest\": \"/etc/cron.d\"}]}",
                           msg, sizeof(msg), NULL),
                     -1);
    assert_non_null(strstr(msg, "field 'outputs[0].dest': '/etc/cron.d' is absolute"));
    old = json_loads("{\"source\": {\"context\": \"ctx-0a1b\"}, \"outputs\": "
                     "[{\"type\": \"docker\", \"dest\": \"../../x.tar\"}]}",
                     0, NULL);
    assert_int_equal(kiln_request_argv(old, "/ctx", NULL, "/m", &argv2, &err), -1);
    assert_non_null(strstr(err.msg, "outputs[0].dest"));
    assert_null(argv2);
    json_decref(old);
}

static void test_cursor_roundtrip(void **state)
{
    char buf[32];
    int64_t pos = 0;
    kiln_error_t err = {0};
    static const char *const bad[] = {"",    "c", "x12", "c-1", "cZZ", "c0", "c1234567890abcdef0",
                                      "c12 "};

    for (int64_t v = 1; v < (int64_t)1 << 40; v = v * 7 + 3) {
        kiln_cursor_encode(v, buf, sizeof(buf));
        assert_int_equal(kiln_cursor_decode(buf, &pos, &err), 0);
        assert_int_equal(pos, v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pos = 42;
        assert_int_equal(kiln_cursor_decode(bad[i], &pos, &err), -1);
        assert_int_equal(pos, 42);
    }
    assert_int_equal(kiln_cursor_decode(NULL, &pos, &err), -1);
}

/* Writes text to a fresh temporary file; returns its path (malloc'ed). */
static char *temp_file(const char *text)
{
    char tmpl[] = "/tmp/kiln-test-key.XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return strdup(tmpl);
}

static void test_jobkey_seal_open(void **state)
{
    static const char *const good[] = {
        "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n",
        "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=\n"};
    /* the third is one 64-digit key with a non-hex first digit, split to fit the line */
    static const char *const bad[] = {"", "0011",
                                      ("zz112233445566778899aabbccddeeff"
                                       "00112233445566778899aabbccddeeff"),
                                      "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7g==\n"};
    kiln_jobkey_t *k = NULL, *k2 = NULL;
    kiln_error_t err = {0};
    json_t *sealed = NULL;
    char *plain = NULL, *path, *text;
    size_t len = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        path = temp_file(bad[i]);
        assert_int_equal(kiln_jobkey_load(path, &k, &err), -1);
        assert_non_null(strstr(err.msg, "job key file"));
        assert_null(k);
        unlink(path);
        free(path);
    }
    path = temp_file(good[0]);
    assert_int_equal(kiln_jobkey_load(path, &k, &err), 0);
    unlink(path);
    free(path);
    path = temp_file(good[1]);
    assert_int_equal(kiln_jobkey_load(path, &k2, &err), 0);
    unlink(path);
    free(path);

    assert_int_equal(kiln_jobkey_seal(k, "b-1", "{\"a\":\"s3cret\"}", 14, &sealed, &err), 0);
    text = json_dumps(sealed, JSON_COMPACT);
    assert_null(strstr(text, "s3cret"));
    free(text);
    assert_int_equal(kiln_jobkey_open(k, "b-1", sealed, &plain, &len, &err), 0);
    assert_int_equal(len, 14);
    assert_string_equal(plain, "{\"a\":\"s3cret\"}");
    free(plain);
    /* another job's id, another key (the same bytes in base64 open it), a changed byte */
    assert_int_equal(kiln_jobkey_open(k, "b-2", sealed, &plain, &len, &err), -1);
    assert_int_equal(kiln_jobkey_open(k2, "b-1", sealed, &plain, &len, &err), 0);
    free(plain);
    {
        char *ct = strdup(json_string_value(json_object_get(sealed, "ct")));
        ct[0] = ct[0] == 'A' ? 'B' : 'A';
        json_object_set_new(sealed, "ct", json_string(ct));
        free(ct);
    }
    assert_int_equal(kiln_jobkey_open(k, "b-1", sealed, &plain, &len, &err), -1);
    json_object_set_new(sealed, "ct", json_string("not base64!"));
    assert_int_equal(kiln_jobkey_open(k, "b-1", sealed, &plain, &len, &err), -1);
    json_decref(sealed);
    kiln_jobkey_free(k);
    kiln_jobkey_free(k2);
}

static void test_limits(void **state)
{
    kiln_limits_policy_t p = {0};
    kiln_error_t err = {0};
    json_t *norm = NULL, *stored;
    uint64_t v = 0;
    char buf[32];

    assert_int_equal(kiln_size_parse("512m", &v, &err), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(kiln_size_parse("2GiB", &v, &err), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(kiln_size_parse("100", &v, &err), 0);
    assert_int_equal(v, 100);
    assert_int_equal(kiln_size_parse("1x", &v, &err), -1);
    assert_int_equal(kiln_size_parse("-1m", &v, &err), -1);
    assert_int_equal(kiln_size_parse("99999999999999999999t", &v, &err), -1);
    kiln_size_format(512ull << 20, buf, sizeof(buf));
    assert_string_equal(buf, "512m");
    kiln_size_format(1000, buf, sizeof(buf));
    assert_string_equal(buf, "1000");

    assert_int_equal(kiln_limits_opt(&p, KILN_LIMITS_OPT_BASE, "1g", &err), 1);
    assert_int_equal(kiln_limits_opt(&p, KILN_LIMITS_OPT_BASE + 1, "0", &err), -1);
    assert_non_null(strstr(err.msg, "--build-pids"));
    assert_int_equal(kiln_limits_opt(&p, 'x', "1", &err), 0);
    assert_int_equal(kiln_limits_policy_finish(&p, &err), 0);
    assert_int_equal(p.max.memory, 1ull << 30);

    stored = json_object();
    assert_int_equal(kiln_limits_apply(stored, &p, &err), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(stored, "limits"), "memory")), "1g");
    json_t *req = json_pack("{s:s,s:i}", "memory", "2g", "pids", 10);
    assert_int_equal(kiln_limits_parse(req, &norm, &err), 0);
    json_object_set_new(stored, "limits", norm);
    assert_int_equal(kiln_limits_apply(stored, &p, &err), -1);
    assert_non_null(strstr(err.msg, "'limits.memory'"));
    json_decref(req);
    json_decref(stored);
}

/* Writes text to a temp file and loads it as the server config. */
static int load_config(const char *text, kiln_config_t **c, kiln_error_t *err)
{
    char path[] = "/tmp/kiln-config-XXXXXX";
    int fd = mkstemp(path), r;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    r = kiln_config_load(path, c, err);
    unlink(path);
    return r;
}

/* The request and connection bounds: defaults when absent, the given values, and a bad one
 * refused at load naming its key and range. */
static void test_config_bounds(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    (void)state;

    assert_int_equal(load_config("{}", &c, &err), 0);
    assert_int_equal(c->bounds.max_webhook_bytes, 5LL << 20);
    assert_int_equal(c->bounds.connection_timeout, 30);
    assert_int_equal(c->bounds.max_connections, 4096);
    assert_int_equal(c->bounds.max_connections_per_address, 128);
    assert_int_equal(c->bounds.max_context_unpacked_bytes, 2LL << 30);
    assert_int_equal(c->bounds.max_context_entries, 100000);
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(
        load_config("{\"max_webhook_bytes\": 65536, \"max_context_entries\": 7}", &c, &err), 0);
    assert_int_equal(c->bounds.max_webhook_bytes, 65536);
    assert_int_equal(c->bounds.max_context_entries, 7);
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(load_config("{\"max_connections\": \"many\"}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "max_connections: must be an integer from 16 to 65536"));
    assert_int_equal(load_config("{\"connection_timeout\": 0}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "connection_timeout"));
    assert_null(c);
}

static void test_config_policy(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char **opts = NULL;
    unsigned n = 0;
    json_t *list;
    (void)state;

    assert_int_equal(load_config("{\"policy\": {\"allow_addresses\": [\"10.8.0.0/16:3128\", "
                                 "\"[fd00::1]:443\"]}}",
                                 &c, &err),
                     0);
    list = kiln_config_allow_addresses(c);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_array_get(list, 0)), "10.8.0.0/16:3128");
    kiln_config_free(c);
    c = NULL;

    /* a bad entry fails at startup naming it and its place */
    assert_int_equal(
        load_config("{\"policy\": {\"allow_addresses\": [\"10.0.0.0/8\", \"10.0.0.0/33\"]}}", &c,
                    &err),
        -1);
    assert_null(c);
    assert_non_null(strstr(err.msg, "policy.allow_addresses[1]"));
    assert_non_null(strstr(err.msg, "10.0.0.0/33"));
    assert_int_equal(load_config("{\"policy\": {\"allow_addresses\": \"10.0.0.0/8\"}}", &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "must be an array"));
    assert_int_equal(load_config("{\"policy\": [1]}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy: must be an object"));

    /* no policy: an empty allowlist */
    assert_int_equal(load_config("{}", &c, &err), 0);
    assert_null(kiln_config_allow_addresses(c));
    kiln_config_free(c);

    /* the option a build child gets */
    assert_int_equal(kiln_server_allow_address(&opts, &n, "127.0.0.1:8080", &err), 0);
    assert_int_equal(kiln_server_allow_address(&opts, &n, "localhost", &err), -1);
    assert_non_null(strstr(err.msg, "localhost"));
    assert_int_equal(n, 1);
    assert_string_equal(opts[0], "--allow-address=127.0.0.1:8080");
    assert_null(opts[1]);
    kiln_strv_free(opts);
}

/* "allow": validated names, refused beyond what the server grants (naming the
 * entry and the setting), passed to the build as --allow. */
static void test_request_allow(void **state)
{
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    _cleanup_strv_ char **argv = NULL;
    kiln_error_t err = {0};
    int found = 0;
    (void)state;

    assert_int_equal(parse("{\"source\": {\"git\": \"https://x/a\"}, \"allow\": "
                           "[\"security.insecure\", \"network.host\"]}",
                           msg, sizeof(msg), &r),
                     0);
    assert_int_equal(kiln_request_check_allow(r.stored, 0, &err), -1);
    assert_non_null(strstr(err.msg, "'allow[0]'"));
    assert_non_null(strstr(err.msg, "security.insecure is not granted"));
    assert_non_null(strstr(err.msg, "\"entitlements\""));
    assert_int_equal(kiln_request_check_allow(r.stored, KILN_ENTITLEMENT_SECURITY_INSECURE, &err),
                     -1);
    assert_non_null(strstr(err.msg, "'allow[1]'"));
    assert_int_equal(
        kiln_request_check_allow(
            r.stored, KILN_ENTITLEMENT_SECURITY_INSECURE | KILN_ENTITLEMENT_NETWORK_HOST, &err),
        0);
    assert_int_equal(kiln_request_argv(r.stored, "/ctx", NULL, "/m.json", &argv, &err), 0);
    for (size_t i = 0; argv[i] && argv[i + 1]; i++)
        if (strcmp(argv[i], "--allow") == 0)
            found += strcmp(argv[i + 1], "network.host") == 0 ||
                     strcmp(argv[i + 1], "security.insecure") == 0;
    assert_int_equal(found, 2);
    kiln_request_free(&r);

    /* a request without "allow" needs nothing */
    assert_int_equal(parse("{\"source\": {\"git\": \"https://x/a\"}}", msg, sizeof(msg), &r), 0);
    assert_int_equal(kiln_request_check_allow(r.stored, 0, &err), 0);
    kiln_request_free(&r);
}

/* "policy": entitlements and isolation; chroot only through the policy. */
/* policy.allow_http_git / policy.oci_dirs: checked at load, turned into build
 * options (a default image directory when oci_dirs is absent); which options
 * also go to `kiln checkout`. */
static void test_config_source_policy(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char **opts = NULL;
    unsigned n = 0;
    (void)state;

    assert_int_equal(load_config("{\"policy\": {\"allow_http_git\": true, "
                                 "\"oci_dirs\": [\"/srv/images\", \"/opt/layouts\"]}}",
                                 &c, &err),
                     0);
    kiln_server_policy_options(c->policy, &opts, &n);
    assert_int_equal(n, 3);
    assert_string_equal(opts[0], "--allow-http-git");
    assert_string_equal(opts[1], "--oci-dir=/srv/images");
    assert_string_equal(opts[2], "--oci-dir=/opt/layouts");
    kiln_strv_free(opts);
    opts = NULL;
    n = 0;
    kiln_config_free(c);
    c = NULL;

    unsetenv("KILN_IMAGES_DIR");
    kiln_server_policy_options(NULL, &opts, &n);
    assert_int_equal(n, 1);
    assert_string_equal(opts[0], "--oci-dir=" KILN_SERVER_DEFAULT_OCI_DIR);
    kiln_strv_free(opts);

    assert_int_equal(load_config("{\"policy\": {\"allow_http_git\": \"yes\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.allow_http_git"));
    assert_int_equal(load_config("{\"policy\": {\"oci_dirs\": [\"/ok\", \"rel/dir\"]}}", &c, &err),
                     -1);
    assert_non_null(strstr(err.msg, "policy.oci_dirs[1]"));
    assert_int_equal(load_config("{\"policy\": {\"oci_dirs\": \"/x\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.oci_dirs"));
    assert_null(c);

    assert_true(kiln_server_checkout_option("--server-mode"));
    assert_true(kiln_server_checkout_option("--allow-http-git"));
    assert_true(kiln_server_checkout_option("--allow-address=10.0.0.0/8"));
    assert_false(kiln_server_checkout_option("--oci-dir=/srv/images"));
    assert_false(kiln_server_checkout_option("--isolation=chroot"));
}

static void test_config_confinement(void **state)
{
    kiln_config_t *c = NULL;
    kiln_error_t err = {0};
    char **opts = NULL;
    unsigned n = 0;
    (void)state;

    assert_int_equal(load_config("{\"policy\": {\"entitlements\": [\"network.host\"], "
                                 "\"isolation\": \"chroot\"}}",
                                 &c, &err),
                     0);
    assert_int_equal(kiln_config_entitlements(c), KILN_ENTITLEMENT_NETWORK_HOST);
    assert_string_equal(kiln_config_isolation(c), "chroot");
    kiln_config_free(c);
    assert_int_equal(load_config("{}", &c, &err), 0);
    assert_int_equal(kiln_config_entitlements(c), 0);
    assert_string_equal(kiln_config_isolation(c), "sandbox");
    kiln_config_free(c);
    c = NULL;
    assert_int_equal(load_config("{\"policy\": {\"entitlements\": [\"all\"]}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.entitlements[0]"));
    assert_int_equal(load_config("{\"policy\": {\"isolation\": \"none\"}}", &c, &err), -1);
    assert_non_null(strstr(err.msg, "policy.isolation"));
    assert_null(c);

    /* an operator's --build-option cannot pick chroot; the policy can */
    kiln_server_strv_add(&opts, &n, "--isolation=sandbox");
    assert_int_equal(kiln_server_isolation(&opts, &n, "sandbox", "the policy", &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kiln_server_isolation(&opts, &n, "chroot", "the policy", &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(opts[1], "--isolation=chroot");
    kiln_strv_free(opts);
    opts = NULL;
    n = 0;
    kiln_server_strv_add(&opts, &n, "--isolation=chroot");
    assert_int_equal(kiln_server_isolation(&opts, &n, NULL, "the policy", &err), -1);
    assert_non_null(strstr(err.msg, "--isolation=chroot"));
    assert_non_null(strstr(err.msg, "real root"));
    assert_non_null(strstr(err.msg, "the policy"));
    kiln_strv_free(opts);
}

/* Runs SQL on a second connection to the test database (installs write-failing triggers). */
static void side_sql(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* A refused final write never leaves a build running: it is recorded failed with a reason,
 * and when kiln.db refuses every write the failure is still what get/status/list show. */
static void test_db_finish_write_fails(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-dbfail-XXXXXX";
    _cleanup_free_ char *path = NULL;
    kiln_db_t *db = NULL;
    kiln_db_job_t job = {0};
    kiln_error_t err = {0};
    json_t *o = NULL, *list = NULL;
    int64_t next = 0;
    char st[32];

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/kiln.db", dir);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "b1", "r", "{}", NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_build_insert(db, "b2", "r", "{}", NULL, NULL, &err), 0);
    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    kiln_db_job_free(&job);
    assert_int_equal(kiln_db_claim(db, NULL, &job, &err), 1);
    kiln_db_job_free(&job);

    /* Only the full outcome is refused: the smaller failure record lands. */
    side_sql(path, "CREATE TRIGGER no_success BEFORE UPDATE ON builds WHEN "
                   "NEW.status = 'succeeded' BEGIN SELECT RAISE(FAIL, 'database or disk is full'); "
                   "END;");
    assert_int_equal(kiln_db_finish_or_fail(db, "b1", "succeeded", NULL, NULL, "{}", 0, &err), 1);
    assert_int_equal(kiln_db_build_get(db, "b1", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "state_write_failed");
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")),
                           "outcome (succeeded) could not be recorded: "));
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "disk is full"));
    json_decref(o);

    /* Every write refused: the failure lives in memory and the API view shows it. */
    side_sql(path, "CREATE TRIGGER no_write BEFORE UPDATE ON builds BEGIN "
                   "SELECT RAISE(FAIL, 'database or disk is full'); END;");
    assert_int_equal(kiln_db_finish_or_fail(db, "b2", "failed", "error", "x", NULL, 0, &err), -1);
    assert_non_null(strstr(err.msg, "build b2: "));
    assert_non_null(strstr(err.msg, "disk is full"));
    assert_int_equal(kiln_db_build_status(db, "b2", st, sizeof(st), &err), 0);
    assert_string_equal(st, "failed");
    assert_int_equal(kiln_db_build_get(db, "b2", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "state_write_failed");
    json_decref(o);
    assert_int_equal(kiln_db_build_list(db, NULL, NULL, 0, 10, &list, &next, &err), 0);
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, i), "status")),
                            "failed");
    json_decref(list);

    /* Once kiln.db takes writes again the kept failure is written to it. */
    side_sql(path, "DROP TRIGGER no_write; DROP TRIGGER no_success;");
    kiln_db_flush_unrecorded(db);
    kiln_db_close(db);
    assert_int_equal(kiln_db_open(path, &db, &err), 0);
    assert_int_equal(kiln_db_build_get(db, "b2", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "state_write_failed");
    json_decref(o);
    kiln_db_close(db);
    assert_int_equal(kiln_fs_rm_rf(dir, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_github_example),
        cmocka_unit_test(test_hmac_malformed_headers),
        cmocka_unit_test(test_hmac_stream),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_request_errors_name_the_field),
        cmocka_unit_test(test_request_secrets_stripped_and_argv),
        cmocka_unit_test(test_request_git_credential),
        cmocka_unit_test(test_request_context_and_commit),
        cmocka_unit_test(test_request_local_outputs),
        cmocka_unit_test(test_cursor_roundtrip),
        cmocka_unit_test(test_jobkey_seal_open),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_config_policy),
        cmocka_unit_test(test_config_bounds),
        cmocka_unit_test(test_request_allow),
        cmocka_unit_test(test_config_confinement),
        cmocka_unit_test(test_config_source_policy),
        cmocka_unit_test(test_db_finish_write_fails),
        cmocka_unit_test(test_request_job_spec),
        cmocka_unit_test(test_runner_event_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
