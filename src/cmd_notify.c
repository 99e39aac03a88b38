/* kiln notify — sends a build event (JSON file) to SQS queues / SNS topics:
 * `kiln notify --notify sqs://QUEUE_URL --notify sns://TOPIC_ARN --event FILE`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/commands.h"
#include "utils/aws/notify.h"
#include "utils/cleanup.h"
#include "utils/fs.h"

#define MAX_TARGETS 16
#define EVENT_FILE_CAP (256u * 1024)

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln notify --notify TARGET [--notify TARGET...] --event FILE.json\n\n"
                 "Sends a build event to SQS (sqs://QUEUE_URL) and SNS (sns://TOPIC_ARN).\n"
                 "Every target is tried; the exit status is 1 when any of them failed.\n\n"
                 "  --region REGION   AWS region (default: AWS_REGION, config)\n");
}

int kiln_cmd_notify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"notify", required_argument, NULL, 'n'},
        {"event", required_argument, NULL, 'e'},
        {"region", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *targets[MAX_TARGETS];
    size_t ntargets = 0;
    const char *event_path = NULL, *region = NULL;
    _cleanup_free_ char *event = NULL;
    kiln_error_t err = {0};
    kiln_aws_t *aws;
    size_t len = 0;
    int c, failed = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "hn:e:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (ntargets == MAX_TARGETS)
                return kiln_cli_usage_error("notify", "at most %d targets", MAX_TARGETS);
            if (kiln_notify_check_target(optarg, &err) < 0)
                return kiln_cli_usage_error("notify", "%s", err.msg);
            targets[ntargets++] = optarg;
            break;
        case 'e':
            event_path = optarg;
            break;
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
    if (optind != argc)
        return kiln_cli_usage_error("notify", "unexpected argument '%s'", argv[optind]);
    if (ntargets == 0 || event_path == NULL)
        return kiln_cli_usage_error("notify", "--notify and --event are required");
    if (kiln_fs_read_file(event_path, EVENT_FILE_CAP, &event, &len, &err) < 0)
        return kiln_cli_fail(&err);
    aws = kiln_aws_new(region);
    for (size_t i = 0; i < ntargets; i++) {
        _cleanup_free_ char *mid = NULL;
        kiln_error_clear(&err);
        if (kiln_notify_send(aws, targets[i], event, &mid, &err) < 0) {
            kiln_cli_fail(&err);
            failed = 1;
            continue;
        }
        printf("%s %s\n", targets[i], mid);
    }
    kiln_aws_free(aws);
    return failed ? KILN_EXIT_FAIL : KILN_EXIT_OK;
}
