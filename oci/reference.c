/* kiln — image reference parsing (docker/distribution grammar). */
#include "oci/reference.h"

#include <errno.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define DEFAULT_REGISTRY "docker.io"

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static int is_hex_lower(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int kiln_reference_digest_valid(const char *s)
{
    size_t want, n;

    if (strncmp(s, "sha256:", 7) == 0) {
        want = 64;
        s += 7;
    } else if (strncmp(s, "sha512:", 7) == 0) {
        want = 128;
        s += 7;
    } else {
        return 0;
    }
    for (n = 0; s[n] != '\0'; n++)
        if (!is_hex_lower(s[n]))
            return 0;
    return n == want;
}

int kiln_reference_tag_valid(const char *s)
{
    size_t n;

    if (!(is_alnum(s[0]) || s[0] == '_'))
        return 0;
    for (n = 1; s[n] != '\0'; n++)
        if (!(is_alnum(s[n]) || s[n] == '_' || s[n] == '.' || s[n] == '-'))
            return 0;
    return n <= 128;
}

/* One path component: lowercase alnum runs joined by ".", "_", "__" or "-"+.
 * Returns 0 when valid, else a short reason. */
static const char *path_component_check(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0)
        return "empty path component";
    for (i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z')
            return "repository name must be lowercase";
    }
    if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return "path components must start and end with a letter or digit";
    i = 0;
    while (i < n) {
        if (is_lower_alnum(s[i])) {
            i++;
            continue;
        }
        /* separator run */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (i < n && s[i] == '_')
                i++;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return "invalid character in repository name";
        }
        if (i >= n || !is_lower_alnum(s[i]))
            return "invalid separator in repository name";
    }
    return NULL;
}

/* host[:port]: DNS labels joined by dots, or a bracketed IPv6 address. */
static int domain_valid(const char *s, size_t n)
{
    size_t i = 0, host_end;
    const char *colon;

    if (n == 0)
        return 0;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || close == s + 1)
            return 0;
        for (const char *p = s + 1; p < close; p++)
            if (!(is_hex_lower(*p) || (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
                return 0;
        host_end = (size_t)(close - s) + 1;
    } else {
        colon = memchr(s, ':', n);
        host_end = colon ? (size_t)(colon - s) : n;
        if (host_end == 0)
            return 0;
        /* labels */
        while (i < host_end) {
            size_t start = i;
            while (i < host_end && s[i] != '.') {
                if (!(is_alnum(s[i]) || s[i] == '-'))
                    return 0;
                i++;
            }
            if (i == start || s[start] == '-' || s[i - 1] == '-')
                return 0;
            if (i < host_end)
                i++; /* the dot */
            if (i == host_end && s[i - 1] == '.')
                return 0;
        }
    }
    if (host_end == n)
        return 1;
    if (s[host_end] != ':' || host_end + 1 == n)
        return 0;
    for (i = host_end + 1; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n - host_end - 1 <= 5;
}

int kiln_reference_domain_valid(const char *s, size_t n)
{
    return domain_valid(s, n);
}

const char *kiln_reference_path_check(const char *s, size_t n)
{
    for (const char *p = s, *end = s + n;;) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        const char *why = path_component_check(p, e ? (size_t)(e - p) : (size_t)(end - p));
        if (why != NULL)
            return why;
        if (e == NULL)
            return NULL;
        p = e + 1;
    }
}

void kiln_reference_free(kiln_reference_t *r)
{
    if (r == NULL)
        return;
    free(r->registry);
    free(r->repository);
    free(r->tag);
    free(r->digest);
    r->registry = r->repository = r->tag = r->digest = NULL;
}

void kiln_reference_copy(kiln_reference_t *dst, const kiln_reference_t *src)
{
    dst->registry = src->registry ? kiln_xstrdup(src->registry) : NULL;
    dst->repository = src->repository ? kiln_xstrdup(src->repository) : NULL;
    dst->tag = src->tag ? kiln_xstrdup(src->tag) : NULL;
    dst->digest = src->digest ? kiln_xstrdup(src->digest) : NULL;
}

int kiln_reference_parse(const char *s, kiln_reference_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *copy = NULL;
    _cleanup_free_ char *registry = NULL;
    _cleanup_free_ char *repository = NULL;
    _cleanup_free_ char *tag = NULL;
    _cleanup_free_ char *digest = NULL;
    char *at, *name, *slash, *last_slash, *colon, *rest;
    const char *why;
    size_t len;

    if (s == NULL || *s == '\0')
        return kiln_error_set(err, 0, "invalid image reference: empty");
    len = strlen(s);
    if (len > KILN_REFERENCE_MAX)
        return kiln_error_set(err, 0, "invalid image reference: longer than %d bytes",
                              KILN_REFERENCE_MAX);
    copy = kiln_xstrdup(s);

    at = strchr(copy, '@');
    if (at != NULL) {
        *at = '\0';
        if (!kiln_reference_digest_valid(at + 1))
            return kiln_error_set(err, 0,
                                  "invalid image reference '%s': bad digest '%s' (want "
                                  "sha256:<64 lowercase hex>)",
                                  s, at + 1);
        digest = kiln_xstrdup(at + 1);
    }
    name = copy;
    last_slash = strrchr(name, '/');
    colon = strrchr(last_slash ? last_slash : name, ':');
    if (colon != NULL) {
        *colon = '\0';
        if (!kiln_reference_tag_valid(colon + 1))
            return kiln_error_set(err, 0, "invalid image reference '%s': bad tag '%s'", s,
                                  colon + 1);
        tag = kiln_xstrdup(colon + 1);
    }
    if (*name == '\0')
        return kiln_error_set(err, 0, "invalid image reference '%s': no repository name", s);

    slash = strchr(name, '/');
    if (slash != NULL &&
        (memchr(name, '.', (size_t)(slash - name)) != NULL ||
         memchr(name, ':', (size_t)(slash - name)) != NULL ||
         (slash - name == 9 && strncmp(name, "localhost", 9) == 0) || name[0] == '[')) {
        if (!domain_valid(name, (size_t)(slash - name)))
            return kiln_error_set(err, 0, "invalid image reference '%s': bad registry '%.*s'", s,
                                  (int)(slash - name), name);
        registry = kiln_xstrndup(name, (size_t)(slash - name));
        rest = slash + 1;
    } else {
        registry = kiln_xstrdup(DEFAULT_REGISTRY);
        rest = name;
    }
    if (strcmp(registry, "index.docker.io") == 0 || strcmp(registry, "registry-1.docker.io") == 0) {
        free(registry);
        registry = kiln_xstrdup(DEFAULT_REGISTRY);
    }

    why = kiln_reference_path_check(rest, strlen(rest));
    if (why != NULL)
        return kiln_error_set(err, 0, "invalid image reference '%s': %s", s, why);

    if (strcmp(registry, DEFAULT_REGISTRY) == 0 && strchr(rest, '/') == NULL)
        repository = kiln_xasprintf("library/%s", rest);
    else
        repository = kiln_xstrdup(rest);
    if (strlen(registry) + 1 + strlen(repository) > KILN_REFERENCE_NAME_MAX)
        return kiln_error_set(err, 0,
                              "invalid image reference '%s': name longer than %d characters", s,
                              KILN_REFERENCE_NAME_MAX);
    if (tag == NULL && digest == NULL)
        tag = kiln_xstrdup("latest");

    out->registry = steal_pointer(&registry);
    out->repository = steal_pointer(&repository);
    out->tag = steal_pointer(&tag);
    out->digest = steal_pointer(&digest);
    return 0;
}

char *kiln_reference_format(const kiln_reference_t *r)
{
    return kiln_xasprintf("%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                          r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "");
}

char *kiln_reference_name(const kiln_reference_t *r)
{
    return kiln_xasprintf("%s/%s", r->registry, r->repository);
}

const char *kiln_reference_endpoint(const char *registry)
{
    if (strcmp(registry, DEFAULT_REGISTRY) == 0)
        return "registry-1.docker.io";
    return registry;
}
