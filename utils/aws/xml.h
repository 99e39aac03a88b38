/* kiln — fields of AWS XML answers (S3 REST, the SNS/SQS/STS query protocol), read with expat.
 *
 * A field is named by the path of its element from the root, '/'-separated, by local name
 * (namespaces ignored: S3 and SNS put every element in a default namespace):
 * "InitiateMultipartUploadResult/UploadId", "ErrorResponse/Error/Code". Its value is the
 * character data directly inside the first element at that path, entities decoded.
 *
 * An element that repeats (each <Contents> of a ListObjectsV2 page) is read as records: the
 * fields inside one are handed to a callback when it ends, then cleared for the next.
 *
 * Answers are hostile: a DOCTYPE (so any entity declaration, internal or external) is refused
 * before it is read, nothing is fetched, and depth, element count, input size and the length of
 * each wanted text are capped; a document over a cap is refused, never truncated. */
#ifndef KILN_UTILS_AWS_XML_H
#define KILN_UTILS_AWS_XML_H

#include <stddef.h>

#include "utils/error.h"
#include "utils/xmlread.h"

#define KILN_AWS_XML_MAX_INPUT (4u * 1024 * 1024)            /* bytes of one document */
#define KILN_AWS_XML_MAX_DEPTH KILN_XML_PATH_MAX_DEPTH       /* nesting of elements */
#define KILN_AWS_XML_MAX_ELEMENTS KILN_XML_PATH_MAX_ELEMENTS /* elements in one document */
#define KILN_AWS_XML_MAX_TEXT (64u * 1024)                   /* bytes of one wanted field's text */

typedef struct kiln_aws_xml_field {
    const char *path; /* in: "Root/Child/Leaf" */
    char *value;      /* out: text of the first element at path (malloc'ed), NULL if none */
    size_t max;       /* in: bytes of its text at most; 0: KILN_AWS_XML_MAX_TEXT */
} kiln_aws_xml_field_t;

/* A repeated element read as records. */
typedef struct kiln_aws_xml_records {
    const char *path;             /* the element that repeats: "ListBucketResult/Contents" */
    kiln_aws_xml_field_t *fields; /* read inside each one (whole paths: ".../Contents/Key") */
    size_t n;
    /* Called as each one ends, fields filled (values NULL when absent, owned by the reader);
     * < 0 stops the parse with its err. */
    int (*fn)(void *ud, const kiln_aws_xml_field_t *fields, kiln_error_t *err);
    void *ud;
} kiln_aws_xml_records_t;

/* Parses the XML document xml (len bytes; need not be NUL-terminated) and fills each field's
 * value. *root (when root is not NULL) gets the local name of the root element. Returns 0, or
 * -1 with err "<what>: answer is not valid XML (line L: ...)" or naming the cap or the DOCTYPE
 * that was refused; on -1 no value and no *root is set. Free values with
 * kiln_aws_xml_fields_clear(). */
int kiln_aws_xml_parse(const char *xml, size_t len, kiln_aws_xml_field_t *fields, size_t n,
                       char **root, const char *what, kiln_error_t *err);

/* kiln_aws_xml_parse that also reads the records of rec (NULL: none) as they end. Errors as
 * kiln_aws_xml_parse; an error of rec->fn comes back as "<what>: <its message>". */
int kiln_aws_xml_parse_records(const char *xml, size_t len, kiln_aws_xml_field_t *fields, size_t n,
                               const kiln_aws_xml_records_t *rec, char **root, const char *what,
                               kiln_error_t *err);

/* Frees and resets the values of n fields. */
void kiln_aws_xml_fields_clear(kiln_aws_xml_field_t *fields, size_t n);

/* The text of the element at path, malloc'ed. NULL with err set ("<what>: answer has no
 * <path>", or a parse error as above) when the document is bad or has no such element. */
char *kiln_aws_xml_text(const char *xml, size_t len, const char *path, const char *what,
                        kiln_error_t *err);

#endif
