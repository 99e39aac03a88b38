/* kiln — the function exporter: type=function,dest=FILE.zip writes a Lambda deployment
 * package from the function stage of an auto-build: the image's filesystem zipped (sorted,
 * fixed timestamps, links stored as links) and function.json (handler, runtime, zip name,
 * sha256) beside it. Only a build of a function plan has one (ctx->function). */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export/exporters.h"
#include "oci/digest.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Adds `rel` (file, symlink or directory, recursively) under `base` to the zip. */
static int zip_add(struct archive *a, const char *base, const char *rel, int depth,
                   kiln_error_t *err)
{
    _cleanup_free_ char *path = rel[0] ? kiln_xasprintf("%s/%s", base, rel) : kiln_xstrdup(base);
    struct dirent **names = NULL;
    struct archive_entry *e;
    struct stat st;
    int n, ret = 0;

    if (depth > 64)
        return kiln_error_set(err, ELOOP, "function: %s is nested too deep", path);
    if (lstat(path, &st) < 0)
        return kiln_error_set(err, errno, "function: stat %s", path);
    if (rel[0]) {
        e = archive_entry_new();
        archive_entry_set_pathname(e, rel);
        archive_entry_set_mode(e, st.st_mode);
        archive_entry_set_mtime(e, 315532800, 0); /* 1980-01-01: the zip epoch */
        if (S_ISREG(st.st_mode))
            archive_entry_set_size(e, st.st_size);
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t tl = readlink(path, target, sizeof(target) - 1);
            if (tl < 0) {
                archive_entry_free(e);
                return kiln_error_set(err, errno, "function: readlink %s", path);
            }
            target[tl] = '\0';
            archive_entry_set_symlink(e, target);
        }
        if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) {
            if (archive_write_header(a, e) != ARCHIVE_OK)
                ret = kiln_error_set(err, 0, "function: zip %s: %s", rel, archive_error_string(a));
        }
        archive_entry_free(e);
        if (ret < 0)
            return -1;
        if (S_ISREG(st.st_mode)) {
            _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            char buf[65536];
            ssize_t r;
            if (fd < 0)
                return kiln_error_set(err, errno, "function: open %s", path);
            while ((r = read(fd, buf, sizeof(buf))) > 0)
                if (archive_write_data(a, buf, (size_t)r) != r)
                    return kiln_error_set(err, 0, "function: zip %s: %s", rel,
                                          archive_error_string(a));
            if (r < 0)
                return kiln_error_set(err, errno, "function: read %s", path);
        }
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0)
        return kiln_error_set(err, errno, "function: list %s", path);
    for (int i = 0; i < n; i++) {
        if (ret == 0 && strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            _cleanup_free_ char *sub = rel[0] ? kiln_xasprintf("%s/%s", rel, names[i]->d_name)
                                              : kiln_xstrdup(names[i]->d_name);
            ret = zip_add(a, base, sub, depth + 1, err);
        }
        free(names[i]);
    }
    free(names);
    return ret;
}

int kiln_export_write_function(const char *dir, const char *handler, const char *runtime,
                               const char *zip, kiln_error_t *err)
{
    /* a fresh temp name (O_EXCL): a link already at a fixed "<zip>.tmp" (a repository's
     * kiln-out/, say) would otherwise have the zip written through it */
    _cleanup_free_ char *tmp = kiln_xasprintf("%s.tmp-XXXXXX", zip);
    _cleanup_free_ char *copy = kiln_xstrdup(zip), *json_path = NULL;
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    struct archive *a;
    kiln_digest_t md;
    uint64_t len = 0;
    json_t *j;
    int ret;

    if (fd < 0)
        return kiln_error_set(err, errno, "function: create a temp file for %s", zip);
    a = archive_write_new();
    archive_write_set_format_zip(a);
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "function: create %s: %s", tmp, archive_error_string(a));
        archive_write_free(a);
        unlink(tmp);
        return -1;
    }
    ret = zip_add(a, dir, "", 0, err);
    if (archive_write_close(a) != ARCHIVE_OK && ret == 0)
        ret = kiln_error_set(err, 0, "function: write %s: %s", tmp, archive_error_string(a));
    archive_write_free(a);
    /* the digest of the bytes written, read back through the same descriptor */
    if (ret == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || lseek(fd, 0, SEEK_SET) < 0))
        ret = kiln_error_set(err, errno, "function: write %s", tmp);
    if (ret == 0 && kiln_digest_fd(fd, &md, &len, err) < 0)
        ret = kiln_error_prefix(err, "function: %s", tmp);
    if (ret == 0 && rename(tmp, zip) < 0)
        ret = kiln_error_set(err, errno, "function: rename %s", zip);
    if (ret < 0) {
        unlink(tmp);
        return -1;
    }
    j = json_pack("{s:s,s:s,s:s,s:s,s:I}", "handler", handler ? handler : "index.handler",
                  "runtime", runtime ? runtime : "provided.al2023", "zip", basename(copy), "sha256",
                  md.hex, "size", (json_int_t)len);
    text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    if (text == NULL)
        return kiln_error_set(err, 0, "function: cannot write function.json");
    {
        _cleanup_free_ char *d = kiln_xstrdup(zip);
        json_path = kiln_xasprintf("%s/function.json", dirname(d));
    }
    return kiln_fs_write_file_atomic(json_path, text, strlen(text), 0644, err);
}

static int function_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                        const kiln_export_opts_t *o, kiln_error_t *err)
{
    const char *zip = kiln_export_opts_get(o, "dest");
    _cleanup_free_ char *tmp = NULL, *zdir = NULL;
    struct stat st;
    int r;

    if (!ctx->function)
        return kiln_export_unsupported(o, err);
    if (zip == NULL)
        return kiln_error_set(err, 0, "--output %s: needs dest=FILE.zip",
                              o->spec ? o->spec : o->type);
    zdir = kiln_xstrdup(zip);
    if (kiln_fs_mkdir_p(dirname(zdir), 0755, err) < 0 ||
        kiln_export_filesystem_tmp(img, ctx->tmp_dir, "function-", &tmp, err) < 0)
        return -1;
    r = kiln_export_write_function(tmp, ctx->function_handler, ctx->function_runtime, zip, err);
    kiln_fs_rm_rf(tmp, NULL);
    if (r < 0)
        return -1;
    kiln_export_report(
        ctx, &(kiln_export_result_t){.type = "function",
                                     .location = zip,
                                     .bytes = stat(zip, &st) == 0 ? (uint64_t)st.st_size : 0});
    return 0;
}

static const char *const function_keys[] = {"dest", NULL};

const kiln_exporter_t kiln_exporter_function = {
    .name = "function", .file = 1, .keys = function_keys, .run = function_run};
