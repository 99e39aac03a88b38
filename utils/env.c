/* kiln — lookups in an explicit environment list (see env.h). */
#include "utils/env.h"

#include <string.h>

const char *kiln_env_lookup(char *const *env, const char *key)
{
    size_t kl = strlen(key);

    for (char *const *e = env; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return *e + kl + 1;
    return NULL;
}

const char *kiln_env_get(char *const *env, const char *key)
{
    const char *v = kiln_env_lookup(env, key);

    return v != NULL && v[0] != '\0' ? v : NULL;
}
