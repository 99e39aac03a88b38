/* Unit tests for export/sbom and export/provenance: the SPDX 2.3 document of a two-layer
 * image read from the store (dpkg status, installed npm packages, a package-lock, a Python
 * dist-info; a whited-out package gone, a symlinked database never followed to the host's
 * marker), the lockfile readers (pnpm v5/v6/v9, yarn v1/Berry), and the in-toto SLSA v1
 * statement (a credential-looking build arg's value left out). */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/provenance.h"
#include "export/sbom.h"
#include "oci/store.h"
#include "tmpdir.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

#define MARKER_TEXT "Package: host-marker\nVersion: 9\nStatus: install ok installed\n\n"

static const char dpkg_status[] =
    "Package: base-files\nStatus: install ok installed\nPriority: required\n"
    "Architecture: amd64\nVersion: 12.4+deb12u5\nDescription: base\n multi-line\n\n"
    "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: "
    "2.36-9+deb12u4\n\n"
    "Package: removed-pkg\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
    "Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n";

/* One tar entry for make_layer: a regular file (text), a symlink (link) or a whiteout. */
typedef struct entry {
    const char *path;
    const char *text;
    const char *link;
} entry_t;

/* Writes a plain tar of entries into the store as a layer blob. */
static void make_layer(kiln_store_t *store, const entry_t *e, size_t n, kiln_descriptor_t *out)
{
    struct archive *a = archive_write_new();
    size_t cap = 1 << 20, used = 0;
    _cleanup_free_ char *buf = kiln_xmalloc(cap);
    kiln_store_writer_t *w = NULL;
    kiln_error_t err = {0};

    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].path);
        if (e[i].link) {
            archive_entry_set_filetype(ae, AE_IFLNK);
            archive_entry_set_symlink(ae, e[i].link);
            archive_entry_set_perm(ae, 0777);
        } else {
            archive_entry_set_filetype(ae, AE_IFREG);
            archive_entry_set_perm(ae, 0644);
            archive_entry_set_size(ae, (la_int64_t)strlen(e[i].text));
        }
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (!e[i].link)
            archive_write_data(a, e[i].text, strlen(e[i].text));
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    assert_int_equal(kiln_store_writer_new(store, NULL, -1, &w, &err), 0);
    assert_int_equal(kiln_store_writer_write(w, buf, used, &err), 0);
    assert_int_equal(kiln_store_writer_commit(w, &out->digest, &out->size, &err), 0);
}

/* The purls of the document's packages, one per line (the image itself left out). */
static char *purls(const json_t *doc)
{
    size_t i;
    json_t *p;
    char *all = kiln_xstrdup("");

    json_array_foreach(json_object_get(doc, "packages"), i, p)
    {
        json_t *refs = json_object_get(p, "externalRefs");
        const char *purl =
            json_string_value(json_object_get(json_array_get(refs, 0), "referenceLocator"));
        if (purl) {
            char *next = kiln_xasprintf("%s%s\n", all, purl);
            free(all);
            all = next;
        }
    }
    return all;
}

static void test_spdx_from_layers(void **state)
{
    _cleanup_free_ char *dir = tmpdir_make("sbom");
    _cleanup_free_ char *root = kiln_xasprintf("%s/store", dir);
    _cleanup_free_ char *marker = kiln_xasprintf("%s/marker", dir);
    _cleanup_free_ char *all = NULL;
    kiln_store_t *store = NULL;
    kiln_descriptor_t layers[2] = {0};
    kiln_error_t err = {0};
    kiln_sbom_t *sb = kiln_sbom_new();
    const entry_t l1[] = {
        {"var/lib/dpkg/status", dpkg_status, NULL},
        {"usr/lib/os-release", "NAME=\"Debian\"\nID=debian\n", NULL},
        {"etc/os-release", NULL, "../usr/lib/os-release"},
        {"app/node_modules/left-pad/package.json",
         "{\"name\":\"left-pad\",\"version\":\"1.3.0\",\"license\":\"WTFPL\"}", NULL},
        {"app/node_modules/left-pad/lib/package.json", "{\"name\":\"inner\",\"version\":\"0\"}",
         NULL},
        {"app/node_modules/@scope/util/package.json",
         "{\"name\":\"@scope/util\",\"version\":\"2.0.0\",\"license\":\"MIT License\"}", NULL},
        {"app/node_modules/gone/package.json", "{\"name\":\"gone\",\"version\":\"1.0.0\"}", NULL},
        /* a link to the host's marker: never followed */
        {"app/node_modules/evil/package.json", NULL, marker},
        {"opt/dpkg-link/var/lib/dpkg/status", NULL, marker},
        {"app/package-lock.json",
         "{\"lockfileVersion\":3,\"packages\":{\"\":{\"name\":\"app\",\"version\":\"1.0.0\"},"
         "\"node_modules/express\":{\"version\":\"4.19.2\",\"license\":\"MIT\"},"
         "\"node_modules/a/node_modules/@b/c\":{\"version\":\"0.1.0\"},"
         "\"packages/lib\":{\"link\":true}}}",
         NULL},
        {"usr/lib/python3/dist-packages/Flask_Cors-4.0.1.dist-info/METADATA",
         "Metadata-Version: 2.1\nName: Flask_Cors\nVersion: 4.0.1\nLicense: MIT\n\nbody\nName: "
         "no\n",
         NULL},
    };
    const entry_t l2[] = {
        {"app/node_modules/.wh.gone", "", NULL},
        {"app/node_modules/left-pad/package.json",
         "{\"name\":\"left-pad\",\"version\":\"1.3.1\",\"license\":\"WTFPL\"}", NULL},
    };
    json_t *doc, *pkgs;

    (void)state;
    assert_non_null(dir);
    assert_int_equal(tmpdir_put(dir, "marker", MARKER_TEXT, 0644), 0);
    if (kiln_store_open(root, &store, &err) < 0)
        fail_msg("store: %s", err.msg);
    make_layer(store, l1, sizeof(l1) / sizeof(l1[0]), &layers[0]);
    make_layer(store, l2, sizeof(l2) / sizeof(l2[0]), &layers[1]);
    if (kiln_sbom_scan_layers(sb, store, layers, 2, &err) < 0)
        fail_msg("scan: %s", err.msg);
    doc = kiln_sbom_spdx(sb, "localhost:5000/app:v1", "sha256:abcd", "2026-12-03T14:00:00Z");
    assert_string_equal(json_string_value(json_object_get(doc, "spdxVersion")), "SPDX-2.3");
    assert_string_equal(json_string_value(json_object_get(doc, "dataLicense")), "CC0-1.0");
    assert_string_equal(json_string_value(json_object_get(doc, "SPDXID")), "SPDXRef-DOCUMENT");
    all = purls(doc);
    assert_string_equal(all, "pkg:deb/debian/base-files@12.4+deb12u5?arch=amd64\n"
                             "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64\n"
                             "pkg:deb/debian/tzdata@2024a-0+deb12u1?arch=all\n"
                             "pkg:npm/%40b/c@0.1.0\n"
                             "pkg:npm/%40scope/util@2.0.0\n"
                             "pkg:npm/express@4.19.2\n"
                             "pkg:npm/left-pad@1.3.1\n"
                             "pkg:pypi/flask-cors@4.0.1\n");
    /* the image, then the packages, each contained by it; free text is no license */
    pkgs = json_object_get(doc, "packages");
    assert_int_equal(json_array_size(pkgs), 9);
    assert_string_equal(json_string_value(json_object_get(json_array_get(pkgs, 0), "SPDXID")),
                        "SPDXRef-Image");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(pkgs, 5), "licenseDeclared")),
        "NOASSERTION");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(pkgs, 6), "licenseDeclared")), "MIT");
    assert_int_equal(json_array_size(json_object_get(doc, "relationships")), 9);
    {
        _cleanup_free_ char *text = json_dumps(doc, 0);
        assert_null(strstr(text, "host-marker"));
        assert_null(strstr(text, "\"gone\""));
        assert_null(strstr(text, "removed-pkg"));
        assert_null(strstr(text, "inner"));
    }
    json_decref(doc);
    kiln_sbom_free(sb);
    kiln_descriptor_clear(&layers[0]);
    kiln_descriptor_clear(&layers[1]);
    kiln_store_close(store);
    {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        assert_int_equal(kiln_fs_read_file(marker, 4096, &text, &len, NULL), 0);
        assert_string_equal(text, MARKER_TEXT);
    }
    kiln_fs_rm_rf(dir, NULL);
}

static void test_lockfiles(void **state)
{
    kiln_sbom_t *sb = kiln_sbom_new();
    kiln_error_t err = {0};
    static const char pnpm9[] = "lockfileVersion: '9.0'\n\nimporters:\n  .:\n    dependencies:\n"
                                "      chalk:\n        specifier: ^5\n\npackages:\n\n"
                                "  chalk@5.3.0:\n    resolution: {integrity: sha512-x}\n\n"
                                "  '@types/node@20.11.0':\n    resolution: {}\n"
                                "  react-dom@18.2.0(react@18.2.0):\n    resolution: {}\n"
                                "snapshots:\n\n  chalk@5.3.0: {}\n";
    static const char pnpm5[] = "lockfileVersion: 5.4\npackages:\n  /ms/2.1.3:\n    dev: false\n"
                                "  /@babel/core/7.23.0:\n    dev: true\n";
    static const char yarn1[] = "# yarn lockfile v1\n\n\n\"@babel/code-frame@^7.0.0\", "
                                "\"@babel/code-frame@^7.22.13\":\n  version \"7.22.13\"\n"
                                "  resolved \"https://registry.yarnpkg.com/x\"\n\n"
                                "lodash@^4.17.21:\n  version \"4.17.21\"\n";
    static const char berry[] = "__metadata:\n  version: 6\n\n\"debug@npm:^4.3.4\":\n"
                                "  version: 4.3.4\n  resolution: \"debug@npm:4.3.4\"\n\n"
                                "\"app@workspace:.\":\n  version: 0.0.0-use.local\n";
    json_t *doc;
    _cleanup_free_ char *all = NULL;

    (void)state;
    assert_int_equal(kiln_sbom_add_file(sb, "srv/pnpm-lock.yaml", pnpm9, strlen(pnpm9), &err), 0);
    assert_int_equal(kiln_sbom_add_file(sb, "old/pnpm-lock.yaml", pnpm5, strlen(pnpm5), &err), 0);
    assert_int_equal(kiln_sbom_add_file(sb, "y1/yarn.lock", yarn1, strlen(yarn1), &err), 0);
    assert_int_equal(kiln_sbom_add_file(sb, "y2/yarn.lock", berry, strlen(berry), &err), 0);
    /* a lockfile inside node_modules is a dependency's, not the image's record */
    assert_false(kiln_sbom_wanted("app/node_modules/x/yarn.lock"));
    assert_true(kiln_sbom_wanted("app/node_modules/.package-lock.json"));
    assert_false(kiln_sbom_wanted("app/node_modules/x/node_modules/.package-lock.json"));
    doc = kiln_sbom_spdx(sb, "img", NULL, "2026-12-03T14:00:00Z");
    all = purls(doc);
    assert_string_equal(all, "pkg:npm/%40babel/code-frame@7.22.13\n"
                             "pkg:npm/%40babel/core@7.23.0\n"
                             "pkg:npm/%40types/node@20.11.0\n"
                             "pkg:npm/chalk@5.3.0\n"
                             "pkg:npm/debug@4.3.4\n"
                             "pkg:npm/lodash@4.17.21\n"
                             "pkg:npm/ms@2.1.3\n"
                             "pkg:npm/react-dom@18.2.0\n");
    json_decref(doc);
    kiln_sbom_free(sb);
}

static void test_provenance(void **state)
{
    const char *args[] = {"NODE_ENV=production", "NPM_TOKEN=s3cr3t-value", "api_key=k3y-value",
                          "FROM_ENV"};
    const char *secrets[] = {"npmrc"};
    const char *bases[] = {
        "docker.io/library/debian:12@sha256:"
        "1111111111111111111111111111111111111111111111111111111111111111",
        "127.0.0.1:5000/ns/base@sha256:"
        "2222222222222222222222222222222222222222222222222222222222222222",
        "oci:/srv/"
        "layout:1@sha256:3333333333333333333333333333333333333333333333333333333333333333"};
    kiln_provenance_in_t in = {.name = "localhost:5000/app:v1",
                               .digest = "sha256:abcd",
                               .source = "https://example.test/app.git",
                               .repo = "https://example.test/app.git",
                               .commit = "0123456789abcdef0123456789abcdef01234567",
                               .dockerfile = "Dockerfile",
                               .build_args = args,
                               .n_build_args = 4,
                               .secret_ids = secrets,
                               .n_secret_ids = 1,
                               .base_images = bases,
                               .n_base_images = 3,
                               .invocation_id = "b-1"};
    json_t *st = kiln_provenance_statement(&in);
    json_t *pred = json_object_get(st, "predicate");
    json_t *ext = json_object_get(json_object_get(pred, "buildDefinition"), "externalParameters");
    json_t *deps =
        json_object_get(json_object_get(pred, "buildDefinition"), "resolvedDependencies");
    _cleanup_free_ char *text = json_dumps(st, JSON_COMPACT);

    (void)state;
    assert_string_equal(json_string_value(json_object_get(st, "_type")),
                        "https://in-toto.io/Statement/v1");
    assert_string_equal(json_string_value(json_object_get(st, "predicateType")),
                        "https://slsa.dev/provenance/v1");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(st, "subject"), 0), "digest"),
            "sha256")),
        "abcd");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(ext, "args"), "NODE_ENV")), "production");
    assert_null(json_object_get(json_object_get(ext, "args"), "NPM_TOKEN"));
    assert_null(strstr(text, "s3cr3t-value"));
    assert_null(strstr(text, "k3y-value"));
    assert_non_null(strstr(text, "\"argsRedacted\":[\"NPM_TOKEN\",\"api_key\"]"));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(deps, 0), "digest"), "gitCommit")),
                        in.commit);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(deps, 1), "digest"), "sha256")),
                        "1111111111111111111111111111111111111111111111111111111111111111");
    /* BuildKit's form: a purl, Docker Hub's official images by their short name */
    assert_string_equal(json_string_value(json_object_get(json_array_get(deps, 1), "uri")),
                        "pkg:docker/debian@12?platform=linux%2Famd64");
    assert_string_equal(json_string_value(json_object_get(json_array_get(deps, 2), "uri")),
                        "pkg:docker/127.0.0.1:5000/ns/base?platform=linux%2Famd64");
    assert_string_equal(json_string_value(json_object_get(json_array_get(deps, 3), "uri")),
                        "oci:/srv/layout:1");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(pred, "runDetails"), "builder"), "id")),
                        KILN_PROVENANCE_BUILDER);
    json_decref(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spdx_from_layers),
        cmocka_unit_test(test_lockfiles),
        cmocka_unit_test(test_provenance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
