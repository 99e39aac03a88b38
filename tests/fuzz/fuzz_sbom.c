/* libFuzzer target: export/sbom's package database readers (dpkg status, os-release, an
 * installed package.json, package-lock, pnpm-lock.yaml, yarn.lock, dist-info METADATA) and
 * the SPDX document of what they found. The first byte picks the database, the rest is it. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "export/sbom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const paths[] = {
        "var/lib/dpkg/status",
        "usr/lib/os-release",
        "app/node_modules/@s/x/package.json",
        "app/package-lock.json",
        "app/pnpm-lock.yaml",
        "app/yarn.lock",
        "usr/lib/python3/site-packages/x-1.dist-info/METADATA",
    };
    kiln_sbom_t *sb;
    kiln_error_t err = {0};
    json_t *doc;

    if (size < 1)
        return 0;
    sb = kiln_sbom_new();
    kiln_sbom_add_file(sb, paths[data[0] % (sizeof(paths) / sizeof(paths[0]))],
                       (const char *)data + 1, size - 1, &err);
    doc = kiln_sbom_spdx(sb, "fuzz", NULL, "2026-01-01T00:00:00Z");
    json_decref(doc);
    kiln_sbom_free(sb);
    return 0;
}
