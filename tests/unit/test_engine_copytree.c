/* Unit tests: the copytree walk in copy mode (engine/copytree.c), as COPY uses it: modes kept
 * (or --chmod's), owners 0:0 (or --chown's, or the source's when not root-owned), symlinks
 * copied as symlinks and never followed, hardlinks within one copy kept, FIFOs skipped with a
 * note, a link already in the staging tree replaced rather than written through; layer mode
 * (COPY written straight into a layer) gives the very layer the staging copy gives. */
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
#include <unistd.h>

#include <cmocka.h>

#include "engine/copytree.h"
#include "oci/layer_write.h"
#include "tests/unit/tmpdir.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

typedef struct fx {
    char *dir, *src, *dst;
    int notes;
    char last_note[256];
} fx_t;

static int setup(void **state)
{
    fx_t *f = kiln_xzalloc(sizeof(*f));
    f->dir = tmpdir_make("copytree");
    assert_non_null(f->dir);
    f->src = kiln_xasprintf("%s/src", f->dir);
    f->dst = kiln_xasprintf("%s/dst", f->dir);
    assert_int_equal(mkdir(f->src, 0755), 0);
    assert_int_equal(mkdir(f->dst, 0755), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    kiln_fs_rm_rf(f->dir, NULL);
    free(f->dir);
    free(f->src);
    free(f->dst);
    free(f);
    return 0;
}

static void put(const char *dir, const char *rel, const char *content, mode_t mode)
{
    assert_int_equal(tmpdir_put(dir, rel, content, mode), 0);
}

static void on_note(void *ctx, int step, const char *msg)
{
    fx_t *f = ctx;
    assert_int_equal(step, 12);
    f->notes++;
    snprintf(f->last_note, sizeof(f->last_note), "%s", msg);
}

/* Copies the whole of f->src into f->dst/out the way COPY copies a directory source. */
static int copy_all(fx_t *f, kiln_copytree_t *c, kiln_error_t *err)
{
    _cleanup_close_ int sroot = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int droot = open(f->dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int out = -1;
    struct stat st;
    int r;

    assert_true(sroot >= 0 && droot >= 0);
    if (mkdirat(droot, "out", 0755) < 0)
        assert_int_equal(errno, EEXIST);
    out = openat(droot, "out", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    assert_true(out >= 0);
    assert_int_equal(fstat(sroot, &st), 0);
    c->dest_root = droot;
    c->note = on_note;
    c->note_ctx = f;
    c->step = 12;
    r = kiln_copytree_dir(c, sroot, "", out, "/out", &st, err);
    kiln_copytree_clear(c);
    return r;
}

static struct stat lst(fx_t *f, const char *rel)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/out/%s", f->dst, rel);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    return st;
}

static void test_modes_and_content(void **state)
{
    fx_t *f = *state;
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = -1, .root_owned = true};
    kiln_error_t err = {0};
    _cleanup_free_ char *sub = kiln_xasprintf("%s/sub", f->src);
    _cleanup_free_ char *got = NULL;
    _cleanup_free_ char *p = kiln_xasprintf("%s/out/sub/x", f->dst);
    size_t len;

    put(f->src, "run.sh", "#!/bin/sh\n", 0750);
    put(f->src, "secret", "s", 0600);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(f->src, "sub/x", "xx", 0444);
    assert_int_equal(copy_all(f, &c, &err), 0);
    assert_int_equal(lst(f, "run.sh").st_mode & 07777, 0750);
    assert_int_equal(lst(f, "secret").st_mode & 07777, 0600);
    assert_int_equal(lst(f, "sub").st_mode & 07777, 0700);
    assert_int_equal(lst(f, "sub/x").st_mode & 07777, 0444);
    assert_int_equal(kiln_fs_read_file(p, 100, &got, &len, NULL), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(got, "xx", 2);
    assert_int_equal(f->notes, 0);
}

static void test_chmod(void **state)
{
    fx_t *f = *state;
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = 0640, .root_owned = true};
    kiln_error_t err = {0};
    put(f->src, "a", "a", 0777);
    assert_int_equal(copy_all(f, &c, &err), 0);
    assert_int_equal(lst(f, "a").st_mode & 07777, 0640);
}

static void test_ownership(void **state)
{
    fx_t *f = *state;
    _cleanup_free_ char *a = kiln_xasprintf("%s/a", f->src);
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = -1, .root_owned = true};
    kiln_error_t err = {0};

    if (geteuid() != 0)
        skip();
    put(f->src, "a", "a", 0644);
    assert_int_equal(chown(a, 1001, 1002), 0);
    assert_int_equal(copy_all(f, &c, &err), 0); /* COPY without --chown: 0:0 */
    assert_int_equal(lst(f, "a").st_uid, 0);
    assert_int_equal(lst(f, "a").st_gid, 0);

    c = (kiln_copytree_t){.uid = 2000, .gid = 3000, .mode = -1, .root_owned = true};
    assert_int_equal(copy_all(f, &c, &err), 0); /* --chown=2000:3000 */
    assert_int_equal(lst(f, "a").st_uid, 2000);
    assert_int_equal(lst(f, "a").st_gid, 3000);

    c = (kiln_copytree_t){.uid = -1, .gid = -1, .mode = -1, .root_owned = false};
    assert_int_equal(copy_all(f, &c, &err), 0); /* COPY --from keeps the stage's owners */
    assert_int_equal(lst(f, "a").st_uid, 1001);
    assert_int_equal(lst(f, "a").st_gid, 1002);
}

static void test_links(void **state)
{
    fx_t *f = *state;
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = -1, .root_owned = true};
    kiln_error_t err = {0};
    _cleanup_free_ char *h1 = kiln_xasprintf("%s/h1", f->src);
    _cleanup_free_ char *h2 = kiln_xasprintf("%s/h2", f->src);
    _cleanup_free_ char *abs = kiln_xasprintf("%s/abs", f->src);
    _cleanup_free_ char *rel = kiln_xasprintf("%s/rel", f->src);
    _cleanup_free_ char *t = kiln_xasprintf("%s/out/abs", f->dst);
    char target[256];
    ssize_t n;
    struct stat a, b;

    put(f->src, "h1", "same inode", 0644);
    assert_int_equal(link(h1, h2), 0);
    assert_int_equal(symlink("/etc/passwd", abs), 0); /* copied as a link, never read */
    assert_int_equal(symlink("h1", rel), 0);
    assert_int_equal(copy_all(f, &c, &err), 0);
    a = lst(f, "h1");
    b = lst(f, "h2");
    assert_true(S_ISREG(a.st_mode));
    assert_int_equal(a.st_ino, b.st_ino); /* hardlinks within one copy stay hardlinks */
    assert_int_equal(a.st_nlink, 2);
    assert_true(S_ISLNK(lst(f, "abs").st_mode));
    n = readlink(t, target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "/etc/passwd");
    assert_true(S_ISLNK(lst(f, "rel").st_mode));
}

static void test_special_skipped(void **state)
{
    fx_t *f = *state;
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = -1, .root_owned = true};
    kiln_error_t err = {0};
    _cleanup_free_ char *fifo = kiln_xasprintf("%s/pipe", f->src);
    _cleanup_free_ char *p = kiln_xasprintf("%s/out/pipe", f->dst);

    assert_int_equal(mkfifo(fifo, 0644), 0);
    put(f->src, "a", "a", 0644);
    assert_int_equal(copy_all(f, &c, &err), 0); /* the FIFO is never opened: no hang */
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(f->notes, 1);
    assert_string_equal(
        f->last_note, "skipping pipe: a FIFO is not copied (only files, directories and symlinks)");
    c = (kiln_copytree_t){.uid = -1, .gid = -1, .mode = -1, .root_owned = true, .quiet = true};
    assert_int_equal(copy_all(f, &c, &err), 0);
    assert_int_equal(f->notes, 1); /* quiet: the hash pass said it already */
}

static void test_staging_link_replaced(void **state)
{
    fx_t *f = *state;
    kiln_copytree_t c = {.uid = -1, .gid = -1, .mode = -1, .root_owned = true};
    kiln_error_t err = {0};
    _cleanup_free_ char *outside = kiln_xasprintf("%s/outside", f->dir);
    _cleanup_free_ char *out = kiln_xasprintf("%s/out", f->dst);
    _cleanup_free_ char *planted = kiln_xasprintf("%s/out/d", f->dst);
    _cleanup_free_ char *d = kiln_xasprintf("%s/d", f->src);

    /* an earlier source of the same COPY left a link d -> outside in the staging tree */
    assert_int_equal(mkdir(outside, 0755), 0);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(symlink(outside, planted), 0);
    assert_int_equal(mkdir(d, 0755), 0);
    put(f->src, "d/f", "f", 0644);
    assert_int_equal(copy_all(f, &c, &err), 0);
    assert_true(S_ISDIR(lst(f, "d").st_mode)); /* replaced by a directory */
    assert_true(S_ISREG(lst(f, "d/f").st_mode));
    {
        _cleanup_free_ char *leak = kiln_xasprintf("%s/f", outside);
        assert_int_equal(access(leak, F_OK), -1); /* nothing written through the link */
    }
}

/* A sink that drops what it is given. */
static int sink_drop(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    (void)ctx;
    (void)buf;
    (void)len;
    (void)err;
    return 0;
}

static kiln_layer_opts_t layer_opts(void)
{
    kiln_layer_opts_t o;
    kiln_layer_opts_init(&o);
    o.compression = KILN_COMPRESSION_NONE;
    return o;
}

/* The diff_id of the layer COPY's staging path makes of f->src under "out" (copy mode into
 * the staging tree, then the tree writer), and that of layer mode, with the rules of c. */
static void both_layers(fx_t *f, const kiln_copytree_t *rules, kiln_digest_t *staged,
                        kiln_digest_t *direct)
{
    kiln_copytree_t c = *rules;
    kiln_layer_opts_t o = layer_opts();
    kiln_sink_t sink = {sink_drop, NULL};
    kiln_layer_info_t info;
    kiln_layer_writer_t *w = NULL;
    kiln_error_t err = {0};
    _cleanup_close_ int sroot = open(f->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;

    assert_int_equal(copy_all(f, &c, &err), 0);
    assert_int_equal(kiln_layer_write_dir(f->dst, &o, &sink, &info, &err), 0);
    *staged = info.diff_id;

    c = *rules;
    c.note = on_note;
    c.note_ctx = f;
    c.step = 12;
    assert_int_equal(fstat(sroot, &st), 0);
    assert_int_equal(kiln_layer_writer_new(&o, &sink, &w, &err), 0);
    c.layer = w;
    assert_int_equal(kiln_copytree_layer_entry(&c, "/out", &st, -1, NULL, NULL, &err), 0);
    assert_int_equal(kiln_copytree_dir(&c, sroot, "", -1, "/out", &st, &err), 0);
    assert_int_equal(kiln_layer_writer_finish(w, &info, &err), 0);
    kiln_layer_writer_free(w);
    kiln_copytree_clear(&c);
    *direct = info.diff_id;
}

/* The one pass of a first build: hash mode and layer mode at once over f->src (as the
 * source "src" of f->dir) into "out". *key the walk's hash, *layer the layer's diff_id. */
static void one_pass(fx_t *f, const kiln_copytree_t *rules, bool layer, kiln_digest_t *key,
                     kiln_digest_t *diff_id)
{
    kiln_copytree_t c = *rules;
    kiln_layer_opts_t o = layer_opts();
    kiln_sink_t sink = {sink_drop, NULL};
    kiln_layer_info_t info;
    kiln_layer_writer_t *w = NULL;
    kiln_error_t err = {0};
    kiln_sha256_t h;
    _cleanup_close_ int root = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    assert_true(root >= 0);
    assert_int_equal(kiln_sha256_init(&h, &err), 0);
    c.hash = &h;
    if (layer) {
        assert_int_equal(kiln_layer_writer_new(&o, &sink, &w, &err), 0);
        c.layer = w;
        c.layer_as = "out";
    }
    assert_int_equal(kiln_copytree_hash_source(&c, root, "/src", "src", &err), 0);
    kiln_sha256_final(&h, key);
    if (layer) {
        assert_int_equal(kiln_layer_writer_finish(w, &info, &err), 0);
        kiln_layer_writer_free(w);
        *diff_id = info.diff_id;
    }
    kiln_copytree_clear(&c);
}

static void test_layer_mode_same_layer(void **state)
{
    fx_t *f = *state;
    kiln_copytree_t rules[] = {
        {.uid = -1, .gid = -1, .mode = -1, .root_owned = true},
        {.uid = 2000, .gid = 3000, .mode = 0640, .root_owned = true},
        {.uid = -1, .gid = -1, .mode = -1, .root_owned = false},
    };
    _cleanup_free_ char *h1 = kiln_xasprintf("%s/d/h1", f->src);
    _cleanup_free_ char *h2 = kiln_xasprintf("%s/h2", f->src);
    _cleanup_free_ char *lnk = kiln_xasprintf("%s/d/e/abs", f->src);
    _cleanup_free_ char *fifo = kiln_xasprintf("%s/pipe", f->src);
    _cleanup_free_ char *sub = kiln_xasprintf("%s/d/e", f->src);
    _cleanup_free_ char *d = kiln_xasprintf("%s/d", f->src);

    assert_int_equal(mkdir(d, 0750), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(f->src, "run.sh", "#!/bin/sh\n", 04755);
    put(f->src, "d/h1", "same inode", 0644);
    put(f->src, "d/e/x", "", 0600);
    put(f->src, "b", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 0644);
    assert_int_equal(link(h1, h2), 0);
    assert_int_equal(symlink("/etc/passwd", lnk), 0);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        kiln_digest_t a, b;
        _cleanup_free_ char *out = kiln_xasprintf("%s/out", f->dst);
        if (geteuid() != 0 && i > 0)
            break; /* owners other than one's own need root */
        kiln_fs_rm_rf(out, NULL);
        both_layers(f, &rules[i], &a, &b);
        assert_string_equal(a.hex, b.hex);
        {
            /* hashing while writing: the same key as hashing alone, the same layer */
            kiln_digest_t k1, k2, dl;
            one_pass(f, &rules[i], false, &k1, NULL);
            one_pass(f, &rules[i], true, &k2, &dl);
            assert_string_equal(k1.hex, k2.hex);
            assert_string_equal(dl.hex, a.hex);
        }
    }
    assert_true(f->notes >= 2); /* the FIFO was skipped by both */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_modes_and_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chmod, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ownership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_special_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staging_link_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layer_mode_same_layer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
