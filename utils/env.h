/* kiln — lookups in an explicit environment list ("KEY=VALUE" strings, NULL
 * terminated), so that library code takes its settings as a parameter. */
#ifndef KILN_UTILS_ENV_H
#define KILN_UTILS_ENV_H

/* The value of `key` in `env`, or NULL when absent or empty (env may be NULL). */
const char *kiln_env_get(char *const *env, const char *key);

/* The value of `key` in `env` as getenv(3) gives it: "" when set empty, NULL when absent. */
const char *kiln_env_lookup(char *const *env, const char *key);

#endif
