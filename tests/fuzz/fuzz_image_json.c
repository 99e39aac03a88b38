/* libFuzzer target: the image JSON parsers (manifest, index, config, and the
 * spec validator) must never crash, and what kiln accepts must survive a
 * canonical serialize + re-parse with the same digest. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "oci/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-serializes an accepted document and checks the result is stable. */
static void roundtrip(const json_t *doc)
{
    char *a = NULL, *b = NULL;
    size_t la, lb;
    kiln_digest_t da, db;
    json_t *again;

    if (kiln_image_serialize(doc, &a, &la, &da, NULL) < 0)
        abort();
    again = json_loadb(a, la, 0, NULL);
    if (again == NULL || kiln_image_serialize(again, &b, &lb, &db, NULL) < 0 ||
        !kiln_digest_equal(&da, &db))
        abort();
    json_decref(again);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    kiln_manifest_t *m = NULL;
    kiln_index_t *ix = NULL;
    json_t *cfg = NULL;
    static const char *types[] = {KILN_MT_OCI_MANIFEST, KILN_MT_OCI_INDEX, KILN_MT_OCI_CONFIG,
                                  "application/vnd.oci.descriptor.v1+json",
                                  "application/vnd.oci.layout.header.v1+json"};

    if (kiln_image_parse_manifest(buf, size, &m, NULL) == 0) {
        roundtrip(m->json);
        kiln_manifest_free(m);
    }
    if (kiln_image_parse_index(buf, size, &ix, NULL) == 0) {
        roundtrip(ix->json);
        kiln_image_index_select(ix, "linux", "amd64", NULL, NULL);
        kiln_index_free(ix);
    }
    if (kiln_image_parse_config(buf, size, &cfg, NULL) == 0) {
        roundtrip(cfg);
        json_decref(cfg);
    }
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        kiln_image_validate(types[i], buf, size, NULL);
    return 0;
}
