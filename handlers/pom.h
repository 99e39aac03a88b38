/* kiln — the parts of a Maven pom.xml the JVM provider plans from, read with
 * expat: coordinates, parent, final name, modules, properties, dependencies
 * (also those of dependencyManagement: BOM imports) and build plugins with the
 * JDK version their configuration names (maven-compiler-plugin release/source,
 * maven-toolchains-plugin toolchains/jdk/version).
 *
 * A pom is hostile input: a DOCTYPE (and so any entity) is refused, nesting is
 * capped at KILN_POM_MAX_DEPTH, elements at KILN_POM_MAX_ELEMENTS, each text at
 * KILN_POM_MAX_TEXT and each list at its own cap; nothing is returned on failure. */
#ifndef KILN_HANDLERS_POM_H
#define KILN_HANDLERS_POM_H

#include <stddef.h>

#include "utils/error.h"
#include "utils/xmlpath.h"

#define KILN_POM_MAX_DEPTH KILN_XML_PATH_MAX_DEPTH
#define KILN_POM_MAX_ELEMENTS KILN_XML_PATH_MAX_ELEMENTS
#define KILN_POM_MAX_TEXT (64 * 1024)
#define KILN_POM_MAX_PROPS 512
#define KILN_POM_MAX_DEPS 1024
#define KILN_POM_MAX_PLUGINS 256
#define KILN_POM_MAX_MODULES 128

typedef struct kiln_pom_artifact {
    char *group_id, *artifact_id, *version, *scope; /* any may be NULL */
} kiln_pom_artifact_t;

typedef struct kiln_pom_prop {
    char *name, *value;
} kiln_pom_prop_t;

typedef struct kiln_pom {
    char *group_id, *artifact_id, *version, *packaging, *final_name;
    kiln_pom_artifact_t parent;
    char **modules; /* project/modules/module, in order */
    size_t n_modules;
    kiln_pom_prop_t *props; /* project/properties/<name> */
    size_t n_props;
    kiln_pom_artifact_t *deps; /* project/dependencies/dependency */
    size_t n_deps;
    kiln_pom_artifact_t *managed; /* project/dependencyManagement/dependencies/dependency */
    size_t n_managed;
    kiln_pom_artifact_t *plugins; /* project/build/plugins/plugin */
    size_t n_plugins;
    char *compiler_release; /* maven-compiler-plugin configuration release (else source) */
    char *toolchain_jdk;    /* maven-toolchains-plugin configuration toolchains/jdk/version */
} kiln_pom_t;

/* Parses `len` bytes of pom.xml; `what` names it in messages ("pom.xml"). */
int kiln_pom_parse(const char *xml, size_t len, const char *what, kiln_pom_t **out,
                   kiln_error_t *err);
void kiln_pom_free(kiln_pom_t *pom);
static inline void kiln_pom_freep(kiln_pom_t **p)
{
    kiln_pom_free(*p);
}
#define _cleanup_pom_ __attribute__((cleanup(kiln_pom_freep)))

/* The value of property `name` (project/properties), or NULL. */
const char *kiln_pom_property(const kiln_pom_t *pom, const char *name);

/* `value` with ${name} references replaced from the properties and
 * project.version / project.artifactId / project.groupId (and their parent
 * fallbacks); malloc'ed. Expansion is bounded (depth 8, 4 KiB): what cannot be
 * resolved stays as written. NULL for NULL. */
char *kiln_pom_expand(const kiln_pom_t *pom, const char *value);

/* The first artifact of `list` whose artifactId is `artifact_id` (and groupId
 * `group_id` when not NULL), or NULL. */
const kiln_pom_artifact_t *kiln_pom_find(const kiln_pom_artifact_t *list, size_t n,
                                         const char *group_id, const char *artifact_id);

#endif
