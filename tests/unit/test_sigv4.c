/* Unit tests for utils/aws/sigv4: the 34 cases of the AWS SigV4 test suite
 * (canonical request, string to sign, Authorization header, signed request),
 * plus S3 rules and presigning. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "utils/aws/sigv4.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define SUITE_TIME 1440938160 /* 20150830T123600Z */
#define MAX_HEADERS 32

static char *corpus_dir(void)
{
    const char *env = getenv("KILN_CORPORA");
    if (env && env[0])
        return kiln_xasprintf("%s/aws-sigv4", env);
    return kiln_xasprintf("%s/../shared/corpora/aws-sigv4", KILN_SOURCE_ROOT);
}

static char *read_case_file(const char *dir, const char *name, const char *ext)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s.%s", dir, name, ext);
    char *data = NULL;
    size_t len = 0;
    kiln_error_t err = {0};
    if (kiln_fs_read_file(p, 1 << 20, &data, &len, &err) < 0)
        fail_msg("%s", err.msg);
    return data;
}

/* A parsed .req file. */
typedef struct parsed {
    char *method;
    char *path;
    char *query;
    char *names[MAX_HEADERS];
    char *values[MAX_HEADERS];
    size_t n;
    char *head; /* request line + headers, trailing newlines removed */
    char *body; /* NULL when there is none */
} parsed_t;

static void parsed_free(parsed_t *p)
{
    free(p->method);
    free(p->path);
    free(p->query);
    for (size_t i = 0; i < p->n; i++) {
        free(p->names[i]);
        free(p->values[i]);
    }
    free(p->head);
    free(p->body);
}

static void parse_req(const char *text, parsed_t *p)
{
    const char *sep = strstr(text, "\n\n");
    size_t headlen = sep ? (size_t)(sep - text) : strlen(text);
    const char *line, *end, *sp, *uri_end, *q;
    memset(p, 0, sizeof(*p));
    while (headlen > 0 && text[headlen - 1] == '\n')
        headlen--;
    p->head = kiln_xstrndup(text, headlen);
    if (sep && sep[2] != '\0')
        p->body = kiln_xstrdup(sep + 2);

    end = strchr(p->head, '\n');
    if (end == NULL)
        end = p->head + strlen(p->head);
    sp = strchr(p->head, ' ');
    assert_non_null(sp);
    p->method = kiln_xstrndup(p->head, (size_t)(sp - p->head));
    uri_end = end;
    while (uri_end > sp && uri_end[0] != ' ')
        uri_end--; /* last space: before "HTTP/1.1" */
    q = memchr(sp + 1, '?', (size_t)(uri_end - sp - 1));
    if (q) {
        p->path = kiln_xstrndup(sp + 1, (size_t)(q - sp - 1));
        p->query = kiln_xstrndup(q + 1, (size_t)(uri_end - q - 1));
    } else {
        p->path = kiln_xstrndup(sp + 1, (size_t)(uri_end - sp - 1));
    }
    line = *end ? end + 1 : end;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        if (line[0] == ' ' || line[0] == '\t') {
            /* obsolete line folding: continuation of the previous value */
            char *v;
            assert_true(p->n > 0);
            v = kiln_xasprintf("%s %.*s", p->values[p->n - 1], (int)ll, line);
            free(p->values[p->n - 1]);
            p->values[p->n - 1] = v;
        } else {
            const char *colon = memchr(line, ':', ll);
            assert_non_null(colon);
            assert_true(p->n < MAX_HEADERS);
            p->names[p->n] = kiln_xstrndup(line, (size_t)(colon - line));
            p->values[p->n] = kiln_xstrndup(colon + 1, ll - (size_t)(colon - line) - 1);
            p->n++;
        }
        line += ll;
        if (*line == '\n')
            line++;
    }
}

static char *token_from_creq(const char *creq)
{
    const char *t = strstr(creq, "\nx-amz-security-token:");
    const char *nl;
    if (t == NULL)
        return NULL;
    t += strlen("\nx-amz-security-token:");
    nl = strchr(t, '\n');
    return kiln_xstrndup(t, nl ? (size_t)(nl - t) : strlen(t));
}

static char *readme_token(const char *root)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/post-sts-token", root);
    _cleanup_free_ char *text = read_case_file(dir, "readme", "txt");
    char *last;
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    last = strrchr(text, '\n');
    return kiln_xstrdup(last ? last + 1 : text);
}

/* Runs one suite case; returns the number of mismatches (and prints them). */
static int run_case(const char *root, const char *rel)
{
    _cleanup_free_ char *dir = kiln_xasprintf("%s/%s", root, rel);
    const char *name = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    _cleanup_free_ char *req = read_case_file(dir, name, "req");
    _cleanup_free_ char *creq = read_case_file(dir, name, "creq");
    _cleanup_free_ char *sts = read_case_file(dir, name, "sts");
    _cleanup_free_ char *authz = read_case_file(dir, name, "authz");
    _cleanup_free_ char *sreq = read_case_file(dir, name, "sreq");
    _cleanup_free_ char *token = token_from_creq(creq);
    _cleanup_free_ char *after_token = NULL;
    _cleanup_free_ char *signed_req = NULL;
    kiln_sigv4_header_t h[MAX_HEADERS + 1];
    kiln_aws_creds_t creds = {.access_key_id = (char *)"AKIDEXAMPLE",
                              .secret_access_key =
                                  (char *)"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                              .session_token = token};
    kiln_sigv4_scope_t scope = {.region = "us-east-1", .service = "service", .when = SUITE_TIME};
    kiln_sigv4_request_t r = {0};
    kiln_sigv4_result_t res = {0};
    kiln_error_t err = {0};
    char payload[65];
    parsed_t p;
    int bad = 0, have_token_header = 0;
    kiln_buf_t b;

    parse_req(req, &p);
    for (size_t i = 0; i < p.n; i++) {
        h[i].name = p.names[i];
        h[i].value = p.values[i];
        if (strcasecmp(p.names[i], "x-amz-security-token") == 0)
            have_token_header = 1;
    }
    r.n_headers = p.n;
    if (token && !have_token_header) {
        h[r.n_headers].name = "X-Amz-Security-Token";
        h[r.n_headers].value = token;
        r.n_headers++;
    }
    if (strcmp(name, "post-sts-header-after") == 0)
        after_token = readme_token(root); /* added after signing, unsigned */
    kiln_sigv4_sha256_hex(p.body ? p.body : "", p.body ? strlen(p.body) : 0, payload);
    r.method = p.method;
    r.path = p.path;
    r.query = p.query;
    r.headers = h;
    r.payload_hash = payload;
    if (kiln_sigv4_sign(&r, &scope, &creds, &res, &err) < 0) {
        print_message("%s: %s\n", rel, err.msg);
        parsed_free(&p);
        return 1;
    }
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "%s\n", p.head);
    if (token && !have_token_header)
        kiln_buf_appendf(&b, NULL, "X-Amz-Security-Token:%s\n", token);
    if (after_token)
        kiln_buf_appendf(&b, NULL, "X-Amz-Security-Token:%s\n", after_token);
    kiln_buf_appendf(&b, NULL, "Authorization: %s", res.authorization);
    if (p.body)
        kiln_buf_appendf(&b, NULL, "\n\n%s", p.body);
    signed_req = kiln_buf_steal(&b, NULL);

    if (strcmp(res.canonical_request, creq) != 0) {
        print_message("%s: canonical request\n--- want\n%s\n--- got\n%s\n", rel, creq,
                      res.canonical_request);
        bad++;
    }
    if (strcmp(res.string_to_sign, sts) != 0) {
        print_message("%s: string to sign\n--- want\n%s\n--- got\n%s\n", rel, sts,
                      res.string_to_sign);
        bad++;
    }
    if (strcmp(res.authorization, authz) != 0) {
        print_message("%s: authorization\n--- want\n%s\n--- got\n%s\n", rel, authz,
                      res.authorization);
        bad++;
    }
    {
        /* get-vanilla-with-session-token's .sreq carries a signature that
         * disagrees with its own .authz (an upstream slip): the .authz is the
         * reference, the rest of the .sreq must match byte for byte. */
        char *a = strstr(sreq, "\nAuthorization: ");
        if (a != NULL) {
            char *e = strchr(a + 1, '\n');
            size_t alen = e ? (size_t)(e - a) : strlen(a);
            _cleanup_free_ char *line = kiln_xasprintf("\nAuthorization: %s", authz);
            if (alen != strlen(line) || memcmp(a, line, alen) != 0) {
                char *fixed = kiln_xasprintf("%.*s%s%s", (int)(a - sreq), sreq, line, e ? e : "");
                print_message("%s: .sreq Authorization differs from .authz; using .authz\n", rel);
                free(sreq);
                sreq = fixed;
            }
        }
    }
    if (strcmp(signed_req, sreq) != 0) {
        print_message("%s: signed request\n--- want\n%s\n--- got\n%s\n", rel, sreq, signed_req);
        bad++;
    }
    kiln_sigv4_result_free(&res);
    parsed_free(&p);
    return bad;
}

/* Lists the case directories (those holding <name>.req) under root/sub. */
static size_t list_cases(const char *root, const char *sub, char ***out, size_t n)
{
    _cleanup_free_ char *dir = sub ? kiln_xasprintf("%s/%s", root, sub) : kiln_xstrdup(root);
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        _cleanup_free_ char *rel = NULL;
        _cleanup_free_ char *reqp = NULL;
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        rel = sub ? kiln_xasprintf("%s/%s", sub, e->d_name) : kiln_xstrdup(e->d_name);
        reqp = kiln_xasprintf("%s/%s/%s.req", root, rel, e->d_name);
        if (stat(reqp, &st) == 0) {
            *out = kiln_xrealloc(*out, (n + 1) * sizeof(char *));
            (*out)[n++] = steal_pointer(&rel);
        }
    }
    closedir(d);
    return n;
}

/* One suite case; *state is its path relative to the corpus. */
static void test_suite_case(void **state)
{
    _cleanup_free_ char *root = corpus_dir();
    assert_int_equal(run_case(root, *state), 0);
}

/* The suite has exactly 34 cases (also catches a missing corpus). */
static void test_suite_count(void **state)
{
    _cleanup_free_ char *root = corpus_dir();
    if (access(root, F_OK) != 0) {
        print_message("# SKIP the AWS SigV4 suite is not at %s (set KILN_CORPORA)\n", root);
        free(steal_pointer(&root)); /* skip() jumps out past the cleanup */
        skip();
    }
    assert_int_equal((size_t)(uintptr_t)*state, 34);
}

static const kiln_aws_creds_t test_creds = {
    .access_key_id = (char *)"AKIAIOSFODNN7EXAMPLE",
    .secret_access_key = (char *)"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

/* The GET example of the S3 SigV4 documentation ("GET Object"). */
static void test_s3_get_object_example(void **state)
{
    kiln_sigv4_header_t h[] = {
        {"Host", "examplebucket.s3.amazonaws.com"},
        {"Range", "bytes=0-9"},
        {"x-amz-content-sha256", KILN_SIGV4_EMPTY_SHA256},
        {"x-amz-date", "20130524T000000Z"},
    };
    kiln_sigv4_request_t r = {.method = "GET",
                              .path = "/test.txt",
                              .headers = h,
                              .n_headers = 4,
                              .payload_hash = KILN_SIGV4_EMPTY_SHA256};
    kiln_sigv4_scope_t scope = {
        .region = "us-east-1", .service = "s3", .when = 1369353600, .s3_rules = 1};
    kiln_sigv4_result_t res = {0};
    assert_int_equal(kiln_sigv4_sign(&r, &scope, &test_creds, &res, NULL), 0);
    assert_string_equal(res.signature,
                        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    kiln_sigv4_result_free(&res);
}

/* S3 keeps the path as sent: no normalisation, no second encoding. */
static void test_s3_path_rules(void **state)
{
    kiln_sigv4_header_t h[] = {{"host", "b.s3.amazonaws.com"}, {"x-amz-date", "20130524T000000Z"}};
    kiln_sigv4_request_t r = {.method = "PUT",
                              .path = "/a//b/../c%20d",
                              .headers = h,
                              .n_headers = 2,
                              .payload_hash = KILN_SIGV4_UNSIGNED_PAYLOAD};
    kiln_sigv4_scope_t scope = {
        .region = "us-east-1", .service = "s3", .when = 1369353600, .s3_rules = 1};
    kiln_sigv4_result_t res = {0};
    assert_int_equal(kiln_sigv4_sign(&r, &scope, &test_creds, &res, NULL), 0);
    assert_non_null(strstr(res.canonical_request, "PUT\n/a//b/../c%20d\n"));
    assert_non_null(strstr(res.canonical_request, "\nUNSIGNED-PAYLOAD"));
    kiln_sigv4_result_free(&res);
    scope.s3_rules = 0;
    assert_int_equal(kiln_sigv4_sign(&r, &scope, &test_creds, &res, NULL), 0);
    assert_non_null(strstr(res.canonical_request, "PUT\n/a/c%2520d\n"));
    kiln_sigv4_result_free(&res);
}

/* The presigned-URL example of the S3 SigV4 documentation. */
static void test_s3_presign_example(void **state)
{
    kiln_sigv4_header_t h[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    kiln_sigv4_request_t r = {.method = "GET", .path = "/test.txt", .headers = h, .n_headers = 1};
    kiln_sigv4_scope_t scope = {
        .region = "us-east-1", .service = "s3", .when = 1369353600, .s3_rules = 1};
    _cleanup_free_ char *q = NULL;
    assert_int_equal(kiln_sigv4_presign(&r, &scope, &test_creds, 86400, &q, NULL), 0);
    assert_non_null(strstr(q, "X-Amz-Signature="
                              "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"));
    assert_non_null(strstr(q, "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%"
                              "2Faws4_request"));
}

static void test_uri_encode(void **state)
{
    _cleanup_free_ char *a = kiln_sigv4_uri_encode("a b/c~d+e=", 10, 1);
    _cleanup_free_ char *b = kiln_sigv4_uri_encode("a b/c", 5, 0);
    assert_string_equal(a, "a%20b/c~d%2Be%3D");
    assert_string_equal(b, "a%20b%2Fc");
}

static void test_errors(void **state)
{
    kiln_sigv4_header_t h[] = {{"host", "x"}};
    kiln_sigv4_request_t r = {.method = "GET", .path = "nope", .headers = h, .n_headers = 1};
    kiln_sigv4_scope_t scope = {.region = "us-east-1", .service = "s3", .when = 0};
    kiln_sigv4_result_t res = {0};
    kiln_error_t err = {0};
    assert_int_equal(kiln_sigv4_sign(&r, &scope, &test_creds, &res, &err), -1);
    assert_non_null(strstr(err.msg, "nope"));
    r.path = "/";
    assert_int_equal(kiln_sigv4_sign(&r, &scope, NULL, &res, &err), -1);
    assert_non_null(strstr(err.msg, "credentials"));
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_s3_get_object_example),
        cmocka_unit_test(test_s3_path_rules),
        cmocka_unit_test(test_s3_presign_example),
        cmocka_unit_test(test_uri_encode),
        cmocka_unit_test(test_errors),
    };
    size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
    _cleanup_free_ char *root = corpus_dir();
    _cleanup_free_ struct CMUnitTest *tests = NULL;
    char **cases = NULL;
    size_t n = 0, total;
    struct stat st;
    int ret;

    if (stat(root, &st) == 0) {
        n = list_cases(root, NULL, &cases, n);
        n = list_cases(root, "normalize-path", &cases, n);
        n = list_cases(root, "post-sts-token", &cases, n);
    }
    total = n + 1 + nfixed;
    tests = kiln_xzalloc(total * sizeof(*tests));
    /* one cmocka test per suite case, named after it */
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i];
        tests[i].test_func = test_suite_case;
        tests[i].initial_state = cases[i];
    }
    tests[n].name = "aws-sigv4 suite has 34 cases";
    tests[n].test_func = test_suite_count;
    tests[n].initial_state = (void *)(uintptr_t)n;
    memcpy(tests + n + 1, fixed, sizeof(fixed));
    ret = _cmocka_run_group_tests("sigv4", tests, total, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(cases[i]);
    free(cases);
    return ret;
}
