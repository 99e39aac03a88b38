#include "src/server/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/size.h"

#define MAX_PIDS 4194304ULL
#define MAX_CPU (7ULL * 24 * 3600)

static const char *const names[] = {"memory", "pids", "cpu_time"};
static const char *const opt_names[] = {"--build-memory",   "--build-pids",
                                        "--build-cpu-time", "--max-build-memory",
                                        "--max-build-pids", "--max-build-cpu-time"};

static uint64_t *slot(kiln_limit_values_t *v, int i)
{
    return i == 0 ? &v->memory : i == 1 ? &v->pids : &v->cpu_time;
}

static uint64_t get(const kiln_limit_values_t *v, int i)
{
    return i == 0 ? v->memory : i == 1 ? v->pids : v->cpu_time;
}

/* One value as people read it: "512m" for memory, the number otherwise. */
static void show(int i, uint64_t v, char *buf, size_t len)
{
    if (i == 0)
        kiln_size_format(v, buf, len);
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Parses value i (memory: a size, else a count) from text; 0 is refused. */
static int parse_text(int i, const char *s, uint64_t *out, kiln_error_t *err)
{
    char *end;
    unsigned long long v;

    if (i == 0) {
        if (kiln_size_parse(s, out, err) < 0)
            return -1;
        return *out ? 0 : kiln_error_set(err, 0, "must not be 0");
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0)
        return kiln_error_set(err, 0, "'%.32s' is not a positive number", s);
    if (v > (i == 1 ? MAX_PIDS : MAX_CPU))
        return kiln_error_set(err, 0, "%llu is too large", v);
    *out = v;
    return 0;
}

int kiln_limits_opt(kiln_limits_policy_t *p, int c, const char *arg, kiln_error_t *err)
{
    int k = c - KILN_LIMITS_OPT_BASE;

    if (k < 0 || k > 5)
        return 0;
    if (parse_text(k % 3, arg, slot(k < 3 ? &p->def : &p->max, k % 3), err) < 0)
        return kiln_error_prefix(err, "%s", opt_names[k]);
    return 1;
}

int kiln_limits_policy_finish(kiln_limits_policy_t *p, kiln_error_t *err)
{
    for (int i = 0; i < 3; i++) {
        uint64_t *d = slot(&p->def, i), *m = slot(&p->max, i);
        if (*m == 0)
            *m = *d;
        if (*d > *m)
            return kiln_error_set(err, 0, "%s is above %s", opt_names[i], opt_names[i + 3]);
    }
    return 0;
}

json_t *kiln_limits_json(const kiln_limit_values_t *vals)
{
    json_t *o = json_object();
    char mem[32];

    kiln_size_format(vals->memory, mem, sizeof(mem));
    if (vals->memory)
        json_object_set_new(o, "memory", json_string(mem));
    if (vals->pids)
        json_object_set_new(o, "pids", json_integer((json_int_t)vals->pids));
    if (vals->cpu_time)
        json_object_set_new(o, "cpu_time", json_integer((json_int_t)vals->cpu_time));
    return o;
}

int kiln_limits_parse(json_t *v, json_t **out, kiln_error_t *err)
{
    kiln_limit_values_t vals = {0};
    const char *key;
    json_t *x;

    if (!json_is_object(v))
        return kiln_error_set(err, 0, "field 'limits': must be an object (memory, pids, cpu_time)");
    json_object_foreach(v, key, x)
    {
        int i = 0;
        char num[32];
        while (i < 3 && strcmp(key, names[i]) != 0)
            i++;
        if (i == 3)
            return kiln_error_set(err, 0, "field 'limits.%.64s': unknown field", key);
        if (json_is_integer(x) && json_integer_value(x) > 0) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(x));
        } else if (i == 0 && json_is_string(x)) {
            snprintf(num, sizeof(num), "%.31s", json_string_value(x));
        } else {
            return kiln_error_set(err, 0, "field 'limits.%s': must be %s", key,
                                  i == 0 ? "a size like \"512m\" or a number of bytes"
                                         : "a positive integer");
        }
        if (parse_text(i, num, slot(&vals, i), err) < 0)
            return kiln_error_prefix(err, "field 'limits.%s'", key);
    }
    *out = kiln_limits_json(&vals);
    return 0;
}

void kiln_limits_values(json_t *limits, kiln_limit_values_t *out)
{
    kiln_limit_values_t v = {0};
    json_t *x;

    if ((x = json_object_get(limits, "memory")) != NULL && json_is_string(x))
        kiln_size_parse(json_string_value(x), &v.memory, NULL);
    if ((x = json_object_get(limits, "pids")) != NULL && json_integer_value(x) > 0)
        v.pids = (uint64_t)json_integer_value(x);
    if ((x = json_object_get(limits, "cpu_time")) != NULL && json_integer_value(x) > 0)
        v.cpu_time = (uint64_t)json_integer_value(x);
    *out = v;
}

int kiln_limits_apply(json_t *stored, const kiln_limits_policy_t *p, kiln_error_t *err)
{
    kiln_limit_values_t v;

    kiln_limits_values(json_object_get(stored, "limits"), &v);
    for (int i = 0; i < 3; i++) {
        uint64_t *x = slot(&v, i);
        uint64_t d = get(&p->def, i), m = get(&p->max, i);
        char a[32], b[32];
        if (*x == 0)
            *x = d;
        if (m && *x > m) {
            show(i, *x, a, sizeof(a));
            show(i, m, b, sizeof(b));
            return kiln_error_set(err, 0, "field 'limits.%s': %s is above the maximum %s (%s)",
                                  names[i], a, b, opt_names[i + 3]);
        }
    }
    if (v.memory || v.pids || v.cpu_time)
        json_object_set_new(stored, "limits", kiln_limits_json(&v));
    else
        json_object_del(stored, "limits");
    return 0;
}
