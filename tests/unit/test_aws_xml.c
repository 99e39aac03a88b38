/* Unit tests for utils/aws/xml: fields of real-shaped AWS answers (S3 multipart, S3 errors, SNS
 * Publish and its errors) and hostile documents (DOCTYPE, entity expansion, external entities,
 * deep nesting, huge text, many elements, broken XML). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utils/aws/s3_list.h"
#include "utils/aws/xml.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Text at path of the NUL-terminated doc; NULL on error (then err is set). */
static char *text_of(const char *doc, const char *path, kiln_error_t *err)
{
    kiln_error_clear(err);
    return kiln_aws_xml_text(doc, strlen(doc), path, "test", err);
}

static void test_s3_multipart(void **state)
{
    const char *init =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>site</Bucket><Key>assets/app.js</Key>"
        "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
        "</InitiateMultipartUploadResult>";
    const char *done = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<CompleteMultipartUploadResult "
                       "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
                       "  <Location>http://site.s3.amazonaws.com/app.js</Location>\n"
                       "  <Bucket>site</Bucket><Key>app.js</Key>\n"
                       "  <ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>\n"
                       "</CompleteMultipartUploadResult>";
    kiln_error_t err = {0};
    _cleanup_free_ char *id = text_of(init, "InitiateMultipartUploadResult/UploadId", &err);
    _cleanup_free_ char *root = NULL;
    kiln_aws_xml_field_t f[2] = {{"CompleteMultipartUploadResult/ETag"},
                                 {"CompleteMultipartUploadResult/Missing"}};

    assert_string_equal(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
    assert_int_equal(kiln_aws_xml_parse(done, strlen(done), f, 2, &root, "t", &err), 0);
    assert_string_equal(root, "CompleteMultipartUploadResult");
    assert_string_equal(f[0].value, "\"3858f62230ac3c915f300c664312c11f-9\"");
    assert_null(f[1].value);
    kiln_aws_xml_fields_clear(f, 2);
    assert_null(f[0].value);

    /* the path is from the root: an UploadId elsewhere is not the answer's */
    assert_null(text_of("<Other><UploadId>x</UploadId></Other>",
                        "InitiateMultipartUploadResult/UploadId", &err));
    assert_string_equal(err.msg, "test: answer has no InitiateMultipartUploadResult/UploadId");
    assert_int_equal(err.code, EPROTO);
    assert_null(text_of("<InitiateMultipartUploadResult><X><UploadId>x</UploadId></X>"
                        "</InitiateMultipartUploadResult>",
                        "InitiateMultipartUploadResult/UploadId", &err));
}

static void test_first_match_and_text(void **state)
{
    kiln_error_t err = {0};
    /* the first element wins; text is only the element's own, entities and CDATA decoded */
    _cleanup_free_ char *a = text_of("<R><V>one</V><V>two</V></R>", "R/V", &err);
    _cleanup_free_ char *b =
        text_of("<R><V>a<i>not this</i>b&#x41;&#66;<![CDATA[<c>&amp;]]></V></R>", "R/V", &err);
    _cleanup_free_ char *c = text_of("<R><V/></R>", "R/V", &err);
    _cleanup_free_ char *d = text_of("<p:R xmlns:p=\"urn:x:y\"><p:V>ns</p:V></p:R>", "R/V", &err);
    _cleanup_free_ char *e = text_of("<R>\xc3\xa9t\xc3\xa9</R>", "R", &err);
    assert_string_equal(a, "one");
    assert_string_equal(b, "abAB<c>&amp;");
    assert_string_equal(c, "");
    assert_string_equal(d, "ns");
    assert_string_equal(e, "\xc3\xa9t\xc3\xa9");
}

static void test_sns(void **state)
{
    const char *ok = "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\n"
                     "  <PublishResult>\n"
                     "    <MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId>\n"
                     "  </PublishResult>\n"
                     "  <ResponseMetadata>\n"
                     "    <RequestId>d74b8436-ae13-5ab4-a9ff-ce54dfea72a0</RequestId>\n"
                     "  </ResponseMetadata>\n"
                     "</PublishResponse>";
    kiln_error_t err = {0};
    _cleanup_free_ char *mid = text_of(ok, "PublishResponse/PublishResult/MessageId", &err);
    assert_string_equal(mid, "567910cd-659e-55d4-8ccb-5aaf14679dc0");
    assert_null(text_of("<PublishResponse><ResponseMetadata><MessageId>decoy</MessageId>"
                        "</ResponseMetadata></PublishResponse>",
                        "PublishResponse/PublishResult/MessageId", &err));
}

/* Parses doc and expects -1 with an error message containing want. */
static void refused(const char *doc, size_t len, const char *want)
{
    kiln_error_t err = {0};
    char *root = (char *)"unset";
    kiln_aws_xml_field_t f[1] = {{"Error/Code"}};
    assert_int_equal(kiln_aws_xml_parse(doc, len, f, 1, &root, "S3 GET", &err), -1);
    assert_null(f[0].value);
    assert_string_equal(root, "unset"); /* nothing written on failure */
    if (strstr(err.msg, want) == NULL)
        fail_msg("error '%s' does not contain '%s'", err.msg, want);
    assert_true(strncmp(err.msg, "S3 GET: ", 8) == 0);
}

/* open + n 'A's + close, malloc'ed. */
static char *big_doc(const char *open, size_t n, const char *close, size_t *len)
{
    kiln_buf_t b;
    char *a = kiln_xzalloc(n + 1);
    memset(a, 'A', n);
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "%s%s%s", open, a, close);
    free(a);
    return kiln_buf_steal(&b, len);
}

/* refused() of a string literal (NUL bytes in it included). */
#define refused_lit(lit, want) refused(lit, sizeof(lit) - 1, want)

static void test_hostile(void **state)
{
    static const char laughs[] =
        "<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY a \"aaaaaaaaaa\">"
        "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c "
        "\"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
        "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e "
        "\"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
        "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g "
        "\"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"
        "]><Error><Code>&g;</Code></Error>";
    static const char xxe[] = "<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY x SYSTEM "
                              "\"file:///etc/passwd\">]><Error><Code>&x;</Code></Error>";
    static const char ext_dtd[] =
        "<!DOCTYPE Error SYSTEM \"http://127.0.0.1:1/evil.dtd\"><Error><Code>x</Code></Error>";
    static const char undefined[] = "<Error><Code>&x;</Code></Error>";
    static const char nul[] = "<Error><Code>a\0b</Code></Error>";
    kiln_buf_t b;
    char *doc;
    size_t len;

    refused_lit(laughs, "answer has a DOCTYPE (refused)");
    refused_lit(xxe, "answer has a DOCTYPE (refused)");
    refused_lit(ext_dtd, "answer has a DOCTYPE (refused)");
    refused_lit(undefined, "undefined entity");
    refused_lit(nul, "not valid XML");
    refused_lit("<Error><Code>x</Error>", "mismatched tag");
    refused_lit("<Error><Code>x</Code>", "not valid XML (line 1");
    refused_lit("", "no element found");
    refused_lit("<Error/><Error/>", "junk after document element");
    refused_lit("<a:Error><Code/></a:Error>", "unbound prefix");
    refused_lit("<Error>\xff\xfe</Error>", "not valid XML");
    /* a namespace URI holding the separator expat reports names with */
    refused_lit("<p:Error xmlns:p=\"urn:a|Error\"/>", "not valid XML");

    /* deeper than the cap */
    kiln_buf_init(&b, 0);
    for (int i = 0; i < KILN_AWS_XML_MAX_DEPTH + 1; i++)
        kiln_buf_append(&b, "<d>", 3, NULL);
    for (int i = 0; i < KILN_AWS_XML_MAX_DEPTH + 1; i++)
        kiln_buf_append(&b, "</d>", 4, NULL);
    doc = kiln_buf_steal(&b, &len);
    refused(doc, len, "answer nests elements deeper than 32");
    free(doc);

    /* more elements than the cap (flat) */
    kiln_buf_init(&b, 0);
    kiln_buf_append(&b, "<Error>", 7, NULL);
    for (int i = 0; i < KILN_AWS_XML_MAX_ELEMENTS; i++)
        kiln_buf_append(&b, "<x/>", 4, NULL);
    kiln_buf_append(&b, "</Error>", 8, NULL);
    doc = kiln_buf_steal(&b, &len);
    refused(doc, len, "answer has more than 100000 elements");
    free(doc);

    /* a wanted field's text over the cap is refused, not cut; the same text in a field nobody
     * asked for is skipped */
    doc = big_doc("<Error><Code>", KILN_AWS_XML_MAX_TEXT + 1, "</Code></Error>", &len);
    refused(doc, len, "answer field Error/Code is over 65536 bytes");
    free(doc);
    doc =
        big_doc("<Error><Junk>", KILN_AWS_XML_MAX_TEXT + 1, "</Junk><Code>c</Code></Error>", &len);
    {
        kiln_error_t err = {0};
        kiln_aws_xml_field_t f[1] = {{"Error/Code"}};
        assert_int_equal(kiln_aws_xml_parse(doc, len, f, 1, NULL, "t", &err), 0);
        assert_string_equal(f[0].value, "c");
        kiln_aws_xml_fields_clear(f, 1);
    }
    free(doc);

    /* whole input over the cap */
    doc = kiln_xzalloc(KILN_AWS_XML_MAX_INPUT + 2);
    memset(doc, ' ', KILN_AWS_XML_MAX_INPUT + 1);
    refused(doc, KILN_AWS_XML_MAX_INPUT + 1, "answer over 4194304 bytes");
    free(doc);
}

static void test_not_terminated(void **state)
{
    /* len bounds the document: bytes after it are not read */
    const char buf[] = "<R><V>in</V></R>GARBAGE";
    kiln_error_t err = {0};
    _cleanup_free_ char *v = kiln_aws_xml_text(buf, 16, "R/V", "t", &err);
    assert_string_equal(v, "in");
    assert_null(kiln_aws_xml_text(NULL, 0, "R/V", "t", &err));
    assert_non_null(strstr(err.msg, "no element found"));
}

typedef struct listed {
    char keys[4][64];
    uint64_t sizes[4];
    time_t times[4];
    size_t n;
} listed_t;

static int on_obj(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err)
{
    listed_t *l = ud;
    (void)err;
    if (l->n == 4)
        return -1;
    snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", o->key);
    l->sizes[l->n] = o->size;
    l->times[l->n++] = o->last_modified;
    return 0;
}

/* ListObjectsV2 pages: every Contents element (key, size, time), the continuation token of a
 * truncated page, and hostile pages refused whole. */
static void test_s3_list(void **state)
{
    const char *page =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
        "<Contents><Key>p/blobs/sha256/aa</Key><LastModified>2026-12-03T16:20:00.000Z"
        "</LastModified><ETag>&quot;x&quot;</ETag><Size>12</Size></Contents>"
        "<Contents><Key>p/a&amp;b</Key><Size>0</Size></Contents>"
        "<NextContinuationToken>tok/+=</NextContinuationToken></ListBucketResult>";
    listed_t l = {0};
    int truncated = 0;
    char *token = NULL;
    kiln_error_t err = {0};
    (void)state;
    assert_int_equal(kiln_s3_list_parse(page, strlen(page), on_obj, &l, &truncated, &token, &err),
                     0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.keys[0], "p/blobs/sha256/aa");
    assert_int_equal(l.sizes[0], 12);
    assert_int_equal(l.times[0], 1796314800); /* 2026-12-03T16:20:00Z */
    assert_string_equal(l.keys[1], "p/a&b");
    assert_int_equal(l.times[1], 0); /* no time: the collector keeps such a blob */
    assert_int_equal(truncated, 1);
    assert_string_equal(token, "tok/+=");
    free(token);

    const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    memset(&l, 0, sizeof(l));
    assert_int_equal(kiln_s3_list_parse(last, strlen(last), on_obj, &l, &truncated, &token, &err),
                     0);
    assert_int_equal(l.n, 0);
    assert_int_equal(truncated, 0);
    assert_null(token);

    const char *bad[] = {
        "<Error><Code>AccessDenied</Code></Error>",
        "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>x1</Size></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><ListBucketResult></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&l, 0, sizeof(l));
        kiln_error_clear(&err);
        assert_int_equal(
            kiln_s3_list_parse(bad[i], strlen(bad[i]), on_obj, &l, &truncated, &token, &err), -1);
        assert_null(token);
        assert_true(err.msg[0] != '\0');
    }
    /* a key over the cap is refused, never cut */
    {
        kiln_buf_t b;
        kiln_buf_init(&b, 0);
        kiln_buf_appendf(&b, NULL, "<ListBucketResult><Contents><Key>");
        for (int i = 0; i < 3000; i++)
            kiln_buf_append(&b, "k", 1, NULL);
        kiln_buf_appendf(&b, NULL, "</Key><Size>1</Size></Contents></ListBucketResult>");
        memset(&l, 0, sizeof(l));
        assert_int_equal(kiln_s3_list_parse(b.data, b.len, on_obj, &l, &truncated, &token, &err),
                         -1);
        assert_int_equal(l.n, 0);
        kiln_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_multipart),
        cmocka_unit_test(test_first_match_and_text),
        cmocka_unit_test(test_sns),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_not_terminated),
        cmocka_unit_test(test_s3_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
