/* kiln — build secret references (see secrets.h). */
#include "engine/secrets.h"

#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

void kiln_secret_spec_parse(const char *spec, kiln_secret_spec_t *out)
{
    _cleanup_free_ char *copy = kiln_xstrdup(spec);
    char *save = NULL, *id = NULL, *src = NULL, *env = NULL;

    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (v == NULL)
            continue;
        *v++ = '\0';
        if (strcmp(kv, "id") == 0)
            id = v;
        else if (strcmp(kv, "src") == 0 || strcmp(kv, "source") == 0)
            src = v;
        else if (strcmp(kv, "env") == 0)
            env = v;
    }
    out->id = id ? kiln_xstrdup(id) : NULL;
    out->src = src ? kiln_xstrdup(src) : NULL;
    out->env = env ? kiln_xstrdup(env) : NULL;
}

void kiln_secret_spec_clear(kiln_secret_spec_t *s)
{
    free(s->id);
    free(s->src);
    free(s->env);
    memset(s, 0, sizeof(*s));
}
