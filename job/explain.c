/* kiln — an auto build's failing step in the user's terms (see explain.h). */
#include "job/explain.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/pathres.h"

/* The engine's wording of a failing RUN (engine/step_run.c). */
#define PROCESS_AT ": process \""
#define FAILED_AT "\" did not complete successfully: exit code: "
/* Largest package.json read for a script's text. */
#define PACKAGE_JSON_CAP (4u << 20)

/* The script a package-manager command runs ("npm run build", "yarn build", "pnpm run
 * build", "bun run build", "npm start"): its name (malloc'ed) or NULL. */
static char *script_name(const char *cmd)
{
    static const char *const pms[] = {"npm", "pnpm", "yarn", "bun"};
    size_t n = strcspn(cmd, " ");
    const char *p = cmd + n;
    bool known = false;

    for (size_t i = 0; i < sizeof(pms) / sizeof(pms[0]); i++)
        known = known || (strlen(pms[i]) == n && strncmp(cmd, pms[i], n) == 0);
    if (!known)
        return NULL;
    p += strspn(p, " ");
    if (strncmp(p, "run ", 4) == 0 || strncmp(p, "run-script ", 11) == 0) {
        p += strcspn(p, " ");
        p += strspn(p, " ");
    } else if (strcmp(p, "start") != 0 && strncmp(cmd, "yarn", n) != 0) {
        return NULL; /* npm ci, pnpm install, …: not a script */
    }
    n = strcspn(p, " ;&|");
    if (n == 0 || strncmp(p, "install", n) == 0)
        return NULL;
    return kiln_xstrndup(p, n);
}

/* The text of package.json's scripts.<name> in app_dir (read inside it), or NULL. */
static char *script_text(const char *app_dir, const char *name)
{
    _cleanup_close_ int root = -1;
    _cleanup_free_ char *text = NULL;
    kiln_error_t err = {0};
    json_t *pkg, *s;
    size_t len = 0;
    char *out = NULL;

    if (app_dir == NULL || kiln_pathres_open_root(app_dir, &root, &err) < 0 ||
        kiln_pathres_read_file(root, "package.json", PACKAGE_JSON_CAP, &text, &len, &err) < 0)
        return NULL;
    pkg = json_loadb(text, len, 0, NULL);
    s = json_object_get(json_object_get(pkg, "scripts"), name);
    if (json_is_string(s))
        out = kiln_xstrdup(json_string_value(s));
    json_decref(pkg);
    return out;
}

/* kiln_explain_step_failure with plan and msg set. */
static char *explain(const kiln_plan_t *plan, const char *app_dir, const char *msg)
{
    const struct {
        const char *cmd, *what;
        int why; /* kiln_plan_why_t, -1 none */
    } steps[] = {
        {plan->build, "build", KILN_WHY_BUILD},
        {plan->install, "install", KILN_WHY_INSTALL},
        {plan->setup, "package manager setup", -1},
        {plan->prune, "production dependencies (prune)", -1},
    };
    _cleanup_free_ char *proc = NULL, *name = NULL, *script = NULL;
    const char *p, *q, *why = NULL, *cmd = NULL, *what = NULL;
    char *rest;
    long status;
    int line;
    kiln_buf_t b;

    if (sscanf(msg, "Dockerfile:%d:", &line) != 1 || (p = strstr(msg, PROCESS_AT)) == NULL ||
        (q = strstr(p += strlen(PROCESS_AT), FAILED_AT)) == NULL)
        return NULL;
    proc = kiln_xstrndup(p, (size_t)(q - p));
    status = strtol(q + strlen(FAILED_AT), &rest, 10);
    for (size_t i = 0; cmd == NULL && i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].cmd == NULL || steps[i].cmd[0] == '\0' || strstr(proc, steps[i].cmd) == NULL)
            continue;
        cmd = steps[i].cmd;
        what = steps[i].what;
        why = steps[i].why >= 0 ? plan->why[steps[i].why] : NULL;
    }
    if (cmd == NULL)
        return NULL;
    name = script_name(cmd);
    script = name ? script_text(app_dir, name) : NULL;
    kiln_buf_init(&b, 1024);
    kiln_buf_appendf(&b, NULL, "the %s step failed: `%s` exited with status %ld", what, cmd,
                     status);
    if (script != NULL)
        kiln_buf_appendf(&b, NULL, "\n  `%s` runs package.json scripts.%s: %.300s", cmd, name,
                         script);
    /* a reason that only repeats the script is left out */
    if (why != NULL && (script == NULL || strncmp(why, "package.json scripts.", 21) != 0))
        kiln_buf_appendf(&b, NULL, "\n  the plan runs it because: %s", why);
    if (rest[0] != '\0')
        kiln_buf_appendf(&b, NULL, "\nthe last lines of its output:%s", rest);
    kiln_buf_appendf(&b, NULL, "\n(`kiln plan --explain` shows each choice of the plan and why)");
    return kiln_buf_steal(&b, NULL);
}

char *kiln_explain_step_failure(const kiln_plan_t *plan, const char *app_dir, const char *msg)
{
    return plan != NULL && msg != NULL ? explain(plan, app_dir, msg) : NULL;
}
