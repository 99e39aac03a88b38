/* kiln ecr — Amazon ECR helpers:
 *   kiln ecr login HOST                  fetch (and check) a token, print its expiry
 *   kiln ecr create-repository HOST/NAME create a repository when it is missing */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/commands.h"
#include "utils/aws/ecr.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln ecr login HOST\n"
                 "       kiln ecr create-repository HOST/REPOSITORY\n\n"
                 "HOST is <account>.dkr.ecr.<region>.amazonaws.com, or any host when\n"
                 "AWS_ENDPOINT_URL_ECR points at an ECR-compatible endpoint.\n"
                 "  --region REGION   AWS region (default: from HOST, AWS_REGION, config)\n");
}

int kiln_cmd_ecr(int argc, char **argv)
{
    static const struct option opts[] = {{"region", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *region = NULL, *verb, *arg;
    kiln_error_t err = {0};
    kiln_aws_t *aws;
    int c, ret = KILN_EXIT_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'r') {
            region = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return KILN_EXIT_OK;
        } else {
            return KILN_EXIT_USAGE;
        }
    }
    if (argc - optind != 2)
        return kiln_cli_usage_error("ecr", "expected a verb and one argument");
    verb = argv[optind];
    arg = argv[optind + 1];
    aws = kiln_aws_new(region);
    if (strcmp(verb, "login") == 0) {
        _cleanup_free_ char *user = NULL;
        _cleanup_free_ char *pass = NULL;
        time_t exp = 0;
        if (kiln_ecr_login(aws, arg, &user, &pass, &exp, &err) < 0) {
            ret = kiln_cli_fail(&err);
        } else {
            struct tm tm;
            char when[32];
            gmtime_r(&exp, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%s: user %s, token valid until %s\n", arg, user, when);
        }
    } else if (strcmp(verb, "create-repository") == 0) {
        const char *slash = strchr(arg, '/');
        _cleanup_free_ char *host = NULL;
        int r;
        if (slash == NULL || slash[1] == '\0') {
            kiln_aws_free(aws);
            return kiln_cli_usage_error("ecr", "expected HOST/REPOSITORY, got '%s'", arg);
        }
        host = kiln_xstrndup(arg, (size_t)(slash - arg));
        r = kiln_ecr_create_repository(aws, host, slash + 1, &err);
        if (r < 0)
            ret = kiln_cli_fail(&err);
        else
            printf("%s: %s\n", arg, r ? "created" : "already exists");
    } else {
        kiln_aws_free(aws);
        return kiln_cli_usage_error("ecr", "unknown verb '%s'", verb);
    }
    kiln_aws_free(aws);
    return ret;
}
