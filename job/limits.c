/* kiln — a build's limits (see limits.h). */
#include "job/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/size.h"

#define MAX_PIDS 4194304ULL

/* Each limit: its JSON name, its slot, whether it is a size ("512m") or a count, and its
 * largest value (0: none). */
static const struct limit_def {
    const char *name;
    size_t off;
    int size;
    uint64_t cap;
} defs[KILN_JOB_LIMITS_N] = {
    {"memory", offsetof(kiln_job_limits_t, memory), 1, 0},
    {"pids", offsetof(kiln_job_limits_t, pids), 0, MAX_PIDS},
    {"cpu_time", offsetof(kiln_job_limits_t, cpu_time), 0, KILN_JOB_MAX_SECONDS},
    {"wall_time", offsetof(kiln_job_limits_t, wall_time), 0, KILN_JOB_MAX_SECONDS},
    {"disk", offsetof(kiln_job_limits_t, disk), 1, 0},
};

const char *kiln_job_limit_name(size_t i)
{
    return defs[i].name;
}

int kiln_job_limit_is_size(size_t i)
{
    return defs[i].size;
}

uint64_t *kiln_job_limit_slot(kiln_job_limits_t *l, size_t i)
{
    return (uint64_t *)((char *)l + defs[i].off);
}

uint64_t kiln_job_limit_get(const kiln_job_limits_t *l, size_t i)
{
    return *(const uint64_t *)((const char *)l + defs[i].off);
}

void kiln_job_limit_show(size_t i, uint64_t v, char *buf, size_t len)
{
    if (defs[i].size)
        kiln_size_format(v, buf, len);
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
}

int kiln_job_limit_parse(size_t i, const char *s, uint64_t *out, kiln_error_t *err)
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

int kiln_job_limits_from_json(json_t *v, const char *where, int quoted, kiln_job_limits_t *out,
                              kiln_error_t *err)
{
    const char *key;
    json_t *x;

    memset(out, 0, sizeof(*out));
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return kiln_error_set(
            err, 0, quoted ? "field '%s': must be an object (%s)" : "%s: must be an object (%s)",
            where, "memory, pids, cpu_time, wall_time, disk");
    json_object_foreach(v, key, x)
    {
        size_t i = 0;
        char num[32];
        while (i < KILN_JOB_LIMITS_N && strcmp(key, defs[i].name) != 0)
            i++;
        if (i == KILN_JOB_LIMITS_N)
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
        if (kiln_job_limit_parse(i, num, kiln_job_limit_slot(out, i), err) < 0)
            return kiln_error_prefix(err, quoted ? "field '%s.%s'" : "%s.%s", where, key);
    }
    return 0;
}

int kiln_job_limits_check(const kiln_job_limits_t *l, kiln_error_t *err)
{
    for (size_t i = 0; i < KILN_JOB_LIMITS_N; i++) {
        uint64_t v = kiln_job_limit_get(l, i);
        if (defs[i].cap && v > defs[i].cap)
            return kiln_error_set(err, 0, "field 'limits.%s': %llu is too large", defs[i].name,
                                  (unsigned long long)v);
    }
    return 0;
}

json_t *kiln_job_limits_to_json(const kiln_job_limits_t *l)
{
    json_t *o = json_object();

    for (size_t i = 0; i < KILN_JOB_LIMITS_N; i++) {
        uint64_t v = kiln_job_limit_get(l, i);
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
