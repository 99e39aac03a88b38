/* libFuzzer target: engine/regcache's checks of a registry cache image (its manifest and config
 * come from a registry anyone with push rights writes) and its eviction. Input: the manifest
 * JSON, a NUL byte, the config JSON, a NUL byte, 8 bytes of the bound. An image the check takes
 * names only packs among its own layers; eviction always ends within the bound and keeps a
 * saved time only for an id it kept. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/regcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether pack digest ds is one of man's layers. */
static int in_layers(const json_t *man, const char *ds)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(man, "layers"), i, l)
    {
        const char *d = json_string_value(json_object_get(l, "digest"));
        if (d && strcmp(d, ds) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *z1 = memchr(data, 0, size), *z2;
    json_t *man, *cfg, *mounts, *saved, *v;
    uint64_t max = 0, left = 0;
    kiln_error_t err = {0};
    const char *key;

    if (z1 == NULL)
        return 0;
    z2 = memchr(z1 + 1, 0, size - (size_t)(z1 + 1 - data));
    if (z2 == NULL)
        return 0;
    if ((size_t)(data + size - (z2 + 1)) >= sizeof(max))
        memcpy(&max, z2 + 1, sizeof(max));
    man = json_loadb((const char *)data, (size_t)(z1 - data), 0, NULL);
    cfg = json_loadb((const char *)z1 + 1, (size_t)(z2 - z1 - 1), 0, NULL);
    if (man && cfg && kiln_regcache_check("fuzz", man, cfg, &err) == 0) {
        mounts = json_object_get(cfg, KILN_REGCACHE_MOUNTS_KEY);
        json_object_foreach(mounts, key, v)
        {
            size_t i;
            json_t *b;
            json_array_foreach(json_object_get(v, "blobs"), i, b)
            {
                if (!in_layers(man, json_string_value(json_array_get(b, 0))))
                    abort();
            }
        }
        mounts = mounts ? json_deep_copy(mounts) : json_object();
        saved = json_deep_copy(json_object_get(cfg, KILN_REGCACHE_SAVED_KEY));
        if (saved == NULL)
            saved = json_object();
        kiln_regcache_evict(mounts, saved, max, &left);
        if (left > max || left != kiln_regcache_mounts_bytes(mounts))
            abort();
        json_object_foreach(saved, key, v)
        {
            if (json_object_get(mounts, key) == NULL &&
                json_object_get(json_object_get(cfg, KILN_REGCACHE_SAVED_KEY), key) != NULL &&
                json_object_get(json_object_get(cfg, KILN_REGCACHE_MOUNTS_KEY), key) != NULL)
                abort(); /* an evicted id keeps no time */
        }
        json_decref(mounts);
        json_decref(saved);
    }
    json_decref(man);
    json_decref(cfg);
    return 0;
}
