/* kiln build — its command line parsed into kiln_build_opts_t (src/build_opts.h): the flags,
 * --help, and what the options' defaults are. Also how `kiln job run` reads --build-option. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "engine/remote_store.h"
#include "engine/statcache.h"
#include "job/request.h"
#include "sandbox/sandbox.h"
#include "src/build_opts.h"
#include "src/build_spec.h"
#include "src/commands.h"
#include "src/progress.h"
#include "utils/aws/notify.h"
#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: kiln build [OPTIONS] CONTEXT\n\n"
        "Builds the Dockerfile in CONTEXT (a directory, or - for a tarball on stdin).\n"
        "Without a Dockerfile, or when CONTEXT is a git URL[#REF], kiln detects the\n"
        "stack (see `kiln plan`) and builds the plan's natural output (default under\n"
        "./kiln-out/).\n\n"
        "  -f, --file FILE            the Dockerfile (default CONTEXT/Dockerfile; - = stdin)\n"
        "  -t, --tag NAME             name the image (repeatable)\n"
        "      --target STAGE         build this stage (and what it needs)\n"
        "      --build-arg K[=V]      set a build argument (repeatable)\n"
        "      --build-context N=DIR  a named context for FROM / COPY --from "
        "(DIR or docker-image://REF)\n"
        "      --secret id=ID,src=FILE|env=VAR  a secret for RUN --mount=type=secret\n"
        "      --ssh default[=SOCKET]  forward the SSH agent to RUN --mount=type=ssh\n"
        "      --add-host HOST:IP     a line of the RUN steps' /etc/hosts (repeatable; not\n"
        "                             for server builds); HOST:host-gateway is the host\n"
        "                             (reached on what --allow-address 127.0.0.1:PORT opens)\n"
        "      --ulimit NAME=SOFT[:HARD]  a resource limit of the RUN steps, as docker's\n"
        "                             (nofile, nproc, core, stack, ...; repeatable)\n"
        "      --shm-size SIZE        size of the RUN steps' /dev/shm (default 64m)\n"
        "      --cache-from type=registry,ref=REF   import a registry cache (repeatable)\n"
        "      --cache-to type=registry,ref=REF[,mode=max][,max-size=N]  push this build's\n"
        "                             cache (its cache mounts bounded to N, default 16G: the\n"
        "                             least recently saved left out)\n"
        "      --cache-from type=s3,bucket=B[,prefix=P][,region=R][,endpoint=URL][,max-size=N]\n"
        "                             restore the layer cache and every RUN cache mount from S3\n"
        "      --cache-to type=s3,bucket=B[,prefix=P][,mode=max][,max-size=N]  save both to S3\n"
        "      --cache-repo REPO      both, with REPO:kiln-cache (mode=max)\n"
        "      --label K=V            add a label to the image (repeatable)\n"
        "      --platform linux/amd64 the (only) target platform\n"
        "  -o, --output SPEC          type=oci,dest=DIR|type=docker,dest=FILE|"
        "type=local,dest=DIR|type=tar,dest=FILE|type=registry\n"
        "      --push                 push every -t name (same as --output type=registry)\n"
        "      --sbom[=BOOL]          an SPDX 2.3 SBOM of the image's packages (dpkg, npm,\n"
        "                             pnpm, yarn, Python) beside file outputs\n"
        "      --provenance[=BOOL|mode=min|mode=max]  an in-toto SLSA v1 provenance\n"
        "                             (build args named like credentials by name only)\n"
        "      --soci                 push a SOCI-enabled image (SOCI index v2: lazy loading\n"
        "                             on Fargate; gzip layers); or soci=true on an output\n"
        "      --soci-min-layer-size SIZE  layers smaller get no zTOC (default 10MiB)\n"
        "      --ecr-create-repository  create missing ECR repositories (outputs,\n"
        "                             --cache-to) first; or ecr-create-repository=true\n"
        "      --root DIR             kiln root (blob store and build cache)\n"
        "      --additional-store DIR  a read-only image store (kiln store add) whose\n"
        "                             blobs and unpacked base layers the root uses\n"
        "                             (repeatable; or $KILN_ADDITIONAL_STORES DIR[:DIR])\n"
        "      --no-cache             do not use the build cache\n"
        "      --source-date-epoch N  timestamps for reproducible images (or "
        "$SOURCE_DATE_EPOCH)\n"
        "      --compression C        gzip (default), zstd or none\n"
        "      --compression-level N  gzip 0..12 (libdeflate; default 3), zstd 1..19 (default 3)\n"
        "      --digest-file FILE     write the image digest (or docker's --iidfile FILE)\n"
        "  -q, --quiet                print nothing but the image digest (errors still go\n"
        "                             to stderr)\n"
        "      --pull                 for docker build scripts: kiln resolves a registry base\n"
        "                             image's tag against its registry on every build anyway\n"
        "      --metadata-file FILE   write JSON: digest, config digest, tags, step timings\n"
        "      --progress MODE        auto (default: tty on a terminal, else plain), tty (a\n"
        "                             live view of the running steps and their last lines),\n"
        "                             plain (the log), json (one event per line), quiet\n"
        "      --network MODE         default network for RUN: default, none, host\n"
        "      --isolation MODE       sandbox (default; auto = sandbox) or chroot: no user\n"
        "                             namespace, RUN steps run as real root (trusted builds\n"
        "                             on hosts without user namespaces)\n"
        "      --allow ENTITLEMENT    let the Dockerfile use RUN --network=host (network.host)\n"
        "                             or RUN --security=insecure (security.insecure);\n"
        "                             repeatable or a comma list\n"
        "      --allow-address CIDR[:PORT]  let RUN steps (nat) and host-side fetches reach\n"
        "                             this non-public range, e.g. a private mirror\n"
        "                             (repeatable; IPv6 as [fd00::/8]:443)\n"
        "      --allow-http-git       allow a plain http:// or git:// git source (and\n"
        "                             submodules)\n"
        "  -m, --memory SIZE          memory limit of each RUN step (e.g. 512m, 2g)\n"
        "      --pids-limit N         process limit of each RUN step\n"
        "      --cpu-time SECONDS     CPU time limit of each RUN step\n"
        "      --disk-limit SIZE      most each RUN step may write to the image's files\n"
        "                             (e.g. 10g; also the largest file it may write)\n"
        "      --stat-cache-max SIZE  total size of the stat cache (content hashes of\n"
        "                             context files; least recently used contexts go\n"
        "                             first; default $KILN_STAT_CACHE_MAX or 256m; 0 = none)\n"
        "      --insecure-registry H  allow plain HTTP for registry H[:PORT] (repeatable)\n"
        "      --registry-mirror SRC=HOST[/PREFIX]  try HOST before registry SRC (repeatable)\n"
        "      --registry-config FILE mirrors/insecure/ca file\n"
        "      --subdir PATH          auto-build PATH inside the source (monorepos)\n"
        "      --plan FILE            auto-build exactly this plan (from `kiln plan`)\n"
        "  -o type=function,dest=F.zip  auto-build: a Lambda zip + function.json\n"
        "  -o type=s3,dest=s3://BUCKET/PREFIX[,cache-control=V][,full=true]  upload the final\n"
        "                             filesystem (a static site) to S3\n"
        "      --notify TARGET        sqs://QUEUE_URL or sns://TOPIC_ARN: send the completion\n"
        "                             event there, success or failure (repeatable)\n"
        "      --build-id ID          the id in the completion event (default $KILN_BUILD_ID\n"
        "                             or a random one)\n");
}

static int add(const char **list, size_t *n, const char *v)
{
    if (*n >= MAX_LIST)
        return kiln_cli_usage_error("build", "too many values");
    list[(*n)++] = v;
    return 0;
}

/* Flags only kiln itself passes (kiln serve / kiln worker / kiln job run): never offered as
 * what a mistyped flag may have meant. */
static const char *const internal_flags[] = {
    "server-mode",   "oci-dir", "cache-namespace", "context-id", "source-repo", "source-commit",
    "source-branch", "tenant",  "trigger",         "events-fd",  NULL};

int kiln_build_opts_parse(int argc, char **argv, kiln_build_opts_t *o_out)
{
    enum {
        O_TARGET = 256,
        O_ARG,
        O_CTX,
        O_SECRET,
        O_PUSH,
        O_SBOM,
        O_PROVENANCE,
        O_SOCI,
        O_SOCI_MIN,
        O_ROOT,
        O_NOCACHE,
        O_SDE,
        O_COMP,
        O_LEVEL,
        O_DIGEST,
        O_META,
        O_PROGRESS,
        O_NET,
        O_ISO,
        O_INSECURE,
        O_SUBDIR,
        O_PLAN,
        O_SSH,
        O_ADD_HOST,
        O_ULIMIT,
        O_SHM_SIZE,
        O_CACHE_FROM,
        O_CACHE_TO,
        O_CACHE_REPO,
        O_LABEL,
        O_PLATFORM,
        O_IIDFILE,
        O_PULL,
        O_MIRROR,
        O_REGCONF,
        O_NOTIFY,
        O_BUILD_ID,
        O_PIDS,
        O_CPU_TIME,
        O_DISK,
        O_ECR_CREATE,
        O_ALLOW_ADDR,
        O_SERVER_MODE,
        O_HTTP_GIT,
        O_OCI_DIR,
        O_ASTORE,
        O_ALLOW_ENT,
        O_CACHE_NS,
        O_CONTEXT_ID,
        O_STAT_CACHE_MAX,
        O_SOURCE_REPO,
        O_SOURCE_COMMIT,
        O_SOURCE_BRANCH,
        O_JOB_TENANT,
        O_JOB_TRIGGER,
        O_EVENTS_FD,
    };
    static const struct option lopts[] = {
        {"file", required_argument, NULL, 'f'},
        {"tag", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"target", required_argument, NULL, O_TARGET},
        {"build-arg", required_argument, NULL, O_ARG},
        {"build-context", required_argument, NULL, O_CTX},
        {"secret", required_argument, NULL, O_SECRET},
        {"push", no_argument, NULL, O_PUSH},
        {"sbom", optional_argument, NULL, O_SBOM},
        {"provenance", optional_argument, NULL, O_PROVENANCE},
        {"soci", no_argument, NULL, O_SOCI},
        {"soci-min-layer-size", required_argument, NULL, O_SOCI_MIN},
        {"root", required_argument, NULL, O_ROOT},
        {"no-cache", no_argument, NULL, O_NOCACHE},
        {"source-date-epoch", required_argument, NULL, O_SDE},
        {"compression", required_argument, NULL, O_COMP},
        {"compression-level", required_argument, NULL, O_LEVEL},
        {"digest-file", required_argument, NULL, O_DIGEST},
        {"metadata-file", required_argument, NULL, O_META},
        {"progress", required_argument, NULL, O_PROGRESS},
        {"network", required_argument, NULL, O_NET},
        {"isolation", required_argument, NULL, O_ISO},
        {"insecure-registry", required_argument, NULL, O_INSECURE},
        {"subdir", required_argument, NULL, O_SUBDIR},
        {"plan", required_argument, NULL, O_PLAN},
        {"ssh", required_argument, NULL, O_SSH},
        {"add-host", required_argument, NULL, O_ADD_HOST},
        {"ulimit", required_argument, NULL, O_ULIMIT},
        {"shm-size", required_argument, NULL, O_SHM_SIZE},
        {"cache-from", required_argument, NULL, O_CACHE_FROM},
        {"cache-to", required_argument, NULL, O_CACHE_TO},
        {"cache-repo", required_argument, NULL, O_CACHE_REPO},
        {"label", required_argument, NULL, O_LABEL},
        {"registry-mirror", required_argument, NULL, O_MIRROR},
        {"registry-config", required_argument, NULL, O_REGCONF},
        {"platform", required_argument, NULL, O_PLATFORM},
        {"quiet", no_argument, NULL, 'q'},
        {"iidfile", required_argument, NULL, O_IIDFILE},
        {"pull", no_argument, NULL, O_PULL},
        {"notify", required_argument, NULL, O_NOTIFY},
        {"build-id", required_argument, NULL, O_BUILD_ID},
        {"memory", required_argument, NULL, 'm'},
        {"pids-limit", required_argument, NULL, O_PIDS},
        {"cpu-time", required_argument, NULL, O_CPU_TIME},
        {"disk-limit", required_argument, NULL, O_DISK},
        {"ecr-create-repository", no_argument, NULL, O_ECR_CREATE},
        {"allow-address", required_argument, NULL, O_ALLOW_ADDR},
        {"allow", required_argument, NULL, O_ALLOW_ENT},
        /* internal: set by `kiln serve` / `kiln worker` for the builds they run */
        {"server-mode", no_argument, NULL, O_SERVER_MODE},
        {"allow-http-git", no_argument, NULL, O_HTTP_GIT},
        /* internal: the server's policy.oci_dirs, where FROM oci: may read in server mode */
        {"oci-dir", required_argument, NULL, O_OCI_DIR},
        {"additional-store", required_argument, NULL, O_ASTORE},
        /* internal: the build's tenant, whose caches alone it uses (utils/cachens) */
        {"cache-namespace", required_argument, NULL, O_CACHE_NS},
        /* internal: the stat cache identity of the context (kiln serve: "git REPO SUBDIR") */
        {"context-id", required_argument, NULL, O_CONTEXT_ID},
        {"stat-cache-max", required_argument, NULL, O_STAT_CACHE_MAX},
        /* internal: what the server checked out into CONTEXT, for the completion event */
        {"source-repo", required_argument, NULL, O_SOURCE_REPO},
        {"source-commit", required_argument, NULL, O_SOURCE_COMMIT},
        /* internal: the job's branch, tenant and trigger, for the completion event */
        {"source-branch", required_argument, NULL, O_SOURCE_BRANCH},
        {"tenant", required_argument, NULL, O_JOB_TENANT},
        {"trigger", required_argument, NULL, O_JOB_TRIGGER},
        /* internal: kiln job run reads the build's typed events here */
        {"events-fd", required_argument, NULL, O_EVENTS_FD},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    /* layers gzip by default, as --help says */
    kiln_build_opts_t o = *o_out;
    kiln_error_t err = {0};
    int c;

    /* the operator's additional stores ($KILN_ADDITIONAL_STORES, `kiln --additional-store`)
     * before those of the flags */
    if (o.n_additional_stores == 0 &&
        kiln_cli_additional_stores_env(o.additional_stores, &o.n_additional_stores, MAX_LIST) < 0)
        return kiln_cli_usage_error("build", "KILN_ADDITIONAL_STORES: each store must be an "
                                             "absolute path (DIR[:DIR...])");
    optind = 1;
    opterr = 0; /* unknown flags are reported with a suggestion (kiln_cli_bad_option) */
    while ((c = getopt_long(argc, argv, ":f:t:o:m:qh", lopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o.file = optarg;
            break;
        case 't':
            if (add(o.tags, &o.n_tags, optarg))
                return KILN_EXIT_USAGE;
            break;
        case 'o':
            if (add(o.outputs, &o.n_outputs, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_TARGET:
            o.target = optarg;
            break;
        case O_ARG:
            if (add(o.args, &o.n_args, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_CTX:
            if (strchr(optarg, '=') == NULL)
                return kiln_cli_usage_error("build", "--build-context wants NAME=DIR, got '%s'",
                                            optarg);
            if (add(o.contexts, &o.n_contexts, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_SECRET:
            if (strstr(optarg, "id=") == NULL)
                return kiln_cli_usage_error("build", "--secret wants id=ID,src=FILE|env=VAR");
            if (add(o.secrets, &o.n_secrets, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_PUSH:
            o.push = 1;
            break;
        case O_SBOM:
        case O_PROVENANCE: {
            /* buildx's spellings: --sbom, --sbom=true|false, --provenance=mode=min|max */
            int on = optarg == NULL || strcmp(optarg, "true") == 0 || strcmp(optarg, "1") == 0 ||
                     (c == O_PROVENANCE &&
                      (strcmp(optarg, "mode=min") == 0 || strcmp(optarg, "mode=max") == 0));
            if (!on && strcmp(optarg, "false") != 0 && strcmp(optarg, "0") != 0)
                return kiln_cli_usage_error("build", "--%s=%s: want true or false%s",
                                            c == O_SBOM ? "sbom" : "provenance", optarg,
                                            c == O_SBOM ? "" : ", mode=min or mode=max");
            *(c == O_SBOM ? &o.sbom : &o.provenance) = on;
            break;
        }
        case O_SOCI:
            o.soci = 1;
            break;
        case O_SOCI_MIN: {
            uint64_t n;
            if (kiln_size_parse(optarg, &n, NULL) < 0 || n > (uint64_t)1 << 40)
                return kiln_cli_usage_error("build", "--soci-min-layer-size %s: not a size",
                                            optarg);
            o.soci_min_layer = (long long)n;
            break;
        }
        case O_ROOT:
            o.root = optarg;
            break;
        case O_NOCACHE:
            o.no_cache = 1;
            break;
        case O_SDE: {
            char *end;
            o.sde = strtoll(optarg, &end, 10);
            if (*end || o.sde < 0)
                return kiln_cli_usage_error("build", "bad --source-date-epoch '%s'", optarg);
            break;
        }
        case O_COMP:
            if (kiln_compression_parse(optarg, &o.compression, &err) < 0)
                return kiln_cli_usage_error("build", "%s", err.msg);
            o.compression_given = 1;
            break;
        case O_LEVEL: {
            char *end;
            long l = strtol(optarg, &end, 10);
            if (end == optarg || *end || l < 0 || l > 19)
                return kiln_cli_usage_error("build", "--compression-level %s: not a level", optarg);
            o.compression_level = (int)l;
            break;
        }
        case O_DIGEST:
        case O_IIDFILE: /* docker's name: the image's id here is its manifest digest */
            o.digest_file = optarg;
            break;
        case 'q': /* docker build -q: nothing but the digest (on stdout) unless it fails */
            o.progress = KILN_PROGRESS_QUIET;
            o.progress_given = 1;
            break;
        case O_PULL:
            /* a registry base image's tag is resolved against its registry on every build
             * (never from a local tag), so docker's --pull is what kiln always does */
            break;
        case O_META:
            o.metadata_file = optarg;
            break;
        case O_PROGRESS:
            if (kiln_progress_mode_parse(optarg, kiln_progress_is_tty(STDERR_FILENO), &o.progress) <
                0)
                return kiln_cli_usage_error(
                    "build", "bad --progress '%s' (auto, tty, plain, json or quiet)", optarg);
            o.progress_given = 1;
            break;
        case O_NET:
            o.network = optarg;
            break;
        case O_ISO: {
            kiln_isolation_t iso;
            if (kiln_isolation_parse(optarg, &iso) < 0)
                return kiln_cli_usage_error("build", "bad --isolation '%s' (sandbox or chroot)",
                                            optarg);
            o.isolation = optarg;
            break;
        }
        case O_ALLOW_ENT:
            if (kiln_entitlement_parse(optarg, &o.entitlements, &err) < 0)
                return kiln_cli_usage_error("build", "--allow: %s", err.msg);
            break;
        case O_INSECURE:
            if (add(o.insecure, &o.n_insecure, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_SUBDIR:
            o.subdir = optarg;
            break;
        case O_PLAN:
            o.plan_file = optarg;
            break;
        case O_CACHE_FROM:
        case O_CACHE_TO: {
            kiln_export_opts_t co = {0};
            const char *ref, *mode;
            if (strncmp(optarg, "type=s3,", 8) == 0) {
                kiln_rcache_spec_t rs = {0};
                if (kiln_rcache_spec_parse(optarg, 0, &rs, &err) < 0)
                    return kiln_cli_usage_error("build", "%s", err.msg);
                kiln_rcache_spec_clear(&rs);
                if (c == O_CACHE_TO)
                    o.remote_cache_to = optarg;
                else if (add(o.remote_cache_from, &o.n_remote_cache_from, optarg))
                    return KILN_EXIT_USAGE;
                break;
            }
            if (kiln_export_opts_parse(optarg, &co, &err) < 0 || strcmp(co.type, "registry") != 0 ||
                (ref = kiln_export_opts_get(&co, "ref")) == NULL) {
                kiln_export_opts_free(&co);
                return kiln_cli_usage_error("build",
                                            "--cache-from/--cache-to want "
                                            "type=registry,ref=REF, got '%s'",
                                            optarg);
            }
            mode = kiln_export_opts_get(&co, "mode");
            if (c == O_CACHE_FROM) {
                /* ref points into optarg: keep the copy alive with the options */
                const char *eq = strstr(optarg, "ref=");
                size_t len = strcspn(eq + 4, ",");
                char *copy = kiln_xstrndup(eq + 4, len);
                if (add(o.cache_from, &o.n_cache_from, copy)) {
                    free(copy);
                    kiln_export_opts_free(&co);
                    return KILN_EXIT_USAGE;
                }
            } else {
                free(o.cache_to);
                o.cache_to = kiln_xstrdup(ref);
                o.cache_to_max = mode && strcmp(mode, "max") == 0;
                o.cache_to_max_size = 0;
                if (kiln_export_opts_get(&co, "max-size") != NULL) {
                    size_t sz = 0;
                    if (kiln_s3_parse_size(kiln_export_opts_get(&co, "max-size"), &sz) < 0 ||
                        sz == 0) {
                        kiln_export_opts_free(&co);
                        return kiln_cli_usage_error("build",
                                                    "--cache-to: max-size= wants a size (K/M/G "
                                                    "suffixes), got '%s'",
                                                    optarg);
                    }
                    o.cache_to_max_size = sz;
                }
            }
            kiln_export_opts_free(&co);
            break;
        }
        case O_MIRROR:
            if (add(o.mirrors, &o.n_mirrors, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_REGCONF:
            o.registry_config = optarg;
            break;
        case O_LABEL:
            if (add(o.labels, &o.n_labels, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_PLATFORM:
            if (strcmp(optarg, "linux/amd64") != 0)
                return kiln_cli_usage_error("build",
                                            "only --platform linux/amd64 is supported, not "
                                            "'%s'",
                                            optarg);
            break;
        case O_CACHE_REPO:
            free(o.cache_repo_ref);
            o.cache_repo_ref = kiln_xasprintf("%s:kiln-cache", optarg);
            if (add(o.cache_from, &o.n_cache_from, o.cache_repo_ref))
                return KILN_EXIT_USAGE;
            free(o.cache_to);
            o.cache_to = kiln_xstrdup(o.cache_repo_ref);
            o.cache_to_max = 1;
            break;
        case O_SSH:
            if (strcmp(optarg, "default") == 0)
                o.ssh = getenv("SSH_AUTH_SOCK");
            else if (strncmp(optarg, "default=", 8) == 0)
                o.ssh = optarg + 8;
            else
                return kiln_cli_usage_error("build", "--ssh wants default[=SOCKET]");
            if (o.ssh == NULL || *o.ssh == '\0')
                return kiln_cli_usage_error("build", "--ssh default: SSH_AUTH_SOCK is not set");
            break;
        case O_ADD_HOST:
        case O_ULIMIT: {
            /* checked as the sandbox takes them (sandbox/stepopts.h) */
            _cleanup_free_ char *line = NULL;
            kiln_ulimit_t u;
            if ((c == O_ADD_HOST ? kiln_job_add_host_line(optarg, NULL, &line, &err)
                                 : kiln_ulimit_parse(optarg, &u, &err)) < 0)
                return kiln_cli_usage_error("build", "%s", err.msg);
            if (c == O_ADD_HOST ? add(o.add_hosts, &o.n_add_hosts, optarg)
                                : add(o.ulimits, &o.n_ulimits, optarg))
                return KILN_EXIT_USAGE;
            break;
        }
        case O_SHM_SIZE:
            if (kiln_size_parse(optarg, &o.shm_size, NULL) < 0 || o.shm_size == 0)
                return kiln_cli_usage_error("build", "--shm-size %s: a size above 0 (e.g. 64m, 1g)",
                                            optarg);
            break;
        case O_NOTIFY:
            if (kiln_notify_check_target(optarg, &err) < 0)
                return kiln_cli_usage_error("build", "--notify: %s", err.msg);
            if (add(o.notify, &o.n_notify, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_BUILD_ID:
            o.build_id = optarg;
            break;
        case O_ECR_CREATE:
            o.ecr_create = 1;
            break;
        case O_ALLOW_ADDR:
            if (kiln_netpolicy_validate(optarg, &err) < 0)
                return kiln_cli_usage_error("build", "--allow-address: %s", err.msg);
            if (add(o.allow_addrs, &o.n_allow_addrs, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_HTTP_GIT:
            o.allow_http_git = 1;
            break;
        case O_OCI_DIR:
            if (optarg[0] != '/')
                return kiln_cli_usage_error("build", "--oci-dir %s: must be an absolute path",
                                            optarg);
            if (add(o.oci_dirs, &o.n_oci_dirs, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_ASTORE:
            if (optarg[0] != '/')
                return kiln_cli_usage_error(
                    "build", "--additional-store %s: must be an absolute path", optarg);
            if (add(o.additional_stores, &o.n_additional_stores, optarg))
                return KILN_EXIT_USAGE;
            break;
        case O_SERVER_MODE:
            o.server_mode = 1;
            break;
        case O_SOURCE_REPO:
            o.source_repo = optarg;
            break;
        case O_SOURCE_BRANCH:
            o.source_branch = optarg;
            break;
        case O_JOB_TENANT:
            o.tenant = optarg;
            break;
        case O_JOB_TRIGGER:
            o.trigger = optarg;
            break;
        case O_EVENTS_FD: {
            char *end;
            long fd = strtol(optarg, &end, 10);
            if (*end || end == optarg || fd < 3 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0)
                return kiln_cli_usage_error("build", "--events-fd %s: not an open descriptor",
                                            optarg);
            o.events_fd = (int)fd;
            break;
        }
        case O_SOURCE_COMMIT:
            if (strlen(optarg) < 7 || strspn(optarg, "0123456789abcdef") != strlen(optarg))
                return kiln_cli_usage_error("build", "--source-commit: '%s' is not a commit id",
                                            optarg);
            o.source_commit = optarg;
            break;
        case O_CACHE_NS:
            if (kiln_cachens_check(optarg, &err) < 0)
                return kiln_cli_usage_error("build", "--cache-namespace: %s", err.msg);
            o.cache_namespace = optarg;
            break;
        case O_CONTEXT_ID:
            if (optarg[0] == '\0' || strlen(optarg) > KILN_STATCACHE_ID_MAX)
                return kiln_cli_usage_error("build", "--context-id: 1 to %d bytes",
                                            KILN_STATCACHE_ID_MAX);
            o.context_id = optarg;
            break;
        case O_STAT_CACHE_MAX:
            if (kiln_statcache_parse_max(optarg, &o.stat_cache_max, &err) < 0)
                return kiln_cli_usage_error("build", "--stat-cache-max: %s", err.msg);
            break;
        case 'm':
            if (kiln_size_parse(optarg, &o.limits.memory, &err) < 0)
                return kiln_cli_usage_error("build", "--memory: %s", err.msg);
            break;
        case O_DISK:
            if (kiln_size_parse(optarg, &o.limits.disk, &err) < 0)
                return kiln_cli_usage_error("build", "--disk-limit: %s", err.msg);
            if (o.limits.disk == 0)
                return kiln_cli_usage_error("build", "--disk-limit: must not be 0");
            break;
        case O_PIDS:
        case O_CPU_TIME: {
            char *end;
            unsigned long long v;
            errno = 0;
            v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v == 0)
                return kiln_cli_usage_error("build", "%s needs a positive number, got '%s'",
                                            c == O_PIDS ? "--pids-limit" : "--cpu-time", optarg);
            *(c == O_PIDS ? &o.limits.pids : &o.limits.cpu_time) = v;
            break;
        }
        case 'h':
            usage(stdout);
            o.help = 1;
            *o_out = o;
            return KILN_EXIT_OK;
        default:
            return kiln_cli_bad_option_hidden("build", c, argv, lopts, internal_flags);
        }
    }
    if (o.server_mode && o.n_add_hosts)
        return kiln_cli_usage_error("build", "--add-host is refused for a server build: it would "
                                             "point a tenant's steps at any address");
    for (size_t i = 0; i < o.n_add_hosts; i++) {
        /* host-gateway depends on --network, known only now */
        _cleanup_free_ char *line = NULL;
        if (kiln_job_add_host_line(o.add_hosts[i], o.network, &line, &err) < 0)
            return kiln_cli_usage_error("build", "%s", err.msg);
    }
    *o_out = o;
    return KILN_EXIT_OK;
}

void kiln_build_opts_clear(kiln_build_opts_t *o)
{
    for (size_t i = 0; i < o->n_cache_from; i++)
        if (o->cache_from[i] != o->cache_repo_ref)
            free((char *)o->cache_from[i]);
    free(o->cache_repo_ref);
    free(o->cache_to);
    o->n_cache_from = 0;
    o->cache_repo_ref = o->cache_to = NULL;
}

void kiln_build_opts_init(kiln_build_opts_t *o)
{
    /* layers gzip by default, as --help says */
    *o = (kiln_build_opts_t){.sde = -1,
                             .events_fd = -1,
                             .compression = KILN_COMPRESSION_GZIP,
                             .compression_level = -1,
                             .soci_min_layer = -1};
}
