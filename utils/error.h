/* kiln — error reporting (crun style).
 *
 * A function that can fail takes `kiln_error_t *err`, returns a negative value
 * on failure and fills `err` with a message naming the thing that failed.
 * Callers propagate (`if (ret < 0) return ret;`) or add context with
 * kiln_error_prefix(). `err` may be NULL: the message is then dropped. */
#ifndef KILN_UTILS_ERROR_H
#define KILN_UTILS_ERROR_H

#include <stddef.h>

#define KILN_ERROR_MSG_MAX 2048

typedef struct kiln_error {
    int code; /* errno value, or 0 when not an OS error */
    char msg[KILN_ERROR_MSG_MAX];
} kiln_error_t;

/* Clears an error (an error is valid zero-initialised too). */
void kiln_error_clear(kiln_error_t *err);

/* Sets the message; when errnum != 0 ": strerror(errnum)" is appended.
 * Returns -1 so callers can `return kiln_error_set(err, errno, "open %s", p);`. */
int kiln_error_set(kiln_error_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "context: " in front of the existing message. Returns -1. */
int kiln_error_prefix(kiln_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when an error message has been set. */
int kiln_error_is_set(const kiln_error_t *err);

#endif
