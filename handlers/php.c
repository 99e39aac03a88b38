/* kiln — the PHP provider: composer.json (or an index.php alone) → `composer
 * install --no-dev` into vendor/; Laravel (laravel/framework) and Symfony
 * (symfony/framework-bundle or symfony/runtime) serve public/, anything else
 * the app dir, with PHP's built-in server (`php -S`) on $PORT. The PHP is
 * Debian 12's 8.2: a require.php whose lowest version is newer is an error.
 *
 * Packages come from Packagist, which kiln's builds may not reach: a failed
 * install says so and how to build without it (vendor/ committed: no install). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define PHP_MAJOR 8
#define PHP_MINOR 2

/* The lowest "major.minor" a composer constraint allows: the first version
 * number in it ("^8.1 || ^8.2" → 8.1, ">=8.3" → 8.3); false when none. */
static bool constraint_floor(const char *c, long *major, long *minor)
{
    for (const char *p = c; *p; p++)
        if (*p >= '0' && *p <= '9') {
            char *end;
            *major = strtol(p, &end, 10);
            *minor = *end == '.' ? strtol(end + 1, NULL, 10) : 0;
            return true;
        }
    return false;
}

static bool requires(json_t *req, const char *name)
{
    return json_is_object(req) && json_object_get(req, name) != NULL;
}

static int plan_php_version(json_t *req, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *c = json_string_value(json_object_get(req, "php"));
    long major, minor;

    kiln_plan_set(&plan->language, "php");
    free(plan->version);
    plan->version = kiln_xasprintf("%d.%d", PHP_MAJOR, PHP_MINOR);
    kiln_plan_set(&plan->version_source, "default");
    if (c == NULL || !constraint_floor(c, &major, &minor)) {
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "composer.json require.php names no version: PHP %d.%d, that of kiln's "
                      "php-build image (Debian 12)",
                      PHP_MAJOR, PHP_MINOR);
        return 0;
    }
    if (major > PHP_MAJOR || (major == PHP_MAJOR && minor > PHP_MINOR))
        return kiln_error_set(err, 0,
                              "composer.json require.php \"%.64s\" needs PHP %ld.%ld or newer but "
                              "the build image has PHP %d.%d (Debian 12's; no other PHP can be "
                              "downloaded by builds): allow %d.%d or build with a Dockerfile",
                              c, major, minor, PHP_MAJOR, PHP_MINOR, PHP_MAJOR, PHP_MINOR);
    kiln_plan_set(&plan->version_source, "composer.json require.php");
    kiln_plan_why(plan, KILN_WHY_VERSION, "composer.json require.php \"%s\": PHP %d.%d (Debian 12)",
                  c, PHP_MAJOR, PHP_MINOR);
    return 0;
}

int kiln_php_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    json_t *root = NULL, *req = NULL;
    json_error_t jerr;
    const char *docroot = ".", *fw = NULL;
    int r = kiln_tree_read(ctx->tree, "composer.json", &text, err), ret = -1;

    if (r < 0)
        return -1;
    if (r == 0 && !kiln_tree_is_file(ctx->tree, "index.php"))
        return 0;
    if (text) {
        root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(root)) {
            kiln_error_set(err, 0, "composer.json line %d: %s", jerr.line,
                           root ? "not a JSON object" : jerr.text);
            goto out;
        }
        req = json_object_get(root, "require");
    }
    kiln_plan_set(&plan->provider, "php");
    if (plan_php_version(req, plan, err) < 0)
        goto out;
    if (requires(req, "laravel/framework")) {
        fw = "laravel";
        docroot = "public";
    } else if (requires(req, "symfony/framework-bundle") || requires(req, "symfony/runtime")) {
        fw = "symfony";
        docroot = "public";
    }
    kiln_plan_set(&plan->framework, fw);
    if (fw)
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "composer.json require names %s",
                      strcmp(fw, "laravel") == 0 ? "laravel/framework"
                                                 : "symfony/framework-bundle or symfony/runtime");
    if (text) {
        kiln_plan_set(&plan->package_manager, "composer");
        kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "composer.json: Composer (Debian 12's)%s",
                      kiln_tree_is_file(ctx->tree, "composer.lock")
                          ? ", versions from composer.lock"
                          : " (no composer.lock: it resolves the newest matching versions)");
        kiln_plan_add(plan->manifests, &plan->n_manifests, err, "composer.json");
        if (kiln_tree_is_file(ctx->tree, "composer.lock"))
            kiln_plan_add(plan->manifests, &plan->n_manifests, err, "composer.lock");
        if (kiln_tree_is_dir(ctx->tree, "vendor")) {
            kiln_plan_why(plan, KILN_WHY_INSTALL,
                          "vendor/ is in the source: used as it is (no composer install)");
        } else {
            plan->install = kiln_xstrdup(
                "composer install --no-dev --no-interaction --no-scripts --no-autoloader "
                "--prefer-dist || { echo \"kiln: composer install could not fetch the packages "
                "from Packagist: kiln's builds reach the npm registry, PyPI, "
                "crates.io, the Go module proxy and Maven Central, not Packagist; commit vendor/ "
                "or build with a Dockerfile\" >&2; exit 1; }");
            plan->build = kiln_xstrdup("composer dump-autoload --no-dev --optimize "
                                       "--no-interaction");
            kiln_plan_why(plan, KILN_WHY_INSTALL,
                          "composer.json: composer install --no-dev into vendor/ (from "
                          "Packagist, which builds may not reach: the step then says so)");
            kiln_plan_why(plan, KILN_WHY_BUILD, "the optimized autoloader once the app is there");
            kiln_plan_add_cache(plan, "composer", "/root/.cache/composer", err);
            kiln_plan_add(plan->deps, &plan->n_deps, err, "vendor");
        }
    } else {
        kiln_plan_why(plan, KILN_WHY_INSTALL,
                      "index.php without composer.json: nothing to install");
    }
    plan->start = kiln_xasprintf("exec php -S 0.0.0.0:$PORT -t %s", docroot);
    kiln_plan_why(plan, KILN_WHY_START, "%s%s: PHP's built-in server on $PORT serving %s/",
                  fw ? fw : "PHP", fw ? " (composer.json require)" : " without a framework",
                  docroot);
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "php-build");
    plan->run_image = kiln_detect_image(ctx, "php-run");
    ret = 1;
out:
    json_decref(root);
    return ret;
}
