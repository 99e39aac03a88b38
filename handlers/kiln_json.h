/* kiln — build overrides: the repository's kiln.json and KILN_* variables.
 *
 * kiln.json (all members optional):
 *   { "provider": "node", "install": "…", "build": "…", "start": "…",
 *     "outputs": ["image", "static", "function"], "outputDir": "dist",
 *     "env": {"KEY": "VALUE"}, "images": {"build": "…", "run": "…"},
 *     "nodeVersion": "20", "pythonVersion": "3.11", "port": 8080,
 *     "goVersion": "1.27.3", "goMain": "./cmd/api",
 *     "function": {"handler": "index.handler", "runtime": "nodejs18.x", "dir": "."},
 *     "<provider>": {"<setting>": "…"} }
 *
 * A member named after a provider ("java", "rust", …) holds that provider's own settings as
 * strings: kiln.json knows no stack's settings, each provider reads and checks its own
 * (kiln_overrides_stack, kiln_overrides_stack_check), so adding a stack touches no other. */
#ifndef KILN_HANDLERS_KILN_JSON_H
#define KILN_HANDLERS_KILN_JSON_H

#include <stddef.h>

#include "handlers/detect.h"
#include "handlers/plan.h"
#include "utils/error.h"

typedef struct kiln_overrides {
    char *provider, *install, *build, *start, *output_dir;
    char *build_image, *run_image, *node_version, *python_version;
    char *handler, *runtime, *function_dir;
    char *go_version, *go_main; /* KILN_GO_VERSION, KILN_GO_MAIN */
    unsigned outputs;           /* kiln_plan_output_t bits, 0 = not set */
    int port;                   /* 0 = not set */
    char *env[KILN_PLAN_MAX_ITEMS];
    size_t n_env;
    char *stack[KILN_PLAN_MAX_ITEMS]; /* "<provider>.<setting>=<value>", from kiln.json */
    size_t n_stack;
} kiln_overrides_t;

void kiln_overrides_free(kiln_overrides_t *o);

/* Parses kiln.json text into *o (zeroed first). The message names the member at fault. */
int kiln_overrides_parse(const char *text, size_t len, kiln_overrides_t *o, kiln_error_t *err);

/* Reads kiln.json from the tree (absent = no overrides), then lays the
 * KILN_* variables of the context on top. */
int kiln_overrides_load(const kiln_detect_ctx_t *ctx, kiln_overrides_t *o, kiln_error_t *err);

/* Applies the overrides to a detected plan. */
int kiln_overrides_apply(const kiln_overrides_t *o, kiln_plan_t *plan, kiln_error_t *err);

/* A provider's own setting: the variable `var` when set (KILN_* win over kiln.json, as
 * everywhere), else kiln.json's "<stack>": {"<key>": …}; NULL when neither. `source` (n bytes)
 * gets where it came from ("KILN_JAVA_VERSION", "kiln.json java.version"). */
const char *kiln_overrides_stack(const kiln_detect_ctx_t *ctx, const char *stack, const char *key,
                                 const char *var, char *source, size_t n);

/* Fails naming the setting when kiln.json's "<stack>" object has one not in `keys`
 * (NULL-ended), listing those the provider knows. */
int kiln_overrides_stack_check(const kiln_detect_ctx_t *ctx, const char *stack,
                               const char *const *keys, kiln_error_t *err);

#endif
