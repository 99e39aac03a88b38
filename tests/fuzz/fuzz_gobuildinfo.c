/* libFuzzer target: export/sbom_go's Go build information reader. The first byte picks how
 * the rest is read: even, as a blob from its magic on (the parser, then the packages it
 * gives in an SPDX document); odd, as an executable streamed past the scanner in chunks of
 * (first byte / 2 + 1) bytes. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "export/sbom.h"
#include "export/sbom_go.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};

    if (size < 1)
        return 0;
    if ((data[0] & 1) == 0) {
        kiln_sbom_t *sb = kiln_sbom_new();
        json_t *doc;
        kiln_sbom_add_go(sb, "usr/local/bin/app", data + 1, size - 1, &err);
        doc = kiln_sbom_spdx(sb, "fuzz", NULL, "2026-01-01T00:00:00Z");
        json_decref(doc);
        kiln_sbom_free(sb);
    } else {
        kiln_go_scan_t sc = {0};
        size_t chunk = (size_t)(data[0] >> 1) + 1;
        for (size_t off = 1; off < size && !kiln_go_scan_done(&sc); off += chunk)
            kiln_go_scan_feed(&sc, data + off, off + chunk <= size ? chunk : size - off, &err);
        kiln_go_scan_finish(&sc, &err);
        kiln_go_scan_clear(&sc);
    }
    return 0;
}
