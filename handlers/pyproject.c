/* kiln — the Python provider's manifest reading (see pyproject.h). */
#include "handlers/pyproject.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/toml.h"

void kiln_pyproject_free(kiln_pyproject_t *p)
{
    free(p->requires_python);
    free(p->python_source);
    for (size_t i = 0; i < p->n_deps; i++)
        free(p->deps[i]);
    for (size_t i = 0; i < p->n_paths; i++)
        free(p->paths[i]);
    memset(p, 0, sizeof(*p));
}

char *kiln_pyproject_normalize(const char *name, size_t len)
{
    char *s = kiln_xmalloc(len + 1);
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = (char)tolower((unsigned char)name[i]);
        if (c == '_' || c == '.')
            c = '-';
        if (c == '-' && n > 0 && s[n - 1] == '-')
            continue;
        s[n++] = c;
    }
    s[n] = '\0';
    return s;
}

bool kiln_pyproject_has(const kiln_pyproject_t *p, const char *name)
{
    _cleanup_free_ char *want = kiln_pyproject_normalize(name, strlen(name));
    for (size_t i = 0; i < p->n_deps; i++)
        if (strcmp(p->deps[i], want) == 0)
            return true;
    return false;
}

/* Adds a dependency name once (dropped past the cap: detection only looks for a few). */
static void add_dep(kiln_pyproject_t *p, const char *name, size_t len)
{
    char *n;

    if (len == 0 || len > 128 || p->n_deps >= KILN_PYDEPS_MAX)
        return;
    n = kiln_pyproject_normalize(name, len);
    for (size_t i = 0; i < p->n_deps; i++)
        if (strcmp(p->deps[i], n) == 0) {
            free(n);
            return;
        }
    p->deps[p->n_deps++] = n;
}

char *kiln_pyproject_local_path(const char *file, const char *dep, const char *path,
                                kiln_error_t *err)
{
    kiln_buf_t b;
    const char *s = path;
    size_t depth = 0;

    if (path[0] == '/' || path[0] == '~' || strchr(path, '\\') != NULL || strchr(path, ':') != NULL)
        goto outside;
    kiln_buf_init(&b, 4096);
    /* lexical: every ".." must stay below the root */
    while (*s) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.')) {
            /* empty or "." */
        } else if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (depth == 0) {
                kiln_buf_free(&b);
                goto outside;
            }
            depth--;
            /* drop the last component */
            while (b.len > 0 && b.data[b.len - 1] == '/')
                b.len--;
            while (b.len > 0 && b.data[b.len - 1] != '/')
                b.len--;
        } else {
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] <= 0x20 || s[i] == '"' || s[i] == '\'' || s[i] == '$' ||
                    s[i] == '`' || s[i] == ',') {
                    kiln_buf_free(&b);
                    kiln_error_set(err, 0,
                                   "%s: the path of dependency \"%.64s\" (%.128s) holds a "
                                   "space, quote or special character",
                                   file, dep, path);
                    return NULL;
                }
            if (kiln_buf_append(&b, s, n, err) < 0 || kiln_buf_append(&b, "/", 1, err) < 0) {
                kiln_buf_free(&b);
                return NULL;
            }
            depth++;
        }
        s += n;
        if (*s == '/')
            s++;
    }
    if (b.len == 0) {
        /* the project itself ("." or "-e ."): it is installed after the source is copied */
        kiln_buf_free(&b);
        return kiln_xstrdup("./");
    }
    /* an archive or a requirements file is a file; anything else a directory (its
     * trailing '/' makes COPY keep the directory itself) */
    {
        static const char *const file_ends[] = {".txt", ".in", ".whl", ".zip", ".tar.gz", ".tgz"};
        char *norm;
        size_t l;
        b.data[--b.len] = '\0'; /* the last / */
        norm = kiln_buf_steal(&b, NULL);
        l = strlen(norm);
        for (size_t i = 0; i < sizeof(file_ends) / sizeof(file_ends[0]); i++) {
            size_t el = strlen(file_ends[i]);
            if (l > el && strcmp(norm + l - el, file_ends[i]) == 0)
                return norm;
        }
        char *with = kiln_xasprintf("%s/", norm);
        free(norm);
        return with;
    }
outside:
    kiln_error_set(err, 0,
                   "%s: dependency \"%.64s\" is the local path %.128s, outside the source: a "
                   "build sees only the source directory; publish the package to an index, "
                   "move it inside the source, or build from a directory that holds both "
                   "(--subdir names the app)",
                   file, dep, path);
    return NULL;
}

/* Records a local path dependency (inside the source). */
static int add_path(kiln_pyproject_t *p, const char *file, const char *dep, const char *path,
                    kiln_error_t *err)
{
    char *norm = kiln_pyproject_local_path(file, dep, path, err);
    if (norm == NULL)
        return -1;
    if (strcmp(norm, "./") == 0) {
        p->self_ref = true;
        free(norm);
        return 0;
    }
    for (size_t i = 0; i < p->n_paths; i++)
        if (strcmp(p->paths[i], norm) == 0) {
            free(norm);
            return 0;
        }
    if (p->n_paths >= KILN_PYPATHS_MAX) {
        free(norm);
        return kiln_error_set(err, 0, "%s: more than %d local path dependencies", file,
                              KILN_PYPATHS_MAX);
    }
    p->paths[p->n_paths++] = norm;
    return 0;
}

/* A PEP 508 requirement string: its name, and its path when it is a file: URL
 * ("pkg @ file:///abs", "pkg @ file:../x", "pkg @ {root:uri}/libs/pkg"). */
static int pep508(kiln_pyproject_t *p, const char *file, const char *req, kiln_error_t *err)
{
    const char *s = req, *at;
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_' || s[n] == '.')
        n++;
    add_dep(p, s, n);
    at = strchr(s + n, '@');
    if (at != NULL && strchr(s + n, ';') != NULL && strchr(s + n, ';') < at)
        at = NULL; /* "@" inside a marker */
    if (at != NULL) {
        _cleanup_free_ char *name = kiln_xstrndup(s, n);
        _cleanup_free_ char *url = NULL;
        const char *u = at + 1;
        while (*u == ' ')
            u++;
        url = kiln_xstrndup(u, strcspn(u, " ;"));
        if (strncmp(url, "{root:uri}/", 11) == 0)
            return add_path(p, file, name, url + 11, err);
        if (strncmp(url, "file:", 5) == 0) {
            const char *path = url + 5;
            /* file://HOST/path: only the empty host or localhost mean this machine */
            if (strncmp(path, "//", 2) == 0) {
                path += 2;
                if (strncmp(path, "localhost", 9) == 0)
                    path += 9;
            }
            return add_path(p, file, name, path, err);
        }
    }
    return 0;
}

/* A table of Poetry / uv / Pipfile dependencies ({name = "version" | {path = ...}}):
 * names, and paths. `skip` names a key that is not a dependency ("python"). */
static int dep_table(kiln_pyproject_t *p, const char *file, json_t *tab, const char *skip,
                     kiln_error_t *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(tab, key, v)
    {
        json_t *path;
        if (skip && strcmp(key, skip) == 0)
            continue;
        add_dep(p, key, strlen(key));
        /* Poetry allows a list of constraints per platform */
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                path = json_object_get(e, "path");
                if (json_is_string(path) &&
                    add_path(p, file, key, json_string_value(path), err) < 0)
                    return -1;
            }
            continue;
        }
        path = json_object_get(v, "path");
        if (json_is_string(path) && add_path(p, file, key, json_string_value(path), err) < 0)
            return -1;
    }
    return 0;
}

/* Sets the Python constraint once (the first source wins). */
static void set_python(kiln_pyproject_t *p, json_t *v, const char *source)
{
    if (p->requires_python == NULL && json_is_string(v)) {
        p->requires_python = kiln_xstrdup(json_string_value(v));
        p->python_source = kiln_xstrdup(source);
    }
}

int kiln_pyproject_read(kiln_pyproject_t *p, const char *file, const char *text, size_t len,
                        kiln_error_t *err)
{
    json_t *doc = NULL, *project, *poetry, *tool, *a, *v, *mode;
    size_t i;
    int r = -1;

    if (kiln_toml_load(file, text, len, &doc, err) < 0)
        return -1;
    project = json_object_get(doc, "project");
    tool = json_object_get(doc, "tool");
    poetry = json_object_get(tool, "poetry");
    p->build_system = json_is_object(json_object_get(doc, "build-system"));
    p->poetry = json_is_object(poetry);
    p->pdm = json_is_object(json_object_get(tool, "pdm"));
    p->uv = json_is_object(json_object_get(tool, "uv"));
    p->package = p->build_system;
    mode = json_object_get(poetry, "package-mode");
    if (json_is_false(mode))
        p->package = false;
    mode = json_object_get(json_object_get(tool, "uv"), "package");
    if (json_is_boolean(mode))
        p->package = json_is_true(mode) && p->build_system;
    {
        _cleanup_free_ char *src = kiln_xasprintf("%s requires-python", file);
        set_python(p, json_object_get(project, "requires-python"), src);
    }
    a = json_object_get(project, "dependencies");
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && pep508(p, file, json_string_value(v), err) < 0)
            goto out;
    }
    v = json_object_get(poetry, "dependencies");
    if (json_is_object(v)) {
        _cleanup_free_ char *src = kiln_xasprintf("%s [tool.poetry.dependencies] python", file);
        set_python(p, json_object_get(v, "python"), src);
        if (dep_table(p, file, v, "python", err) < 0)
            goto out;
    }
    v = json_object_get(json_object_get(tool, "uv"), "sources");
    if (json_is_object(v)) {
        const char *key;
        json_t *src;
        json_object_foreach(v, key, src)
        {
            json_t *path = json_object_get(src, "path");
            if (json_is_string(path) && add_path(p, file, key, json_string_value(path), err) < 0)
                goto out;
        }
    }
    r = 0;
out:
    json_decref(doc);
    return r;
}

int kiln_pyproject_read_pipfile(kiln_pyproject_t *p, const char *file, const char *text, size_t len,
                                kiln_error_t *err)
{
    json_t *doc = NULL, *req;
    int r;

    if (kiln_toml_load(file, text, len, &doc, err) < 0)
        return -1;
    req = json_object_get(doc, "requires");
    {
        _cleanup_free_ char *full = kiln_xasprintf("%s [requires] python_full_version", file);
        _cleanup_free_ char *minor = kiln_xasprintf("%s [requires] python_version", file);
        json_t *v = json_object_get(req, "python_full_version");
        if (json_is_string(v)) {
            _cleanup_free_ char *eq = kiln_xasprintf("==%s", json_string_value(v));
            json_t *s = json_string(eq);
            set_python(p, s, full);
            json_decref(s);
        }
        v = json_object_get(req, "python_version");
        if (json_is_string(v)) {
            _cleanup_free_ char *eq = kiln_xasprintf("==%s.*", json_string_value(v));
            json_t *s = json_string(eq);
            set_python(p, s, minor);
            json_decref(s);
        }
    }
    r = dep_table(p, file, json_object_get(doc, "packages"), NULL, err);
    json_decref(doc);
    return r;
}

int kiln_pyproject_read_requirements(kiln_pyproject_t *p, const char *file, const char *text,
                                     kiln_error_t *err)
{
    const char *line = text;

    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        _cleanup_free_ char *l = kiln_xstrndup(line, n);
        char *s = l, *hash;

        line = nl ? nl + 1 : NULL;
        if ((hash = strstr(s, " #")) != NULL || (hash = strstr(s, "\t#")) != NULL)
            *hash = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, "\r")] = '\0';
        for (size_t e = strlen(s); e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\\'); e--)
            s[e - 1] = '\0';
        if (*s == '#' || *s == '\0')
            continue;
        if (strncmp(s, "-e", 2) == 0 || strncmp(s, "--editable", 10) == 0 ||
            strncmp(s, "-r", 2) == 0 || strncmp(s, "-c", 2) == 0 ||
            strncmp(s, "--requirement", 13) == 0 || strncmp(s, "--constraint", 12) == 0) {
            char *arg = s + strcspn(s, " =\t");
            bool include = s[1] == 'r' || s[1] == 'c' || s[2] == 'r' || s[2] == 'c';
            if (*arg == '\0' && (s[1] == 'e' || s[1] == 'r' || s[1] == 'c'))
                arg = s + 2; /* "-rfile.txt" */
            while (*arg == ' ' || *arg == '=' || *arg == '\t')
                arg++;
            if (*arg == '\0')
                continue;
            if (!include && strstr(arg, "://") != NULL && strncmp(arg, "file:", 5) != 0)
                continue; /* -e git+https://… */
            if (strncmp(arg, "file:", 5) == 0)
                arg += 5;
            if (include && strchr(file, '/') != NULL && arg[0] != '/') {
                /* pip reads an include relative to the file that names it */
                _cleanup_free_ char *rel =
                    kiln_xasprintf("%.*s/%s", (int)(strrchr(file, '/') - file), file, arg);
                if (add_path(p, file, arg, rel, err) < 0)
                    return -1;
                continue;
            }
            if (add_path(p, file, arg, arg, err) < 0)
                return -1;
            continue;
        }
        if (*s == '-')
            continue; /* --index-url, --hash-only lines, … */
        if (*s == '.' || *s == '/' || strncmp(s, "file:", 5) == 0) {
            const char *path = strncmp(s, "file:", 5) == 0 ? s + 5 : s;
            if (strncmp(path, "//", 2) == 0)
                path += 2;
            if (add_path(p, file, path, path, err) < 0)
                return -1;
            continue;
        }
        if (pep508(p, file, s, err) < 0)
            return -1;
    }
    return 0;
}
