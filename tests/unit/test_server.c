/* Unit tests for the build server's requests: validation (each error naming its field), the
 * job spec a request becomes, secrets and credentials kept out of what is stored, entitlements,
 * the runner's event text, list cursors and sealed job keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/entitlement.h"
#include "job/codec.h"
#include "job/request.h"
#include "job/source.h"
#include "src/server/cursor.h"
#include "src/server/jobkey.h"
#include "src/server/request.h"
#include "src/server/runner.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

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

/* The engine request `kiln job run` gives the build of a stored request (job/request.h):
 * its job spec (kiln_request_job_spec, kept in *spec: the request points into it), the
 * source on disk at ctx_dir as the job's checkout leaves it (the git credential dropped), or
 * with ctx_dir NULL the source as the request named it. */
static int job_request(json_t *stored, const char *ctx_dir, json_t *files, kiln_job_spec_t *spec,
                       kiln_job_request_t *jr, kiln_error_t *err)
{
    kiln_request_ids_t ids = {0};
    _cleanup_free_ char *json = NULL;

    memset(spec, 0, sizeof(*spec));
    if (kiln_request_job_spec(stored, files, &ids, &json, err) < 0 ||
        kiln_job_parse(json, strlen(json), KILN_JOB_JSON_LOCAL, spec, NULL, err) < 0)
        return -1;
    kiln_job_source_drop_credential(spec);
    if (ctx_dir) {
        free(spec->source);
        free(spec->subdir);
        free(spec->ref);
        free(spec->source_commit);
        spec->subdir = spec->ref = spec->source_commit = NULL;
        spec->source = kiln_xstrdup(ctx_dir);
        spec->source_kind = KILN_JOB_SOURCE_DIR;
    }
    if (kiln_job_request_make(spec, NULL, jr, err) < 0) {
        kiln_job_spec_clear(spec);
        return -1;
    }
    return 0;
}

static void test_request_secrets_stripped_and_request(void **state)
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
    json_t *files = json_pack("{s:s}", "npm", "/s/npm");
    kiln_error_t err = {0};
    kiln_job_spec_t spec;
    kiln_job_request_t jr = {0};

    assert_int_equal(parse(body, msg, sizeof(msg), &r), 0);
    assert_string_equal(r.repo, "https://git.example.com/org/app");
    stored = json_dumps(r.stored, JSON_COMPACT);
    assert_null(strstr(stored, "SECRET"));
    assert_non_null(strstr(stored, "\"secrets\":[\"npm\"]"));
    assert_string_equal(json_string_value(json_object_get(r.secrets, "npm")), "SECRET");
    assert_int_equal(job_request(r.stored, NULL, files, &spec, &jr, &err), 0);
    assert_string_equal(spec.source, "https://Git.Example.com/org/app.git/");
    assert_string_equal(spec.ref, "main");
    assert_string_equal(spec.subdir, "web");
    assert_string_equal(spec.dockerfile, "docker/Dockerfile");
    assert_string_equal(jr.req.target, "prod");
    assert_int_equal(jr.req.n_build_args, 1);
    assert_string_equal(jr.req.build_args[0], "A=1 2");
    assert_int_equal(jr.req.n_secrets, 1);
    assert_string_equal(jr.req.secrets[0], "id=npm,src=/s/npm");
    assert_string_equal(spec.tags[0], "r/x:2");
    assert_int_equal(jr.n_outputs, 1);
    assert_string_equal(jr.outputs[0], "type=registry,name=r/x:1,push=true");
    assert_string_equal(spec.notify[0], "sqs://q");
    kiln_job_request_clear(&jr);
    kiln_job_spec_clear(&spec);
    json_decref(files);
    kiln_request_free(&r);
}

/* The job spec a server build runs: the request placed in the build's directory (secret
 * files, the git credential's too, file outputs under kiln-out), its source as the request
 * named it (the job checks it out), the ids the API gave it, the tenant as its cache
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
                              .trigger = "api"};
    kiln_request_t r = {0};
    kiln_error_t err = {0};
    char msg[512], *spec = NULL;
    json_t *j, *want;

    (void)state;
    assert_int_equal(parse(body, msg, sizeof(msg), &r), 0);
    assert_int_equal(kiln_request_job_spec(r.stored, files, &ids, &spec, &err), 0);
    assert_null(strstr(spec, "SECRET"));
    assert_null(strstr(spec, "tok"));
    j = json_loads(spec, 0, NULL);
    want = json_loads(
        "{\"source\": {\"git\": \"https://git.example.com/org/app.git\", \"ref\": \"main\"}, "
        "\"tenant\": \"acme\", \"secrets\": [{\"id\": \"npm\", \"src\": \"/s/npm\"}, {\"id\": "
        "\".git\", \"src\": \"/s/.git\"}], \"outputs\": [{\"type\": \"local\", \"dest\": "
        "\"kiln-out/site\"}], \"build_id\": \"b-0123456789abcdef\", \"repo\": "
        "\"https://git.example.com/org/app.git\", \"commit\": "
        "\"0123456789abcdef0123456789abcdef01234567\", \"branch\": \"main\", \"trigger\": "
        "\"api\", \"cache\": {\"namespace\": \"acme\"}}",
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
    assert_int_equal(kiln_request_job_spec(r.stored, files, &ids, &spec, &err), -1);
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

/* A git URL's userinfo (or source.token) leaves the stored request and the build's request, and
 * becomes the ".git" secret; an ssh user name alone stays. */
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
        kiln_job_spec_t spec;
        kiln_job_request_t jr = {0};
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
        assert_int_equal(job_request(r.stored, "/ctx", files, &spec, &jr, &err), 0);
        assert_int_equal(jr.req.n_secrets, 0);
        kiln_job_request_clear(&jr);
        kiln_job_spec_clear(&spec);
        json_decref(files);
        kiln_request_free(&r);
    }
}

static void test_request_context_and_commit(void **state)
{
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    kiln_error_t err = {0};
    kiln_job_spec_t spec;
    kiln_job_request_t jr = {0};

    assert_int_equal(parse("{\"source\": {\"context\": \"ctx-0a1b\"}}", msg, sizeof(msg), &r), 0);
    assert_string_equal(r.repo, "upload");
    assert_int_equal(job_request(r.stored, "/ctx/dir", NULL, &spec, &jr, &err), 0);
    assert_string_equal(spec.source, "/ctx/dir");
    kiln_job_request_clear(&jr);
    kiln_job_spec_clear(&spec);
    /* an uploaded context is put on disk first (job/source): never built by its id */
    assert_int_equal(job_request(r.stored, NULL, NULL, &spec, &jr, &err), -1);
    assert_non_null(strstr(err.msg, "source.context"));
    kiln_request_free(&r);

    assert_int_equal(parse("{\"source\": {\"git\": \"git@h:o/r.git\", \"ref\": \"dev\", "
                           "\"commit\": \"0123abcd\"}, \"secrets\": {\"x\": \"y\"}}",
                           msg, sizeof(msg), &r),
                     0);
    /* A secret without its file is an error, never a build without it. */
    assert_int_equal(job_request(r.stored, NULL, NULL, &spec, &jr, &err), -1);
    assert_non_null(strstr(err.msg, "secret 'x'"));
    kiln_request_free(&r);
}

/* File outputs are written under kiln-out/ of the build's scratch directory (the artifacts
 * directory); an absolute or escaping dest is refused naming the output, also when a stored
 * request (an older version's) reaches the build. */
static void test_request_local_outputs(void **state)
{
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    kiln_error_t err = {0};
    kiln_job_spec_t spec;
    kiln_job_request_t jr = {0};
    json_t *old;

    (void)state;
    assert_int_equal(parse("{\"source\": {\"context\": \"ctx-0a1b\"}, \"outputs\": "
                           "[{\"type\": \"local\", \"dest\": \"site\"}, {\"type\": \"oci\", "
                           "\"dest\": \"img/layout\", \"tar\": true}]}",
                           msg, sizeof(msg), &r),
                     0);
    assert_int_equal(job_request(r.stored, "/ctx", NULL, &spec, &jr, &err), 0);
    assert_int_equal(jr.n_outputs, 2);
    assert_string_equal(jr.outputs[0], "type=local,dest=kiln-out/site");
    assert_string_equal(jr.outputs[1], "type=oci,dest=kiln-out/img/layout,tar=true");
    kiln_job_request_clear(&jr);
    kiln_job_spec_clear(&spec);
    kiln_request_free(&r);

    assert_int_equal(parse("{\"source\": {\"context\": \"ctx-0a1b\"}, \"outputs\": "
                           "[{\"type\": \"local\", \"dest\": \"/etc/cron.d\"}]}",
                           msg, sizeof(msg), NULL),
                     -1);
    assert_non_null(strstr(msg, "field 'outputs[0].dest': '/etc/cron.d' is absolute"));
    old = json_loads("{\"source\": {\"context\": \"ctx-0a1b\"}, \"outputs\": "
                     "[{\"type\": \"docker\", \"dest\": \"../../x.tar\"}]}",
                     0, NULL);
    assert_int_equal(job_request(old, "/ctx", NULL, &spec, &jr, &err), -1);
    assert_non_null(strstr(err.msg, "outputs[0].dest"));
    assert_null(jr.outputs);
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

/* "allow": validated names, refused beyond what the server grants (naming the
 * entry and the setting), granted to the build (its entitlements). */
static void test_request_allow(void **state)
{
    kiln_request_t r = {0};
    char msg[KILN_ERROR_MSG_MAX];
    kiln_job_spec_t spec;
    kiln_job_request_t jr = {0};
    kiln_error_t err = {0};
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
    assert_int_equal(job_request(r.stored, "/ctx", NULL, &spec, &jr, &err), 0);
    assert_int_equal(jr.req.entitlements,
                     KILN_ENTITLEMENT_SECURITY_INSECURE | KILN_ENTITLEMENT_NETWORK_HOST);
    kiln_job_request_clear(&jr);
    kiln_job_spec_clear(&spec);
    kiln_request_free(&r);

    /* a request without "allow" needs nothing */
    assert_int_equal(parse("{\"source\": {\"git\": \"https://x/a\"}}", msg, sizeof(msg), &r), 0);
    assert_int_equal(kiln_request_check_allow(r.stored, 0, &err), 0);
    kiln_request_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_errors_name_the_field),
        cmocka_unit_test(test_request_secrets_stripped_and_request),
        cmocka_unit_test(test_request_git_credential),
        cmocka_unit_test(test_request_context_and_commit),
        cmocka_unit_test(test_request_local_outputs),
        cmocka_unit_test(test_cursor_roundtrip),
        cmocka_unit_test(test_jobkey_seal_open),
        cmocka_unit_test(test_request_allow),
        cmocka_unit_test(test_request_job_spec),
        cmocka_unit_test(test_runner_event_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
