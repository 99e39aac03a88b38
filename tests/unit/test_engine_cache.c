/* Unit tests: step cache keys (engine/cache.c) are stable and change with each input that
 * should change them: the parent key, what the step is, its extra input; and a COPY's content
 * hash (the copytree walk in hash mode, engine/copytree.c) changes with a file's content,
 * name, mode and link target, but not with its mtime or owner. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/cache.h"
#include "engine/copytree.h"
#include "tests/unit/tmpdir.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static kiln_digest_t key_of(const char *parent_what, const char *what, const char *extra)
{
    kiln_digest_t k;
    kiln_digest_bytes("scratch", 7, &k); /* FROM scratch's key */
    if (parent_what != NULL)
        kiln_cache_key_step(&k, parent_what, NULL);
    kiln_cache_key_step(&k, what, extra);
    return k;
}

static void assert_same(kiln_digest_t a, kiln_digest_t b)
{
    char as[KILN_DIGEST_STR_MAX], bs[KILN_DIGEST_STR_MAX];
    assert_string_equal(kiln_digest_str(&a, as), kiln_digest_str(&b, bs));
}

static void assert_differ(kiln_digest_t a, kiln_digest_t b)
{
    char as[KILN_DIGEST_STR_MAX], bs[KILN_DIGEST_STR_MAX];
    assert_string_not_equal(kiln_digest_str(&a, as), kiln_digest_str(&b, bs));
}

static void test_key_stable(void **state)
{
    kiln_digest_t a = key_of("FROM alpine", "RUN make", "CC=gcc");
    kiln_digest_t b = key_of("FROM alpine", "RUN make", "CC=gcc");
    kiln_digest_t want, zero;
    char s[KILN_DIGEST_STR_MAX], zs[KILN_DIGEST_STR_MAX];
    kiln_sha256_t h;
    _cleanup_free_ char *text = NULL;

    assert_same(a, b);
    /* the key is sha256("<parent key>\n<what>\n<extra>"): keys stay valid across versions */
    kiln_digest_bytes("scratch", 7, &zero);
    text = kiln_xasprintf("%s\nRUN make\nCC=gcc", kiln_digest_str(&zero, zs));
    kiln_sha256_init(&h, NULL);
    kiln_sha256_update(&h, text, strlen(text));
    kiln_sha256_final(&h, &want);
    assert_same(key_of(NULL, "RUN make", "CC=gcc"), want);
    assert_true(strncmp(kiln_digest_str(&a, s), "sha256:", 7) == 0);
}

static void test_key_changes(void **state)
{
    kiln_digest_t base = key_of("FROM alpine", "RUN make", "CC=gcc");
    assert_differ(base, key_of("FROM debian", "RUN make", "CC=gcc"));     /* parent */
    assert_differ(base, key_of("FROM alpine", "RUN make all", "CC=gcc")); /* instruction */
    assert_differ(base, key_of("FROM alpine", "RUN make", "CC=clang"));   /* used args */
    assert_differ(base, key_of("FROM alpine", "RUN make", NULL));
    assert_differ(base, key_of(NULL, "RUN make", "CC=gcc"));
    /* a chain: the same step after different parents differs */
    assert_differ(key_of("A", "B", NULL), key_of("B", "A", NULL));
}

static void test_hash_str_separates(void **state)
{
    kiln_sha256_t h1, h2;
    kiln_digest_t d1, d2;
    kiln_sha256_init(&h1, NULL);
    kiln_sha256_init(&h2, NULL);
    kiln_cache_hash_str(&h1, "ab");
    kiln_cache_hash_str(&h1, "c");
    kiln_cache_hash_str(&h2, "a");
    kiln_cache_hash_str(&h2, "bc");
    kiln_sha256_final(&h1, &d1);
    kiln_sha256_final(&h2, &d2);
    assert_differ(d1, d2);
}

/* ---- the content hash of a tree (COPY's cache input) */

typedef struct fx {
    char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *f = kiln_xzalloc(sizeof(*f));
    f->dir = tmpdir_make("cachekey");
    assert_non_null(f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    kiln_fs_rm_rf(f->dir, NULL);
    free(f->dir);
    free(f);
    return 0;
}

static void put(const char *dir, const char *rel, const char *content, mode_t mode)
{
    assert_int_equal(tmpdir_put(dir, rel, content, mode), 0);
}

static kiln_digest_t tree_hash(const char *dir, const char *written)
{
    _cleanup_close_ int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = -1, .dest_root = -1, .quiet = true};
    kiln_sha256_t h;
    kiln_digest_t d;
    kiln_error_t err = {0};

    assert_true(rootfd >= 0);
    kiln_sha256_init(&h, NULL);
    c.hash = &h;
    assert_int_equal(kiln_copytree_hash_source(&c, rootfd, "/src", written, &err), 0);
    kiln_sha256_final(&h, &d);
    kiln_copytree_clear(&c);
    return d;
}

static void test_tree_hash_inputs(void **state)
{
    fx_t *f = *state;
    _cleanup_free_ char *src = kiln_xasprintf("%s/src", f->dir);
    _cleanup_free_ char *a = kiln_xasprintf("%s/a", src);
    _cleanup_free_ char *l = kiln_xasprintf("%s/l", src);
    struct timeval tv[2] = {{1000, 0}, {1000, 0}};
    kiln_digest_t base, d;

    assert_int_equal(mkdir(src, 0755), 0);
    put(src, "a", "alpha", 0644);
    put(src, "b", "beta", 0644);
    assert_int_equal(symlink("a", l), 0);
    base = tree_hash(f->dir, "src");
    assert_same(base, tree_hash(f->dir, "src")); /* stable */

    assert_int_equal(utimes(a, tv), 0); /* mtime: not an input */
    assert_same(base, tree_hash(f->dir, "src"));
    if (geteuid() == 0) { /* owner: not an input (COPY sets its own) */
        assert_int_equal(lchown(a, 4321, 4321), 0);
        assert_same(base, tree_hash(f->dir, "src"));
    }

    put(src, "a", "alphA", 0644); /* content */
    d = tree_hash(f->dir, "src");
    assert_differ(base, d);
    put(src, "a", "alpha", 0644);
    assert_same(base, tree_hash(f->dir, "src"));

    assert_int_equal(chmod(a, 0755), 0); /* mode */
    assert_differ(base, tree_hash(f->dir, "src"));
    assert_int_equal(chmod(a, 0644), 0);

    assert_int_equal(unlink(l), 0); /* link target */
    assert_int_equal(symlink("b", l), 0);
    assert_differ(base, tree_hash(f->dir, "src"));
    assert_int_equal(unlink(l), 0);
    assert_int_equal(symlink("a", l), 0);
    assert_same(base, tree_hash(f->dir, "src"));

    put(src, "c", "", 0644); /* a new (empty) file */
    d = tree_hash(f->dir, "src");
    assert_differ(base, d);
    {
        _cleanup_free_ char *c = kiln_xasprintf("%s/c", src);
        _cleanup_free_ char *c2 = kiln_xasprintf("%s/c2", src);
        assert_int_equal(rename(c, c2), 0); /* a name */
        assert_differ(d, tree_hash(f->dir, "src"));
        assert_int_equal(unlink(c2), 0);
    }
    assert_same(base, tree_hash(f->dir, "src"));
    /* the source as the Dockerfile wrote it is part of the key ("./src" is not "src") */
    assert_differ(base, tree_hash(f->dir, "./src"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_stable),
        cmocka_unit_test(test_key_changes),
        cmocka_unit_test(test_hash_str_separates),
        cmocka_unit_test_setup_teardown(test_tree_hash_inputs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
