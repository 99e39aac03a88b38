/* kiln — an image made zstd:chunked (see zstd_chunked.h): each layer decompressed from the
 * store and written again as zstd:chunked, its tar (so its diff_id and the config) unchanged.
 * `kiln copy --zstd-chunked` pushes or writes the result. */
#include <string.h>

#include "oci/compress.h"
#include "oci/store.h"
#include "oci/zstd_chunked.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

typedef struct dec_reader {
    kiln_decompressor_t *d;
} dec_reader_t;

static ssize_t dec_read(void *ud, void *buf, size_t len, kiln_error_t *err)
{
    return kiln_decompressor_read(((dec_reader_t *)ud)->d, buf, len, err);
}

/* The platform manifest of top: top itself, or an index's linux/amd64 entry. */
static int image_manifest(kiln_store_t *s, const kiln_descriptor_t *top, kiln_manifest_t **m,
                          kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    kiln_digest_t d = top->digest;
    if (strcmp(top->media_type, KILN_MT_OCI_INDEX) == 0 ||
        strcmp(top->media_type, KILN_MT_DOCKER_LIST) == 0) {
        kiln_index_t *ix = NULL;
        int k;
        if (kiln_store_read_blob(s, &d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
            kiln_image_parse_index(body, len, &ix, err) < 0)
            return -1;
        k = kiln_image_index_select(ix, "linux", "amd64", NULL, err);
        if (k >= 0)
            d = ix->manifests[k].digest;
        kiln_index_free(ix);
        free(body);
        body = NULL;
        if (k < 0)
            return -1;
    }
    if (kiln_store_read_blob(s, &d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0)
        return -1;
    return kiln_image_parse_manifest(body, len, m, err);
}

/* Layer i of m written again as zstd:chunked into the store: its descriptor in *out. */
static int convert_layer(kiln_store_t *s, const kiln_descriptor_t *in, const char *diff_id,
                         int level, kiln_descriptor_t *out, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    kiln_store_writer_t *w = NULL;
    kiln_zstd_chunked_info_t info;
    dec_reader_t rd = {0};
    kiln_sink_t sink;
    char ds[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *ck = NULL;
    _cleanup_free_ char *pos = NULL;
    int r;
    if (kiln_store_open_blob(s, &in->digest, &fd, NULL, err) < 0 ||
        kiln_decompressor_new(fd, NULL, NULL, NULL, NULL, &rd.d, err) < 0)
        return -1;
    if (kiln_store_writer_new(s, NULL, -1, &w, err) < 0) {
        kiln_decompressor_free(rd.d);
        return -1;
    }
    sink = kiln_store_writer_sink(w);
    r = kiln_zstd_chunked_write(dec_read, &rd, level, &sink, &info, err);
    kiln_decompressor_free(rd.d);
    if (r == 0 && (diff_id == NULL || strcmp(kiln_digest_str(&info.diff_id, ds), diff_id) != 0))
        r = kiln_error_set(err, 0, "its tar is %s, the config's diff_id %s", ds,
                           diff_id ? diff_id : "(none)");
    if (r < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (kiln_store_writer_commit(w, &out->digest, &out->size, err) < 0)
        return -1;
    snprintf(out->media_type, sizeof(out->media_type), "%s", KILN_MT_OCI_LAYER_ZSTD);
    kiln_zstd_chunked_annotations(&info, &ck, &pos);
    out->annotations =
        json_pack("{ssss}", KILN_ZSTD_CHUNKED_CHECKSUM, ck, KILN_ZSTD_CHUNKED_POSITION, pos);
    return 0;
}

int kiln_zstd_chunked_convert(kiln_store_t *s, const kiln_descriptor_t *top, int level,
                              kiln_descriptor_t *out, kiln_error_t *err)
{
    kiln_manifest_t *m = NULL;
    kiln_descriptor_t *layers = NULL;
    _cleanup_free_ char *cbody = NULL;
    size_t clen = 0, done = 0;
    json_t *cfg = NULL, *diffs, *man = NULL;
    int ret = -1;
    if (image_manifest(s, top, &m, err) < 0)
        return -1;
    if (kiln_store_read_blob(s, &m->config.digest, KILN_IMAGE_CONFIG_MAX, &cbody, &clen, err) < 0 ||
        kiln_image_parse_config(cbody, clen, &cfg, err) < 0)
        goto out;
    diffs = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (json_array_size(diffs) != m->n_layers) {
        kiln_error_set(err, 0, "the config lists %zu diff_ids for %zu layers",
                       json_array_size(diffs), m->n_layers);
        goto out;
    }
    layers = kiln_xzalloc((m->n_layers + 1) * sizeof(*layers));
    for (; done < m->n_layers; done++) {
        char ds[KILN_DIGEST_STR_MAX];
        if (convert_layer(s, &m->layers[done], json_string_value(json_array_get(diffs, done)),
                          level, &layers[done], err) < 0) {
            kiln_error_prefix(err, "layer %zu (%s)", done,
                              kiln_digest_str(&m->layers[done].digest, ds));
            goto out;
        }
    }
    man = kiln_image_manifest_new(&m->config, layers, m->n_layers, NULL);
    ret = kiln_image_store_put(s, man, KILN_MT_OCI_MANIFEST, out, err);
out:
    for (size_t i = 0; i < done; i++)
        kiln_descriptor_clear(&layers[i]);
    free(layers);
    json_decref(man);
    json_decref(cfg);
    kiln_manifest_free(m);
    return ret;
}
