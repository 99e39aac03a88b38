/* Unit tests for handlers/dockerfile: heredocs (no upstream corpus covers
 * them; cases follow the Dockerfile reference), errors with line numbers,
 * word expansion extras and .dockerignore matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handlers/dockerfile/dockerignore.h"
#include "handlers/dockerfile/instructions.h"
#include "handlers/dockerfile/parser.h"
#include "handlers/dockerfile/shell.h"
#include "oci/image.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

static kiln_dockerfile_t *parse_ok(const char *text)
{
    kiln_dockerfile_t *df = NULL;
    kiln_error_t err = {0};
    int r = kiln_dockerfile_parse(text, strlen(text), NULL, &df, &err);
    if (r < 0)
        fail_msg("parse failed: %s", err.msg);
    return df;
}

static void test_heredoc_basic(void **state)
{
    kiln_dockerfile_t *df = parse_ok("FROM busybox\n"
                                     "RUN <<EOF\n"
                                     "echo hello\n"
                                     "echo $HOME\n"
                                     "EOF\n"
                                     "CMD x\n");
    assert_int_equal(df->n_nodes, 3);
    assert_int_equal(df->nodes[1].n_heredocs, 1);
    assert_string_equal(df->nodes[1].heredocs[0].name, "EOF");
    assert_true(df->nodes[1].heredocs[0].expand);
    assert_false(df->nodes[1].heredocs[0].chomp);
    assert_string_equal(df->nodes[1].heredocs[0].content, "echo hello\necho $HOME\n");
    assert_string_equal(df->nodes[1].args[0], "<<EOF");
    assert_int_equal(df->nodes[1].start_line, 2);
    assert_int_equal(df->nodes[1].end_line, 5);
    assert_int_equal(df->nodes[2].start_line, 6);
    kiln_dockerfile_free(df);
}

static void test_heredoc_quoted_chomp_multi(void **state)
{
    kiln_dockerfile_t *df = parse_ok("FROM busybox\n"
                                     "COPY <<-\"A\" 3<<'B' /dest/\n"
                                     "\t\tfirst $X\n"
                                     "\tA\n"
                                     "second\n"
                                     "B\n");
    const kiln_df_node_t *n = &df->nodes[1];
    _cleanup_free_ char *c = NULL;
    assert_int_equal(n->n_heredocs, 2);
    assert_string_equal(n->heredocs[0].name, "A");
    assert_false(n->heredocs[0].expand);
    assert_true(n->heredocs[0].chomp);
    c = kiln_df_heredoc_content(&n->heredocs[0]);
    assert_string_equal(c, "first $X\n");
    assert_string_equal(n->heredocs[1].name, "B");
    assert_int_equal(n->heredocs[1].fd, 3);
    assert_false(n->heredocs[1].expand);
    assert_string_equal(n->heredocs[1].content, "second\n");
    kiln_dockerfile_free(df);
}

static void test_heredoc_not_in_json_or_other(void **state)
{
    kiln_dockerfile_t *df = parse_ok("FROM busybox\n"
                                     "RUN [\"echo\", \"<<EOF\"]\n"
                                     "ENV A=<<EOF\n");
    assert_int_equal(df->nodes[1].n_heredocs, 0);
    assert_int_equal(df->nodes[2].n_heredocs, 0);
    kiln_dockerfile_free(df);
}

static void test_heredoc_unterminated(void **state)
{
    kiln_dockerfile_t *df = NULL;
    kiln_error_t err = {0};
    const char *t = "FROM busybox\nRUN <<EOF\necho\n";
    assert_int_equal(kiln_dockerfile_parse(t, strlen(t), NULL, &df, &err), -1);
    assert_non_null(strstr(err.msg, "Dockerfile:2: unterminated heredoc"));
}

static void test_errors_have_lines(void **state)
{
    kiln_dockerfile_t *df = NULL;
    kiln_error_t err = {0};
    const char *t = "FROM busybox\n\nLABEL a=b c\n";
    assert_int_equal(kiln_dockerfile_parse(t, strlen(t), NULL, &df, &err), -1);
    assert_string_equal(err.msg, "Dockerfile:3: Syntax error - can't find = in \"c\". Must be of "
                                 "the form: name=value");
    t = "# escape=x\nFROM a\n";
    assert_int_equal(kiln_dockerfile_parse(t, strlen(t), NULL, &df, &err), -1);
    assert_non_null(strstr(err.msg, "Dockerfile:1: invalid escape token"));
}

static void test_directives(void **state)
{
    kiln_dockerfile_t *df = parse_ok("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n");
    assert_string_equal(df->syntax, "docker/dockerfile:1");
    assert_int_equal(df->escape, '`');
    kiln_dockerfile_free(df);
}

static char *expand(const char *w, char *const *vars, size_t n)
{
    kiln_shell_env_t env = {.vars = vars, .n_vars = n};
    kiln_error_t err = {0};
    char *out = NULL;
    if (kiln_shell_process_word(w, NULL, &env, &out, &err) < 0)
        return NULL;
    return out;
}

static void test_shell_pattern_ops(void **state)
{
    char *vars[] = {"P=/usr/local/bin/tool.tar.gz", "E="};
    struct {
        const char *in, *want;
    } cases[] = {
        {"${P#*/}", "usr/local/bin/tool.tar.gz"},
        {"${P##*/}", "tool.tar.gz"},
        {"${P%.*}", "/usr/local/bin/tool.tar"},
        {"${P%%.*}", "/usr/local/bin/tool"},
        {"${P/local/opt}", "/usr/opt/bin/tool.tar.gz"},
        {"${P//o/0}", "/usr/l0cal/bin/t00l.tar.gz"},
        {"${E-x}", ""},
        {"${E:-x}", "x"},
        {"${U-x}", "x"},
        {"${E+y}", "y"},
        {"${E:+y}", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_free_ char *got = expand(cases[i].in, vars, 2);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
    }
    assert_null(expand("${U?must be set}", vars, 2));
}

static void test_dockerignore(void **state)
{
    kiln_dockerignore_t *di = NULL;
    kiln_error_t err = {0};
    const char *t = "# comment\n"
                    "*.log\n"
                    "/build\n"
                    "**/node_modules\n"
                    "docs/**/*.md\n"
                    "!docs/keep/README.md\n"
                    "secret?.txt\n"
                    " tmp/ \n"
                    "!tmp/keep\n";
    assert_int_equal(kiln_dockerignore_parse(t, strlen(t), &di, &err), 0);
    assert_int_equal(kiln_dockerignore_count(di), 8);
    assert_string_equal(kiln_dockerignore_pattern(di, 1), "build");
    assert_true(kiln_dockerignore_excluded(di, "a.log"));
    assert_false(kiln_dockerignore_excluded(di, "dir/a.log")); /* '*' stays in one element */
    assert_true(kiln_dockerignore_excluded(di, "build"));
    assert_true(kiln_dockerignore_excluded(di, "build/x/y")); /* parent matches */
    assert_true(kiln_dockerignore_excluded(di, "node_modules/x"));
    assert_true(kiln_dockerignore_excluded(di, "a/b/node_modules"));
    assert_true(kiln_dockerignore_excluded(di, "docs/a.md"));
    assert_true(kiln_dockerignore_excluded(di, "docs/x/y/a.md"));
    assert_false(kiln_dockerignore_excluded(di, "docs/keep/README.md"));
    assert_false(kiln_dockerignore_excluded(di, "docs/a.txt"));
    assert_true(kiln_dockerignore_excluded(di, "secret1.txt"));
    assert_false(kiln_dockerignore_excluded(di, "secret12.txt"));
    assert_true(kiln_dockerignore_excluded(di, "tmp/x"));
    assert_false(kiln_dockerignore_excluded(di, "tmp/keep"));
    assert_true(kiln_dockerignore_may_reinclude(di, "tmp"));
    assert_false(kiln_dockerignore_may_reinclude(di, "build"));
    kiln_dockerignore_free(di);
}

/* .git never enters a context: at any depth (a submodule's or worktree's .git
 * file too), whatever the patterns, a `!.git` re-include included; names that
 * only start with .git are ordinary. */
static void test_dockerignore_git(void **state)
{
    const char *t = "!.git\n!.git/config\n!**/.git\n";
    kiln_dockerignore_t *di = NULL;
    kiln_error_t err = {0};
    (void)state;
    assert_int_equal(kiln_dockerignore_parse("", 0, &di, &err), 0);
    assert_true(kiln_dockerignore_excluded(di, ".git"));
    assert_true(kiln_dockerignore_excluded(di, ".git/config"));
    assert_true(kiln_dockerignore_excluded(di, "vendor/lib/.git"));
    assert_false(kiln_dockerignore_excluded(di, ".gitignore"));
    assert_false(kiln_dockerignore_excluded(di, ".github/workflows/x.yml"));
    assert_false(kiln_dockerignore_excluded(di, "a.git/x"));
    kiln_dockerignore_free(di);
    assert_int_equal(kiln_dockerignore_parse(t, strlen(t), &di, &err), 0);
    assert_true(kiln_dockerignore_excluded(di, ".git/config"));
    assert_true(kiln_dockerignore_excluded(di, "sub/.git"));
    assert_false(kiln_dockerignore_may_reinclude(di, ".git"));
    assert_true(kiln_dockerignore_is_git("x/.git/HEAD"));
    assert_false(kiln_dockerignore_is_git("x/.gitkeep"));
    kiln_dockerignore_free(di);
    /* NULL (not the main context: a stage, a named context) has no rules at all */
    assert_false(kiln_dockerignore_excluded(NULL, ".git"));
}

/* Matching a path is bounded: backtracking patterns past the budget leave the
 * path out and say so (the engine then fails naming .dockerignore). */
static void test_dockerignore_budget(void **state)
{
    const char *pat = "**/**/**/**/**/**/**/**/a*a*a*a*a*a*a*a*a*a*a*a*a*b\n";
    kiln_buf_t b;
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *path = NULL;
    kiln_dockerignore_t *di = NULL;
    kiln_error_t err = {0};
    (void)state;
    kiln_buf_init(&b, 0);
    for (int i = 0; i < 200; i++)
        kiln_buf_appendf(&b, NULL, "%s", pat);
    text = kiln_buf_steal(&b, NULL);
    kiln_buf_init(&b, 0);
    for (int i = 0; i < 40; i++)
        kiln_buf_appendf(&b, NULL, "a/");
    kiln_buf_appendf(&b, NULL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac");
    path = kiln_buf_steal(&b, NULL);
    assert_int_equal(kiln_dockerignore_parse(text, strlen(text), &di, &err), 0);
    assert_false(kiln_dockerignore_overrun(di));
    assert_false(kiln_dockerignore_excluded(di, "index.html"));
    assert_false(kiln_dockerignore_overrun(di));
    assert_true(kiln_dockerignore_excluded(di, path));
    assert_true(kiln_dockerignore_overrun(di));
    kiln_dockerignore_free(di);
}

static int expand_plain(void *ctx, const char *word, char **out, kiln_error_t *err)
{
    char *vars[] = {"PORT=8080"};
    kiln_shell_env_t env = {.vars = vars, .n_vars = 1};
    return kiln_shell_process_word(word, NULL, &env, out, err);
}

/* Applies each line of text to cfg; returns the last history text. */
static char *apply_all(json_t *cfg, const char *text)
{
    kiln_dockerfile_t *df = parse_ok(text);
    char *hist = NULL;
    for (size_t i = 0; i < df->n_nodes; i++) {
        kiln_error_t err = {0};
        free(hist);
        hist = NULL;
        if (kiln_df_apply_config(cfg, &df->nodes[i], expand_plain, NULL, &hist, &err) < 0)
            fail_msg("apply %s: %s", df->nodes[i].original, err.msg);
    }
    kiln_dockerfile_free(df);
    return hist;
}

static void test_instructions_config(void **state)
{
    json_t *cfg = kiln_image_config_new("amd64", "linux");
    json_t *c;
    char *h;
    char *s;

    h = apply_all(cfg, "ENV A=1 B=\"two words\"\nEXPOSE $PORT 53/udp\n"
                       "CMD echo hi\nHEALTHCHECK --interval=1m30s --retries=3 CMD curl -f x\n");
    assert_string_equal(h, "HEALTHCHECK &{[\"CMD-SHELL\",\"curl -f x\"]}");
    free(h);
    c = kiln_image_config_obj(cfg);
    s = json_dumps(json_object_get(c, "Env"), JSON_COMPACT);
    assert_string_equal(s, "[\"A=1\",\"B=two words\"]");
    free(s);
    assert_non_null(json_object_get(json_object_get(c, "ExposedPorts"), "8080/tcp"));
    assert_non_null(json_object_get(json_object_get(c, "ExposedPorts"), "53/udp"));
    s = json_dumps(json_object_get(c, "Cmd"), JSON_COMPACT);
    assert_string_equal(s, "[\"/bin/sh\",\"-c\",\"echo hi\"]");
    free(s);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(c, "Healthcheck"), "Interval")),
        90000000000LL);
    h = apply_all(cfg, "ENTRYPOINT [\"/init\"]\n");
    assert_string_equal(h, "ENTRYPOINT [\"/init\"]");
    assert_null(json_object_get(c, "Cmd")); /* ENTRYPOINT resets CMD */
    free(h);
    json_decref(cfg);
}

static void test_instructions_errors(void **state)
{
    json_t *cfg = kiln_image_config_new("amd64", "linux");
    kiln_dockerfile_t *df = parse_ok("FROM x\nEXPOSE 99999\nSHELL /bin/bash\n");
    kiln_error_t err = {0};
    char *h = NULL;
    assert_int_equal(kiln_df_apply_config(cfg, &df->nodes[1], expand_plain, NULL, &h, &err), -1);
    assert_non_null(strstr(err.msg, "Dockerfile:2:"));
    assert_int_equal(kiln_df_apply_config(cfg, &df->nodes[2], expand_plain, NULL, &h, &err), -1);
    assert_non_null(strstr(err.msg, "Dockerfile:3: SHELL requires the arguments to be in JSON"));
    assert_null(h);
    kiln_dockerfile_free(df);
    json_decref(cfg);
    {
        int64_t ns;
        assert_int_equal(kiln_df_parse_duration("1h2m3s", &ns), 0);
        assert_true(ns == 3723000000000LL);
        assert_int_equal(kiln_df_parse_duration("5x", &ns), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heredoc_basic),
        cmocka_unit_test(test_heredoc_quoted_chomp_multi),
        cmocka_unit_test(test_heredoc_not_in_json_or_other),
        cmocka_unit_test(test_heredoc_unterminated),
        cmocka_unit_test(test_errors_have_lines),
        cmocka_unit_test(test_directives),
        cmocka_unit_test(test_shell_pattern_ops),
        cmocka_unit_test(test_dockerignore),
        cmocka_unit_test(test_dockerignore_git),
        cmocka_unit_test(test_dockerignore_budget),
        cmocka_unit_test(test_instructions_config),
        cmocka_unit_test(test_instructions_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
