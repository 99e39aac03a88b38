/* kiln serve — the build server: HTTP API, durable queue in SQLite, a pool of workers
 * running `kiln build` child processes, webhooks, metrics and a dashboard. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/commands.h"
#include "src/server/accesslog.h"
#include "src/server/cli.h"
#include "src/server/gc.h"
#include "src/server/http.h"
#include "src/server/jobkey.h"
#include "src/server/limits.h"
#include "src/server/modes.h"
#include "src/server/remote.h"
#include "src/server/runner.h"
#include "src/server/server.h"
#include "src/server/tenant.h"
#include "src/server/worker.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static void serve_usage(void)
{
    printf(
        "Usage: kiln serve [options]\n\n"
        "Runs the build server.\n\n"
        "  --listen HOST:PORT      address to listen on (default 127.0.0.1:8080)\n"
        "  --root DIR              state directory: database, logs (default /var/lib/kiln/server)\n"
        "  --workers N             concurrent builds (default 2)\n"
        "  --config FILE           JSON config: tenants and their API tokens, webhook\n"
        "                          projects, policy, bounds (docs/server-config.md)\n"
        "  --no-auth               allow running without any API token (development only)\n"
        "  --kiln-root DIR         kiln root for checkouts and builds (blob store, caches)\n"
        "  --build-command PATH    program run as `PATH job run …` (default: this kiln;\n"
        "                          env KILN_BUILD_COMMAND)\n"
        "  --build-option OPT      add OPT to every `kiln build` (repeatable), e.g.\n"
        "                          --build-option=--memory=2g (chroot isolation and\n"
        "                          entitlements come from \"policy\" in --config:\n"
        "                          {\"isolation\": \"chroot\", \"entitlements\": [...]})\n"
        "  --allow-address CIDR[:PORT]  let builds reach this non-public range (RUN on nat,\n"
        "                          host-side fetches), e.g. a private mirror (repeatable;\n"
        "                          also \"policy\": {\"allow_addresses\": [...]} in --config)\n"
        "  --build-timeout SECS    per-build time limit (default 3600, 0 = none)\n"
        "  --log-cap BYTES         per-build log size limit (default 67108864)\n" KILN_LIMITS_HELP
        "  --max-body BYTES        JSON request body limit (default 1048576)\n"
        "  --max-upload BYTES      uploaded context limit (default 268435456)\n"
        "  --drain-timeout SECS    on SIGTERM, wait this long for running builds, then\n"
        "                          re-queue them (default 110)\n"
        "  --requeue-interrupted   after a crash, run interrupted builds once more instead\n"
        "                          of failing them\n"
        "  --gc-interval SECS      collect garbage this often (default 3600, 0 = never;\n"
        "                          see kiln gc)\n"
        "  --gc-max-age HOURS      remove logs, contexts, files, mirrors, caches older than\n"
        "                          this (default 168)\n"
        "  --gc-max-size MIB       keep at most this much of each of them (default: no limit)\n"
        "  --dashboard FILE        serve FILE at / instead of the built-in page\n"
        "  --access-log FILE       append the access log (a JSON line per request) to FILE\n"
        "                          (0640, reopened on SIGHUP); default: stderr, with the\n"
        "                          server's other messages\n"
        "  --no-access-log         write no access log\n"
        "  --queue SQS_URL         send builds to this SQS job queue for `kiln worker`s\n"
        "                          instead of running them here\n"
        "  --events-queue SQS_URL  read the workers' events (status, logs) from this queue\n"
        "  --context-store S3_URL  with --queue: stage uploaded contexts (and cancel markers\n"
        "                          the workers look for) under this prefix\n"
        "  --job-key-file FILE     with --queue: seal build secrets in job messages with this\n"
        "                          AES-256 key (64 hex digits; the workers have it too; env\n"
        "                          KILN_JOB_KEY_FILE); without it secrets are refused\n\n"
        "API tokens also come from KILN_API_TOKENS (comma-separated): like the config's\n"
        "top-level \"tokens\", they are tenant \"default\"'s (so are --no-auth requests).\n");
}

/* Refuses a tenant's "limits" above the server's maxima, naming the tenant and the limit. */
static int check_tenant_limits(const kiln_config_t *c, const kiln_limits_policy_t *server,
                               kiln_error_t *err)
{
    for (size_t i = 0; i < c->n_tenants; i++) {
        kiln_limits_policy_t scratch;
        if (kiln_limits_policy_tenant(server, c->tenants[i].limits, &scratch, err) < 0)
            return kiln_error_prefix(err, "tenant '%s'", c->tenants[i].name);
    }
    return 0;
}

static void kill_stale(pid_t pgid, uint64_t ticks, void *opaque)
{
    kiln_runner_kill_stale(pgid, ticks);
}

int kiln_cmd_serve(int argc, char **argv)
{
    enum {
        O_ROOT = 256,
        O_WORKERS,
        O_CONFIG,
        O_NOAUTH,
        O_BUILDCMD,
        O_TIMEOUT,
        O_LOGCAP,
        O_MAXBODY,
        O_MAXUP,
        O_DRAIN,
        O_REQUEUE,
        O_DASH,
        O_BUILDOPT,
        O_KILNROOT,
        O_QUEUE,
        O_EVENTS,
        O_GCINT,
        O_GCAGE,
        O_GCMAX,
        O_CTXSTORE,
        O_JOBKEY,
        O_ALLOW_ADDR,
        O_ACCESSLOG,
        O_NOACCESSLOG
    };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"listen", required_argument, NULL, 'l'},
        {"root", required_argument, NULL, O_ROOT},
        {"workers", required_argument, NULL, O_WORKERS},
        {"config", required_argument, NULL, O_CONFIG},
        {"no-auth", no_argument, NULL, O_NOAUTH},
        {"build-command", required_argument, NULL, O_BUILDCMD},
        {"build-timeout", required_argument, NULL, O_TIMEOUT},
        {"log-cap", required_argument, NULL, O_LOGCAP},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"max-upload", required_argument, NULL, O_MAXUP},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"requeue-interrupted", no_argument, NULL, O_REQUEUE},
        {"dashboard", required_argument, NULL, O_DASH},
        {"build-option", required_argument, NULL, O_BUILDOPT},
        {"kiln-root", required_argument, NULL, O_KILNROOT},
        {"queue", required_argument, NULL, O_QUEUE},
        {"events-queue", required_argument, NULL, O_EVENTS},
        {"gc-interval", required_argument, NULL, O_GCINT},
        {"context-store", required_argument, NULL, O_CTXSTORE},
        {"gc-max-age", required_argument, NULL, O_GCAGE},
        {"gc-max-size", required_argument, NULL, O_GCMAX},
        {"job-key-file", required_argument, NULL, O_JOBKEY},
        {"allow-address", required_argument, NULL, O_ALLOW_ADDR},
        {"access-log", required_argument, NULL, O_ACCESSLOG},
        {"no-access-log", no_argument, NULL, O_NOACCESSLOG},
        KILN_LIMITS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *listen = "127.0.0.1:8080", *root = "/var/lib/kiln/server", *config = NULL;
    const char *build_cmd_opt = NULL, *kiln_root = NULL, *queue = NULL, *events = NULL,
               *context_store = NULL, *job_key_file = getenv("KILN_JOB_KEY_FILE"),
               *access_log = "-";
    long long workers = 2, timeout = 3600, log_cap = 64LL << 20, max_body = 1 << 20,
              max_upload = 256LL << 20, drain = 110, gc_interval = 3600, gc_age = 168, gc_max = 0;
    int no_auth = 0, requeue = 0, c, sig = 0, recovered, timeout_set = 0;
    kiln_server_t srv = {0};
    kiln_limits_policy_t limits = {0};
    kiln_http_t *http = NULL;
    kiln_gc_timer_t *gc = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *db_path = NULL, *logs = NULL, *build_cmd = NULL;
    _cleanup_strv_ char **build_opts = NULL;
    unsigned n_build_opts = 0;
    sigset_t set;

    optind = 1;
    while ((c = getopt_long(argc, argv, "hl:", opts, NULL)) != -1) {
        long long *num = NULL;
        switch (c) {
        case 'h':
            serve_usage();
            return KILN_EXIT_OK;
        case 'l':
            listen = optarg;
            break;
        case O_ROOT:
            root = optarg;
            break;
        case O_CONFIG:
            config = optarg;
            break;
        case O_NOAUTH:
            no_auth = 1;
            break;
        case O_BUILDCMD:
            build_cmd_opt = optarg;
            break;
        case O_REQUEUE:
            requeue = 1;
            break;
        case O_DASH:
            srv.dashboard_file = optarg;
            break;
        case O_QUEUE:
            queue = optarg;
            break;
        case O_EVENTS:
            events = optarg;
            break;
        case O_CTXSTORE:
            context_store = optarg;
            break;
        case O_JOBKEY:
            job_key_file = optarg;
            break;
        case O_KILNROOT:
            kiln_root = optarg;
            break;
        case O_ACCESSLOG:
            access_log = optarg;
            break;
        case O_NOACCESSLOG:
            access_log = NULL;
            break;
        case O_BUILDOPT:
            if (optarg[0] != '-')
                return kiln_cli_usage_error("serve", "--build-option '%s' is not an option",
                                            optarg);
            kiln_server_strv_add(&build_opts, &n_build_opts, optarg);
            break;
        case O_ALLOW_ADDR:
            if (kiln_server_allow_address(&build_opts, &n_build_opts, optarg, &err) < 0)
                return kiln_cli_usage_error("serve", "--allow-address: %s", err.msg);
            break;
        case O_WORKERS:
            num = &workers;
            break;
        case O_TIMEOUT:
            num = &timeout;
            timeout_set = 1;
            break;
        case O_LOGCAP:
            num = &log_cap;
            break;
        case O_MAXBODY:
            num = &max_body;
            break;
        case O_MAXUP:
            num = &max_upload;
            break;
        case O_DRAIN:
            num = &drain;
            break;
        case O_GCINT:
            num = &gc_interval;
            break;
        case O_GCAGE:
            num = &gc_age;
            break;
        case O_GCMAX:
            num = &gc_max;
            break;
        default:
            if (kiln_limits_opt(&limits, c, optarg, &err) <= 0)
                return err.msg[0] ? kiln_cli_usage_error("serve", "%s", err.msg) : KILN_EXIT_USAGE;
        }
        if (num && (*num = kiln_server_parse_num(optarg)) < 0)
            return kiln_cli_usage_error("serve", "option '%s' needs a non-negative number",
                                        argv[optind - 1]);
    }
    if (optind < argc)
        return kiln_cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    if (workers < 1 || workers > 256)
        return kiln_cli_usage_error("serve", "--workers must be 1..256");
    if (timeout > INT_MAX || drain > INT_MAX)
        return kiln_cli_usage_error("serve", "time limit too large");
    if (kiln_config_load(config, &srv.config, &err) < 0)
        return kiln_cli_fail(&err);
    if (kiln_server_limits_policy(&limits, srv.config->limits, srv.config->max_limits, timeout_set,
                                  (uint64_t)timeout, queue == NULL, &err) < 0 ||
        check_tenant_limits(srv.config, &limits, &err) < 0) {
        kiln_config_free(srv.config);
        return kiln_cli_usage_error("serve", "%s", err.msg);
    }
    srv.limits = limits;
    /* read once (before any thread starts): the children (kiln job run and their
     * steps) never inherit the API tokens */
    unsetenv("KILN_API_TOKENS");
    if (kiln_config_token_count(srv.config) == 0 && !no_auth) {
        kiln_config_free(srv.config);
        return kiln_cli_usage_error("serve",
                                    "no API token configured (--config or KILN_API_TOKENS); "
                                    "pass --no-auth to run an open server");
    }
    srv.no_auth = no_auth && kiln_config_token_count(srv.config) == 0;
    {
        /* every build the server runs is a tenant's: the policy of untrusted
         * input (server mode) plus the operator's policy (address allowlist, ...) */
        kiln_server_strv_add(&build_opts, &n_build_opts, "--server-mode");
        kiln_server_policy_options(srv.config->policy, &build_opts, &n_build_opts);
    }
    if (kiln_server_isolation(&build_opts, &n_build_opts, kiln_config_isolation(srv.config),
                              "\"policy\": {\"isolation\": \"chroot\"} in the server config",
                              &err) < 0) {
        kiln_config_free(srv.config);
        return kiln_cli_usage_error("serve", "%s", err.msg);
    }
    if (strcmp(kiln_config_isolation(srv.config), "chroot") == 0)
        fprintf(stderr, "kiln serve: policy isolation chroot: build steps run as real root, "
                        "without a user namespace\n");

    /* A thread per connection would otherwise get malloc arenas of its own: memory stays
     * bounded with a few shared ones. */
    mallopt(M_ARENA_MAX, 2);

    /* Signals are taken synchronously by this thread; every other thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv.root = kiln_xstrdup(root);
    srv.max_body = (size_t)max_body;
    srv.max_upload = (size_t)max_upload;
    srv.log_cap = (size_t)log_cap;
    srv.workers = (int)workers;
    db_path = kiln_xasprintf("%s/kiln.db", root);
    logs = kiln_xasprintf("%s/logs", root);
    build_cmd = kiln_server_build_cmd(build_cmd_opt);
    if (kiln_server_secure_root(root, &err) < 0 || kiln_fs_mkdir_p(logs, 0750, &err) < 0 ||
        kiln_db_open(db_path, &srv.db, &err) < 0 ||
        (access_log && kiln_accesslog_open(access_log, &srv.access_log, &err) < 0))
        goto fail;
    if (queue) {
        /* Builds run on `kiln worker`s; their state arrives as events. */
        srv.workers = 0;
        if (job_key_file && *job_key_file && kiln_jobkey_load(job_key_file, &srv.job_key, &err) < 0)
            goto fail;
        if (kiln_remote_start(&srv, queue, events, context_store, &srv.remote, &err) < 0)
            goto fail;
    } else {
        kiln_worker_opts_t wo = {.workers = (int)workers,
                                 .build_cmd = build_cmd,
                                 .timeout_s = (int)srv.limits.max.wall_time,
                                 .build_options = build_opts,
                                 .kiln_root = kiln_root,
                                 .entitlements = kiln_config_entitlements(srv.config)};
        recovered = kiln_db_recover(srv.db, requeue, kill_stale, NULL, &err);
        if (recovered < 0)
            goto fail;
        if (recovered > 0)
            fprintf(stderr, "kiln serve: %d build(s) were interrupted by the previous stop (%s)\n",
                    recovered, requeue ? "queued again" : "marked failed");
        {
            kiln_gc_opts_t so = {.server_root = root, .db = srv.db};
            if (kiln_gc_sweep_secrets(&so, &err) < 0)
                goto fail;
        }
        if (kiln_worker_pool_start(&srv, &wo, &srv.pool, &err) < 0)
            goto fail;
    }
    if (gc_interval > 0) {
        kiln_gc_opts_t go = {.server_root = root,
                             .db = srv.db,
                             .kiln_root = kiln_root,
                             .prune_cmd = build_cmd,
                             .max_age_s = (double)gc_age * 3600,
                             .logs_max_age_s = (double)srv.config->bounds.build_log_retention,
                             .access_log = srv.access_log,
                             .access_log_max_age_s =
                                 (double)srv.config->bounds.access_log_retention,
                             .logs_max = (uint64_t)gc_max << 20,
                             .contexts_max = (uint64_t)gc_max << 20,
                             .artifacts_max = (uint64_t)gc_max << 20,
                             .git_max = (uint64_t)gc_max << 20,
                             .cache_max = (uint64_t)gc_max << 20};
        if (kiln_gc_start(&go, (int)gc_interval, &gc, &err) < 0)
            goto fail;
    }
    if (kiln_http_start(&srv, listen, &http, &err) < 0)
        goto fail;
    if (queue)
        fprintf(stderr, "kiln serve: listening on http://%s, builds go to %s%s\n", listen, queue,
                srv.no_auth ? " (no authentication)" : "");
    else
        fprintf(stderr, "kiln serve: listening on http://%s with %lld worker(s)%s\n", listen,
                workers, srv.no_auth ? " (no authentication)" : "");

    /* SIGHUP: the access log file is reopened (after logrotate moved it) */
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        if (kiln_accesslog_reopen(srv.access_log, &err) < 0)
            fprintf(stderr, "kiln serve: %s (still writing to the old file)\n", err.msg);
    }
    fprintf(stderr, "kiln serve: %s: draining (up to %lld s)\n", strsignal(sig), drain);
    srv.stopping = 1;
    kiln_gc_stop(gc);
    kiln_worker_pool_stop(srv.pool, (int)drain);
    srv.pool = NULL;
    kiln_remote_stop(srv.remote);
    srv.remote = NULL;
    kiln_http_stop(http);
    kiln_accesslog_close(srv.access_log);
    kiln_db_close(srv.db);
    kiln_config_free(srv.config);
    kiln_jobkey_free(srv.job_key);
    free(srv.root);
    fprintf(stderr, "kiln serve: stopped\n");
    return KILN_EXIT_OK;
fail:
    kiln_gc_stop(gc);
    kiln_http_stop(http);
    if (srv.pool)
        kiln_worker_pool_stop(srv.pool, 0);
    kiln_remote_stop(srv.remote);
    kiln_accesslog_close(srv.access_log);
    kiln_db_close(srv.db);
    kiln_config_free(srv.config);
    kiln_jobkey_free(srv.job_key);
    free(srv.root);
    return kiln_cli_fail(&err);
}
