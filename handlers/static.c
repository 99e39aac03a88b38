/* kiln — the static provider: an index.html at the root or in public/ is the
 * site; no install or build step. */
#include "handlers/detect.h"
#include "utils/mem.h"

int kiln_static_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    const char *dir;

    if (kiln_tree_is_file(ctx->tree, "index.html"))
        dir = ".";
    else if (kiln_tree_is_file(ctx->tree, "public/index.html"))
        dir = "public";
    else
        return 0;
    kiln_plan_set(&plan->provider, "static");
    kiln_plan_set(&plan->output_dir, dir);
    plan->outputs = KILN_PLAN_OUT_STATIC;
    kiln_plan_why(plan, KILN_WHY_OUTPUT,
                  "%s is there and no language manifest: the files of %s are the site, as they "
                  "are",
                  dir[0] == '.' ? "index.html" : "public/index.html",
                  dir[0] == '.' ? "the source" : "public/");
    kiln_plan_why(plan, KILN_WHY_BUILD, "plain files: nothing to build");
    /* As an image: busybox httpd serving the site on $PORT. */
    plan->start = kiln_xstrdup("busybox httpd -f -p $PORT -h /app");
    kiln_plan_why(plan, KILN_WHY_START,
                  "as an image, busybox httpd (in kiln's static-run image) serves the site");
    kiln_plan_why(plan, KILN_WHY_PORT,
                  "httpd listens on $PORT: kiln sets it to 8080, its server "
                  "port (kiln.json \"port\" or KILN_PORT change it)");
    plan->build_image = kiln_detect_image(ctx, "base");
    plan->run_image = kiln_detect_image(ctx, "static-run");
    (void)err;
    return 1;
}
