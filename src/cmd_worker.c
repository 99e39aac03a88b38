/* kiln worker — runs build jobs from an SQS queue (the ECS task mode of the build server). */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "src/commands.h"
#include "src/server/cli.h"
#include "src/server/config.h"
#include "src/server/jobkey.h"
#include "src/server/limits.h"
#include "src/server/sqs_worker.h"
#include "utils/cleanup.h"

static void worker_usage(void)
{
    printf(
        "Usage: kiln worker --queue SQS_URL [options]\n\n"
        "Long-polls the job queue and builds each job (the JSON of POST /v1/builds plus an\n"
        "id, as `kiln serve --queue` sends it), keeping the message hidden while it builds.\n"
        "The message is deleted once the finished event is sent; a crash leaves it to come\n"
        "back to another worker (and to the dead-letter queue through the redrive policy).\n\n"
        "  --queue SQS_URL          the job queue (required)\n"
        "  --events-queue SQS_URL   send started/phase/finished events (with the log tail)\n"
        "  --concurrency N          builds at once (default 1)\n"
        "  --root DIR               logs and scratch space (default /var/lib/kiln/worker)\n"
        "  --kiln-root DIR          kiln root for checkouts and builds\n"
        "  --build-command PATH     program run as `PATH job run …` (default: this kiln)\n"
        "  --build-option OPT       add OPT to every `kiln build` (repeatable)\n"
        "  --isolation MODE         sandbox (default) or chroot: no user namespace, build\n"
        "                           steps run as real root (hosts without user namespaces)\n"
        "  --allow ENTITLEMENT      let jobs ask for it in \"allow\": network.host,\n"
        "                           security.insecure (repeatable or a comma list)\n"
        "  --allow-address CIDR[:PORT]  let builds reach this non-public range (RUN on\n"
        "                           nat, host-side fetches), e.g. a private mirror (repeatable)\n"
        "  --build-timeout SECS     per-build limit (default 3600, 0 = none)\n"
        "  --visibility-timeout S   hide a received job for S seconds, renewed every S/3\n"
        "                           while it builds (default 120)\n"
        "  --wait-seconds S         long-poll wait (default 20, at most 20)\n"
        "  --drain-timeout SECS     on SIGTERM, let running builds finish this long, then\n"
        "                           release their jobs to the queue (default 110)\n"
        "  --log-cap BYTES          per-build log limit (default 67108864)\n"
        "  --job-key-file FILE      the key `kiln serve --job-key-file` seals secrets with\n"
        "                           (env KILN_JOB_KEY_FILE); jobs with secrets need "
        "it\n"
        "  --config FILE            the tenants' credentials, outputs and entitlements (the\n"
        "                           \"tenants\" of kiln serve's --config; its \"limits\" and\n"
        "                           \"max_limits\" and \"policy\": {\"allow_addresses\",\n"
        "                           \"allow_http_git\", \"oci_dirs\", \"additional_stores\"} too;\n"
        "                           policy.isolation where --isolation is not given; other\n"
        "                           keys are checked, not used). A\n"
        "                           job may \"allow\" only what its tenant and --allow grant;\n"
        "                           a tenant's max_concurrent holds across all workers (leases\n"
        "                           in kiln serve's --context-store).\n"
        "                           Without it\n"
        "                           only tenant default's jobs get the worker's own registry\n"
        "                           and AWS credentials; other tenants' jobs get "
        "none\n" KILN_LIMITS_HELP
        "                          (a job's limits are checked against these too)\n\n"
        "AWS: the usual credential chain, AWS_REGION, AWS_ENDPOINT_URL(_SQS).\n");
}

int kiln_cmd_worker(int argc, char **argv)
{
    enum {
        O_QUEUE = 256,
        O_EVENTS,
        O_CONC,
        O_ROOT,
        O_KROOT,
        O_CMD,
        O_OPT,
        O_TIMEOUT,
        O_VIS,
        O_WAIT,
        O_DRAIN,
        O_LOGCAP,
        O_JOBKEY,
        O_ALLOW_ADDR,
        O_ISO,
        O_ALLOW_ENT,
        O_CONFIG
    };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"queue", required_argument, NULL, O_QUEUE},
        {"events-queue", required_argument, NULL, O_EVENTS},
        {"concurrency", required_argument, NULL, O_CONC},
        {"root", required_argument, NULL, O_ROOT},
        {"kiln-root", required_argument, NULL, O_KROOT},
        {"build-command", required_argument, NULL, O_CMD},
        {"build-option", required_argument, NULL, O_OPT},
        {"build-timeout", required_argument, NULL, O_TIMEOUT},
        {"visibility-timeout", required_argument, NULL, O_VIS},
        {"wait-seconds", required_argument, NULL, O_WAIT},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"log-cap", required_argument, NULL, O_LOGCAP},
        {"job-key-file", required_argument, NULL, O_JOBKEY},
        {"isolation", required_argument, NULL, O_ISO},
        {"allow", required_argument, NULL, O_ALLOW_ENT},
        {"config", required_argument, NULL, O_CONFIG},
        {"allow-address", required_argument, NULL, O_ALLOW_ADDR},
        KILN_LIMITS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    kiln_sqs_worker_opts_t o = {.root = "/var/lib/kiln/worker"};
    kiln_limits_policy_t limits = {0};
    long long conc = 1, timeout = 3600, vis = 120, wait_s = 20, drain = 110, log_cap = 64LL << 20;
    const char *isolation = NULL, *config_path = NULL;
    kiln_config_t *config = NULL;
    const char *cmd_opt = NULL, *job_key_file = getenv("KILN_JOB_KEY_FILE");
    kiln_jobkey_t *job_key = NULL;
    _cleanup_free_ char *cmd = NULL;
    _cleanup_strv_ char **build_opts = NULL;
    unsigned n_build_opts = 0;
    kiln_sqs_worker_t *w = NULL;
    kiln_error_t err = {0};
    sigset_t set;
    int c, sig = 0, timeout_set = 0;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        long long *num = NULL;
        switch (c) {
        case 'h':
            worker_usage();
            return KILN_EXIT_OK;
        case O_QUEUE:
            o.queue_url = optarg;
            break;
        case O_EVENTS:
            o.events_url = optarg;
            break;
        case O_ROOT:
            o.root = optarg;
            break;
        case O_KROOT:
            o.kiln_root = optarg;
            break;
        case O_JOBKEY:
            job_key_file = optarg;
            break;
        case O_CONFIG:
            config_path = optarg;
            break;
        case O_CMD:
            cmd_opt = optarg;
            break;
        case O_OPT:
            if (optarg[0] != '-')
                return kiln_cli_usage_error("worker", "--build-option '%s' is not an option",
                                            optarg);
            kiln_server_strv_add(&build_opts, &n_build_opts, optarg);
            break;
        case O_ALLOW_ADDR:
            if (kiln_server_allow_address(&build_opts, &n_build_opts, optarg, &err) < 0)
                return kiln_cli_usage_error("worker", "--allow-address: %s", err.msg);
            break;
        case O_ISO:
            if (strcmp(optarg, "sandbox") != 0 && strcmp(optarg, "chroot") != 0)
                return kiln_cli_usage_error("worker", "bad --isolation '%s' (sandbox or chroot)",
                                            optarg);
            isolation = optarg;
            break;
        case O_ALLOW_ENT:
            if (kiln_entitlement_parse(optarg, &o.entitlements, &err) < 0)
                return kiln_cli_usage_error("worker", "--allow: %s", err.msg);
            break;
        case O_CONC:
            num = &conc;
            break;
        case O_TIMEOUT:
            num = &timeout;
            timeout_set = 1;
            break;
        case O_VIS:
            num = &vis;
            break;
        case O_WAIT:
            num = &wait_s;
            break;
        case O_DRAIN:
            num = &drain;
            break;
        case O_LOGCAP:
            num = &log_cap;
            break;
        default:
            if (kiln_limits_opt(&limits, c, optarg, &err) <= 0)
                return err.msg[0] ? kiln_cli_usage_error("worker", "%s", err.msg) : KILN_EXIT_USAGE;
        }
        if (num && (*num = kiln_server_parse_num(optarg)) < 0)
            return kiln_cli_usage_error("worker", "option '%s' needs a non-negative number",
                                        argv[optind - 1]);
    }
    if (optind < argc)
        return kiln_cli_usage_error("worker", "unexpected argument '%s'", argv[optind]);
    /* ECS task definitions pass the queues in the environment. */
    if (o.queue_url == NULL)
        o.queue_url = getenv("KILN_QUEUE_URL");
    if (o.events_url == NULL)
        o.events_url = getenv("KILN_EVENTS_QUEUE_URL");
    if (o.queue_url == NULL || o.queue_url[0] == '\0')
        return kiln_cli_usage_error("worker", "--queue SQS_URL (or KILN_QUEUE_URL) is required");
    if (conc < 1 || conc > 64)
        return kiln_cli_usage_error("worker", "--concurrency must be 1..64");
    if (vis < 3 || vis > 43200)
        return kiln_cli_usage_error("worker", "--visibility-timeout must be 3..43200 seconds");
    if (wait_s > 20)
        return kiln_cli_usage_error("worker", "--wait-seconds must be 0..20");
    if (timeout > INT_MAX || drain > INT_MAX)
        return kiln_cli_usage_error("worker", "time limit too large");
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (config_path && kiln_config_load(config_path, &config, &err) < 0)
        return kiln_cli_fail(&err);
    o.config = config;
    /* the same config as kiln serve's gives the same limits: a job within them passes */
    if (kiln_server_limits_policy(&limits, config ? config->limits : NULL,
                                  config ? config->max_limits : NULL, timeout_set,
                                  (uint64_t)timeout, 1, &err) < 0) {
        kiln_config_free(config);
        return kiln_cli_usage_error("worker", "%s", err.msg);
    }
    o.limits = limits;
    if (job_key_file && *job_key_file && kiln_jobkey_load(job_key_file, &job_key, &err) < 0) {
        kiln_config_free(config);
        return kiln_cli_fail(&err);
    }
    o.job_key = job_key;
    cmd = kiln_server_build_cmd(cmd_opt);
    o.build_cmd = cmd;
    /* every job is a tenant's build: the policy of untrusted input, with what the
     * operator's config allows as kiln serve reads it (policy.allow_addresses besides
     * --allow-address, allow_http_git, oci_dirs, and the read-only image stores of the
     * worker image, oci/additional_store) */
    kiln_server_strv_add(&build_opts, &n_build_opts, "--server-mode");
    kiln_server_policy_options(config ? config->policy : NULL, &build_opts, &n_build_opts);
    /* --isolation, else the config's policy.isolation (as kiln serve reads it) */
    if (isolation == NULL && config != NULL)
        isolation = kiln_config_isolation(config);
    if (kiln_server_isolation(&build_opts, &n_build_opts, isolation,
                              "kiln worker --isolation chroot, or policy.isolation in --config",
                              &err) < 0) {
        kiln_jobkey_free(job_key);
        kiln_config_free(config);
        return kiln_cli_usage_error("worker", "%s", err.msg);
    }
    if (isolation != NULL && strcmp(isolation, "chroot") == 0)
        fprintf(stderr, "kiln worker: isolation chroot: build steps run as real root, without a "
                        "user namespace\n");
    o.build_options = build_opts;
    o.concurrency = (int)conc;
    o.visibility_s = (int)vis;
    o.wait_s = (int)wait_s;
    o.timeout_s = (int)limits.max.wall_time;
    o.drain_s = (int)drain;
    o.log_cap = (size_t)log_cap;
    if (kiln_sqs_worker_start(&o, &w, &err) < 0) {
        kiln_jobkey_free(job_key);
        kiln_config_free(config);
        return kiln_cli_fail(&err);
    }
    fprintf(stderr, "kiln worker: taking jobs from %s (%lld at a time)\n", o.queue_url, conc);
    sigwait(&set, &sig);
    fprintf(stderr, "kiln worker: %s: draining (up to %lld s)\n", strsignal(sig), drain);
    kiln_sqs_worker_stop(w);
    kiln_jobkey_free(job_key);
    kiln_config_free(config);
    fprintf(stderr, "kiln worker: stopped\n");
    return KILN_EXIT_OK;
}
