/* Unit tests for the server's access log (the line formatter: no secrets, escaping; the file:
 * mode, append, reopen) and the audit trail of a build (token identifiers, webhook pushers,
 * dedupe keys); the dedupe of deliveries in kiln.db is test_server_db. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "src/server/accesslog.h"
#include "src/server/audit.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Formats e and parses the line back; checks it is one line ending in '\n'. */
static json_t *format_parse(const kiln_access_entry_t *e, char **line_out)
{
    char *line = kiln_accesslog_format(e);
    size_t n = strlen(line);
    json_t *o;

    assert_true(n > 2);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1));
    o = json_loads(line, 0, NULL);
    assert_non_null(o);
    if (line_out)
        *line_out = line;
    else
        free(line);
    return o;
}

static void test_format_fields(void **state)
{
    (void)state;
    kiln_access_entry_t e = {.time = 1764745200.5,
                             .request_id = "0123456789abcdef",
                             .remote = "127.0.0.1",
                             .tenant = "acme",
                             .method = "GET",
                             .path = "/v1/builds/b-1",
                             .status = 200,
                             .bytes = 1234,
                             .duration = 0.0015};
    json_t *o = format_parse(&e, NULL);

    assert_string_equal(json_string_value(json_object_get(o, "time")), "2025-12-03T07:00:00.500Z");
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "0123456789abcdef");
    assert_string_equal(json_string_value(json_object_get(o, "remote")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(o, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(o, "route")), "/v1/builds/b-1");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes")), 1234);
    assert_true(json_real_value(json_object_get(o, "duration_ms")) > 1.49 &&
                json_real_value(json_object_get(o, "duration_ms")) < 1.51);
    assert_null(json_object_get(o, "aborted"));
    /* exactly these keys: nothing else (no header, no query) can reach the line */
    assert_int_equal(json_object_size(o), 9);
    json_decref(o);

    /* an open route: no tenant; no answer went out: no status; the request ended early */
    e.tenant = NULL;
    e.status = 0;
    e.aborted = 1;
    o = format_parse(&e, NULL);
    assert_true(json_is_null(json_object_get(o, "tenant")));
    assert_true(json_is_null(json_object_get(o, "status")));
    assert_true(json_is_true(json_object_get(o, "aborted")));
    json_decref(o);
}

/* A query string (which may carry a token or a signature) never reaches the line. */
static void test_format_no_query(void **state)
{
    (void)state;
    kiln_access_entry_t e = {.request_id = "r",
                             .method = "POST",
                             .path = "/v1/hooks/github?token=SECRET-TOKEN&sig=SIG-VALUE",
                             .status = 401};
    char *line = NULL;
    json_t *o = format_parse(&e, &line);

    assert_string_equal(json_string_value(json_object_get(o, "route")), "/v1/hooks/github");
    assert_null(strstr(line, "SECRET-TOKEN"));
    assert_null(strstr(line, "SIG-VALUE"));
    assert_null(strstr(line, "?"));
    free(line);
    json_decref(o);
}

/* Quotes, backslashes, control characters and bytes past ASCII are escaped: the line stays
 * one valid JSON line and holds no raw escape or newline. */
static void test_format_escaping(void **state)
{
    (void)state;
    kiln_access_entry_t e = {.request_id = "r",
                             .method = "GET",
                             .path = "/a\"b\\c\nd\re\x1b[31mf\xff\xc3\xa9",
                             .tenant = "t\"\n",
                             .status = 404};
    char *line = NULL;
    json_t *o = format_parse(&e, &line);

    assert_null(strchr(line, '\x1b'));
    assert_null(strchr(line, '\r'));
    assert_null(strchr(line, '\xff'));
    assert_non_null(strstr(line, "\\u001b"));
    assert_non_null(strstr(line, "\\u00ff"));
    /* ASCII comes back as it was; other bytes each as the code point of their value */
    assert_string_equal(json_string_value(json_object_get(o, "route")),
                        "/a\"b\\c\nd\re\x1b[31mf\xc3\xbf\xc3\x83\xc2\xa9");
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "t\"\n");
    free(line);
    json_decref(o);
}

/* A path longer than KILN_ACCESSLOG_ROUTE_MAX is cut and marked. */
static void test_format_long_path(void **state)
{
    (void)state;
    _cleanup_free_ char *path = kiln_xmalloc(5000);
    kiln_access_entry_t e = {.request_id = "r", .method = "GET", .path = path, .status = 404};
    json_t *o;
    const char *route;

    memset(path, 'a', 4999);
    path[0] = '/';
    path[4999] = '\0';
    o = format_parse(&e, NULL);
    route = json_string_value(json_object_get(o, "route"));
    assert_int_equal(strlen(route), KILN_ACCESSLOG_ROUTE_MAX + 3);
    assert_string_equal(route + KILN_ACCESSLOG_ROUTE_MAX, "...");
    json_decref(o);
}

static void test_request_ids(void **state)
{
    (void)state;
    char a[17], b[17];

    kiln_accesslog_request_id(a);
    kiln_accesslog_request_id(b);
    assert_int_equal(strlen(a), 16);
    assert_int_equal(strspn(a, "0123456789abcdef"), 16);
    assert_string_not_equal(a, b);
}

static int count_lines(const char *path)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int n = 0;

    if (kiln_fs_read_file(path, 1 << 20, &text, &len, NULL) < 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

/* The file: created 0640 (an existing one loses its bits for others), appended to, and
 * reopened by name after a rotation; a directory is refused naming it. */
static void test_log_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-accesslog-XXXXXX";
    _cleanup_free_ char *path = NULL, *rotated = NULL, *other = NULL;
    kiln_accesslog_t *l = NULL;
    kiln_error_t err = {0};
    kiln_access_entry_t e = {.request_id = "r", .method = "GET", .path = "/healthz", .status = 200};
    struct stat sb;
    mode_t old = umask(022);

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/access.log", dir);
    rotated = kiln_xasprintf("%s/access.log.1", dir);
    other = kiln_xasprintf("%s/wide.log", dir);
    assert_int_equal(kiln_accesslog_open(path, &l, &err), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    kiln_accesslog_write(l, &e);
    kiln_accesslog_write(l, &e);
    assert_int_equal(count_lines(path), 2);
    assert_int_equal(rename(path, rotated), 0);
    kiln_accesslog_write(l, &e);
    assert_int_equal(kiln_accesslog_reopen(l, &err), 0);
    kiln_accesslog_write(l, &e);
    assert_int_equal(count_lines(rotated), 3);
    assert_int_equal(count_lines(path), 1);
    assert_int_equal(kiln_accesslog_dropped(l), 0);
    kiln_accesslog_close(l);

    /* reopened for appending: earlier lines stay */
    assert_int_equal(kiln_accesslog_open(path, &l, &err), 0);
    kiln_accesslog_write(l, &e);
    kiln_accesslog_close(l);
    assert_int_equal(count_lines(path), 2);

    close(open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
    chmod(other, 0666);
    assert_int_equal(kiln_accesslog_open(other, &l, &err), 0);
    kiln_accesslog_close(l);
    assert_int_equal(stat(other, &sb), 0);
    assert_int_equal(sb.st_mode & 07, 0);

    /* a line the file cannot take (here: past RLIMIT_FSIZE) is dropped and counted */
    {
        struct rlimit saved, small = {.rlim_cur = 0, .rlim_max = RLIM_INFINITY};
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        small.rlim_max = saved.rlim_max;
        signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(kiln_accesslog_open(path, &l, &err), 0);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
        kiln_accesslog_write(l, &e);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        assert_int_equal(kiln_accesslog_dropped(l), 1);
        kiln_accesslog_close(l);
        assert_int_equal(count_lines(path), 2);
    }

    assert_int_equal(kiln_accesslog_open(dir, &l, &err), -1);
    assert_non_null(strstr(err.msg, dir));
    kiln_accesslog_write(NULL, &e); /* logging off */
    umask(old);
    kiln_fs_rm_rf(dir, NULL);
}

/* Lines written by many threads at once while the file is reopened (rotated) never interleave:
 * every line of both files is one whole JSON object, none lost. */
typedef struct {
    kiln_accesslog_t *l;
    const char *path;
} writer_arg_t;

static void *writer(void *p)
{
    writer_arg_t *a = p;
    kiln_access_entry_t e = {.request_id = "r", .method = "GET", .path = a->path, .status = 200};
    for (int i = 0; i < 2000; i++)
        kiln_accesslog_write(a->l, &e);
    return NULL;
}

static size_t whole_lines(const char *path)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0, n = 0;
    char *line, *save = NULL;
    assert_int_equal(kiln_fs_read_file(path, 64u << 20, &data, &len, NULL), 0);
    for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        json_decref(o);
        n++;
    }
    return n;
}

static void test_log_threads(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-accesslog-thr-XXXXXX";
    _cleanup_free_ char *path = NULL, *rotated = NULL, *longpath = NULL;
    kiln_accesslog_t *l = NULL;
    kiln_error_t err = {0};
    pthread_t t[8];
    writer_arg_t a;

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/access.log", dir);
    rotated = kiln_xasprintf("%s/access.log.1", dir);
    longpath = kiln_xmalloc(1500);
    memset(longpath, 'p', 1499);
    longpath[0] = '/';
    longpath[1499] = '\0';
    assert_int_equal(kiln_accesslog_open(path, &l, &err), 0);
    a = (writer_arg_t){l, longpath};
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, &a), 0);
    usleep(2000);
    assert_int_equal(rename(path, rotated), 0);
    assert_int_equal(kiln_accesslog_reopen(l, &err), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    kiln_accesslog_close(l);
    assert_int_equal(whole_lines(rotated) + whole_lines(path), 8 * 2000);
    kiln_fs_rm_rf(dir, NULL);
}

/* The retention sweep: a file whose first line is older than half the retention is rotated to
 * PATH.<stamp> and PATH opened afresh (later lines go there); rotated files older than the
 * retention go, and nothing else in the directory (other names, a link, a younger rotation). */
static void test_retention_sweep(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-accesslog-XXXXXX";
    _cleanup_free_ char *path = NULL, *old_rot = NULL, *young_rot = NULL, *keep = NULL,
                        *link = NULL, *rot = NULL;
    kiln_accesslog_t *l = NULL;
    kiln_error_t err = {0};
    double t0 = 1767225600.0; /* 2026-01-01T00:00:00Z */
    kiln_access_entry_t e = {.time = t0, .request_id = "r", .method = "GET", .path = "/x"};
    struct timespec old[2] = {{.tv_sec = (time_t)t0 - 7200}, {.tv_sec = (time_t)t0 - 7200}};
    unsigned removed = 0;

    assert_non_null(mkdtemp(dir));
    path = kiln_xasprintf("%s/access.log", dir);
    old_rot = kiln_xasprintf("%s/access.log.20251231T220000Z", dir);
    young_rot = kiln_xasprintf("%s/access.log.20251231T235900Z", dir);
    keep = kiln_xasprintf("%s/access.log.20251231T220000Z.bak", dir);
    link = kiln_xasprintf("%s/access.log.20251231T210000Z", dir);
    rot = kiln_xasprintf("%s/access.log.20260101T003000Z", dir);
    {
        const char *fs[] = {old_rot, young_rot, keep};
        for (size_t i = 0; i < 3; i++) {
            close(open(fs[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0640));
            if (fs[i] != young_rot)
                assert_int_equal(utimensat(AT_FDCWD, fs[i], old, 0), 0);
        }
    }
    {
        struct timespec young[2] = {{.tv_sec = (time_t)t0 - 60}, {.tv_sec = (time_t)t0 - 60}};
        assert_int_equal(utimensat(AT_FDCWD, young_rot, young, 0), 0);
    }
    assert_int_equal(symlink("/etc/hostname", link), 0);

    assert_int_equal(kiln_accesslog_open(path, &l, &err), 0);
    kiln_accesslog_write(l, &e);
    /* 10 minutes on, retention 1 h: too young to rotate; only the old rotation goes */
    assert_int_equal(kiln_accesslog_sweep(l, t0 + 600, 3600, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(access(old_rot, F_OK), -1);
    assert_int_equal(access(young_rot, F_OK), 0);
    assert_int_equal(access(keep, F_OK), 0);
    assert_int_equal(faccessat(AT_FDCWD, link, F_OK, AT_SYMLINK_NOFOLLOW), 0);
    assert_int_equal(count_lines(path), 1);
    /* 30 minutes on: half the retention, the file is rotated and a new one started */
    assert_int_equal(kiln_accesslog_sweep(l, t0 + 1800, 3600, &removed, &err), 0);
    assert_int_equal(count_lines(rot), 1);
    kiln_accesslog_write(l, &e);
    assert_int_equal(count_lines(path), 1);
    assert_int_equal(count_lines(rot), 1);
    /* a rotation of the same second is never overwritten */
    kiln_accesslog_close(l);
    assert_int_equal(kiln_accesslog_open(path, &l, &err), 0);
    assert_int_equal(kiln_accesslog_sweep(l, t0 + 1800, 3600, &removed, &err), -1);
    assert_non_null(strstr(err.msg, "rotating to"));
    assert_int_equal(count_lines(rot), 1);
    /* retention 0 and stderr: nothing happens */
    assert_int_equal(kiln_accesslog_sweep(l, t0 + 99999, 0, &removed, &err), 0);
    assert_int_equal(kiln_accesslog_sweep(NULL, t0 + 99999, 60, &removed, &err), 0);
    kiln_accesslog_close(l);
    assert_int_equal(kiln_accesslog_open(NULL, &l, &err), 0);
    assert_int_equal(kiln_accesslog_sweep(l, t0 + 99999, 60, &removed, &err), 0);
    kiln_accesslog_close(l);
    assert_int_equal(access(young_rot, F_OK), 0);
    kiln_fs_rm_rf(dir, NULL);
}

/* The token id is "sha256:" and the first 12 hex digits of the token's SHA-256; the token
 * itself never appears in the audit record. */
static void test_audit_token(void **state)
{
    (void)state;
    const char *tok = "acme-token-0123456789";
    unsigned char md[32];
    unsigned int n = 0;
    char want[32];
    _cleanup_free_ char *id = NULL, *text = NULL;
    json_t *a;

    EVP_Digest(tok, strlen(tok), md, &n, EVP_sha256(), NULL);
    snprintf(want, sizeof(want), "sha256:%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3],
             md[4], md[5]);
    id = kiln_audit_token_id("Bearer acme-token-0123456789");
    assert_string_equal(id, want);
    assert_null(kiln_audit_token_id(NULL));
    assert_null(kiln_audit_token_id("Basic dXNlcjpwYXNz"));
    assert_null(kiln_audit_token_id("Bearer "));

    a = kiln_audit_api("acme", "Bearer acme-token-0123456789", "retry-1");
    text = json_dumps(a, JSON_COMPACT);
    assert_null(strstr(text, "acme-token"));
    assert_string_equal(json_string_value(json_object_get(a, "via")), "api");
    assert_string_equal(json_string_value(json_object_get(a, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(a, "token")), want);
    assert_string_equal(json_string_value(json_object_get(a, "idempotency_key")), "retry-1");
    json_decref(a);
    a = kiln_audit_api(NULL, NULL, NULL);
    assert_int_equal(json_object_size(a), 1);
    json_decref(a);
}

/* Who pushed and who wrote the pushed commit, from GitHub's and GitLab's payloads. */
static void test_audit_webhook(void **state)
{
    (void)state;
    json_t *gh =
        json_loads("{\"pusher\":{\"name\":\"alice\"},\"sender\":{\"login\":\"alice-gh\"},"
                   "\"head_commit\":{\"message\":\"fix <b>it</b>\",\"author\":{\"name\":\"Bob "
                   "B\",\"username\":\"bob\"}}}",
                   0, NULL);
    json_t *gl = json_loads("{\"user_username\":\"carol\",\"checkout_sha\":\"c2\",\"commits\":["
                            "{\"id\":\"c1\",\"author\":{\"name\":\"Dan\"}},"
                            "{\"id\":\"c2\",\"message\":\"m2\",\"author\":{\"name\":\"Eve\"}},"
                            "{\"id\":\"c3\",\"author\":{\"name\":\"Fay\"}}]}",
                            0, NULL);
    json_t *a = kiln_audit_webhook("github", "acme", "app", "d-1", "push", gh);
    _cleanup_free_ char *longname = kiln_xmalloc(1000);

    assert_string_equal(json_string_value(json_object_get(a, "via")), "github");
    assert_string_equal(json_string_value(json_object_get(a, "tenant")), "acme");
    assert_string_equal(json_string_value(json_object_get(a, "project")), "app");
    assert_string_equal(json_string_value(json_object_get(a, "delivery")), "d-1");
    assert_string_equal(json_string_value(json_object_get(a, "event")), "push");
    assert_string_equal(json_string_value(json_object_get(a, "pusher")), "alice");
    assert_string_equal(json_string_value(json_object_get(a, "commit_author")), "bob");
    /* the message as pushed: the dashboard shows it as text */
    assert_string_equal(json_string_value(json_object_get(a, "commit_message")), "fix <b>it</b>");
    json_decref(a);
    a = kiln_audit_webhook("gitlab", "acme", "app", NULL, "Push Hook", gl);
    assert_string_equal(json_string_value(json_object_get(a, "pusher")), "carol");
    assert_string_equal(json_string_value(json_object_get(a, "commit_author")), "Eve");
    assert_string_equal(json_string_value(json_object_get(a, "commit_message")), "m2");
    assert_null(json_object_get(a, "delivery"));
    json_decref(a);

    /* a long (multibyte) name is cut at a character boundary, still valid text */
    for (size_t i = 0; i + 2 < 1000; i += 2)
        memcpy(longname + i, "\xc3\xa9", 2);
    longname[998] = '\0';
    json_object_set_new(json_object_get(gh, "pusher"), "name", json_string(longname));
    a = kiln_audit_webhook("github", NULL, NULL, NULL, NULL, gh);
    assert_int_equal(json_string_length(json_object_get(a, "pusher")), 200);
    json_decref(a);
    json_decref(gh);
    json_decref(gl);
}

static void test_audit_keys(void **state)
{
    (void)state;
    kiln_error_t err = {0};
    char big[KILN_AUDIT_KEY_MAX + 2];
    _cleanup_free_ char *k1 = kiln_audit_dedupe_key("github", "app", "d-1");
    _cleanup_free_ char *k2 = kiln_audit_dedupe_key("github", "other", "d-1");

    assert_int_equal(kiln_audit_check_key("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab", &err), 0);
    assert_int_equal(kiln_audit_check_key("X-GitHub-Delivery", "", &err), -1);
    assert_non_null(strstr(err.msg, "X-GitHub-Delivery"));
    assert_int_equal(kiln_audit_check_key("Idempotency-Key", "a b", &err), -1);
    assert_non_null(strstr(err.msg, "Idempotency-Key"));
    assert_int_equal(kiln_audit_check_key("Idempotency-Key", "a\x01", &err), -1);
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(kiln_audit_check_key("Idempotency-Key", big, &err), -1);
    big[KILN_AUDIT_KEY_MAX] = '\0';
    assert_int_equal(kiln_audit_check_key("Idempotency-Key", big, &err), 0);
    /* scoped: the same delivery id of another project is another key */
    assert_string_not_equal(k1, k2);
    assert_null(kiln_audit_dedupe_key("github", "app", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_fields),   cmocka_unit_test(test_format_no_query),
        cmocka_unit_test(test_format_escaping), cmocka_unit_test(test_format_long_path),
        cmocka_unit_test(test_request_ids),     cmocka_unit_test(test_log_file),
        cmocka_unit_test(test_log_threads),     cmocka_unit_test(test_audit_token),
        cmocka_unit_test(test_audit_webhook),   cmocka_unit_test(test_audit_keys),
        cmocka_unit_test(test_retention_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
