/* Unit tests for export/: each output type's option checks, and the local, tar, OCI layout and
 * function exporters writing a real one-layer image from a store into a temp directory (modes
 * kept, links written as links and never followed on the host, the typed results reported). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "export/export.h"
#include "job/spec.h"
#include "oci/image.h"
#include "oci/layer_write.h"
#include "oci/layout.h"
#include "oci/store.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define MARKER_TEXT "host marker: must stay as it is\n"

typedef struct fixture {
    char *base;   /* temp directory holding everything */
    char *marker; /* a file on the "host" the image's links point at */
    kiln_store_t *store;
    kiln_descriptor_t layer, manifest;
    const char *tags[2];
    kiln_export_image_t img;
    /* the results reported */
    char *types[8], *locations[8], *digests[8];
    uint64_t bytes[8];
    size_t n;
} fixture_t;

/* An output given as `kiln build -o` text, checked as kiln build checks it: added to a local
 * job spec and the spec validated (job/spec.h). */
static int validate_output(const char *text, kiln_error_t *err)
{
    kiln_job_spec_t spec = {.local = 1, .source_kind = KILN_JOB_SOURCE_DIR};
    int r;

    spec.source = kiln_xstrdup(".");
    kiln_job_spec_add_str(&spec.tags, &spec.n_tags, "example.test/app:1");
    r = kiln_job_spec_add_output_text(&spec, text, err) < 0 ? -1
                                                            : kiln_job_spec_validate(&spec, err);
    kiln_job_spec_clear(&spec);
    return r;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    kiln_error_t err = {0};
    if (kiln_fs_write_file_atomic(path, text, strlen(text), mode, &err) < 0)
        fail_msg("write %s: %s", path, err.msg);
    assert_int_equal(chmod(path, mode), 0);
}

/* The image's tree: an executable, a private file, a private directory, a link to the host's
 * marker (absolute) and one climbing out with "..". */
static void make_tree(const char *src, const char *marker)
{
    _cleanup_free_ char *bin = kiln_xasprintf("%s/bin", src);
    _cleanup_free_ char *run = kiln_xasprintf("%s/bin/run", src);
    _cleanup_free_ char *conf = kiln_xasprintf("%s/conf", src);
    _cleanup_free_ char *priv = kiln_xasprintf("%s/private", src);
    _cleanup_free_ char *abs = kiln_xasprintf("%s/abs-link", src);
    _cleanup_free_ char *up = kiln_xasprintf("%s/up-link", src);

    assert_int_equal(mkdir(src, 0755), 0);
    assert_int_equal(mkdir(bin, 0755), 0);
    assert_int_equal(mkdir(priv, 0700), 0);
    assert_int_equal(chmod(priv, 0700), 0);
    write_text(run, "#!/bin/sh\necho hi\n", 0755);
    write_text(conf, "secret=no\n", 0640);
    assert_int_equal(symlink(marker, abs), 0);
    assert_int_equal(symlink("../../../host/marker", up), 0);
}

static void on_result(void *ud, const kiln_export_result_t *r)
{
    fixture_t *f = ud;
    assert_true(f->n < 8);
    f->types[f->n] = kiln_xstrdup(r->type);
    f->locations[f->n] = kiln_xstrdup(r->location);
    f->digests[f->n] = r->digest ? kiln_xstrdup(r->digest) : NULL;
    f->bytes[f->n] = r->bytes;
    f->n++;
}

static int setup(void **state)
{
    fixture_t *f = kiln_xmalloc(sizeof(*f));
    char tmpl[] = "/tmp/kiln-export-XXXXXX";
    kiln_error_t err = {0};
    kiln_store_writer_t *w = NULL;
    kiln_layer_opts_t lo;
    kiln_layer_info_t info;
    kiln_descriptor_t cfg = {0};
    json_t *config, *m;
    kiln_sink_t sink;

    memset(f, 0, sizeof(*f));
    assert_non_null(mkdtemp(tmpl));
    f->base = kiln_xstrdup(tmpl);
    {
        _cleanup_free_ char *host = kiln_xasprintf("%s/host", f->base);
        _cleanup_free_ char *src = kiln_xasprintf("%s/src", f->base);
        _cleanup_free_ char *root = kiln_xasprintf("%s/store", f->base);
        assert_int_equal(mkdir(host, 0755), 0);
        f->marker = kiln_xasprintf("%s/marker", host);
        write_text(f->marker, MARKER_TEXT, 0644);
        make_tree(src, f->marker);
        if (kiln_store_open(root, &f->store, &err) < 0)
            fail_msg("store: %s", err.msg);
        assert_int_equal(kiln_store_writer_new(f->store, NULL, -1, &w, &err), 0);
        sink = kiln_store_writer_sink(w);
        kiln_layer_opts_init(&lo);
        if (kiln_layer_write_dir(src, &lo, &sink, &info, &err) < 0)
            fail_msg("layer: %s", err.msg);
        assert_int_equal(kiln_store_writer_commit(w, &f->layer.digest, &f->layer.size, &err), 0);
    }
    snprintf(f->layer.media_type, sizeof(f->layer.media_type), "%s", info.media_type);
    config = kiln_image_config_new("amd64", "linux");
    kiln_image_config_add_diff_id(config, &info.diff_id);
    assert_int_equal(kiln_image_store_put(f->store, config, KILN_MT_OCI_CONFIG, &cfg, &err), 0);
    m = kiln_image_manifest_new(&cfg, &f->layer, 1, NULL);
    assert_int_equal(kiln_image_store_put(f->store, m, KILN_MT_OCI_MANIFEST, &f->manifest, &err),
                     0);
    json_decref(m);
    json_decref(config);
    kiln_descriptor_clear(&cfg);
    f->tags[0] = "localhost:5000/app:v1";
    f->img = (kiln_export_image_t){.store = f->store,
                                   .manifest = &f->manifest,
                                   .layers = &f->layer,
                                   .n_layers = 1,
                                   .tags = f->tags,
                                   .n_tags = 1};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kiln_fs_rm_rf(f->base, NULL);
    for (size_t i = 0; i < f->n; i++) {
        free(f->types[i]);
        free(f->locations[i]);
        free(f->digests[i]);
    }
    kiln_store_close(f->store);
    kiln_descriptor_clear(&f->manifest);
    kiln_descriptor_clear(&f->layer);
    free(f->marker);
    free(f->base);
    free(f);
    return 0;
}

static kiln_export_ctx_t ctx_of(fixture_t *f)
{
    static char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s/tmp", f->base);
    return (kiln_export_ctx_t){.tmp_dir = tmp, .result = on_result, .result_ud = f};
}

static void assert_marker_intact(const fixture_t *f)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    kiln_error_t err = {0};
    struct stat st;
    assert_int_equal(kiln_fs_read_file(f->marker, 4096, &text, &len, &err), 0);
    assert_int_equal(len, strlen(MARKER_TEXT));
    assert_memory_equal(text, MARKER_TEXT, len);
    assert_int_equal(lstat(f->marker, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
}

static mode_t mode_of(const char *dir, const char *name)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, name);
    struct stat st;
    if (lstat(p, &st) < 0)
        fail_msg("lstat %s: %s", p, strerror(errno));
    return st.st_mode;
}

static void assert_link(const char *dir, const char *name, const char *target)
{
    _cleanup_free_ char *p = kiln_xasprintf("%s/%s", dir, name);
    char buf[4096];
    ssize_t n = readlink(p, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, target);
}

/* The entry called name (or "./name") in the tar or zip at path: its type and permissions and,
 * for a symlink, its target (malloc'ed). 0 when found. */
static int entry_of(const char *path, const char *name, mode_t *type, mode_t *perm, char **link)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int found = -1;

    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    assert_int_equal(archive_read_open_filename(a, path, 65536), ARCHIVE_OK);
    while (found < 0 && archive_read_next_header(a, &e) == ARCHIVE_OK) {
        const char *n = archive_entry_pathname(e);
        if (strncmp(n, "./", 2) == 0)
            n += 2;
        if (strcmp(n, name) != 0)
            continue;
        *type = archive_entry_filetype(e);
        *perm = archive_entry_perm(e);
        *link = archive_entry_symlink(e) ? kiln_xstrdup(archive_entry_symlink(e)) : NULL;
        found = 0;
    }
    archive_read_free(a);
    return found;
}

/* Exactly one result was reported: of type, at location. */
static void assert_one_result(const fixture_t *f, const char *type, const char *location)
{
    assert_int_equal(f->n, 1);
    assert_string_equal(f->types[0], type);
    assert_string_equal(f->locations[0], location);
}

/* Every type's options are checked before any work: good ones pass, bad ones name what is
 * wrong. */
static void test_validate(void **state)
{
    static const char *good[] = {
        "type=local,dest=out",
        "type=tar,dest=out.tar",
        "type=oci,dest=out,tar=true",
        "type=docker,dest=img.tar",
        "type=function,dest=fn/fn.zip",
        "type=registry,name=localhost:5000/a:b",
        "type=image,push=false",
        "type=image,name=x,push=true,ecr-create-repository=false",
        "type=s3,dest=s3://bucket-1/site,cache-control=public, max-age=60,concurrency=4",
    };
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"type=nope,dest=x", "field 'outputs[0].type': unknown output type 'nope' (local, oci"},
        {"type=oci", "field 'outputs[0].dest': type=oci needs a dest"},
        {"type=local,dest=x,bogus=1", "field 'outputs[0].bogus': not an option of type=local"},
        {"type=oci,dest=x,tar=maybe", "field 'outputs[0].tar': must be true or false"},
        {"type=registry,push=2", "field 'outputs[0].push': must be true or false"},
        {"type=tar,dest=a,dest=b", "key 'dest' given twice"},
        {"dest=x", "missing type="},
        {"type=s3,dest=s3://Bad_Bucket/p", "is not a valid bucket name"},
        {"type=s3,dest=s3://ab/p", "must be 3 to 63 characters"},
        {"type=s3,dest=/tmp/x", "dest must be an s3:// URL"},
        {"type=s3,dest=s3://bucket/p,concurrency=0", "bad concurrency"},
    };
    kiln_error_t err = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (validate_output(good[i], &err) < 0)
            fail_msg("refused '%s': %s", good[i], err.msg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_error_t e = {0};
        if (validate_output(bad[i].spec, &e) == 0)
            fail_msg("accepted '%s'", bad[i].spec);
        if (strstr(e.msg, bad[i].msg) == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].spec, e.msg, bad[i].msg);
    }
    assert_non_null(kiln_exporter_find("registry"));
    assert_null(kiln_exporter_find("nope"));
    assert_true(kiln_exporter_find("local")->file);
    assert_false(kiln_exporter_find("s3")->file);
    assert_true(kiln_export_key_is_bool("tar"));
    assert_false(kiln_export_key_is_bool("dest"));
}

/* Runs the output type=TYPE,dest=BASE/REL and returns dest (malloc'ed); fails the test on
 * an error. */
static char *export_to(fixture_t *f, kiln_export_ctx_t *ctx, const char *type, const char *rel)
{
    char *dest = kiln_xasprintf("%s/%s", f->base, rel);
    _cleanup_free_ char *spec = kiln_xasprintf("type=%s,dest=%s", type, dest);
    kiln_error_t err = {0};

    if (kiln_export_run(ctx, &f->img, spec, &err) < 0)
        fail_msg("%s: %s", spec, err.msg);
    return dest;
}

/* type=local: the files with their modes, links as links with their targets as written, the
 * host's file behind them neither read through nor written; a "local" result naming dest. */
static void test_local(void **state)
{
    fixture_t *f = *state;
    kiln_export_ctx_t ctx = ctx_of(f);
    _cleanup_free_ char *dest = export_to(f, &ctx, "local", "out/site");

    assert_true(S_ISREG(mode_of(dest, "bin/run")));
    assert_int_equal(mode_of(dest, "bin/run") & 07777, 0755);
    assert_int_equal(mode_of(dest, "conf") & 07777, 0640);
    assert_true(S_ISDIR(mode_of(dest, "private")));
    assert_int_equal(mode_of(dest, "private") & 07777, 0700);
    assert_true(S_ISLNK(mode_of(dest, "abs-link")));
    assert_link(dest, "abs-link", f->marker);
    assert_true(S_ISLNK(mode_of(dest, "up-link")));
    assert_link(dest, "up-link", "../../../host/marker");
    assert_marker_intact(f);
    assert_one_result(f, "local", dest);
    kiln_export_ctx_clear(&ctx);
}

/* type=tar: one uncompressed tarball at dest, renamed into place (no temp file left), holding
 * the modes and the links as symlink entries; a "tar" result with its size. */
static void test_tar(void **state)
{
    fixture_t *f = *state;
    kiln_export_ctx_t ctx = ctx_of(f);
    _cleanup_free_ char *dir = kiln_xasprintf("%s/t", f->base);
    _cleanup_free_ char *dest = export_to(f, &ctx, "tar", "t/fs.tar");
    _cleanup_free_ char *link = NULL, *none = NULL;
    mode_t type = 0, perm = 0;
    struct stat st;
    DIR *d;
    struct dirent *de;

    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(entry_of(dest, "bin/run", &type, &perm, &none), 0);
    assert_int_equal(type, AE_IFREG);
    assert_int_equal(perm, 0755);
    assert_int_equal(entry_of(dest, "abs-link", &type, &perm, &link), 0);
    assert_int_equal(type, AE_IFLNK);
    assert_string_equal(link, f->marker);
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "fs.tar") != 0)
            fail_msg("left behind: %s", de->d_name);
    closedir(d);
    assert_marker_intact(f);
    assert_one_result(f, "tar", dest);
    assert_true(f->bytes[0] > 0 && f->bytes[0] == (uint64_t)st.st_size);
    kiln_export_ctx_clear(&ctx);
}

/* type=oci: the layout's oci-layout and index.json (one manifest: the image's digest, media
 * type and size, named by the first tag), the blobs present; an "oci" result with the digest. */
static void test_oci_layout(void **state)
{
    fixture_t *f = *state;
    kiln_export_ctx_t ctx = ctx_of(f);
    _cleanup_free_ char *dest = export_to(f, &ctx, "oci", "layout");
    _cleanup_free_ char *index = kiln_xasprintf("%s/index.json", dest);
    _cleanup_free_ char *hdr = kiln_xasprintf("%s/oci-layout", dest);
    char ds[KILN_DIGEST_STR_MAX];
    json_error_t je;
    json_t *ix, *m, *ann;
    struct stat st;

    kiln_digest_str(&f->manifest.digest, ds);
    ix = json_load_file(index, 0, &je);
    assert_non_null(ix);
    assert_int_equal(json_integer_value(json_object_get(ix, "schemaVersion")), 2);
    assert_int_equal(json_array_size(json_object_get(ix, "manifests")), 1);
    m = json_array_get(json_object_get(ix, "manifests"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "mediaType")), KILN_MT_OCI_MANIFEST);
    assert_string_equal(json_string_value(json_object_get(m, "digest")), ds);
    assert_int_equal(json_integer_value(json_object_get(m, "size")), f->manifest.size);
    ann = json_object_get(m, "annotations");
    assert_string_equal(json_string_value(json_object_get(ann, KILN_ANNOT_REF_NAME)), "v1");
    assert_string_equal(json_string_value(json_object_get(ann, KILN_ANNOT_CONTAINERD_NAME)),
                        "localhost:5000/app:v1");
    json_decref(ix);
    assert_int_equal(stat(hdr, &st), 0);
    {
        _cleanup_free_ char *blob = kiln_xasprintf("%s/blobs/sha256/%s", dest, strchr(ds, ':') + 1);
        assert_int_equal(stat(blob, &st), 0);
        assert_int_equal((uint64_t)st.st_size, f->manifest.size);
    }
    assert_one_result(f, "oci", dest);
    assert_string_equal(f->digests[0], ds);
    kiln_export_ctx_clear(&ctx);
}

/* type=docker: a `docker load` archive whose manifest.json names the config, the layer and the
 * tags; a "docker" result with the digest. */
static void test_docker(void **state)
{
    fixture_t *f = *state;
    kiln_export_ctx_t ctx = ctx_of(f);
    _cleanup_free_ char *dest = export_to(f, &ctx, "docker", "img.tar");
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    json_t *m = NULL;
    json_error_t je;

    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_filename(a, dest, 65536), ARCHIVE_OK);
    while (m == NULL && archive_read_next_header(a, &e) == ARCHIVE_OK)
        if (strcmp(archive_entry_pathname(e), "manifest.json") == 0) {
            char buf[8192];
            la_ssize_t n = archive_read_data(a, buf, sizeof(buf) - 1);
            assert_true(n > 0);
            buf[n] = '\0';
            m = json_loads(buf, 0, &je);
        }
    archive_read_free(a);
    assert_non_null(m);
    assert_int_equal(json_array_size(m), 1);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(json_array_get(m, 0), "RepoTags"), 0)),
        "localhost:5000/app:v1");
    assert_int_equal(json_array_size(json_object_get(json_array_get(m, 0), "Layers")), 1);
    json_decref(m);
    assert_one_result(f, "docker", dest);
    assert_non_null(f->digests[0]);
    kiln_export_ctx_clear(&ctx);
}

/* type=function: only for a function plan's build; then a zip of the tree (links stored as
 * links) and function.json beside it naming the handler. Unknown types are refused. */
static void test_function_and_unsupported(void **state)
{
    fixture_t *f = *state;
    kiln_export_ctx_t ctx = ctx_of(f);
    kiln_error_t err = {0};
    _cleanup_free_ char *zip = kiln_xasprintf("%s/fn/fn.zip", f->base);
    _cleanup_free_ char *fjson = kiln_xasprintf("%s/fn/function.json", f->base);
    _cleanup_free_ char *spec = kiln_xasprintf("type=function,dest=%s", zip);
    _cleanup_free_ char *link = NULL;
    mode_t type = 0, perm = 0;
    json_error_t je;
    json_t *j;
    struct stat st;

    assert_int_equal(kiln_export_run(&ctx, &f->img, spec, &err), -1);
    assert_non_null(strstr(err.msg, "unsupported output type=function"));
    assert_int_equal(stat(zip, &st), -1);

    ctx.function = 1;
    ctx.function_handler = "app.main";
    if (kiln_export_run(&ctx, &f->img, spec, &err) < 0)
        fail_msg("function: %s", err.msg);
    j = json_load_file(fjson, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "handler")), "app.main");
    assert_string_equal(json_string_value(json_object_get(j, "runtime")), "provided.al2023");
    assert_string_equal(json_string_value(json_object_get(j, "zip")), "fn.zip");
    json_decref(j);
    assert_int_equal(entry_of(zip, "abs-link", &type, &perm, &link), 0);
    assert_int_equal(type, AE_IFLNK);
    assert_string_equal(link, f->marker);
    assert_marker_intact(f);
    assert_one_result(f, "function", zip);
    assert_int_equal(stat(zip, &st), 0);
    assert_int_equal(f->bytes[0], (uint64_t)st.st_size);

    assert_int_equal(kiln_export_run(&ctx, &f->img, "type=nope,dest=x", &err), -1);
    assert_non_null(strstr(err.msg, "unsupported output type=nope,dest=x"));
    kiln_export_ctx_clear(&ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test_setup_teardown(test_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oci_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_and_unsupported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
