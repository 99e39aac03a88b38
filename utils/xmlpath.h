/* kiln — the path of the element an expat parser is in, for readers that pick fields of an
 * XML document by where they sit ("project/build/finalName", "ErrorResponse/Error/Code").
 *
 * Names arrive from expat's namespace-aware parser as "uri|local" (KILN_XML_NS_SEP); the path
 * is built from local names, '/'-separated, namespaces ignored. A document is hostile: depth and
 * element count are capped (push refuses past them), and a path that would not fit the buffer
 * is marked overflowed until its element ends: such a path never matches anything. */
#ifndef KILN_UTILS_XMLPATH_H
#define KILN_UTILS_XMLPATH_H

#include <expat.h>
#include <stdbool.h>
#include <stddef.h>

/* The namespace separator to give XML_ParserCreateNS: '|' cannot be part of an XML name, so
 * the text after the last one is the local name whatever the URI holds. */
#define KILN_XML_NS_SEP '|'
#define KILN_XML_PATH_CAP 1024     /* bytes of a path, NUL included */
#define KILN_XML_PATH_MAX_DEPTH 32 /* nesting of elements */
#define KILN_XML_PATH_MAX_ELEMENTS 100000

typedef struct kiln_xml_path {
    char path[KILN_XML_PATH_CAP];            /* "" at the root; meaningless while overflowed */
    size_t len[KILN_XML_PATH_MAX_DEPTH + 1]; /* path length at each depth */
    unsigned depth;
    unsigned overflow_depth; /* depth whose element made the path too long, 0 if none */
    size_t elements;
    void (*refuse)(void *data, bool doctype); /* set by kiln_xml_refuse_dtd */
} kiln_xml_path_t;

enum {
    KILN_XML_PATH_TOO_MANY = -1, /* more than KILN_XML_PATH_MAX_ELEMENTS elements */
    KILN_XML_PATH_TOO_DEEP = -2, /* nested deeper than KILN_XML_PATH_MAX_DEPTH */
};

/* The local name of an expat element name ("uri|local" or "local"). */
const char *kiln_xml_local_name(const char *name);

/* Enters the element `name` (as expat gives it). Returns 0, or KILN_XML_PATH_TOO_MANY /
 * KILN_XML_PATH_TOO_DEEP (nothing changed): the caller stops the parser naming the cap. */
int kiln_xml_path_push(kiln_xml_path_t *p, const char *name);

/* Leaves the current element (nothing at depth 0). */
void kiln_xml_path_pop(kiln_xml_path_t *p);

/* Whether the current path is whole (no element on it made it overflow). */
static inline bool kiln_xml_path_valid(const kiln_xml_path_t *p)
{
    return p->overflow_depth == 0;
}

/* Makes `parser` refuse any DTD: a DOCTYPE or an entity declaration calls refuse(user data,
 * true for a DOCTYPE, false for an entity), which stops the parser; parameter entities are
 * never parsed. No entity is then left to expand (billion laughs) and nothing external to
 * resolve. The parser's user data must be a struct whose first member is `p`. */
void kiln_xml_refuse_dtd(XML_Parser parser, kiln_xml_path_t *p,
                         void (*refuse)(void *data, bool doctype));

#endif
