/* libFuzzer target for the AWS text parsers: ~/.aws INI files, s3:// URLs,
 * endpoint URLs, --output specs, ECR host names, the S3 naming policy, an STS AssumeRole answer
 * and the SigV4 canonicalisation of an arbitrary path + query (other XML answers:
 * fuzz_aws_xml.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/credentials.h"
#include "utils/aws/ecr.h"
#include "utils/aws/endpoint.h"
#include "utils/aws/s3.h"
#include "utils/aws/sigv4.h"
#include "utils/aws/sts.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const sections[] = {"default", "profile dev", "dev"};
    static const char *const keys[] = {"aws_access_key_id", "region", "x"};
    char *s = kiln_xstrndup((const char *)data, size);
    char *a = NULL, *b = NULL;
    kiln_aws_endpoint_t e = {0};
    kiln_aws_creds_t creds = {.access_key_id = (char *)"AKID", .secret_access_key = (char *)"S"};
    kiln_sigv4_header_t h[] = {{"host", "h"}, {"x-amz-date", "20150830T123600Z"}};
    kiln_sigv4_request_t req = {.method = "GET", .headers = h, .n_headers = 2};
    kiln_sigv4_scope_t scope = {.region = "r", .service = "s", .when = 0};
    kiln_sigv4_result_t res = {0};
    char *q;

    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++)
            free(kiln_aws_ini_get((const char *)data, size, sections[i], keys[j]));
    if (kiln_s3_parse_url(s, &a, &b, NULL) == 0) {
        free(a);
        free(b);
    }
    a = b = NULL;
    if (kiln_aws_endpoint_parse(s, &e, NULL) == 0)
        kiln_aws_endpoint_clear(&e);
    if (kiln_ecr_parse_host(s, &a, &b)) {
        free(a);
        free(b);
    }
    {
        kiln_s3_output_t o = {0};
        size_t n;
        if (kiln_s3_output_parse(s, &o, NULL) == 0)
            kiln_s3_output_clear(&o);
        (void)kiln_s3_parse_size(s, &n);
    }
    (void)kiln_s3_content_type(s);
    (void)kiln_s3_cache_control(s);
    {
        kiln_aws_creds_t sts = {0};
        if (kiln_aws_sts_parse((const char *)data, size, &sts, NULL) == 0)
            kiln_aws_creds_clear(&sts);
    }

    /* "/path?query" through both path rules */
    q = strchr(s, '?');
    if (q)
        *q++ = '\0';
    if (s[0] == '/') {
        req.path = s;
        req.query = q;
        for (int rules = 0; rules < 2; rules++) {
            scope.s3_rules = rules;
            if (kiln_sigv4_sign(&req, &scope, &creds, &res, NULL) == 0)
                kiln_sigv4_result_free(&res);
        }
    }
    free(s);
    return 0;
}
