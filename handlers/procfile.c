/* kiln — Procfile: "name: command" per line; blank lines and # comments are
 * skipped. The "procfile" provider runs the web line on the base image. */
#include "handlers/procfile.h"

#include <ctype.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

/* Longest Procfile line accepted. */
#define PROCFILE_LINE_MAX 8192

int kiln_procfile_get(const char *text, size_t len, const char *name, char **cmd, kiln_error_t *err)
{
    const char *p = text, *end = text + len;
    size_t lineno = 0, nl = strlen(name);

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon, *s, *e;
        if (eol == NULL)
            eol = end;
        lineno++;
        if ((size_t)(eol - p) > PROCFILE_LINE_MAX)
            return kiln_error_set(err, 0, "Procfile line %zu: longer than %d bytes", lineno,
                                  PROCFILE_LINE_MAX);
        s = p;
        while (s < eol && isspace((unsigned char)*s))
            s++;
        if (s == eol || *s == '#') {
            p = eol + 1;
            continue;
        }
        colon = memchr(s, ':', (size_t)(eol - s));
        if (colon == NULL || colon == s)
            return kiln_error_set(err, 0, "Procfile line %zu: expected \"name: command\"", lineno);
        for (const char *q = s; q < colon; q++)
            if (!isalnum((unsigned char)*q) && *q != '_' && *q != '-')
                return kiln_error_set(err, 0,
                                      "Procfile line %zu: process names use letters, digits, _ "
                                      "and -",
                                      lineno);
        if ((size_t)(colon - s) == nl && strncmp(s, name, nl) == 0) {
            s = colon + 1;
            e = eol;
            while (s < e && isspace((unsigned char)*s))
                s++;
            while (e > s && isspace((unsigned char)e[-1]))
                e--;
            if (s == e)
                return kiln_error_set(err, 0, "Procfile line %zu: empty command for %s", lineno,
                                      name);
            *cmd = kiln_xstrndup(s, (size_t)(e - s));
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

int kiln_procfile_web(const kiln_detect_ctx_t *ctx, char **cmd, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    int r = kiln_tree_read(ctx->tree, "Procfile", &text, err);

    if (r <= 0)
        return r;
    return kiln_procfile_get(text, strlen(text), "web", cmd, err);
}

int kiln_procfile_detect(const kiln_detect_ctx_t *ctx, kiln_plan_t *plan, kiln_error_t *err)
{
    char *cmd = NULL;
    int r = kiln_procfile_web(ctx, &cmd, err);

    if (r <= 0) {
        if (r == 0 && kiln_tree_is_file(ctx->tree, "Procfile"))
            return kiln_error_set(err, 0, "Procfile: no \"web\" process to run");
        return r;
    }
    kiln_plan_set(&plan->provider, "procfile");
    plan->start = cmd;
    plan->outputs = KILN_PLAN_OUT_IMAGE;
    plan->build_image = kiln_detect_image(ctx, "base");
    plan->run_image = kiln_detect_image(ctx, "base");
    return 1;
}
