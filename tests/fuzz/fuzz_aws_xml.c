/* libFuzzer target: AWS XML answers (utils/aws/xml.c, S3 list pages (utils/aws/s3_list.c), and the
 * error-body reader of utils/aws/client.c on top of it) must never crash, leak, hang or return a
 * field over its cap, whatever the document (entities, DOCTYPEs, namespaces, deep nesting, broken
 * UTF-8). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/client.h"
#include "utils/aws/s3_list.h"
#include "utils/aws/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_listed(void *ud, const kiln_s3_listed_t *o, kiln_error_t *err)
{
    (void)ud;
    (void)err;
    if (strlen(o->key) >= 2048)
        abort(); /* a key over the page reader's cap */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_aws_xml_field_t f[] = {
        {"Error/Code"},
        {"ErrorResponse/Error/Message"},
        {"ErrorResponse/Errors/Error/Code"},
        {"Response/Errors/Error/Message"},
        {"InitiateMultipartUploadResult/UploadId"},
        {"PublishResponse/PublishResult/MessageId"},
        {"R"},
    };
    size_t n = sizeof(f) / sizeof(f[0]);
    char *root = NULL;
    kiln_error_t err = {0};
    kiln_http_response_t resp = {.status = 400};

    /* not NUL-terminated: the parser must stay within size */
    if (kiln_aws_xml_parse((const char *)data, size, f, n, &root, "fuzz", &err) == 0) {
        if (root == NULL)
            abort();
        for (size_t i = 0; i < n; i++)
            if (f[i].value && strlen(f[i].value) > KILN_AWS_XML_MAX_TEXT)
                abort();
        kiln_aws_xml_fields_clear(f, n);
        free(root);
    } else {
        for (size_t i = 0; i < n; i++)
            if (f[i].value)
                abort(); /* nothing is written on failure */
    }

    {
        /* the same bytes as a ListObjectsV2 page (utils/aws/s3_list) */
        int truncated = 0;
        char *token = NULL;
        if (kiln_s3_list_parse((const char *)data, size, on_listed, NULL, &truncated, &token,
                               &err) < 0 &&
            token != NULL)
            abort(); /* nothing is written on failure */
        free(token);
    }
    /* the error-body reader wants a NUL after the body, as the HTTP client leaves one */
    resp.body = malloc(size + 1);
    if (resp.body == NULL)
        return 0;
    memcpy(resp.body, data, size);
    resp.body[size] = '\0';
    resp.body_len = size;
    kiln_aws_error_from_response(&resp, &err, "fuzz");
    free(resp.body);
    return 0;
}
