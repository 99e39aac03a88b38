/* kiln — a byte sink: where a producer (layer writer, blob copier, tar writer)
 * streams its output. A store blob writer, a plain fd, a hash-only sink
 * (kiln_sha256_sink) or a tee all look the same to the producer. */
#ifndef KILN_OCI_SINK_H
#define KILN_OCI_SINK_H

#include <stddef.h>

#include "utils/error.h"

struct kiln_digest;

typedef struct kiln_sink {
    /* Consumes all len bytes or fails (<0, err filled). Never a short write. */
    int (*write)(void *ctx, const void *buf, size_t len, kiln_error_t *err);
    void *ctx;
    /* NULL, or: the sink hashes every byte written into it (SHA-256) anyway,
     * and this gives that digest once the last byte was written (no write
     * may follow), so that a producer need not hash its output a second
     * time. */
    void (*digest)(void *ctx, struct kiln_digest *out);
} kiln_sink_t;

/* Writes len bytes to the sink. */
static inline int kiln_sink_write(const kiln_sink_t *s, const void *buf, size_t len,
                                  kiln_error_t *err)
{
    return s->write(s->ctx, buf, len, err);
}

/* A sink over a file descriptor: ctx is an `int *` to the fd (write-all, EINTR-safe). */
int kiln_sink_fd_write(void *ctx, const void *buf, size_t len, kiln_error_t *err);

static inline kiln_sink_t kiln_sink_fd(int *fd)
{
    kiln_sink_t s = {kiln_sink_fd_write, fd, NULL};
    return s;
}

/* Reads fd to EOF (EINTR-safe) and writes everything into the sink. */
int kiln_sink_copy_fd(const kiln_sink_t *s, int fd, kiln_error_t *err);

#endif
