/* Unit tests for export/options and export/: --output type=…,k=v parsing, the exporters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "export/export.h"
#include "src/cli_output.h"

static void test_parse(void **state)
{
    kiln_export_opts_t o;
    kiln_error_t err = {0};
    int b = -1;
    static const char *const allowed[] = {"dest", "tar", "name", NULL};

    assert_int_equal(kiln_export_opts_parse("type=oci,dest=/x/y,tar=true", &o, &err), 0);
    assert_string_equal(o.type, "oci");
    assert_int_equal(o.n, 2);
    assert_string_equal(kiln_export_opts_get(&o, "dest"), "/x/y");
    assert_null(kiln_export_opts_get(&o, "nope"));
    assert_int_equal(kiln_export_opts_get_bool(&o, "tar", 0, &b, &err), 0);
    assert_int_equal(b, 1);
    assert_int_equal(kiln_export_opts_get_bool(&o, "missing", 0, &b, &err), 0);
    assert_int_equal(b, 0);
    assert_int_equal(kiln_export_opts_check_keys(&o, allowed, &err), 0);
    kiln_export_opts_free(&o);

    /* quoting keeps commas; '=' in a value is kept */
    assert_int_equal(kiln_export_opts_parse("dest=\"a,b\",type=docker,name=x=y", &o, &err), 0);
    assert_string_equal(o.type, "docker");
    assert_string_equal(kiln_export_opts_get(&o, "dest"), "a,b");
    assert_string_equal(kiln_export_opts_get(&o, "name"), "x=y");
    assert_int_equal(kiln_export_opts_get_bool(&o, "name", 0, &b, &err), -1);
    kiln_export_opts_free(&o);

    assert_int_equal(kiln_export_opts_parse("type=oci,bogus=1", &o, &err), 0);
    assert_int_equal(kiln_export_opts_check_keys(&o, allowed, &err), -1);
    assert_non_null(strstr(err.msg, "bogus"));
    kiln_export_opts_free(&o);
}

static void test_parse_rejects(void **state)
{
    static const char *bad[] = {"",
                                "dest=x",
                                "type=",
                                "type=oci,dest",
                                "type=oci,=x",
                                "type=oci,type=docker",
                                "type=oci,dest=a,dest=b",
                                "type=oci,dest=\"open"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kiln_export_opts_t o = {0};
        kiln_error_t err = {0};
        if (kiln_export_opts_parse(bad[i], &o, &err) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(err.msg[0] != '\0');
        assert_null(o.type);
    }
}

static void test_root(void **state)
{
    char *r = NULL;
    kiln_error_t err = {0};
    assert_int_equal(kiln_cli_store_root("/some/dir", &r, &err), 0);
    assert_string_equal(r, "/some/dir");
    free(r);
    assert_int_equal(kiln_cli_store_root(NULL, &r, &err), 0);
    assert_non_null(r);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
