/* kiln — the Ruby provider: Gemfile (+ Gemfile.lock) → `bundle install` into
 * vendor/bundle without the development and test groups; Rails (the rails
 * gem or config/application.rb: assets precompiled when it has any, puma or
 * `rails server`) and Rack (config.ru: puma, else rackup), all through
 * `bundle exec`. The Ruby is Debian 12's 3.1: a Gemfile `ruby` or
 * .ruby-version asking for a newer one is an error.
 *
 * The gems come from the Gemfile's source (RubyGems), which kiln's builds
 * may not reach: with vendor/cache (bundle package) the install is offline,
 * else a failed install says which source could not be reached and how to
 * build without it. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define RUBY_MAJOR 3
#define RUBY_MINOR 1

/* The first quoted argument of a Gemfile line starting with `word` (`gem
 * "rails"`, `ruby '3.2.2'`, `source "https://…"`): copies it into out. */
static bool gemfile_arg(const char *line, const char *word, char *out, size_t size)
{
    size_t n = strlen(word), len;
    const char *q, *e;

    while (*line == ' ' || *line == '\t')
        line++;
    if (strncmp(line, word, n) != 0 || (line[n] != ' ' && line[n] != '(' && line[n] != '\t'))
        return false;
    q = line + n;
    while (*q == ' ' || *q == '\t' || *q == '(')
        q++;
    if (*q != '"' && *q != '\'')
        return false;
    e = strchr(q + 1, *q);
    if (e == NULL || (len = (size_t)(e - q - 1)) >= size || memchr(q + 1, '\n', len))
        return false;
    memcpy(out, q + 1, len);
    out[len] = '\0';
    return true;
}

/* Scans the Gemfile: `has_gem` for each name asked, the ruby version, the source. */
static bool gemfile_has(const char *gemfile, const char *gem)
{
    char arg[128];
    for (const char *p = gemfile; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (gemfile_arg(p, "gem", arg, sizeof(arg)) && strcmp(arg, gem) == 0)
            return true;
    return false;
}

static bool gemfile_word(const char *gemfile, const char *word, char *out, size_t size)
{
    for (const char *p = gemfile; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (gemfile_arg(p, word, out, size))
            return true;
    return false;
}

/* Ruby version: the Gemfile's `ruby`, else .ruby-version; newer than the
 * image's is an error. */
static int plan_ruby_version(const kiln_detect_ctx_t *ctx, const char *gemfile, kiln_plan_t *plan,
                             kiln_error_t *err)
{
    char ver[64] = "";
    const char *from = NULL;
    _cleanup_free_ char *rv = NULL;
    long major, minor = 0;
    char *end;

    kiln_plan_set(&plan->language, "ruby");
    free(plan->version);
    plan->version = kiln_xasprintf("%d.%d", RUBY_MAJOR, RUBY_MINOR);
    kiln_plan_set(&plan->version_source, "default");
    if (gemfile_word(gemfile, "ruby", ver, sizeof(ver))) {
        from = "Gemfile ruby";
    } else {
        int r = kiln_tree_read(ctx->tree, ".ruby-version", &rv, err);
        if (r < 0)
            return -1;
        if (r > 0) {
            size_t n = strcspn(rv, " \t\r\n");
            snprintf(ver, sizeof(ver), "%.*s", (int)(n > 60 ? 60 : n), rv);
            from = ".ruby-version";
        }
    }
    if (from == NULL) {
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "nothing names a Ruby version: Ruby %d.%d, that of kiln's ruby-build image "
                      "(Debian 12)",
                      RUBY_MAJOR, RUBY_MINOR);
        return 0;
    }
    const char *v = strncmp(ver, "ruby-", 5) == 0 ? ver + 5 : ver;
    major = strtol(v, &end, 10);
    if (*end == '.')
        minor = strtol(end + 1, NULL, 10);
    if (major <= 0 || major > RUBY_MAJOR || (major == RUBY_MAJOR && minor > RUBY_MINOR))
        return kiln_error_set(err, 0,
                              "%s asks for Ruby %s but the build image has Ruby %d.%d (Debian "
                              "12's; no other Ruby can be downloaded by builds): use %d.%d or "
                              "build with a Dockerfile",
                              from, ver, RUBY_MAJOR, RUBY_MINOR, RUBY_MAJOR, RUBY_MINOR);
    kiln_plan_set(&plan->version_source, from);
    kiln_plan_why(plan, KILN_WHY_VERSION, "%s is %s: Ruby %d.%d (Debian 12) runs it", from, ver,
                  RUBY_MAJOR, RUBY_MINOR);
    return 0;
}

int kiln_ruby_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    _cleanup_free_ char *gemfile = NULL;
    char source[256] = "RubyGems";
    bool rails, rack, puma, vendored;
    int r = kiln_tree_read(ctx->tree, "Gemfile", &gemfile, err);

    if (r <= 0)
        return r;
    kiln_plan_set(&plan->provider, "ruby");
    kiln_plan_set(&plan->package_manager, "bundler");
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER, "Gemfile: Bundler (Debian 12's)%s",
                  kiln_tree_is_file(ctx->tree, "Gemfile.lock") ? ", versions from Gemfile.lock"
                                                               : " (no Gemfile.lock)");
    if (plan_ruby_version(ctx, gemfile, plan, err) < 0)
        return -1;
    gemfile_word(gemfile, "source", source, sizeof(source));
    for (char *p = source; *p; p++)
        if (!isgraph((unsigned char)*p) || *p == '"' || *p == '\'' || *p == '\\' || *p == '`' ||
            *p == '$')
            *p = '_';
    rails = gemfile_has(gemfile, "rails") || kiln_tree_is_file(ctx->tree, "config/application.rb");
    rack = kiln_tree_is_file(ctx->tree, "config.ru");
    puma = gemfile_has(gemfile, "puma");
    vendored = kiln_tree_is_dir(ctx->tree, "vendor/cache");
    if (kiln_plan_add(plan->manifests, &plan->n_manifests, err, "Gemfile") < 0 ||
        (kiln_tree_is_file(ctx->tree, "Gemfile.lock") &&
         kiln_plan_add(plan->manifests, &plan->n_manifests, err, "Gemfile.lock") < 0) ||
        (vendored && kiln_plan_add(plan->manifests, &plan->n_manifests, err, "vendor/cache") < 0))
        return -1;
    plan->install = kiln_xasprintf(
        "bundle config set --local path vendor/bundle && bundle config set --local without "
        "'development test' && bundle install%s || { echo \"kiln: bundle install could not "
        "install the gems from %s (the Gemfile's source): kiln's builds reach the npm registry, "
        "PyPI, crates.io, the Go module proxy and Maven Central, not RubyGems; vendor the gems "
        "with bundle package (vendor/cache, installed offline) or build with a Dockerfile\" >&2; "
        "exit 1; }",
        vendored ? " --local" : "", source);
    kiln_plan_why(plan, KILN_WHY_INSTALL,
                  "Gemfile: bundle install into vendor/bundle without development/test%s",
                  vendored ? ", offline from vendor/cache"
                           : "; the gems come from the Gemfile's "
                             "source, which builds may not reach "
                             "(the step then says so)");
    if (rails) {
        kiln_plan_set(&plan->framework, "rails");
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "%s",
                      gemfile_has(gemfile, "rails") ? "Gemfile: the rails gem"
                                                    : "config/application.rb is there");
        if (kiln_tree_is_dir(ctx->tree, "app/assets") ||
            kiln_tree_is_dir(ctx->tree, "app/javascript")) {
            kiln_plan_set(&plan->build, "SECRET_KEY_BASE_DUMMY=1 bundle exec rails "
                                        "assets:precompile");
            kiln_plan_why(plan, KILN_WHY_BUILD,
                          "Rails with app/assets or app/javascript: assets:precompile");
        }
        plan->start =
            kiln_xstrdup(puma && kiln_tree_is_file(ctx->tree, "config/puma.rb")
                             ? "exec bundle exec puma -C config/puma.rb -b tcp://0.0.0.0:$PORT"
                             : "exec bundle exec rails server -b 0.0.0.0 -p $PORT");
        kiln_plan_why(plan, KILN_WHY_START, "Rails (%s): %s",
                      gemfile_has(gemfile, "rails") ? "the rails gem" : "config/application.rb",
                      plan->start + 5);
        kiln_plan_setenv(plan, "RAILS_ENV", "production", err);
        kiln_plan_setenv(plan, "RAILS_LOG_TO_STDOUT", "1", err);
        kiln_plan_setenv(plan, "RAILS_SERVE_STATIC_FILES", "1", err);
    } else if (rack) {
        kiln_plan_set(&plan->framework, "rack");
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "config.ru is there (a Rack app)");
        plan->start = kiln_xstrdup(puma ? "exec bundle exec puma -b tcp://0.0.0.0:$PORT config.ru"
                                        : "exec bundle exec rackup -o 0.0.0.0 -p $PORT config.ru");
        kiln_plan_why(plan, KILN_WHY_START, "config.ru (Rack)%s: %s",
                      puma ? " with the puma gem" : "", plan->start + 5);
        kiln_plan_setenv(plan, "RACK_ENV", "production", err);
    }
    if (kiln_plan_setenv(plan, "BUNDLE_PATH", "vendor/bundle", err) < 0 ||
        kiln_plan_setenv(plan, "BUNDLE_WITHOUT", "development:test", err) < 0 ||
        kiln_plan_add(plan->deps, &plan->n_deps, err, "vendor/bundle") < 0)
        return -1;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "ruby-build");
    plan->run_image = kiln_detect_image(ctx, "ruby-run");
    return 1;
}
