/* kiln — a build plan (see plan.h): its fields, env and caches set and freed, the reason of
 * each choice, and its JSON (`kiln plan`, `kiln build --plan`) written and read back. */
#include "handlers/plan.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Largest plan JSON accepted (a plan is a few KiB). */
#define PLAN_JSON_CAP (1024 * 1024)

kiln_plan_t *kiln_plan_new(void)
{
    kiln_plan_t *p = kiln_xzalloc(sizeof(*p));
    p->workdir = kiln_xstrdup("/app");
    return p;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
}

void kiln_plan_free(kiln_plan_t *p)
{
    if (p == NULL)
        return;
    free(p->provider);
    free(p->framework);
    free(p->package_manager);
    free(p->project);
    free(p->language);
    free(p->version);
    free(p->version_source);
    free(p->dockerfile);
    free_list(p->manifests, p->n_manifests);
    free(p->setup);
    free(p->install);
    free(p->build);
    free(p->start);
    free(p->start_script);
    free(p->prune);
    for (size_t i = 0; i < p->n_caches; i++) {
        free(p->caches[i].id);
        free(p->caches[i].target);
    }
    free_list(p->deps, p->n_deps);
    free_list(p->layers, p->n_layers);
    free(p->toolchain.name);
    free(p->toolchain.version);
    free(p->toolchain.package);
    free(p->toolchain.prefix);
    free(p->toolchain.run_path);
    kiln_plan_tool_set(&p->toolchain.with, NULL);
    free(p->output_dir);
    free(p->function_dir);
    free(p->handler);
    free(p->function_adapter);
    free(p->runtime);
    free(p->function_deps);
    free(p->build_image);
    free(p->run_image);
    free(p->workdir);
    free_list(p->env, p->n_env);
    free_list(p->build_env, p->n_build_env);
    free_list(p->run_env, p->n_run_env);
    free_list(p->notes, p->n_notes);
    free_list(p->why, KILN_WHY_N);
    free_list(p->run_files, p->n_run_files);
    free(p);
}

static const char *const why_keys[KILN_WHY_N] = {
    "provider", "framework", "packageManager", "version", "install", "build",
    "start",    "output",    "port",           "handler", "runtime",
};
static const char *const why_names[KILN_WHY_N] = {
    "provider",      "framework",     "package manager", "version", "install command",
    "build command", "start command", "output",          "port",    "handler",
    "runtime",
};

const char *kiln_plan_why_key(kiln_plan_why_t what)
{
    return (unsigned)what < KILN_WHY_N ? why_keys[what] : "?";
}

const char *kiln_plan_why_name(kiln_plan_why_t what)
{
    return (unsigned)what < KILN_WHY_N ? why_names[what] : "?";
}

void kiln_plan_why(kiln_plan_t *plan, kiln_plan_why_t what, const char *fmt, ...)
{
    va_list ap;
    char *s;

    if ((unsigned)what >= KILN_WHY_N)
        return;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    free(plan->why[what]);
    plan->why[what] = s;
}

/* The value a choice took, as text ("" when the plan has none). */
static char *choice_value(const kiln_plan_t *p, kiln_plan_why_t w)
{
    switch (w) {
    case KILN_WHY_PROVIDER:
        return kiln_xstrdup(p->provider ? p->provider : "");
    case KILN_WHY_FRAMEWORK:
        return kiln_xstrdup(p->framework ? p->framework : "");
    case KILN_WHY_PACKAGE_MANAGER:
        return kiln_xstrdup(p->package_manager ? p->package_manager : "");
    case KILN_WHY_VERSION:
        return p->version ? kiln_xasprintf("%s %s", p->language ? p->language : "", p->version)
                          : kiln_xstrdup("");
    case KILN_WHY_INSTALL:
        return kiln_xstrdup(p->install ? p->install : "");
    case KILN_WHY_BUILD:
        return kiln_xstrdup(p->build ? p->build : "");
    case KILN_WHY_START:
        return kiln_xstrdup(p->start ? p->start : "");
    case KILN_WHY_OUTPUT:
        return p->outputs & KILN_PLAN_OUT_STATIC
                   ? kiln_xasprintf("static site (%s/)", p->output_dir ? p->output_dir : ".")
               : p->outputs & KILN_PLAN_OUT_FUNCTION ? kiln_xstrdup("function package")
               : p->outputs & KILN_PLAN_OUT_IMAGE    ? kiln_xstrdup("image")
                                                     : kiln_xstrdup("");
    case KILN_WHY_PORT:
        return p->port > 0 ? kiln_xasprintf("%d", p->port) : kiln_xstrdup("");
    case KILN_WHY_HANDLER: /* a handler or runtime is a choice of a function plan only */
        return kiln_xstrdup(p->handler && (p->outputs & KILN_PLAN_OUT_FUNCTION) ? p->handler : "");
    case KILN_WHY_RUNTIME:
        return kiln_xstrdup(p->runtime && (p->outputs & KILN_PLAN_OUT_FUNCTION) ? p->runtime : "");
    default:
        return kiln_xstrdup("");
    }
}

char *kiln_plan_explain(const kiln_plan_t *p)
{
    kiln_buf_t b;

    /* every choice with its reason: the reasons quote package.json scripts (<= 200 bytes) */
    kiln_buf_init(&b, 64 * 1024);
    for (int w = 0; w < KILN_WHY_N; w++) {
        _cleanup_free_ char *v = choice_value(p, (kiln_plan_why_t)w);
        if (v[0] == '\0' && p->why[w] == NULL)
            continue;
        kiln_buf_appendf(&b, NULL, "%-16s %s\n", why_names[w], v[0] ? v : "(none)");
        if (p->why[w] != NULL)
            kiln_buf_appendf(&b, NULL, "%-16s   why: %s\n", "", p->why[w]);
    }
    for (size_t i = 0; i < p->n_notes; i++)
        kiln_buf_appendf(&b, NULL, "note             %s\n", p->notes[i]);
    return kiln_buf_steal(&b, NULL);
}

void kiln_plan_set(char **field, const char *value)
{
    char *v = value ? kiln_xstrdup(value) : NULL;
    free(*field);
    *field = v;
}

void kiln_plan_tool_set(kiln_plan_tool_t *dst, const kiln_plan_tool_t *src)
{
    static const kiln_plan_tool_t none = {0};

    if (src == NULL)
        src = &none;
    kiln_plan_set(&dst->name, src->name);
    kiln_plan_set(&dst->package, src->package);
    kiln_plan_set(&dst->version, src->version);
    kiln_plan_set(&dst->integrity, src->integrity);
    kiln_plan_set(&dst->hash, src->hash);
    kiln_plan_set(&dst->hash_file, src->hash_file);
    dst->lib = src->lib;
}

int kiln_plan_add_capped(char **list, size_t *n, size_t cap, kiln_error_t *err, const char *fmt,
                         ...)
{
    va_list ap;
    char *s = NULL;

    if (*n >= cap)
        return kiln_error_set(err, ENOBUFS, "plan: more than %zu items in a list", cap);
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    list[(*n)++] = s;
    return 0;
}

int kiln_plan_add_cache(kiln_plan_t *plan, const char *name, const char *target, kiln_error_t *err)
{
    kiln_plan_cache_t *c;

    if (plan->n_caches >= KILN_PLAN_MAX_ITEMS)
        return kiln_error_set(err, ENOBUFS, "plan: too many caches");
    c = &plan->caches[plan->n_caches++];
    c->id = kiln_xstrdup(name); /* kiln_plan_detect prefixes the project once it is known */
    c->target = kiln_xstrdup(target);
    return 0;
}

int kiln_plan_add_shared_cache(kiln_plan_t *plan, const char *name, const char *target,
                               kiln_error_t *err)
{
    if (kiln_plan_add_cache(plan, name, target, err) < 0)
        return -1;
    plan->caches[plan->n_caches - 1].shared = true;
    return 0;
}

/* Index of KEY in the env list, or -1. */
static long env_index(char *const *env, size_t n, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
            return (long)i;
    }
    return -1;
}

/* Sets KEY=VALUE in one of the plan's env lists. */
static int setenv_in(char **env, size_t *n, const char *key, const char *value, kiln_error_t *err)
{
    long i = env_index(env, *n, key);

    if (i >= 0) {
        free(env[i]);
        env[i] = kiln_xasprintf("%s=%s", key, value);
        return 0;
    }
    return kiln_plan_add(env, n, err, "%s=%s", key, value);
}

int kiln_plan_setenv(kiln_plan_t *plan, const char *key, const char *value, kiln_error_t *err)
{
    return setenv_in(plan->env, &plan->n_env, key, value, err);
}

int kiln_plan_setenv_build(kiln_plan_t *plan, const char *key, const char *value, kiln_error_t *err)
{
    return setenv_in(plan->build_env, &plan->n_build_env, key, value, err);
}

int kiln_plan_setenv_run(kiln_plan_t *plan, const char *key, const char *value, kiln_error_t *err)
{
    return setenv_in(plan->run_env, &plan->n_run_env, key, value, err);
}

const char *kiln_plan_getenv(const kiln_plan_t *plan, const char *key)
{
    long i = env_index(plan->env, plan->n_env, key);
    return i >= 0 ? plan->env[i] + strlen(key) + 1 : NULL;
}

static const struct {
    kiln_plan_output_t bit;
    const char *name;
} output_names[] = {
    {KILN_PLAN_OUT_IMAGE, "image"},
    {KILN_PLAN_OUT_STATIC, "static"},
    {KILN_PLAN_OUT_FUNCTION, "function"},
};

const char *kiln_plan_output_name(kiln_plan_output_t o)
{
    for (size_t i = 0; i < sizeof(output_names) / sizeof(output_names[0]); i++)
        if (output_names[i].bit == o)
            return output_names[i].name;
    return "?";
}

unsigned kiln_plan_output_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(output_names) / sizeof(output_names[0]); i++)
        if (strcmp(output_names[i].name, name) == 0)
            return output_names[i].bit;
    return 0;
}

/* Adds key: string (or nothing when s is NULL). */
static void put_str(json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(o, key, json_string(s));
}

static json_t *str_array(char *const *list, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(list[i]));
    return a;
}

/* {"KEY": "VALUE"} of an env list. */
static json_t *env_object(char *const *env, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(env[i], '=');
        _cleanup_free_ char *k = kiln_xstrndup(env[i], (size_t)(eq - env[i]));
        json_object_set_new(o, k, json_string(eq + 1));
    }
    return o;
}

/* The string fields of a plan's toolchain.with and their JSON keys. */
static const struct {
    const char *key;
    size_t offset;
} tool_keys[] = {
    {"name", offsetof(kiln_plan_tool_t, name)},
    {"package", offsetof(kiln_plan_tool_t, package)},
    {"version", offsetof(kiln_plan_tool_t, version)},
    {"integrity", offsetof(kiln_plan_tool_t, integrity)},
    {"hash", offsetof(kiln_plan_tool_t, hash)},
    {"hashFile", offsetof(kiln_plan_tool_t, hash_file)},
};

int kiln_plan_to_json(const kiln_plan_t *p, char **out, kiln_error_t *err)
{
    json_t *root = json_object(), *o, *a;
    char *s;

    put_str(root, "provider", p->provider);
    put_str(root, "framework", p->framework);
    put_str(root, "packageManager", p->package_manager);
    put_str(root, "project", p->project);
    put_str(root, "dockerfile", p->dockerfile);
    o = json_object();
    if (p->language != NULL && p->version != NULL)
        json_object_set_new(o, p->language, json_string(p->version));
    json_object_set_new(root, "versions", o);
    put_str(root, "versionSource", p->version_source);
    if (p->toolchain.name != NULL) {
        o = json_object();
        put_str(o, "name", p->toolchain.name);
        put_str(o, "version", p->toolchain.version);
        put_str(o, "package", p->toolchain.package);
        put_str(o, "prefix", p->toolchain.prefix);
        put_str(o, "runPath", p->toolchain.run_path);
        if (p->toolchain.with.package != NULL) {
            const kiln_plan_tool_t *t = &p->toolchain.with;
            json_t *w = json_object();
            for (size_t i = 0; i < sizeof(tool_keys) / sizeof(tool_keys[0]); i++)
                put_str(w, tool_keys[i].key,
                        *(char *const *)((const char *)t + tool_keys[i].offset));
            if (t->lib)
                json_object_set_new(w, "lib", json_true());
            json_object_set_new(o, "with", w);
        }
        if (p->toolchain.build_only)
            json_object_set_new(o, "buildOnly", json_true());
        json_object_set_new(root, "toolchain", o);
    }
    json_object_set_new(root, "manifests", str_array(p->manifests, p->n_manifests));
    o = json_object();
    put_str(o, "setup", p->setup);
    put_str(o, "install", p->install);
    put_str(o, "build", p->build);
    put_str(o, "start", p->start);
    put_str(o, "prune", p->prune);
    json_object_set_new(root, "commands", o);
    a = json_array();
    for (size_t i = 0; i < p->n_caches; i++)
        json_array_append_new(
            a, json_pack("{s:s,s:s}", "id", p->caches[i].id, "target", p->caches[i].target));
    json_object_set_new(root, "caches", a);
    json_object_set_new(root, "deps", str_array(p->deps, p->n_deps));
    if (p->n_layers > 0)
        json_object_set_new(root, "layers", str_array(p->layers, p->n_layers));
    if (p->n_run_files > 0)
        json_object_set_new(root, "runFiles", str_array(p->run_files, p->n_run_files));
    if (p->run_deps)
        json_object_set_new(root, "runDeps", json_true());
    a = json_array();
    for (size_t i = 0; i < sizeof(output_names) / sizeof(output_names[0]); i++) {
        if (!(p->outputs & output_names[i].bit))
            continue;
        o = json_object();
        put_str(o, "type", output_names[i].name);
        if (output_names[i].bit == KILN_PLAN_OUT_STATIC)
            put_str(o, "dir", p->output_dir);
        if (output_names[i].bit == KILN_PLAN_OUT_FUNCTION) {
            put_str(o, "dir", p->function_dir);
            put_str(o, "handler", p->handler);
            put_str(o, "runtime", p->runtime);
            if (p->function_bundled)
                json_object_set_new(o, "bundled", json_true());
            put_str(o, "adapter", p->function_adapter);
            put_str(o, "deps", p->function_deps);
        }
        json_array_append_new(a, o);
    }
    json_object_set_new(root, "outputs", a);
    o = json_object();
    put_str(o, "build", p->build_image);
    put_str(o, "run", p->run_image);
    json_object_set_new(root, "images", o);
    put_str(root, "workdir", p->workdir);
    if (p->port > 0)
        json_object_set_new(root, "port", json_integer(p->port));
    json_object_set_new(root, "env", env_object(p->env, p->n_env));
    if (p->n_build_env > 0)
        json_object_set_new(root, "buildEnv", env_object(p->build_env, p->n_build_env));
    if (p->n_run_env > 0)
        json_object_set_new(root, "runEnv", env_object(p->run_env, p->n_run_env));
    json_object_set_new(root, "notes", str_array(p->notes, p->n_notes));
    o = json_object();
    for (int w = 0; w < KILN_WHY_N; w++)
        put_str(o, why_keys[w], p->why[w]);
    json_object_set_new(root, "why", o);

    s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s == NULL)
        return kiln_error_set(err, ENOMEM, "plan: cannot serialise to JSON");
    *out = s;
    return 0;
}

/* Copies an optional string member; fails when present but not a string. */
static int get_str(json_t *o, const char *key, char **field, kiln_error_t *err)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return kiln_error_set(err, 0, "plan: \"%s\" must be a string", key);
    kiln_plan_set(field, json_string_value(v));
    return 0;
}

static int get_str_array(json_t *o, const char *key, char **list, size_t *n, size_t cap,
                         kiln_error_t *err)
{
    json_t *a = json_object_get(o, key), *v;
    size_t i;

    if (a == NULL)
        return 0;
    if (!json_is_array(a))
        return kiln_error_set(err, 0, "plan: \"%s\" must be an array of strings", key);
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            return kiln_error_set(err, 0, "plan: \"%s\"[%zu] must be a string", key, i);
        if (kiln_plan_add_capped(list, n, cap, err, "%s", json_string_value(v)) < 0)
            return kiln_error_prefix(err, "\"%s\"", key);
    }
    return 0;
}

/* An env object ({"KEY": "VALUE"}) into one of the plan's env lists. */
static int get_env(json_t *root, const char *key, char **env, size_t *n, kiln_error_t *err)
{
    json_t *o = json_object_get(root, key), *v;
    const char *k;

    if (!json_is_object(o))
        return 0;
    json_object_foreach(o, k, v)
    {
        if (!json_is_string(v) || k[0] == '\0' || strchr(k, '=') != NULL)
            return kiln_error_set(err, 0, "plan: %s.%s must be a string", key, k);
        if (setenv_in(env, n, k, json_string_value(v), err) < 0)
            return -1;
    }
    return 0;
}

/* Fills the plan from a parsed JSON object. */
static int plan_from_object(json_t *root, kiln_plan_t *p, kiln_error_t *err)
{
    json_t *o, *v;
    const char *k;
    size_t i;

    if (!json_is_object(root))
        return kiln_error_set(err, 0, "plan: the top level must be a JSON object");
    if (get_str(root, "provider", &p->provider, err) < 0 ||
        get_str(root, "framework", &p->framework, err) < 0 ||
        get_str(root, "packageManager", &p->package_manager, err) < 0 ||
        get_str(root, "project", &p->project, err) < 0 ||
        get_str(root, "dockerfile", &p->dockerfile, err) < 0 ||
        get_str(root, "versionSource", &p->version_source, err) < 0 ||
        get_str(root, "workdir", &p->workdir, err) < 0)
        return -1;
    if (p->provider == NULL)
        return kiln_error_set(err, 0, "plan: \"provider\" is missing");
    o = json_object_get(root, "versions");
    if (json_is_object(o) && json_object_size(o) > 0) {
        json_object_foreach(o, k, v)
        {
            if (!json_is_string(v))
                return kiln_error_set(err, 0, "plan: versions.%s must be a string", k);
            kiln_plan_set(&p->language, k);
            kiln_plan_set(&p->version, json_string_value(v));
            break;
        }
    }
    o = json_object_get(root, "toolchain");
    if (json_is_object(o)) {
        json_t *w = json_object_get(o, "with");
        if (get_str(o, "name", &p->toolchain.name, err) < 0 ||
            get_str(o, "version", &p->toolchain.version, err) < 0 ||
            get_str(o, "package", &p->toolchain.package, err) < 0 ||
            get_str(o, "prefix", &p->toolchain.prefix, err) < 0 ||
            get_str(o, "runPath", &p->toolchain.run_path, err) < 0)
            return kiln_error_prefix(err, "toolchain");
        for (size_t t = 0; t < sizeof(tool_keys) / sizeof(tool_keys[0]); t++)
            if (get_str(w, tool_keys[t].key,
                        (char **)((char *)&p->toolchain.with + tool_keys[t].offset), err) < 0)
                return kiln_error_prefix(err, "toolchain.with");
        p->toolchain.with.lib = json_is_true(json_object_get(w, "lib"));
        p->toolchain.build_only = json_is_true(json_object_get(o, "buildOnly"));
    }
    if (get_str_array(root, "manifests", p->manifests, &p->n_manifests, KILN_PLAN_MAX_PATHS, err) <
            0 ||
        get_str_array(root, "deps", p->deps, &p->n_deps, KILN_PLAN_MAX_PATHS, err) < 0 ||
        get_str_array(root, "layers", p->layers, &p->n_layers, KILN_PLAN_MAX_ITEMS, err) < 0 ||
        get_str_array(root, "runFiles", p->run_files, &p->n_run_files, KILN_PLAN_MAX_ITEMS, err) <
            0 ||
        get_str_array(root, "notes", p->notes, &p->n_notes, KILN_PLAN_MAX_ITEMS, err) < 0)
        return -1;
    v = json_object_get(root, "runDeps");
    if (v != NULL && !json_is_boolean(v))
        return kiln_error_set(err, 0, "plan: \"runDeps\" must be a boolean");
    p->run_deps = json_is_true(v);
    o = json_object_get(root, "why");
    if (o != NULL && !json_is_object(o))
        return kiln_error_set(err, 0, "plan: \"why\" must be an object");
    for (int w = 0; o != NULL && w < KILN_WHY_N; w++) {
        v = json_object_get(o, why_keys[w]);
        if (v != NULL && !json_is_null(v) && !json_is_string(v))
            return kiln_error_set(err, 0, "plan: why.%s must be a string", why_keys[w]);
        kiln_plan_set(&p->why[w], json_string_value(v));
    }
    o = json_object_get(root, "commands");
    if (json_is_object(o)) {
        if (get_str(o, "setup", &p->setup, err) < 0 ||
            get_str(o, "install", &p->install, err) < 0 ||
            get_str(o, "build", &p->build, err) < 0 || get_str(o, "start", &p->start, err) < 0 ||
            get_str(o, "prune", &p->prune, err) < 0)
            return kiln_error_prefix(err, "commands");
    }
    o = json_object_get(root, "caches");
    if (json_is_array(o)) {
        json_array_foreach(o, i, v)
        {
            json_t *id = json_object_get(v, "id"), *t = json_object_get(v, "target");
            if (!json_is_string(id) || !json_is_string(t))
                return kiln_error_set(err, 0, "plan: caches[%zu] needs string id and target", i);
            if (p->n_caches >= KILN_PLAN_MAX_ITEMS)
                return kiln_error_set(err, ENOBUFS, "plan: too many caches");
            p->caches[p->n_caches].id = kiln_xstrdup(json_string_value(id));
            p->caches[p->n_caches++].target = kiln_xstrdup(json_string_value(t));
        }
    }
    o = json_object_get(root, "outputs");
    if (json_is_array(o)) {
        json_array_foreach(o, i, v)
        {
            json_t *t = json_object_get(v, "type");
            unsigned bit = json_is_string(t) ? kiln_plan_output_parse(json_string_value(t)) : 0;
            if (bit == 0)
                return kiln_error_set(
                    err, 0, "plan: outputs[%zu].type must be image, static or function", i);
            p->outputs |= bit;
            if (bit == KILN_PLAN_OUT_STATIC && get_str(v, "dir", &p->output_dir, err) < 0)
                return -1;
            if (bit == KILN_PLAN_OUT_FUNCTION &&
                (get_str(v, "dir", &p->function_dir, err) < 0 ||
                 get_str(v, "handler", &p->handler, err) < 0 ||
                 get_str(v, "runtime", &p->runtime, err) < 0 ||
                 get_str(v, "deps", &p->function_deps, err) < 0 ||
                 get_str(v, "adapter", &p->function_adapter, err) < 0))
                return -1;
            if (bit == KILN_PLAN_OUT_FUNCTION) {
                json_t *b = json_object_get(v, "bundled");
                if (b != NULL && !json_is_boolean(b))
                    return kiln_error_set(err, 0, "plan: outputs[%zu].bundled must be a boolean",
                                          i);
                p->function_bundled = json_is_true(b);
            }
        }
    }
    o = json_object_get(root, "images");
    if (json_is_object(o)) {
        if (get_str(o, "build", &p->build_image, err) < 0 ||
            get_str(o, "run", &p->run_image, err) < 0)
            return kiln_error_prefix(err, "images");
    }
    v = json_object_get(root, "port");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
            return kiln_error_set(err, 0, "plan: \"port\" must be an integer 1..65535");
        p->port = (int)json_integer_value(v);
    }
    if (get_env(root, "env", p->env, &p->n_env, err) < 0 ||
        get_env(root, "buildEnv", p->build_env, &p->n_build_env, err) < 0 ||
        get_env(root, "runEnv", p->run_env, &p->n_run_env, err) < 0)
        return -1;
    return 0;
}

int kiln_plan_from_json(const char *json, size_t len, kiln_plan_t **out, kiln_error_t *err)
{
    json_error_t jerr;
    json_t *root;
    _cleanup_plan_ kiln_plan_t *p = NULL;
    int ret;

    if (len > PLAN_JSON_CAP)
        return kiln_error_set(err, EFBIG, "plan: JSON larger than %d bytes", PLAN_JSON_CAP);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return kiln_error_set(err, 0, "plan: invalid JSON at line %d: %s", jerr.line, jerr.text);
    p = kiln_plan_new();
    ret = plan_from_object(root, p, err);
    json_decref(root);
    if (ret < 0)
        return -1;
    *out = steal_pointer(&p);
    return 0;
}
