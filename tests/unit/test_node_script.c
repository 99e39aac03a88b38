/* Unit tests for handlers/node_script: package manager calls of a start command
 * expanded into the scripts they run (the run image has node only), hooks, arguments,
 * assignments, executables, and the calls refused naming the script. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handlers/node_script.h"
#include "utils/cleanup.h"

static const char PKG[] = "{\"scripts\": {"
                          "\"start\": \"node server.js\","
                          "\"prestart\": \"node migrate.js\","
                          "\"serve\": \"next start\","
                          "\"both\": \"node a.js && node b.js\","
                          "\"nested\": \"npm run serve -- -p 3000\","
                          "\"start:prod\": \"NODE_ENV=production node dist/main.js\","
                          "\"loop\": \"npm run loop\","
                          "\"bunny\": \"bun server.ts\","
                          "\"yarnish\": \"yarn serve\"}}";

/* `cmd` expands to `want` (NULL: refused, the message holding `msg`). */
static void expands(const char *pm, const char *cmd, const char *want, const char *msg)
{
    json_t *pkg = json_loads(PKG, 0, NULL);
    kiln_error_t err = {0};
    _cleanup_free_ char *out = NULL;
    bool bun = false;
    int r = kiln_node_script_expand(pkg, pm, cmd, &out, &bun, NULL, &err);

    json_decref(pkg);
    if (want == NULL) {
        assert_int_equal(r, -1);
        if (strstr(err.msg, msg) == NULL)
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cmd, err.msg, msg);
        return;
    }
    if (r != 0)
        fail_msg("\"%s\": %s", cmd, err.msg);
    assert_string_equal(out, want);
}

static void test_plain(void **state)
{
    (void)state;
    expands("npm", "node server.js", "node server.js", NULL);
    expands("npm", "cd apps/web && node server.js", "cd apps/web && node server.js", NULL);
    /* a manager's name as an argument or in quotes is not a call */
    expands("npm", "node x.js npm run y", "node x.js npm run y", NULL);
    expands("npm", "sh -c 'npm start'", "sh -c 'npm start'", NULL);
}

static void test_scripts(void **state)
{
    (void)state;
    /* npm start: prestart first */
    expands("npm", "npm start", "node migrate.js && node server.js", NULL);
    /* yarn Berry runs no hooks */
    expands("yarn-berry", "yarn start", "node server.js", NULL);
    expands("npm", "npm run serve", "next start", NULL);
    expands("pnpm", "pnpm serve", "next start", NULL);
    expands("yarn", "yarn run serve", "next start", NULL);
    expands("bun", "bun run serve", "next start", NULL);
    expands("npm", "npm run -s serve", "next start", NULL);
    /* arguments (after npm's --) go to a one-command script; a nested call */
    expands("npm", "npm run nested", "next start -p 3000", NULL);
    expands("npm", "npm run both && echo done", "(node a.js && node b.js) && echo done", NULL);
    expands("npm", "cd apps/web && npm run serve", "cd apps/web && next start", NULL);
    expands("npm", "npm run yarnish", "next start", NULL);
    /* assignments before the call hold for its expansion */
    expands("npm", "PORT=3000 npm run serve", "(export PORT=3000; next start)", NULL);
    expands("npm", "npm run start:prod", "NODE_ENV=production node dist/main.js", NULL);
}

static void test_executables(void **state)
{
    (void)state;
    expands("npm", "npx next start", "next start", NULL);
    expands("npm", "npx -y remix-serve build", "remix-serve build", NULL);
    expands("npm", "npm exec -- next start", "next start", NULL);
    expands("pnpm", "pnpm exec next start", "next start", NULL);
    expands("yarn", "yarn next start", "next start", NULL);
}

/* Under bun, a call of bun itself stays (the run image carries bun); scripts expand. */
static void test_bun(void **state)
{
    json_t *pkg = json_loads(PKG, 0, NULL);
    kiln_error_t err = {0};
    char *out = NULL;
    bool bun = false;

    (void)state;
    assert_int_equal(kiln_node_script_expand(pkg, "bun", "bun run bunny", &out, &bun, NULL, &err),
                     0);
    assert_string_equal(out, "bun server.ts");
    assert_true(bun);
    free(out);
    bun = false;
    assert_int_equal(kiln_node_script_expand(pkg, "bun", "bun run serve", &out, &bun, NULL, &err),
                     0);
    assert_string_equal(out, "next start");
    assert_false(bun);
    free(out);
    /* without a bun run image, the same call is refused */
    assert_int_equal(kiln_node_script_expand(pkg, "bun", "bun run bunny", &out, NULL, NULL, &err),
                     -1);
    json_decref(pkg);
}

static void test_refused(void **state)
{
    (void)state;
    expands("npm", "npm install && node x.js", NULL, "`npm install` runs npm itself");
    expands("npm", "npm run missing", NULL, "does not have");
    expands("npm", "npm run bunny", NULL, "scripts.bunny: `bun server.ts` needs bun");
    expands("npm", "npm run loop", NULL, "more than 8 deep");
    expands("npm", "npm run both -- -x", NULL, "passes arguments to a script of several commands");
    expands("yarn", "yarn add left-pad", NULL, "runs the package manager itself");
    expands("npm", "npx -p x y", NULL, "runs a package the app may not have");
    expands("npm", "npm start", "node migrate.js && node server.js", NULL);
}

/* `cmd`'s npm_lifecycle_event: the first script it runs (NULL: none). */
static void event_of(const char *pm, const char *cmd, const char *want)
{
    json_t *pkg = json_loads(PKG, 0, NULL);
    kiln_error_t err = {0};
    _cleanup_free_ char *out = NULL, *event = NULL;
    bool bun = false;

    if (kiln_node_script_expand(pkg, pm, cmd, &out, &bun, &event, &err) < 0)
        fail_msg("\"%s\": %s", cmd, err.msg);
    json_decref(pkg);
    if (want == NULL)
        assert_null(event);
    else
        assert_string_equal(event, want);
}

static void test_event(void **state)
{
    json_t *pkg = json_loads(PKG, 0, NULL);
    kiln_error_t err = {0};
    char *out = NULL, *event = (char *)"stale";
    (void)state;

    event_of("npm", "npm start", "start");
    event_of("npm", "npm run start:prod", "start:prod");
    event_of("yarn", "yarn serve", "serve");
    event_of("pnpm", "pnpm run nested", "nested"); /* the outer script's, as npm sets it */
    event_of("npm", "PORT=1 npm run serve", "serve");
    event_of("npm", "node server.js", NULL);
    event_of("npm", "npx next start", NULL);
    /* a refused command leaves none */
    assert_int_equal(kiln_node_script_expand(pkg, "npm", "npm run loop", &out, NULL, &event, &err),
                     -1);
    assert_null(event);
    json_decref(pkg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),       cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_executables), cmocka_unit_test(test_bun),
        cmocka_unit_test(test_refused),     cmocka_unit_test(test_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
