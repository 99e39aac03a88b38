#include "src/server/s3_context.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/server/sqs_jobs.h"
#include "utils/aws/s3.h"
#include "utils/aws/sigv4.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_s3_context_put(kiln_aws_t *aws, const char *tarball, const char *url, kiln_error_t *err)
{
    kiln_s3_stats_t st;
    kiln_s3_opts_t o = {.cache_control = "no-store"};
    return kiln_s3_upload_file(aws, tarball, url, &o, &st, err);
}

int kiln_s3_context_get(kiln_aws_t *aws, const char *url, const char *path, size_t cap,
                        kiln_error_t *err)
{
    _cleanup_free_ char *bucket = NULL, *key = NULL, *enc = NULL, *wire = NULL;
    _cleanup_free_ char *what = kiln_xasprintf("S3 GetObject %s", url);
    const char *force = getenv("KILN_S3_PATH_STYLE");
    kiln_aws_endpoint_t ep = {0};
    kiln_aws_call_t call = {0};
    kiln_http_response_t resp = {0};
    int path_style, ret = -1;

    if (kiln_s3_parse_url(url, &bucket, &key, err) < 0)
        return -1;
    if (key[0] == '\0')
        return kiln_error_set(err, 0, "%s: no object key", what);
    if (kiln_aws_endpoint_resolve("s3", aws->region, &ep, err) < 0)
        return -1;
    path_style = ep.custom || strchr(bucket, '.') != NULL;
    if (force && force[0])
        path_style = strcmp(force, "1") == 0;
    enc = kiln_sigv4_uri_encode(key, strlen(key), 1);
    if (path_style) {
        wire = kiln_xasprintf("/%s/%s", bucket, enc);
    } else {
        char *h = kiln_xasprintf("%s.%s", bucket, ep.host);
        free(ep.host);
        ep.host = h;
        wire = kiln_xasprintf("/%s", enc);
    }
    call.service = "s3";
    call.s3 = 1;
    call.endpoint = &ep;
    call.method = "GET";
    call.path = wire;
    call.body_fd = -1;
    call.response_cap = cap;
    if (kiln_server_aws_call(aws, &call, &resp, what, err) < 0)
        goto out;
    ret = kiln_fs_write_file_atomic(path, resp.body, resp.body_len, 0600, err);
out:
    kiln_http_response_free(&resp);
    kiln_aws_endpoint_clear(&ep);
    return ret;
}
