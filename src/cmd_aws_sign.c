/* kiln aws-sign — (hidden, for tests) signs one request with SigV4 at a fixed
 * time and prints what kiln would send, so that it can be compared with
 * another implementation (botocore):
 *
 *   kiln aws-sign --method PUT --url URL [--header 'Name: value']... \
 *       [--body FILE | --unsigned-payload] [--service s3] [--region R] \
 *       [--time 20130524T000000Z] [--presign SECONDS]
 *
 * Prints "Authorization: ..." and the x-amz-* headers, or the presigned URL.
 * Credentials come from the usual chain. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/commands.h"
#include "utils/aws/credentials.h"
#include "utils/aws/sigv4.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define MAX_HEADERS 32
#define BODY_CAP (64u * 1024 * 1024)

int kiln_cmd_aws_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"method", required_argument, NULL, 'm'},
        {"url", required_argument, NULL, 'u'},
        {"header", required_argument, NULL, 'H'},
        {"body", required_argument, NULL, 'b'},
        {"unsigned-payload", no_argument, NULL, 'U'},
        {"service", required_argument, NULL, 's'},
        {"region", required_argument, NULL, 'r'},
        {"time", required_argument, NULL, 't'},
        {"presign", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *method = "GET", *url = NULL, *body_path = NULL, *service = "s3";
    const char *region = "us-east-1", *when_s = NULL;
    const char *hdr_lines[MAX_HEADERS];
    size_t nhdr = 0;
    int unsigned_payload = 0, c, ret = KILN_EXIT_FAIL;
    long presign = -1;
    kiln_sigv4_header_t h[MAX_HEADERS + 4];
    char *names[MAX_HEADERS] = {0};
    size_t nh = 0;
    _cleanup_free_ char *host = NULL;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *query = NULL;
    _cleanup_free_ char *body = NULL;
    size_t body_len = 0;
    char amzdate[17], payload[65];
    time_t when = time(NULL);
    kiln_aws_creds_t creds = {0};
    kiln_sigv4_request_t req = {0};
    kiln_sigv4_scope_t scope = {0};
    kiln_error_t err = {0};
    const char *p, *slash, *q;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            method = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'H':
            if (nhdr == MAX_HEADERS || strchr(optarg, ':') == NULL)
                return kiln_cli_usage_error("aws-sign", "bad --header '%s'", optarg);
            hdr_lines[nhdr++] = optarg;
            break;
        case 'b':
            body_path = optarg;
            break;
        case 'U':
            unsigned_payload = 1;
            break;
        case 's':
            service = optarg;
            break;
        case 'r':
            region = optarg;
            break;
        case 't':
            when_s = optarg;
            break;
        case 'p': {
            char *end = NULL;
            presign = strtol(optarg, &end, 10);
            if (end == optarg || *end || presign < 1 || presign > 604800)
                return kiln_cli_usage_error("aws-sign", "bad --presign '%s'", optarg);
            break;
        }
        case 'h':
            printf("Usage: kiln aws-sign --method M --url URL [--header 'N: v']... [--body FILE | "
                   "--unsigned-payload] [--service S] [--region R] [--time T] [--presign SECS]\n");
            return KILN_EXIT_OK;
        default:
            return KILN_EXIT_USAGE;
        }
    }
    if (url == NULL || (p = strstr(url, "://")) == NULL)
        return kiln_cli_usage_error("aws-sign", "--url scheme://host/path is required");
    if (when_s) {
        struct tm tm = {0};
        const char *end = strptime(when_s, "%Y%m%dT%H%M%SZ", &tm);
        if (end == NULL || *end)
            return kiln_cli_usage_error("aws-sign", "bad --time '%s'", when_s);
        when = timegm(&tm);
    }
    p += 3;
    slash = strchr(p, '/');
    q = strchr(p, '?');
    if (slash == NULL || (q && q < slash))
        return kiln_cli_usage_error("aws-sign", "--url needs a path");
    host = kiln_xstrndup(p, (size_t)(slash - p));
    path = q ? kiln_xstrndup(slash, (size_t)(q - slash)) : kiln_xstrdup(slash);
    query = q ? kiln_xstrdup(q + 1) : NULL;
    if (body_path && kiln_fs_read_file(body_path, BODY_CAP, &body, &body_len, &err) < 0)
        return kiln_cli_fail(&err);
    if (kiln_aws_credentials_resolve(&creds, &err) < 0)
        return kiln_cli_fail(&err);

    kiln_sigv4_amz_date(when, amzdate);
    if (unsigned_payload)
        snprintf(payload, sizeof(payload), "%s", KILN_SIGV4_UNSIGNED_PAYLOAD);
    else
        kiln_sigv4_sha256_hex(body ? body : "", body_len, payload);
    h[nh++] = (kiln_sigv4_header_t){"host", host};
    if (presign < 0) {
        h[nh++] = (kiln_sigv4_header_t){"x-amz-date", amzdate};
        if (creds.session_token)
            h[nh++] = (kiln_sigv4_header_t){"x-amz-security-token", creds.session_token};
        if (strcmp(service, "s3") == 0)
            h[nh++] = (kiln_sigv4_header_t){"x-amz-content-sha256", payload};
    }
    for (size_t i = 0; i < nhdr; i++) {
        const char *colon = strchr(hdr_lines[i], ':');
        names[i] = kiln_xstrndup(hdr_lines[i], (size_t)(colon - hdr_lines[i]));
        h[nh++] = (kiln_sigv4_header_t){names[i], colon + 1};
    }
    req.method = method;
    req.path = path;
    req.query = query;
    req.headers = h;
    req.n_headers = nh;
    req.payload_hash = presign < 0 ? payload : NULL;
    scope.region = region;
    scope.service = service;
    scope.when = when;
    scope.s3_rules = strcmp(service, "s3") == 0;
    if (presign >= 0) {
        _cleanup_free_ char *pq = NULL;
        if (kiln_sigv4_presign(&req, &scope, &creds, (unsigned)presign, &pq, &err) < 0)
            goto out;
        printf("%.*s%s%s?%s\n", (int)(p - url), url, host, path, pq);
    } else {
        kiln_sigv4_result_t res = {0};
        if (kiln_sigv4_sign(&req, &scope, &creds, &res, &err) < 0)
            goto out;
        printf("Authorization: %s\n", res.authorization);
        printf("X-Amz-Date: %s\n", amzdate);
        if (scope.s3_rules)
            printf("X-Amz-Content-SHA256: %s\n", payload);
        kiln_sigv4_result_free(&res);
    }
    ret = KILN_EXIT_OK;
out:
    for (size_t i = 0; i < nhdr; i++)
        free(names[i]);
    kiln_aws_creds_clear(&creds);
    if (ret != KILN_EXIT_OK)
        return kiln_cli_fail(&err);
    return ret;
}
