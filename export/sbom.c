/* kiln — the SPDX 2.3 SBOM of an image from its package databases (see sbom.h). */
#include "export/sbom_read.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export/sbom_go.h"
#include "oci/digest.h"
#include "oci/tar_reader.h"
#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

/* everything read from every layer together: a hostile image cannot make kiln hold more */
#define TOTAL_MAX (256u << 20)

typedef struct pkg {
    char *purl; /* the identity a package is listed once by */
    char *type; /* deb, npm, pypi, golang */
    char *name, *version, *license, *source;
    char *sha256; /* a checksum of the package (hex), or NULL */
} pkg_t;

/* One database file of the image so far (the last layer's copy wins). */
typedef struct dbfile {
    char *path;
    char *data;
    size_t len;
    size_t seq; /* order seen: a later copy replaces an earlier one */
    int go;     /* a Go binary's build information blob (export/sbom_go), not a database */
} dbfile_t;

struct kiln_sbom {
    pkg_t *pkgs;
    size_t n, cap;
    char *distro; /* os-release ID, the namespace of deb purls */
};

kiln_sbom_t *kiln_sbom_new(void)
{
    return kiln_xzalloc(sizeof(kiln_sbom_t));
}

void kiln_sbom_free(kiln_sbom_t *sb)
{
    if (sb == NULL)
        return;
    for (size_t i = 0; i < sb->n; i++) {
        pkg_t *p = &sb->pkgs[i];
        free(p->purl);
        free(p->type);
        free(p->name);
        free(p->version);
        free(p->license);
        free(p->source);
        free(p->sha256);
    }
    free(sb->pkgs);
    free(sb->distro);
    free(sb);
}

void kiln_sbom_set_distro(kiln_sbom_t *sb, const char *id)
{
    free(sb->distro);
    sb->distro = kiln_xstrdup(id);
}

size_t kiln_sbom_count(const kiln_sbom_t *sb)
{
    return sb->n;
}

/* purl's percent-encoding of a name or version segment. */
static char *purl_escape(const char *s)
{
    size_t n = strlen(s);
    char *out = kiln_xmalloc(n * 3 + 1), *o = out;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~' || c == '+')
            *o++ = (char)c;
        else
            o += sprintf(o, "%%%02X", c);
    }
    *o = '\0';
    return out;
}

/* purl_escape of each '/'-separated segment of a Go module path, the '/' kept. */
static char *purl_path_escape(const char *s)
{
    _cleanup_free_ char *out = kiln_xstrdup("");

    for (const char *seg = s;;) {
        const char *slash = strchr(seg, '/');
        _cleanup_free_ char *part = kiln_xstrndup(seg, slash ? (size_t)(slash - seg) : strlen(seg));
        _cleanup_free_ char *esc = purl_escape(part);
        char *next = kiln_xasprintf("%s%s%s", out, *out ? "/" : "", esc);
        free(out);
        out = next;
        if (slash == NULL)
            break;
        seg = slash + 1;
    }
    return steal_pointer(&out);
}

/* A license as an SPDX expression when it reads as one (ids joined by AND/OR/WITH), else
 * NULL (listed as NOASSERTION: free text is not a valid licenseDeclared). */
static char *license_expr(const char *s)
{
    int want_id = 1;
    const char *p = s;

    if (s == NULL || *s == '\0' || strlen(s) > 256)
        return NULL;
    while (*p) {
        size_t n = strcspn(p, " ");
        if (n == 0)
            return NULL;
        if (want_id) {
            for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '-' && p[i] != '+')
                    return NULL;
        } else if (!((n == 3 && strncmp(p, "AND", 3) == 0) ||
                     (n == 2 && strncmp(p, "OR", 2) == 0) ||
                     (n == 4 && strncmp(p, "WITH", 4) == 0))) {
            return NULL;
        }
        want_id = !want_id;
        p += n;
        if (*p == ' ')
            p++;
    }
    return want_id ? NULL : kiln_xstrdup(s);
}

int kiln_sbom_add_pkg(kiln_sbom_t *sb, const char *type, const char *name, const char *version,
                      const char *license, const char *arch, const char *source, const char *sha256,
                      kiln_error_t *err)
{
    _cleanup_free_ char *en = NULL, *ev = NULL, *purl = NULL;

    if (name == NULL || *name == '\0' || version == NULL || *version == '\0')
        return 0;
    ev = purl_escape(version);
    if (strcmp(type, "npm") == 0 && name[0] == '@' && strchr(name, '/')) {
        /* a scope is the purl's namespace: pkg:npm/%40scope/name */
        const char *slash = strchr(name, '/');
        _cleanup_free_ char *scope = kiln_xstrndup(name, (size_t)(slash - name));
        _cleanup_free_ char *es = purl_escape(scope);
        _cleanup_free_ char *eb = purl_escape(slash + 1);
        purl = kiln_xasprintf("pkg:npm/%s/%s@%s", es, eb, ev);
    } else if (strcmp(type, "deb") == 0) {
        en = purl_escape(name);
        purl = kiln_xasprintf("pkg:deb/%s/%s@%s%s%s", sb->distro ? sb->distro : "debian", en, ev,
                              arch ? "?arch=" : "", arch ? arch : "");
    } else if (strcmp(type, "golang") == 0) {
        /* pkg:golang/github.com/a/b@v1.2.3; the standard library as pkg:golang/stdlib@1.23.4 */
        en = purl_path_escape(name);
        purl =
            kiln_xasprintf("pkg:golang/%s@%s", en,
                           strcmp(name, "stdlib") == 0 && strncmp(ev, "go", 2) == 0 ? ev + 2 : ev);
    } else {
        en = purl_escape(name);
        purl = kiln_xasprintf("pkg:%s/%s@%s", type, en, ev);
    }
    for (size_t i = 0; i < sb->n; i++)
        if (strcmp(sb->pkgs[i].purl, purl) == 0)
            return 0;
    if (sb->n >= KILN_SBOM_PACKAGES_MAX)
        return kiln_error_set(err, E2BIG, "%s: more than %u packages in the image", source,
                              KILN_SBOM_PACKAGES_MAX);
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 64;
        sb->pkgs = kiln_xrealloc(sb->pkgs, sb->cap * sizeof(pkg_t));
    }
    sb->pkgs[sb->n++] = (pkg_t){.purl = steal_pointer(&purl),
                                .type = kiln_xstrdup(type),
                                .name = kiln_xstrdup(name),
                                .version = kiln_xstrdup(version),
                                .license = license_expr(license),
                                .source = kiln_xstrdup(source),
                                .sha256 = sha256 ? kiln_xstrdup(sha256) : NULL};
    return 0;
}

/* ---- the layers ---- */

typedef struct files {
    dbfile_t *v;
    size_t n, cap, seq;
    size_t total; /* bytes held */
} files_t;

static void files_clear(files_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].path);
        free(f->v[i].data);
    }
    free(f->v);
    memset(f, 0, sizeof(*f));
}

/* Drops the files at prefix or under prefix/ ("" = everything). */
static void files_remove(files_t *f, const char *prefix)
{
    size_t k = strlen(prefix), j = 0;

    for (size_t i = 0; i < f->n; i++) {
        const char *p = f->v[i].path;
        if (k == 0 || (strncmp(p, prefix, k) == 0 && (p[k] == '\0' || p[k] == '/'))) {
            f->total -= f->v[i].len;
            free(f->v[i].path);
            free(f->v[i].data);
        } else {
            f->v[j++] = f->v[i];
        }
    }
    f->n = j;
}

static void files_add(files_t *f, char *path, char *data, size_t len, int go)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = kiln_xrealloc(f->v, f->cap * sizeof(dbfile_t));
    }
    f->v[f->n++] = (dbfile_t){.path = path, .data = data, .len = len, .seq = f->seq++, .go = go};
    f->total += len;
}

static const dbfile_t *files_find(const files_t *f, const char *path)
{
    for (size_t i = f->n; i-- > 0;)
        if (strcmp(f->v[i].path, path) == 0)
            return &f->v[i];
    return NULL;
}

static int by_path_then_seq(const void *a, const void *b)
{
    const dbfile_t *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* Keeps the last copy of each path. */
static void files_dedupe(files_t *f)
{
    size_t j = 0;

    qsort(f->v, f->n, sizeof(dbfile_t), by_path_then_seq);
    for (size_t i = 0; i < f->n; i++) {
        if (i + 1 < f->n && strcmp(f->v[i].path, f->v[i + 1].path) == 0) {
            f->total -= f->v[i].len;
            free(f->v[i].path);
            free(f->v[i].data);
            continue;
        }
        f->v[j++] = f->v[i];
    }
    f->n = j;
}

/* Reads the current entry's data (at most KILN_SBOM_FILE_MAX bytes). */
static int read_entry(kiln_tar_reader_t *t, const char *path, char **out, size_t *len,
                      kiln_error_t *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t n = 0, cap = 0;
    ssize_t r;

    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 65536;
            buf = kiln_xrealloc(buf, cap + 1);
        }
        r = kiln_tar_reader_data(t, buf + n, cap - n, err);
        if (r < 0)
            return kiln_error_prefix(err, "%s", path);
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > KILN_SBOM_FILE_MAX)
            return kiln_error_set(err, EFBIG, "%s: larger than %u MiB", path,
                                  KILN_SBOM_FILE_MAX >> 20);
    }
    buf[n] = '\0';
    *len = n;
    *out = steal_pointer(&buf);
    return 0;
}

/* The current entry (an executable) streamed past the Go build information scanner: *blob
 * (malloc'ed, *len bytes) is its blob when it is a Go binary, else NULL. */
static int read_go(kiln_tar_reader_t *t, const char *path, char **blob, size_t *len,
                   kiln_error_t *err)
{
    kiln_go_scan_t sc = {0};
    char buf[65536];
    ssize_t r;

    *blob = NULL;
    while (!kiln_go_scan_done(&sc) && (r = kiln_tar_reader_data(t, buf, sizeof(buf), err)) != 0) {
        if (r < 0) {
            kiln_go_scan_clear(&sc);
            return kiln_error_prefix(err, "%s", path);
        }
        kiln_go_scan_feed(&sc, buf, (size_t)r, err);
    }
    if (kiln_go_scan_finish(&sc, err) == 1) {
        *len = sc.info.len;
        *blob = kiln_xmalloc(*len + 1);
        memcpy(*blob, sc.buf, *len);
    }
    kiln_go_scan_clear(&sc);
    return 0;
}

/* One layer onto files: its whiteouts, opaque directories and non-directory entries hide what
 * the lower layers had there; its database files (regular files, or hard links to one
 * earlier in the layer) join. Symlinks are never followed: they only hide. */
static int scan_layer(kiln_tar_reader_t *t, files_t *files, const char *what, kiln_error_t *err)
{
    files_t added = {0};
    char **hide = NULL;
    size_t n_hide = 0;
    struct archive_entry *e;
    int r, ret = -1;

    while ((r = kiln_tar_reader_next(t, &e, err)) == 1) {
        _cleanup_free_ char *path = kiln_xstrdup(archive_entry_pathname(e));
        const char *link = archive_entry_hardlink(e);
        const char *b;
        mode_t type = archive_entry_filetype(e);

        if (kiln_layer_clean_path(path, "its name", archive_entry_pathname(e), err) < 0)
            goto out;
        b = kiln_sbom_base_name(path);
        if (strncmp(b, ".wh.", 4) == 0) {
            /* ".wh..wh..opq": the directory's lower contents; ".wh.NAME": NAME */
            char *h = strcmp(b, ".wh..wh..opq") == 0
                          ? kiln_xstrndup(path, b > path ? (size_t)(b - path - 1) : 0)
                          : kiln_xasprintf("%.*s%s", (int)(b - path), path, b + 4);
            hide = kiln_xrealloc(hide, (n_hide + 1) * sizeof(char *));
            hide[n_hide++] = h;
            continue;
        }
        if (type != AE_IFDIR) {
            hide = kiln_xrealloc(hide, (n_hide + 1) * sizeof(char *));
            hide[n_hide++] = kiln_xstrdup(path);
        }
        if (link != NULL) {
            _cleanup_free_ char *target = kiln_xstrdup(link);
            _cleanup_free_ char *named = kiln_xasprintf("its hardlink target '%.512s'", link);
            const dbfile_t *src;
            /* named as the unpack names it: the entry, then its target */
            if (kiln_layer_clean_path(target, named, archive_entry_pathname(e), err) < 0)
                goto out;
            src = files_find(&added, target);
            if (src && (src->go || kiln_sbom_wanted(path)))
                files_add(&added, steal_pointer(&path), kiln_xstrndup(src->data, src->len),
                          src->len, src->go);
        } else if (type == AE_IFREG && kiln_sbom_wanted(path)) {
            char *data = NULL;
            size_t len = 0;
            if (read_entry(t, path, &data, &len, err) < 0)
                goto out;
            files_add(&added, steal_pointer(&path), data, len, 0);
        } else if (type == AE_IFREG && (archive_entry_perm(e) & 0111) &&
                   archive_entry_size(e) >= KILN_GO_BUILDINFO_HEADER) {
            /* an executable: a Go binary says its modules in its build information */
            char *blob = NULL;
            size_t len = 0;
            if (read_go(t, path, &blob, &len, err) < 0)
                goto out;
            if (blob)
                files_add(&added, steal_pointer(&path), blob, len, 1);
        }
        if (files->total + added.total > TOTAL_MAX) {
            kiln_error_set(err, EFBIG, "%s: package databases larger than %u MiB in all", what,
                           TOTAL_MAX >> 20);
            goto out;
        }
    }
    if (r < 0)
        goto out;
    for (size_t i = 0; i < n_hide; i++)
        files_remove(files, hide[i]);
    for (size_t i = 0; i < added.n; i++)
        files_add(files, added.v[i].path, added.v[i].data, added.v[i].len, added.v[i].go);
    added.n = 0;
    files_dedupe(files);
    ret = 0;
out:
    for (size_t i = 0; i < n_hide; i++)
        free(hide[i]);
    free(hide);
    files_clear(&added);
    return ret;
}

int kiln_sbom_scan_layers(kiln_sbom_t *sb, kiln_store_t *store, const kiln_descriptor_t *layers,
                          size_t n, kiln_error_t *err)
{
    files_t files = {0};
    int ret = -1;

    for (size_t i = 0; i < n; i++) {
        char ds[KILN_DIGEST_STR_MAX];
        _cleanup_close_ int fd = -1;
        kiln_tar_reader_t *t = NULL;
        int r;

        kiln_digest_str(&layers[i].digest, ds);
        if (kiln_store_open_blob(store, &layers[i].digest, &fd, NULL, err) < 0)
            goto out;
        if (kiln_tar_reader_open(fd, NULL, NULL, NULL, &t, err) < 0) {
            kiln_error_prefix(err, "layer %s", ds);
            goto out;
        }
        r = scan_layer(t, &files, ds, err);
        kiln_tar_reader_free(t);
        if (r < 0) {
            kiln_error_prefix(err, "layer %s", ds);
            goto out;
        }
    }
    /* os-release first: it names the distribution of the deb packages */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < files.n; i++)
            if (files.v[i].go
                    ? pass == 1 && kiln_sbom_add_go(sb, files.v[i].path,
                                                    (const unsigned char *)files.v[i].data,
                                                    files.v[i].len, err) < 0
                    : (strcmp(kiln_sbom_base_name(files.v[i].path), "os-release") == 0) ==
                              (pass == 0) &&
                          kiln_sbom_add_file(sb, files.v[i].path, files.v[i].data, files.v[i].len,
                                             err) < 0)
                goto out;
    ret = 0;
out:
    files_clear(&files);
    return ret;
}

/* ---- the document ---- */

static int by_purl(const void *a, const void *b)
{
    return strcmp(((const pkg_t *)a)->purl, ((const pkg_t *)b)->purl);
}

json_t *kiln_sbom_spdx(const kiln_sbom_t *sb, const char *name, const char *digest,
                       const char *created)
{
    _cleanup_free_ pkg_t *sorted = kiln_xmalloc((sb->n + 1) * sizeof(pkg_t));
    json_t *pkgs = json_array(), *rels = json_array(), *image, *doc;
    kiln_sha256_t h;
    kiln_digest_t id;
    char ids[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *ns = NULL;

    if (sb->n)
        memcpy(sorted, sb->pkgs, sb->n * sizeof(pkg_t));
    qsort(sorted, sb->n, sizeof(pkg_t), by_purl);
    /* the namespace: unique per image and package list, the same for the same image */
    if (kiln_sha256_init(&h, NULL) == 0) {
        kiln_sha256_update(&h, name, strlen(name));
        if (digest)
            kiln_sha256_update(&h, digest, strlen(digest));
        for (size_t i = 0; i < sb->n; i++)
            kiln_sha256_update(&h, sorted[i].purl, strlen(sorted[i].purl) + 1);
        kiln_sha256_final(&h, &id);
        kiln_digest_str(&id, ids);
    } else {
        snprintf(ids, sizeof(ids), "sha256:unknown");
    }
    ns = kiln_xasprintf("https://kiln.dev/spdx/image/%s", strchr(ids, ':') + 1);
    image = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}", "name", name, "SPDXID",
                      "SPDXRef-Image", "versionInfo", digest ? digest : "NOASSERTION",
                      "downloadLocation", "NOASSERTION", "filesAnalyzed", 0, "licenseConcluded",
                      "NOASSERTION", "licenseDeclared", "NOASSERTION", "primaryPackagePurpose",
                      "CONTAINER");
    json_array_append_new(pkgs, image);
    json_array_append_new(rels, json_pack("{s:s, s:s, s:s}", "spdxElementId", "SPDXRef-DOCUMENT",
                                          "relationshipType", "DESCRIBES", "relatedSpdxElement",
                                          "SPDXRef-Image"));
    for (size_t i = 0; i < sb->n; i++) {
        const pkg_t *p = &sorted[i];
        _cleanup_free_ char *spdxid = kiln_xasprintf("SPDXRef-Package-%s-%zu", p->type, i + 1);
        _cleanup_free_ char *info = kiln_xasprintf("acquired package info from %s", p->source);
        json_t *pj;
        json_array_append_new(
            pkgs,
            pj = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:[{s:s, s:s, s:s}]}", "name",
                           p->name, "SPDXID", spdxid, "versionInfo", p->version, "downloadLocation",
                           "NOASSERTION", "filesAnalyzed", 0, "licenseConcluded", "NOASSERTION",
                           "licenseDeclared", p->license ? p->license : "NOASSERTION", "sourceInfo",
                           info, "externalRefs", "referenceCategory", "PACKAGE-MANAGER",
                           "referenceType", "purl", "referenceLocator", p->purl));
        if (p->sha256) /* a Go module's h1 dirhash, as syft lists it */
            json_object_set_new(
                pj, "checksums",
                json_pack("[{s:s, s:s}]", "algorithm", "SHA256", "checksumValue", p->sha256));
        json_array_append_new(rels, json_pack("{s:s, s:s, s:s}", "spdxElementId", "SPDXRef-Image",
                                              "relationshipType", "CONTAINS", "relatedSpdxElement",
                                              spdxid));
    }
    doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:[s]}, s:o, s:o}", "spdxVersion",
                    "SPDX-2.3", "dataLicense", "CC0-1.0", "SPDXID", "SPDXRef-DOCUMENT", "name",
                    name, "documentNamespace", ns, "creationInfo", "created", created, "creators",
                    "Tool: kiln-" KILN_VERSION, "packages", pkgs, "relationships", rels);
    return doc;
}
