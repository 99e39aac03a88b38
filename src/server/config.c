/* kiln server — the configuration file read and checked (see config.h): tenants and tokens,
 * webhook projects, the build policy, limits and request/connection bounds, each bad value
 * named by its key. */
#include "src/server/config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "job/codec.h"
#include "src/server/limits.h"
#include "src/server/tenant.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"

#define CONFIG_CAP (1024 * 1024)

/* Checks the shape of one project entry; fails naming it. */
static int check_project(json_t *p, size_t i, kiln_error_t *err)
{
    static const char *const str_keys[] = {"name",   "github",       "gitlab",
                                           "secret", "gitlab_token", "tenant"};
    if (!json_is_object(p))
        return kiln_error_set(err, 0, "projects[%zu]: must be an object", i);
    for (size_t k = 0; k < sizeof(str_keys) / sizeof(str_keys[0]); k++) {
        json_t *v = json_object_get(p, str_keys[k]);
        if (v && !json_is_string(v))
            return kiln_error_set(err, 0, "projects[%zu].%s: must be a string", i, str_keys[k]);
    }
    if (json_object_get(p, "build") && !json_is_object(json_object_get(p, "build")))
        return kiln_error_set(err, 0, "projects[%zu].build: must be an object", i);
    return 0;
}

/* Checks policy.entitlements (known names) and policy.isolation (sandbox or
 * chroot); fails naming the bad entry. */
static int check_confinement(json_t *policy, kiln_error_t *err)
{
    json_t *ents = json_object_get(policy, "entitlements"), *iso, *v;
    size_t i;

    if (ents && !json_is_array(ents))
        return kiln_error_set(err, 0, "policy.entitlements: must be an array of strings");
    json_array_foreach(ents, i, v)
    {
        unsigned bit = 0;
        if (!json_is_string(v) || strchr(json_string_value(v), ',') ||
            kiln_entitlement_parse(json_string_value(v), &bit, err) < 0)
            return kiln_error_set(err, 0,
                                  "policy.entitlements[%zu]: must be network.host or "
                                  "security.insecure",
                                  i);
    }
    iso = json_object_get(policy, "isolation");
    if (iso && (!json_is_string(iso) || (strcmp(json_string_value(iso), "sandbox") != 0 &&
                                         strcmp(json_string_value(iso), "chroot") != 0)))
        return kiln_error_set(err, 0, "policy.isolation: must be \"sandbox\" or \"chroot\"");
    return 0;
}

unsigned kiln_config_entitlements(const kiln_config_t *c)
{
    unsigned set = 0;
    size_t i;
    json_t *v;

    json_array_foreach(json_object_get(c->policy, "entitlements"), i, v)
        kiln_entitlement_parse(json_string_value(v), &set, NULL);
    return set;
}

const char *kiln_config_isolation(const kiln_config_t *c)
{
    const char *s = json_string_value(json_object_get(c->policy, "isolation"));
    return s ? s : "sandbox";
}

/* Checks the "policy" object: allow_addresses is an array of valid
 * CIDR[:PORT] entries; fails naming the bad one. */
static int check_policy(json_t *policy, kiln_error_t *err)
{
    json_t *list, *v;
    size_t i;

    if (!json_is_object(policy))
        return kiln_error_set(err, 0, "policy: must be an object");
    if (check_confinement(policy, err) < 0)
        return -1;
    v = json_object_get(policy, "allow_http_git");
    if (v != NULL && !json_is_boolean(v))
        return kiln_error_set(err, 0, "policy.allow_http_git: must be true or false");
    list = json_object_get(policy, "oci_dirs");
    if (list != NULL && !json_is_array(list))
        return kiln_error_set(err, 0, "policy.oci_dirs: must be an array of absolute paths");
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || json_string_value(v)[0] != '/')
            return kiln_error_set(err, 0, "policy.oci_dirs[%zu]: must be an absolute path", i);
    }
    list = json_object_get(policy, "additional_stores");
    if (list != NULL && !json_is_array(list))
        return kiln_error_set(err, 0,
                              "policy.additional_stores: must be an array of absolute paths");
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || json_string_value(v)[0] != '/')
            return kiln_error_set(err, 0, "policy.additional_stores[%zu]: must be an absolute path",
                                  i);
    }
    list = json_object_get(policy, "allow_addresses");
    if (list == NULL)
        return 0;
    if (!json_is_array(list))
        return kiln_error_set(err, 0, "policy.allow_addresses: must be an array of strings");
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v))
            return kiln_error_set(err, 0, "policy.allow_addresses[%zu]: must be a string", i);
        if (kiln_netpolicy_validate(json_string_value(v), err) < 0)
            return kiln_error_prefix(err, "policy.allow_addresses[%zu]", i);
    }
    return 0;
}

/* One numeric bound: its key, where it goes, its default and its accepted range. */
static const struct bound_key {
    const char *key;
    size_t off;
    long long def, min, max;
} bound_keys[] = {
    {"max_webhook_bytes", offsetof(kiln_config_bounds_t, max_webhook_bytes), 5LL << 20, 1024,
     1LL << 30},
    {"connection_timeout", offsetof(kiln_config_bounds_t, connection_timeout), 30, 1, 3600},
    {"max_connections", offsetof(kiln_config_bounds_t, max_connections), 4096, 16, 65536},
    {"max_connections_per_address", offsetof(kiln_config_bounds_t, max_connections_per_address),
     128, 1, 65536},
    {"max_context_unpacked_bytes", offsetof(kiln_config_bounds_t, max_context_unpacked_bytes),
     2LL << 30, 1, 1LL << 40},
    {"max_context_entries", offsetof(kiln_config_bounds_t, max_context_entries), 100000, 1,
     10000000},
    {"delivery_retention", offsetof(kiln_config_bounds_t, delivery_retention), 7 * 86400, 60,
     365 * 86400},
    {"build_log_retention", offsetof(kiln_config_bounds_t, build_log_retention), 0, 0,
     10 * 365 * 86400LL},
    {"access_log_retention", offsetof(kiln_config_bounds_t, access_log_retention), 0, 0,
     10 * 365 * 86400LL},
};

/* Fills c->bounds from root's keys (defaults for absent ones); fails naming a key that is
 * not an integer in range. */
static int load_bounds(json_t *root, kiln_config_bounds_t *b, kiln_error_t *err)
{
    for (size_t i = 0; i < sizeof(bound_keys) / sizeof(bound_keys[0]); i++) {
        const struct bound_key *k = &bound_keys[i];
        json_t *v = root ? json_object_get(root, k->key) : NULL;
        long long n = k->def;
        if (v != NULL) {
            if (!json_is_integer(v) || json_integer_value(v) < k->min ||
                json_integer_value(v) > k->max)
                return kiln_error_set(err, 0, "%s: must be an integer from %lld to %lld", k->key,
                                      k->min, k->max);
            n = json_integer_value(v);
        }
        *(long long *)((char *)b + k->off) = n;
    }
    return 0;
}

/* Keeps the build limits ("limits", "max_limits"); fails naming a malformed one. */
static int load_limits(json_t *root, kiln_config_t *c, kiln_error_t *err)
{
    kiln_limits_policy_t scratch = {0};

    c->limits = json_incref(json_object_get(root, "limits"));
    c->max_limits = json_incref(json_object_get(root, "max_limits"));
    if (kiln_stepcaps_config(&c->stepcaps, json_object_get(root, "max_shm_size"),
                             json_object_get(root, "max_ulimits"), err) < 0)
        return -1;
    return kiln_limits_policy_config(&scratch, c->limits, c->max_limits, err);
}

/* A project's "build" (NULL: none) read as the request each push makes of it, with a
 * stand-in source (the push's repository takes its place): every field checked by the job
 * codec, naming it. */
static int project_build_check(json_t *build, kiln_error_t *err)
{
    json_t *req, *secrets = NULL;
    kiln_job_spec_t spec = {0};
    int r;

    if (build == NULL)
        return 0;
    req = json_deep_copy(build);
    json_object_set_new(req, "source", json_pack("{s:s}", "git", "https://project.invalid/r"));
    r = kiln_job_from_json(req, KILN_JOB_JSON_REQUEST, &spec, &secrets, err);
    kiln_job_spec_clear(&spec);
    json_decref(secrets);
    json_decref(req);
    return r;
}

/* The project tenant check, once the tenants are known: "tenant" names one of them
 * ("default" when absent); fails naming the project. */
static int check_project_tenants(kiln_config_t *c, kiln_error_t *err)
{
    size_t i;
    json_t *p;

    json_array_foreach(c->projects, i, p)
    {
        json_t *t = json_object_get(p, "tenant");
        const char *name = t ? json_string_value(t) : KILN_TENANT_DEFAULT;
        const kiln_tenant_t *tn;
        if (t && !json_is_string(t))
            return kiln_error_set(err, 0, "projects[%zu].tenant: must be a string", i);
        if (json_object_get(json_object_get(p, "build"), "tenant"))
            return kiln_error_set(err, 0,
                                  "projects[%zu].build.tenant: the tenant of a project is "
                                  "projects[%zu].tenant",
                                  i, i);
        if ((tn = kiln_config_tenant_named(c, name)) == NULL)
            return kiln_error_set(err, 0, "projects[%zu].tenant: no tenant '%.64s'", i, name);
        /* its fields are a request's (job/spec checks them; the source comes with each
         * push), and its pushes and uploads stay within its tenant's outputs, or no push
         * would build */
        if (project_build_check(json_object_get(p, "build"), err) < 0 ||
            kiln_tenant_check_outputs(tn, json_object_get(p, "build"), &(unsigned){0}, err) < 0)
            return kiln_error_prefix(err, "projects[%zu].build", i);
        if (t == NULL)
            json_object_set_new(p, "tenant", json_string(name));
    }
    return 0;
}

/* Reads the file's object into c (projects, policy, bounds) and its top-level "tokens" into
 * legacy; fails naming the key. */
static int load_root(kiln_config_t *c, json_t *root, json_t *legacy, kiln_error_t *err)
{
    json_t *v, *tokens = json_object_get(root, "tokens");
    size_t i;

    if (tokens && !json_is_array(tokens))
        return kiln_error_set(err, 0, "tokens: must be an array of strings");
    json_array_foreach(tokens, i, v)
    {
        if (!json_is_string(v))
            return kiln_error_set(err, 0, "tokens[%zu]: must be a string of 8+ characters", i);
        json_array_append(legacy, v);
    }
    json_array_foreach(json_object_get(root, "projects"), i, v)
    {
        if (check_project(v, i, err) < 0)
            return -1;
        /* a copy: the tenant default is filled in */
        json_array_append_new(c->projects, json_deep_copy(v));
    }
    if ((v = json_object_get(root, "policy")) != NULL) {
        if (check_policy(v, err) < 0)
            return -1;
        json_object_update(c->policy, v);
    }
    if (load_bounds(root, &c->bounds, err) < 0)
        return -1;
    return load_limits(root, c, err);
}

int kiln_config_load(const char *path, kiln_config_t **out, kiln_error_t *err)
{
    kiln_config_t *c = kiln_xzalloc(sizeof(*c));
    const char *env = getenv("KILN_API_TOKENS");
    json_t *root = NULL, *legacy = json_array();

    c->projects = json_array();
    c->policy = json_object();
    if (load_bounds(NULL, &c->bounds, err) < 0)
        goto fail;
    if (path) {
        _cleanup_free_ char *text = NULL;
        json_error_t je;
        size_t len;
        if (kiln_fs_read_file(path, CONFIG_CAP, &text, &len, err) < 0)
            goto fail;
        root = json_loadb(text, len, 0, &je);
        if (!json_is_object(root)) {
            kiln_error_set(err, 0, "%s:%d: %s", path, je.line,
                           root ? "must be a JSON object" : je.text);
            goto fail;
        }
        if (load_root(c, root, legacy, err) < 0)
            goto fail_named;
    }
    /* no config (or one without the keys): the step options' default caps */
    if (c->stepcaps.ulimits == NULL && kiln_stepcaps_config(&c->stepcaps, NULL, NULL, err) < 0)
        goto fail;
    if (env && *env) {
        _cleanup_free_ char *copy = kiln_xstrdup(env);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (*t)
                json_array_append_new(legacy, json_string(t));
    }
    if (kiln_tenants_load(c, root, legacy, err) < 0 || check_project_tenants(c, err) < 0)
        goto fail_named;
    json_decref(root);
    json_decref(legacy);
    *out = c;
    return 0;
fail_named:
    if (path)
        kiln_error_prefix(err, "%s", path);
fail:
    json_decref(root);
    json_decref(legacy);
    kiln_config_free(c);
    return -1;
}

void kiln_config_free(kiln_config_t *c)
{
    if (c == NULL)
        return;
    kiln_tenants_free(c);
    json_decref(c->projects);
    json_decref(c->policy);
    json_decref(c->limits);
    json_decref(c->max_limits);
    kiln_stepcaps_clear(&c->stepcaps);
    free(c);
}

json_t *kiln_config_allow_addresses(const kiln_config_t *c)
{
    return json_object_get(c->policy, "allow_addresses");
}

size_t kiln_config_token_count(const kiln_config_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_tenants; i++)
        n += c->tenants[i].n_tokens;
    return n;
}

json_t *kiln_config_project(const kiln_config_t *c, const char *key, const char *name)
{
    size_t i;
    json_t *p;

    if (name == NULL)
        return NULL;
    json_array_foreach(c->projects, i, p)
    {
        const char *v = json_string_value(json_object_get(p, key));
        if (v && strcmp(v, name) == 0)
            return p;
    }
    return NULL;
}
