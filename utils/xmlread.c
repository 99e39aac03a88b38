/* kiln — one pass of expat over a hostile XML document (see xmlread.h).
 *
 * The kept texts of the open elements sit end to end in one buffer, innermost last: an
 * element's text starts where the buffer ended when it opened, a child's text is cut off again
 * when the child closes, so the text before and after a child joins up and a child's text never
 * lands in its parent. */
#include "utils/xmlread.h"

#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"

struct kiln_xml_reader {
    kiln_xml_path_t at; /* where the parser is; first: kiln_xml_refuse_dtd's handlers need it */
    XML_Parser parser;
    const kiln_xml_reader_ops_t *ops;
    void *ud;
    char *text; /* the kept texts of the open elements, NUL-terminated once anything was kept */
    size_t len, alloc;
    size_t start[KILN_XML_PATH_MAX_DEPTH + 1]; /* where each open element's text starts */
    size_t cap[KILN_XML_PATH_MAX_DEPTH + 1];   /* its cap; 0: not kept */
    int failed;
    kiln_error_t err;
};

void kiln_xml_free_wiped(void *p)
{
    if (p) {
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
    }
}

/* realloc() that never leaves the old block behind unwiped. */
static void *wipe_realloc(void *p, size_t n)
{
    size_t old;
    void *q;
    if (p == NULL)
        return malloc(n);
    old = malloc_usable_size(p);
    q = malloc(n ? n : 1);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    kiln_xml_free_wiped(p);
    return q;
}

static const XML_Memory_Handling_Suite wiping_memory = {malloc, wipe_realloc, kiln_xml_free_wiped};

void kiln_xml_reader_stop(kiln_xml_reader_t *r, int code, const char *fmt, ...)
{
    va_list ap;
    if (!r->failed) {
        r->failed = 1;
        va_start(ap, fmt);
        vsnprintf(r->err.msg, sizeof(r->err.msg), fmt, ap);
        va_end(ap);
        r->err.code = code;
    }
    XML_StopParser(r->parser, XML_FALSE);
}

void kiln_xml_reader_fail(kiln_xml_reader_t *r, const kiln_error_t *why)
{
    kiln_xml_reader_stop(r, why->code, "%s", why->msg);
}

static const char *path_or_null(const kiln_xml_reader_t *r)
{
    return kiln_xml_path_valid(&r->at) ? r->at.path : NULL;
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
    kiln_xml_reader_t *r = data;
    int rc;
    (void)attrs;
    if (r->failed)
        return;
    if ((rc = kiln_xml_path_push(&r->at, name)) < 0) {
        r->ops->refuse(r, r->ud,
                       rc == KILN_XML_PATH_TOO_MANY ? KILN_XML_TOO_MANY : KILN_XML_TOO_DEEP, NULL,
                       0);
        return;
    }
    r->start[r->at.depth] = r->len;
    r->cap[r->at.depth] =
        r->ops->open(r, r->ud, path_or_null(r), kiln_xml_local_name(name), r->at.depth);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
    kiln_xml_reader_t *r = data;
    unsigned d = r->at.depth;
    (void)name;
    if (r->failed || d == 0)
        return;
    if (r->ops->close)
        r->ops->close(r, r->ud, path_or_null(r), d, r->text ? r->text + r->start[d] : "",
                      r->len - r->start[d]);
    r->len = r->start[d];
    if (r->text)
        r->text[r->len] = '\0';
    kiln_xml_path_pop(&r->at);
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
    kiln_xml_reader_t *r = data;
    unsigned d = r->at.depth;
    size_t n = (size_t)len;
    if (r->failed || d == 0 || r->cap[d] == 0 || len <= 0)
        return;
    if (n > r->cap[d] - (r->len - r->start[d])) {
        r->ops->refuse(r, r->ud, KILN_XML_TEXT_OVER, path_or_null(r), r->cap[d]);
        return;
    }
    if (r->len + n + 1 > r->alloc) {
        size_t want = r->alloc ? r->alloc : 256;
        char *grown;
        while (want < r->len + n + 1)
            want *= 2;
        grown = kiln_xmalloc(want);
        if (r->len)
            memcpy(grown, r->text, r->len);
        kiln_xml_free_wiped(r->text);
        r->text = grown;
        r->alloc = want;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = '\0';
}

/* kiln_xml_refuse_dtd's handler: no reader wants a DTD, refusing it leaves no entity to
 * expand (billion laughs) and nothing external to resolve. */
static void refuse_dtd(void *data, bool doctype)
{
    kiln_xml_reader_t *r = data;
    r->ops->refuse(r, r->ud, doctype ? KILN_XML_DOCTYPE : KILN_XML_ENTITY, NULL, 0);
}

int kiln_xml_read(const char *xml, size_t len, const kiln_xml_reader_ops_t *ops, void *ud,
                  const char *what, kiln_error_t *err)
{
    kiln_xml_reader_t *r;
    int ret = 0;

    if (xml == NULL)
        len = 0;
    if (len > INT_MAX)
        return kiln_error_set(err, EFBIG, "%s: too big", what);
    r = kiln_xzalloc(sizeof(*r));
    r->ops = ops;
    r->ud = ud;
    r->parser =
        XML_ParserCreate_MM(ops->encoding, &wiping_memory, (const XML_Char[]){KILN_XML_NS_SEP, 0});
    if (r->parser == NULL) {
        free(r);
        return kiln_error_set(err, ENOMEM, "%s: XML parser", what);
    }
    XML_SetUserData(r->parser, r);
    XML_SetElementHandler(r->parser, on_start, on_end);
    XML_SetCharacterDataHandler(r->parser, on_text);
    kiln_xml_refuse_dtd(r->parser, &r->at, refuse_dtd);

    if (XML_Parse(r->parser, xml ? xml : "", (int)len, XML_TRUE) != XML_STATUS_OK) {
        if (r->failed) {
            kiln_error_set(err, 0, "%s: %s", what, r->err.msg);
            if (err)
                err->code = r->err.code;
        } else {
            kiln_error_set(err, 0, "%s%s%s is not valid XML (line %lu, column %lu: %s)", what,
                           ops->noun ? ": " : "", ops->noun ? ops->noun : "",
                           (unsigned long)XML_GetCurrentLineNumber(r->parser),
                           (unsigned long)XML_GetCurrentColumnNumber(r->parser),
                           XML_ErrorString(XML_GetErrorCode(r->parser)));
            if (err)
                err->code = EPROTO;
        }
        ret = -1;
    }
    XML_ParserFree(r->parser);
    kiln_xml_free_wiped(r->text);
    explicit_bzero(r, sizeof(*r));
    free(r);
    return ret;
}
