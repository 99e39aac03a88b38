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
            "  --output SPEC            type=s3,dest=s3://bucket/prefix\n"
            "  --cache-control VALUE    Cache-Control for every object (default: by name)\n"
            "  --full                   upload every file, even unchanged ones\n"
            "  --part-size BYTES        multipart part size (default 8 MiB, min 5 MiB)\n"
            "  --multipart-threshold BYTES  files this big use multipart (default 8 MiB)\n"
            "  --concurrency N          parallel requests (default 16 files / 8 parts)\n"
            "  --region REGION          AWS region (default: AWS_REGION, config)\n");
}

/* Reads a size with an optional K/M/G suffix (powers of 1024). */
static int parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    unsigned long long v;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
    else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
    else if (*end == 'G' || *end == 'g')
        v <<= 30, end++;
    if (*end == 'i' && end[-1] != '\0')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0')
        return -1;
    *out = (size_t)v;
    return 0;
}

/* Extracts dest=... from "type=s3,dest=s3://..."; NULL if not an s3 output. */
static char *output_dest(const char *spec)
{
    _cleanup_free_ char *copy = kiln_xstrdup(spec);
    char *save = NULL, *tok;
    char *dest = NULL;
    int is_s3 = 0;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "type=s3") == 0)
            is_s3 = 1;
        else if (strncmp(tok, "dest=", 5) == 0) {
            free(dest);
            dest = kiln_xstrdup(tok + 5);
        }
    }
    if (!is_s3) {
        free(dest);
        return NULL;
    }
    return dest;
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
    kiln_s3_opts_t o = {0};
    kiln_s3_stats_t stats = {0};
    kiln_error_t err = {0};
    _cleanup_free_ char *dest = NULL;
    const char *region = NULL;
    kiln_aws_t *aws;
    struct stat st;
    int c, ret;

    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:j:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            free(dest);
            dest = output_dest(optarg);
            if (dest == NULL)
                return kiln_cli_usage_error("upload", "--output '%s' is not type=s3,dest=...",
                                            optarg);
            break;
        case 'c':
            o.cache_control = optarg;
            break;
        case 'f':
            o.full = 1;
            break;
        case 'p':
            if (parse_size(optarg, &o.part_size) < 0)
                return kiln_cli_usage_error("upload", "bad --part-size '%s'", optarg);
            break;
        case 't':
            if (parse_size(optarg, &o.multipart_threshold) < 0)
                return kiln_cli_usage_error("upload", "bad --multipart-threshold '%s'", optarg);
            break;
        case 'j': {
            size_t n = 0;
            if (parse_size(optarg, &n) < 0 || n == 0 || n > 64)
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
    if (optind + 1 != argc)
        return kiln_cli_usage_error("upload", "expected exactly one PATH");
    if (dest == NULL)
        return kiln_cli_usage_error("upload", "--output type=s3,dest=s3://... is required");
    if (stat(argv[optind], &st) < 0) {
        kiln_error_set(&err, errno, "%s", argv[optind]);
        return kiln_cli_fail(&err);
    }
    aws = kiln_aws_new(region);
    if (S_ISDIR(st.st_mode))
        ret = kiln_s3_upload_dir(aws, argv[optind], dest, &o, &stats, &err);
    else
        ret = kiln_s3_upload_file(aws, argv[optind], dest, &o, &stats, &err);
    kiln_aws_free(aws);
    printf("files %zu, uploaded %zu (multipart %zu), unchanged %zu, %llu bytes\n", stats.files,
           stats.uploaded, stats.multipart, stats.skipped, stats.bytes);
    if (ret < 0)
        return kiln_cli_fail(&err);
    return KILN_EXIT_OK;
}
