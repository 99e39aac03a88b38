/* kiln — a registry client's settings for one registry, as JSON and back (see
 * registry_settings.h). */
#include "oci/registry_settings.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "oci/reference.h"
#include "oci/registry_http.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define SETTINGS_LIST_MAX 16
#define SETTINGS_STR_MAX 1024

/* dst without a "user[:password]@" before its host: credentials never go into the settings
 * (the mirror's are looked up by host when it is used). malloc'ed. */
static char *without_userinfo(const char *dst)
{
    const char *slash = strchr(dst, '/');
    const char *at = strchr(dst, '@');
    if (at != NULL && (slash == NULL || at < slash))
        dst = at + 1;
    return kiln_xstrdup(dst);
}

/* The host part of a mirror's "HOST[:PORT][/PREFIX]". malloc'ed. */
static char *mirror_host(const char *dst)
{
    const char *slash = strchr(dst, '/');
    return slash ? kiln_xstrndup(dst, (size_t)(slash - dst)) : kiln_xstrdup(dst);
}

static void add_insecure(kiln_registry_t *r, json_t *ins, const char *host)
{
    if (kiln_reg_host_insecure(r, host))
        json_array_append_new(ins, json_string(host));
}

/* path made absolute against the working directory, so a fetch from elsewhere finds it. */
static json_t *abs_path(const char *path)
{
    char cwd[PATH_MAX];
    _cleanup_free_ char *p = NULL;
    if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
        return json_string(path);
    p = kiln_xasprintf("%s/%s", cwd, path);
    return json_string(p);
}

json_t *kiln_registry_settings_for(kiln_registry_t *r, const char *registry)
{
    json_t *j = json_object(), *m = json_array(), *ins = json_array();
    for (size_t i = 0; i < r->n_mirrors; i++) {
        _cleanup_free_ char *dst = NULL;
        _cleanup_free_ char *host = NULL;
        _cleanup_free_ char *spec = NULL;
        if (strcmp(r->mirror_src[i], registry) != 0)
            continue;
        dst = without_userinfo(r->mirror_dst[i]);
        host = mirror_host(dst);
        spec = kiln_xasprintf("%s=%s", registry, dst);
        json_array_append_new(m, json_string(spec));
        add_insecure(r, ins, host);
    }
    add_insecure(r, ins, kiln_reference_endpoint(registry));
    if (json_array_size(m) > 0)
        json_object_set(j, "mirrors", m);
    if (json_array_size(ins) > 0)
        json_object_set(j, "insecure", ins);
    json_decref(m);
    json_decref(ins);
    if (r->ca_file != NULL)
        json_object_set_new(j, "ca", abs_path(r->ca_file));
    if (r->certs_dir != NULL && strcmp(r->certs_dir, KILN_REGISTRY_DEFAULT_CERTS_DIR) != 0)
        json_object_set_new(j, "certs", abs_path(r->certs_dir));
    if (json_object_size(j) == 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

void kiln_registry_settings_clear(kiln_registry_settings_t *st)
{
    kiln_strv_free(st->mirrors);
    kiln_strv_free(st->insecure);
    free(st->ca);
    free(st->certs);
    memset(st, 0, sizeof(*st));
}

/* A host[:port] (with a /prefix when path is set): no scheme, userinfo, space or control
 * character, nothing empty. */
static bool host_ok(const char *s, bool path)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SETTINGS_STR_MAX || s[0] == '/' || s[0] == ':' ||
        strpbrk(s, "@\\?#") != NULL || strstr(s, "://") != NULL)
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || (*p == '/' && !path))
            return false;
    return true;
}

static bool path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n >= SETTINGS_STR_MAX || s[0] != '/')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            return false;
    return true;
}

/* The strings of list j[key] into *out (NULL-terminated); -1 with err when one is not a
 * string or there are too many. */
static int str_list(const json_t *j, const char *key, char ***out, kiln_error_t *err)
{
    json_t *a = json_object_get(j, key), *v;
    size_t i;
    if (a == NULL)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > SETTINGS_LIST_MAX)
        return kiln_error_set(err, EINVAL, "registry settings: \"%s\" must be a list of at most %d",
                              key, SETTINGS_LIST_MAX);
    *out = kiln_xzalloc((json_array_size(a) + 1) * sizeof(char *));
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            return kiln_error_set(err, EINVAL, "registry settings: %s[%zu] is not a string", key,
                                  i);
        (*out)[i] = kiln_xstrdup(json_string_value(v));
    }
    return 0;
}

static int opt_path(const json_t *j, const char *key, char **out, kiln_error_t *err)
{
    json_t *v = json_object_get(j, key);
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || !path_ok(json_string_value(v)))
        return kiln_error_set(err, EINVAL, "registry settings: \"%s\" must be an absolute path",
                              key);
    *out = kiln_xstrdup(json_string_value(v));
    return 0;
}

/* Whether host is the source's endpoint or one of its mirrors' hosts. */
static bool endpoint_of(const char *host, const char *registry, char *const *mirrors)
{
    if (strcmp(host, kiln_reference_endpoint(registry)) == 0 || strcmp(host, registry) == 0)
        return true;
    for (size_t i = 0; mirrors != NULL && mirrors[i] != NULL; i++) {
        _cleanup_free_ char *h = mirror_host(strchr(mirrors[i], '=') + 1);
        if (strcmp(h, host) == 0)
            return true;
    }
    return false;
}

int kiln_registry_settings_opts(const json_t *j, const char *registry, kiln_registry_opts_t *o,
                                kiln_registry_settings_t *st, kiln_error_t *err)
{
    const char *key;
    json_t *v;
    size_t rl = strlen(registry);
    if (!json_is_object(j))
        return kiln_error_set(err, EINVAL, "registry settings: not an object");
    json_object_foreach((json_t *)j, key, v)
    {
        if (strcmp(key, "mirrors") != 0 && strcmp(key, "insecure") != 0 && strcmp(key, "ca") != 0 &&
            strcmp(key, "certs") != 0)
            return kiln_error_set(err, EINVAL, "registry settings: unknown key \"%.64s\"", key);
    }
    if (str_list(j, "mirrors", &st->mirrors, err) < 0 ||
        str_list(j, "insecure", &st->insecure, err) < 0 || opt_path(j, "ca", &st->ca, err) < 0 ||
        opt_path(j, "certs", &st->certs, err) < 0)
        return -1;
    /* a mirror is followed for this source only, and only to a plain host[/prefix] */
    for (size_t i = 0; st->mirrors != NULL && st->mirrors[i] != NULL; i++) {
        const char *m = st->mirrors[i];
        if (strncmp(m, registry, rl) != 0 || m[rl] != '=')
            return kiln_error_set(
                err, EINVAL, "registry settings: mirror '%.200s' is not one of %s", m, registry);
        if (!host_ok(m + rl + 1, true))
            return kiln_error_set(
                err, EINVAL, "registry settings: mirror '%.200s' is not HOST[:PORT][/PREFIX]", m);
    }
    /* plain HTTP only for the hosts this source is reached at */
    for (size_t i = 0; st->insecure != NULL && st->insecure[i] != NULL; i++)
        if (!host_ok(st->insecure[i], false) ||
            !endpoint_of(st->insecure[i], registry, st->mirrors))
            return kiln_error_set(err, EINVAL,
                                  "registry settings: insecure host '%.200s' is neither %s nor "
                                  "one of its mirrors",
                                  st->insecure[i], registry);
    o->mirrors = (const char *const *)st->mirrors;
    o->insecure = (const char *const *)st->insecure;
    o->ca_file = st->ca;
    if (st->certs != NULL)
        o->certs_dir = st->certs;
    return 0;
}
