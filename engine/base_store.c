/* kiln — a stage's bottom layers from an additional image store (oci/additional_store): a
 * worker whose image carries kiln's build images unpacked (`kiln store add`) starts its
 * builds on those trees instead of downloading and unpacking the base. A store holds an
 * image's layers as one merged tree, named by the chain of their diff_ids: it is the bottom
 * lower dir of the step's overlay, the layers it stands for below its top get the store's
 * empty dir (so every layer still has its lower dir, and the overlay is the same tree). The
 * store is only read: overlayfs never writes a lower dir, a COPY --from view only links or
 * copies from it. Its blobs reach the image through the blob store's fallback
 * (kiln_store_open_blob), so the base's layers are neither downloaded nor unpacked. */
#include "engine/base_store.h"

#include "oci/additional_store.h"

/* Says once per build what came from where, or why an entry was not used. */
static void note_once(engine_t *e, const kiln_digest_t *id, const char *line)
{
    char ds[KILN_DIGEST_STR_MAX];
    bool seen = false;

    kiln_digest_str(id, ds);
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->astore_noted.n && !seen; i++)
        seen = strcmp(e->astore_noted.v[i], ds) == 0;
    if (!seen)
        strv_add(&e->astore_noted, kiln_xstrdup(ds));
    pthread_mutex_unlock(&e->lock);
    if (!seen)
        kiln_engine_log(e, "%s", line);
}

size_t kiln_base_store_lowers(engine_t *e, const layer_t *layers, size_t to, char **v)
{
    size_t n_stores;
    kiln_astore_t *const *stores = kiln_store_additional(e->store, &n_stores);
    _cleanup_free_ kiln_astore_layer_t *ls = NULL;

    if (n_stores == 0 || to == 0)
        return 0;
    ls = kiln_xzalloc(to * sizeof(*ls));
    for (size_t i = 0; i < to; i++) {
        ls[i].digest = layers[i].desc.digest;
        ls[i].diff_id = layers[i].diff_id;
    }
    for (size_t k = to; k > 0; k--) {
        for (size_t s = 0; s < n_stores; s++) {
            kiln_error_t err = {0};
            kiln_digest_t id;
            char *tree = NULL;
            int r = kiln_astore_chain(stores[s], ls, k, &tree, &err);
            if (r == 0)
                continue;
            kiln_astore_chain_id(ls, k, &id);
            if (r < 0) {
                _cleanup_free_ char *w =
                    kiln_xasprintf("WARNING: additional store %s not used for these layers "
                                   "(they are pulled): %s",
                                   kiln_astore_dir(stores[s]), err.msg);
                note_once(e, &id, w);
                continue;
            }
            {
                _cleanup_free_ char *m = kiln_xasprintf("%zu layers from additional store %s (%s)",
                                                        k, kiln_astore_dir(stores[s]), tree);
                note_once(e, &id, m);
            }
            v[to - k] = tree;
            for (size_t i = 0; i + 1 < k; i++)
                v[to - 1 - i] = kiln_xstrdup(kiln_astore_empty_dir(stores[s]));
            return k;
        }
    }
    return 0;
}
