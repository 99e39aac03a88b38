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
    /* As an image: busybox httpd serving the site on $PORT. */
    plan->start = kiln_xstrdup("busybox httpd -f -p $PORT -h /app");
    plan->build_image = kiln_detect_image(ctx, "base");
    plan->run_image = kiln_detect_image(ctx, "static-run");
    (void)err;
    return 1;
}
