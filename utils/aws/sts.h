/* kiln — STS AssumeRole: temporary credentials for a role, obtained with other credentials
 * (the server's own, or a tenant's credentials file). The call is the query protocol:
 * POST / (form body Action=AssumeRole&Version=2011-06-15&RoleArn=…), signed with SigV4 for
 * service "sts"; the answer is XML (AssumeRoleResult/Credentials). Secrets never appear in
 * error messages. */
#ifndef KILN_UTILS_AWS_STS_H
#define KILN_UTILS_AWS_STS_H

#include <stddef.h>

#include "utils/aws/client.h"
#include "utils/aws/sigv4.h"
#include "utils/error.h"

/* Largest AssumeRole answer read. */
#define KILN_STS_RESPONSE_CAP (64 * 1024)

typedef struct kiln_aws_sts_assume {
    const char *role_arn;     /* arn:aws:iam::ACCOUNT:role/NAME */
    const char *session_name; /* NULL: "kiln" */
    const char *external_id;  /* NULL: none */
    unsigned duration_s;      /* 0: 3600 */
    const char *region;       /* signing region and regional endpoint; NULL: aws->region */
    const char *endpoint;     /* URL; NULL: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else
                                 https://sts.REGION.amazonaws.com */
} kiln_aws_sts_assume_t;

/* The form body of the AssumeRole call (malloc'ed; values percent-encoded). */
char *kiln_aws_sts_assume_body(const kiln_aws_sts_assume_t *a);

/* Reads the credentials of an AssumeRole answer (AccessKeyId, SecretAccessKey, SessionToken,
 * Expiration) into *out. Returns -1 (err names the missing element, never a value) when
 * the answer lacks one. */
int kiln_aws_sts_parse(const char *xml, size_t len, kiln_aws_creds_t *out, kiln_error_t *err);

/* Assumes role a->role_arn signing with aws's credentials. Fills *out (caller clears it);
 * returns -1 with err "sts AssumeRole ROLE: …" (STS's code and message) on failure. */
int kiln_aws_sts_assume_role(kiln_aws_t *aws, const kiln_aws_sts_assume_t *a, kiln_aws_creds_t *out,
                             kiln_error_t *err);

#endif
