/* kiln — the JVM provider: Maven (pom.xml, mvnw) and Gradle (build.gradle[.kts]).
 *
 * Maven builds with the build image's Maven 3.8 and OpenJDK 17 (Debian 12's only
 * JDK) against Maven Central, the local repository (~/.m2/repository) as a
 * cache mount; `mvn package` runs in the build stage (with the cache mount the
 * deps stage would hold nothing). What runs:
 *   - Spring Boot (the parent, BOM, plugin or a starter names it): the
 *     executable jar extracted into its layers (`-Djarmode=tools` from Boot 3.3,
 *     `layertools` from 2.3), each its own image layer, started with the
 *     JarLauncher; a jar without layers is exploded into one layer;
 *   - Quarkus (quarkus-maven-plugin): target/quarkus-app, lib/ as its own layer,
 *     `java -jar quarkus-run.jar`;
 *   - else the jar named by build.finalName or artifactId-version, `java -jar`.
 * The JDK version comes from maven-toolchains-plugin, maven.compiler.release,
 * the compiler plugin's release/source, java.version or maven.compiler.source:
 * 17 or older builds on 17, newer is an error naming the file and value.
 * Gradle is planned (its wrapper's distribution comes from services.gradle.org,
 * which builds may not reach): the build step fails with a message naming the
 * distribution it could not fetch. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "handlers/kiln_json.h"
#include "handlers/pom.h"
#include "handlers/words.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Debian 12's openjdk-17-jdk-headless: the only JDK the build image can have. */
#define JDK_MAJOR 17
#define LAYERS "/opt/kiln/layers"
#define M2 "/root/.m2/repository"
#define DEPS "/opt/kiln/deps"
/* Maven's and the jar tools' JVMs live seconds: C1 only and the serial GC (C2 compiling
 * Maven's own code costs more than it saves; a warm Spring Boot rebuild took half the time) */
#define QUICK_JVM "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
#define TOUCH_LAYERS "find " LAYERS " -exec touch -h -d @0 {} +"

/* A JDK requirement and the file/setting it came from. */
typedef struct jdk_req {
    long major; /* 0 when nothing names one */
    char *value;
    char *source;
} jdk_req_t;

static void jdk_req_clear(jdk_req_t *r)
{
    free(r->value);
    free(r->source);
}

/* The Java major of "17", "1.8", "[17,)", "21.0.2"; 0 when unreadable. */
static long java_major(const char *v)
{
    char *end;
    long m;

    while (*v == '[' || *v == '(' || isspace((unsigned char)*v))
        v++;
    m = strtol(v, &end, 10);
    if (end == v || m <= 0)
        return 0;
    if (m == 1 && *end == '.')
        m = strtol(end + 1, NULL, 10);
    return m > 0 && m < 1000 ? m : 0;
}

/* The JDK the pom asks for, in the documented precedence. */
static void pom_jdk(const kiln_pom_t *pom, const char *file, jdk_req_t *req)
{
    const struct {
        const char *value, *what;
    } cands[] = {
        {pom->toolchain_jdk, "maven-toolchains-plugin toolchains/jdk/version"},
        {kiln_pom_property(pom, "maven.compiler.release"), "maven.compiler.release"},
        {pom->compiler_release, "maven-compiler-plugin release"},
        {kiln_pom_property(pom, "java.version"), "java.version"},
        {kiln_pom_property(pom, "maven.compiler.source"), "maven.compiler.source"},
        {kiln_pom_property(pom, "maven.compiler.target"), "maven.compiler.target"},
    };
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
        _cleanup_free_ char *v = kiln_pom_expand(pom, cands[i].value);
        long m = v ? java_major(v) : 0;
        if (m > 0) {
            req->major = m;
            req->value = steal_pointer(&v);
            req->source = kiln_xasprintf("%s %s", file, cands[i].what);
            return;
        }
    }
}

/* The JVM provider's kiln.json settings ("java": {…}) and their variables. */
static const char *const settings[] = {"version", "module", NULL};

/* Sets the plan's Java version from `req` (kiln.json java.version or KILN_JAVA_VERSION
 * wins): newer than the build image's JDK is an error naming where it was asked. */
static int plan_jdk(const kiln_detect_ctx_t *ctx, jdk_req_t *req, kiln_plan_t *plan,
                    kiln_error_t *err)
{
    char src[64];
    const char *env =
        kiln_overrides_stack(ctx, "java", "version", "KILN_JAVA_VERSION", src, sizeof(src));
    char ver[16];

    if (env != NULL) {
        jdk_req_clear(req);
        req->major = java_major(env);
        req->value = kiln_xstrdup(env);
        req->source = kiln_xstrdup(src);
        if (req->major == 0)
            return kiln_error_set(err, 0, "%s: cannot read a Java version from \"%.32s\"", src,
                                  env);
    }
    kiln_plan_set(&plan->language, "java");
    snprintf(ver, sizeof(ver), "%d", JDK_MAJOR);
    kiln_plan_set(&plan->version, ver);
    if (req->major == 0) {
        kiln_plan_set(&plan->version_source, "default");
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "nothing names a Java version (maven.compiler.release, java.version, "
                      "toolchains): OpenJDK %d, the JDK of kiln's jvm-build image (Debian 12)",
                      JDK_MAJOR);
        return 0;
    }
    if (req->major > JDK_MAJOR)
        return kiln_error_set(err, 0,
                              "%s asks for Java %s but the only JDK kiln's build image can have "
                              "is OpenJDK %d (Debian 12 has no newer one); lower it to %d, or "
                              "build with a Dockerfile whose image has JDK %ld",
                              req->source, req->value, JDK_MAJOR, JDK_MAJOR, req->major);
    kiln_plan_set(&plan->version_source, req->source);
    if (req->major == JDK_MAJOR)
        kiln_plan_why(plan, KILN_WHY_VERSION, "%s is %s: OpenJDK %d (Debian 12)", req->source,
                      req->value, JDK_MAJOR);
    else
        kiln_plan_why(plan, KILN_WHY_VERSION,
                      "%s is %s: built with OpenJDK %d (Debian 12's only JDK), which compiles "
                      "and runs Java %ld code",
                      req->source, req->value, JDK_MAJOR, req->major);
    return 0;
}

/* The Spring Boot version the pom builds with ("" when it is Boot but no
 * version is written), or NULL when it is not a Boot project. */
static char *boot_version(const kiln_pom_t *pom)
{
    const kiln_pom_artifact_t *a;

    if (pom->parent.artifact_id &&
        strcmp(pom->parent.artifact_id, "spring-boot-starter-parent") == 0)
        return kiln_pom_expand(pom, pom->parent.version ? pom->parent.version : "");
    if ((a = kiln_pom_find(pom->managed, pom->n_managed, "org.springframework.boot",
                           "spring-boot-dependencies")) != NULL ||
        (a = kiln_pom_find(pom->plugins, pom->n_plugins, NULL, "spring-boot-maven-plugin")) != NULL)
        return kiln_pom_expand(pom, a->version ? a->version : "");
    for (size_t i = 0; i < pom->n_deps; i++)
        if (pom->deps[i].group_id && strcmp(pom->deps[i].group_id, "org.springframework.boot") == 0)
            return kiln_xstrdup("");
    return NULL;
}

static bool is_quarkus(const kiln_pom_t *pom)
{
    return kiln_pom_find(pom->plugins, pom->n_plugins, NULL, "quarkus-maven-plugin") != NULL;
}

/* "major.minor" of a version as one number (3.3 → 303); 0 when unreadable. */
static long version_num(const char *v)
{
    char *end;
    long major = strtol(v, &end, 10), minor = 0;
    if (end == v)
        return 0;
    if (*end == '.')
        minor = strtol(end + 1, NULL, 10);
    return major * 100 + minor;
}

/* The shell lines that set $JAR to the absolute path of the built jar in
 * `dir` (target/ or <module>/target/): the pom's build.finalName or
 * artifactId-version when they are plain words, else the one jar there. */
static void jar_lookup(const kiln_pom_t *pom, const char *dir, kiln_buf_t *b)
{
    _cleanup_free_ char *fin = kiln_pom_expand(pom, pom->final_name);
    _cleanup_free_ char *ver =
        kiln_pom_expand(pom, pom->version ? pom->version : pom->parent.version);
    _cleanup_free_ char *name = NULL;

    if (fin && kiln_words_plain(fin))
        name = kiln_xstrdup(fin);
    else if (fin == NULL && kiln_words_plain(pom->artifact_id) && ver && kiln_words_plain(ver))
        name = kiln_xasprintf("%s-%s", pom->artifact_id, ver);
    if (name)
        kiln_buf_appendf(b, NULL, "JAR=$PWD/%s/%s.jar", dir, name);
    else
        kiln_buf_appendf(b, NULL,
                         "JAR=$(ls $PWD/%s/*.jar 2>/dev/null | grep -v -e '-sources\\.jar$' -e "
                         "'-javadoc\\.jar$' -e '-tests\\.jar$' | head -n 1)",
                         dir);
    kiln_buf_appendf(b, NULL,
                     " && { [ -f \"$JAR\" ] || { echo \"kiln: mvn package made no jar %s in %s/ "
                     "(the pom's build.finalName or artifactId-version): $(ls %s 2>&1 | tr '\\n' "
                     "' ')\" >&2; exit 1; }; }",
                     name ? name : "", dir, dir);
}

/* The module to build in a multi-module pom: kiln.json java.module (KILN_JAVA_MODULE),
 * else the first with the Spring Boot or Quarkus plugin, else the last jar module.
 * Every module path must stay inside the source. Returns 1 with *module, *mpom and
 * *why set, 0 when the pom has no modules. */
static int pick_module(const kiln_detect_ctx_t *ctx, const kiln_pom_t *pom, char **module,
                       kiln_pom_t **mpom, char **why, kiln_error_t *err)
{
    _cleanup_pom_ kiln_pom_t *last = NULL;
    _cleanup_free_ char *last_name = NULL;
    char src[64];
    const char *want =
        kiln_overrides_stack(ctx, "java", "module", "KILN_JAVA_MODULE", src, sizeof(src));

    if (want && pom->n_modules == 0)
        return kiln_error_set(err, 0, "%s names the module \"%.64s\" but pom.xml has no modules",
                              src, want);
    for (size_t i = 0; want && i < pom->n_modules; i++)
        if (strcmp(pom->modules[i], want) == 0)
            break;
        else if (i + 1 == pom->n_modules)
            return kiln_error_set(err, 0,
                                  "%s names the module \"%.64s\", which pom.xml's <modules> does "
                                  "not list",
                                  src, want);
    for (size_t i = 0; i < pom->n_modules; i++) {
        const char *m = pom->modules[i];
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_pom_ kiln_pom_t *mp = NULL;
        int r;
        if (!kiln_words_relpath(m))
            return kiln_error_set(err, 0,
                                  "pom.xml: module \"%.128s\" is not a relative path inside the "
                                  "source (no .., no absolute path, plain names only)",
                                  m);
        path = kiln_xasprintf("%s/pom.xml", m);
        r = kiln_tree_read(ctx->tree, path, &text, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return kiln_error_set(err, 0, "pom.xml: module %s has no %s", m, path);
        if (kiln_pom_parse(text, strlen(text), path, &mp, err) < 0)
            return -1;
        _cleanup_free_ char *boot = boot_version(mp);
        if (want ? strcmp(m, want) == 0 : boot != NULL || is_quarkus(mp)) {
            *module = kiln_xstrdup(m);
            *mpom = steal_pointer(&mp);
            *why = want ? kiln_xasprintf("%s names it", src)
                        : kiln_xasprintf("the first module with the %s plugin",
                                         boot ? "Spring Boot" : "Quarkus");
            return 1;
        }
        if (mp->packaging == NULL || strcmp(mp->packaging, "jar") == 0) {
            kiln_pom_free(last);
            last = steal_pointer(&mp);
            free(last_name);
            last_name = kiln_xstrdup(m);
        }
    }
    if (pom->n_modules == 0)
        return 0;
    if (last == NULL)
        return kiln_error_set(err, 0, "pom.xml: none of its %zu modules builds a jar",
                              pom->n_modules);
    *module = steal_pointer(&last_name);
    *mpom = steal_pointer(&last);
    *why = kiln_xstrdup("no module has the Spring Boot or Quarkus plugin: the last jar module "
                        "of <modules> (kiln.json java.module chooses another)");
    return 1;
}

/* The Spring Boot part of the build command and the start command. */
static void plan_boot(const char *ver, kiln_buf_t *b, kiln_plan_t *plan)
{
    long v = ver && ver[0] ? version_num(ver) : 0;
    const char *launcher = v && v < 302 ? "org.springframework.boot.loader.JarLauncher"
                                        : "org.springframework.boot.loader.launch.JarLauncher";
    static const char *const layers[] = {"dependencies", "spring-boot-loader",
                                         "snapshot-dependencies", "application"};

    kiln_buf_appendf(b, NULL, " && rm -rf " LAYERS " && mkdir -p " LAYERS " && { ");
    if (v == 0 || v >= 303)
        kiln_buf_appendf(b, NULL,
                         "java " QUICK_JVM
                         " -Djarmode=tools -jar \"$JAR\" extract --layers --launcher "
                         "--destination " LAYERS);
    else
        kiln_buf_appendf(b, NULL,
                         "(cd " LAYERS " && java " QUICK_JVM " -Djarmode=layertools -jar \"$JAR\" "
                         "extract)");
    /* a jar built with layers disabled: exploded, the launcher runs it the same way */
    kiln_buf_appendf(b, NULL,
                     " || { echo \"kiln: $JAR has no layers: exploded into one layer\" >&2 && rm "
                     "-rf " LAYERS "/* && mkdir -p " LAYERS "/application && (cd " LAYERS
                     "/application && jar xf \"$JAR\"); }; }");
    kiln_buf_appendf(b, NULL, " && mkdir -p");
    for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
        kiln_buf_appendf(b, NULL, " " LAYERS "/%s", layers[i]);
        kiln_plan_add(plan->layers, &plan->n_layers, NULL, LAYERS "/%s", layers[i]);
    }
    kiln_plan_set(&plan->framework, "spring-boot");
    kiln_plan_why(plan, KILN_WHY_FRAMEWORK,
                  "pom.xml names Spring Boot%s%s (the starter parent, its BOM, its plugin or a "
                  "starter)",
                  ver && ver[0] ? " " : "", ver ? ver : "");
    plan->start = kiln_xasprintf("exec java $JAVA_OPTS -Dserver.port=$PORT -cp %s %s",
                                 plan->workdir ? plan->workdir : "/app", launcher);
    kiln_plan_why(plan, KILN_WHY_START,
                  "Spring Boot%s%s: the executable jar's layers (%s) started with %s, the "
                  "server on $PORT",
                  ver && ver[0] ? " " : "", ver ? ver : "",
                  v == 0 || v >= 303 ? "-Djarmode=tools extract --layers" : "layertools extract",
                  launcher);
}

/* Quarkus: target/quarkus-app, its lib/ as the dependencies layer. */
static void plan_quarkus(const char *dir, kiln_buf_t *b, kiln_plan_t *plan)
{
    kiln_buf_appendf(b, NULL,
                     " && { [ -f %s/quarkus-app/quarkus-run.jar ] || { echo \"kiln: mvn package "
                     "made no %s/quarkus-app/quarkus-run.jar (quarkus.package.jar.type must be "
                     "fast-jar)\" >&2; exit 1; }; } && rm -rf " LAYERS " && mkdir -p " LAYERS
                     "/dependencies " LAYERS "/application && cp -a %s/quarkus-app/lib " LAYERS
                     "/dependencies/lib && cp -a %s/quarkus-app/app %s/quarkus-app/quarkus "
                     "%s/quarkus-app/quarkus-run.jar " LAYERS "/application/",
                     dir, dir, dir, dir, dir, dir);
    kiln_plan_add(plan->layers, &plan->n_layers, NULL, LAYERS "/dependencies");
    kiln_plan_add(plan->layers, &plan->n_layers, NULL, LAYERS "/application");
    kiln_plan_set(&plan->framework, "quarkus");
    kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "pom.xml has the quarkus-maven-plugin");
    plan->start = kiln_xstrdup("exec java $JAVA_OPTS -Dquarkus.http.host=0.0.0.0 "
                               "-Dquarkus.http.port=$PORT -jar quarkus-run.jar");
    kiln_plan_why(plan, KILN_WHY_START,
                  "Quarkus (quarkus-maven-plugin): %s/quarkus-app, lib/ as its own layer, "
                  "java -jar quarkus-run.jar on $PORT",
                  dir);
}

/* Whether a plain jar needs its runtime dependencies beside it in lib/ (for a manifest
 * Class-Path lib/): it has some and no shade/assembly plugin bundles them. */
static bool plain_needs_deps(const kiln_pom_t *pom, bool *bundled)
{
    bool deps = false;
    *bundled = kiln_pom_find(pom->plugins, pom->n_plugins, NULL, "maven-shade-plugin") ||
               kiln_pom_find(pom->plugins, pom->n_plugins, NULL, "maven-assembly-plugin");
    for (size_t i = 0; i < pom->n_deps; i++)
        if (pom->deps[i].scope == NULL || (strcmp(pom->deps[i].scope, "test") != 0 &&
                                           strcmp(pom->deps[i].scope, "provided") != 0))
            deps = true;
    return deps && !*bundled;
}

/* A plain jar: itself, plus its runtime dependencies in lib/ when plain_needs_deps (mvn
 * copied them to DEPS in the same run as package, so that a module of the reactor is
 * resolved to the jar just built). */
static void plan_plain(const kiln_pom_t *pom, kiln_buf_t *b, kiln_plan_t *plan)
{
    bool bundled, deps = plain_needs_deps(pom, &bundled);
    kiln_buf_appendf(b, NULL,
                     " && rm -rf " LAYERS " && mkdir -p " LAYERS "/dependencies%s " LAYERS
                     "/application && cp \"$JAR\" " LAYERS "/application/app.jar",
                     deps ? "" : "/lib");
    if (deps)
        kiln_buf_appendf(b, NULL, " && mv " DEPS " " LAYERS "/dependencies/lib");
    kiln_plan_add(plan->layers, &plan->n_layers, NULL, LAYERS "/dependencies");
    kiln_plan_add(plan->layers, &plan->n_layers, NULL, LAYERS "/application");
    plan->start = kiln_xstrdup("exec java $JAVA_OPTS -jar app.jar");
    kiln_plan_why(plan, KILN_WHY_START,
                  "a plain jar (no Spring Boot or Quarkus in pom.xml): java -jar app.jar%s",
                  deps      ? ", its runtime dependencies in lib/ (for a manifest "
                              "Class-Path lib/)"
                  : bundled ? ", its dependencies bundled by the shade/assembly plugin"
                            : "");
}

/* Notes what the Maven wrapper asked for: the image's Maven is used instead. */
static void note_wrapper(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan)
{
    kiln_error_t e = {0};
    _cleanup_free_ char *props = NULL;
    char *url = NULL, *end;
    char shown[160] = "";

    if (kiln_tree_read(ctx->tree, ".mvn/wrapper/maven-wrapper.properties", &props, &e) > 0 &&
        (url = strstr(props, "distributionUrl=")) != NULL) {
        url += 16;
        end = url + strcspn(url, "\r\n");
        snprintf(shown, sizeof(shown), " (its distributionUrl %.*s)",
                 (int)(end - url > 120 ? 120 : end - url), url);
        /* the properties file escapes ':' as '\:'; no control character is shown */
        for (char *p = shown, *d = shown;; p++) {
            if (*p == '\\')
                continue;
            *d++ = *p && (unsigned char)*p < 0x20 ? '?' : *p;
            if (*p == '\0')
                break;
        }
    }
    kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                  "mvnw is there%s: kiln builds with the build image's Maven 3.8 instead, since "
                  "the wrapper downloads its own Maven at build time",
                  shown);
}

static int maven_plan(const kiln_detect_ctx_t *ctx, const char *text, kiln_plan_t *plan,
                      kiln_error_t *err)
{
    _cleanup_pom_ kiln_pom_t *root = NULL, *mpom = NULL;
    _cleanup_free_ char *module = NULL, *boot = NULL, *dir = NULL, *cmd = NULL, *mwhy = NULL;
    jdk_req_t req = {0};
    const kiln_pom_t *app;
    kiln_buf_t b;
    int r;

    if (kiln_overrides_stack_check(ctx, "java", settings, err) < 0 ||
        kiln_pom_parse(text, strlen(text), "pom.xml", &root, err) < 0)
        return -1;
    r = pick_module(ctx, root, &module, &mpom, &mwhy, err);
    if (r < 0)
        return -1;
    app = mpom ? mpom : root;
    if (app->packaging && strcmp(app->packaging, "jar") != 0)
        return kiln_error_set(err, 0,
                              "%s%spom.xml: packaging \"%.32s\" is not a runnable jar (a war needs "
                              "a servlet container): build it with a Dockerfile",
                              module ? module : "", module ? "/" : "", app->packaging);
    kiln_plan_set(&plan->provider, "java");
    kiln_plan_set(&plan->package_manager, "maven");
    kiln_plan_why(
        plan, KILN_WHY_PACKAGE_MANAGER,
        "pom.xml: Maven (3.8, in kiln's jvm-build image; dependencies from Maven Central)");
    if (plan->project == NULL && kiln_words_plain(app->artifact_id))
        plan->project = kiln_detect_project_name(app->artifact_id);
    pom_jdk(app, module ? "module pom.xml" : "pom.xml", &req);
    if (req.major == 0 && app != root)
        pom_jdk(root, "pom.xml", &req);
    r = plan_jdk(ctx, &req, plan, err);
    jdk_req_clear(&req);
    if (r < 0)
        return -1;
    if (kiln_tree_is_file(ctx->tree, "mvnw"))
        note_wrapper(ctx, plan);
    kiln_plan_set(&plan->workdir, "/app");
    dir = module ? kiln_xasprintf("%s/target", module) : kiln_xstrdup("target");
    if ((boot = boot_version(app)) == NULL && app != root)
        boot = boot_version(root);
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "mvn -B -ntp -DskipTests package");
    if (boot == NULL && !is_quarkus(app) && plain_needs_deps(app, &(bool){false}))
        kiln_buf_appendf(&b, NULL,
                         " dependency:copy-dependencies -DincludeScope=runtime "
                         "-DoutputDirectory=" DEPS);
    kiln_buf_appendf(&b, NULL, "%s%s%s && ", module ? " -pl " : "", module ? module : "",
                     module ? " -am" : "");
    jar_lookup(app, dir, &b);
    if (boot != NULL)
        plan_boot(boot, &b, plan);
    else if (is_quarkus(app))
        plan_quarkus(dir, &b, plan);
    else
        plan_plain(app, &b, plan);
    /* fixed times: an unchanged part (the dependencies) gives the same layer digest */
    kiln_buf_appendf(&b, NULL, " && " TOUCH_LAYERS);
    cmd = kiln_buf_steal(&b, NULL);
    kiln_plan_set(&plan->build, cmd);
    kiln_plan_why(plan, KILN_WHY_BUILD,
                  "pom.xml%s%s%s%s%s: mvn package (tests skipped), the local repository %s a "
                  "cache mount; the jar's parts become the run image's layers",
                  module ? ", module " : "", module ? module : "", module ? " (" : "",
                  module ? mwhy : "", module ? ")" : "", M2);
    if (kiln_plan_add_cache(plan, "m2", M2, err) < 0 ||
        kiln_plan_setenv_build(plan, "MAVEN_OPTS", QUICK_JVM, err) < 0 ||
        kiln_plan_setenv(plan, "JAVA_OPTS", "-XX:MaxRAMPercentage=75", err) < 0)
        return -1;
    return 0;
}

/* The Java version a Gradle build file names (toolchain languageVersion,
 * sourceCompatibility, jvmToolchain); 0 when none. */
static long gradle_jdk(const char *text)
{
    static const char *const keys[] = {"JavaLanguageVersion.of(", "jvmToolchain(",
                                       "JavaVersion.VERSION_", "sourceCompatibility"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *p = strstr(text, keys[i]);
        if (p == NULL)
            continue;
        p += strlen(keys[i]);
        while (*p == ' ' || *p == '=' || *p == '\'' || *p == '"' || *p == '_')
            p++;
        if (strncmp(p, "1_", 2) == 0)
            p += 2;
        long m = java_major(p);
        if (m > 0)
            return m;
    }
    return 0;
}

static int gradle_plan(const kiln_detect_ctx_t *ctx, const char *file, const char *text,
                       kiln_plan_t *plan, kiln_error_t *err)
{
    kiln_error_t e = {0};
    _cleanup_free_ char *props = NULL, *dist = NULL;
    jdk_req_t req = {0};
    const char *task = "build -x test", *url;
    bool boot = strstr(text, "org.springframework.boot") != NULL;
    bool quarkus = strstr(text, "io.quarkus") != NULL;
    int r;

    if (kiln_overrides_stack_check(ctx, "java", settings, err) < 0)
        return -1;
    kiln_plan_set(&plan->provider, "java");
    kiln_plan_set(&plan->package_manager, "gradle");
    req.major = gradle_jdk(text);
    if (req.major) {
        req.value = kiln_xasprintf("%ld", req.major);
        req.source = kiln_xstrdup(file);
    }
    r = plan_jdk(ctx, &req, plan, err);
    jdk_req_clear(&req);
    if (r < 0)
        return -1;
    if (kiln_tree_read(ctx->tree, "gradle/wrapper/gradle-wrapper.properties", &props, &e) > 0 &&
        (url = strstr(props, "distributionUrl=")) != NULL) {
        url += 16;
        dist = kiln_xstrndup(url, strcspn(url, "\r\n"));
        /* the properties file escapes ':' as '\:' */
        for (char *s = dist, *d = dist;; s++) {
            if (*s == '\\' && s[1] == ':')
                continue;
            if ((*d++ = *s) == '\0')
                break;
        }
        for (char *p = dist; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr(":/._-+%", *p))
                *p = '_';
    }
    if (boot) {
        task = "bootJar -x test";
        kiln_plan_set(&plan->framework, "spring-boot");
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "%s names org.springframework.boot", file);
    } else if (quarkus) {
        task = "quarkusBuild -x test";
        kiln_plan_set(&plan->framework, "quarkus");
        kiln_plan_why(plan, KILN_WHY_FRAMEWORK, "%s names io.quarkus", file);
    }
    kiln_plan_set(&plan->workdir, "/app");
    if (!kiln_tree_is_file(ctx->tree, "gradlew") || dist == NULL ||
        !kiln_tree_is_file(ctx->tree, "gradle/wrapper/gradle-wrapper.jar")) {
        /* what is missing, said by the plan (a note) and by the build step alike */
        _cleanup_free_ char *msg =
            !kiln_tree_is_file(ctx->tree, "gradlew") || dist == NULL
                ? kiln_xasprintf(
                      "%s needs Gradle, which kiln's build image does not carry (Debian 12's "
                      "gradle is 4.4, too old for it) and no Gradle wrapper (gradlew and "
                      "gradle/wrapper/gradle-wrapper.properties) is there to fetch one: add the "
                      "wrapper or build with a Dockerfile",
                      file)
                : kiln_xasprintf("gradlew needs gradle/wrapper/gradle-wrapper.jar, which is not "
                                 "in the source: commit it (gradle wrapper writes it) or build "
                                 "with a Dockerfile");
        plan->build = kiln_xasprintf("echo \"kiln: %s\" >&2; exit 1", msg);
        kiln_plan_add(plan->notes, &plan->n_notes, NULL, "the build step will stop: %s", msg);
        kiln_plan_why(plan, KILN_WHY_BUILD,
                      "%s without a whole Gradle wrapper: the build step stops and says what is "
                      "missing",
                      file);
    } else {
        plan->build = kiln_xasprintf(
            "chmod +x gradlew && { ./gradlew --no-daemon --version >/dev/null 2>&1 || { echo "
            "\"kiln: the Gradle wrapper could not fetch its distribution %s "
            "(gradle/wrapper/gradle-wrapper.properties distributionUrl): kiln's builds reach "
            "Maven Central but not that host; build with Maven (pom.xml) or a Dockerfile whose "
            "image has Gradle\" >&2; exit 1; }; } && ./gradlew --no-daemon %s && rm -rf " LAYERS
            " && mkdir -p " LAYERS "/application && JAR=$(ls build/libs/*.jar | grep -v -e "
            "'-plain\\.jar$' | head -n 1) && cp \"$JAR\" " LAYERS
            "/application/app.jar && " TOUCH_LAYERS,
            dist, task);
        kiln_plan_add(plan->notes, &plan->n_notes, NULL,
                      "the Gradle wrapper fetches its distribution %s in the build step: Gradle "
                      "distributions are not on Maven Central, and kiln's builds reach only the "
                      "package registries, so unless that URL is a mirror they reach the build "
                      "step stops naming it",
                      dist);
        kiln_plan_why(plan, KILN_WHY_BUILD,
                      "%s: ./gradlew %s, the wrapper's distribution %s fetched in the build step "
                      "(it fails naming it when that host cannot be reached)",
                      file, task, dist);
    }
    kiln_plan_add(plan->layers, &plan->n_layers, NULL, LAYERS "/application");
    plan->start = kiln_xstrdup(quarkus ? "exec java $JAVA_OPTS -Dquarkus.http.host=0.0.0.0 "
                                         "-Dquarkus.http.port=$PORT -jar app.jar"
                                       : "exec java $JAVA_OPTS -Dserver.port=$PORT -jar app.jar");
    kiln_plan_why(plan, KILN_WHY_START, "%s: the jar of build/libs (%s), java -jar on $PORT", file,
                  boot      ? "Spring Boot's bootJar"
                  : quarkus ? "Quarkus"
                            : "the build's");
    kiln_plan_why(plan, KILN_WHY_PACKAGE_MANAGER,
                  "%s: Gradle through its wrapper (the build image has no Gradle)", file);
    if (kiln_plan_add_cache(plan, "gradle", "/root/.gradle", err) < 0 ||
        kiln_plan_setenv(plan, "JAVA_OPTS", "-XX:MaxRAMPercentage=75", err) < 0)
        return -1;
    return 0;
}

int kiln_jvm_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    static const char *const gradle_files[] = {"build.gradle.kts", "build.gradle"};
    _cleanup_free_ char *text = NULL;
    int r = kiln_tree_read(ctx->tree, "pom.xml", &text, err);

    if (r < 0)
        return -1;
    if (r > 0) {
        if (maven_plan(ctx, text, plan, err) < 0)
            return -1;
    } else {
        const char *file = NULL;
        for (size_t i = 0; file == NULL && i < sizeof(gradle_files) / sizeof(gradle_files[0]);
             i++) {
            r = kiln_tree_read(ctx->tree, gradle_files[i], &text, err);
            if (r < 0)
                return -1;
            if (r > 0)
                file = gradle_files[i];
        }
        if (file == NULL)
            return 0;
        if (gradle_plan(ctx, file, text, plan, err) < 0)
            return -1;
    }
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "jvm-build");
    plan->run_image = kiln_detect_image(ctx, "jvm-run");
    return 1;
}
