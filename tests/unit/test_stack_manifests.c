/* Unit tests for the manifests of the JVM, Rust, Ruby, PHP and Deno providers:
 * pom.xml (handlers/pom), Cargo.toml / rust-toolchain over utils/toml
 * (handlers/cargo), plain words (handlers/words), and the
 * Gemfile / composer.json / deno.jsonc readings through detection; plans'
 * layers through their JSON form. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "handlers/cargo.h"
#include "handlers/detect.h"
#include "handlers/plan.h"
#include "handlers/pom.h"
#include "handlers/words.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static const char POM[] =
    "<?xml version=\"1.0\"?>\n"
    "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n"
    "  <parent><groupId>org.springframework.boot</groupId>\n"
    "    <artifactId>spring-boot-starter-parent</artifactId><version>3.5.7</version></parent>\n"
    "  <artifactId>demo</artifactId>\n"
    "  <version>${revision}</version>\n"
    "  <properties><revision>1.2.3</revision><java.version>17</java.version>\n"
    "    <self>${self}x</self></properties>\n"
    "  <modules><module>core</module><module>web</module></modules>\n"
    "  <dependencies>\n"
    "    <dependency><groupId>org.springframework.boot</groupId>\n"
    "      <artifactId>spring-boot-starter-web</artifactId></dependency>\n"
    "    <dependency><groupId>junit</groupId><artifactId>junit</artifactId>\n"
    "      <scope> test </scope></dependency>\n"
    "  </dependencies>\n"
    "  <dependencyManagement><dependencies><dependency><groupId>io.quarkus</groupId>\n"
    "    <artifactId>quarkus-bom</artifactId><version>3.33.2</version></dependency>\n"
    "  </dependencies></dependencyManagement>\n"
    "  <build><finalName>app-${project.version}</finalName><plugins>\n"
    "    <plugin><artifactId>maven-compiler-plugin</artifactId>\n"
    "      <configuration><source>11</source><release>17</release></configuration></plugin>\n"
    "    <plugin><artifactId>maven-toolchains-plugin</artifactId><configuration><toolchains>\n"
    "      <jdk><version>[17,)</version></jdk></toolchains></configuration></plugin>\n"
    "  </plugins></build>\n"
    "  <profiles><profile><build><finalName>ignored</finalName></build></profile></profiles>\n"
    "</project>\n";

static void test_pom_fields(void **state)
{
    _cleanup_pom_ kiln_pom_t *p = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *fin = NULL, *self = NULL;

    (void)state;
    assert_int_equal(kiln_pom_parse(POM, strlen(POM), "pom.xml", &p, &err), 0);
    assert_string_equal(p->artifact_id, "demo");
    assert_string_equal(p->parent.artifact_id, "spring-boot-starter-parent");
    assert_string_equal(p->parent.version, "3.5.7");
    assert_int_equal(p->n_modules, 2);
    assert_string_equal(p->modules[1], "web");
    assert_int_equal(p->n_deps, 2);
    assert_string_equal(p->deps[1].scope, "test");
    assert_int_equal(p->n_managed, 1);
    assert_non_null(kiln_pom_find(p->managed, p->n_managed, "io.quarkus", "quarkus-bom"));
    assert_null(kiln_pom_find(p->deps, p->n_deps, "nope", "junit"));
    assert_int_equal(p->n_plugins, 2);
    assert_string_equal(p->compiler_release, "17"); /* release wins over source */
    assert_string_equal(p->toolchain_jdk, "[17,)");
    assert_string_equal(kiln_pom_property(p, "java.version"), "17");
    fin = kiln_pom_expand(p, p->final_name);
    assert_string_equal(fin, "app-1.2.3");
    /* a self-reference stops after a bounded number of rounds */
    self = kiln_pom_expand(p, "${self}");
    assert_non_null(self);
    assert_true(strlen(self) < 64);
    assert_null(kiln_pom_expand(p, NULL));
}

/* Parses `xml` and expects a failure whose message holds `want`. */
static void pom_fails(const char *xml, size_t len, const char *want)
{
    kiln_pom_t *p = NULL;
    kiln_error_t err = {0};

    assert_int_equal(kiln_pom_parse(xml, len, "pom.xml", &p, &err), -1);
    assert_null(p);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

/* What utils/xmlread gives the pom reader: the encoding a pom declares (ISO-8859-1 text comes
 * out as UTF-8), an element's text around a comment joined, and a long list's indentation (the
 * text of a container, over the per-text cap in total) not counted against the cap. */
static void test_pom_reader(void **state)
{
    _cleanup_pom_ kiln_pom_t *latin = NULL;
    _cleanup_pom_ kiln_pom_t *big = NULL;
    kiln_error_t err = {0};
    kiln_buf_t b;
    _cleanup_free_ char *doc = NULL;
    size_t len;
    static const char l1[] = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n"
                             "<project><artifactId>caf\xe9</artifactId>"
                             "<version>1.<!-- c -->0</version></project>";

    (void)state;
    assert_int_equal(kiln_pom_parse(l1, sizeof(l1) - 1, "pom.xml", &latin, &err), 0);
    assert_string_equal(latin->artifact_id, "caf\xc3\xa9");
    assert_string_equal(latin->version, "1.0");
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "<project><dependencies>");
    for (int i = 0; i < KILN_POM_MAX_DEPS; i++)
        kiln_buf_appendf(&b, NULL, "\n%80s<dependency><artifactId>d%d</artifactId></dependency>",
                         "", i);
    kiln_buf_appendf(&b, NULL, "\n</dependencies></project>");
    doc = kiln_buf_steal(&b, &len);
    assert_true(len > 80 * KILN_POM_MAX_DEPS && 80 * KILN_POM_MAX_DEPS > KILN_POM_MAX_TEXT);
    assert_int_equal(kiln_pom_parse(doc, len, "pom.xml", &big, &err), 0);
    assert_int_equal(big->n_deps, KILN_POM_MAX_DEPS);
    assert_string_equal(big->deps[KILN_POM_MAX_DEPS - 1].artifact_id, "d1023");
}

static void test_pom_hostile(void **state)
{
    kiln_buf_t b;
    _cleanup_free_ char *big = NULL;

    (void)state;
    pom_fails("<!DOCTYPE project [<!ENTITY a \"x\">]><project>&a;</project>", 57,
              "DOCTYPE is not allowed");
    pom_fails("<settings/>", 11, "root element is <settings>");
    pom_fails("<project><a></b></project>", 26, "not valid XML (line 1");
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "<project>");
    for (int i = 0; i < 40; i++)
        kiln_buf_appendf(&b, NULL, "<a>");
    big = kiln_buf_steal(&b, NULL);
    pom_fails(big, strlen(big), "nested deeper than 32");
    free(big);
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "<project>");
    for (int i = 0; i < KILN_POM_MAX_ELEMENTS + 1; i++)
        kiln_buf_appendf(&b, NULL, "<a/>");
    kiln_buf_appendf(&b, NULL, "</project>");
    big = kiln_buf_steal(&b, NULL);
    pom_fails(big, strlen(big), "more than 100000 elements");
    free(big);
    big = kiln_xmalloc(KILN_POM_MAX_TEXT + 64);
    memcpy(big, "<project><name>", 15);
    memset(big + 15, 'x', KILN_POM_MAX_TEXT + 1);
    strcpy(big + 16 + KILN_POM_MAX_TEXT, "</name></project>");
    pom_fails(big, strlen(big), "is over 65536 bytes");
    free(big);
    big = NULL;
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "<project><modules>");
    for (int i = 0; i < KILN_POM_MAX_MODULES + 1; i++)
        kiln_buf_appendf(&b, NULL, "<module>m%d</module>", i);
    kiln_buf_appendf(&b, NULL, "</modules></project>");
    big = kiln_buf_steal(&b, NULL);
    pom_fails(big, strlen(big), "more than 128 modules");
}

static void test_cargo(void **state)
{
    static const char toml[] = "[package]\nname = \"app\"\nrust-version = \"1.70\"\n"
                               "default-run = \"srv\"\nbuild = \"build.rs\"\n"
                               "[[bin]]\nname = \"srv\"\npath = \"src/srv.rs\"\n"
                               "[dependencies]\nlocal = { path = \"../local\" }\n"
                               "[dependencies.other]\npath = \"/abs\"\n"
                               "[workspace]\nmembers = [\"crates/*\", \"tool\"]\n";
    kiln_cargo_t c = {0};
    kiln_error_t err = {0};
    char *ch = NULL;

    (void)state;
    assert_int_equal(kiln_cargo_parse(toml, strlen(toml), "Cargo.toml", &c, &err), 0);
    assert_string_equal(c.name, "app");
    assert_string_equal(c.rust_version, "1.70");
    assert_string_equal(c.default_run, "srv");
    assert_int_equal(c.n_bins, 1);
    assert_int_equal(c.n_members, 2);
    assert_true(c.has_workspace);
    assert_int_equal(c.n_paths, 4);
    assert_string_equal(c.paths[0], "package.build\tbuild.rs");
    assert_string_equal(c.paths[1], "bin\tsrc/srv.rs");
    assert_string_equal(c.paths[2], "dependencies.local\t../local");
    assert_string_equal(c.paths[3], "dependencies.other\t/abs");
    kiln_cargo_clear(&c);

    assert_int_equal(
        kiln_cargo_toolchain("[toolchain]\nchannel = \"1.80\"\n", 29, 1, "t", &ch, &err), 0);
    assert_string_equal(ch, "1.80");
    free(ch);
    assert_int_equal(kiln_cargo_toolchain("  nightly-2024-01-01\n", 21, 0, "t", &ch, &err), 0);
    assert_string_equal(ch, "nightly-2024-01-01");
    free(ch);
    assert_int_equal(
        kiln_cargo_toolchain("[toolchain]\nchannel = \"stable\"\n", 31, 0, "t", &ch, &err), 0);
    assert_string_equal(ch, "stable");
    free(ch);
    assert_int_equal(kiln_cargo_toolchain("\n", 1, 0, "t", &ch, &err), 0);
    assert_null(ch);
}

static void test_words(void **state)
{
    (void)state;
    assert_true(kiln_words_plain("spring-demo-0.1.0"));
    assert_true(kiln_words_plain("a+b_c"));
    assert_false(kiln_words_plain("-rf"));
    assert_false(kiln_words_plain(".hidden"));
    assert_false(kiln_words_plain("$(id)"));
    assert_false(kiln_words_plain("a b"));
    assert_false(kiln_words_plain(""));
    assert_false(kiln_words_plain(NULL));
    assert_true(kiln_words_relpath("apps/web"));
    assert_true(kiln_words_relpath("web/"));
    assert_false(kiln_words_relpath("../x"));
    assert_false(kiln_words_relpath("a/../../x"));
    assert_false(kiln_words_relpath("/etc"));
    assert_false(kiln_words_relpath("a//b"));
    assert_false(kiln_words_relpath("a/./b"));
}

/* Writes files (name, text pairs, NULL-terminated) into a new temp dir. */
static char *tree(const char *first, ...)
{
    char tmpl[] = "/tmp/kiln-stack-XXXXXX";
    char *dir = kiln_xstrdup(mkdtemp(tmpl));
    va_list ap;

    va_start(ap, first);
    for (const char *name = first; name; name = va_arg(ap, const char *)) {
        const char *text = va_arg(ap, const char *);
        _cleanup_free_ char *path = kiln_xasprintf("%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    va_end(ap);
    return dir;
}

static int detect(const char *dir, kiln_plan_t **out, kiln_error_t *err)
{
    static char *const env[] = {NULL};
    kiln_detect_opts_t o = {.env = env};
    return kiln_plan_detect(dir, &o, out, err);
}

static void rmtree(const char *dir)
{
    kiln_error_t err = {0};
    kiln_fs_rm_rf(dir, &err);
}

static void test_gemfile_composer_deno(void **state)
{
    kiln_error_t err = {0};
    kiln_plan_t *p = NULL;
    char *d;

    (void)state;
    d = tree("Gemfile", "source 'https://gems.example'\n  ruby('3.0.6')\ngem 'puma', '~> 6'\n",
             "config.ru", "", NULL);
    assert_int_equal(detect(d, &p, &err), 0);
    assert_string_equal(p->provider, "ruby");
    assert_string_equal(p->framework, "rack");
    assert_string_equal(p->version_source, "Gemfile ruby");
    assert_non_null(strstr(p->start, "puma -b tcp://0.0.0.0:$PORT"));
    assert_non_null(strstr(p->install, "gems from https://gems.example"));
    kiln_plan_free(p);
    p = NULL;
    rmtree(d);
    free(d);

    d = tree("composer.json",
             "{\"require\": {\"php\": \"^7.4 || ^8.0\", \"symfony/runtime\": "
             "\"*\"}}",
             NULL);
    assert_int_equal(detect(d, &p, &err), 0);
    assert_string_equal(p->framework, "symfony");
    assert_string_equal(p->start, "exec php -S 0.0.0.0:$PORT -t public");
    kiln_plan_free(p);
    p = NULL;
    rmtree(d);
    free(d);

    d = tree("composer.json", "{\"require\": {\"php\": \">= 8.4\"}}", NULL);
    assert_int_equal(detect(d, &p, &err), -1);
    assert_non_null(strstr(err.msg, "needs PHP 8.4 or newer"));
    rmtree(d);
    free(d);

    d = tree("composer.json", "{\"require\": [1, 2", NULL);
    assert_int_equal(detect(d, &p, &err), -1);
    assert_non_null(strstr(err.msg, "composer.json line 1"));
    rmtree(d);
    free(d);

    d = tree("deno.jsonc",
             "{ /* c */ \"tasks\": { \"start\": \"deno run x.ts // not a comment\", },\n}", NULL);
    assert_int_equal(detect(d, &p, &err), 0);
    assert_string_equal(p->provider, "deno");
    assert_string_equal(p->start, "exec deno task start");
    kiln_plan_free(p);
    p = NULL;
    rmtree(d);
    free(d);
}

static void test_plan_layers_json(void **state)
{
    _cleanup_plan_ kiln_plan_t *p = kiln_plan_new(), *q = NULL;
    _cleanup_free_ char *a = NULL, *b = NULL;
    kiln_error_t err = {0};

    (void)state;
    kiln_plan_set(&p->provider, "java");
    kiln_plan_add(p->layers, &p->n_layers, &err, "/opt/kiln/layers/dependencies");
    kiln_plan_add(p->layers, &p->n_layers, &err, "/opt/kiln/layers/application");
    assert_int_equal(kiln_plan_to_json(p, &a, &err), 0);
    assert_int_equal(kiln_plan_from_json(a, strlen(a), &q, &err), 0);
    assert_int_equal(q->n_layers, 2);
    assert_string_equal(q->layers[1], "/opt/kiln/layers/application");
    assert_int_equal(kiln_plan_to_json(q, &b, &err), 0);
    assert_string_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pom_fields),
        cmocka_unit_test(test_pom_hostile),
        cmocka_unit_test(test_pom_reader),
        cmocka_unit_test(test_cargo),
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_gemfile_composer_deno),
        cmocka_unit_test(test_plan_layers_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
