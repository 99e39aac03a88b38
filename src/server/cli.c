#include "src/server/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"

long long kiln_server_parse_num(const char *s)
{
    char *end = NULL;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        return -1;
    return v;
}

char *kiln_server_build_cmd(const char *opt)
{
    char self[PATH_MAX];
    ssize_t n;

    if (opt == NULL)
        opt = getenv("KILN_BUILD_COMMAND");
    if (opt && *opt)
        return kiln_xstrdup(opt);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return kiln_xstrdup("/proc/self/exe");
    self[n] = '\0';
    return kiln_xstrdup(self);
}

void kiln_server_strv_add(char ***v, unsigned *n, const char *s)
{
    *v = kiln_xrealloc(*v, (*n + 2) * sizeof(char *));
    (*v)[(*n)++] = kiln_xstrdup(s);
    (*v)[*n] = NULL;
}

int kiln_server_allow_address(char ***opts, unsigned *n, const char *spec, kiln_error_t *err)
{
    _cleanup_free_ char *opt = NULL;
    if (kiln_netpolicy_validate(spec, err) < 0)
        return -1;
    opt = kiln_xasprintf("--allow-address=%s", spec);
    kiln_server_strv_add(opts, n, opt);
    return 0;
}

int kiln_server_isolation(char ***opts, unsigned *n, const char *isolation, const char *where,
                          kiln_error_t *err)
{
    for (unsigned i = 0; i < *n; i++) {
        const char *o = (*opts)[i];
        if (strncmp(o, "--isolation", 11) != 0)
            continue;
        if (strcmp(o, "--isolation=sandbox") == 0 || strcmp(o, "--isolation=auto") == 0)
            continue;
        return kiln_error_set(err, 0,
                              "--build-option %s: chroot isolation runs build steps as real root; "
                              "choose it with %s",
                              o, where);
    }
    if (isolation && strcmp(isolation, "chroot") == 0)
        kiln_server_strv_add(opts, n, "--isolation=chroot");
    return 0;
}

void kiln_server_store_options(const json_t *policy, char ***opts, unsigned *n)
{
    const json_t *v;
    size_t i;

    json_array_foreach(json_object_get(policy, "additional_stores"), i, v)
    {
        _cleanup_free_ char *opt = kiln_xasprintf("--additional-store=%s", json_string_value(v));
        kiln_server_strv_add(opts, n, opt);
    }
}

void kiln_server_policy_options(const json_t *policy, char ***opts, unsigned *n)
{
    const json_t *dirs = json_object_get(policy, "oci_dirs"), *v;
    size_t i;

    json_array_foreach(json_object_get(policy, "allow_addresses"), i, v)
        kiln_server_allow_address(opts, n, json_string_value(v), NULL);
    if (json_is_true(json_object_get(policy, "allow_http_git")))
        kiln_server_strv_add(opts, n, "--allow-http-git");
    kiln_server_store_options(policy, opts, n);
    if (dirs == NULL) {
        const char *env = getenv("KILN_IMAGES_DIR");
        _cleanup_free_ char *opt =
            kiln_xasprintf("--oci-dir=%s", env && *env ? env : KILN_SERVER_DEFAULT_OCI_DIR);
        kiln_server_strv_add(opts, n, opt);
        return;
    }
    json_array_foreach(dirs, i, v)
    {
        _cleanup_free_ char *opt = kiln_xasprintf("--oci-dir=%s", json_string_value(v));
        kiln_server_strv_add(opts, n, opt);
    }
}

int kiln_server_limits_policy(kiln_limits_policy_t *p, json_t *limits, json_t *max_limits,
                              int timeout_set, uint64_t timeout, int runs_builds, kiln_error_t *err)
{
    if (timeout_set && timeout > 0)
        p->def.wall_time = timeout;
    if (kiln_limits_policy_config(p, limits, max_limits, err) < 0)
        return -1;
    if (runs_builds)
        kiln_limits_policy_builtin(p, timeout);
    return kiln_limits_policy_finish(p, err);
}
