/* kiln — build overrides from kiln.json and KILN_* variables (see kiln_json.h). */
#include "handlers/kiln_json.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

/* Largest command or value accepted from kiln.json. */
#define OVERRIDE_VALUE_MAX 16384

void kiln_overrides_free(kiln_overrides_t *o)
{
    char **fields[] = {&o->provider,       &o->install,     &o->build,     &o->start,
                       &o->output_dir,     &o->build_image, &o->run_image, &o->node_version,
                       &o->python_version, &o->handler,     &o->runtime,   &o->function_dir,
                       &o->go_version,     &o->go_main};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
    for (size_t i = 0; i < o->n_env; i++)
        free(o->env[i]);
    o->n_env = 0;
    for (size_t i = 0; i < o->n_stack; i++)
        free(o->stack[i]);
    o->n_stack = 0;
}

/* A string member of `obj` into *field; `where` names it in messages. */
static int member_str(json_t *obj, const char *key, const char *where, char **field,
                      kiln_error_t *err)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return kiln_error_set(err, 0, "kiln.json: %s%s must be a string", where, key);
    if (json_string_length(v) > OVERRIDE_VALUE_MAX ||
        strlen(json_string_value(v)) != json_string_length(v))
        return kiln_error_set(err, 0, "kiln.json: %s%s is too long or holds a NUL", where, key);
    kiln_plan_set(field, json_string_value(v));
    return 0;
}

/* "outputs": a string or an array of "image" / "static" / "function". */
static int parse_outputs(json_t *v, unsigned *out, kiln_error_t *err)
{
    size_t i, n = json_is_array(v) ? json_array_size(v) : 1;
    unsigned bits = 0;

    for (i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        unsigned b = json_is_string(e) ? kiln_plan_output_parse(json_string_value(e)) : 0;
        if (b == 0)
            return kiln_error_set(err, 0,
                                  "kiln.json: outputs must be \"image\", \"static\" or "
                                  "\"function\" (or a list of them)");
        bits |= b;
    }
    if (bits == 0)
        return kiln_error_set(err, 0, "kiln.json: outputs is empty");
    *out = bits;
    return 0;
}

/* True for a valid environment variable name. */
static bool env_name_ok(const char *k)
{
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static const char *const known_members[] = {
    "provider",    "install",       "build", "start",    "outputs", "outputDir", "env",    "images",
    "nodeVersion", "pythonVersion", "port",  "function", "$schema", "goVersion", "goMain",
};

/* A provider's settings ("java": {"version": "17"}): an object of strings, kept as
 * "java.version=17" for the provider to read. */
static int parse_stack(const char *stack, json_t *obj, kiln_overrides_t *o, kiln_error_t *err)
{
    const char *k;
    json_t *v;

    if (!json_is_object(obj))
        return kiln_error_set(
            err, 0, "kiln.json: %s must be an object of the %s provider's settings", stack, stack);
    json_object_foreach(obj, k, v)
    {
        if (!env_name_ok(k) || strlen(k) > 64)
            return kiln_error_set(err, 0, "kiln.json: %s: \"%.64s\" is not a setting name", stack,
                                  k);
        if (!json_is_string(v) || json_string_length(v) > OVERRIDE_VALUE_MAX ||
            strlen(json_string_value(v)) != json_string_length(v))
            return kiln_error_set(err, 0, "kiln.json: %s.%s must be a string (no NUL)", stack, k);
        if (o->n_stack >= KILN_PLAN_MAX_ITEMS)
            return kiln_error_set(err, 0, "kiln.json: more than %d provider settings",
                                  KILN_PLAN_MAX_ITEMS);
        o->stack[o->n_stack++] = kiln_xasprintf("%s.%s=%s", stack, k, json_string_value(v));
    }
    return 0;
}

/* The value of kiln.json's "<stack>.<key>", or NULL. */
static const char *stack_value(const kiln_overrides_t *o, const char *stack, const char *key)
{
    size_t sl = strlen(stack), kl = strlen(key);
    for (size_t i = 0; o && i < o->n_stack; i++) {
        const char *e = o->stack[i];
        if (strncmp(e, stack, sl) == 0 && e[sl] == '.' && strncmp(e + sl + 1, key, kl) == 0 &&
            e[sl + 1 + kl] == '=')
            return e + sl + 1 + kl + 1;
    }
    return NULL;
}

const char *kiln_overrides_stack(const kiln_detect_ctx_t *ctx, const char *stack, const char *key,
                                 const char *var, char *source, size_t n)
{
    const char *v = var ? kiln_detect_getenv(ctx, var) : NULL;
    if (v != NULL) {
        snprintf(source, n, "%s", var);
        return v;
    }
    if ((v = stack_value(ctx->overrides, stack, key)) != NULL)
        snprintf(source, n, "kiln.json %s.%s", stack, key);
    return v;
}

int kiln_overrides_stack_check(const kiln_detect_ctx_t *ctx, const char *stack,
                               const char *const *keys, kiln_error_t *err)
{
    const kiln_overrides_t *o = ctx->overrides;
    size_t sl = strlen(stack);

    for (size_t i = 0; o && i < o->n_stack; i++) {
        const char *e = o->stack[i], *name = e + sl + 1;
        bool known = false;
        if (strncmp(e, stack, sl) != 0 || e[sl] != '.')
            continue;
        for (size_t j = 0; keys[j]; j++)
            known |= strncmp(name, keys[j], strlen(keys[j])) == 0 && name[strlen(keys[j])] == '=';
        if (!known) {
            char list[256] = "";
            for (size_t j = 0; keys[j]; j++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", j ? ", " : "",
                         keys[j]);
            return kiln_error_set(err, 0,
                                  "kiln.json: %s.%.*s is not a setting of the %s provider (it has "
                                  "%s)",
                                  stack, (int)strcspn(name, "="), name, stack, list);
        }
    }
    return 0;
}

/* Fills *o from the parsed object. */
static int parse_object(json_t *root, kiln_overrides_t *o, kiln_error_t *err)
{
    const char *k;
    json_t *v, *sub;

    if (!json_is_object(root))
        return kiln_error_set(err, 0, "kiln.json: the top level must be an object");
    json_object_foreach(root, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(known_members) / sizeof(known_members[0]); i++)
            known |= strcmp(k, known_members[i]) == 0;
        if (!known && kiln_detect_provider_known(k)) {
            if (parse_stack(k, v, o, err) < 0)
                return -1;
            known = true;
        }
        if (!known)
            return kiln_error_set(err, 0, "kiln.json: unknown member \"%.64s\"", k);
    }
    if (member_str(root, "provider", "", &o->provider, err) < 0 ||
        member_str(root, "install", "", &o->install, err) < 0 ||
        member_str(root, "build", "", &o->build, err) < 0 ||
        member_str(root, "start", "", &o->start, err) < 0 ||
        member_str(root, "outputDir", "", &o->output_dir, err) < 0 ||
        member_str(root, "nodeVersion", "", &o->node_version, err) < 0 ||
        member_str(root, "pythonVersion", "", &o->python_version, err) < 0 ||
        member_str(root, "goVersion", "", &o->go_version, err) < 0 ||
        member_str(root, "goMain", "", &o->go_main, err) < 0)
        return -1;
    if (o->provider != NULL && !kiln_detect_provider_known(o->provider)) {
        _cleanup_free_ char *names = kiln_detect_provider_names();
        return kiln_error_set(err, 0, "kiln.json: provider must be one of %s", names);
    }
    if (o->output_dir != NULL && (o->output_dir[0] == '/' || strstr(o->output_dir, "..")))
        return kiln_error_set(err, 0,
                              "kiln.json: outputDir must be a relative path inside the "
                              "repository");
    if ((v = json_object_get(root, "outputs")) != NULL && parse_outputs(v, &o->outputs, err) < 0)
        return -1;
    if ((v = json_object_get(root, "port")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
            return kiln_error_set(err, 0, "kiln.json: port must be an integer 1..65535");
        o->port = (int)json_integer_value(v);
    }
    if ((sub = json_object_get(root, "images")) != NULL) {
        if (!json_is_object(sub))
            return kiln_error_set(err, 0, "kiln.json: images must be an object");
        if (member_str(sub, "build", "images.", &o->build_image, err) < 0 ||
            member_str(sub, "run", "images.", &o->run_image, err) < 0)
            return -1;
    }
    if ((sub = json_object_get(root, "function")) != NULL) {
        if (!json_is_object(sub))
            return kiln_error_set(err, 0, "kiln.json: function must be an object");
        if (member_str(sub, "handler", "function.", &o->handler, err) < 0 ||
            member_str(sub, "runtime", "function.", &o->runtime, err) < 0 ||
            member_str(sub, "dir", "function.", &o->function_dir, err) < 0)
            return -1;
        if (o->function_dir != NULL && (o->function_dir[0] == '/' || strstr(o->function_dir, "..")))
            return kiln_error_set(err, 0,
                                  "kiln.json: function.dir must be a relative path inside the "
                                  "repository");
    }
    if ((sub = json_object_get(root, "env")) != NULL) {
        if (!json_is_object(sub))
            return kiln_error_set(err, 0, "kiln.json: env must be an object of strings");
        json_object_foreach(sub, k, v)
        {
            if (!env_name_ok(k))
                return kiln_error_set(err, 0, "kiln.json: env: \"%.64s\" is not a variable name",
                                      k);
            if (!json_is_string(v) || json_string_length(v) > OVERRIDE_VALUE_MAX)
                return kiln_error_set(err, 0, "kiln.json: env.%s must be a string", k);
            if (o->n_env >= KILN_PLAN_MAX_ITEMS)
                return kiln_error_set(err, 0, "kiln.json: env: more than %d variables",
                                      KILN_PLAN_MAX_ITEMS);
            o->env[o->n_env++] = kiln_xasprintf("%s=%s", k, json_string_value(v));
        }
    }
    return 0;
}

int kiln_overrides_parse(const char *text, size_t len, kiln_overrides_t *o, kiln_error_t *err)
{
    json_error_t jerr;
    json_t *root;
    int ret;

    memset(o, 0, sizeof(*o));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return kiln_error_set(err, 0, "kiln.json line %d: %s", jerr.line, jerr.text);
    ret = parse_object(root, o, err);
    json_decref(root);
    if (ret < 0)
        kiln_overrides_free(o);
    return ret;
}

int kiln_overrides_load(const kiln_detect_ctx_t *ctx, kiln_overrides_t *o, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    static const struct {
        const char *var;
        size_t off;
    } vars[] = {
        {"KILN_PROVIDER", offsetof(kiln_overrides_t, provider)},
        {"KILN_INSTALL_CMD", offsetof(kiln_overrides_t, install)},
        {"KILN_BUILD_CMD", offsetof(kiln_overrides_t, build)},
        {"KILN_START_CMD", offsetof(kiln_overrides_t, start)},
        {"KILN_OUTPUT_DIR", offsetof(kiln_overrides_t, output_dir)},
        {"KILN_BUILD_IMAGE", offsetof(kiln_overrides_t, build_image)},
        {"KILN_RUN_IMAGE", offsetof(kiln_overrides_t, run_image)},
        {"KILN_GO_VERSION", offsetof(kiln_overrides_t, go_version)},
        {"KILN_GO_MAIN", offsetof(kiln_overrides_t, go_main)},
    };
    const char *v;
    int r = kiln_tree_read(ctx->tree, "kiln.json", &text, err);

    memset(o, 0, sizeof(*o));
    if (r < 0)
        return -1;
    if (r > 0 && kiln_overrides_parse(text, strlen(text), o, err) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if ((v = kiln_detect_getenv(ctx, vars[i].var)) != NULL)
            kiln_plan_set((char **)((char *)o + vars[i].off), v);
    }
    if ((v = kiln_detect_getenv(ctx, "KILN_OUTPUTS")) != NULL) {
        unsigned bits = 0;
        _cleanup_free_ char *copy = kiln_xstrdup(v);
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            unsigned b = kiln_plan_output_parse(tok);
            if (b == 0) {
                kiln_overrides_free(o);
                return kiln_error_set(
                    err, 0, "KILN_OUTPUTS: \"%.32s\" is not image, static or function", tok);
            }
            bits |= b;
        }
        o->outputs = bits;
    }
    if ((v = kiln_detect_getenv(ctx, "KILN_PORT")) != NULL) {
        char *end;
        long p = strtol(v, &end, 10);
        if (*end != '\0' || p < 1 || p > 65535) {
            kiln_overrides_free(o);
            return kiln_error_set(err, 0, "KILN_PORT: \"%.16s\" is not a port number", v);
        }
        o->port = (int)p;
    }
    return 0;
}

int kiln_overrides_apply(const kiln_overrides_t *o, kiln_plan_t *plan, kiln_error_t *err)
{
    if (o->install)
        kiln_plan_set(&plan->install, o->install);
    if (o->build)
        kiln_plan_set(&plan->build, o->build);
    if (o->start)
        kiln_plan_set(&plan->start, o->start);
    if (o->outputs)
        plan->outputs = o->outputs;
    if (o->output_dir) {
        kiln_plan_set(&plan->output_dir, o->output_dir);
        if (o->outputs == 0)
            plan->outputs = KILN_PLAN_OUT_STATIC;
    }
    if (o->build_image)
        kiln_plan_set(&plan->build_image, o->build_image);
    if (o->run_image)
        kiln_plan_set(&plan->run_image, o->run_image);
    if (o->port)
        plan->port = o->port;
    if (o->handler)
        kiln_plan_set(&plan->handler, o->handler);
    if (o->runtime)
        kiln_plan_set(&plan->runtime, o->runtime);
    if (o->function_dir)
        kiln_plan_set(&plan->function_dir, o->function_dir);
    for (size_t i = 0; i < o->n_env; i++) {
        const char *eq = strchr(o->env[i], '=');
        _cleanup_free_ char *k = kiln_xstrndup(o->env[i], (size_t)(eq - o->env[i]));
        if (kiln_plan_setenv(plan, k, eq + 1, err) < 0)
            return -1;
    }
    return 0;
}
