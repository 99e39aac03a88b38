/* kiln — the planning parts of a Maven pom.xml, read with utils/xmlread (see pom.h).
 *
 * At each end tag the element's path ("project/build/finalName", local names) says where its
 * text goes. A dependency or plugin element starts a new record that its child elements fill. */
#include "handlers/pom.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/xmlread.h"

#define EXPAND_DEPTH 8
#define EXPAND_CAP 4096

typedef struct pom_ctx {
    kiln_xml_reader_t *r; /* the reader, while in one of its callbacks */
    kiln_pom_t *pom;
    char **plugin_release, **plugin_jdk; /* per plugin record */
    size_t n_slots;                      /* entries of plugin_release / plugin_jdk */
    size_t alloc_deps, alloc_managed, alloc_plugins, alloc_props, alloc_modules;
} pom_ctx_t;

/* Stops the parse naming why (not an OS error: no errno text follows). */
#define stop(c, ...) kiln_xml_reader_stop((c)->r, 0, __VA_ARGS__)

static void artifact_clear(kiln_pom_artifact_t *a)
{
    free(a->group_id);
    free(a->artifact_id);
    free(a->version);
    free(a->scope);
}

void kiln_pom_free(kiln_pom_t *pom)
{
    if (pom == NULL)
        return;
    free(pom->group_id);
    free(pom->artifact_id);
    free(pom->version);
    free(pom->packaging);
    free(pom->final_name);
    artifact_clear(&pom->parent);
    for (size_t i = 0; i < pom->n_modules; i++)
        free(pom->modules[i]);
    free(pom->modules);
    for (size_t i = 0; i < pom->n_props; i++) {
        free(pom->props[i].name);
        free(pom->props[i].value);
    }
    free(pom->props);
    for (size_t i = 0; i < pom->n_deps; i++)
        artifact_clear(&pom->deps[i]);
    free(pom->deps);
    for (size_t i = 0; i < pom->n_managed; i++)
        artifact_clear(&pom->managed[i]);
    free(pom->managed);
    for (size_t i = 0; i < pom->n_plugins; i++)
        artifact_clear(&pom->plugins[i]);
    free(pom->plugins);
    free(pom->compiler_release);
    free(pom->toolchain_jdk);
    free(pom);
}

/* Grows an array of `size`-byte items to hold n+1; false past `cap`. */
static bool grow(void **arr, size_t *alloc, size_t n, size_t size, size_t cap)
{
    if (n >= cap)
        return false;
    if (n + 1 > *alloc) {
        size_t want = *alloc ? *alloc * 2 : 8;
        *arr = kiln_xrealloc(*arr, want * size);
        memset((char *)*arr + *alloc * size, 0, (want - *alloc) * size);
        *alloc = want;
    }
    return true;
}

/* Starts a new record in one of the artifact lists. */
static void new_record(pom_ctx_t *c, kiln_pom_artifact_t **list, size_t *n, size_t *alloc,
                       size_t cap, const char *what)
{
    if (!grow((void **)list, alloc, *n, sizeof(**list), cap)) {
        stop(c, "more than %zu %s", cap, what);
        return;
    }
    if (*list == c->pom->plugins) {
        c->plugin_release = kiln_xrealloc(c->plugin_release, *alloc * sizeof(char *));
        c->plugin_jdk = kiln_xrealloc(c->plugin_jdk, *alloc * sizeof(char *));
        c->plugin_release[*n] = c->plugin_jdk[*n] = NULL;
        c->n_slots = *n + 1;
    }
    (*n)++;
}

/* Elements whose own text is only the layout between their children: not kept, so a long list's
 * indentation never counts against the text cap. */
static const char *const containers[] = {
    "project",
    "project/parent",
    "project/modules",
    "project/properties",
    "project/dependencies",
    "project/dependencies/dependency",
    "project/dependencyManagement",
    "project/dependencyManagement/dependencies",
    "project/dependencyManagement/dependencies/dependency",
    "project/build",
    "project/build/plugins",
    "project/build/plugins/plugin",
    "project/build/plugins/plugin/configuration",
    "project/build/plugins/plugin/configuration/toolchains",
    "project/build/plugins/plugin/configuration/toolchains/jdk",
};

static size_t on_open(kiln_xml_reader_t *r, void *ud, const char *path, const char *local,
                      unsigned depth)
{
    pom_ctx_t *c = ud;
    kiln_pom_t *p = c->pom;

    c->r = r;
    if (depth == 1 && strcmp(local, "project") != 0) {
        stop(c, "the root element is <%.64s>, not <project>", local);
        return 0;
    }
    if (path == NULL)
        return 0;
    if (strcmp(path, "project/dependencies/dependency") == 0)
        new_record(c, &p->deps, &p->n_deps, &c->alloc_deps, KILN_POM_MAX_DEPS, "dependencies");
    else if (strcmp(path, "project/dependencyManagement/dependencies/dependency") == 0)
        new_record(c, &p->managed, &p->n_managed, &c->alloc_managed, KILN_POM_MAX_DEPS,
                   "managed dependencies");
    else if (strcmp(path, "project/build/plugins/plugin") == 0)
        new_record(c, &p->plugins, &p->n_plugins, &c->alloc_plugins, KILN_POM_MAX_PLUGINS,
                   "plugins");
    for (size_t i = 0; i < sizeof(containers) / sizeof(containers[0]); i++)
        if (strcmp(path, containers[i]) == 0)
            return 0;
    return KILN_POM_MAX_TEXT;
}

/* The text s (n bytes) without surrounding whitespace (malloc'ed). */
static char *trimmed(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return kiln_xstrndup(s, n);
}

/* Sets *field once (the first occurrence wins). */
static void set_once(char **field, char *value)
{
    if (*field == NULL)
        *field = value;
    else
        free(value);
}

/* Fills a field of the last record of an artifact list from "<prefix>/<field>". */
static bool record_field(const char *path, const char *prefix, kiln_pom_artifact_t *list, size_t n,
                         char **text)
{
    size_t pl = strlen(prefix);
    kiln_pom_artifact_t *a;
    const char *f;

    if (n == 0 || strncmp(path, prefix, pl) != 0 || path[pl] != '/')
        return false;
    a = &list[n - 1];
    f = path + pl + 1;
    if (strcmp(f, "groupId") == 0)
        set_once(&a->group_id, steal_pointer(text));
    else if (strcmp(f, "artifactId") == 0)
        set_once(&a->artifact_id, steal_pointer(text));
    else if (strcmp(f, "version") == 0)
        set_once(&a->version, steal_pointer(text));
    else if (strcmp(f, "scope") == 0)
        set_once(&a->scope, steal_pointer(text));
    else
        return false;
    return true;
}

/* Where the text of the element at path that ends goes. */
static void take(pom_ctx_t *c, const char *path, char *text)
{
    static const struct {
        const char *path;
        size_t off;
    } fields[] = {
        {"project/groupId", offsetof(kiln_pom_t, group_id)},
        {"project/artifactId", offsetof(kiln_pom_t, artifact_id)},
        {"project/version", offsetof(kiln_pom_t, version)},
        {"project/packaging", offsetof(kiln_pom_t, packaging)},
        {"project/build/finalName", offsetof(kiln_pom_t, final_name)},
        {"project/parent/groupId", offsetof(kiln_pom_t, parent.group_id)},
        {"project/parent/artifactId", offsetof(kiln_pom_t, parent.artifact_id)},
        {"project/parent/version", offsetof(kiln_pom_t, parent.version)},
    };
    kiln_pom_t *p = c->pom;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(path, fields[i].path) == 0) {
            set_once((char **)((char *)p + fields[i].off), text);
            return;
        }
    if (strcmp(path, "project/modules/module") == 0) {
        if (!grow((void **)&p->modules, &c->alloc_modules, p->n_modules, sizeof(char *),
                  KILN_POM_MAX_MODULES)) {
            free(text);
            stop(c, "more than %d modules", KILN_POM_MAX_MODULES);
            return;
        }
        p->modules[p->n_modules++] = text;
        return;
    }
    if (strncmp(path, "project/properties/", 19) == 0 && strchr(path + 19, '/') == NULL) {
        if (!grow((void **)&p->props, &c->alloc_props, p->n_props, sizeof(*p->props),
                  KILN_POM_MAX_PROPS)) {
            free(text);
            stop(c, "more than %d properties", KILN_POM_MAX_PROPS);
            return;
        }
        p->props[p->n_props].name = kiln_xstrdup(path + 19);
        p->props[p->n_props++].value = text;
        return;
    }
    if (record_field(path, "project/dependencies/dependency", p->deps, p->n_deps, &text) ||
        record_field(path, "project/dependencyManagement/dependencies/dependency", p->managed,
                     p->n_managed, &text) ||
        record_field(path, "project/build/plugins/plugin", p->plugins, p->n_plugins, &text))
        return;
    if (p->n_plugins > 0) {
        size_t k = p->n_plugins - 1;
        if (strcmp(path, "project/build/plugins/plugin/configuration/release") == 0) {
            free(c->plugin_release[k]);
            c->plugin_release[k] = steal_pointer(&text);
        } else if (strcmp(path, "project/build/plugins/plugin/configuration/source") == 0) {
            set_once(&c->plugin_release[k], steal_pointer(&text));
        } else if (strcmp(path, "project/build/plugins/plugin/configuration/toolchains/jdk/"
                                "version") == 0) {
            set_once(&c->plugin_jdk[k], steal_pointer(&text));
        }
    }
    free(text);
}

static void on_close(kiln_xml_reader_t *r, void *ud, const char *path, unsigned depth,
                     const char *text, size_t len)
{
    pom_ctx_t *c = ud;
    (void)depth;
    c->r = r;
    if (path)
        take(c, path, trimmed(text, len));
}

static void on_refuse(kiln_xml_reader_t *r, void *ud, kiln_xml_refusal_t why, const char *path,
                      size_t cap)
{
    pom_ctx_t *c = ud;
    c->r = r;
    switch (why) {
    case KILN_XML_TOO_MANY:
        stop(c, "more than %d elements", KILN_POM_MAX_ELEMENTS);
        break;
    case KILN_XML_TOO_DEEP:
        stop(c, "elements nested deeper than %d", KILN_POM_MAX_DEPTH);
        break;
    case KILN_XML_TEXT_OVER:
        stop(c, "the text of <%s> is over %zu bytes", path, cap);
        break;
    case KILN_XML_DOCTYPE:
        /* a pom never needs a DTD */
        stop(c, "a DOCTYPE is not allowed in a pom");
        break;
    case KILN_XML_ENTITY:
        stop(c, "an entity declaration is not allowed in a pom");
        break;
    }
}

/* the document's own encoding: a pom may declare ISO-8859-1 */
static const kiln_xml_reader_ops_t pom_ops = {
    .open = on_open,
    .close = on_close,
    .refuse = on_refuse,
};

const kiln_pom_artifact_t *kiln_pom_find(const kiln_pom_artifact_t *list, size_t n,
                                         const char *group_id, const char *artifact_id)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].artifact_id && strcmp(list[i].artifact_id, artifact_id) == 0 &&
            (group_id == NULL || (list[i].group_id && strcmp(list[i].group_id, group_id) == 0)))
            return &list[i];
    return NULL;
}

int kiln_pom_parse(const char *xml, size_t len, const char *what, kiln_pom_t **out,
                   kiln_error_t *err)
{
    pom_ctx_t c = {0};
    int ret = -1;

    c.pom = kiln_xzalloc(sizeof(*c.pom));
    if (kiln_xml_read(xml, len, &pom_ops, &c, what, err) < 0)
        goto out;
    for (size_t i = 0; i < c.pom->n_plugins; i++) {
        const char *a = c.pom->plugins[i].artifact_id;
        if (a && strcmp(a, "maven-compiler-plugin") == 0 && c.plugin_release[i])
            set_once(&c.pom->compiler_release, kiln_xstrdup(c.plugin_release[i]));
        if (a && strcmp(a, "maven-toolchains-plugin") == 0 && c.plugin_jdk[i])
            set_once(&c.pom->toolchain_jdk, kiln_xstrdup(c.plugin_jdk[i]));
    }
    *out = steal_pointer(&c.pom);
    ret = 0;
out:
    for (size_t i = 0; i < c.n_slots; i++) {
        free(c.plugin_release[i]);
        free(c.plugin_jdk[i]);
    }
    free(c.plugin_release);
    free(c.plugin_jdk);
    kiln_pom_free(c.pom);
    return ret;
}

const char *kiln_pom_property(const kiln_pom_t *pom, const char *name)
{
    for (size_t i = 0; i < pom->n_props; i++)
        if (strcmp(pom->props[i].name, name) == 0)
            return pom->props[i].value;
    return NULL;
}

/* The value of one ${name} reference, or NULL. */
static const char *lookup(const kiln_pom_t *pom, const char *name)
{
    const char *v = kiln_pom_property(pom, name);
    if (v)
        return v;
    if (strcmp(name, "project.version") == 0 || strcmp(name, "pom.version") == 0)
        return pom->version ? pom->version : pom->parent.version;
    if (strcmp(name, "project.artifactId") == 0)
        return pom->artifact_id;
    if (strcmp(name, "project.groupId") == 0)
        return pom->group_id ? pom->group_id : pom->parent.group_id;
    if (strcmp(name, "project.parent.version") == 0)
        return pom->parent.version;
    return NULL;
}

/* One expansion pass: 1 when something was replaced, 0 when not, -1 past the cap. */
static int expand_once(const kiln_pom_t *pom, const char *in, kiln_buf_t *b)
{
    int changed = 0;
    const char *p = in;

    while (*p) {
        const char *open = strstr(p, "${"), *close;
        if (open == NULL || (close = strchr(open + 2, '}')) == NULL)
            return kiln_buf_append(b, p, strlen(p), NULL) < 0 ? -1 : changed;
        if (kiln_buf_append(b, p, (size_t)(open - p), NULL) < 0)
            return -1;
        {
            _cleanup_free_ char *name = kiln_xstrndup(open + 2, (size_t)(close - open - 2));
            const char *v = lookup(pom, name);
            if (v && kiln_buf_append(b, v, strlen(v), NULL) < 0)
                return -1;
            if (v == NULL && kiln_buf_append(b, open, (size_t)(close - open + 1), NULL) < 0)
                return -1;
            changed |= v != NULL;
        }
        p = close + 1;
    }
    return changed;
}

char *kiln_pom_expand(const kiln_pom_t *pom, const char *value)
{
    char *cur;

    if (value == NULL)
        return NULL;
    cur = kiln_xstrdup(value);
    for (int i = 0; i < EXPAND_DEPTH && strstr(cur, "${"); i++) {
        kiln_buf_t b;
        kiln_buf_init(&b, EXPAND_CAP);
        if (expand_once(pom, cur, &b) <= 0) {
            kiln_buf_free(&b);
            break;
        }
        free(cur);
        cur = kiln_buf_steal(&b, NULL);
    }
    return cur;
}
