/* libFuzzer target: the start command expansion of handlers/node_script. The input is a
 * package.json (its scripts are what calls expand into); each of its scripts, and
 * `npm start`, is expanded under npm, yarn Berry and bun (hooks, nested calls, arguments,
 * assignments, quotes and the refusals). */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/node_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const pms[] = {"npm", "yarn-berry", "bun"};
    json_t *pkg = json_loadb((const char *)data, size, 0, NULL), *v;
    const char *k;

    if (pkg == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(pms) / sizeof(pms[0]); i++) {
        kiln_error_t err = {0};
        char *out = NULL;
        bool bun = false;
        char *event = NULL;
        if (kiln_node_script_expand(pkg, pms[i], "npm start", &out, &bun, &event, &err) == 0) {
            free(out);
            free(event);
        }
        json_object_foreach(json_object_get(pkg, "scripts"), k, v)
        {
            out = NULL;
            if (json_is_string(v) && kiln_node_script_expand(pkg, pms[i], json_string_value(v),
                                                             &out, &bun, NULL, &err) == 0)
                free(out);
        }
    }
    json_decref(pkg);
    return 0;
}
