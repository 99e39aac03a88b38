/* Unit tests for utils/xmlpath: the element path an expat reader matches fields against
 * (local names, the caps, a path too long for the buffer matching nothing until it ends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utils/xmlpath.h"

static void test_push_pop(void **state)
{
    kiln_xml_path_t p = {0};
    (void)state;
    assert_string_equal(kiln_xml_local_name("http://maven.apache.org/POM/4.0.0|project"),
                        "project");
    assert_string_equal(kiln_xml_local_name("Error"), "Error");
    assert_int_equal(kiln_xml_path_push(&p, "urn:x|project"), 0);
    assert_int_equal(kiln_xml_path_push(&p, "urn:x|build"), 0);
    assert_int_equal(kiln_xml_path_push(&p, "finalName"), 0);
    assert_string_equal(p.path, "project/build/finalName");
    kiln_xml_path_pop(&p);
    assert_string_equal(p.path, "project/build");
    kiln_xml_path_pop(&p);
    kiln_xml_path_pop(&p);
    assert_string_equal(p.path, "");
    kiln_xml_path_pop(&p); /* at the root: nothing */
    assert_int_equal(p.depth, 0);
}

/* A name too long for the buffer marks the path overflowed for its element and those inside
 * it; ending it makes the path whole again. */
static void test_overflow(void **state)
{
    kiln_xml_path_t p = {0};
    char longname[KILN_XML_PATH_CAP];
    (void)state;
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(kiln_xml_path_push(&p, "root"), 0);
    assert_int_equal(kiln_xml_path_push(&p, longname), 0);
    assert_false(kiln_xml_path_valid(&p));
    assert_int_equal(kiln_xml_path_push(&p, "child"), 0);
    assert_false(kiln_xml_path_valid(&p));
    kiln_xml_path_pop(&p);
    kiln_xml_path_pop(&p);
    assert_true(kiln_xml_path_valid(&p));
    assert_int_equal(kiln_xml_path_push(&p, "next"), 0);
    assert_string_equal(p.path, "root/next");
}

static void test_caps(void **state)
{
    kiln_xml_path_t p = {0};
    (void)state;
    for (int i = 0; i < KILN_XML_PATH_MAX_DEPTH; i++)
        assert_int_equal(kiln_xml_path_push(&p, "d"), 0);
    assert_int_equal(kiln_xml_path_push(&p, "d"), KILN_XML_PATH_TOO_DEEP);
    assert_int_equal(p.depth, KILN_XML_PATH_MAX_DEPTH);
    memset(&p, 0, sizeof(p));
    for (int i = 0; i < KILN_XML_PATH_MAX_ELEMENTS; i++) {
        assert_int_equal(kiln_xml_path_push(&p, "e"), 0);
        kiln_xml_path_pop(&p);
    }
    assert_int_equal(kiln_xml_path_push(&p, "e"), KILN_XML_PATH_TOO_MANY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_pop),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
