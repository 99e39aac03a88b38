/* kiln — the S3 static site exporter: type=s3 exports the image's filesystem to a private temp
 * directory and uploads it to s3://BUCKET/PREFIX (incremental, with a deploy manifest; see
 * utils/aws/s3.h for the options). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "export/exporters.h"
#include "utils/aws/client.h"
#include "utils/aws/s3.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* "s3://BUCKET[/KEY/PREFIX[/]]" split into the bucket and the key prefix without its trailing
 * '/' (both malloc'ed), or -1 naming what is malformed. The bucket follows S3's naming rules;
 * a key segment is printable ASCII without % \ ? # and never '.' or '..' (an HTTP client or
 * proxy may fold those, and '%' forms would decode into them). */
int kiln_export_s3_split(const char *url, char **bucket, char **key, kiln_error_t *err)
{
    const char *b, *slash, *k;
    size_t bn;

    if (strncmp(url, "s3://", 5) != 0)
        return kiln_error_set(err, 0, "'%s' is not an s3://BUCKET[/PREFIX] URL", url);
    b = url + 5;
    slash = strchr(b, '/');
    bn = slash ? (size_t)(slash - b) : strlen(b);
    if (bn < 3 || bn > 63)
        return kiln_error_set(err, 0, "'%s': the bucket name must be 3 to 63 characters", url);
    for (size_t i = 0; i < bn; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) ||
              ((b[i] == '-' || b[i] == '.') && i > 0 && i + 1 < bn && b[i - 1] != '.')))
            return kiln_error_set(err, 0, "'%s': '%.*s' is not a valid bucket name", url, (int)bn,
                                  b);
    k = slash ? slash + 1 : b + bn;
    if (*k != '\0') {
        for (const char *p = k;; p++) {
            size_t n = strcspn(p, "/");
            if (n == 0 && p[0] == '\0' && p > k)
                break; /* one trailing '/' */
            if (n == 0)
                return kiln_error_set(err, 0, "'%s' has an empty key segment ('//')", url);
            if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                return kiln_error_set(err, 0, "'%s' has a '%.*s' key segment", url, (int)n, p);
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f ||
                    strchr("%\\?#", p[i]))
                    return kiln_error_set(err, 0,
                                          "'%s': a key segment holds printable ASCII without "
                                          "spaces, %%, \\, ? or #",
                                          url);
            p += n;
            if (*p == '\0')
                break;
        }
    }
    *bucket = kiln_xstrndup(b, bn);
    *key = kiln_xstrdup(k);
    if (**key && (*key)[strlen(*key) - 1] == '/')
        (*key)[strlen(*key) - 1] = '\0';
    return 0;
}

/* The output as the S3 output parser reads it: its text when it was parsed from one, else
 * its options joined (a job's JSON options). */
static int parse_s3(const kiln_export_opts_t *o, kiln_s3_output_t *s3, kiln_error_t *err)
{
    _cleanup_free_ char *spec = NULL;
    kiln_buf_t b;

    if (o->spec)
        return kiln_s3_output_parse(o->spec, s3, err);
    kiln_buf_init(&b, 0);
    kiln_buf_appendf(&b, NULL, "type=s3");
    for (size_t k = 0; k < o->n; k++)
        kiln_buf_appendf(&b, NULL, ",%s=%s", o->kv[k].key, o->kv[k].value);
    spec = kiln_buf_steal(&b, NULL);
    return kiln_s3_output_parse(spec, s3, err);
}

static int s3_validate(const kiln_export_opts_t *o, kiln_error_t *err)
{
    const char *dest = kiln_export_opts_get(o, "dest");
    kiln_s3_output_t s3 = {0};
    int ret;

    if (dest == NULL)
        return kiln_error_set(err, 0, "type=s3 needs a dest");
    {
        _cleanup_free_ char *bucket = NULL, *key = NULL;
        if (kiln_export_s3_split(dest, &bucket, &key, err) < 0)
            return -1;
    }
    ret = parse_s3(o, &s3, err);
    kiln_s3_output_clear(&s3);
    return ret;
}

static int s3_run(kiln_export_ctx_t *ctx, const kiln_export_image_t *img,
                  const kiln_export_opts_t *o, kiln_error_t *err)
{
    kiln_s3_output_t s3 = {0};
    kiln_s3_stats_t stats = {0};
    _cleanup_free_ char *dir = NULL;
    kiln_aws_t *aws;
    int ret;

    if (parse_s3(o, &s3, err) < 0)
        return -1;
    ret = kiln_export_filesystem_tmp(img, ctx->tmp_dir, "s3-", &dir, err);
    if (ret == 0) {
        aws = kiln_aws_new(NULL);
        ret = kiln_s3_upload_dir(aws, dir, s3.dest, &s3.opts, &stats, err);
        kiln_aws_free(aws);
        kiln_export_report(ctx, &(kiln_export_result_t){.type = "s3",
                                                        .location = s3.dest,
                                                        .bytes = stats.bytes,
                                                        .files = stats.files,
                                                        .uploaded = stats.uploaded,
                                                        .unchanged = stats.skipped,
                                                        .failed = ret < 0});
    }
    if (dir)
        kiln_fs_rm_rf(dir, NULL);
    kiln_s3_output_clear(&s3);
    return ret;
}

static const char *const s3_keys[] = {
    "dest", "cache-control", "part-size", "multipart-threshold", "concurrency", "full", NULL};

const kiln_exporter_t kiln_exporter_s3 = {
    .name = "s3", .keys = s3_keys, .validate = s3_validate, .run = s3_run};
