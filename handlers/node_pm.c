/* kiln — packageManager (corepack semantics) and lockfile release lines (see node_pm.h). */
#include "handlers/node_pm.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/semver.h"

const char *const kiln_node_pm_config_files[] = {".npmrc",
                                                 "pnpm-workspace.yaml",
                                                 ".pnpmfile.cjs",
                                                 ".yarnrc",
                                                 ".yarnrc.yml",
                                                 ".yarn/releases/",
                                                 ".yarn/plugins/",
                                                 ".yarn/patches/",
                                                 "patches/",
                                                 "bunfig.toml",
                                                 NULL};

void kiln_node_pm_field_release(kiln_node_pm_field_t *f)
{
    free(f->manager);
    free(f->version);
    free(f->hash);
    f->manager = f->version = f->hash = NULL;
}

/* The hash after '+': a known algorithm, '.', its digest's length of lowercase hex. */
static bool hash_ok(const char *h)
{
    static const struct {
        const char *name;
        size_t hexlen;
    } algos[] = {{"sha512", 128}, {"sha256", 64}, {"sha224", 56}, {"sha1", 40}};

    for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
        size_t n = strlen(algos[i].name);
        if (strncmp(h, algos[i].name, n) == 0 && h[n] == '.' &&
            strlen(h + n + 1) == algos[i].hexlen &&
            strspn(h + n + 1, "0123456789abcdef") == algos[i].hexlen)
            return true;
    }
    return false;
}

int kiln_node_pm_parse(const char *field, kiln_node_pm_field_t *out, kiln_error_t *err)
{
    static const char *const names[] = {"pnpm", "yarn", "bun", "npm"};
    const char *at = field ? strchr(field, '@') : NULL, *plus;
    const char *name = NULL;
    size_t vlen;
    kiln_semver_t v;
    _cleanup_free_ char *ver = NULL;

    memset(out, 0, sizeof(*out));
    if (at == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((size_t)(at - field) == strlen(names[i]) && strncmp(field, names[i], at - field) == 0)
            name = names[i];
    if (name == NULL)
        return 0;
    plus = strchr(at + 1, '+');
    vlen = plus ? (size_t)(plus - at - 1) : strlen(at + 1);
    ver = kiln_xstrndup(at + 1, vlen);
    /* the version goes into a URL and a path: an exact release of plain characters */
    if (vlen == 0 || vlen > 64 ||
        strspn(ver, "0123456789abcdefghijklmnopqrstuvwxyz"
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-") != vlen ||
        kiln_semver_parse(ver, &v, NULL) < 0 || ver[0] < '0' || ver[0] > '9')
        return kiln_error_set(err, 0,
                              "package.json: packageManager \"%.80s\" names no plain version "
                              "(corepack needs an exact release, e.g. %s@%s)",
                              field, name, strcmp(name, "pnpm") == 0 ? "9.15.9" : "1.22.22");
    if (plus != NULL && !hash_ok(plus + 1))
        return kiln_error_set(err, 0,
                              "package.json: packageManager \"%.80s\": the part after '+' is not "
                              "a hash (sha512.<hex>, sha256.<hex>, sha224.<hex> or sha1.<hex>, "
                              "lowercase)",
                              field);
    out->manager = kiln_xstrdup(strcmp(name, "yarn") == 0 && v.major >= 2 ? "yarn-berry" : name);
    out->version = steal_pointer(&ver);
    out->hash = plus ? kiln_xstrdup(plus + 1) : NULL;
    return 1;
}

/* The value of the first line `key: value` at the start of a line (quotes dropped), as
 * a number (major * 10 + the first digit of the minor), or -1. */
static int yaml_number(const char *text, const char *key, bool indented)
{
    size_t kl = strlen(key);

    for (const char *l = text; l && *l; l += strcspn(l, "\n"), l += *l == '\n') {
        const char *p = l;
        long major = 0, minor = 0;
        if (indented)
            p += strspn(p, " ");
        if ((indented && p == l) || strncmp(p, key, kl) != 0 || p[kl] != ':')
            continue;
        p += kl + 1;
        p += strspn(p, " '\"");
        if (*p < '0' || *p > '9')
            return -1;
        major = strtol(p, (char **)&p, 10);
        if (*p == '.' && p[1] >= '0' && p[1] <= '9')
            minor = p[1] - '0';
        return major > 1000 ? -1 : (int)(major * 10 + minor);
    }
    return -1;
}

const char *kiln_node_pm_pnpm_line(const char *lock)
{
    int v = lock ? yaml_number(lock, "lockfileVersion", false) : -1;

    /* 9.0 is written by pnpm 9 and 10: 9, since 10 stops running dependencies' build
     * scripts unless the project allows them (a lockfile made by 9 would lose its native
     * modules' builds) */
    if (v >= 90 || v < 0)
        return "9";
    if (v >= 60)
        return "8";
    if (v >= 54)
        return "7";
    if (v >= 53)
        return "6";
    return "5";
}

const char *kiln_node_pm_berry_line(const char *lock)
{
    const char *m = lock == NULL                            ? NULL
                    : strncmp(lock, "__metadata:", 11) == 0 ? lock
                                                            : strstr(lock, "\n__metadata:");
    _cleanup_free_ char *block = NULL;
    int v = -1;

    if (m != NULL) {
        /* the block's indented lines only (a package's own "version:" lies below) */
        const char *e = m + (*m == '\n');
        e += strcspn(e, "\n");
        while (*e == '\n' && (e[1] == ' ' || e[1] == '\r' || e[1] == '\n'))
            e += 1 + strcspn(e + 1, "\n");
        block = kiln_xstrndup(m, (size_t)(e - m));
        v = yaml_number(block, "version", true);
    }
    if (v < 0 || v >= 80)
        return "4";
    if (v >= 50)
        return "3";
    return "2";
}
