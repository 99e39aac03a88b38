/* kiln — the SBOM's package-database readers (see sbom.h and sbom_read.h): dpkg status,
 * os-release, installed package.json, package-lock, pnpm-lock, yarn.lock, dist-info METADATA and
 * a Go binary's build information, each turned into packages of the document. */
#include "export/sbom_read.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "export/sbom_go.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define LOCK_DEPTH_MAX 64

/* A package without a checksum (a database's). */
static int add_pkg(kiln_sbom_t *sb, const char *type, const char *name, const char *version,
                   const char *license, const char *arch, const char *source, kiln_error_t *err)
{
    return kiln_sbom_add_pkg(sb, type, name, version, license, arch, source, NULL, err);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

const char *kiln_sbom_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* 1 when a path component is "node_modules". */
static int in_node_modules(const char *path)
{
    return strncmp(path, "node_modules/", 13) == 0 || strstr(path, "/node_modules/") != NULL;
}

/* What follows the last node_modules/ component of path (a package-lock key
 * "node_modules/a/node_modules/@s/b" names @s/b), or NULL. */
static const char *lock_key_name(const char *key)
{
    const char *p = key, *last = NULL;

    while ((p = strstr(p, "node_modules/")) != NULL) {
        if (p == key || p[-1] == '/')
            last = p + 13;
        p += 13;
    }
    return last;
}

/* What follows the last node_modules/ of path when it is [@scope/]NAME/package.json (an
 * installed package's manifest, not one of its inner files), else NULL. */
static const char *node_module_rest(const char *path)
{
    const char *last = lock_key_name(path);

    if (last == NULL || last[0] == '.')
        return NULL;
    const char *slash = strchr(last, '/');
    if (slash == NULL)
        return NULL;
    if (last[0] == '@') {
        slash = strchr(slash + 1, '/');
        if (slash == NULL)
            return NULL;
    }
    return strcmp(slash + 1, "package.json") == 0 ? last : NULL;
}

int kiln_sbom_wanted(const char *path)
{
    const char *b = kiln_sbom_base_name(path);

    if (strcmp(path, "var/lib/dpkg/status") == 0 || strcmp(path, "etc/os-release") == 0 ||
        strcmp(path, "usr/lib/os-release") == 0)
        return 1;
    if (strcmp(b, "package.json") == 0)
        return node_module_rest(path) != NULL;
    if (strcmp(b, "package-lock.json") == 0 || strcmp(b, "pnpm-lock.yaml") == 0 ||
        strcmp(b, "yarn.lock") == 0)
        return !in_node_modules(path);
    if (strcmp(b, ".package-lock.json") == 0) /* npm's record of the top node_modules */
        return b - path >= 13 && strstr(path, "node_modules/") == b - 13 &&
               (b - path == 13 || b[-14] == '/');
    return strcmp(b, "METADATA") == 0 && ends_with(path, ".dist-info/METADATA");
}

/* The next line of [*p, end) (without its newline) into line/len; 0 at the end. */
static int next_line(const char **p, const char *end, const char **line, size_t *len)
{
    const char *nl;

    if (*p >= end)
        return 0;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    *line = *p;
    *len = (size_t)((nl ? nl : end) - *p);
    *p = nl ? nl + 1 : end;
    return 1;
}

/* The value of "Key: value" when line is that field of an RFC 822-style paragraph. */
static char *field_value(const char *line, size_t len, const char *key)
{
    size_t k = strlen(key);

    if (len <= k || strncasecmp(line, key, k) != 0 || line[k] != ':')
        return NULL;
    line += k + 1;
    len -= k + 1;
    while (len && (*line == ' ' || *line == '\t'))
        line++, len--;
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\r'))
        len--;
    return kiln_xstrndup(line, len);
}

/* Sets *slot to the field's value when line is that field. */
static void take_field(char **slot, const char *line, size_t len, const char *key)
{
    char *v = field_value(line, len, key);
    if (v) {
        free(*slot);
        *slot = v;
    }
}

/* dpkg's status: one paragraph per package; those whose Status says installed are listed. */
static int parse_dpkg(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                      kiln_error_t *err)
{
    const char *p = data, *end = data + len, *line;
    size_t n;
    int done = 0;

    while (!done) {
        _cleanup_free_ char *name = NULL, *version = NULL, *arch = NULL, *status = NULL;
        while (!(done = !next_line(&p, end, &line, &n)) && n > 0 && !(n == 1 && *line == '\r')) {
            take_field(&name, line, n, "Package");
            take_field(&version, line, n, "Version");
            take_field(&arch, line, n, "Architecture");
            take_field(&status, line, n, "Status");
        }
        if (name && status && ends_with(status, " installed") &&
            add_pkg(sb, "deb", name, version, NULL, arch, path, err) < 0)
            return -1;
    }
    return 0;
}

/* os-release's ID names the distribution of the deb purls. */
static void parse_os_release(kiln_sbom_t *sb, const char *data, size_t len)
{
    const char *p = data, *end = data + len, *line;
    size_t n;

    while (next_line(&p, end, &line, &n))
        if (n > 3 && strncmp(line, "ID=", 3) == 0) {
            _cleanup_free_ char *id = kiln_xstrndup(line + 3, n - 3);
            char *s = id;
            size_t l;
            if (*s == '"')
                s++;
            l = strcspn(s, "\"");
            s[l] = '\0';
            if (l == 0 || l > 32)
                return;
            for (char *c = s; *c; c++)
                if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '-' &&
                    *c != '.' && *c != '_')
                    return;
            kiln_sbom_set_distro(sb, s);
            return;
        }
}

/* package.json's license: a string, or the old {"type": ...} form. */
static const char *json_license(const json_t *j)
{
    const json_t *l = json_object_get(j, "license");
    if (json_is_object(l))
        l = json_object_get(l, "type");
    return json_string_value(l);
}

/* An installed package's package.json. */
static int parse_package_json(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                              kiln_error_t *err)
{
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);

    if (!json_is_object(j))
        return 0;
    return add_pkg(sb, "npm", json_string_value(json_object_get(j, "name")),
                   json_string_value(json_object_get(j, "version")), json_license(j), NULL, path,
                   err);
}

/* package-lock v1's nested "dependencies". */
static int lock_v1_deps(kiln_sbom_t *sb, const char *path, const json_t *deps, int depth,
                        kiln_error_t *err)
{
    const char *name;
    json_t *d;

    if (!json_is_object(deps) || depth > LOCK_DEPTH_MAX)
        return 0;
    json_object_foreach((json_t *)deps, name, d)
    {
        if (json_is_true(json_object_get(d, "bundled")) && json_object_get(d, "version") == NULL)
            continue;
        if (add_pkg(sb, "npm", name, json_string_value(json_object_get(d, "version")), NULL, NULL,
                    path, err) < 0 ||
            lock_v1_deps(sb, path, json_object_get(d, "dependencies"), depth + 1, err) < 0)
            return -1;
    }
    return 0;
}

/* package-lock.json (v1 to v3) and node_modules/.package-lock.json. */
static int parse_package_lock(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                              kiln_error_t *err)
{
    _cleanup_json_ json_t *j = json_loadb(data, len, 0, NULL);
    const json_t *pkgs = json_object_get(j, "packages");
    const char *key;
    json_t *v;

    if (!json_is_object(j))
        return 0;
    if (!json_is_object(pkgs))
        return lock_v1_deps(sb, path, json_object_get(j, "dependencies"), 0, err);
    json_object_foreach((json_t *)pkgs, key, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        /* the root project and workspace links are the user's own code */
        if (*key == '\0' || json_is_true(json_object_get(v, "link")))
            continue;
        if (name == NULL)
            name = lock_key_name(key);
        if (name && add_pkg(sb, "npm", name, json_string_value(json_object_get(v, "version")),
                            json_license(v), NULL, path, err) < 0)
            return -1;
    }
    return 0;
}

/* "name@version" (npm's spelling, a scope's '@' first) split at the version's '@'. */
static int split_at_version(char *spec, char **version)
{
    char *at = strchr(spec + (spec[0] == '@'), '@');
    if (at == NULL)
        return -1;
    *at = '\0';
    *version = at + 1;
    return 0;
}

/* The key of a pnpm-lock packages: entry (v5 "/name/1.0.0", v6 "/name@1.0.0(peer)", v9
 * "name@1.0.0") as a package. */
static int pnpm_key(kiln_sbom_t *sb, const char *path, char *key, kiln_error_t *err)
{
    char *version = NULL;

    if (*key == '/')
        key++;
    key[strcspn(key, "(")] = '\0';
    if (split_at_version(key, &version) < 0) {
        char *slash = strrchr(key, '/');
        if (slash == NULL)
            return 0;
        *slash = '\0';
        version = slash + 1;
    }
    /* a tarball or git dependency names no registry version */
    if (strchr(version, ':') || strchr(version, '/'))
        return 0;
    return add_pkg(sb, "npm", key, version, NULL, NULL, path, err);
}

/* pnpm-lock.yaml: the keys of the top-level packages: map (two-space indent). */
static int parse_pnpm_lock(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                           kiln_error_t *err)
{
    const char *p = data, *end = data + len, *line;
    size_t n;
    int in = 0;

    while (next_line(&p, end, &line, &n)) {
        if (n > 0 && line[0] != ' ' && line[0] != '#') {
            in = n >= 9 && strncmp(line, "packages:", 9) == 0;
            continue;
        }
        if (!in || n < 4 || line[0] != ' ' || line[1] != ' ' || line[2] == ' ')
            continue;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (n < 4 || line[n - 1] != ':')
            continue;
        _cleanup_free_ char *key = kiln_xstrndup(line + 2, n - 3);
        char *k = key;
        if (*k == '\'' || *k == '"') {
            k++;
            k[strcspn(k, "'\"")] = '\0';
        }
        if (pnpm_key(sb, path, k, err) < 0)
            return -1;
    }
    return 0;
}

/* yarn.lock (v1 and Berry): an entry's first spec "name@range" at column 0, its version in
 * an indented `version "X"` (v1) or `version: X` (Berry) line. */
static int parse_yarn_lock(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                           kiln_error_t *err)
{
    const char *p = data, *end = data + len, *line;
    _cleanup_free_ char *name = NULL;
    size_t n;

    while (next_line(&p, end, &line, &n)) {
        if (n > 0 && line[0] != ' ' && line[0] != '#') {
            char *range = NULL;
            free(name);
            name = kiln_xstrndup(line + (line[0] == '"'), n - (line[0] == '"'));
            /* the first spec ends at a quote or comma, else the line's ':' */
            size_t k = strcspn(name, "\",");
            if (name[k] == '\0')
                k = strcspn(name, "\r") > 0 && name[strcspn(name, "\r") - 1] == ':'
                        ? strcspn(name, "\r") - 1
                        : strcspn(name, "\r");
            name[k] = '\0';
            if (strcmp(name, "__metadata") == 0 || split_at_version(name, &range) < 0 ||
                strncmp(range, "workspace:", 10) == 0 || strncmp(range, "link:", 5) == 0 ||
                strncmp(range, "portal:", 7) == 0) {
                free(name);
                name = NULL;
            }
            continue;
        }
        if (name == NULL)
            continue;
        const char *s = line;
        size_t m = n;
        while (m && *s == ' ')
            s++, m--;
        if (m > 8 && strncmp(s, "version", 7) == 0 && (s[7] == ' ' || s[7] == ':')) {
            s += 8, m -= 8;
            while (m && (*s == ' ' || *s == '"'))
                s++, m--;
            while (m && (s[m - 1] == '"' || s[m - 1] == '\r' || s[m - 1] == ' '))
                m--;
            _cleanup_free_ char *version = kiln_xstrndup(s, m);
            int r = add_pkg(sb, "npm", name, version, NULL, NULL, path, err);
            free(name);
            name = NULL;
            if (r < 0)
                return -1;
        }
    }
    return 0;
}

/* A Python distribution's METADATA headers; the name normalised as PyPI's purl wants. */
static int parse_dist_info(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                           kiln_error_t *err)
{
    const char *p = data, *end = data + len, *line;
    _cleanup_free_ char *name = NULL, *version = NULL, *license = NULL, *expr = NULL;
    size_t n;

    while (next_line(&p, end, &line, &n) && n > 0 && !(n == 1 && *line == '\r')) {
        take_field(&name, line, n, "Name");
        take_field(&version, line, n, "Version");
        take_field(&license, line, n, "License");
        take_field(&expr, line, n, "License-Expression");
    }
    if (name == NULL)
        return 0;
    for (char *c = name; *c; c++)
        *c = *c == '_' || *c == '.' ? '-' : (char)tolower((unsigned char)*c);
    return add_pkg(sb, "pypi", name, version, expr ? expr : license, NULL, path, err);
}

int kiln_sbom_add_file(kiln_sbom_t *sb, const char *path, const char *data, size_t len,
                       kiln_error_t *err)
{
    const char *b = kiln_sbom_base_name(path);

    if (len > KILN_SBOM_FILE_MAX)
        return kiln_error_set(err, EFBIG, "%s: larger than %u MiB", path, KILN_SBOM_FILE_MAX >> 20);
    if (!kiln_sbom_wanted(path))
        return 0;
    if (strcmp(path, "var/lib/dpkg/status") == 0)
        return parse_dpkg(sb, path, data, len, err);
    if (strcmp(b, "os-release") == 0) {
        parse_os_release(sb, data, len);
        return 0;
    }
    if (strcmp(b, "package.json") == 0)
        return parse_package_json(sb, path, data, len, err);
    if (strcmp(b, "package-lock.json") == 0 || strcmp(b, ".package-lock.json") == 0)
        return parse_package_lock(sb, path, data, len, err);
    if (strcmp(b, "pnpm-lock.yaml") == 0)
        return parse_pnpm_lock(sb, path, data, len, err);
    if (strcmp(b, "yarn.lock") == 0)
        return parse_yarn_lock(sb, path, data, len, err);
    return parse_dist_info(sb, path, data, len, err);
}

int kiln_sbom_add_go(kiln_sbom_t *sb, const char *path, const unsigned char *blob, size_t len,
                     kiln_error_t *err)
{
    kiln_go_buildinfo_t bi;
    kiln_error_t perr = {0};
    int r = 0;

    /* a blob that does not parse is skipped, as a malformed database is */
    if (kiln_go_buildinfo_parse(blob, len, &bi, &perr) != 1)
        return 0;
    r = add_pkg(sb, "golang", "stdlib", bi.go_version, "BSD-3-Clause", NULL, path, err);
    for (size_t i = 0; i <= bi.n_deps && r == 0; i++) {
        const kiln_go_module_t *m = i == 0 ? &bi.main : &bi.deps[i - 1];
        _cleanup_free_ char *hex = kiln_go_sum_hex(m->sum);
        if (m->path)
            r = kiln_sbom_add_pkg(sb, "golang", m->path, m->version, NULL, NULL, path, hex, err);
    }
    kiln_go_buildinfo_clear(&bi);
    return r;
}
