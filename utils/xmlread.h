/* kiln — one pass of expat over a hostile XML document, for readers that pick elements by
 * where they sit (utils/aws/xml: AWS answers; handlers/pom: Maven poms).
 *
 * The reader keeps the element path (utils/xmlpath: local names, depth and element count
 * capped), refuses any DTD before it is read, and hands the caller each element as it opens
 * and closes, with the character data directly inside it (entities decoded; the text of child
 * elements not included) when the caller asked for it at open, under the cap the caller gave.
 * The first refusal wins and stops the parser: a document over a cap is refused, never cut.
 *
 * Every buffer the parse used, expat's included, is wiped before it is freed: answers may hold
 * secrets (STS credentials). */
#ifndef KILN_UTILS_XMLREAD_H
#define KILN_UTILS_XMLREAD_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"
#include "utils/xmlpath.h"

typedef struct kiln_xml_reader kiln_xml_reader_t;

/* Why a document is refused (the caller words it, see kiln_xml_reader_ops.refuse). */
typedef enum kiln_xml_refusal {
    KILN_XML_TOO_MANY,  /* more than KILN_XML_PATH_MAX_ELEMENTS elements */
    KILN_XML_TOO_DEEP,  /* nested deeper than KILN_XML_PATH_MAX_DEPTH */
    KILN_XML_TEXT_OVER, /* a kept element's text over the cap open gave (path, cap) */
    KILN_XML_DOCTYPE,   /* a DOCTYPE */
    KILN_XML_ENTITY,    /* an entity declaration */
} kiln_xml_refusal_t;

typedef struct kiln_xml_reader_ops {
    /* the encoding forced on the input ("UTF-8"), NULL: the one the document declares */
    const char *encoding;
    /* the document's name in a syntax error after `what` ("answer": "S3 GET: answer is not
     * valid XML (...)"); NULL: "pom.xml is not valid XML (...)" */
    const char *noun;
    /* An element opens at depth (1: the root); path is NULL when too long to match anything,
     * local its local name. Returns the most bytes of its own text to keep (0: not kept).
     * Required. */
    size_t (*open)(kiln_xml_reader_t *r, void *ud, const char *path, const char *local,
                   unsigned depth);
    /* The element at path (NULL as above) closes; text is its own text (len bytes,
     * NUL-terminated; "" when open kept none). Optional. */
    void (*close)(kiln_xml_reader_t *r, void *ud, const char *path, unsigned depth,
                  const char *text, size_t len);
    /* Words a refusal with kiln_xml_reader_stop (path and cap only for KILN_XML_TEXT_OVER).
     * Required. */
    void (*refuse)(kiln_xml_reader_t *r, void *ud, kiln_xml_refusal_t why, const char *path,
                   size_t cap);
} kiln_xml_reader_ops_t;

/* Stops the parse with a reason (code: an errno value); the first reason wins. */
void kiln_xml_reader_stop(kiln_xml_reader_t *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Stops the parse with an error already made (a callback's own); the first reason wins. */
void kiln_xml_reader_fail(kiln_xml_reader_t *r, const kiln_error_t *why);

/* Reads xml (len bytes, need not be NUL-terminated; NULL is empty). Returns 0, or -1 with err
 * "<what>: <reason a callback stopped it with>" (its code kept) or "<what>[: <noun>] is not
 * valid XML (line L, column C: <expat's reason>)" (EPROTO). */
int kiln_xml_read(const char *xml, size_t len, const kiln_xml_reader_ops_t *ops, void *ud,
                  const char *what, kiln_error_t *err);

/* free() that wipes the whole block first (for values copied out of a document). */
void kiln_xml_free_wiped(void *p);

#endif
