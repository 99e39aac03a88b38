/* Unit tests: job/source (a job's source on disk: an uploaded context as a directory or a
 * staged tarball, a local directory with its subdirectory; the git credential read from its
 * file and dropped from the spec). The git checkout itself runs in test_job_run.py against a
 * real git server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "job/context_notes.h"
#include "job/source.h"
#include "tmpdir.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* A tarball at path holding name with content. */
static void write_tar(const char *path, const char *name, const char *content)
{
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();

    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)strlen(content));
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, content, strlen(content)), (la_ssize_t)strlen(content));
    archive_entry_free(e);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

static void test_credential(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("jobsrc-cred"), *cred = NULL;
    _cleanup_free_ char *file = kiln_xasprintf("%s/.git", dir);
    kiln_job_spec_t s = {0};
    kiln_error_t err = {0};

    (void)state;
    assert_int_equal(tmpdir_put(dir, ".git", "x-access-token:T0K\r\nmore\n", 0600), 0);
    assert_int_equal(kiln_job_source_read_credential(file, &cred, &err), 0);
    assert_string_equal(cred, "x-access-token:T0K");
    assert_int_equal(kiln_job_source_read_credential("/nonexistent/.git", &cred, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/.git"));

    kiln_job_spec_add_secret(&s, "npm");
    kiln_job_spec_add_secret(&s, KILN_JOB_GIT_SECRET)->src = kiln_xstrdup(file);
    kiln_job_spec_add_secret(&s, "pip");
    kiln_job_source_drop_credential(&s);
    assert_int_equal(s.n_secrets, 2);
    assert_string_equal(s.secrets[0].id, "npm");
    assert_string_equal(s.secrets[1].id, "pip");
    kiln_job_spec_clear(&s);
    kiln_fs_rm_rf(dir, NULL);
}

static void test_uploaded_context(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("jobsrc-ctx");
    _cleanup_free_ char *contexts = kiln_xasprintf("%s/contexts", dir);
    _cleanup_free_ char *root = kiln_xasprintf("%s/root", dir);
    _cleanup_free_ char *tar = kiln_xasprintf("%s/ctx-cd.tar", contexts);
    _cleanup_free_ char *text = NULL, *unpacked = NULL, *checkout = NULL;
    _cleanup_free_ char *ab = kiln_xasprintf("%s/ctx-ab", contexts);
    _cleanup_free_ char *ab_file = kiln_xasprintf("%s/ctx-ab/Dockerfile", contexts);
    kiln_job_spec_t s = {.source_kind = KILN_JOB_SOURCE_CONTEXT};
    kiln_job_source_opts_t o = {.root = root, .contexts_dir = contexts};
    kiln_auto_source_t src = {0};
    kiln_error_t err = {0};
    struct stat st;

    (void)state;
    assert_int_equal(kiln_fs_mkdir_p(ab, 0755, NULL), 0);
    assert_int_equal(tmpdir_put(ab, "Dockerfile", "FROM scratch\n", 0644), 0);
    /* unpacked already (kiln serve's uploads): that directory is the source */
    s.source = kiln_xstrdup("ctx-ab");
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), 0);
    assert_string_equal(src.dir, ab);
    assert_string_equal(src.display, "ctx-ab");
    assert_null(src.checkout);
    assert_null(src.commit);
    kiln_auto_source_release(&src);
    assert_int_equal(stat(ab_file, &st), 0); /* the server's upload stays */

    /* a staged tarball (kiln worker): unpacked under the kiln root, removed with the source */
    free(s.source);
    s.source = kiln_xstrdup("ctx-cd");
    write_tar(tar, "Dockerfile", "FROM scratch\nCOPY . /\n");
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), 0);
    assert_non_null(src.checkout);
    assert_int_equal(strncmp(src.checkout, root, strlen(root)), 0);
    unpacked = kiln_xasprintf("%s/Dockerfile", src.dir);
    assert_int_equal(kiln_fs_read_file(unpacked, 1024, &text, NULL, &err), 0);
    assert_string_equal(text, "FROM scratch\nCOPY . /\n");
    checkout = kiln_xstrdup(src.checkout);
    kiln_auto_source_release(&src);
    assert_int_equal(stat(checkout, &st), -1);

    /* one that is not there, or no place to look: named */
    free(s.source);
    s.source = kiln_xstrdup("ctx-ef");
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), -1);
    assert_non_null(strstr(err.msg, "field 'source.context': no uploaded context 'ctx-ef'"));
    o.contexts_dir = NULL;
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), -1);
    assert_non_null(strstr(err.msg, "--contexts-dir"));
    kiln_job_spec_clear(&s);
    kiln_fs_rm_rf(dir, NULL);
}

static void test_directory(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("jobsrc-dir");
    _cleanup_free_ char *web = kiln_xasprintf("%s/apps/web", dir);
    kiln_job_spec_t s = {.local = 1, .source_kind = KILN_JOB_SOURCE_DIR};
    kiln_job_source_opts_t o = {0};
    kiln_auto_source_t src = {0};
    kiln_error_t err = {0};

    (void)state;
    assert_int_equal(kiln_fs_mkdir_p(web, 0755, NULL), 0);
    assert_int_equal(tmpdir_put(web, "Dockerfile", "FROM scratch\n", 0644), 0);
    s.source = kiln_xstrdup(dir);
    s.subdir = kiln_xstrdup("apps/web");
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), 0);
    assert_string_equal(src.top, dir);
    assert_string_equal(src.dir, web);
    assert_string_equal(src.subdir, "apps/web");
    kiln_auto_source_release(&src);
    free(s.subdir);
    s.subdir = kiln_xstrdup("../..");
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), -1);
    assert_non_null(strstr(err.msg, "without '..'"));
    free(s.source);
    s.source = kiln_xstrdup("-");
    assert_int_equal(kiln_job_source_fetch(&s, &o, &src, &err), -1);
    assert_non_null(strstr(err.msg, "stdin"));
    kiln_job_spec_clear(&s);
    kiln_fs_rm_rf(dir, NULL);
}

/* The notes of an unpack (job/context_notes) read back as written; a foreign, truncated or
 * oversized file is refused naming it, nothing returned. */
static void test_context_notes(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("notes");
    _cleanup_free_ char *path = kiln_xasprintf("%s/ctx.notes", dir);
    kiln_context_notes_t n = {0}, back = {0};
    unsigned char oid[KILN_CONTEXT_OID_LEN];
    struct stat st = {.st_dev = 7, .st_ino = 42, .st_size = 5, .st_mode = S_IFREG | 0644};
    kiln_error_t err = {0};
    char *text = NULL;
    size_t len = 0;

    (void)state;
    memset(oid, 0xab, sizeof(oid));
    st.st_mtim.tv_sec = 1700000000;
    st.st_mtim.tv_nsec = 123;
    st.st_ctim.tv_sec = 1700000001;
    kiln_context_notes_add(&n, "./src/a.txt", &st, oid);
    st.st_ino = 43;
    kiln_context_notes_add(&n, "b", &st, oid);
    assert_int_equal(kiln_context_notes_save(&n, path, &err), 0);
    assert_int_equal(kiln_context_notes_load(path, 0, &back, &err), 0);
    assert_int_equal(back.n, 2);
    assert_string_equal(back.v[0].member, "src/a.txt");
    assert_int_equal(back.v[0].st.st_ino, 42);
    assert_int_equal(back.v[0].st.st_mtim.tv_nsec, 123);
    assert_int_equal(back.v[0].st.st_ctim.tv_sec, 1700000001);
    assert_int_equal(back.v[1].st.st_size, 5);
    assert_memory_equal(back.v[1].oid, oid, sizeof(oid));
    kiln_context_notes_clear(&back);
    /* one entry more than the cap */
    assert_int_equal(kiln_context_notes_load(path, 1, &back, &err), -1);
    assert_non_null(strstr(err.msg, "past its caps"));
    assert_int_equal(back.n, 0);
    /* cut in the middle of a record */
    assert_int_equal(kiln_fs_read_file(path, 1 << 20, &text, &len, NULL), 0);
    assert_int_equal(kiln_fs_write_file_atomic(path, text, len - 3, 0600, NULL), 0);
    assert_int_equal(kiln_context_notes_load(path, 0, &back, &err), -1);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(kiln_fs_write_file_atomic(path, "hello", 5, 0600, NULL), 0);
    assert_int_equal(kiln_context_notes_load(path, 0, &back, &err), -1);
    assert_non_null(strstr(err.msg, "not a context notes file"));
    /* a link (even to a good notes file) and a fifo are not opened through / waited on */
    {
        _cleanup_free_ char *good = kiln_xasprintf("%s/good.notes", dir);
        _cleanup_free_ char *fifo = kiln_xasprintf("%s/fifo.notes", dir);
        assert_int_equal(kiln_context_notes_save(&n, good, &err), 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink(good, path), 0);
        assert_int_equal(kiln_context_notes_load(path, 0, &back, &err), -1);
        assert_non_null(strstr(err.msg, "ctx.notes: a symbolic link, not a context notes file"));
        assert_int_equal(back.n, 0);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(kiln_context_notes_load(fifo, 0, &back, &err), -1);
        assert_non_null(strstr(err.msg, "fifo.notes: not a regular file"));
    }
    free(text);
    kiln_context_notes_clear(&n);
    kiln_fs_rm_rf(dir, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credential),
        cmocka_unit_test(test_uploaded_context),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_context_notes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
