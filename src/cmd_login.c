/* kiln login / logout — save or remove registry credentials in docker's config.json. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/docker_config.h"
#include "oci/registry.h"
#include "src/cli_registry.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"

#define PASSWORD_MAX 65536

/* Normalises a login target: "https://host/v1/" → "host", "index.docker.io" → "docker.io". */
static void login_host(const char *in, char *out, size_t n)
{
    const char *h = in;
    size_t l;
    if (strncmp(h, "https://", 8) == 0)
        h += 8;
    else if (strncmp(h, "http://", 7) == 0)
        h += 7;
    l = strcspn(h, "/");
    snprintf(out, n, "%.*s", (int)l, h);
    if (strcmp(out, "index.docker.io") == 0 || strcmp(out, "registry-1.docker.io") == 0)
        snprintf(out, n, "docker.io");
}

int kiln_cmd_login(int argc, char **argv)
{
    static const struct option opts[] = {{"username", required_argument, NULL, 'u'},
                                         {"password", required_argument, NULL, 'p'},
                                         {"password-stdin", no_argument, NULL, 'P'},
                                         {"no-check", no_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         KILN_CLI_REGISTRY_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    kiln_registry_t *r = NULL;
    kiln_error_t err = {0};
    const char *user = NULL;
    _cleanup_free_ char *pass = NULL;
    _cleanup_free_ char *path = NULL;
    int from_stdin = 0, check = 1, c, rc = KILN_EXIT_FAIL;
    char host[256];

    kiln_cli_registry_init(&cr);
    cr.progress = KILN_PROGRESS_NONE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "u:p:h", opts, NULL)) != -1) {
        int k = kiln_cli_registry_opt(&cr, "login", c, optarg);
        if (k < 0)
            goto usage_fail;
        if (k > 0)
            continue;
        switch (c) {
        case 'u':
            user = optarg;
            break;
        case 'p':
            free(pass);
            pass = strdup(optarg);
            fprintf(stderr, "kiln login: warning: --password is visible to other users; "
                            "prefer --password-stdin\n");
            break;
        case 'P':
            from_stdin = 1;
            break;
        case 'n':
            check = 0;
            break;
        case 'h':
            printf("Usage: kiln login [options] HOST -u USER --password-stdin\n\n"
                   "Checks the credentials against HOST and saves them like `docker login`\n"
                   "(in $DOCKER_CONFIG/config.json or ~/.docker/config.json, or the configured\n"
                   "credential helper).\n\n"
                   "  -u, --username USER\n"
                   "      --password-stdin   read the password from stdin\n"
                   "      --no-check         save without contacting the "
                   "registry\n" KILN_CLI_REGISTRY_HELP);
            kiln_cli_registry_free(&cr);
            return KILN_EXIT_OK;
        default:
            goto usage_fail;
        }
    }
    if (optind != argc - 1) {
        kiln_cli_usage_error("login", "expected exactly one registry host");
        goto usage_fail;
    }
    if (user == NULL || user[0] == '\0') {
        kiln_cli_usage_error("login", "-u USER is required");
        goto usage_fail;
    }
    if (from_stdin) {
        size_t len = 0;
        free(pass);
        pass = NULL;
        if (kiln_fs_read_fd(STDIN_FILENO, PASSWORD_MAX, &pass, &len, &err) < 0)
            goto fail;
        while (len > 0 && (pass[len - 1] == '\n' || pass[len - 1] == '\r'))
            pass[--len] = '\0';
    }
    if (pass == NULL || pass[0] == '\0') {
        kiln_cli_usage_error("login", "a password is required (--password-stdin)");
        goto usage_fail;
    }
    login_host(argv[optind], host, sizeof(host));
    if (check) {
        if (kiln_cli_registry_client(&cr, &r, &err) < 0 ||
            kiln_registry_check_login(r, host, user, pass, &err) < 0)
            goto fail;
    }
    if (kiln_docker_config_store(host, user, pass, &err) < 0)
        goto fail;
    path = kiln_docker_config_path();
    fprintf(stderr, "Login Succeeded (credentials for %s saved in %s)\n", host,
            path ? path : "config.json");
    rc = KILN_EXIT_OK;
    goto out;
usage_fail:
    rc = KILN_EXIT_USAGE;
    goto out;
fail:
    rc = kiln_cli_fail(&err);
out:
    if (pass != NULL)
        explicit_bzero(pass, strlen(pass));
    kiln_registry_free(r);
    kiln_cli_registry_free(&cr);
    return rc;
}

int kiln_cmd_logout(int argc, char **argv)
{
    kiln_error_t err = {0};
    char host[256];
    int rc;

    if (argc != 2 || argv[1][0] == '-') {
        if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
            printf("Usage: kiln logout HOST\n\nRemoves the saved credentials of HOST.\n");
            return KILN_EXIT_OK;
        }
        return kiln_cli_usage_error("logout", "expected exactly one registry host");
    }
    login_host(argv[1], host, sizeof(host));
    rc = kiln_docker_config_erase(host, &err);
    if (rc < 0)
        return kiln_cli_fail(&err);
    fprintf(stderr, rc ? "Removed credentials for %s\n" : "Not logged in to %s\n", host);
    return KILN_EXIT_OK;
}
