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

/* The bucket of an s3://BUCKET[/PREFIX] dest follows S3's naming rules (3 to 63 lower-case
 * letters, digits, '-' and '.', starting and ending with a letter or digit). */
static int check_s3_bucket(const char *url, kiln_error_t *err)
{
    const char *b = url + 5;
    size_t n;

    if (strncmp(url, "s3://", 5) != 0)
        return kiln_error_set(err, 0, "'%s' is not an s3://BUCKET[/PREFIX] URL", url);
    n = strcspn(b, "/");
    if (n < 3 || n > 63)
        return kiln_error_set(err, 0, "'%s': the bucket name must be 3 to 63 characters", url);
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) ||
              ((b[i] == '-' || b[i] == '.') && i > 0 && i + 1 < n)))
            return kiln_error_set(err, 0, "'%s': '%.*s' is not a valid bucket name", url, (int)n,
                                  b);
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
    if (check_s3_bucket(dest, err) < 0)
        return -1;
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
