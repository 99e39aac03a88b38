/* kiln — AWS Lambda packaging of Node apps: one table of the Lambda adapters per framework
 * (Nuxt/Nitro's aws-lambda preset, OpenNext for Next.js; the others refused naming what
 * to add) and the Lambda runtime matched to the Node major the build uses (the Lambda
 * lines themselves come from handlers/node_release). */
#ifndef KILN_HANDLERS_NODE_LAMBDA_H
#define KILN_HANDLERS_NODE_LAMBDA_H

#include <jansson.h>

#include "handlers/plan.h"

/* The Lambda adapter package of framework `fw` that package.json `pkg` depends on
 * ("@opennextjs/aws"), or NULL (none, or a framework whose own preset writes the
 * handler). */
const char *kiln_node_lambda_adapter(const char *fw, json_t *pkg);

/* Shapes a Node plan for a function output: the framework's handler (Nitro's aws-lambda
 * preset) or the one detection found, and the Lambda runtime of the Node major the build
 * uses: the toolchain's range is narrowed to the majors AWS Lambda runs (handlers/
 * node_release), so a range such as ">=20" builds with the newest of them; a request no
 * Lambda runtime satisfies fails naming the runtimes and how to pin one. A runtime named
 * in kiln.json ("nodejs22.x") pins the toolchain to its major. Returns 0 or -1. */
int kiln_node_function_plan(kiln_plan_t *plan, kiln_error_t *err);

#endif
