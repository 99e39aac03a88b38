#include "src/server/limits.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/size.h"

#define MAX_PIDS 4194304ULL
#define MAX_SECONDS (7ULL * 24 * 3600)

/* Each limit: its name in JSON, its slot, whether it is a size, its largest value and the
 * command-line options that set its default and maximum. */
static const struct limit_def {
    const char *name;
    size_t off;
    int size;
    uint64_t cap;
    const char *opt, *max_opt;
} defs[] = {
    {"memory", offsetof(kiln_limit_values_t, memory), 1, 0, "--build-memory", "--max-build-memory"},
    {"pids", offsetof(kiln_limit_values_t, pids), 0, MAX_PIDS, "--build-pids", "--max-build-pids"},
    {"cpu_time", offsetof(kiln_limit_values_t, cpu_time), 0, MAX_SECONDS, "--build-cpu-time",
     "--max-build-cpu-time"},
    {"wall_time", offsetof(kiln_limit_values_t, wall_time), 0, MAX_SECONDS, "--build-timeout",
     NULL},
    {"disk", offsetof(kiln_limit_values_t, disk), 1, 0, NULL, NULL},
};
#define N_LIMITS (sizeof(defs) / sizeof(defs[0]))

static uint64_t *slot(kiln_limit_values_t *v, size_t i)
{
    return (uint64_t *)((char *)v + defs[i].off);
}

static uint64_t get(const kiln_limit_values_t *v, size_t i)
{
    return *(const uint64_t *)((const char *)v + defs[i].off);
}

/* One value as people read it: "512m" for memory, the number otherwise. */
static void show(size_t i, uint64_t v, char *buf, size_t len)
{
    if (defs[i].size)
        kiln_size_format(v, buf, len);
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Parses value i (a size, else a count) from text; 0 is refused. */
static int parse_text(size_t i, const char *s, uint64_t *out, kiln_error_t *err)
{
    char *end;
    unsigned long long v;

    if (defs[i].size) {
        if (kiln_size_parse(s, out, err) < 0)
            return -1;
        return *out ? 0 : kiln_error_set(err, 0, "must not be 0");
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0)
        return kiln_error_set(err, 0, "'%.32s' is not a positive number", s);
    if (v > defs[i].cap)
        return kiln_error_set(err, 0, "%llu is too large", v);
    *out = v;
    return 0;
}

int kiln_limits_opt(kiln_limits_policy_t *p, int c, const char *arg, kiln_error_t *err)
{
    int k = c - KILN_LIMITS_OPT_BASE;
    size_t i = (size_t)k % 3;

    if (k < 0 || k > 5)
        return 0;
    if (parse_text(i, arg, slot(k < 3 ? &p->def : &p->max, i), err) < 0)
        return kiln_error_prefix(err, "%s", k < 3 ? defs[i].opt : defs[i].max_opt);
    return 1;
}

/* Reads a limits object (where: its name, e.g. "limits" or "tenants[acme].limits"; quoted:
 * messages say "field 'where.key'" as for request fields) into *out. Fails naming the
 * key that is unknown or malformed. */
static int parse_object(json_t *v, const char *where, int quoted, kiln_limit_values_t *out,
                        kiln_error_t *err)
{
    const char *key;
    json_t *x;

    memset(out, 0, sizeof(*out));
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return kiln_error_set(err, 0,
                              quoted ? "field '%s': must be an object (%s)"
                                     : "%s: must "
                                       "be an "
                                       "object (%s)",
                              where, "memory, pids, cpu_time, wall_time, disk");
    json_object_foreach(v, key, x)
    {
        size_t i = 0;
        char num[32];
        while (i < N_LIMITS && strcmp(key, defs[i].name) != 0)
            i++;
        if (i == N_LIMITS)
            return kiln_error_set(
                err, 0, quoted ? "field '%s.%.64s': unknown field" : "%s.%.64s: unknown limit",
                where, key);
        if (json_is_integer(x) && json_integer_value(x) > 0) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(x));
        } else if (defs[i].size && json_is_string(x)) {
            snprintf(num, sizeof(num), "%.31s", json_string_value(x));
        } else {
            return kiln_error_set(
                err, 0, quoted ? "field '%s.%s': must be %s" : "%s.%s: must be %s", where, key,
                defs[i].size ? "a size like \"512m\" or a number of bytes" : "a positive integer");
        }
        if (parse_text(i, num, slot(out, i), err) < 0)
            return kiln_error_prefix(err, quoted ? "field '%s.%s'" : "%s.%s", where, key);
    }
    return 0;
}

int kiln_limits_policy_config(kiln_limits_policy_t *p, json_t *limits, json_t *max_limits,
                              kiln_error_t *err)
{
    kiln_limit_values_t def, max;

    if (parse_object(limits, "limits", 0, &def, err) < 0 ||
        parse_object(max_limits, "max_limits", 0, &max, err) < 0)
        return -1;
    /* the command line wins over the file */
    for (size_t i = 0; i < N_LIMITS; i++) {
        if (*slot(&p->def, i) == 0)
            *slot(&p->def, i) = get(&def, i);
        if (*slot(&p->max, i) == 0)
            *slot(&p->max, i) = get(&max, i);
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
        uint64_t *d = slot(&p->def, i), m = get(&p->max, i);
        if (*d != 0)
            continue;
        /* a maximum below a built-in default lowers it */
        *d = m && get(&builtin, i) > m ? m : get(&builtin, i);
    }
}

int kiln_limits_policy_finish(kiln_limits_policy_t *p, kiln_error_t *err)
{
    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t *d = slot(&p->def, i), *m = slot(&p->max, i);
        char a[32], b[32];
        if (*m == 0)
            *m = *d;
        if (*d > *m) {
            show(i, *d, a, sizeof(a));
            show(i, *m, b, sizeof(b));
            return kiln_error_set(
                err, 0,
                "the default %s %s (%s%s\"limits\" in the config) is above "
                "its maximum %s (%s%s\"max_limits\" in the config)",
                defs[i].name, a, defs[i].opt ? defs[i].opt : "", defs[i].opt ? " or " : "", b,
                defs[i].max_opt ? defs[i].max_opt : "", defs[i].max_opt ? " or " : "");
        }
    }
    return 0;
}

int kiln_limits_policy_tenant(const kiln_limits_policy_t *server, json_t *tenant_limits,
                              kiln_limits_policy_t *out, kiln_error_t *err)
{
    kiln_limit_values_t t;

    *out = *server;
    if (parse_object(tenant_limits, "limits", 0, &t, err) < 0)
        return -1;
    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t v = get(&t, i), m = get(&server->max, i);
        char a[32], b[32];
        if (v == 0)
            continue;
        if (m && v > m) {
            show(i, v, a, sizeof(a));
            show(i, m, b, sizeof(b));
            return kiln_error_set(err, 0, "limits.%s: %s is above the server's maximum %s",
                                  defs[i].name, a, b);
        }
        *slot(&out->def, i) = v;
    }
    return 0;
}

json_t *kiln_limits_json(const kiln_limit_values_t *vals)
{
    json_t *o = json_object();

    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t v = get(vals, i);
        char mem[32];
        if (v == 0)
            continue;
        if (defs[i].size) {
            kiln_size_format(v, mem, sizeof(mem));
            json_object_set_new(o, defs[i].name, json_string(mem));
        } else {
            json_object_set_new(o, defs[i].name, json_integer((json_int_t)v));
        }
    }
    return o;
}

int kiln_limits_parse(json_t *v, json_t **out, kiln_error_t *err)
{
    kiln_limit_values_t vals;

    if (v == NULL || parse_object(v, "limits", 1, &vals, err) < 0)
        return v ? -1 : kiln_error_set(err, 0, "field 'limits': must be an object");
    *out = kiln_limits_json(&vals);
    return 0;
}

void kiln_limits_values(json_t *limits, kiln_limit_values_t *out)
{
    kiln_limit_values_t v = {0};

    for (size_t i = 0; i < N_LIMITS; i++) {
        json_t *x = json_object_get(limits, defs[i].name);
        if (defs[i].size && json_is_string(x))
            kiln_size_parse(json_string_value(x), slot(&v, i), NULL);
        else if (!defs[i].size && json_integer_value(x) > 0)
            *slot(&v, i) = (uint64_t)json_integer_value(x);
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
        uint64_t *x = slot(&v, i);
        uint64_t d = get(&p->def, i), m = get(&p->max, i);
        char a[32], b[32];
        if (*x == 0)
            *x = d;
        if (m && *x > m) {
            /* a "timeout_seconds" that set the wall time is named as itself */
            int by_timeout = i == 3 && t > 0 && (uint64_t)t == *x;
            show(i, *x, a, sizeof(a));
            show(i, m, b, sizeof(b));
            return kiln_error_set(err, 0,
                                  "field '%s%s': %s is above the server's maximum %s "
                                  "(max_limits.%s)",
                                  by_timeout ? "" : "limits.",
                                  by_timeout ? "timeout_seconds" : defs[i].name, a, b,
                                  defs[i].name);
        }
    }
    if (v.memory || v.pids || v.cpu_time || v.wall_time || v.disk)
        json_object_set_new(stored, "limits", kiln_limits_json(&v));
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
