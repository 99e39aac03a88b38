/* kiln — toolchains from the npm registry (see toolchain.h). */
#include "job/toolchain.h"
#include "job/toolchain_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
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

#include "handlers/go_release.h"
#include "utils/cleanup.h"
#include "utils/dirhash.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/http.h"
#include "utils/mem.h"
#include "utils/semver.h"
#include "utils/sumdb.h"

/* Registry metadata of one package (abbreviated form) and one tarball. */
#define METADATA_CAP (16u * 1024 * 1024)
#define TARBALL_CAP (256u * 1024 * 1024)
#define VERSION_FILE KILN_TC_VERSION_FILE
#define INTEGRITY_FILE KILN_TC_INTEGRITY_FILE
#define HASHES_FILE KILN_TC_HASHES_FILE

/* The cache directory name of an npm package: "@oven/bun-linux-x64" → "oven-bun-linux-x64". */
static char *cache_name(const char *package)
{
    char *n = kiln_xstrdup(package + (package[0] == '@'));
    for (char *p = n; *p; p++)
        if (*p == '/')
            *p = '-';
    return n;
}

/* An npm package name kiln fetches: lowercase [a-z0-9-._], with one optional "@scope/". */
static bool package_name_ok(const char *p)
{
    const char *slash = p[0] == '@' ? strchr(p, '/') : NULL;
    if (p[0] == '@' && (slash == NULL || slash == p + 1))
        return false;
    for (const char *c = p + (p[0] == '@'); *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              (*c == '.' && c[-1] != '.' && c[-1] != '/') || *c == '_' || (c == slash)))
            return false;
    return p[p[0] == '@'] != '.' && (slash == NULL || slash[1] != '\0');
}

static void http_freep(kiln_http_t **h)
{
    if (*h)
        kiln_http_free(*h);
}

/* The highest release in the metadata's "versions" that satisfies the range
 * (prereleases only when the range names one); NULL when none does. */
static const char *pick_version(json_t *meta, const char *range, kiln_error_t *err)
{
    json_t *versions = json_object_get(meta, "versions"), *v;
    size_t n = 0, cap = json_object_size(versions);
    _cleanup_free_ const char **keys = kiln_xzalloc((cap ? cap : 1) * sizeof(*keys));
    const char *k;

    json_object_foreach(versions, k, v)
    {
        if (n < cap)
            keys[n++] = k;
    }
    return kiln_semver_max_satisfying(range, keys, n, err);
}

/* GETs `url` into *resp; fails on transport errors and non-200 answers. */
static int http_get(kiln_http_t *h, const char *url, const char *accept, size_t cap,
                    kiln_http_response_t *resp, kiln_error_t *err)
{
    const char *headers[1];
    _cleanup_free_ char *hdr = kiln_xasprintf("Accept: %s", accept);
    kiln_http_request_t req = {.method = "GET",
                               .url = url,
                               .headers = headers,
                               .n_headers = 1,
                               .body_fd = -1,
                               .response_cap = cap,
                               .timeout_seconds = 600};

    headers[0] = hdr;
    if (kiln_http_do(h, &req, resp, err) < 0)
        return -1; /* the message names the method and the URL */
    if (resp->status != 200) {
        long st = resp->status;
        kiln_http_response_free(resp);
        return kiln_error_set(err, 0, "GET %s: HTTP %ld", url, st);
    }
    return 0;
}

/* Checks "sha512-<base64>" against the data. */
static int check_integrity(const char *integrity, const void *data, size_t len, const char *what,
                           kiln_error_t *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char b64[4 * EVP_MAX_MD_SIZE / 3 + 8];

    if (integrity == NULL || strncmp(integrity, "sha512-", 7) != 0)
        return kiln_error_set(err, 0, "%s: the registry gives no sha512 integrity", what);
    EVP_Digest(data, len, md, &mdlen, EVP_sha512(), NULL);
    EVP_EncodeBlock(b64, md, (int)mdlen);
    if (strcmp((const char *)b64, integrity + 7) != 0)
        return kiln_error_set(err, 0,
                              "%s: sha512 integrity mismatch (corrupt or tampered "
                              "download)",
                              what);
    return 0;
}

/* Unpacks an archive in memory (an npm tarball: gzip tar; a Go module: zip)
 * into `dest`, keeping only the entries under `prefix` ("package/") and
 * without it. */
static int unpack(const void *data, size_t len, const char *prefix, const char *dest,
                  const char *what, kiln_error_t *err)
{
    struct archive *in = archive_read_new(), *out = archive_write_disk_new();
    struct archive_entry *e;
    size_t pl = strlen(prefix);
    int r, ret = -1;

    archive_read_support_filter_gzip(in);
    archive_read_support_format_tar(in);
    archive_read_support_format_zip_seekable(in);
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    /* Entry names are rewritten to absolute paths under dest: all start with
     * the prefix, and ".." is refused by SECURE_NODOTDOT. */
    if (archive_read_open_memory(in, data, len) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "%s: %s", what, archive_error_string(in));
        goto out;
    }
    while ((r = archive_read_next_header(in, &e)) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(e), *hl = archive_entry_hardlink(e);
        _cleanup_free_ char *np = NULL, *nh = NULL;
        const void *buf;
        size_t sz;
        la_int64_t off;

        if (p == NULL || strncmp(p, prefix, pl) != 0 || p[pl] == '\0')
            continue;
        np = kiln_xasprintf("%s/%s", dest, p + pl);
        archive_entry_set_pathname(e, np);
        if (hl != NULL) {
            if (strncmp(hl, prefix, pl) != 0)
                continue;
            nh = kiln_xasprintf("%s/%s", dest, hl + pl);
            archive_entry_set_hardlink(e, nh);
        }
        if (archive_write_header(out, e) != ARCHIVE_OK) {
            kiln_error_set(err, 0, "%s: %s", what, archive_error_string(out));
            goto out;
        }
        while ((r = archive_read_data_block(in, &buf, &sz, &off)) == ARCHIVE_OK) {
            if (archive_write_data_block(out, buf, sz, off) != ARCHIVE_OK) {
                kiln_error_set(err, 0, "%s: %s", what, archive_error_string(out));
                goto out;
            }
        }
        if (r != ARCHIVE_EOF) {
            kiln_error_set(err, 0, "%s: %s", what, archive_error_string(in));
            goto out;
        }
        if (archive_write_finish_entry(out) != ARCHIVE_OK) {
            kiln_error_set(err, 0, "%s: %s", what, archive_error_string(out));
            goto out;
        }
    }
    if (r != ARCHIVE_EOF) {
        kiln_error_set(err, 0, "%s: %s", what, archive_error_string(in));
        goto out;
    }
    ret = 0;
out:
    archive_read_free(in);
    archive_write_free(out);
    return ret;
}

/* Renames the unpacked copy `tmp` (given its version file) to `final`; a
 * concurrent build may have renamed its copy first: then this one is dropped. */
int kiln_tc_publish(const char *tmp, const char *final, const char *ver, kiln_error_t *err)
{
    _cleanup_free_ char *vfile = kiln_xasprintf("%s/" VERSION_FILE, tmp);

    if (kiln_fs_write_file_atomic(vfile, ver, strlen(ver), 0644, err) < 0)
        return -1;
    if (rename(tmp, final) < 0 && errno != ENOTEMPTY && errno != EEXIST)
        return kiln_error_set(err, errno, "rename %s to %s", tmp, final);
    return 0;
}

/* The corepack hashes of what a package manager's packageManager hash is of: its file
 * (tool->hash_file, read from the tarball in memory) or the tarball itself. */
static int tool_hashes(const kiln_plan_tool_t *tool, const kiln_http_response_t *tar, char **out,
                       kiln_error_t *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;

    if (tool->hash_file == NULL) {
        *out = kiln_toolchain_hashes(tar->body, tar->body_len);
        return 0;
    }
    if (kiln_toolchain_tar_file(tar->body, tar->body_len, tool->hash_file, &data, &len, err) < 0)
        return kiln_error_prefix(err, "toolchain %s", tool->package);
    *out = kiln_toolchain_hashes(data, len);
    return 0;
}

/* packageManager's hash against the hashes recorded beside an unpacked copy. */
static int reused_hash_check(const kiln_plan_tool_t *tool, const char *final, const char *ver,
                             kiln_error_t *err)
{
    _cleanup_free_ char *file = kiln_xasprintf("%s/" HASHES_FILE, final), *rec = NULL;

    if (tool->hash == NULL)
        return 0;
    if (kiln_fs_read_file(file, 4096, &rec, NULL, NULL) < 0)
        return kiln_error_set(err, 0,
                              "toolchain %s %s: the copy in %s has no recorded hashes to check "
                              "packageManager's against (remove it to fetch it again)",
                              tool->package, ver, final);
    return kiln_toolchain_hash_check(tool, ver, rec, err);
}

/* Resolves the plan's range against the registry's metadata (the highest
 * satisfying release); reuses <cache>/<package>-<release> when it is
 * unpacked, else downloads, verifies and unpacks into a temp dir renamed to
 * it. Sets *dir and *version. */
static int download(const char *package, const char *range, const char *pin,
                    const kiln_plan_tool_t *tool, const char *registry, const char *cache,
                    const kiln_netpolicy_t *policy, char **dir, char **version, kiln_error_t *err)
{
    _cleanup_(http_freep) kiln_http_t *h = kiln_http_new();
    kiln_netpolicy_t *fallback = policy ? NULL : kiln_netpolicy_new(KILN_NETPOLICY_NO_LINK_LOCAL);
    _cleanup_free_ char *meta_url = kiln_xasprintf("%s/%s", registry, package);
    _cleanup_free_ char *dirname = cache_name(package), *ifile = NULL;
    _cleanup_free_ char *tmp = NULL, *what = NULL, *vfile = NULL, *final = NULL;
    _cleanup_free_ char *hashes = NULL;
    kiln_http_response_t meta = {0}, tar = {0};
    json_t *doc = NULL, *dist;
    const char *ver, *url, *integrity;
    int ret = -1;

    kiln_http_set_policy(h, policy ? policy : fallback); /* copied */
    kiln_netpolicy_free(fallback);
    if (http_get(h, meta_url, "application/vnd.npm.install-v1+json", METADATA_CAP, &meta, err) < 0)
        return -1;
    doc = json_loadb(meta.body, meta.body_len, 0, NULL);
    if (doc == NULL) {
        kiln_error_set(err, 0, "%s: the registry's metadata is not JSON", meta_url);
        goto out;
    }
    ver = pick_version(doc, range, NULL);
    if (ver == NULL) {
        /* the range was checked before: none of the releases satisfies it */
        kiln_error_set(err, 0, "no release satisfies the range (in %s)", meta_url);
        goto out;
    }
    final = kiln_xasprintf("%s/%s-%s", cache, dirname, ver);
    vfile = kiln_xasprintf("%s/" VERSION_FILE, final);
    if (access(vfile, F_OK) == 0) {
        /* this release is unpacked already (another build, another range) */
        if (tool != NULL && reused_hash_check(tool, final, ver, err) < 0)
            goto out;
        *version = kiln_xstrdup(ver);
        *dir = steal_pointer(&final);
        ret = 0;
        goto out;
    }
    dist = json_object_get(json_object_get(json_object_get(doc, "versions"), ver), "dist");
    url = json_string_value(json_object_get(dist, "tarball"));
    integrity = json_string_value(json_object_get(dist, "integrity"));
    what = kiln_xasprintf("%s@%s", package, ver);
    if (url == NULL) {
        kiln_error_set(err, 0, "%s: no tarball in the registry's metadata", what);
        goto out;
    }
    /* a pinned release: the registry must list kiln's very checksum (and the bytes match it) */
    if (pin != NULL && (integrity == NULL || strcmp(integrity, pin) != 0)) {
        kiln_error_set(err, 0,
                       "%s: the registry lists integrity %.100s, kiln pins %.100s (a changed or "
                       "tampered release)",
                       what, integrity ? integrity : "(none)", pin);
        goto out;
    }
    free(vfile);
    vfile = NULL;
    if (http_get(h, url, "application/octet-stream", TARBALL_CAP, &tar, err) < 0 ||
        check_integrity(integrity, tar.body, tar.body_len, what, err) < 0)
        goto out;
    /* a package manager: packageManager's hash is checked before anything is unpacked */
    if (tool != NULL && (tool_hashes(tool, &tar, &hashes, err) < 0 ||
                         kiln_toolchain_hash_check(tool, ver, hashes, err) < 0))
        goto out;
    if (kiln_fs_mkdtemp(cache, ".unpack-", &tmp, err) < 0 ||
        unpack(tar.body, tar.body_len, "package/", tmp, what, err) < 0)
        goto out;
    if (hashes != NULL) {
        ifile = kiln_xasprintf("%s/" HASHES_FILE, tmp);
        if (kiln_fs_write_file_atomic(ifile, hashes, strlen(hashes), 0644, err) < 0)
            goto out;
        free(ifile);
    }
    /* the checksum the copy was verified with, recorded beside it (checked on reuse) */
    ifile = kiln_xasprintf("%s/" INTEGRITY_FILE, tmp);
    if (kiln_fs_write_file_atomic(ifile, integrity, strlen(integrity), 0644, err) < 0 ||
        kiln_tc_publish(tmp, final, ver, err) < 0)
        goto out;
    *version = kiln_xstrdup(ver);
    *dir = steal_pointer(&final);
    ret = 0;
out:
    if (tmp)
        kiln_fs_rm_rf(tmp, NULL); /* gone after a successful rename; a loser's copy otherwise */
    json_decref(doc);
    kiln_http_response_free(&meta);
    kiln_http_response_free(&tar);
    return ret;
}

/* The first proxy URL of a GOPROXY-style list ("https://a,direct"): the
 * toolchain comes from a proxy, never "direct" or "off". */
static char *go_proxy(char *const *env)
{
    const char *v = kiln_env_get(env, "KILN_GOPROXY");
    size_t n;
    char *p;

    if (v == NULL || (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0))
        v = KILN_DEFAULT_GOPROXY;
    p = kiln_xstrndup(v, strcspn(v, ",|"));
    n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        p[--n] = '\0';
    return p;
}

/* The h1 of a release outside the table, proven by the Go checksum database. */
static int sumdb_h1(kiln_http_t *h, const char *proxy, const char *version, char **h1,
                    kiln_error_t *err)
{
    _cleanup_free_ char *v = kiln_xasprintf("v0.0.1-go%s.linux-amd64", version);
    _cleanup_free_ char *avail = NULL;

    if (kiln_sumdb_lookup(h, proxy, "golang.org/toolchain", v, h1, err) == 0)
        return 0;
    avail = kiln_go_available();
    return kiln_error_prefix(err,
                             "toolchain go %s: not in kiln's release table (%s), and the Go "
                             "checksum database could not prove its checksum",
                             version, avail);
}

/* A Go release from the module proxy: golang.org/toolchain
 * v0.0.1-go<version>.linux-amd64, its zip's h1 dirhash checked against the
 * release table's before anything is unpacked into <cache>/go-<version>. */
static int fetch_go(const kiln_plan_toolchain_t *tc, const char *cache, char *const *env,
                    const kiln_netpolicy_t *policy, char **dir, char **version, kiln_error_t *err)
{
    const kiln_go_release_t *rel;
    _cleanup_(http_freep) kiln_http_t *h = NULL;
    _cleanup_free_ char *final = NULL, *vfile = NULL, *proxy = NULL, *url = NULL;
    _cleanup_free_ char *prefix = NULL, *what = NULL, *h1 = NULL, *tmp = NULL, *avail = NULL;
    _cleanup_free_ char *want = NULL;
    kiln_netpolicy_t *fallback = NULL;
    kiln_http_response_t zip = {0};
    int ret = -1;

    /* the version goes into a URL and a path: a release name and nothing else */
    if (strcmp(tc->package, "golang.org/toolchain") != 0 ||
        !kiln_go_version_is_release(tc->version)) {
        avail = kiln_go_available();
        return kiln_error_set(err, 0,
                              "toolchain go \"%.40s\" (%.40s): not a Go release kiln can fetch "
                              "and verify; available: %s",
                              tc->version, tc->package, avail);
    }
    rel = kiln_go_release_find(tc->version);
    final = kiln_xasprintf("%s/go-%s", cache, tc->version);
    vfile = kiln_xasprintf("%s/" VERSION_FILE, final);
    if (access(vfile, F_OK) == 0) {
        *dir = steal_pointer(&final);
        *version = kiln_xstrdup(tc->version);
        return 0;
    }
    proxy = go_proxy(env);
    url = kiln_xasprintf("%s/golang.org/toolchain/@v/v0.0.1-go%s.linux-amd64.zip", proxy,
                         tc->version);
    prefix = kiln_xasprintf("golang.org/toolchain@v0.0.1-go%s.linux-amd64/", tc->version);
    what = kiln_xasprintf("golang.org/toolchain@v0.0.1-go%s.linux-amd64", tc->version);
    h = kiln_http_new();
    if (policy == NULL)
        fallback = kiln_netpolicy_new(KILN_NETPOLICY_NO_LINK_LOCAL);
    kiln_http_set_policy(h, policy ? policy : fallback); /* copied */
    kiln_netpolicy_free(fallback);
    /* A release of the table has its pin; another one needs the checksum database's
     * proven record (through the same proxy), fetched before the zip. */
    if (rel == NULL && sumdb_h1(h, proxy, tc->version, &want, err) < 0)
        goto out;
    if (http_get(h, url, "application/zip", TARBALL_CAP, &zip, err) < 0) {
        kiln_error_prefix(err, "toolchain go %s", tc->version);
        goto out;
    }
    if (kiln_dirhash_zip(zip.body, zip.body_len, prefix, what, &h1, err) < 0)
        goto out;
    if (strcmp(h1, rel ? rel->h1 : want) != 0) {
        kiln_error_set(err, 0,
                       "%s: checksum mismatch: the download hashes to %s, the Go checksum "
                       "database records %s (corrupt or tampered download)",
                       what, h1, rel ? rel->h1 : want);
        goto out;
    }
    if (kiln_fs_mkdtemp(cache, ".unpack-", &tmp, err) < 0 ||
        unpack(zip.body, zip.body_len, prefix, tmp, what, err) < 0 ||
        kiln_tc_publish(tmp, final, tc->version, err) < 0)
        goto out;
    *dir = steal_pointer(&final);
    *version = kiln_xstrdup(tc->version);
    ret = 0;
out:
    if (tmp)
        kiln_fs_rm_rf(tmp, NULL);
    kiln_http_response_free(&zip);
    return ret;
}

/* An npm package at `range` into <cache>/<name>-<release>: an exact release already
 * unpacked is reused without the registry (its recorded checksum must be the pin, when
 * there is one), else the registry resolves the range and the tarball is verified. */
static int fetch_npm(const char *label, const char *package, const char *range, const char *pin,
                     const kiln_plan_tool_t *tool, const char *registry, const char *cache,
                     const kiln_netpolicy_t *policy, char **dir, char **version, kiln_error_t *err)
{
    _cleanup_free_ char *final = NULL, *vfile = NULL, *ver = NULL, *name = NULL, *rec = NULL;
    kiln_semver_t exact;

    if (kiln_semver_range_check(range, err) < 0)
        return kiln_error_prefix(err, "toolchain %s", label);
    if (!package_name_ok(package))
        return kiln_error_set(err, 0, "toolchain %s: bad package name", label);
    name = cache_name(package);
    if (kiln_semver_parse(range, &exact, NULL) == 0 && exact.pre[0] == '\0') {
        final =
            kiln_xasprintf("%s/%s-%lu.%lu.%lu", cache, name, exact.major, exact.minor, exact.patch);
        vfile = kiln_xasprintf("%s/" VERSION_FILE, final);
        if (kiln_fs_read_file(vfile, 64, &ver, NULL, NULL) == 0) {
            free(vfile);
            vfile = kiln_xasprintf("%s/" INTEGRITY_FILE, final);
            if (pin != NULL &&
                (kiln_fs_read_file(vfile, 256, &rec, NULL, NULL) < 0 || strcmp(rec, pin) != 0))
                return kiln_error_set(err, 0,
                                      "toolchain %s %s: the copy in %s was not verified with "
                                      "kiln's pinned checksum (remove it to fetch it again)",
                                      label, range, final);
            if (tool != NULL && reused_hash_check(tool, final, ver, err) < 0)
                return -1;
            *dir = steal_pointer(&final);
            *version = steal_pointer(&ver);
            return 0;
        }
    }
    if (download(package, range, pin, tool, registry, cache, policy, dir, version, err) < 0)
        return kiln_error_prefix(err, "toolchain %s %s", label, range);
    return 0;
}

/* Makes dst a tree of hard links to src's files (directories made, symbolic links
 * copied): a toolchain composed of two without copying either. */
int kiln_tc_link_tree(int sfd, int dfd, const char *what, kiln_error_t *err)
{
    DIR *d = fdopendir(sfd);
    struct dirent *e;
    int r = 0;

    if (d == NULL) {
        close(sfd);
        return kiln_error_set(err, errno, "%s: opendir", what);
    }
    while (r == 0 && (errno = 0, e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            r = kiln_error_set(err, errno, "%s: stat %s", what, e->d_name);
        } else if (S_ISDIR(st.st_mode)) {
            int s2, d2;
            if (mkdirat(dfd, e->d_name, st.st_mode & 07777) < 0 && errno != EEXIST)
                r = kiln_error_set(err, errno, "%s: mkdir %s", what, e->d_name);
            else if ((s2 = openat(dirfd(d), e->d_name,
                                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                r = kiln_error_set(err, errno, "%s: open %s", what, e->d_name);
            else if ((d2 = openat(dfd, e->d_name,
                                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                close(s2);
                r = kiln_error_set(err, errno, "%s: open %s", what, e->d_name);
            } else {
                r = kiln_tc_link_tree(s2, d2, what, err);
                close(d2);
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
            if (n < 0)
                r = kiln_error_set(err, errno, "%s: readlink %s", what, e->d_name);
            else if ((target[n] = '\0', symlinkat(target, dfd, e->d_name)) < 0)
                r = kiln_error_set(err, errno, "%s: symlink %s", what, e->d_name);
        } else if (S_ISREG(st.st_mode)) {
            (void)unlinkat(dfd, e->d_name, 0); /* the second tree's file wins */
            if (linkat(dirfd(d), e->d_name, dfd, e->d_name, 0) < 0)
                r = kiln_error_set(err, errno, "%s: link %s", what, e->d_name);
        }
    }
    if (r == 0 && errno != 0)
        r = kiln_error_set(err, errno, "%s: readdir", what);
    closedir(d);
    return r;
}

int kiln_tc_link_dir(const char *src, const char *dst, kiln_error_t *err)
{
    int sfd, dfd, r;

    if (kiln_fs_mkdir_p(dst, 0755, err) < 0)
        return -1;
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0)
        return kiln_error_set(err, errno, "open %s", src);
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        close(sfd);
        return kiln_error_set(err, errno, "open %s", dst);
    }
    r = kiln_tc_link_tree(sfd, dfd, src, err); /* closes sfd */
    close(dfd);
    return r;
}

int kiln_tc_compose_start(const char *base, const char *cache, char **tmp, kiln_error_t *err)
{
    static const char *const own[] = {VERSION_FILE, INTEGRITY_FILE, HASHES_FILE};

    if (kiln_fs_mkdtemp(cache, ".compose-", tmp, err) < 0)
        return -1;
    if (kiln_tc_link_dir(base, *tmp, err) < 0) {
        kiln_fs_rm_rf(*tmp, NULL);
        free(*tmp);
        *tmp = NULL;
        return -1;
    }
    /* base's records are not the composition's (publish writes its own version file) */
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        _cleanup_free_ char *f = kiln_xasprintf("%s/%s", *tmp, own[i]);
        (void)unlink(f);
    }
    return 0;
}

/* <base>+<with's dir name>: base's tree with the second package's bin/ added (node's
 * bin/node beside bun's bin/bun), made once of hard links and published atomically. */
static int compose(const char *base, const char *with, const char *cache, char **dir,
                   kiln_error_t *err)
{
    const char *wname = strrchr(with, '/') ? strrchr(with, '/') + 1 : with;
    _cleanup_free_ char *final = kiln_xasprintf("%s+%s", base, wname), *tmp = NULL;
    _cleanup_free_ char *vfile = kiln_xasprintf("%s/" VERSION_FILE, final);
    _cleanup_free_ char *wbin = kiln_xasprintf("%s/bin", with), *tbin = NULL;
    int r = -1;

    if (access(vfile, F_OK) == 0) {
        *dir = steal_pointer(&final);
        return 0;
    }
    if (kiln_tc_compose_start(base, cache, &tmp, err) < 0)
        return -1;
    tbin = kiln_xasprintf("%s/bin", tmp);
    if (kiln_tc_link_dir(wbin, tbin, err) < 0 || kiln_tc_publish(tmp, final, wname, err) < 0)
        goto out;
    *dir = steal_pointer(&final);
    r = 0;
out:
    kiln_fs_rm_rf(tmp, NULL); /* gone after a successful rename */
    return r;
}

int kiln_toolchain_fetch(const kiln_plan_toolchain_t *tc, const char *root, char *const *env,
                         const kiln_netpolicy_t *policy, char **dir, char **version,
                         kiln_error_t *err)
{
    const char *registry = kiln_env_get(env, "KILN_NPM_REGISTRY");
    const char *cache_env = kiln_env_get(env, "KILN_TOOLCHAIN_CACHE");
    _cleanup_free_ char *cache =
        cache_env ? kiln_xstrdup(cache_env) : kiln_xasprintf("%s/toolchains", root);
    _cleanup_free_ char *reg = NULL, *base = NULL, *ver = NULL, *wdir = NULL, *wver = NULL;
    size_t n;

    if (tc->name == NULL || tc->package == NULL || tc->version == NULL)
        return kiln_error_set(err, 0, "toolchain: the plan names no package and version");
    if (kiln_fs_mkdir_p(cache, 0755, err) < 0)
        return -1;
    if (strcmp(tc->name, "go") == 0)
        return fetch_go(tc, cache, env, policy, dir, version, err);
    reg = kiln_xstrdup(registry ? registry : KILN_DEFAULT_NPM_REGISTRY);
    n = strlen(reg);
    while (n > 0 && reg[n - 1] == '/')
        reg[--n] = '\0';
    if (fetch_npm(tc->name, tc->package, tc->version, NULL, NULL, reg, cache, policy, &base, &ver,
                  err) < 0)
        return -1;
    if (tc->with.package != NULL) {
        /* the package manager (bun's binary, pnpm, yarn) beside node */
        const kiln_plan_tool_t *w = &tc->with;
        if (w->version == NULL)
            return kiln_error_set(err, 0, "toolchain %s: no version", w->package);
        if (fetch_npm(w->package, w->package, w->version, w->integrity, w, reg, cache, policy,
                      &wdir, &wver, err) < 0 ||
            (w->lib ? kiln_toolchain_compose_lib(base, wdir, w->package, cache, dir, err)
                    : compose(base, wdir, cache, dir, err)) < 0)
            return -1;
        *version = steal_pointer(&ver);
        return 0;
    }
    *dir = steal_pointer(&base);
    *version = steal_pointer(&ver);
    return 0;
}
