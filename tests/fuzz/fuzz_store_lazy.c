/* libFuzzer target: oci/store_lazy's record parser (<root>/lazy/<hex>: what names a blob not
 * downloaded yet and where it comes from) and the registry image name a push mounts from.
 * Input: a record. A record taken has a positive size, a source that fits, and reads back the
 * same once written again as kiln_store_lazy_note writes it (its registry settings too); a registry
 * name is the source's text between its prefix and the first '@', within the buffer. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/store_lazy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_store_lazy_t l, again;
    char name[64];

    memset(&l, 0x5a, sizeof(l));
    if (kiln_store_lazy_parse((const char *)data, size, &l) < 0)
        return 0;
    if (l.size == 0 || l.size > INT64_MAX || l.usize > INT64_MAX ||
        strnlen(l.source, sizeof(l.source)) >= sizeof(l.source) ||
        strnlen(l.via, sizeof(l.via)) >= sizeof(l.via))
        abort();
    json_t *j = json_pack("{sIsIss}", "size", (json_int_t)l.size, "usize", (json_int_t)l.usize,
                          "source", l.source);
    if (l.via[0] != '\0') {
        json_t *v = json_loads(l.via, 0, NULL);
        if (!json_is_object(v))
            abort();
        json_object_set_new(j, "registry", v);
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL || kiln_store_lazy_parse(text, strlen(text), &again) < 0 ||
        again.size != l.size || again.usize != l.usize || strcmp(again.source, l.source) != 0 ||
        strcmp(again.via, l.via) != 0)
        abort();
    free(text);
    if (kiln_store_lazy_source_name(l.source, name, sizeof(name)) == 1) {
        const char *sp = strchr(l.source, ' ');
        size_t n = strlen(name);
        if (sp == NULL || n >= sizeof(name) || strchr(name, '@') != NULL ||
            strncmp(sp + 1, name, n) != 0 || sp[1 + n] != '@')
            abort();
    }
    return 0;
}
