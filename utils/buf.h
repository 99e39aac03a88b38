/* kiln — a growable byte buffer with a hard cap (every buffer that grows
 * from input has one). Always NUL-terminated for convenience. */
#ifndef KILN_UTILS_BUF_H
#define KILN_UTILS_BUF_H

#include <stddef.h>

#include "utils/error.h"

typedef struct kiln_buf {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* 0 = no cap (only for data kiln itself produces) */
} kiln_buf_t;

void kiln_buf_init(kiln_buf_t *b, size_t cap);
/* Appends n bytes; fails (ENOBUFS) past the cap, leaving the buffer unchanged. */
int kiln_buf_append(kiln_buf_t *b, const void *p, size_t n, kiln_error_t *err);
int kiln_buf_appendf(kiln_buf_t *b, kiln_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Hands the data to the caller (NUL-terminated); the buffer is empty after. */
char *kiln_buf_steal(kiln_buf_t *b, size_t *len);
void kiln_buf_free(kiln_buf_t *b);

#endif
