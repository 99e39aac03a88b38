/* kiln — build overrides: the repository's kiln.json and KILN_* variables.
 *
 * kiln.json (all members optional):
 *   { "provider": "node", "install": "…", "build": "…", "start": "…",
 *     "outputs": ["image", "static", "function"], "outputDir": "dist",
 *     "env": {"KEY": "VALUE"}, "images": {"build": "…", "run": "…"},
 *     "nodeVersion": "20", "pythonVersion": "3.11", "port": 8080,
 *     "goVersion": "1.27.3", "goMain": "./cmd/api",
 *     "function": {"handler": "index.handler", "runtime": "nodejs18.x", "dir": "."} } */
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
} kiln_overrides_t;

void kiln_overrides_free(kiln_overrides_t *o);

/* Parses kiln.json text into *o (zeroed first). The message names the member at fault. */
int kiln_overrides_parse(const char *text, size_t len, kiln_overrides_t *o, kiln_error_t *err);

/* Reads kiln.json from the tree (absent = no overrides), then lays the
 * KILN_* variables of the context on top. */
int kiln_overrides_load(const kiln_detect_ctx_t *ctx, kiln_overrides_t *o, kiln_error_t *err);

/* Applies the overrides to a detected plan. */
int kiln_overrides_apply(const kiln_overrides_t *o, kiln_plan_t *plan, kiln_error_t *err);

#endif
