/* Unit tests for utils/toml: documents and their JSON (tables, dotted keys, arrays of
 * tables, the four string kinds and their escapes, numbers, dates, inline tables, nested
 * arrays), and malformed documents with the line and reason of their error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utils/toml.h"

typedef struct {
    const char *toml, *json; /* json NULL: an error containing `error` */
    const char *error;
} case_t;

static const case_t cases[] = {
    {"", "{}", NULL},
    {"# only a comment\n\n  \n", "{}", NULL},
    {"a = 1\nb = \"x\"\n", "{\"a\":1,\"b\":\"x\"}", NULL},
    {"a=1", "{\"a\":1}", NULL},
    {"a = 1 # trailing\r\nb = 2\r\n", "{\"a\":1,\"b\":2}", NULL},
    {"\"quoted key\" = 1\n'lit.key' = 2\n", "{\"lit.key\":2,\"quoted key\":1}", NULL},
    {"a.b.c = 1\na.b.d = 2\n", "{\"a\":{\"b\":{\"c\":1,\"d\":2}}}", NULL},
    {"a . b = 1\n", "{\"a\":{\"b\":1}}", NULL},
    {"[project]\nname = \"svc\"\n[project.urls]\nhome = \"h\"\n",
     "{\"project\":{\"name\":\"svc\",\"urls\":{\"home\":\"h\"}}}", NULL},
    {"[a.b]\nx = 1\n[a]\ny = 2\n", "{\"a\":{\"b\":{\"x\":1},\"y\":2}}", NULL},
    {"[[package]]\nname = \"a\"\n[[package]]\nname = \"b\"\n[package.source]\nr = 1\n",
     "{\"package\":[{\"name\":\"a\"},{\"name\":\"b\",\"source\":{\"r\":1}}]}", NULL},
    {"[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n", "{\"a\":{\"b\":[{\"x\":1},{\"x\":2}]}}", NULL},
    {"s = \"tab\\there \\\"q\\\" \\\\ \\u00e9 \\U0001F600\"\n",
     "{\"s\":\"tab\\there \\\"q\\\" \\\\ \xc3\xa9 \xf0\x9f\x98\x80\"}", NULL},
    {"s = 'C:\\path\\no\\escape'\n", "{\"s\":\"C:\\\\path\\\\no\\\\escape\"}", NULL},
    {"s = \"\"\"\nline1\nline2\"\"\"\n", "{\"s\":\"line1\\nline2\"}", NULL},
    {"s = \"\"\"a \\\n    b\"\"\"\n", "{\"s\":\"a b\"}", NULL},
    {"s = \"\"\"two \"\"quotes\"\"\"\"\"\n", "{\"s\":\"two \\\"\\\"quotes\\\"\\\"\"}", NULL},
    {"s = '''\nraw \\n ''ok'''\n", "{\"s\":\"raw \\\\n ''ok\"}", NULL},
    {"i = [1, -2, +3, 1_000, 0x1f, 0o17, 0b101]\n", "{\"i\":[1,-2,3,1000,31,15,5]}", NULL},
    {"f = [1.5, -0.25, 1e3, 2.5E-1]\n", "{\"f\":[1.5,-0.25,1000.0,0.25]}", NULL},
    {"f = [inf, -inf, nan]\n", "{\"f\":[\"inf\",\"-inf\",\"nan\"]}", NULL},
    {"t = true\nf = false\n", "{\"f\":false,\"t\":true}", NULL},
    {"d = 1979-05-27T07:32:00Z\ne = 1979-05-27\nt = 07:32:00\nu = 1979-05-27 07:32:00.5+01:00\n",
     "{\"d\":\"1979-05-27T07:32:00Z\",\"e\":\"1979-05-27\",\"t\":\"07:32:00\",\"u\":\"1979-05-27 "
     "07:32:00.5+01:00\"}",
     NULL},
    {"a = [\n  1, # one\n  2,\n]\n", "{\"a\":[1,2]}", NULL},
    {"a = [[1, 2], [\"x\"], []]\n", "{\"a\":[[1,2],[\"x\"],[]]}", NULL},
    {"t = { name = \"x\", v.w = 1, e = {} }\n", "{\"t\":{\"e\":{},\"name\":\"x\",\"v\":{\"w\":1}}}",
     NULL},
    {"deps = [{ name = \"a\" }, { name = \"b\", marker = \"python_version < '3.12'\" }]\n",
     "{\"deps\":[{\"name\":\"a\"},{\"marker\":\"python_version < '3.12'\",\"name\":\"b\"}]}", NULL},
    {"\xef\xbb\xbf"
     "a = 1\n",
     "{\"a\":1}", NULL},
    /* errors, with the line */
    {"a = 1\na = 2\n", NULL, "t.toml line 2: key \"a\" is defined twice"},
    {"a = 1\na.b = 2\n", NULL, "line 2: key \"a\" already holds a value"},
    {"a = \n", NULL, "line 1: expected a value"},
    {"a = \"open\n", NULL, "line 1: control character in a string"},
    {"a = \"open", NULL, "line 1: unterminated string"},
    {"a = \"\\q\"\n", NULL, "unknown escape"},
    {"a = \"\\ud800\"\n", NULL, "no Unicode scalar value"},
    {"a = \"\xff\"\n", NULL, "not valid UTF-8"},
    {"a = 1 b = 2\n", NULL, "line 1: expected the end of the line"},
    {"[a\nx = 1\n", NULL, "expected ] after a table name"},
    {"[[a]\n", NULL, "expected ]] after a table name"},
    {"a = 1\n[a]\n", NULL, "table \"a\" already holds a value"},
    {"[a]\n[[a]]\n", NULL, "\"a\" is not an array of tables"},
    {"a = [1 2]\n", NULL, "expected , or ] in an array"},
    {"a = {x = 1\n", NULL, "expected , or } in an inline table"},
    {"a = 01\n", NULL, "leading zero"},
    {"a = 1__0\n", NULL, "misplaced _"},
    {"a = 99999999999999999999\n", NULL, "too large integer"},
    {"a = 1.\n", NULL, "malformed float"},
    {"a = -0x10\n", NULL, "cannot have a sign"},
    {"a = yes\n", NULL, "expected a value"},
    {"= 1\n", NULL, "expected a key"},
    {"a \"\"\"k\"\"\" = 1\n", NULL, "expected = after a key"},
    {"a = 1 # bad \x01 comment\n", NULL, "control character in a comment"},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = NULL;
        kiln_error_t err = {0};
        int r = kiln_toml_load("t.toml", cases[i].toml, strlen(cases[i].toml), &doc, &err);
        if (cases[i].json) {
            char *got;
            if (r != 0)
                fail_msg("case %zu (%s): %s", i, cases[i].toml, err.msg);
            got = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
            if (strcmp(got, cases[i].json) != 0)
                fail_msg("case %zu (%s): got %s want %s", i, cases[i].toml, got, cases[i].json);
            free(got);
            json_decref(doc);
        } else {
            if (r == 0)
                fail_msg("case %zu (%s) parsed", i, cases[i].toml);
            if (strstr(err.msg, cases[i].error) == NULL)
                fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err.msg, cases[i].error);
            assert_null(doc);
        }
    }
}

/* Nesting past the cap and oversized documents fail with their reason. */
static void test_limits(void **state)
{
    size_t n = KILN_TOML_DOC_DEPTH + 10;
    char *deep = malloc(4 + 2 * n + 2);
    json_t *doc = NULL;
    kiln_error_t err = {0};
    char *big;
    (void)state;

    strcpy(deep, "a = ");
    memset(deep + 4, '[', n);
    memset(deep + 4 + n, ']', n);
    deep[4 + 2 * n] = '\0';
    assert_int_equal(kiln_toml_load("d.toml", deep, strlen(deep), &doc, &err), -1);
    assert_non_null(strstr(err.msg, "nested too deep"));
    free(deep);

    big = calloc(1, KILN_TOML_DOC_MAX + 2);
    memset(big, '#', KILN_TOML_DOC_MAX + 1);
    assert_int_equal(kiln_toml_load("big.toml", big, KILN_TOML_DOC_MAX + 1, &doc, &err), -1);
    assert_non_null(strstr(err.msg, "big.toml: larger than"));
    free(big);
    assert_null(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
