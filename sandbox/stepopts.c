/* kiln — docker build's --ulimit and --add-host, checked for the sandbox (see stepopts.h). */
#include "sandbox/stepopts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

static const struct {
    const char *name;
    int resource;
} names[] = {
    {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},         {"fsize", RLIMIT_FSIZE},
    {"locks", RLIMIT_LOCKS},       {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},     {"nproc", RLIMIT_NPROC},
    {"rss", RLIMIT_RSS},           {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},       {"as", RLIMIT_AS},
};

const char *kiln_ulimit_name(int resource)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].resource == resource)
            return names[i].name;
    return "?";
}

/* One limit value: a decimal count, or -1 / unlimited. */
static int parse_value(const char *s, size_t n, uint64_t *out)
{
    char buf[32], *end;
    unsigned long long v;

    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strcmp(buf, "-1") == 0 || strcmp(buf, "unlimited") == 0) {
        *out = KILN_ULIMIT_UNLIMITED;
        return 0;
    }
    if (buf[0] < '0' || buf[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(buf, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int kiln_ulimit_parse(const char *spec, kiln_ulimit_t *out, kiln_error_t *err)
{
    const char *eq = strchr(spec, '='), *colon;
    kiln_ulimit_t u = {.resource = -1};
    struct rlimit own;
    size_t nl;

    if (eq == NULL)
        return kiln_error_set(err, 0, "--ulimit %s: expected NAME=SOFT[:HARD]", spec);
    nl = (size_t)(eq - spec);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == nl && strncmp(spec, names[i].name, nl) == 0)
            u.resource = names[i].resource;
    if (u.resource < 0)
        return kiln_error_set(err, 0,
                              "--ulimit %s: unknown limit '%.*s' (core, cpu, data, fsize, locks, "
                              "memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, "
                              "sigpending, stack, as)",
                              spec, (int)nl, spec);
    colon = strchr(eq + 1, ':');
    if (parse_value(eq + 1, colon ? (size_t)(colon - eq - 1) : strlen(eq + 1), &u.soft) < 0 ||
        (colon && parse_value(colon + 1, strlen(colon + 1), &u.hard) < 0))
        return kiln_error_set(
            err, EINVAL, "--ulimit %s: a limit is a number, -1 or unlimited (NAME=SOFT[:HARD])",
            spec);
    if (!colon)
        u.hard = u.soft;
    if (u.soft > u.hard)
        return kiln_error_set(err, 0, "--ulimit %s: the soft limit is above the hard limit", spec);
    /* a step runs in a user namespace: it may lower its hard limits, never raise them */
    if (getrlimit(u.resource, &own) == 0 && own.rlim_max != RLIM_INFINITY &&
        (u.hard == KILN_ULIMIT_UNLIMITED || u.hard > own.rlim_max))
        return kiln_error_set(err, 0,
                              "--ulimit %s: the hard limit is above kiln's own (%llu): a step can "
                              "only lower it",
                              spec, (unsigned long long)own.rlim_max);
    *out = u;
    return 0;
}

/* 1 when name is a host name /etc/hosts may hold: DNS labels of letters, digits, '-', '_'. */
static int host_name_ok(const char *name, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_') ||
            ++label > 63)
            return 0;
    }
    return label > 0 && name[0] != '-';
}

int kiln_add_host_parse(const char *spec, char **line, kiln_error_t *err)
{
    const char *colon = strchr(spec, ':');
    _cleanup_free_ char *ip = NULL;
    unsigned char bin[16];
    size_t n;

    if (colon == NULL || !host_name_ok(spec, (size_t)(colon - spec)))
        return kiln_error_set(err, 0, "--add-host %s: expected HOST:IP with a host name", spec);
    ip = kiln_xstrdup(colon + 1);
    n = strlen(ip);
    if (n > 2 && ip[0] == '[' && ip[n - 1] == ']') {
        memmove(ip, ip + 1, n - 2);
        ip[n - 2] = '\0';
    }
    if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
        return kiln_error_set(err, 0, "--add-host %s: '%s' is not an IP address", spec, colon + 1);
    *line = kiln_xasprintf("%s\t%.*s\n", ip, (int)(colon - spec), spec);
    return 0;
}
