/* kiln plan — detect how a directory or git repository would be built and
 * print the plan as JSON (or the Dockerfile the auto-build renders from it). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/detect.h"
#include "handlers/render.h"
#include "job/auto.h"
#include "job/toolchain.h"
#include "src/cli_gitpolicy.h"
#include "src/commands.h"
#include "utils/cleanup.h"

extern char **environ;

static void plan_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: kiln plan [options] DIR|GIT_URL[#REF]\n\n"
        "Prints how kiln would build the source, as JSON, without building; its\n"
        "\"why\" object says which file or setting decided each choice.\n\n"
        "  --subdir PATH         build PATH inside the source (monorepos)\n"
        "  --dockerfile          print the Dockerfile rendered from the plan instead\n"
        "  --explain             print the plan in words instead: each choice and why\n"
        "  -o, --output SPEC     plan for this output, as kiln build -o takes it\n"
        "                        (type=function: the Lambda handler and runtime)\n"
        "  --fetch-toolchain     also fetch the plan's toolchain (e.g. a Node major)\n"
        "                        into the kiln root and report its directory\n"
        "  --image-prefix PREFIX registry prefix of kiln's build/run images\n"
        "                        (default $KILN_IMAGE_PREFIX, else \"kiln\")\n"
        "  --root DIR            kiln root holding the git mirror cache\n"
        "                        (default $KILN_ROOT, else /var/lib/kiln)\n" KILN_CLI_GITPOLICY_HELP
        "  -h, --help            this help\n");
}

int kiln_cmd_plan(int argc, char **argv)
{
    static const struct option opts[] = {{"subdir", required_argument, NULL, 's'},
                                         {"dockerfile", no_argument, NULL, 'd'},
                                         {"explain", no_argument, NULL, 'e'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"fetch-toolchain", no_argument, NULL, 't'},
                                         {"image-prefix", required_argument, NULL, 'p'},
                                         {"root", required_argument, NULL, 'r'},
                                         KILN_CLI_GITPOLICY_LONGOPTS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    kiln_detect_opts_t dopts = {.env = environ};
    kiln_auto_source_opts_t sopts = {0};
    kiln_cli_gitpolicy_t gp = {0};
    kiln_auto_source_t src = {0};
    _cleanup_plan_ kiln_plan_t *plan = NULL;
    _cleanup_free_ char *text = NULL;
    kiln_error_t err = {0};
    bool dockerfile = false, fetch_tc = false, explain = false;
    const char *output = NULL;
    int c, ret = KILN_EXIT_FAIL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sopts.subdir = optarg;
            break;
        case 'd':
            dockerfile = true;
            break;
        case 'e':
            explain = true;
            break;
        case 'o':
            output = optarg;
            break;
        case 't':
            fetch_tc = true;
            break;
        case 'p':
            dopts.image_prefix = optarg;
            break;
        case 'r':
            sopts.root = optarg;
            break;
        case 'h':
            plan_usage(stdout);
            return KILN_EXIT_OK;
        default:
            switch (kiln_cli_gitpolicy_opt(&gp, "plan", c, optarg)) {
            case 1:
                continue;
            case 0:
                return kiln_cli_usage_error("plan", "unknown option");
            default:
                return KILN_EXIT_USAGE;
            }
        }
    }
    if (optind != argc - 1)
        return kiln_cli_usage_error("plan", "expected one DIR or GIT_URL");
    sopts.env = environ;
    sopts.git_policy = &gp.policy;
    if (kiln_auto_source_prepare(argv[optind], &sopts, &src, &err) < 0)
        return kiln_cli_fail(&err);
    if (src.commit)
        fprintf(stderr, "kiln: %s at commit %s\n", src.display, src.commit);
    if (kiln_auto_detect(&src, &dopts, &plan, &err) < 0) {
        ret = kiln_cli_fail(&err);
        goto out;
    }
    /* what the output needs, as kiln build checks it (the plan's own outputs by default) */
    if (kiln_plan_select_output(
            plan, output ? kiln_auto_output_kind(output, plan->outputs) : plan->outputs,
            src.display, &err) < 0) {
        ret = kiln_cli_fail(&err);
        goto out;
    }
    if (fetch_tc && plan->toolchain.name != NULL) {
        _cleanup_free_ char *root = kiln_auto_root(sopts.root, environ);
        _cleanup_free_ char *tdir = NULL, *tver = NULL;
        if (kiln_toolchain_fetch(&plan->toolchain, root, environ, NULL, &tdir, &tver, &err) < 0) {
            ret = kiln_cli_fail(&err);
            goto out;
        }
        fprintf(stderr, "kiln: toolchain %s %s in %s\n", plan->toolchain.name, tver, tdir);
    }
    if (explain)
        text = kiln_plan_explain(plan);
    else if ((dockerfile ? kiln_render_dockerfile(plan, NULL, &text, &err)
                         : kiln_plan_to_json(plan, &text, &err)) < 0) {
        ret = kiln_cli_fail(&err);
        goto out;
    }
    fputs(text, stdout);
    if (text[0] && text[strlen(text) - 1] != '\n')
        fputc('\n', stdout);
    ret = KILN_EXIT_OK;
out:
    kiln_auto_source_release(&src);
    return ret;
}
