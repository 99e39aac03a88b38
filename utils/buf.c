/* kiln — a growable byte buffer with a hard cap (see buf.h). */
#include "utils/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"

void kiln_buf_init(kiln_buf_t *b, size_t cap)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

int kiln_buf_append(kiln_buf_t *b, const void *p, size_t n, kiln_error_t *err)
{
    if (b->cap != 0 && (n > b->cap || b->len > b->cap - n))
        return kiln_error_set(err, ENOBUFS, "data exceeds the limit of %zu bytes", b->cap);
    if (b->len + n + 1 > b->alloc) {
        size_t want = b->alloc ? b->alloc : 256;
        while (want < b->len + n + 1)
            want *= 2;
        b->data = kiln_xrealloc(b->data, want);
        b->alloc = want;
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int kiln_buf_appendf(kiln_buf_t *b, kiln_error_t *err, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n, ret;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return kiln_error_set(err, ENOMEM, "formatting");
    ret = kiln_buf_append(b, s, (size_t)n, err);
    free(s);
    return ret;
}

char *kiln_buf_steal(kiln_buf_t *b, size_t *len)
{
    char *d = b->data;
    if (d == NULL)
        d = kiln_xzalloc(1);
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return d;
}

void kiln_buf_free(kiln_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}
