/* kiln — docker-archive (`docker save` / `docker load` tarball) writer and reader. */
#include "oci/docker_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/layout.h"
#include "oci/tarfile.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define MAX_LAYERS 1000

int kiln_docker_archive_write(kiln_store_t *s, const char *path, const kiln_descriptor_t *manifest,
                              const char *const *repo_tags, kiln_error_t *err)
{
    return kiln_docker_archive_write_multi(s, path, manifest, &repo_tags, 1, err);
}

/* manifest.json's entry of one image (its config, layers and names). */
static int archive_entry_of(kiln_store_t *s, const kiln_descriptor_t *manifest,
                            const char *const *repo_tags, json_t **out, kiln_error_t *err)
{
    _cleanup_free_ char *data = NULL;
    json_t *entry, *tags, *layers;
    kiln_manifest_t *m = NULL;
    size_t len;

    if (kiln_store_read_blob(s, &manifest->digest, KILN_IMAGE_MANIFEST_MAX, &data, &len, err) < 0 ||
        kiln_image_parse_manifest(data, len, &m, err) < 0)
        return -1;
    entry = json_object();
    json_object_set_new(entry, "Config", json_pack("s+", "blobs/sha256/", m->config.digest.hex));
    tags = json_array();
    for (size_t i = 0; repo_tags != NULL && repo_tags[i] != NULL; i++)
        json_array_append_new(tags, json_string(repo_tags[i]));
    json_object_set_new(entry, "RepoTags", tags);
    layers = json_array();
    for (size_t i = 0; i < m->n_layers; i++)
        json_array_append_new(layers, json_pack("s+", "blobs/sha256/", m->layers[i].digest.hex));
    json_object_set_new(entry, "Layers", layers);
    kiln_manifest_free(m);
    *out = entry;
    return 0;
}

int kiln_docker_archive_write_multi(kiln_store_t *s, const char *path,
                                    const kiln_descriptor_t *manifests,
                                    const char *const *const *repo_tags, size_t n,
                                    kiln_error_t *err)
{
    _cleanup_free_ char *out = NULL;
    _cleanup_free_ const char **names = kiln_xzalloc((n ? n : 1) * sizeof(char *));
    _cleanup_json_ json_t *list = json_array();
    size_t len;

    for (size_t i = 0; i < n; i++) {
        json_t *entry = NULL;
        if (archive_entry_of(s, &manifests[i], repo_tags[i], &entry, err) < 0)
            return kiln_error_prefix(err, "docker-archive %s", path);
        json_array_append_new(list, entry);
        names[i] = repo_tags[i] && repo_tags[i][0] ? repo_tags[i][0] : NULL;
    }
    if (kiln_json_dump_canonical(list, &out, &len, err) < 0)
        return -1;
    return kiln_layout_write_archive_multi(s, path, manifests, names, n, "manifest.json", out, len,
                                           err);
}

/* --- reading ------------------------------------------------------------------ */

typedef struct layer_state {
    char *path;
    int seen;
    kiln_descriptor_t desc;
} layer_state_t;

/* Streams the current entry (a layer) through a hasher and optionally into
 * the store; fills desc (digest, size, media type from the content). */
static int stream_layer(struct archive *a, kiln_store_t *store, const char *what,
                        kiln_descriptor_t *desc, kiln_error_t *err)
{
    kiln_store_writer_t *w = NULL;
    kiln_sha256_t h = {0};
    char buf[65536];
    unsigned char magic[4] = {0};
    size_t got_magic = 0;
    la_ssize_t n;
    const char *mt;

    if (store != NULL && kiln_store_writer_new(store, NULL, -1, &w, err) < 0)
        return -1;
    if (kiln_sha256_init(&h, err) < 0)
        goto fail;
    for (;;) {
        n = archive_read_data(a, buf, sizeof(buf));
        if (n < 0) {
            kiln_error_set(err, 0, "%s: %s", what, archive_error_string(a));
            goto fail;
        }
        if (n == 0)
            break;
        for (size_t i = 0; got_magic < 4 && i < (size_t)n; i++)
            magic[got_magic++] = (unsigned char)buf[i];
        kiln_sha256_update(&h, buf, (size_t)n);
        if (w != NULL && kiln_store_writer_write(w, buf, (size_t)n, err) < 0)
            goto fail;
    }
    desc->size = h.bytes;
    kiln_sha256_final(&h, &desc->digest);
    if (w != NULL && kiln_store_writer_commit(steal_pointer(&w), NULL, NULL, err) < 0)
        return -1;
    if (magic[0] == 0x1f && magic[1] == 0x8b)
        mt = KILN_MT_OCI_LAYER_GZIP;
    else if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
        mt = KILN_MT_OCI_LAYER_ZSTD;
    else
        mt = KILN_MT_OCI_LAYER;
    snprintf(desc->media_type, sizeof(desc->media_type), "%s", mt);
    return 0;
fail:
    kiln_sha256_dispose(&h);
    kiln_store_writer_abort(w);
    return -1;
}

/* Pass 1: finds and parses manifest.json; returns entry number `index`. */
/* Reads the archive's manifest.json list (an array, capped). */
static int read_manifest_list(const char *path, json_t **out, kiln_error_t *err)
{
    struct archive *a = NULL;
    struct archive_entry *e;
    _cleanup_free_ char *data = NULL;
    _cleanup_json_ json_t *list = NULL;
    size_t len = 0;
    int r, found = 0;

    if (kiln_tarfile_open(path, &a, err) < 0)
        return -1;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (strcmp(kiln_tarfile_name(e), "manifest.json") == 0) {
            if (archive_entry_filetype(e) != AE_IFREG) {
                kiln_error_set(err, 0, "%s: manifest.json is not a regular file (a link?)", path);
                found = -1;
                break;
            }
            found = kiln_tarfile_read_entry(a, "manifest.json", KILN_IMAGE_MANIFEST_MAX, 0, &data,
                                            &len, err) < 0
                        ? -1
                        : 1;
            break;
        }
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_EOF)
        kiln_error_set(err, 0, "%s: %s", path, archive_error_string(a));
    archive_read_free(a);
    if (found < 0 || (r != ARCHIVE_OK && r != ARCHIVE_EOF))
        return -1;
    if (!found)
        return kiln_error_set(err, 0, "%s is not a docker-archive (no manifest.json)", path);
    if (kiln_json_loadb(data, len, KILN_IMAGE_MANIFEST_MAX, "manifest.json", &list, err) < 0)
        return -1;
    if (!json_is_array(list))
        return kiln_error_set(err, 0, "manifest.json: must be an array");
    *out = steal_pointer(&list);
    return 0;
}

/* Reads entry `index` of the archive's manifest.json. */
static int read_manifest_json(const char *path, size_t index, json_t **entry, kiln_error_t *err)
{
    _cleanup_json_ json_t *list = NULL;

    if (read_manifest_list(path, &list, err) < 0)
        return -1;
    if (index >= json_array_size(list))
        return kiln_error_set(err, 0, "manifest.json lists %zu image(s); no image #%zu",
                              json_array_size(list), index);
    *entry = json_incref(json_array_get(list, index));
    return 0;
}

int kiln_docker_archive_count(const char *path, size_t *n, kiln_error_t *err)
{
    _cleanup_json_ json_t *list = NULL;

    if (read_manifest_list(path, &list, err) < 0)
        return kiln_error_prefix(err, "docker-archive %s", path);
    *n = json_array_size(list);
    return 0;
}

/* Joins a symlink target to the directory of the link and normalises "." and
 * ".." components; NULL when the result would leave the archive root. */
static char *join_link(const char *link_name, const char *target)
{
    const char *slash = strrchr(link_name, '/');
    _cleanup_free_ char *joined = NULL;
    char *out, *save = NULL, *tok;
    size_t used = 0;

    if (target[0] == '/')
        return NULL;
    joined = slash ? kiln_xasprintf("%.*s/%s", (int)(slash - link_name), link_name, target)
                   : kiln_xstrdup(target);
    out = kiln_xzalloc(strlen(joined) + 1);
    for (tok = strtok_r(joined, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
        if (strcmp(tok, ".") == 0)
            continue;
        if (strcmp(tok, "..") == 0) {
            char *prev;
            if (used == 0) {
                free(out);
                return NULL;
            }
            prev = strrchr(out, '/');
            used = prev ? (size_t)(prev - out) : 0;
            out[used] = '\0';
            continue;
        }
        if (used > 0)
            out[used++] = '/';
        memcpy(out + used, tok, strlen(tok) + 1);
        used += strlen(tok);
    }
    return out;
}

/* NULL when a manifest.json path names an entry inside the archive: relative, without '..'
 * (the reader only ever matches entry names, but such a path is a hostile archive's). */
static const char *bad_path(const char *p)
{
    if (p[0] == '\0')
        return "an empty path";
    if (p[0] == '/')
        return "an absolute path";
    for (const char *c = p; (c = strstr(c, "..")) != NULL; c += 2)
        if ((c == p || c[-1] == '/') && (c[2] == '\0' || c[2] == '/'))
            return "a '..' path";
    return NULL;
}

/* One pass over the archive: reads the config (once) and streams every
 * layer not yet seen. A layer entry that is a symlink renames what is looked
 * for and sets *aliased (another pass may be needed). */
static int scan_pass(const char *path, const char *cfg_path, char **cfg_data, size_t *cfg_len,
                     layer_state_t *layers, size_t n_layers, kiln_store_t *store, int *aliased,
                     kiln_error_t *err)
{
    struct archive *a = NULL;
    struct archive_entry *e;
    size_t i;
    int r, ret = -1;

    if (kiln_tarfile_open(path, &a, err) < 0)
        return -1;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = kiln_tarfile_name(e);
        if (*cfg_data == NULL && strcmp(name, cfg_path) == 0) {
            if (archive_entry_filetype(e) != AE_IFREG) {
                kiln_error_set(err, 0, "config %s is not a regular file in the archive (a link?)",
                               name);
                goto out;
            }
            if (kiln_tarfile_read_entry(a, cfg_path, KILN_IMAGE_CONFIG_MAX, 0, cfg_data, cfg_len,
                                        err) < 0)
                goto out;
            continue;
        }
        for (i = 0; i < n_layers; i++) {
            if (layers[i].seen || strcmp(name, layers[i].path) != 0)
                continue;
            if (archive_entry_filetype(e) == AE_IFLNK && archive_entry_symlink(e) != NULL) {
                char *to = join_link(name, archive_entry_symlink(e));
                if (to == NULL) {
                    kiln_error_set(err, 0, "layer %s links outside the archive", name);
                    goto out;
                }
                for (size_t k = i + 1; k < n_layers; k++)
                    if (!layers[k].seen && strcmp(layers[k].path, name) == 0) {
                        free(layers[k].path);
                        layers[k].path = kiln_xstrdup(to);
                    }
                free(layers[i].path);
                layers[i].path = to;
                *aliased = 1;
                break;
            }
            if (archive_entry_filetype(e) != AE_IFREG) {
                kiln_error_set(err, 0, "layer %s is not a regular file in the archive", name);
                goto out;
            }
            if (stream_layer(a, store, name, &layers[i].desc, err) < 0)
                goto out;
            layers[i].seen = 1;
            /* the same path listed twice (a repeated layer) shares the result */
            for (size_t k = i + 1; k < n_layers; k++)
                if (strcmp(layers[k].path, name) == 0) {
                    layers[k].desc = layers[i].desc;
                    layers[k].seen = 1;
                }
            break;
        }
    }
    if (r != ARCHIVE_EOF) {
        kiln_error_set(err, 0, "%s", archive_error_string(a));
        goto out;
    }
    ret = 0;
out:
    archive_read_free(a);
    return ret;
}

int kiln_docker_archive_read(const char *path, size_t index, kiln_store_t *store,
                             kiln_docker_archive_image_t **out, kiln_error_t *err)
{
    _cleanup_json_ json_t *entry = NULL;
    _cleanup_free_ char *cfg_data = NULL;
    json_t *layers_j, *tags_j, *e_j;
    const char *cfg_path;
    layer_state_t *layers = NULL;
    size_t n_layers = 0, cfg_len = 0, i;
    kiln_docker_archive_image_t *img = NULL;
    kiln_descriptor_t cfg_desc = {0};
    kiln_descriptor_t *descs = NULL;
    const char *why;
    int ret = -1;

    if (read_manifest_json(path, index, &entry, err) < 0)
        return kiln_error_prefix(err, "docker-archive %s", path);
    cfg_path = kiln_json_get_string(entry, "Config");
    layers_j = json_object_get(entry, "Layers");
    tags_j = json_object_get(entry, "RepoTags");
    if (cfg_path == NULL || !json_is_array(layers_j) ||
        (tags_j != NULL && !json_is_null(tags_j) && !json_is_array(tags_j)))
        return kiln_error_set(err, 0,
                              "docker-archive %s: manifest.json entry needs Config (string), "
                              "Layers (array) and RepoTags (array)",
                              path);
    n_layers = json_array_size(layers_j);
    if (n_layers > MAX_LAYERS)
        return kiln_error_set(err, E2BIG, "docker-archive %s: more than %d layers", path,
                              MAX_LAYERS);
    layers = kiln_xzalloc((n_layers ? n_layers : 1) * sizeof(*layers));
    json_array_foreach(layers_j, i, e_j)
    {
        if (!json_is_string(e_j)) {
            kiln_error_set(err, 0, "docker-archive %s: Layers[%zu] is not a string", path, i);
            goto out;
        }
        if ((why = bad_path(json_string_value(e_j))) != NULL) {
            kiln_error_set(err, 0, "manifest.json Layers[%zu] '%.200s' is %s, outside the archive",
                           i, json_string_value(e_j), why);
            goto out;
        }
        layers[i].path = kiln_xstrdup(json_string_value(e_j));
        while (strncmp(layers[i].path, "./", 2) == 0)
            memmove(layers[i].path, layers[i].path + 2, strlen(layers[i].path + 2) + 1);
    }
    while (strncmp(cfg_path, "./", 2) == 0)
        cfg_path += 2;
    if ((why = bad_path(cfg_path)) != NULL) {
        kiln_error_set(err, 0, "manifest.json Config '%.200s' is %s, outside the archive", cfg_path,
                       why);
        goto out;
    }

    /* older `docker save` links repeated layers to the first copy: follow
     * such symlinks with another pass when their target came earlier */
    for (int pass = 0, aliased = 1; aliased && pass < 4; pass++) {
        aliased = 0;
        if (scan_pass(path, cfg_path, &cfg_data, &cfg_len, layers, n_layers, store, &aliased, err) <
            0)
            goto out;
        for (i = 0; aliased && i < n_layers && layers[i].seen; i++)
            ;
        if (i == n_layers)
            break; /* every layer found */
    }
    if (cfg_data == NULL) {
        kiln_error_set(err, 0, "config %s is missing from the archive", cfg_path);
        goto out;
    }
    img = kiln_xzalloc(sizeof(*img));
    if (kiln_image_parse_config(cfg_data, cfg_len, &img->config, err) < 0)
        goto out;
    descs = kiln_xzalloc((n_layers ? n_layers : 1) * sizeof(*descs));
    for (i = 0; i < n_layers; i++) {
        if (!layers[i].seen) {
            kiln_error_set(err, 0, "layer %s is missing from the archive", layers[i].path);
            goto out;
        }
        descs[i] = layers[i].desc;
    }
    kiln_digest_bytes(cfg_data, cfg_len, &cfg_desc.digest);
    cfg_desc.size = cfg_len;
    snprintf(cfg_desc.media_type, sizeof(cfg_desc.media_type), "%s", KILN_MT_OCI_CONFIG);
    if (store != NULL && kiln_store_put_bytes(store, cfg_data, cfg_len, NULL, err) < 0)
        goto out;
    img->manifest = kiln_image_manifest_new(&cfg_desc, descs, n_layers, NULL);
    img->repo_tags = json_is_array(tags_j) ? json_deep_copy(tags_j) : json_array();
    if (store != NULL) {
        if (kiln_image_store_put(store, img->manifest, KILN_MT_OCI_MANIFEST, &img->manifest_desc,
                                 err) < 0)
            goto out;
    } else {
        _cleanup_free_ char *buf = NULL;
        size_t blen;
        if (kiln_image_serialize(img->manifest, &buf, &blen, &img->manifest_desc.digest, err) < 0)
            goto out;
        img->manifest_desc.size = blen;
        snprintf(img->manifest_desc.media_type, sizeof(img->manifest_desc.media_type), "%s",
                 KILN_MT_OCI_MANIFEST);
    }
    *out = steal_pointer(&img);
    ret = 0;
out:
    for (i = 0; i < n_layers; i++)
        free(layers[i].path);
    free(layers);
    free(descs);
    kiln_docker_archive_image_free(img);
    if (ret < 0)
        kiln_error_prefix(err, "docker-archive %s", path);
    return ret;
}

void kiln_docker_archive_image_free(kiln_docker_archive_image_t *img)
{
    if (img == NULL)
        return;
    if (img->manifest)
        json_decref(img->manifest);
    if (img->config)
        json_decref(img->config);
    if (img->repo_tags)
        json_decref(img->repo_tags);
    free(img);
}
