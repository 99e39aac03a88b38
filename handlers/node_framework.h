/* kiln — Node frameworks: what a package.json's framework builds and how it runs.
 *
 * Detected from the dependencies (and the framework's config file where the output
 * depends on it), first match wins:
 *   next       output: 'export' → static out/; output: 'standalone' → image running
 *              `node server.js` from .next/standalone (with .next/static and public/
 *              copied beside it, nothing else); otherwise `next start`
 *   nuxt/nitro `nuxt generate` → static .output/public; otherwise an image running
 *              `node .output/server/index.mjs` (.output only: Nitro bundles its deps);
 *              a function: the aws-lambda preset's .output/server (index.handler,
 *              handlers/node_lambda)
 *   remix, react-router  `remix-serve` / `react-router-serve` of the server build;
 *              React Router with ssr: false → static build/client
 *   sveltekit  adapter-node → `node build` (or its `out`); adapter-static → static
 *   astro      @astrojs/node → `node dist/server/entry.mjs`; otherwise static dist/
 *   nest       scripts.start:prod, else `node dist/main.js`
 *   cra, vite  static build/ and dist/
 *   express, fastify and the rest: scripts.start, then package.json main, then
 *              server.js, then index.js
 * Every choice gets its reason (kiln_plan_why). */
#ifndef KILN_HANDLERS_NODE_FRAMEWORK_H
#define KILN_HANDLERS_NODE_FRAMEWORK_H

#include <jansson.h>
#include <stdbool.h>

#include "handlers/detect.h"

/* Fills the plan's framework, outputs, static dir, start command, run files, HOST env,
 * the function handler a function output would use, and their reasons, from the parsed
 * package.json `pkg` and the tree. Runs after the build command is known. Returns 0, or
 * -1 when a config file cannot be read. */
int kiln_node_framework_plan(const kiln_detect_ctx_t *ctx, json_t *pkg, kiln_plan_t *plan,
                             kiln_error_t *err);

/* True when package.json `pkg` lists `name` in dependencies or devDependencies. */
bool kiln_node_has_dep(json_t *pkg, const char *name);

/* True for the frameworks (or none, NULL) that do not say how to start or package the app
 * themselves: Express, Fastify, Koa, Hono. */
bool kiln_node_framework_generic(const char *fw);

/* scripts.NAME of package.json, or NULL. */
const char *kiln_node_script(json_t *pkg, const char *name);

/* The value of the first literal `key: VALUE` option of a JavaScript/TypeScript config
 * text outside comments and strings (a quoted string's text or a bare word such as
 * false), malloc'ed, or NULL. */
char *kiln_node_config_option(const char *text, const char *key);

#endif
