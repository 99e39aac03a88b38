/* kiln — command-line entry point: dispatches to one subcommand per file. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/remote_lazy.h"
#include "oci/store_lazy.h"
#include "src/commands.h"
#include "src/ecr_login.h"
#include "utils/lazylib.h"
#include "utils/suggest.h"

static const kiln_command_t commands[] = {
    {"version", kiln_cmd_version, "print kiln's version and the versions of its libraries"},
    {"import", kiln_cmd_import, "make a single-layer image from a rootfs directory or tarball"},
    {"pull", kiln_cmd_pull,
     "pull an image from a registry (into the store, an OCI layout or a rootfs)"},
    {"push", kiln_cmd_push, "push an image (OCI layout, docker-archive, store) to registry tags"},
    {"copy", kiln_cmd_copy, "copy an image between registries, OCI layouts and docker archives"},
    {"login", kiln_cmd_login, "save registry credentials (docker config.json)"},
    {"logout", kiln_cmd_logout, "remove saved registry credentials"},
    {"inspect", kiln_cmd_inspect,
     "print an image's manifest and config (OCI layout, docker-archive)"},
    {"prune", kiln_cmd_prune, "remove unreferenced blobs from the blob store"},
    {"images", kiln_cmd_images, "list the images named in kiln's store"},
    {"tag", kiln_cmd_tag, "name an image of kiln's store (nothing is pushed)"},
    {"rmi", kiln_cmd_rmi, "remove image names from kiln's store (blobs go at prune)"},
    {"save", kiln_cmd_save, "write images of kiln's store to a docker-archive or OCI archive"},
    {"load", kiln_cmd_load, "read a docker-archive or OCI archive into kiln's store"},
    {"run", kiln_cmd_run, "run a command in a step sandbox (debugging the sandbox)"},
    {"serve", kiln_cmd_serve, "run the build server (HTTP API, queue, workers)"},
    {"worker", kiln_cmd_worker, "run build jobs from an SQS queue (ECS task mode)"},
    {"gc", kiln_cmd_gc, "remove old build logs, contexts, mirrors, caches and blobs"},
    {"cache", kiln_cmd_cache, "remote build caches: gc deletes S3 cache blobs nothing names"},
    {"upload", kiln_cmd_upload, "upload a directory or file to S3 (incremental static deploys)"},
    {"notify", kiln_cmd_notify, "send a build event to SQS queues and SNS topics"},
    {"aws-sign", kiln_cmd_aws_sign, "debug: sign one request with SigV4 and print the result"},
    {"ecr", kiln_cmd_ecr, "Amazon ECR: check a login token, create a repository"},
    {"dockerfile", kiln_cmd_dockerfile, "debug the Dockerfile parser and word expansion"},
    {"build", kiln_cmd_build, "build a Dockerfile (daemonless docker build)"},
    {"job", kiln_cmd_job, "run a job spec (JSON in, JSON-lines events out)"},
    {"plan", kiln_cmd_plan, "print how a directory or git repository would be built (JSON)"},
    {"checkout", kiln_cmd_checkout, "fetch a git source (mirror cache) into a directory"},
    {"store", kiln_cmd_store, "additional read-only image stores: add images, list them"},
    {"soci", kiln_cmd_soci, "verify an image's SOCI index v2 (lazy loading on Fargate)"},
};

int kiln_cli_fail(const kiln_error_t *err)
{
    fprintf(stderr, "kiln: %s\n", err && err->msg[0] ? err->msg : "operation failed");
    return KILN_EXIT_FAIL;
}

int kiln_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kiln %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'kiln %s -h'.\n", cmd);
    return KILN_EXIT_USAGE;
}

int kiln_cli_bad_option(const char *cmd, int c, char **argv, const struct option *lopts)
{
    return kiln_cli_bad_option_hidden(cmd, c, argv, lopts, NULL);
}

/* Whether name is one of hidden (NULL-terminated, or NULL). */
static int is_hidden(const char *name, const char *const *hidden)
{
    for (; hidden && *hidden; hidden++)
        if (strcmp(name, *hidden) == 0)
            return 1;
    return 0;
}

int kiln_cli_bad_option_hidden(const char *cmd, int c, char **argv, const struct option *lopts,
                               const char *const *hidden)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    const char *names[256];
    size_t n = 0;
    long i;

    if (c == ':') {
        /* a flag that takes a value came last */
        if (optopt > 0 && optopt < 256 && strncmp(arg, "--", 2) != 0)
            return kiln_cli_usage_error(cmd, "-%c needs a value", optopt);
        return kiln_cli_usage_error(cmd, "%s needs a value", arg);
    }
    if (optopt != 0 || strncmp(arg, "--", 2) != 0)
        return kiln_cli_usage_error(cmd, "unknown flag -%c", optopt ? optopt : '?');
    {
        /* "--name=value": the name alone is compared */
        char name[KILN_SUGGEST_MAX_LEN + 1];
        snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
        /* internal flags are no suggestion: a person never types them */
        for (size_t k = 0; lopts[k].name != NULL && n < sizeof(names) / sizeof(names[0]); k++)
            if (!is_hidden(lopts[k].name, hidden))
                names[n++] = lopts[k].name;
        {
            /* getopt_long takes a unique prefix; a prefix of several flags lands here */
            char list[512] = "";
            size_t len = strlen(name), hits = 0;
            for (size_t k = 0; k < n; k++)
                if (strncmp(names[k], name, len) == 0 && ++hits)
                    snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s--%s",
                             hits > 1 ? ", " : "", names[k]);
            if (hits > 1)
                return kiln_cli_usage_error(cmd, "ambiguous flag --%s: %s", name, list);
        }
        i = kiln_suggest_closest(name, names, n);
        if (i < 0)
            return kiln_cli_usage_error(cmd, "unknown flag --%s", name);
        return kiln_cli_usage_error(cmd, "unknown flag --%s; did you mean --%s?", name, names[i]);
    }
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln <command> [options]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nGlobal option (before the command): --additional-store DIR  a read-only image\n"
                 "store every build and image command of the command uses (repeatable; sets\n"
                 "$KILN_ADDITIONAL_STORES for it and the jobs it starts)\n");
    fprintf(out, "\nRun 'kiln <command> -h' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return KILN_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return KILN_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return kiln_cmd_version(1, argv + 1);
    /* kiln --additional-store DIR CMD ...: for every build of CMD and the jobs it starts */
    while (argc > 2 && strncmp(argv[1], "--additional-store", 18) == 0) {
        int used = argv[1][18] == '=' ? 1 : argv[1][18] == '\0' ? 2 : 0;
        if (used == 0 || argc <= used + 1 ||
            kiln_cli_additional_store_push(used == 1 ? argv[1] + 19 : argv[2]) < 0)
            return kiln_cli_usage_error("kiln", "--additional-store DIR (an absolute path) "
                                                "before the command");
        argc -= used;
        argv += used;
    }
    /* The server and the queue worker run each job in a forked child while their threads
     * run: their libraries are loaded before, so that no child loads one (utils/lazylib.h). */
    if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "worker") == 0)
        kiln_lazylib_preload_all();
    kiln_cli_ecr_register(); /* credHelpers "ecr-login" → kiln's own ECR helper */
    /* a lazy blob (oci/store_lazy) is downloaded by whichever command needs its bytes */
    kiln_store_set_fetcher(kiln_remote_lazy_fetch);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return KILN_EXIT_USAGE;
}
