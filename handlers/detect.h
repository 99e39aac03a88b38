/* kiln — detection: turn a source tree into a build plan.
 *
 * Providers are tried in a fixed, documented order; the first that matches
 * makes the plan:
 *
 *   0. kiln.json "provider" or KILN_PROVIDER, when set, picks the provider;
 *   1. Dockerfile          → provider "dockerfile" (the Dockerfile builder);
 *   2. deno.json[c]        → deno; Gemfile → ruby; composer.json or index.php → php
 *      (before package.json, which such projects often carry too);
 *   3. package.json        → node;
 *   4. requirements.txt, pyproject.toml, setup.py, Pipfile → python;
 *   5. go.mod              → go;
 *   6. pom.xml, build.gradle[.kts] → java; Cargo.toml → rust;
 *   7. index.html or public/index.html → static;
 *   8. Procfile            → procfile (the base image runs its "web" line).
 *
 * Then a Procfile "web" line becomes the start command (node, python, go),
 * kiln.json overrides are applied, then KILN_* environment overrides
 * (KILN_INSTALL_CMD, KILN_BUILD_CMD, KILN_START_CMD, KILN_OUTPUT_DIR,
 * KILN_OUTPUTS, KILN_BUILD_IMAGE, KILN_RUN_IMAGE, KILN_PORT). Versions:
 * KILN_NODE_VERSION, KILN_PYTHON_VERSION, KILN_JAVA_VERSION; KILN_RUST_BIN. Images come from
 * KILN_IMAGE_PREFIX, else from the OCI layouts in $KILN_IMAGES_DIR (default
 * /var/cache/kiln/images).
 *
 * No match ⇒ an error listing the files seen and how to configure a build. */
#ifndef KILN_HANDLERS_DETECT_H
#define KILN_HANDLERS_DETECT_H

#include <jansson.h>
#include <stdbool.h>

#include "handlers/plan.h"
#include "handlers/tree.h"
#include "utils/error.h"

/* Where kiln's own images are when neither the options nor KILN_IMAGE_PREFIX name a
 * prefix: the OCI layouts images/build.sh (scripts/setup.sh) makes, in $KILN_IMAGES_DIR
 * or this directory. Never a registry name: "kiln/base" on Docker Hub would be whatever
 * someone else published under it. */
#define KILN_DEFAULT_IMAGES_DIR "/var/cache/kiln/images"

typedef struct kiln_detect_opts {
    char *const *env;         /* "KEY=VALUE" list for KILN_* overrides; NULL = none */
    const char *image_prefix; /* overrides KILN_IMAGE_PREFIX when set */
    const char *project;      /* project name hint (else package name / dir name) */
} kiln_detect_opts_t;

struct kiln_overrides;

/* What every provider sees. */
typedef struct kiln_detect_ctx {
    const kiln_tree_t *tree;
    char *const *env;
    const char *image_prefix;
    const struct kiln_overrides *overrides; /* kiln.json + KILN_* (see kiln_json.h) */
} kiln_detect_ctx_t;

/* Detects how to build the directory `dir` and returns a new plan in *out.
 * Fails with a message naming the file at fault, or listing what was seen
 * when nothing matched. */
int kiln_plan_detect(const char *dir, const kiln_detect_opts_t *opts, kiln_plan_t **out,
                     kiln_error_t *err);

/* The value of `key` in the context's environment list, NULL when unset or empty. */
const char *kiln_detect_getenv(const kiln_detect_ctx_t *ctx, const char *key);

/* The image prefix when none is configured: "oci:" + $KILN_IMAGES_DIR, else
 * "oci:" KILN_DEFAULT_IMAGES_DIR (malloc'ed). */
char *kiln_detect_default_image_prefix(char *const *env);

/* "<prefix>/<name>" for one of kiln's images. */
char *kiln_detect_image(const kiln_detect_ctx_t *ctx, const char *name);

/* Completes a detected plan for the output kinds a build makes (kiln_plan_output_t bits):
 * an image needs a start command (the error names `where` and the start command's
 * reason) and gets its port; a function gets its handler and runtime (a Node one the
 * Lambda runtime of the Node major it builds with, handlers/node_framework); the kinds
 * are added to the plan's outputs. A handler's and runtime's reasons are dropped when no
 * function is made. Returns 0, or -1 with err when the kind cannot be made. */
int kiln_plan_select_output(kiln_plan_t *plan, unsigned kinds, const char *where,
                            kiln_error_t *err);

/* Whether `name` is a provider of the detection order ("java", "rust", …). */
bool kiln_detect_provider_known(const char *name);

/* The providers' names in the detection order, ", "-separated (malloc'ed). */
char *kiln_detect_provider_names(void);

/* Lower-cases `name` and keeps [a-z0-9-] (others become '-'); "app" when empty. */
char *kiln_detect_project_name(const char *name);

/* Providers: each returns 1 and fills `plan` when the tree is theirs, 0 when
 * not, -1 on error (a manifest that cannot be parsed, an impossible version). */
int kiln_node_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
/* A Node plan's final start command (the framework's, a Procfile's or the user's) with its
 * package manager calls expanded (handlers/node_script: the run image has node only), and
 * node_modules/.bin on the run image's PATH. Returns 0 or -1 naming the script. */
int kiln_node_start_finish(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
/* The start command (plan->start_script, as planned) expanded again under the plan's
 * package manager, which changed since (a monorepo app takes its workspace root's): the
 * first expansion's notes are replaced; `pkg` is the app's package.json and `dir` its
 * directory in the image. Returns 0 or -1. */
int kiln_node_start_redo(json_t *pkg, const char *dir, kiln_plan_t *plan, kiln_error_t *err);
int kiln_python_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_go_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_jvm_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_rust_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_deno_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_ruby_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_php_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);
int kiln_static_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err);

#endif
