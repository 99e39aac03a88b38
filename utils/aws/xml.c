/* kiln — fields of AWS XML answers, read with utils/xmlread (see xml.h).
 *
 * For each wanted field (and each field of the open record) the reader is asked to keep the
 * text of its first element; the text is copied out when that element ends. Values are wiped
 * when freed: answers may hold secrets (STS credentials). */
#include "utils/aws/xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

enum { FIELD_WAITING, FIELD_READING, FIELD_DONE };

typedef struct field_state {
    int state;
    unsigned depth; /* depth of the element being read */
    char *value;    /* its text once it ended */
} field_state_t;

typedef struct aws_ctx {
    const kiln_aws_xml_field_t *fields;
    field_state_t *st;
    size_t n;
    const kiln_aws_xml_records_t *rec;
    field_state_t *rst; /* the record's fields */
    unsigned rec_depth; /* depth of the open record, 0 when none is open */
    char *root;
} aws_ctx_t;

/* Starts reading the waiting fields at path; returns the smallest of their caps (0: none). */
static size_t fields_open(const kiln_aws_xml_field_t *f, field_state_t *st, size_t n,
                          const char *path, unsigned depth)
{
    size_t keep = 0;
    for (size_t i = 0; i < n; i++)
        if (st[i].state == FIELD_WAITING && strcmp(f[i].path, path) == 0) {
            size_t cap = f[i].max ? f[i].max : KILN_AWS_XML_MAX_TEXT;
            st[i].state = FIELD_READING;
            st[i].depth = depth;
            if (keep == 0 || cap < keep)
                keep = cap;
        }
    return keep;
}

/* The fields read at depth take text. */
static void fields_close(field_state_t *st, size_t n, unsigned depth, const char *text, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (st[i].state == FIELD_READING && st[i].depth == depth) {
            st[i].state = FIELD_DONE;
            st[i].value = kiln_xstrndup(text, len);
        }
}

/* Wipes and frees the values of n field states and makes them wait again. */
static void states_clear(field_state_t *st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kiln_xml_free_wiped(st[i].value);
        st[i] = (field_state_t){0};
    }
}

static size_t on_open(kiln_xml_reader_t *r, void *ud, const char *path, const char *local,
                      unsigned depth)
{
    aws_ctx_t *c = ud;
    size_t keep, in_rec = 0;
    (void)r;
    if (depth == 1 && c->root == NULL)
        c->root = kiln_xstrdup(local);
    if (path == NULL)
        return 0;
    keep = fields_open(c->fields, c->st, c->n, path, depth);
    if (c->rec && c->rec_depth == 0 && strcmp(path, c->rec->path) == 0) {
        c->rec_depth = depth;
        states_clear(c->rst, c->rec->n);
    } else if (c->rec_depth) {
        in_rec = fields_open(c->rec->fields, c->rst, c->rec->n, path, depth);
    }
    return keep == 0 || (in_rec && in_rec < keep) ? in_rec : keep;
}

/* A record ends: its fields go to rec->fn, then are wiped for the next one. */
static void record_end(kiln_xml_reader_t *r, aws_ctx_t *c)
{
    const kiln_aws_xml_records_t *rec = c->rec;
    kiln_error_t e = {0};
    for (size_t i = 0; i < rec->n; i++)
        rec->fields[i].value = c->rst[i].value;
    if (rec->fn(rec->ud, rec->fields, &e) < 0)
        kiln_xml_reader_fail(r, &e);
    for (size_t i = 0; i < rec->n; i++)
        rec->fields[i].value = NULL;
    states_clear(c->rst, rec->n);
    c->rec_depth = 0;
}

static void on_close(kiln_xml_reader_t *r, void *ud, const char *path, unsigned depth,
                     const char *text, size_t len)
{
    aws_ctx_t *c = ud;
    (void)path;
    fields_close(c->st, c->n, depth, text, len);
    if (c->rec_depth)
        fields_close(c->rst, c->rec->n, depth, text, len);
    if (c->rec_depth == depth)
        record_end(r, c);
}

static void on_refuse(kiln_xml_reader_t *r, void *ud, kiln_xml_refusal_t why, const char *path,
                      size_t cap)
{
    (void)ud;
    switch (why) {
    case KILN_XML_TOO_MANY:
        kiln_xml_reader_stop(r, E2BIG, "answer has more than %d elements",
                             KILN_AWS_XML_MAX_ELEMENTS);
        break;
    case KILN_XML_TOO_DEEP:
        kiln_xml_reader_stop(r, E2BIG, "answer nests elements deeper than %d",
                             KILN_AWS_XML_MAX_DEPTH);
        break;
    case KILN_XML_TEXT_OVER:
        kiln_xml_reader_stop(r, EFBIG, "answer field %s is over %zu bytes", path, cap);
        break;
    case KILN_XML_DOCTYPE:
        /* AWS never sends a DTD */
        kiln_xml_reader_stop(r, EINVAL, "answer has a DOCTYPE (refused)");
        break;
    case KILN_XML_ENTITY:
        kiln_xml_reader_stop(r, EINVAL, "answer declares an entity (refused)");
        break;
    }
}

/* UTF-8 forced: AWS answers are UTF-8, and no other decoder is exposed to the input */
static const kiln_xml_reader_ops_t aws_ops = {
    .encoding = "UTF-8",
    .noun = "answer",
    .open = on_open,
    .close = on_close,
    .refuse = on_refuse,
};

void kiln_aws_xml_fields_clear(kiln_aws_xml_field_t *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kiln_xml_free_wiped(fields[i].value);
        fields[i].value = NULL;
    }
}

int kiln_aws_xml_parse_records(const char *xml, size_t len, kiln_aws_xml_field_t *fields, size_t n,
                               const kiln_aws_xml_records_t *rec, char **root, const char *what,
                               kiln_error_t *err)
{
    aws_ctx_t c = {.fields = fields, .n = n, .rec = rec};
    int ret = -1;

    if (xml == NULL)
        len = 0;
    if (len > KILN_AWS_XML_MAX_INPUT)
        return kiln_error_set(err, EFBIG, "%s: answer over %zu bytes", what,
                              (size_t)KILN_AWS_XML_MAX_INPUT);
    c.st = kiln_xzalloc((n ? n : 1) * sizeof(*c.st));
    c.rst = kiln_xzalloc((rec && rec->n ? rec->n : 1) * sizeof(*c.rst));
    if (kiln_xml_read(xml, len, &aws_ops, &c, what, err) < 0)
        goto out;
    /* outputs only on success */
    for (size_t i = 0; i < n; i++)
        fields[i].value = steal_pointer(&c.st[i].value);
    if (root)
        *root = steal_pointer(&c.root);
    ret = 0;
out:
    states_clear(c.st, n);
    states_clear(c.rst, rec ? rec->n : 0);
    free(c.st);
    free(c.rst);
    free(c.root);
    return ret;
}

int kiln_aws_xml_parse(const char *xml, size_t len, kiln_aws_xml_field_t *fields, size_t n,
                       char **root, const char *what, kiln_error_t *err)
{
    return kiln_aws_xml_parse_records(xml, len, fields, n, NULL, root, what, err);
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
