/* Unit tests: the stat cache (engine/statcache.c): hashed lookups of many
 * paths, one file per context identity, racy entries, the checkout's notes,
 * entries of vanished files dropped on rescan, the total cap evicting the
 * least recently used contexts, damaged/truncated/hostile files refused as a
 * whole (never followed through a link), and concurrent writers never leaving
 * a torn file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/statcache.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* A context directory whose files are older than the racy window (made once:
 * the wait is paid once for all tests). */
static char *g_ctx;

static char *tmpdir(void)
{
    char tpl[] = "/tmp/kiln-statcache-XXXXXX";
    assert_non_null(mkdtemp(tpl));
    return kiln_xstrdup(tpl);
}

static void write_file(const char *dir, const char *rel, const char *text)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, rel);
    assert_int_equal(kiln_fs_write_file_atomic(p, text, strlen(text), 0644, NULL), 0);
}

static int group_setup(void **state)
{
    (void)state;
    g_ctx = tmpdir();
    write_file(g_ctx, "a.txt", "alpha");
    write_file(g_ctx, "b.txt", "bravo");
    {
        _cleanup_free_ char *sub = kiln_xasprintf("%s/sub", g_ctx);
        assert_int_equal(mkdir(sub, 0755), 0);
    }
    write_file(g_ctx, "sub/c.txt", "charlie");
    write_file(g_ctx, "sub/d.txt", "delta");
    sleep((unsigned)(KILN_STATCACHE_RACY_NS / 1000000000) + 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kiln_fs_rm_rf(g_ctx, NULL);
    free(g_ctx);
    return 0;
}

/* Hashes ctx/rel through c; checks the digest is the content's. */
static void hash_rel(kiln_statcache_t *c, const char *ctx, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", ctx, rel);
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
    kiln_digest_t d, want;
    struct stat st;
    size_t len;

    assert_true(fd >= 0);
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(kiln_statcache_hash(c, rel, fd, &st, &d, NULL), 0);
    assert_int_equal(kiln_fs_read_file(p, 1 << 20, &text, &len, NULL), 0);
    kiln_digest_bytes(text, len, &want);
    assert_string_equal(d.hex, want.hex);
}

static kiln_statcache_t *open_cache(const char *dir, const char *id, int64_t max)
{
    kiln_statcache_t *c = NULL;
    kiln_error_t err = {0};
    assert_int_equal(kiln_statcache_open(dir, id, max, &c, &err), 0);
    return c;
}

static kiln_statcache_stats_t stats(const kiln_statcache_t *c)
{
    kiln_statcache_stats_t s;
    kiln_statcache_stats(c, &s);
    return s;
}

/* The only context file in dir (malloc'ed path), or NULL. */
static char *only_file(const char *dir)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    char *found = NULL;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        free(found);
        found = kiln_xasprintf("%s/%s", dir, e->d_name);
    }
    assert_true(n <= 1);
    return found;
}

static size_t count_files(const char *dir)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' || strncmp(e->d_name, ".tmp-", 5) == 0;
    return n;
}

/* Saves the cache (asserting success) and frees it. */
static void save_close(kiln_statcache_t *c)
{
    assert_int_equal(kiln_statcache_save(c, NULL), 0);
    kiln_statcache_free(c);
}

static void test_lookup(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/build/statcache", root);
    kiln_statcache_t *c;
    struct stat sb;
    (void)state;

    c = open_cache(dir, "ctx one", 0);
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    hash_rel(c, g_ctx, "a.txt");
    hash_rel(c, g_ctx, "sub/c.txt");
    assert_int_equal(stats(c).hashed, 2);
    assert_int_equal(stats(c).hits, 0);
    save_close(c);

    c = open_cache(dir, "ctx one", 0);
    assert_int_equal(stats(c).loaded, 2);
    hash_rel(c, g_ctx, "a.txt");
    hash_rel(c, g_ctx, "sub/c.txt");
    hash_rel(c, g_ctx, "b.txt");
    assert_int_equal(stats(c).hits, 2);
    assert_int_equal(stats(c).hashed, 1);
    save_close(c);

    /* another identity: its own file, nothing shared */
    c = open_cache(dir, "ctx two", 0);
    assert_int_equal(stats(c).loaded, 0);
    hash_rel(c, g_ctx, "a.txt");
    assert_int_equal(stats(c).hashed, 1);
    kiln_statcache_free(c);
    kiln_fs_rm_rf(root, NULL);
}

/* Many paths: every one found again (the table grows past many sizes). */
static void test_many(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    _cleanup_free_ char *file = kiln_xasprintf("%s/a.txt", g_ctx);
    _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
    kiln_statcache_t *c = open_cache(dir, "many", 0);
    kiln_digest_t d;
    struct stat st;
    enum { N = 30000 };
    (void)state;

    assert_int_equal(lstat(file, &st), 0);
    for (int i = 0; i < N; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "d%d/f%d", i % 97, i);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        assert_int_equal(kiln_statcache_hash(c, rel, fd, &st, &d, NULL), 0);
    }
    save_close(c);
    c = open_cache(dir, "many", 0);
    assert_int_equal(stats(c).loaded, N);
    for (int i = 0; i < N; i++) {
        char rel[64];
        snprintf(rel, sizeof(rel), "d%d/f%d", i % 97, i);
        assert_int_equal(kiln_statcache_hash(c, rel, fd, &st, &d, NULL), 0);
    }
    assert_int_equal(stats(c).hits, N);
    assert_int_equal(stats(c).hashed, 0);
    kiln_statcache_free(c);
    kiln_fs_rm_rf(root, NULL);
}

/* A file changed (same size) is a miss; one just written is hashed again
 * until it is older than the racy window. */
static void test_changed_and_racy(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    _cleanup_free_ char *ctx = tmpdir();
    kiln_statcache_t *c;
    (void)state;

    write_file(ctx, "x", "one");
    c = open_cache(dir, "racy", 0);
    hash_rel(c, ctx, "x");
    save_close(c);

    c = open_cache(dir, "racy", 0);
    hash_rel(c, ctx, "x"); /* changed a moment ago: not trusted yet */
    assert_int_equal(stats(c).hashed, 1);
    write_file(ctx, "x", "two"); /* same size, new content */
    hash_rel(c, ctx, "x");
    assert_int_equal(stats(c).hashed, 2);
    assert_int_equal(stats(c).hits, 0);
    kiln_statcache_free(c);
    kiln_fs_rm_rf(root, NULL);
    kiln_fs_rm_rf(ctx, NULL);
}

/* kiln checkout's notes: a blob seen before keeps its digest under the new
 * file's stat; a new blob is hashed by the build once. */
static void test_note(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    unsigned char oid1[KILN_STATCACHE_OID_LEN] = {1}, oid2[KILN_STATCACHE_OID_LEN] = {2};
    kiln_statcache_t *c;
    (void)state;

    for (int round = 0; round < 3; round++) {
        _cleanup_free_ char *ctx = tmpdir(); /* a fresh checkout each time */
        _cleanup_free_ char *p = kiln_xasprintf("%s/f", ctx);
        struct stat st;
        write_file(ctx, "f", round < 2 ? "same" : "diff");
        assert_int_equal(lstat(p, &st), 0);
        c = open_cache(dir, "git repo sub", 0);
        kiln_statcache_note(c, "f", &st, round < 2 ? oid1 : oid2);
        assert_int_equal(stats(c).kept, round == 1 ? 1 : 0);
        kiln_statcache_scanned(c, "");
        save_close(c);

        c = open_cache(dir, "git repo sub", 0);
        hash_rel(c, ctx, "f"); /* written by kiln: no racy wait */
        assert_int_equal(stats(c).hits, round == 1 ? 1 : 0);
        save_close(c);
        kiln_fs_rm_rf(ctx, NULL);
    }
    kiln_fs_rm_rf(root, NULL);
}

/* Entries under a rescanned subtree that were not looked up go on save. */
static void test_rescan_drop(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    static const char *const all[] = {"a.txt", "b.txt", "sub/c.txt", "sub/d.txt"};
    kiln_statcache_t *c = open_cache(dir, "drop", 0);
    (void)state;

    for (size_t i = 0; i < 4; i++)
        hash_rel(c, g_ctx, all[i]);
    save_close(c);

    /* a COPY of sub/ that no longer has d.txt */
    c = open_cache(dir, "drop", 0);
    hash_rel(c, g_ctx, "sub/c.txt");
    kiln_statcache_scanned(c, "sub");
    assert_int_equal(kiln_statcache_save(c, NULL), 0);
    assert_int_equal(stats(c).dropped, 1);
    kiln_statcache_free(c);

    /* "subway" is not under "sub"; the whole context rescanned drops the rest */
    c = open_cache(dir, "drop", 0);
    assert_int_equal(stats(c).loaded, 3);
    hash_rel(c, g_ctx, "a.txt");
    kiln_statcache_scanned(c, "");
    assert_int_equal(kiln_statcache_save(c, NULL), 0);
    assert_int_equal(stats(c).dropped, 2);
    kiln_statcache_free(c);
    c = open_cache(dir, "drop", 0);
    assert_int_equal(stats(c).loaded, 1);
    kiln_statcache_free(c);
    kiln_fs_rm_rf(root, NULL);
}

/* Ages the context file of id in dir to t seconds since the epoch. */
static void age(const char *dir, const char *id, time_t t)
{
    kiln_digest_t d;
    _cleanup_free_ char *p = NULL;
    struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
    kiln_digest_bytes(id, strlen(id), &d);
    p = kiln_xasprintf("%s/%s.sc", dir, d.hex);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static bool has_context(const char *dir, const char *id)
{
    kiln_digest_t d;
    _cleanup_free_ char *p = NULL;
    kiln_digest_bytes(id, strlen(id), &d);
    p = kiln_xasprintf("%s/%s.sc", dir, d.hex);
    return access(p, F_OK) == 0;
}

static uint64_t save_one(const char *dir, const char *id, int64_t max)
{
    kiln_statcache_t *c = open_cache(dir, id, max);
    uint64_t ev;
    hash_rel(c, g_ctx, "a.txt");
    assert_int_equal(kiln_statcache_save(c, NULL), 0);
    ev = stats(c).evicted;
    kiln_statcache_free(c);
    return ev;
}

/* Over the cap, the least recently used contexts go (a use, even a read,
 * counts); a context larger than the cap alone is not kept. */
static void test_cap_lru(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    _cleanup_free_ char *f = NULL;
    kiln_statcache_t *c;
    struct stat sb;
    int64_t cap;
    (void)state;

    assert_int_equal(save_one(dir, "ctx-1", 0), 0);
    f = only_file(dir);
    assert_int_equal(stat(f, &sb), 0);
    cap = sb.st_size * 3 + sb.st_size / 2; /* room for three */
    assert_int_equal(save_one(dir, "ctx-2", cap), 0);
    assert_int_equal(save_one(dir, "ctx-3", cap), 0);
    age(dir, "ctx-1", 1000);
    age(dir, "ctx-2", 2000);
    age(dir, "ctx-3", 3000);
    /* ctx-1 is read (used) again: ctx-2 is now the least recently used */
    c = open_cache(dir, "ctx-1", cap);
    assert_int_equal(stats(c).loaded, 1);
    kiln_statcache_free(c);
    assert_int_equal(save_one(dir, "ctx-4", cap), 1);
    assert_true(has_context(dir, "ctx-1"));
    assert_false(has_context(dir, "ctx-2"));
    assert_true(has_context(dir, "ctx-3"));
    assert_true(has_context(dir, "ctx-4"));
    /* a cap below one file: nothing kept, this one included */
    save_one(dir, "ctx-5", 10);
    assert_int_equal(count_files(dir), 0);
    kiln_fs_rm_rf(root, NULL);
}

/* A buffer with a valid checksum around body (for hostile contents). */
static unsigned char *with_sum(const unsigned char *body, size_t n, size_t *len)
{
    unsigned char *d = kiln_xzalloc(n + 32);
    kiln_digest_t dg;
    memcpy(d, body, n);
    kiln_digest_bytes(body, n, &dg);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(dg.hex + 2 * i, "%2x", &v);
        d[n + i] = (unsigned char)v;
    }
    *len = n + 32;
    return d;
}

static void test_damaged(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    _cleanup_free_ char *file = NULL, *data = NULL;
    kiln_statcache_t *c = open_cache(dir, "dmg", 0);
    kiln_error_t err = {0};
    size_t len, n = 0;
    (void)state;

    hash_rel(c, g_ctx, "a.txt");
    hash_rel(c, g_ctx, "sub/c.txt");
    save_close(c);
    file = only_file(dir);
    assert_int_equal(kiln_fs_read_file(file, 1 << 20, &data, &len, NULL), 0);
    assert_int_equal(kiln_statcache_check(data, len, "dmg", &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kiln_statcache_check(data, len, "other", NULL, &err), -1);
    assert_non_null(strstr(err.msg, "another context"));

    /* every truncation and every flipped byte is refused */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(kiln_statcache_check(data, cut, "dmg", NULL, &err), -1);
    for (size_t i = 0; i < len; i++) {
        data[i] ^= 0x20;
        assert_int_equal(kiln_statcache_check(data, len, "dmg", NULL, &err), -1);
        data[i] ^= 0x20;
    }

    /* on disk: a truncated file loads empty, is flagged and replaced on save */
    assert_int_equal(truncate(file, (off_t)len - 7), 0);
    c = open_cache(dir, "dmg", 0);
    assert_int_equal(stats(c).damaged, 1);
    assert_int_equal(stats(c).loaded, 0);
    hash_rel(c, g_ctx, "a.txt");
    assert_int_equal(stats(c).hashed, 1);
    save_close(c);
    c = open_cache(dir, "dmg", 0);
    assert_int_equal(stats(c).damaged, 0);
    assert_int_equal(stats(c).loaded, 1);
    kiln_statcache_free(c);
    kiln_fs_rm_rf(root, NULL);
}

/* Builds a one-entry file of id "h" with the given fields. */
static unsigned char *craft(uint32_t version, uint64_t count, uint8_t flags, const char *path,
                            size_t plen, size_t *len)
{
    unsigned char body[8192] = {0};
    size_t p = 0;
    memcpy(body, "kilnstc\n", 8);
    memcpy(body + 8, &version, 4);
    body[12] = 1;
    memcpy(body + 16, &count, 8);
    body[24] = 'h';
    p = 25;
    for (uint64_t i = 0; i < (count > 2 ? 2 : count); i++) {
        body[p + 100] = flags;
        body[p + 102] = (unsigned char)(plen & 0xff);
        body[p + 103] = (unsigned char)(plen >> 8);
        memcpy(body + p + 104, path, plen < 4096 ? plen : 4096);
        p += 104 + (plen < 4096 ? plen : 4096) + 1;
    }
    return with_sum(body, p, len);
}

static void test_hostile(void **state)
{
    struct {
        uint32_t version;
        uint64_t count;
        uint8_t flags;
        const char *path;
        const char *why;
    } bad[] = {
        {3, 1, 1, "a", "version"},
        {2, 1, 1, "../x", "bad path"},
        {2, 1, 1, "/etc/passwd", "bad path"},
        {2, 1, 1, "a//b", "bad path"},
        {2, 1, 1, "a/./b", "bad path"},
        {2, 1, 1, "", "out of bounds"},
        {2, 1, 0x80, "a", "flags"},
        {2, 1ULL << 40, 1, "a", "out of bounds"},
        {2, 2, 1, "same", "repeated"},
    };
    kiln_error_t err = {0};
    size_t len;
    (void)state;

    {
        _cleanup_free_ unsigned char *ok = craft(2, 1, 1, "a/b", 3, &len);
        assert_int_equal(kiln_statcache_check(ok, len, "h", NULL, &err), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        _cleanup_free_ unsigned char *d = craft(bad[i].version, bad[i].count, bad[i].flags,
                                                bad[i].path, strlen(bad[i].path), &len);
        assert_int_equal(kiln_statcache_check(d, len, "h", NULL, &err), -1);
        if (strstr(err.msg, bad[i].why) == NULL)
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].why);
    }
    {
        /* a path longer than the limit; a NUL inside a path */
        _cleanup_free_ char *longp = kiln_xzalloc(5000);
        _cleanup_free_ unsigned char *d = NULL, *d2 = NULL;
        memset(longp, 'a', 4999);
        d = craft(2, 1, 1, longp, 4999, &len);
        assert_int_equal(kiln_statcache_check(d, len, "h", NULL, &err), -1);
        d2 = craft(2, 1, 1, "a\0b", 3, &len);
        assert_int_equal(kiln_statcache_check(d2, len, "h", NULL, &err), -1);
        assert_non_null(strstr(err.msg, "bad path"));
    }
}

/* Links and foreign files where the cache lives are never followed. */
static void test_links(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    _cleanup_free_ char *elsewhere = kiln_xasprintf("%s/elsewhere", root);
    _cleanup_free_ char *marker = kiln_xasprintf("%s/marker", root);
    _cleanup_free_ char *link = NULL;
    kiln_statcache_t *c = NULL;
    kiln_error_t err = {0};
    kiln_digest_t d;
    struct stat sb;
    (void)state;

    /* the directory itself a symlink: refused by name */
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    assert_int_equal(symlink(elsewhere, dir), 0);
    assert_int_equal(kiln_statcache_open(dir, "l", 0, &c, &err), -1);
    assert_non_null(strstr(err.msg, "not a directory"));
    assert_non_null(strstr(err.msg, dir));
    assert_int_equal(unlink(dir), 0);

    /* the context file a symlink to a marker: not read, not written through */
    write_file(root, "marker", "keep me");
    assert_int_equal(mkdir(dir, 0700), 0);
    kiln_digest_bytes("l", 1, &d);
    link = kiln_xasprintf("%s/%s.sc", dir, d.hex);
    assert_int_equal(symlink(marker, link), 0);
    c = open_cache(dir, "l", 0);
    assert_int_equal(stats(c).damaged, 1);
    hash_rel(c, g_ctx, "a.txt");
    save_close(c);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISREG(sb.st_mode)); /* the link was replaced, not followed */
    {
        _cleanup_free_ char *text = NULL;
        size_t len;
        assert_int_equal(kiln_fs_read_file(marker, 100, &text, &len, NULL), 0);
        assert_string_equal(text, "keep me");
    }

    /* an old single-file cache at the path: replaced by the directory */
    kiln_fs_rm_rf(dir, NULL);
    write_file(root, "sc", "kiln-statcache-v1\n");
    c = open_cache(dir, "l", 0);
    kiln_statcache_free(c);
    assert_int_equal(lstat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));

    /* no identity; no cache at all: nothing made */
    assert_int_equal(kiln_statcache_open(dir, "", 0, &c, &err), -1);
    assert_non_null(strstr(err.msg, "context identity"));
    kiln_fs_rm_rf(dir, NULL);
    c = open_cache(dir, "l", -1);
    hash_rel(c, g_ctx, "a.txt");
    assert_int_equal(kiln_statcache_save(c, NULL), 0);
    assert_int_equal(stats(c).hashed, 1);
    kiln_statcache_free(c);
    assert_int_not_equal(access(dir, F_OK), 0);
    kiln_fs_rm_rf(root, NULL);
}

/* Writers in several processes at once, on one context and on several:
 * every file left parses, no temp file is left behind. */
static void test_concurrent(void **state)
{
    _cleanup_free_ char *root = tmpdir();
    _cleanup_free_ char *dir = kiln_xasprintf("%s/sc", root);
    static const char *const rels[] = {"a.txt", "b.txt", "sub/c.txt", "sub/d.txt"};
    enum { PROCS = 4, ROUNDS = 40 };
    pid_t pids[PROCS];
    (void)state;

    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            for (int r = 0; r < ROUNDS; r++) {
                char id[32];
                kiln_statcache_t *c = NULL;
                snprintf(id, sizeof(id), "ctx-%d", r % 2 ? p : 0);
                if (kiln_statcache_open(dir, id, 0, &c, NULL) < 0)
                    _exit(2);
                for (int k = 0; k <= (r + p) % 4; k++) {
                    _cleanup_free_ char *f = kiln_xasprintf("%s/%s", g_ctx, rels[k]);
                    _cleanup_close_ int fd = open(f, O_RDONLY | O_CLOEXEC);
                    struct stat st;
                    kiln_digest_t d;
                    if (fd < 0 || fstat(fd, &st) < 0 ||
                        kiln_statcache_hash(c, rels[k], fd, &st, &d, NULL) < 0)
                        _exit(3);
                }
                kiln_statcache_scanned(c, r % 3 ? "sub" : "");
                if (kiln_statcache_save(c, NULL) < 0)
                    _exit(4);
                {
                    kiln_statcache_stats_t s;
                    kiln_statcache_stats(c, &s);
                    if (s.damaged)
                        _exit(6); /* a torn or half-written file was seen */
                }
                kiln_statcache_free(c);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status = 0;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    {
        _cleanup_closedir_ DIR *d = opendir(dir);
        struct dirent *e;
        size_t files = 0;
        assert_non_null(d);
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            assert_true(strncmp(e->d_name, ".tmp-", 5) != 0);
            files++;
        }
        assert_int_equal(files, PROCS); /* ctx-0 .. ctx-3 */
    }
    for (int p = 0; p < PROCS; p++) {
        char id[32];
        kiln_statcache_t *c;
        snprintf(id, sizeof(id), "ctx-%d", p);
        c = open_cache(dir, id, 0);
        assert_int_equal(stats(c).damaged, 0);
        assert_true(stats(c).loaded >= 1);
        kiln_statcache_free(c);
    }
    kiln_fs_rm_rf(root, NULL);
}

static void test_parse_max(void **state)
{
    kiln_error_t err = {0};
    int64_t v = 0;
    (void)state;
    assert_int_equal(kiln_statcache_parse_max("512m", &v, &err), 0);
    assert_int_equal(v, 512LL << 20);
    assert_int_equal(kiln_statcache_parse_max("0", &v, &err), 0);
    assert_int_equal(v, -1);
    assert_int_equal(kiln_statcache_parse_max("lots", &v, &err), -1);
    assert_non_null(strstr(err.msg, "lots"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_changed_and_racy),
        cmocka_unit_test(test_note),
        cmocka_unit_test(test_rescan_drop),
        cmocka_unit_test(test_cap_lru),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_parse_max),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
