/* kiln — fields of AWS XML answers, read with expat (see xml.h).
 *
 * The parser keeps the path of the current element ("A/B/C", local names) and, for each wanted
 * field, whether its first element is being read; character data directly inside that element
 * is collected under a cap. Any handler that finds a cap exceeded or a DOCTYPE stops the parser
 * with the reason in the context.
 *
 * Answers may hold secrets (STS credentials): every buffer the parse used, expat's included, is
 * wiped before it is freed. */
#include "utils/aws/xml.h"

#include <errno.h>
#include <expat.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/xmlpath.h"

enum { FIELD_WAITING, FIELD_READING, FIELD_DONE };

typedef struct field_state {
    int state;
    unsigned depth; /* depth of the element being read */
    char *text;     /* NUL-terminated once anything was read */
    size_t len, alloc;
} field_state_t;

typedef struct xml_ctx {
    /* where the parser is (a path too long never matches a field); first:
     * kiln_xml_refuse_dtd's handlers need it */
    kiln_xml_path_t at;
    XML_Parser parser;
    const kiln_aws_xml_field_t *fields;
    field_state_t *st;
    size_t n;
    char *root;
    int failed;
    kiln_error_t err;
} xml_ctx_t;

/* free() that wipes the whole block first. */
static void wipe_free(void *p)
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
    wipe_free(p);
    return q;
}

static const XML_Memory_Handling_Suite wiping_memory = {malloc, wipe_realloc, wipe_free};

/* Appends n bytes to f's text, within KILN_AWS_XML_MAX_TEXT. Returns -1 past the cap. */
static int text_append(field_state_t *f, const char *s, size_t n)
{
    if (n > KILN_AWS_XML_MAX_TEXT - f->len)
        return -1;
    if (f->len + n + 1 > f->alloc) {
        size_t want = f->alloc ? f->alloc : 64;
        while (want < f->len + n + 1)
            want *= 2;
        char *grown = kiln_xmalloc(want);
        if (f->len)
            memcpy(grown, f->text, f->len);
        wipe_free(f->text);
        f->text = grown;
        f->alloc = want;
    }
    memcpy(f->text + f->len, s, n);
    f->len += n;
    f->text[f->len] = '\0';
    return 0;
}

/* Stops the parser with a reason (the first one wins). */
static void stop(xml_ctx_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void stop(xml_ctx_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    if (!c->failed) {
        c->failed = 1;
        va_start(ap, fmt);
        vsnprintf(c->err.msg, sizeof(c->err.msg), fmt, ap);
        va_end(ap);
        c->err.code = code;
    }
    XML_StopParser(c->parser, XML_FALSE);
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
    xml_ctx_t *c = data;
    int r;

    (void)attrs;
    if (c->failed)
        return;
    if (c->at.depth == 0 && c->root == NULL)
        c->root = kiln_xstrdup(kiln_xml_local_name(name));
    if ((r = kiln_xml_path_push(&c->at, name)) < 0) {
        if (r == KILN_XML_PATH_TOO_MANY)
            stop(c, E2BIG, "answer has more than %d elements", KILN_AWS_XML_MAX_ELEMENTS);
        else
            stop(c, E2BIG, "answer nests elements deeper than %d", KILN_AWS_XML_MAX_DEPTH);
        return;
    }
    if (!kiln_xml_path_valid(&c->at))
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->st[i].state == FIELD_WAITING && strcmp(c->fields[i].path, c->at.path) == 0) {
            c->st[i].state = FIELD_READING;
            c->st[i].depth = c->at.depth;
        }
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
    xml_ctx_t *c = data;
    (void)name;
    if (c->failed || c->at.depth == 0)
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->st[i].state == FIELD_READING && c->st[i].depth == c->at.depth)
            c->st[i].state = FIELD_DONE;
    kiln_xml_path_pop(&c->at);
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
    xml_ctx_t *c = data;
    if (c->failed)
        return;
    for (size_t i = 0; i < c->n; i++)
        if (c->st[i].state == FIELD_READING && c->st[i].depth == c->at.depth &&
            text_append(&c->st[i], s, (size_t)len) < 0) {
            stop(c, EFBIG, "answer field %s is over %u bytes", c->fields[i].path,
                 KILN_AWS_XML_MAX_TEXT);
            return;
        }
}

/* AWS never sends a DTD; refusing it outright leaves no entity to expand (billion laughs) and
 * nothing external to resolve. */
static void refuse(void *data, bool doctype)
{
    if (doctype)
        stop(data, EINVAL, "answer has a DOCTYPE (refused)");
    else
        stop(data, EINVAL, "answer declares an entity (refused)");
}

void kiln_aws_xml_fields_clear(kiln_aws_xml_field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wipe_free(fields[i].value);
        fields[i].value = NULL;
    }
}

int kiln_aws_xml_parse(const char *xml, size_t len, kiln_aws_xml_field_t *fields, size_t n,
                       char **root, const char *what, kiln_error_t *err)
{
    xml_ctx_t c = {.fields = fields, .n = n};
    int ret = -1;

    if (xml == NULL)
        len = 0;
    if (len > KILN_AWS_XML_MAX_INPUT)
        return kiln_error_set(err, EFBIG, "%s: answer over %zu bytes", what,
                              (size_t)KILN_AWS_XML_MAX_INPUT);
    /* UTF-8 forced: AWS answers are UTF-8, and no other decoder is exposed to the input */
    c.parser =
        XML_ParserCreate_MM("UTF-8", &wiping_memory, (const XML_Char[]){KILN_XML_NS_SEP, '\0'});
    if (c.parser == NULL)
        return kiln_error_set(err, ENOMEM, "%s: XML parser", what);
    c.st = kiln_xzalloc((n ? n : 1) * sizeof(*c.st));
    XML_SetUserData(c.parser, &c);
    XML_SetElementHandler(c.parser, on_start, on_end);
    XML_SetCharacterDataHandler(c.parser, on_text);
    kiln_xml_refuse_dtd(c.parser, &c.at, refuse);

    if (XML_Parse(c.parser, xml ? xml : "", (int)len, XML_TRUE) != XML_STATUS_OK) {
        if (c.failed) {
            kiln_error_set(err, 0, "%s: %s", what, c.err.msg);
            if (err)
                err->code = c.err.code;
        } else {
            kiln_error_set(err, 0, "%s: answer is not valid XML (line %lu, column %lu: %s)", what,
                           (unsigned long)XML_GetCurrentLineNumber(c.parser),
                           (unsigned long)XML_GetCurrentColumnNumber(c.parser),
                           XML_ErrorString(XML_GetErrorCode(c.parser)));
            if (err)
                err->code = EPROTO;
        }
        goto out;
    }
    /* outputs only on success */
    for (size_t i = 0; i < n; i++)
        fields[i].value = c.st[i].state == FIELD_WAITING ? NULL
                          : c.st[i].text                 ? steal_pointer(&c.st[i].text)
                                                         : kiln_xstrdup("");
    if (root)
        *root = steal_pointer(&c.root);
    ret = 0;
out:
    for (size_t i = 0; i < n; i++)
        wipe_free(c.st[i].text);
    free(c.st);
    free(c.root);
    XML_ParserFree(c.parser);
    return ret;
}

char *kiln_aws_xml_text(const char *xml, size_t len, const char *path, const char *what,
                        kiln_error_t *err)
{
    kiln_aws_xml_field_t f = {.path = path};
    if (kiln_aws_xml_parse(xml, len, &f, 1, NULL, what, err) < 0)
        return NULL;
    if (f.value == NULL) {
        kiln_error_set(err, 0, "%s: answer has no %s", what, path);
        if (err)
            err->code = EPROTO;
    }
    return f.value;
}
