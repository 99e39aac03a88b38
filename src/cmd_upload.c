/* kiln upload — uploads a directory (static site) or a file (function zip)
 * to S3: `kiln upload PATH --output type=s3,dest=s3://bucket/prefix`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/commands.h"
#include "utils/aws/s3.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln upload PATH --output type=s3,dest=s3://BUCKET/PREFIX [options]\n\n"
            "Uploads a directory (incrementally, with a deploy manifest) or one file to S3.\n\n"
            "  --output SPEC            type=s3,dest=s3://bucket/prefix[,cache-control=V]\n"
            "                           [,part-size=N][,multipart-threshold=N][,concurrency=N]\n"
            "  --cache-control VALUE    Cache-Control for every object (default: by name)\n"
            "  --full                   upload every file, even unchanged ones\n"
            "  --part-size BYTES        multipart part size (default 8 MiB, min 5 MiB)\n"
            "  --multipart-threshold BYTES  files this big use multipart (default 8 MiB)\n"
            "  --concurrency N          parallel requests (default 16 files / 8 parts)\n"
            "  --region REGION          AWS region (default: AWS_REGION, config)\n");
}

int kiln_cmd_upload(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"cache-control", required_argument, NULL, 'c'},
        {"full", no_argument, NULL, 'f'},
        {"part-size", required_argument, NULL, 'p'},
        {"multipart-threshold", required_argument, NULL, 't'},
        {"concurrency", required_argument, NULL, 'j'},
        {"region", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kiln_s3_output_t out = {0};
    kiln_s3_opts_t o = {0};
    kiln_s3_stats_t stats = {0};
    kiln_error_t err = {0};
    const char *cache_control = NULL;
    int have_output = 0, full = 0;
    const char *region = NULL;
    kiln_aws_t *aws;
    struct stat st;
    int c, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:j:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            kiln_s3_output_clear(&out);
            if (kiln_s3_output_parse(optarg, &out, &err) < 0)
                return kiln_cli_usage_error("upload", "%s", err.msg);
            have_output = 1;
            break;
        case 'c':
            cache_control = optarg;
            break;
        case 'f':
            full = 1;
            break;
        case 'p':
            if (kiln_s3_parse_size(optarg, &o.part_size) < 0)
                return kiln_cli_usage_error("upload", "bad --part-size '%s'", optarg);
            break;
        case 't':
            if (kiln_s3_parse_size(optarg, &o.multipart_threshold) < 0)
                return kiln_cli_usage_error("upload", "bad --multipart-threshold '%s'", optarg);
            break;
        case 'j': {
            size_t n = 0;
            if (kiln_s3_parse_size(optarg, &n) < 0 || n == 0 || n > 64)
                return kiln_cli_usage_error("upload", "bad --concurrency '%s' (1-64)", optarg);
            o.concurrency = (unsigned)n;
            break;
        }
        case 'r':
            region = optarg;
            break;
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            return KILN_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        kiln_s3_output_clear(&out);
        return kiln_cli_usage_error("upload", "expected exactly one PATH");
    }
    if (!have_output)
        return kiln_cli_usage_error("upload", "--output type=s3,dest=s3://... is required");
    /* flags win over the same settings in the --output spec */
    o.cache_control = cache_control ? cache_control : out.opts.cache_control;
    o.full = full || out.opts.full;
    if (o.part_size == 0)
        o.part_size = out.opts.part_size;
    if (o.multipart_threshold == 0)
        o.multipart_threshold = out.opts.multipart_threshold;
    if (o.concurrency == 0)
        o.concurrency = out.opts.concurrency;
    if (stat(argv[optind], &st) < 0) {
        kiln_error_set(&err, errno, "%s", argv[optind]);
        kiln_s3_output_clear(&out);
        return kiln_cli_fail(&err);
    }
    aws = kiln_aws_new(region);
    if (S_ISDIR(st.st_mode))
        ret = kiln_s3_upload_dir(aws, argv[optind], out.dest, &o, &stats, &err);
    else
        ret = kiln_s3_upload_file(aws, argv[optind], out.dest, &o, &stats, &err);
    kiln_aws_free(aws);
    kiln_s3_output_clear(&out);
    printf("files %zu, uploaded %zu (multipart %zu), unchanged %zu, %llu bytes\n", stats.files,
           stats.uploaded, stats.multipart, stats.skipped, stats.bytes);
    if (ret < 0)
        return kiln_cli_fail(&err);
    return KILN_EXIT_OK;
}
