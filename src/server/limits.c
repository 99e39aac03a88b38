/* kiln server — per-build limits (see limits.h): a request's "limits" parsed, the policy's
 * defaults and maxima, a tenant's limits applied within them. */
#include "src/server/limits.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/stepopts.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

/* The command-line options that set each limit's default and maximum (job/limits.h order). */
static const struct limit_opt {
    const char *opt, *max_opt;
} opts[KILN_JOB_LIMITS_N] = {
    {"--build-memory", "--max-build-memory"},
    {"--build-pids", "--max-build-pids"},
    {"--build-cpu-time", "--max-build-cpu-time"},
    {"--build-timeout", NULL},
    {NULL, NULL},
};
#define N_LIMITS KILN_JOB_LIMITS_N

int kiln_limits_opt(kiln_limits_policy_t *p, int c, const char *arg, kiln_error_t *err)
{
    int k = c - KILN_LIMITS_OPT_BASE;
    size_t i = (size_t)k % 3;

    if (k < 0 || k > 5)
        return 0;
    if (kiln_job_limit_parse(i, arg, kiln_job_limit_slot(k < 3 ? &p->def : &p->max, i), err) < 0)
        return kiln_error_prefix(err, "%s", k < 3 ? opts[i].opt : opts[i].max_opt);
    return 1;
}

int kiln_limits_policy_config(kiln_limits_policy_t *p, json_t *limits, json_t *max_limits,
                              kiln_error_t *err)
{
    kiln_limit_values_t def, max;

    if (kiln_job_limits_from_json(limits, "limits", 0, &def, err) < 0 ||
        kiln_job_limits_from_json(max_limits, "max_limits", 0, &max, err) < 0)
        return -1;
    /* the command line wins over the file */
    for (size_t i = 0; i < N_LIMITS; i++) {
        if (*kiln_job_limit_slot(&p->def, i) == 0)
            *kiln_job_limit_slot(&p->def, i) = kiln_job_limit_get(&def, i);
        if (*kiln_job_limit_slot(&p->max, i) == 0)
            *kiln_job_limit_slot(&p->max, i) = kiln_job_limit_get(&max, i);
    }
    return 0;
}

void kiln_limits_policy_builtin(kiln_limits_policy_t *p, uint64_t wall_time)
{
    const kiln_limit_values_t builtin = {.memory = KILN_LIMITS_BUILTIN_MEMORY,
                                         .pids = KILN_LIMITS_BUILTIN_PIDS,
                                         .wall_time = wall_time,
                                         .disk = KILN_LIMITS_BUILTIN_DISK};

    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t *d = kiln_job_limit_slot(&p->def, i), m = kiln_job_limit_get(&p->max, i);
        if (*d != 0)
            continue;
        /* a maximum below a built-in default lowers it */
        *d = m && kiln_job_limit_get(&builtin, i) > m ? m : kiln_job_limit_get(&builtin, i);
    }
}

int kiln_limits_policy_finish(kiln_limits_policy_t *p, kiln_error_t *err)
{
    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t *d = kiln_job_limit_slot(&p->def, i), *m = kiln_job_limit_slot(&p->max, i);
        char a[32], b[32];
        if (*m == 0)
            *m = *d;
        if (*d > *m) {
            kiln_job_limit_show(i, *d, a, sizeof(a));
            kiln_job_limit_show(i, *m, b, sizeof(b));
            return kiln_error_set(err, 0,
                                  "the default %s %s (%s%s\"limits\" in the config) is above "
                                  "its maximum %s (%s%s\"max_limits\" in the config)",
                                  kiln_job_limit_name(i), a, opts[i].opt ? opts[i].opt : "",
                                  opts[i].opt ? " or " : "", b,
                                  opts[i].max_opt ? opts[i].max_opt : "",
                                  opts[i].max_opt ? " or " : "");
        }
    }
    return 0;
}

int kiln_limits_policy_tenant(const kiln_limits_policy_t *server, json_t *tenant_limits,
                              kiln_limits_policy_t *out, kiln_error_t *err)
{
    kiln_limit_values_t t;

    *out = *server;
    if (kiln_job_limits_from_json(tenant_limits, "limits", 0, &t, err) < 0)
        return -1;
    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t v = kiln_job_limit_get(&t, i), m = kiln_job_limit_get(&server->max, i);
        char a[32], b[32];
        if (v == 0)
            continue;
        if (m && v > m) {
            kiln_job_limit_show(i, v, a, sizeof(a));
            kiln_job_limit_show(i, m, b, sizeof(b));
            return kiln_error_set(err, 0, "limits.%s: %s is above the server's maximum %s",
                                  kiln_job_limit_name(i), a, b);
        }
        *kiln_job_limit_slot(&out->def, i) = v;
    }
    return 0;
}

void kiln_limits_values(json_t *limits, kiln_limit_values_t *out)
{
    kiln_limit_values_t v = {0};

    for (size_t i = 0; i < N_LIMITS; i++) {
        json_t *x = json_object_get(limits, kiln_job_limit_name(i));
        if (kiln_job_limit_is_size(i) && json_is_string(x))
            kiln_size_parse(json_string_value(x), kiln_job_limit_slot(&v, i), NULL);
        else if (!kiln_job_limit_is_size(i) && json_integer_value(x) > 0)
            *kiln_job_limit_slot(&v, i) = (uint64_t)json_integer_value(x);
    }
    *out = v;
}

int kiln_limits_apply(json_t *stored, const kiln_limits_policy_t *p, kiln_error_t *err)
{
    kiln_limit_values_t v;
    json_int_t t = json_integer_value(json_object_get(stored, "timeout_seconds"));

    kiln_limits_values(json_object_get(stored, "limits"), &v);
    /* the older "timeout_seconds" is a wall time too: the smaller one counts */
    if (t > 0 && (v.wall_time == 0 || (uint64_t)t < v.wall_time))
        v.wall_time = (uint64_t)t;
    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t *x = kiln_job_limit_slot(&v, i);
        uint64_t d = kiln_job_limit_get(&p->def, i), m = kiln_job_limit_get(&p->max, i);
        char a[32], b[32];
        if (*x == 0)
            *x = d;
        if (m && *x > m) {
            /* a "timeout_seconds" that set the wall time is named as itself */
            int by_timeout = i == KILN_JOB_LIMIT_WALL_TIME && t > 0 && (uint64_t)t == *x;
            kiln_job_limit_show(i, *x, a, sizeof(a));
            kiln_job_limit_show(i, m, b, sizeof(b));
            return kiln_error_set(err, 0,
                                  "field '%s%s': %s is above the server's maximum %s "
                                  "(max_limits.%s)",
                                  by_timeout ? "" : "limits.",
                                  by_timeout ? "timeout_seconds" : kiln_job_limit_name(i), a, b,
                                  kiln_job_limit_name(i));
        }
    }
    if (v.memory || v.pids || v.cpu_time || v.wall_time || v.disk)
        json_object_set_new(stored, "limits", kiln_job_limits_to_json(&v));
    else
        json_object_del(stored, "limits");
    return 0;
}

int kiln_limits_wall_time(json_t *stored, int cap)
{
    kiln_limit_values_t v;
    json_int_t t = json_integer_value(json_object_get(stored, "timeout_seconds"));
    int w = cap;

    kiln_limits_values(json_object_get(stored, "limits"), &v);
    if (v.wall_time && (w == 0 || v.wall_time < (uint64_t)w))
        w = (int)v.wall_time;
    if (t > 0 && (w == 0 || t < w))
        w = (int)t;
    return w;
}

int kiln_stepcaps_config(kiln_stepcaps_t *c, json_t *max_shm, json_t *max_ulimits,
                         kiln_error_t *err)
{
    const char *k;
    json_t *v;

    c->shm_size = KILN_STEPCAPS_SHM_DEFAULT;
    if (json_is_integer(max_shm) && json_integer_value(max_shm) > 0) {
        c->shm_size = (uint64_t)json_integer_value(max_shm);
    } else if (json_is_string(max_shm)) {
        /* a size as the memory limit reads one ("256m") */
        if (kiln_job_limit_parse(0, json_string_value(max_shm), &c->shm_size, err) < 0)
            return kiln_error_prefix(err, "max_shm_size");
    } else if (max_shm) {
        return kiln_error_set(err, 0, "max_shm_size: must be a size (\"256m\") or bytes above 0");
    }
    if (max_ulimits == NULL) {
        c->ulimits = json_pack("{s:i, s:i}", "nofile", KILN_STEPCAPS_NOFILE_DEFAULT, "nproc",
                               KILN_STEPCAPS_NPROC_DEFAULT);
        return 0;
    }
    if (!json_is_object(max_ulimits))
        return kiln_error_set(err, 0, "max_ulimits: must be an object of limit names to counts");
    json_object_foreach(max_ulimits, k, v)
    {
        _cleanup_free_ char *probe = kiln_xasprintf("%s=0", k);
        kiln_ulimit_t u;
        kiln_error_t e = {0};
        if (kiln_ulimit_parse(probe, &u, &e) < 0)
            return kiln_error_set(err, 0, "max_ulimits.%s: not a limit name (%s)", k, e.msg);
        if (!json_is_integer(v) || json_integer_value(v) < -1)
            return kiln_error_set(err, 0, "max_ulimits.%s: must be a count (or -1: unlimited)", k);
    }
    c->ulimits = json_incref(max_ulimits);
    return 0;
}

int kiln_stepcaps_check(const kiln_stepcaps_t *c, json_t *stored, kiln_error_t *err)
{
    json_t *shm = json_object_get(stored, "shm_size"), *v;
    size_t i;

    if (json_is_integer(shm) && (uint64_t)json_integer_value(shm) > c->shm_size) {
        char a[32], b[32];
        kiln_job_limit_show(0, (uint64_t)json_integer_value(shm), a, sizeof(a));
        kiln_job_limit_show(0, c->shm_size, b, sizeof(b));
        return kiln_error_set(err, 0,
                              "field 'shm_size': %s is above the server's maximum %s "
                              "(max_shm_size)",
                              a, b);
    }
    json_array_foreach(json_object_get(stored, "ulimits"), i, v)
    {
        const char *spec = json_string_value(v);
        kiln_ulimit_t u;
        kiln_error_t e = {0};
        const char *name;
        json_t *cap;
        if (spec == NULL || kiln_ulimit_parse(spec, &u, &e) < 0)
            return kiln_error_set(err, 0, "field 'ulimits[%zu]': %s", i,
                                  spec ? e.msg : "must be a string");
        name = kiln_ulimit_name(u.resource);
        cap = json_object_get(c->ulimits, name);
        if (cap == NULL)
            return kiln_error_set(err, 0,
                                  "field 'ulimits[%zu]': %s is not allowed by the server "
                                  "(max_ulimits names no %s)",
                                  i, spec, name);
        if (json_integer_value(cap) >= 0 && u.hard > (uint64_t)json_integer_value(cap))
            return kiln_error_set(err, 0,
                                  "field 'ulimits[%zu]': %s is above the server's maximum "
                                  "%s=%lld (max_ulimits.%s)",
                                  i, spec, name, (long long)json_integer_value(cap), name);
    }
    return 0;
}

void kiln_stepcaps_clear(kiln_stepcaps_t *c)
{
    json_decref(c->ulimits);
    c->ulimits = NULL;
}
