/* kiln — package managers joining a toolchain: packageManager's corepack hash checked
 * against what the npm registry served, and a JavaScript package laid out beside node as
 * `npm install -g` would (see toolchain.h). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job/toolchain.h"
#include "job/toolchain_int.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

/* The one file of a package a hash may be of (Yarn 2+'s bin/yarn.js: 3 MB). */
#define HASH_FILE_CAP (64u * 1024 * 1024)
/* A package's package.json (its "bin" entries). */
#define PKG_JSON_CAP (1024u * 1024)
#define MAX_BINS 16

char *kiln_toolchain_hashes(const void *data, size_t len)
{
    const struct {
        const char *name;
        const EVP_MD *md;
    } algos[] = {{"sha1", EVP_sha1()},
                 {"sha224", EVP_sha224()},
                 {"sha256", EVP_sha256()},
                 {"sha512", EVP_sha512()}};
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_Digest(data, len, md, &n, algos[i].md, NULL);
        kiln_buf_appendf(&b, NULL, "%s.", algos[i].name);
        for (unsigned int j = 0; j < n; j++)
            kiln_buf_appendf(&b, NULL, "%02x", md[j]);
        kiln_buf_appendf(&b, NULL, "\n");
    }
    return kiln_buf_steal(&b, NULL);
}

int kiln_toolchain_hash_check(const kiln_plan_tool_t *tool, const char *version, const char *record,
                              kiln_error_t *err)
{
    const char *want = tool->hash, *dot = want ? strchr(want, '.') : NULL;
    const char *of = tool->hash_file ? tool->hash_file : "tarball";
    _cleanup_free_ char *prefix = NULL, *got = NULL;

    if (want == NULL)
        return 0;
    if (dot == NULL)
        return kiln_error_set(err, 0, "packageManager %s@%s: \"%.140s\" is not ALGO.HEX",
                              tool->name, version, want);
    prefix = kiln_xstrndup(want, (size_t)(dot - want + 1));
    for (const char *l = record; l && *l; l += strcspn(l, "\n"), l += *l == '\n')
        if (strncmp(l, prefix, strlen(prefix)) == 0)
            got = kiln_xstrndup(l, strcspn(l, "\n"));
    if (got == NULL)
        return kiln_error_set(err, 0,
                              "packageManager %s@%s: kiln has no %.*s hash of the release (a "
                              "hash of sha1, sha224, sha256 or sha512)",
                              tool->name, version, (int)(dot - want), want);
    if (strcmp(got, want) == 0)
        return 0;
    return kiln_error_set(err, 0,
                          "packageManager %s@%s: the npm registry's release (%s of %s@%s) hashes "
                          "to %s, but package.json's packageManager names %s: refused, nothing "
                          "installed (a different or tampered release: correct the hash, or remove "
                          "it to rely on the registry's integrity)",
                          tool->name, version, of, tool->package, version, got, want);
}

int kiln_toolchain_tar_file(const void *data, size_t len, const char *path, char **out,
                            size_t *outlen, kiln_error_t *err)
{
    struct archive *in = archive_read_new();
    struct archive_entry *e;
    _cleanup_free_ char *name = kiln_xasprintf("package/%s", path);
    int r, ret = -1;

    *out = NULL;
    archive_read_support_filter_gzip(in);
    archive_read_support_format_tar(in);
    if (archive_read_open_memory(in, data, len) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "%s: %s", path, archive_error_string(in));
        goto out;
    }
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
        la_int64_t size = archive_entry_size(e);
        char *buf;
        la_ssize_t got;
        if (strcmp(archive_entry_pathname(e) ? archive_entry_pathname(e) : "", name) != 0)
            continue;
        /* the file itself: a link would name another file's bytes */
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != NULL) {
            kiln_error_set(err, 0, "%s: not a regular file in the package", path);
            goto out;
        }
        if (size < 0 || (uint64_t)size > HASH_FILE_CAP) {
            kiln_error_set(err, EFBIG, "%s: larger than %u bytes", path, HASH_FILE_CAP);
            goto out;
        }
        buf = kiln_xmalloc((size_t)size + 1);
        got = archive_read_data(in, buf, (size_t)size);
        if (got != size) {
            free(buf);
            kiln_error_set(err, 0, "%s: %s", path,
                           got < 0 ? archive_error_string(in) : "truncated in the archive");
            goto out;
        }
        buf[size] = '\0';
        *out = buf;
        *outlen = (size_t)size;
        ret = 0;
        goto out;
    }
    kiln_error_set(err, ENOENT, "%s: not in the package",
                   path); /* a missing entry: the registry's package is not what kiln knows */
out:
    archive_read_free(in);
    return ret;
}

/* A bin entry of package.json: its command name (no '/', not "." or "..", not hidden) and
 * its path inside the package (relative, without ".."; "./" dropped). */
static bool bin_ok(const char *name, const char *path)
{
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL && strlen(name) < 128 &&
           path[0] != '\0' && path[0] != '/' && strstr(path, "..") == NULL && strlen(path) < 512;
}

/* The package's bins ({"pnpm": "bin/pnpm.cjs"} or a string for the unscoped name) into
 * names/paths (malloc'ed); returns their number or -1. */
static int read_bins(int pkgfd, const char *package, char **names, char **paths, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    json_t *doc, *bin, *v;
    const char *k, *base = strrchr(package, '/') ? strrchr(package, '/') + 1 : package;
    int n = 0;

    if (kiln_pathres_read_file(pkgfd, "package.json", PKG_JSON_CAP, &text, NULL, err) < 0)
        return kiln_error_prefix(err, "toolchain %s", package);
    doc = json_loads(text, 0, NULL);
    bin = json_object_get(doc, "bin");
    if (json_is_string(bin)) {
        names[n] = kiln_xstrdup(base);
        paths[n++] = kiln_xstrdup(json_string_value(bin));
    } else if (json_is_object(bin)) {
        json_object_foreach(bin, k, v)
        {
            if (n < MAX_BINS && json_is_string(v)) {
                names[n] = kiln_xstrdup(k);
                paths[n++] = kiln_xstrdup(json_string_value(v));
            }
        }
    }
    json_decref(doc);
    for (int i = 0; i < n; i++) {
        char *p = paths[i];
        while (strncmp(p, "./", 2) == 0)
            p += 2;
        memmove(paths[i], p, strlen(p) + 1);
        if (!bin_ok(names[i], paths[i])) {
            kiln_error_set(err, 0,
                           "toolchain %s: package.json bin \"%.60s\": \"%.120s\" is not a "
                           "file name and a path inside the package",
                           package, names[i], paths[i]);
            for (int j = 0; j < n; j++) {
                free(names[j]);
                free(paths[j]);
            }
            return -1;
        }
    }
    if (n == 0)
        return kiln_error_set(err, 0, "toolchain %s: package.json has no \"bin\"", package);
    return n;
}

/* Makes each bin's file executable (npm -g does: tarballs may carry 0644), opened inside
 * the package (never through a link) and only when it is a regular file. */
static int chmod_bin(int pkgfd, const char *package, const char *path, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    struct stat st;

    if (kiln_pathres_open(pkgfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, 0, &fd, err) < 0)
        return kiln_error_prefix(err, "toolchain %s: bin", package);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return kiln_error_set(err, 0, "toolchain %s: bin %s is not a regular file", package, path);
    if ((st.st_mode & 0111) != 0111 && fchmod(fd, (st.st_mode & 07777) | 0111) < 0)
        return kiln_error_set(err, errno, "toolchain %s: chmod %s", package, path);
    return 0;
}

int kiln_toolchain_compose_lib(const char *base, const char *with, const char *package,
                               const char *cache, char **dir, kiln_error_t *err)
{
    const char *wname = strrchr(with, '/') ? strrchr(with, '/') + 1 : with;
    _cleanup_free_ char *final = kiln_xasprintf("%s+%s", base, wname), *tmp = NULL;
    _cleanup_free_ char *vfile = kiln_xasprintf("%s/" KILN_TC_VERSION_FILE, final);
    _cleanup_free_ char *lib = NULL, *tbin = NULL;
    _cleanup_close_ int pkgfd = -1;
    char *names[MAX_BINS] = {0}, *paths[MAX_BINS] = {0};
    int n = 0, r = -1;

    if (access(vfile, F_OK) == 0) {
        *dir = steal_pointer(&final);
        return 0;
    }
    if (kiln_pathres_open_root(with, &pkgfd, err) < 0 ||
        (n = read_bins(pkgfd, package, names, paths, err)) < 0 ||
        kiln_tc_compose_start(base, cache, &tmp, err) < 0)
        goto out;
    lib = kiln_xasprintf("%s/lib/node_modules/%s", tmp, package);
    tbin = kiln_xasprintf("%s/bin", tmp);
    if (kiln_tc_link_dir(with, lib, err) < 0 || kiln_fs_mkdir_p(tbin, 0755, err) < 0)
        goto out;
    /* bin/NAME → ../lib/node_modules/PACKAGE/PATH, as npm -g links it */
    for (int i = 0; i < n; i++) {
        _cleanup_free_ char *target =
            kiln_xasprintf("../lib/node_modules/%s/%s", package, paths[i]);
        _cleanup_free_ char *link = kiln_xasprintf("%s/%s", tbin, names[i]);
        if (chmod_bin(pkgfd, package, paths[i], err) < 0)
            goto out;
        (void)unlink(link);
        if (symlink(target, link) < 0) {
            kiln_error_set(err, errno, "symlink %s", link);
            goto out;
        }
    }
    if (kiln_tc_publish(tmp, final, wname, err) < 0)
        goto out;
    *dir = steal_pointer(&final);
    r = 0;
out:
    for (int i = 0; i < n; i++) {
        free(names[i]);
        free(paths[i]);
    }
    if (tmp)
        kiln_fs_rm_rf(tmp, NULL); /* gone after a successful rename */
    return r;
}
