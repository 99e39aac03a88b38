/* Unit tests for sandbox/: names, defaults, a step's output and exit status
 * through the log sink, limits, the walking differ and the seccomp filter. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/layer_write.h"
#include "sandbox/cgroup.h"
#include "sandbox/diff.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static char *tmpdir;
static char *rootfs;

/* Whether steps can run here: root, busybox, and a usable isolation. */
static int can_run(void)
{
    return geteuid() == 0 && access("/bin/busybox", X_OK) == 0 && rootfs != NULL;
}

static int make_rootfs(void)
{
    static const char *const apps[] = {"sh", "echo", "cat", "true", "sleep", "head", "tr", "id"};
    char p[4096];

    rootfs = kiln_xasprintf("%s/rootfs", tmpdir);
    snprintf(p, sizeof(p), "%s/bin", rootfs);
    if (kiln_fs_mkdir_p(p, 0755, NULL) < 0)
        return -1;
    snprintf(p, sizeof(p), "cp /bin/busybox %s/bin/busybox", rootfs);
    if (system(p) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(apps) / sizeof(apps[0]); i++) {
        snprintf(p, sizeof(p), "%s/bin/%s", rootfs, apps[i]);
        if (symlink("busybox", p) < 0)
            return -1;
    }
    snprintf(p, sizeof(p), "%s/etc", rootfs);
    return mkdir(p, 0755);
}

static int setup_all(void **state)
{
    kiln_error_t err = {0};
    (void)state;
    if (kiln_fs_mkdtemp("/var/tmp", "kiln-test-sandbox-", &tmpdir, &err) < 0)
        return -1;
    if (geteuid() == 0 && access("/bin/busybox", X_OK) == 0 && make_rootfs() < 0) {
        free(rootfs);
        rootfs = NULL;
    }
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    kiln_fs_rm_rf(tmpdir, NULL);
    free(tmpdir);
    free(rootfs);
    return 0;
}

static void test_names(void **state)
{
    kiln_isolation_t iso;
    kiln_net_mode_t net;
    (void)state;
    assert_int_equal(kiln_isolation_parse("chroot", &iso), 0);
    assert_int_equal(iso, KILN_ISOLATION_CHROOT);
    assert_string_equal(kiln_isolation_name(KILN_ISOLATION_SANDBOX), "sandbox");
    assert_int_equal(kiln_isolation_parse("docker", &iso), -1);
    assert_int_equal(kiln_net_mode_parse("none", &net), 0);
    assert_int_equal(net, KILN_NET_NONE);
    assert_string_equal(kiln_net_mode_name(KILN_NET_NAT), "nat");
    assert_int_equal(kiln_net_mode_parse("bridge", &net), -1);
}

static void test_defaults(void **state)
{
    kiln_step_t s;
    (void)state;
    kiln_step_init(&s);
    assert_int_equal(s.network, KILN_NET_NAT);
    assert_int_equal(s.isolation, KILN_ISOLATION_AUTO);
    assert_int_equal(s.seccomp, KILN_SECCOMP_DEFAULT);
    assert_true(s.caps == KILN_CAPS_DEFAULT);
    /* Docker's default set has no CAP_SYS_ADMIN (21) nor CAP_NET_ADMIN (12). */
    assert_false(s.caps & (1ull << 21));
    assert_false(s.caps & (1ull << 12));
    /* nor CAP_NET_RAW (13): no raw sockets; ping uses ICMP datagram sockets */
    assert_false(s.caps & (1ull << 13));
    assert_string_equal(s.cwd, "/");
    assert_int_equal(s.stdin_fd, -1);
}

static void test_no_command(void **state)
{
    kiln_step_t s;
    kiln_step_result_t res;
    kiln_error_t err = {0};
    (void)state;
    kiln_step_init(&s);
    assert_int_equal(kiln_sandbox_run(&s, &res, &err), -1);
    assert_non_null(strstr(err.msg, "command"));
}

/* Without user namespaces (simulated), `auto` fails saying so and naming the
 * explicit alternative; it never falls back to chroot by itself. */
static void test_auto_never_falls_back_to_chroot(void **state)
{
    static const char *const argv[] = {"true", NULL};
    const char *lowers[] = {rootfs};
    kiln_step_t s;
    kiln_step_result_t res;
    kiln_error_t err = {0};
    (void)state;
    if (!can_run())
        skip();
    kiln_step_init(&s);
    s.lowers = lowers;
    s.n_lowers = 1;
    s.argv = argv;
    s.network = KILN_NET_NONE;
    setenv("KILN_SANDBOX_NO_NAMESPACES", "1", 1);
    assert_int_equal(kiln_sandbox_run(&s, &res, &err), -1);
    unsetenv("KILN_SANDBOX_NO_NAMESPACES");
    assert_non_null(strstr(err.msg, "user namespaces are unavailable"));
    assert_non_null(strstr(err.msg, "--isolation chroot"));
    assert_non_null(strstr(err.msg, "real root"));
    /* with them, auto is the sandbox */
    memset(&res, 0, sizeof(res));
    assert_int_equal(kiln_sandbox_run(&s, &res, &err), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.isolation, KILN_ISOLATION_SANDBOX);
}

typedef struct captured {
    kiln_buf_t out, errs;
    int lines, bad_ts;
} captured_t;

static void sink(void *opaque, kiln_log_stream_t stream, const struct timespec *ts,
                 const char *line, size_t len)
{
    captured_t *c = opaque;
    if (ts->tv_sec < 1600000000)
        c->bad_ts++;
    if (stream == KILN_LOG_SYSTEM)
        return;
    c->lines++;
    kiln_buf_append(stream == KILN_LOG_STDOUT ? &c->out : &c->errs, line, len, NULL);
    kiln_buf_append(stream == KILN_LOG_STDOUT ? &c->out : &c->errs, "|", 1, NULL);
}

/* Runs argv in the busybox rootfs with mounts (may be NULL); fresh upper/work each time. */
static int run_step_mounts(const char *const *argv, kiln_limits_t *lim, const kiln_mount_t *mounts,
                           size_t n_mounts, captured_t *c, kiln_step_result_t *res,
                           kiln_error_t *err)
{
    static int n;
    _cleanup_free_ char *dir =
        kiln_xasprintf("%s/step%d", tmpdir, __atomic_fetch_add(&n, 1, __ATOMIC_RELAXED));
    _cleanup_free_ char *upper = kiln_xasprintf("%s/upper", dir);
    _cleanup_free_ char *work = kiln_xasprintf("%s/work", dir);
    const char *lowers[] = {rootfs};
    kiln_step_t s;

    if (kiln_fs_mkdir_p(upper, 0755, err) < 0 || kiln_fs_mkdir_p(work, 0755, err) < 0)
        return -1;
    kiln_step_init(&s);
    s.lowers = lowers;
    s.n_lowers = 1;
    s.upper = upper;
    s.work = work;
    s.argv = argv;
    s.network = KILN_NET_NONE;
    s.mounts = mounts;
    s.n_mounts = n_mounts;
    if (lim)
        s.limits = *lim;
    s.log = sink;
    s.log_opaque = c;
    return kiln_sandbox_run(&s, res, err);
}

/* Runs argv in the busybox rootfs; fresh upper/work each time. */
static int run_step(const char *const *argv, kiln_limits_t *lim, captured_t *c,
                    kiln_step_result_t *res, kiln_error_t *err)
{
    return run_step_mounts(argv, lim, NULL, 0, c, res, err);
}

static void test_output_and_status(void **state)
{
    static const char *const argv[] = {"sh", "-c", "echo one; echo two >&2; echo three; exit 7",
                                       NULL};
    captured_t c;
    kiln_step_result_t res;
    kiln_error_t err = {0};
    (void)state;
    if (!can_run())
        skip();
    kiln_buf_init(&c.out, 1 << 20);
    kiln_buf_init(&c.errs, 1 << 20);
    c.lines = c.bad_ts = 0;
    assert_int_equal(run_step(argv, NULL, &c, &res, &err), 0);
    assert_int_equal(res.exit_code, 7);
    assert_int_equal(res.signal, 0);
    assert_string_equal(c.out.data, "one|three|");
    assert_string_equal(c.errs.data, "two|");
    assert_int_equal(c.bad_ts, 0);
    kiln_buf_free(&c.out);
    kiln_buf_free(&c.errs);
}

static void test_long_line_is_cut(void **state)
{
    /* 100000 bytes without a newline: two pieces (64 KiB + the rest). */
    static const char *const argv[] = {"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x", NULL};
    captured_t c;
    kiln_step_result_t res;
    kiln_error_t err = {0};
    (void)state;
    if (!can_run())
        skip();
    kiln_buf_init(&c.out, 1 << 20);
    kiln_buf_init(&c.errs, 1 << 20);
    c.lines = c.bad_ts = 0;
    assert_int_equal(run_step(argv, NULL, &c, &res, &err), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(c.lines, 2);
    assert_int_equal(c.out.len, 100000 + 2);
    kiln_buf_free(&c.out);
    kiln_buf_free(&c.errs);
}

static void test_timeout_and_signal(void **state)
{
    static const char *const sleeper[] = {"sleep", "30", NULL};
    static const char *const killer[] = {"sh", "-c", "kill -TERM $$", NULL};
    kiln_limits_t lim = {.timeout_ms = 300};
    captured_t c = {0};
    kiln_step_result_t res;
    kiln_error_t err = {0};
    (void)state;
    if (!can_run())
        skip();
    kiln_buf_init(&c.out, 4096);
    kiln_buf_init(&c.errs, 4096);
    assert_int_equal(run_step(sleeper, &lim, &c, &res, &err), 0);
    assert_true(res.timed_out);
    assert_int_equal(res.exit_code, 137);
    assert_int_equal(run_step(killer, NULL, &c, &res, &err), 0);
    assert_false(res.timed_out);
    assert_int_equal(res.signal, 15);
    assert_int_equal(res.exit_code, 143);
    kiln_buf_free(&c.out);
    kiln_buf_free(&c.errs);
}

/* Runs argv under a 1 MiB disk limit (and a 60 s timeout it should never reach), with a
 * cache mount of cache_dir on /cache when it is not NULL. */
static void run_disk_limited(const char *const *argv, const char *cache_dir,
                             kiln_step_result_t *res)
{
    kiln_limits_t lim = {.timeout_ms = 60000, .disk = 1 << 20};
    kiln_mount_t cache = {.type = KILN_MOUNT_CACHE, .src = cache_dir, .dst = "/cache"};
    captured_t c = {0};
    kiln_error_t err = {0};

    kiln_buf_init(&c.out, 1 << 16);
    kiln_buf_init(&c.errs, 1 << 16);
    assert_int_equal(run_step_mounts(argv, &lim, &cache, cache_dir ? 1 : 0, &c, res, &err), 0);
    kiln_buf_free(&c.out);
    kiln_buf_free(&c.errs);
}

/* A disk limit: a step that keeps writing is stopped (not by its timeout); one that writes
 * past it faster than a check finishes is caught at its end; no single file grows past it
 * (RLIMIT_FSIZE); a step within it is left alone. */
static void test_disk_limit(void **state)
{
    static const char *const flood[] = {
        "sh", "-c", "i=0; while :; do head -c 262144 /dev/zero > /f$i; i=$((i+1)); done", NULL};
    static const char *const burst[] = {
        "sh", "-c", "head -c 700000 /dev/urandom > /a && head -c 700000 /dev/urandom > /b", NULL};
    static const char *const big[] = {"sh", "-c", "head -c 3000000 /dev/zero > /big; exit 0", NULL};
    static const char *const small[] = {"sh", "-c", "head -c 100000 /dev/urandom > /a", NULL};
    static const char *const cached[] = {
        "sh", "-c", "i=0; while :; do head -c 262144 /dev/zero > /cache/f$i; i=$((i+1)); done",
        NULL};
    _cleanup_free_ char *cache_dir = NULL;
    kiln_step_result_t res;
    (void)state;
    if (!can_run())
        skip();
    run_disk_limited(flood, NULL, &res);
    assert_true(res.disk_exceeded);
    assert_false(res.timed_out);
    assert_int_equal(res.exit_code, 137);
    run_disk_limited(burst, NULL, &res);
    assert_true(res.disk_exceeded);
    /* the file stops at 1 MiB (SIGXFSZ): the step's root then holds about the limit */
    run_disk_limited(big, NULL, &res);
    assert_int_equal(res.exit_code, 0);
    assert_false(res.timed_out);
    run_disk_limited(small, NULL, &res);
    assert_false(res.disk_exceeded);
    assert_int_equal(res.exit_code, 0);
    /* a cache mount's growth counts (what it held before does not) */
    cache_dir = kiln_xasprintf("%s/cache", tmpdir);
    assert_int_equal(kiln_fs_mkdir_p(cache_dir, 0755, NULL), 0);
    run_disk_limited(small, cache_dir, &res);
    assert_false(res.disk_exceeded);
    run_disk_limited(cached, cache_dir, &res);
    assert_true(res.disk_exceeded);
    assert_false(res.timed_out);
}

typedef struct worker {
    int index;
    int ok;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char script[64];
    const char *argv[] = {"sh", "-c", script, NULL};
    captured_t c = {0};
    kiln_step_result_t res;
    kiln_error_t err = {0};
    char want[32];

    snprintf(script, sizeof(script), "echo step-%d; exit %d", w->index, 10 + w->index);
    kiln_buf_init(&c.out, 4096);
    kiln_buf_init(&c.errs, 4096);
    snprintf(want, sizeof(want), "step-%d|", w->index);
    for (int i = 0; i < 3; i++) {
        c.out.len = 0;
        if (run_step(argv, NULL, &c, &res, &err) < 0 || res.exit_code != 10 + w->index ||
            c.out.data == NULL || strcmp(c.out.data, want) != 0) {
            w->ok = 0;
            break;
        }
        c.out.data[0] = '\0';
        w->ok = 1;
    }
    kiln_buf_free(&c.out);
    kiln_buf_free(&c.errs);
    return NULL;
}

/* Steps run from several threads at once (a server's workers). */
static void test_concurrent_steps(void **state)
{
    pthread_t t[4];
    worker_t w[4];
    (void)state;
    if (!can_run())
        skip();
    for (int i = 0; i < 4; i++) {
        w[i].index = i;
        w[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(w[i].ok);
    }
}

static void test_seccomp_prepare(void **state)
{
    kiln_error_t err = {0};
    (void)state;
    assert_int_equal(kiln_seccomp_prepare(KILN_SECCOMP_DEFAULT, 0, &err), 0);
    /* Twice is free (cached); the chroot variant too. */
    assert_int_equal(kiln_seccomp_prepare(KILN_SECCOMP_DEFAULT, 0, &err), 0);
    assert_int_equal(kiln_seccomp_prepare(KILN_SECCOMP_DEFAULT, 1, &err), 0);
    assert_int_equal(kiln_seccomp_prepare(KILN_SECCOMP_UNCONFINED, 0, &err), 0);
}

static void test_cgroup(void **state)
{
    kiln_cgroup_t cg;
    kiln_error_t err = {0};
    char *dir;
    (void)state;
    assert_int_equal(kiln_cgroup_create(&cg, 0, 0, &err), 0);
    assert_null(cg.dirs[0]);
    assert_null(cg.dirs[2]);
    assert_int_equal(kiln_cgroup_create(&cg, 64 << 20, 32, &err), 0);
    /* Each limit says what enforces it, or why no cgroup does. */
    assert_true(cg.has_memory == (kiln_cgroup_mechanism(&cg, 0) != NULL));
    assert_true(cg.has_pids == (kiln_cgroup_mechanism(&cg, 1) != NULL));
    assert_true((cg.has_memory && cg.has_pids) == (cg.why_not[0] == '\0'));
    if (!cg.has_memory && !cg.has_pids) {
        kiln_cgroup_destroy(&cg);
        skip();
    }
    dir = kiln_xstrdup(cg.dirs[0] ? cg.dirs[0] : cg.dirs[1] ? cg.dirs[1] : cg.dirs[2]);
    assert_non_null(strstr(dir, "/kiln-"));
    assert_int_equal(access(dir, F_OK), 0);
    assert_false(kiln_cgroup_oom_killed(&cg));
    kiln_cgroup_destroy(&cg);
    assert_int_equal(access(dir, F_OK), -1);
    free(dir);
}

/* The step's cgroup v2 (on a hybrid host the unified hierarchy, without
 * controllers): a process added to it is listed there and killed with the
 * cgroup, which is removed; a cgroup of a dead kiln is swept. */
static void test_cgroup_v2(void **state)
{
    kiln_cgroup_t cg;
    kiln_error_t err = {0};
    _cleanup_free_ char *procs = NULL, *data = NULL, *dead = NULL;
    char pidtext[32];
    size_t len;
    pid_t child, gone;
    int st;
    (void)state;
    assert_int_equal(kiln_cgroup_create(&cg, 0, 16, &err), 0);
    if (!cg.v2) {
        kiln_cgroup_destroy(&cg);
        skip(); /* no writable cgroup2 hierarchy */
    }
    assert_non_null(strstr(cg.dirs[2], "/kiln-"));
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    assert_int_equal(kiln_cgroup_add(&cg, child, &err), 0);
    procs = kiln_xasprintf("%s/cgroup.procs", cg.dirs[2]);
    assert_int_equal(kiln_fs_read_file(procs, 4096, &data, &len, &err), 0);
    snprintf(pidtext, sizeof(pidtext), "%d\n", (int)child);
    assert_non_null(strstr(data, pidtext));
    /* A dead kiln's cgroup next to it: pid of a process that is gone. */
    gone = fork();
    if (gone == 0)
        _exit(0);
    assert_int_equal(waitpid(gone, NULL, 0), gone);
    dead = kiln_xasprintf("%.*s/kiln-%d-0", (int)(strrchr(cg.dirs[2], '/') - cg.dirs[2]),
                          cg.dirs[2], (int)gone);
    assert_int_equal(mkdir(dead, 0755), 0);
    assert_true(kiln_cgroup_sweep(&err) >= 1);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(cg.dirs[2], F_OK), 0); /* ours: kiln is alive */

    kiln_cgroup_destroy(&cg);
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_null(cg.dirs[2]);
    assert_int_equal(access(procs, F_OK), -1);
}

static int buf_sink(void *ctx, const void *p, size_t n, kiln_error_t *err)
{
    return kiln_buf_append(ctx, p, n, err);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, name);
    assert_int_equal(kiln_fs_write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

static int has_entry(const kiln_buf_t *b, const char *name)
{
    /* A ustar header starts with the entry name, NUL-padded, at a 512 boundary. */
    size_t n = strlen(name);
    for (size_t off = 0; off + 512 <= b->len; off += 512) {
        if (memcmp(b->data + off, name, n) == 0 && b->data[off + n] == '\0')
            return 1;
    }
    return 0;
}

static void test_walking_differ(void **state)
{
    _cleanup_free_ char *base = kiln_xasprintf("%s/diff-base", tmpdir);
    _cleanup_free_ char *changed = kiln_xasprintf("%s/diff-changed", tmpdir);
    _cleanup_free_ char *p = NULL;
    kiln_layer_opts_t opts;
    kiln_layer_writer_t *w = NULL;
    kiln_layer_info_t info;
    kiln_buf_t out;
    kiln_sink_t s = {buf_sink, &out};
    kiln_error_t err = {0};
    (void)state;

    kiln_buf_init(&out, 1 << 24);
    p = kiln_xasprintf("%s/keep/deep", base);
    assert_int_equal(kiln_fs_mkdir_p(p, 0755, &err), 0);
    free(p);
    p = kiln_xasprintf("%s/gone", base);
    assert_int_equal(mkdir(p, 0755), 0);
    write_file(base, "keep/deep/same", "same");
    write_file(base, "keep/edit", "old");
    write_file(base, "gone/f", "x");
    write_file(base, "file-then-dir", "f");
    assert_int_equal(kiln_diff_copy_tree(base, changed, &err), 0);

    write_file(changed, "keep/edit", "new content");
    write_file(changed, "added", "a");
    free(p);
    p = kiln_xasprintf("%s/gone", changed);
    assert_int_equal(kiln_fs_rm_rf(p, &err), 0);
    free(p);
    p = kiln_xasprintf("%s/file-then-dir", changed);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    write_file(changed, "file-then-dir/inner", "i");

    kiln_layer_opts_init(&opts);
    opts.compression = KILN_COMPRESSION_NONE;
    assert_int_equal(kiln_layer_writer_new(&opts, &s, &w, &err), 0);
    assert_int_equal(kiln_diff_write(base, changed, w, &err), 0);
    assert_int_equal(kiln_layer_writer_finish(w, &info, &err), 0);
    kiln_layer_writer_free(w);

    assert_true(has_entry(&out, "added"));
    assert_true(has_entry(&out, "keep/"));
    assert_true(has_entry(&out, "keep/edit"));
    assert_true(has_entry(&out, ".wh.gone"));
    assert_true(has_entry(&out, "file-then-dir/"));
    assert_true(has_entry(&out, "file-then-dir/.wh..wh..opq"));
    assert_true(has_entry(&out, "file-then-dir/inner"));
    assert_false(has_entry(&out, "keep/deep/"));
    assert_false(has_entry(&out, "keep/deep/same"));
    assert_false(has_entry(&out, "gone/f"));
    kiln_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_no_command),
        cmocka_unit_test(test_auto_never_falls_back_to_chroot),
        cmocka_unit_test(test_output_and_status),
        cmocka_unit_test(test_long_line_is_cut),
        cmocka_unit_test(test_timeout_and_signal),
        cmocka_unit_test(test_disk_limit),
        cmocka_unit_test(test_concurrent_steps),
        cmocka_unit_test(test_seccomp_prepare),
        cmocka_unit_test(test_cgroup),
        cmocka_unit_test(test_cgroup_v2),
        cmocka_unit_test(test_walking_differ),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
