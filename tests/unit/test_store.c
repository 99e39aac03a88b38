/* Unit tests for oci/store: atomic writes, verification, refs, prune and the
 * lock protocol. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/image.h"
#include "oci/store.h"
#include "oci/store_lazy.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static char *make_root(void)
{
    char *dir = NULL;
    assert_int_equal(kiln_fs_mkdtemp("/tmp", "kiln-test-store.", &dir, NULL), 0);
    return dir;
}

/* Number of entries (not . and ..) in root/sub. */
static int count_entries(const char *root, const char *sub)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", root, sub);
    _cleanup_closedir_ DIR *d = opendir(p);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    return n;
}

static void test_put_and_read(void **state)
{
    _cleanup_free_ char *root = make_root();
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t d, d2;
    _cleanup_free_ char *data = NULL;
    size_t len;
    uint64_t size;
    int fd;

    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_put_bytes(s, "hello", 5, &d, &err), 0);
    assert_int_equal(kiln_store_put_bytes(s, "hello", 5, &d2, &err), 0); /* idempotent */
    assert_true(kiln_digest_equal(&d, &d2));
    assert_int_equal(kiln_store_has(s, &d, &size), 1);
    assert_int_equal(size, 5);
    assert_int_equal(kiln_store_read_blob(s, &d, 0, &data, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(kiln_store_read_blob(s, &d, 3, &data, &len, &err), -1); /* cap */
    assert_int_equal(kiln_store_open_blob(s, &d, &fd, &size, &err), 0);
    close(fd);
    kiln_digest_bytes("nope", 4, &d2);
    assert_int_equal(kiln_store_has(s, &d2, NULL), 0);
    assert_int_equal(kiln_store_open_blob(s, &d2, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, d2.hex));
    assert_int_equal(count_entries(root, "tmp"), 0);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

static void test_writer_verify(void **state)
{
    _cleanup_free_ char *root = make_root();
    kiln_store_t *s = NULL;
    kiln_store_writer_t *w = NULL;
    kiln_error_t err = {0};
    kiln_digest_t expect, got;
    uint64_t size = 0;
    kiln_sink_t sink;

    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    /* mismatching content: commit fails, nothing left behind */
    kiln_digest_bytes("expected", 8, &expect);
    assert_int_equal(kiln_store_writer_new(s, &expect, -1, &w, &err), 0);
    assert_int_equal(kiln_store_writer_write(w, "tampered", 8, &err), 0);
    assert_int_equal(kiln_store_writer_commit(w, &got, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "does not match"));
    assert_int_equal(kiln_store_has(s, &expect, NULL), 0);
    assert_int_equal(count_entries(root, "blobs/sha256"), 0);
    assert_int_equal(count_entries(root, "tmp"), 0);

    /* size overflow is refused at write time */
    assert_int_equal(kiln_store_writer_new(s, NULL, 3, &w, &err), 0);
    assert_int_equal(kiln_store_writer_write(w, "toolong", 7, &err), -1);
    kiln_store_writer_abort(w);
    assert_int_equal(count_entries(root, "tmp"), 0);

    /* short size is refused at commit */
    assert_int_equal(kiln_store_writer_new(s, NULL, 10, &w, &err), 0);
    assert_int_equal(kiln_store_writer_write(w, "short", 5, &err), 0);
    assert_int_equal(kiln_store_writer_commit(w, NULL, NULL, &err), -1);
    assert_int_equal(count_entries(root, "blobs/sha256"), 0);

    /* streamed through the sink with a matching digest and size: stored */
    assert_int_equal(kiln_store_writer_new(s, &expect, 8, &w, &err), 0);
    sink = kiln_store_writer_sink(w);
    assert_int_equal(kiln_sink_write(&sink, "expe", 4, &err), 0);
    assert_int_equal(kiln_sink_write(&sink, "cted", 4, &err), 0);
    assert_int_equal(kiln_store_writer_commit(w, &got, &size, &err), 0);
    assert_true(kiln_digest_equal(&got, &expect));
    assert_int_equal(size, 8);
    assert_int_equal(kiln_store_has(s, &expect, NULL), 1);
    assert_int_equal(count_entries(root, "tmp"), 0);

    /* abort leaves nothing */
    assert_int_equal(kiln_store_writer_new(s, NULL, -1, &w, &err), 0);
    assert_int_equal(kiln_store_writer_write(w, "x", 1, &err), 0);
    kiln_store_writer_abort(w);
    assert_int_equal(count_entries(root, "tmp"), 0);
    assert_int_equal(count_entries(root, "blobs/sha256"), 1);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

static void test_large_stream(void **state)
{
    _cleanup_free_ char *root = make_root();
    kiln_store_t *s = NULL;
    kiln_store_writer_t *w = NULL;
    kiln_error_t err = {0};
    kiln_sha256_t h;
    kiln_digest_t want, got;
    uint64_t size;
    static char chunk[100000];

    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (char)(i * 7);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_sha256_init(&h, &err), 0);
    assert_int_equal(kiln_store_writer_new(s, NULL, -1, &w, &err), 0);
    for (int i = 0; i < 50; i++) {
        size_t n = (size_t)(i * 1999) % sizeof(chunk) + 1;
        kiln_sha256_update(&h, chunk, n);
        assert_int_equal(kiln_store_writer_write(w, chunk, n, &err), 0);
    }
    kiln_sha256_final(&h, &want);
    assert_int_equal(kiln_store_writer_commit(w, &got, &size, &err), 0);
    assert_true(kiln_digest_equal(&want, &got));
    assert_int_equal(kiln_store_has(s, &got, &size), 1);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

/* Puts a minimal image (config + 2 layers + manifest) and returns the manifest digest. */
static void put_image(kiln_store_t *s, const char *tag, kiln_digest_t *manifest,
                      kiln_digest_t *layer0)
{
    kiln_error_t err = {0};
    kiln_descriptor_t cfg = {0}, layers[2] = {{{0}}}, md = {0};
    json_t *config = kiln_image_config_new("amd64", "linux");
    json_t *m;
    char l0[64], l1[64];

    snprintf(l0, sizeof(l0), "layer0-%s", tag);
    snprintf(l1, sizeof(l1), "layer1-%s", tag);
    kiln_image_config_set_label(config, "tag", tag);
    assert_int_equal(kiln_store_put_bytes(s, l0, strlen(l0), &layers[0].digest, &err), 0);
    assert_int_equal(kiln_store_put_bytes(s, l1, strlen(l1), &layers[1].digest, &err), 0);
    snprintf(layers[0].media_type, sizeof(layers[0].media_type), "%s", KILN_MT_OCI_LAYER);
    snprintf(layers[1].media_type, sizeof(layers[1].media_type), "%s", KILN_MT_OCI_LAYER);
    layers[0].size = strlen(l0);
    layers[1].size = strlen(l1);
    kiln_image_config_add_diff_id(config, &layers[0].digest);
    kiln_image_config_add_diff_id(config, &layers[1].digest);
    assert_int_equal(kiln_image_store_put(s, config, KILN_MT_OCI_CONFIG, &cfg, &err), 0);
    m = kiln_image_manifest_new(&cfg, layers, 2, NULL);
    assert_int_equal(kiln_image_store_put(s, m, KILN_MT_OCI_MANIFEST, &md, &err), 0);
    json_decref(m);
    json_decref(config);
    *manifest = md.digest;
    if (layer0)
        *layer0 = layers[0].digest;
}

static void test_refs_and_prune(void **state)
{
    _cleanup_free_ char *root = make_root();
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t m1, m2, l1, l2, got, junk, ix_d;
    kiln_store_prune_stats_t st;
    kiln_descriptor_t d = {0};
    json_t *ix;

    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    put_image(s, "one", &m1, &l1);
    put_image(s, "two", &m2, &l2);
    assert_int_equal(kiln_store_put_bytes(s, "junk", 4, &junk, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "image/example.com/one:latest", &m1, &err), 0);
    assert_int_equal(kiln_store_ref_get(s, "image/example.com/one:latest", &got, &err), 1);
    assert_true(kiln_digest_equal(&got, &m1));
    assert_int_equal(kiln_store_ref_get(s, "image/none", &got, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "bad name", &m1, &err), -1);
    /* an index pinning image two */
    ix = kiln_image_index_new();
    d.digest = m2;
    snprintf(d.media_type, sizeof(d.media_type), "%s", KILN_MT_OCI_MANIFEST);
    kiln_store_has(s, &m2, &d.size);
    kiln_image_index_add(ix, &d);
    assert_int_equal(kiln_image_store_put(s, ix, KILN_MT_OCI_INDEX, &d, &err), 0);
    ix_d = d.digest;
    json_decref(ix);
    assert_int_equal(kiln_store_ref_set(s, "image/two", &ix_d, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "cache/dangling", &junk, &err), 0);
    assert_int_equal(kiln_store_ref_delete(s, "cache/dangling", &err), 0);

    /* while the store is open (a "build" runs) prune refuses */
    assert_int_equal(kiln_store_prune(root, 0, 0, &st, &err), -1);
    assert_int_equal(err.code, EBUSY);
    kiln_store_close(s);

    /* a stale temp file from an interrupted write */
    {
        _cleanup_free_ char *p = kiln_xasprintf("%s/tmp/blob-stale", root);
        assert_int_equal(kiln_fs_write_file_atomic(p, "x", 1, 0644, &err), 0);
    }
    assert_int_equal(kiln_store_prune(root, 0, 1, &st, &err), 0); /* dry run */
    assert_int_equal(st.blobs_removed, 1);
    assert_int_equal(count_entries(root, "tmp"), 1);
    assert_int_equal(kiln_store_prune(root, 0, 0, &st, &err), 0);
    assert_int_equal(st.blobs_removed, 1); /* junk */
    assert_int_equal(st.blobs_kept, 9);    /* 2 x (config, 2 layers, manifest) + index */
    assert_int_equal(st.tmp_removed, 1);
    assert_int_equal(count_entries(root, "tmp"), 0);

    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_has(s, &junk, NULL), 0);
    assert_int_equal(kiln_store_has(s, &l1, NULL), 1);
    assert_int_equal(kiln_store_has(s, &l2, NULL), 1);
    /* unpin image one: its blobs go */
    assert_int_equal(kiln_store_ref_delete(s, "image/example.com/one:latest", &err), 0);
    kiln_store_close(s);
    assert_int_equal(kiln_store_prune(root, 1, 0, &st, &err), 0);
    assert_int_equal(st.blobs_removed, 4);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_has(s, &l1, NULL), 0);
    assert_int_equal(kiln_store_has(s, &m1, NULL), 0);
    assert_int_equal(kiln_store_has(s, &l2, NULL), 1);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

typedef struct {
    const char *root;
    int stage; /* 1 = writer has data in flight */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;
    kiln_digest_t result;
} race_t;

/* A "build": opens the store, starts a write, waits, then commits and pins. */
static void *writer_thread(void *arg)
{
    race_t *r = arg;
    kiln_store_t *s = NULL;
    kiln_store_writer_t *w = NULL;
    kiln_error_t err = {0};

    assert_int_equal(kiln_store_open(r->root, &s, &err), 0);
    assert_int_equal(kiln_store_writer_new(s, NULL, -1, &w, &err), 0);
    assert_int_equal(kiln_store_writer_write(w, "in flight", 9, &err), 0);
    pthread_mutex_lock(&r->mu);
    r->stage = 1;
    pthread_cond_broadcast(&r->cv);
    while (!r->go)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(kiln_store_writer_commit(w, &r->result, NULL, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "cache/race", &r->result, &err), 0);
    kiln_store_close(s);
    return NULL;
}

typedef struct {
    const char *root;
    int ret;
} prune_arg_t;

static void *prune_thread(void *arg)
{
    prune_arg_t *p = arg;
    kiln_store_prune_stats_t st;
    p->ret = kiln_store_prune(p->root, 1, 0, &st, NULL);
    return NULL;
}

/* Waits (bounded) until a prune holds <root>/gate exclusively; 1 when it does. */
static int gate_closed(const char *root)
{
    _cleanup_free_ char *gp = kiln_xasprintf("%s/gate", root);
    int closed = 0;

    for (int i = 0; i < 10000 && !closed; i++) {
        _cleanup_close_ int g = open(gp, O_RDWR | O_CLOEXEC);
        if (g >= 0 && flock(g, LOCK_SH | LOCK_NB) < 0)
            closed = 1;
        else
            usleep(1000);
    }
    return closed;
}

/* A process that holds the store can open it again while a prune waits. */
static void test_nested_open_while_prune_waits(void **state)
{
    _cleanup_free_ char *root = make_root();
    prune_arg_t pr = {.root = root, .ret = 1};
    kiln_store_t *s1 = NULL, *s2 = NULL;
    kiln_error_t err = {0};
    pthread_t pt;

    assert_int_equal(kiln_store_open(root, &s1, &err), 0);
    assert_int_equal(pthread_create(&pt, NULL, prune_thread, &pr), 0);
    assert_true(gate_closed(root));
    assert_int_equal(kiln_store_open(root, &s2, &err), 0); /* no deadlock */
    kiln_store_close(s2);
    kiln_store_close(s1);
    pthread_join(pt, NULL);
    assert_int_equal(pr.ret, 0);
    kiln_fs_rm_rf(root, NULL);
}

/* Sets the mtime of ref `name`'s file to `age` seconds ago. */
static void age_ref(const char *root, const char *name, long age)
{
    kiln_digest_t f;
    _cleanup_free_ char *p = NULL;
    struct timespec ts[2] = {{.tv_sec = time(NULL) - age}, {.tv_sec = time(NULL) - age}};
    kiln_digest_bytes(name, strlen(name), &f);
    p = kiln_xasprintf("%s/refs/%s", root, f.hex);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

/* Build cache refs unused for longer than the limit expire; a read refreshes a ref; other
 * prefixes are never touched. */
static void test_refs_expire(void **state)
{
    _cleanup_free_ char *root = make_root();
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t m, l, got;
    unsigned n = 99;

    (void)state;
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    put_image(s, "one", &m, &l);
    assert_int_equal(kiln_store_ref_set(s, "cache/old", &m, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "cache/used", &m, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "cache/new", &m, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "image/old", &m, &err), 0);
    age_ref(root, "cache/old", 7200);
    age_ref(root, "cache/used", 7200);
    age_ref(root, "image/old", 7200);
    assert_int_equal(kiln_store_ref_get(s, "cache/used", &got, &err), 1); /* refreshes it */
    assert_int_equal(kiln_store_refs_expire(s, "cache/", 3600, 1, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kiln_store_ref_get(s, "cache/old", &got, &err), 1); /* dry run kept it */
    age_ref(root, "cache/old", 7200);
    assert_int_equal(kiln_store_refs_expire(s, "cache/", 3600, 0, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kiln_store_ref_get(s, "cache/old", &got, &err), 0);
    assert_int_equal(kiln_store_ref_get(s, "cache/used", &got, &err), 1);
    assert_int_equal(kiln_store_ref_get(s, "cache/new", &got, &err), 1);
    assert_int_equal(kiln_store_ref_get(s, "image/old", &got, &err), 1);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

static void test_prune_vs_writer(void **state)
{
    _cleanup_free_ char *root = make_root();
    race_t r = {.root = root, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    kiln_store_prune_stats_t st;
    kiln_error_t err = {0};
    kiln_store_t *s = NULL;
    prune_arg_t pr = {.root = root};
    pthread_t t, pt;

    assert_int_equal(pthread_create(&t, NULL, writer_thread, &r), 0);
    pthread_mutex_lock(&r.mu);
    while (r.stage != 1)
        pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    /* the writer's temp file must survive: prune cannot run now */
    assert_int_equal(kiln_store_prune(root, 0, 0, &st, &err), -1);
    assert_int_equal(err.code, EBUSY);
    assert_int_equal(count_entries(root, "tmp"), 1);
    /* a waiting prune closes the gate at once (new builds queue behind it,
     * so overlapping builds cannot starve it), then runs once the build is done */
    assert_int_equal(pthread_create(&pt, NULL, prune_thread, &pr), 0);
    assert_true(gate_closed(root));
    pthread_mutex_lock(&r.mu);
    r.go = 1;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    pthread_join(t, NULL);
    pthread_join(pt, NULL);
    assert_int_equal(pr.ret, 0);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_has(s, &r.result, NULL), 1);
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

/* A manifest with leading whitespace (as some registries serve) still pins its blobs. */
static void test_prune_whitespace_manifest(void **state)
{
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *doc = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t layer, cfg, man;
    kiln_store_prune_stats_t st;

    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_put_bytes(s, "layer", 5, &layer, &err), 0);
    assert_int_equal(kiln_store_put_bytes(s, "{}", 2, &cfg, &err), 0);
    doc = kiln_xasprintf("\n  {\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":2,"
                         "\"digest\":\"sha256:%s\"},\"layers\":[{\"mediaType\":\"a/b\","
                         "\"size\":5,\"digest\":\"sha256:%s\"}]}",
                         cfg.hex, layer.hex);
    assert_int_equal(kiln_store_put_bytes(s, doc, strlen(doc), &man, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "image/ws", &man, &err), 0);
    kiln_store_close(s);
    assert_int_equal(kiln_store_prune(root, 0, 0, &st, &err), 0);
    assert_int_equal(st.blobs_removed, 0);
    assert_int_equal(st.blobs_kept, 3);
    kiln_fs_rm_rf(root, NULL);
}

/* Deferred durability: blobs written while deferred are readable at once; a blob cut short
 * (as a crash before the sync leaves one) is replaced by the next write of it; a volatile ref
 * reads back, and one a crash left empty is skipped by walks and prune, not fatal. */
static int count_ref(const char *name, const kiln_digest_t *d, void *ud)
{
    (void)name;
    (void)d;
    (*(int *)ud)++;
    return 0;
}

static void test_deferred_sync(void **state)
{
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *blob = NULL;
    _cleanup_free_ char *data = NULL;
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t d, got, rf;
    size_t len;
    uint64_t size = 0;
    int n = 0;

    (void)state;
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    kiln_store_defer_sync(s, 1);
    assert_int_equal(kiln_store_put_bytes(s, "deferred bytes", 14, &d, &err), 0);
    assert_int_equal(kiln_store_read_blob(s, &d, 0, &data, &len, &err), 0);
    assert_int_equal(len, 14);
    free(data);
    data = NULL;
    /* cut short, then written again: the complete bytes replace it */
    blob = kiln_store_blob_path(s, &d);
    assert_int_equal(truncate(blob, 3), 0);
    assert_int_equal(kiln_store_put_bytes(s, "deferred bytes", 14, &got, &err), 0);
    assert_true(kiln_store_has(s, &d, &size));
    assert_int_equal(size, 14);
    assert_int_equal(kiln_store_read_blob(s, &d, 0, &data, &len, &err), 0);
    assert_int_equal(truncate(blob, 0), 0);
    {
        kiln_store_writer_t *w = NULL;
        assert_int_equal(kiln_store_writer_new(s, &d, 14, &w, &err), 0);
        assert_int_equal(kiln_store_writer_write(w, "deferred bytes", 14, &err), 0);
        assert_int_equal(kiln_store_writer_commit(w, NULL, &size, &err), 0);
    }
    assert_true(kiln_store_has(s, &d, &size));
    assert_int_equal(size, 14);
    /* more blobs than may wait for a sync: the writer syncs the first ones itself */
    for (int i = 0; i < 70; i++) {
        char b[32];
        int bl = snprintf(b, sizeof(b), "blob %d", i);
        assert_int_equal(kiln_store_put_bytes(s, b, (size_t)bl, &got, &err), 0);
        assert_true(kiln_store_has(s, &got, &size));
    }
    assert_int_equal(kiln_store_sync(s, &err), 0);
    assert_int_equal(kiln_store_sync(s, &err), 0); /* nothing pending: nothing to do */
    /* a volatile ref reads back like any */
    assert_int_equal(kiln_store_ref_set_volatile(s, "cache/x", &d, &err), 0);
    assert_int_equal(kiln_store_ref_get(s, "cache/x", &rf, &err), 1);
    assert_true(kiln_digest_equal(&rf, &d));
    assert_int_equal(kiln_store_ref_set(s, "image/keep", &d, &err), 0);
    kiln_store_defer_sync(s, 0);
    {
        /* left empty by a crash: walks skip it (prune and gc walk the same way) */
        kiln_digest_t f;
        kiln_digest_bytes("cache/x", 7, &f);
        _cleanup_free_ char *rp = kiln_xasprintf("%s/refs/%s", root, f.hex);
        assert_int_equal(truncate(rp, 0), 0);
        assert_true(kiln_store_ref_get(s, "cache/x", &rf, &err) < 0);
        kiln_error_clear(&err);
        assert_int_equal(kiln_store_ref_foreach(s, count_ref, &n, &err), 0);
        assert_int_equal(n, 1);
    }
    kiln_store_close(s);
    kiln_fs_rm_rf(root, NULL);
}

/* The test fetcher: "good" writes the blob's bytes (LAZY_BYTES), "bad" other bytes of its
 * size; counts its calls. */
#define LAZY_BYTES "lazy layer bytes"
static int fetches;
static int test_fetch(kiln_store_t *s, const kiln_digest_t *d, const kiln_store_lazy_t *l,
                      kiln_error_t *err)
{
    const char *bytes = strcmp(l->source, "good") == 0 ? LAZY_BYTES : "LAZY LAYER BYTES";
    uint64_t size = l->size;
    kiln_store_writer_t *w = NULL;
    fetches++;
    if (kiln_store_writer_new(s, d, (int64_t)size, &w, err) < 0)
        return -1;
    if (kiln_store_writer_write(w, bytes, strlen(bytes), err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    return kiln_store_writer_commit(w, NULL, NULL, err);
}

/* A lazy record parsed: size positive, usize absent or non-negative, a source that fits; out
 * untouched on a refusal. A registry source's image name is what lies between its prefix and
 * the first '@', when it fits the buffer. */
static void test_lazy_parse(void **state)
{
    kiln_store_lazy_t l = {.size = 7};
    char name[16];
    (void)state;
#define P(s) kiln_store_lazy_parse(s, strlen(s), &l)
    assert_int_equal(P("{\"size\":5,\"source\":\"s3 b/k\"}"), 0);
    assert_int_equal(l.size, 5);
    assert_int_equal(l.usize, 0);
    assert_string_equal(l.source, "s3 b/k");
    assert_int_equal(P("{\"size\":6,\"usize\":9,\"source\":\"x\"}"), 0);
    assert_int_equal(l.usize, 9);
    assert_int_equal(P("{\"size\":1,\"usize\":-1,\"source\":\"x\"}"), -1);
    assert_int_equal(P("{\"size\":1,\"usize\":\"9\",\"source\":\"x\"}"), -1);
    assert_int_equal(P("{\"size\":0,\"source\":\"x\"}"), -1);
    assert_int_equal(P("{\"size\":1}"), -1);
    assert_int_equal(P("[1]"), -1);
    assert_int_equal(l.size, 6); /* the refusals left it as it was */
#undef P
    assert_int_equal(kiln_store_lazy_source_name("registry r.io/a/b@sha256:x", name, sizeof(name)),
                     1);
    assert_string_equal(name, "r.io/a/b");
    assert_int_equal(
        kiln_store_lazy_source_name("registry-insecure h:5/n@sha256:x", name, sizeof(name)), 1);
    assert_string_equal(name, "h:5/n");
    assert_int_equal(kiln_store_lazy_source_name("registry no-digest", name, sizeof(name)), 0);
    assert_int_equal(kiln_store_lazy_source_name("s3 b@k", name, sizeof(name)), 0);
    assert_int_equal(
        kiln_store_lazy_source_name("registry a-name-too-long/for/16@d", name, sizeof(name)), 0);
}

/* Lazy blobs: recorded without their bytes, has() says 0, an open fetches them (digest checked:
 * other bytes fail naming the blob and leave nothing), without a fetcher the open fails saying
 * what fetches it; prune keeps the record of a reachable one (not a dangling ref) and drops
 * those nothing names or that were fetched. */
static void test_lazy_blobs(void **state)
{
    _cleanup_free_ char *root = make_root();
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_store_lazy_t lz;
    kiln_store_prune_stats_t st = {0};
    kiln_digest_t d, other, nobody;
    uint64_t size = 0;
    int fd = -1;
    (void)state;

    kiln_digest_bytes(LAZY_BYTES, strlen(LAZY_BYTES), &d);
    kiln_digest_bytes("x", 1, &other);
    kiln_digest_bytes("y", 1, &nobody);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_lazy_note(s, &d, strlen(LAZY_BYTES), 99, "bad", NULL, &err), 0);
    /* registry settings ride along, as given; one that is not an object is refused */
    assert_int_equal(kiln_store_lazy_note(s, &nobody, 1, 0, "good", "{\"ca\":\"/x.pem\"}", &err),
                     0);
    assert_int_equal(kiln_store_lazy_get(s, &nobody, &lz, &err), 1);
    assert_string_equal(lz.via, "{\"ca\":\"/x.pem\"}");
    assert_int_equal(kiln_store_lazy_note(s, &nobody, 1, 0, "good", "[1]", &err), -1);
    assert_non_null(strstr(err.msg, nobody.hex));
    assert_int_equal(kiln_store_has(s, &d, NULL), 0);
    assert_int_equal(kiln_store_lazy_get(s, &d, &lz, &err), 1);
    assert_int_equal(lz.size, strlen(LAZY_BYTES));
    assert_int_equal(lz.usize, 99);
    assert_string_equal(lz.source, "bad");
    assert_string_equal(lz.via, "");
    assert_int_equal(kiln_store_lazy_get(s, &other, &lz, &err), 0);
    /* no fetcher: the error names the blob and its source */
    kiln_store_set_fetcher(NULL);
    assert_int_equal(kiln_store_open_blob(s, &d, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, d.hex));
    assert_non_null(strstr(err.msg, "lazy blob of bad"));
    /* other bytes: the store writer refuses them, nothing kept */
    kiln_store_set_fetcher(test_fetch);
    fetches = 0;
    assert_int_equal(kiln_store_open_blob(s, &d, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "fetching lazy blob sha256:"));
    assert_non_null(strstr(err.msg, "does not match its digest"));
    assert_int_equal(kiln_store_has(s, &d, NULL), 0);
    assert_int_equal(fetches, 1);
    /* the right bytes: fetched once, then opened like any blob */
    assert_int_equal(kiln_store_lazy_note(s, &d, strlen(LAZY_BYTES), 99, "good", NULL, &err), 0);
    assert_int_equal(kiln_store_open_blob(s, &d, &fd, &size, &err), 0);
    close(fd);
    assert_int_equal(size, strlen(LAZY_BYTES));
    assert_int_equal(kiln_store_has(s, &d, NULL), 1);
    assert_int_equal(kiln_store_open_blob(s, &d, &fd, NULL, &err), 0);
    close(fd);
    assert_int_equal(fetches, 2);
    /* a blob in the store is never recorded */
    assert_int_equal(kiln_store_lazy_note(s, &d, strlen(LAZY_BYTES), 0, "bad", NULL, &err), 0);
    assert_int_equal(kiln_store_lazy_get(s, &d, &lz, &err), 1);
    assert_string_equal(lz.source, "good");
    /* prune: a ref to a lazy blob is not dangling; records of unreachable or fetched blobs go */
    assert_int_equal(kiln_store_lazy_note(s, &other, 1, 0, "good", NULL, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "cache/lazy", &other, &err), 0);
    assert_int_equal(kiln_store_ref_set(s, "cache/fetched", &d, &err), 0);
    kiln_store_close(s);
    assert_int_equal(kiln_store_prune(root, 1, 0, &st, &err), 0);
    assert_int_equal(st.refs_dangling, 0);
    assert_int_equal(st.blobs_lazy, 1);
    assert_int_equal(st.lazy_removed, 2); /* nobody's, and d's (fetched) */
    assert_int_equal(count_entries(root, "lazy"), 1);
    assert_int_equal(kiln_store_open(root, &s, &err), 0);
    assert_int_equal(kiln_store_lazy_get(s, &other, &lz, &err), 1);
    kiln_store_close(s);
    kiln_store_set_fetcher(NULL);
    kiln_fs_rm_rf(root, NULL);
}

/* Lazy blobs of cache namespaces sharing one root: each namespace sees its own records only
 * (not the shared ones, nor another's); a blob in the store that the namespace has not fetched
 * itself is fetched again from its own record's source before an open returns it (other
 * bytes: refused naming the blob, the blob not marked as the namespace's); a handle keeps
 * one namespace; prune counts a blob a namespace records as lazy, not dangling, and drops the
 * namespaces' records of unreachable blobs. */
static void test_lazy_namespaces(void **state)
{
    _cleanup_free_ char *root = make_root();
    _cleanup_free_ char *mark_a = NULL, *mark_b = NULL, *shared = NULL;
    kiln_store_t *sa = NULL, *sb = NULL, *s0 = NULL;
    kiln_error_t err = {0};
    kiln_store_lazy_t lz;
    kiln_store_prune_stats_t st = {0};
    kiln_digest_t d, other;
    int fd = -1;
    (void)state;

    kiln_digest_bytes(LAZY_BYTES, strlen(LAZY_BYTES), &d);
    mark_a = kiln_xasprintf("%s/ns/a/blobs/%s", root, d.hex);
    mark_b = kiln_xasprintf("%s/ns/b/blobs/%s", root, d.hex);
    shared = kiln_xasprintf("%s/lazy/%s", root, d.hex);
    kiln_store_set_fetcher(test_fetch);
    fetches = 0;
    assert_int_equal(kiln_store_open(root, &sa, &err), 0);
    assert_int_equal(kiln_store_open(root, &sb, &err), 0);
    assert_int_equal(kiln_store_open(root, &s0, &err), 0);
    assert_int_equal(kiln_store_set_namespace(sa, "a", &err), 0);
    assert_int_equal(kiln_store_set_namespace(sa, "a", &err), 0);
    assert_int_equal(kiln_store_set_namespace(sa, "b", &err), -1);
    assert_non_null(strstr(err.msg, "namespace a already"));
    assert_int_equal(kiln_store_set_namespace(sb, "b", &err), 0);
    assert_string_equal(kiln_store_namespace(sb), "b");
    assert_null(kiln_store_namespace(s0));
    /* a's record is a's: not shared, not b's, not the CLI's */
    assert_int_equal(kiln_store_lazy_note(sa, &d, strlen(LAZY_BYTES), 7, "good", NULL, &err), 0);
    assert_int_equal(access(shared, F_OK), -1);
    assert_int_equal(kiln_store_lazy_get(sa, &d, &lz, &err), 1);
    assert_int_equal(kiln_store_lazy_get(sb, &d, &lz, &err), 0);
    assert_int_equal(kiln_store_lazy_get(s0, &d, &lz, &err), 0);
    assert_int_equal(kiln_store_open_blob(sb, &d, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not in store"));
    assert_int_equal(fetches, 0);
    /* a's open fetches it from a's source and marks it a's */
    assert_false(kiln_store_ns_knows(sa, &d));
    assert_int_equal(kiln_store_open_blob(sa, &d, &fd, NULL, &err), 0);
    close(fd);
    assert_int_equal(fetches, 1);
    assert_true(kiln_store_ns_knows(sa, &d));
    assert_int_equal(access(mark_a, F_OK), 0);
    /* the bytes are here now, but not b's: b's record whose source serves other bytes fails
     * naming the blob, and b is not given them */
    assert_false(kiln_store_ns_knows(sb, &d));
    assert_int_equal(kiln_store_lazy_note(sb, &d, strlen(LAZY_BYTES), 0, "bad", NULL, &err), 0);
    assert_int_equal(kiln_store_open_blob(sb, &d, &fd, NULL, &err), -1);
    assert_non_null(strstr(err.msg, d.hex));
    assert_non_null(strstr(err.msg, "does not match its digest"));
    assert_int_equal(fetches, 2);
    assert_int_equal(access(mark_b, F_OK), -1);
    assert_int_equal(kiln_store_has(sb, &d, NULL), 1); /* a's blob is untouched */
    /* b's own source serving the bytes: fetched again (proof), then b's */
    assert_int_equal(kiln_store_lazy_note(sb, &d, strlen(LAZY_BYTES), 0, "good", NULL, &err), 0);
    assert_int_equal(kiln_store_open_blob(sb, &d, &fd, NULL, &err), 0);
    close(fd);
    assert_int_equal(fetches, 3);
    assert_int_equal(access(mark_b, F_OK), 0);
    assert_int_equal(kiln_store_open_blob(sb, &d, &fd, NULL, &err), 0);
    close(fd);
    assert_int_equal(fetches, 3);
    /* a blob the namespace has is never recorded again */
    assert_int_equal(kiln_store_lazy_note(sa, &d, strlen(LAZY_BYTES), 0, "bad", NULL, &err), 0);
    assert_int_equal(kiln_store_lazy_get(sa, &d, &lz, &err), 1);
    assert_string_equal(lz.source, "good");
    /* prune: a ref to a blob only a namespace records is not dangling; the namespaces' records
     * of unreachable blobs go (d's, fetched, goes as unreachable), a reachable one stays */
    kiln_digest_bytes("x", 1, &other);
    assert_int_equal(kiln_store_lazy_note(sa, &other, 1, 0, "good", NULL, &err), 0);
    assert_int_equal(kiln_store_ref_set(sa, "cache/ns/a/x", &other, &err), 0);
    kiln_store_close(sa);
    kiln_store_close(sb);
    kiln_store_close(s0);
    assert_int_equal(kiln_store_prune(root, 1, 0, &st, &err), 0);
    assert_int_equal(st.refs_dangling, 0);
    assert_int_equal(st.blobs_lazy, 1);
    assert_int_equal(st.lazy_removed, 2); /* d's record in a and in b */
    assert_int_equal(count_entries(root, "ns/a/lazy"), 1);
    assert_int_equal(count_entries(root, "ns/b/lazy"), 0);
    kiln_store_set_fetcher(NULL);
    kiln_fs_rm_rf(root, NULL);
}

static void test_default_root(void **state)
{
    char *r = kiln_store_default_root();
    if (geteuid() == 0)
        assert_string_equal(r, "/var/lib/kiln");
    else
        assert_non_null(r);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_and_read),
        cmocka_unit_test(test_writer_verify),
        cmocka_unit_test(test_large_stream),
        cmocka_unit_test(test_refs_and_prune),
        cmocka_unit_test(test_refs_expire),
        cmocka_unit_test(test_prune_vs_writer),
        cmocka_unit_test(test_nested_open_while_prune_waits),
        cmocka_unit_test(test_prune_whitespace_manifest),
        cmocka_unit_test(test_deferred_sync),
        cmocka_unit_test(test_lazy_blobs),
        cmocka_unit_test(test_lazy_parse),
        cmocka_unit_test(test_lazy_namespaces),
        cmocka_unit_test(test_default_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
