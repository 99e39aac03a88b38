/* kiln build — a daemonless `docker build`: builds a Dockerfile with each RUN
 * in kiln's sandbox and writes the image to a registry, an OCI layout, a
 * docker archive or a directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/statcache.h"
#include "job/run.h"
#include "job/spec.h"
#include "src/build_opts.h"
#include "src/build_report.h"
#include "src/build_source.h"
#include "src/build_spec.h"
#include "src/cli_output.h"
#include "src/commands.h"
#include "src/progress.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/mem.h"

extern char **environ;

/* How the user names the Dockerfile, for a failing step's FILE:LINE: -f FILE as given, else
 * CONTEXT/Dockerfile for a directory ("Dockerfile" for a tarball or a git source). */
static char *dockerfile_name(const kiln_build_opts_t *o, const char *context)
{
    struct stat sb;
    size_t n = strlen(context);

    if (o->file && strcmp(o->file, "-") == 0)
        return kiln_xstrdup("<stdin>");
    if (o->file)
        return kiln_xstrdup(o->file);
    if (strcmp(context, "-") == 0 || stat(context, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return kiln_xstrdup("Dockerfile");
    while (n > 1 && context[n - 1] == '/')
        n--;
    return kiln_xasprintf("%.*s/Dockerfile", (int)n, context);
}

/* kiln build: the flags made into a job spec (checked whole before any work starts), the
 * context from stdin unpacked, then the one job entry point (job/run.h) rendering its
 * events on the terminal; the image digest on stdout. */
int kiln_cmd_build(int argc, char **argv)
{
    kiln_build_opts_t o;
    kiln_job_spec_t spec = {0};
    kiln_job_run_opts_t ro = {0};
    kiln_job_run_result_t res = {0};
    kiln_error_t err = {0};
    _cleanup_free_ char *root = NULL, *stdin_ctx = NULL, *text = NULL, *df_name = NULL;
    size_t text_len = 0;
    const char *context;
    int rc, ok, scratch = 0;

    kiln_build_opts_init(&o);
    if (kiln_env_get(environ, "KILN_STAT_CACHE_MAX") &&
        kiln_statcache_parse_max(kiln_env_get(environ, "KILN_STAT_CACHE_MAX"), &o.stat_cache_max,
                                 &err) < 0)
        return kiln_cli_usage_error("build", "KILN_STAT_CACHE_MAX: %s", err.msg);
    if ((rc = kiln_build_opts_parse(argc, argv, &o)) != KILN_EXIT_OK || o.help)
        return rc;
    if (!o.progress_given) /* auto */
        o.progress = kiln_progress_is_tty(STDERR_FILENO) ? KILN_PROGRESS_TTY : KILN_PROGRESS_PLAIN;
    rc = KILN_EXIT_FAIL;
    if (optind + 1 != argc) {
        kiln_build_opts_clear(&o);
        return kiln_cli_usage_error("build", "exactly one CONTEXT directory is needed");
    }
    context = argv[optind];
    if (kiln_compression_check_level(o.compression, o.compression_level, &err) < 0) {
        kiln_build_opts_clear(&o);
        return kiln_cli_usage_error("build", "--compression-level: %s", err.msg);
    }
    /* the whole job is checked before any work starts: a bad -o, tag, reference, URL or
     * limit is refused here, not after the build */
    if (kiln_build_spec_from_opts(&o, context, &spec, &err) < 0) {
        kiln_job_spec_clear(&spec);
        kiln_build_opts_clear(&o);
        return kiln_cli_usage_error("build", "%s", err.msg);
    }
    if (strcmp(context, "-") == 0 && o.file && strcmp(o.file, "-") == 0) {
        rc = kiln_cli_usage_error("build", "the context and the Dockerfile cannot both be stdin");
        goto out;
    }
    if (strcmp(context, "-") == 0) {
        /* a tarball (plain, gzip or zstd) on stdin is the context */
        if (kiln_cli_store_root(o.root, &root, &err) < 0 ||
            kiln_build_context_from_stdin(root, &stdin_ctx, &err) < 0) {
            kiln_cli_fail(&err);
            goto out;
        }
        free(spec.source);
        spec.source = kiln_xstrdup(stdin_ctx);
        scratch = 1;
    }
    if (o.file && strcmp(o.file, "-") == 0) {
        if (kiln_fs_read_fd(STDIN_FILENO, 4u << 20, &text, &text_len, &err) < 0) {
            kiln_cli_fail(&err);
            goto out;
        }
    }
    /* the job's events go to the progress view (src/progress) until its summary */
    df_name = dockerfile_name(&o, context);
    {
        kiln_progress_opts_t po = {
            .mode = o.progress, .fd = STDERR_FILENO, .dockerfile = df_name, .ticker = 1};
        o.renderer = kiln_progress_new(&po);
    }
    kiln_build_run_opts(&o, &ro);
    ro.context_display = context;
    ro.scratch_context = scratch;
    ro.dockerfile_text = text;
    ro.dockerfile_len = text_len;
    ok = kiln_job_run(&spec, &ro, &res, &err) == 0;
    if (ok && o.digest_file &&
        kiln_fs_write_file_atomic(o.digest_file, res.digest, strlen(res.digest), 0644, &err) < 0) {
        ok = 0;
        free(o.fail_text);
        o.fail_text = kiln_xstrdup(err.msg);
        o.fail_in_build = 0;
    }
    {
        /* json: every failure is the result's error, one JSON line like the rest */
        int json = o.progress == KILN_PROGRESS_JSON;
        const char *why = o.fail_text ? o.fail_text : err.msg;
        kiln_progress_result_t pr = {.ok = ok,
                                     .digest = ok ? res.digest : NULL,
                                     .size_compressed = res.size_compressed,
                                     .size_uncompressed = res.size_uncompressed,
                                     .error = o.fail_in_build || json ? why : NULL,
                                     .user_terms = o.fail_user_terms};
        kiln_progress_finish(o.renderer, &pr);
        /* a failure outside the build's steps is kiln's own message */
        if (!ok && !o.fail_in_build && !json)
            fprintf(stderr, "kiln: %s\n", why);
    }
    if (!ok)
        goto out;
    printf("%s\n", res.digest);
    rc = KILN_EXIT_OK;
out:
    kiln_progress_free(o.renderer);
    o.renderer = NULL;
    free(o.fail_text);
    o.fail_text = NULL;
    if (stdin_ctx)
        kiln_fs_rm_rf(stdin_ctx, NULL);
    kiln_job_spec_clear(&spec);
    kiln_build_opts_clear(&o);
    return rc;
}
