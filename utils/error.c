/* kiln — error reporting (see error.h): messages set, prefixed and cleared. */
#include "utils/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void kiln_error_clear(kiln_error_t *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

int kiln_error_set(kiln_error_t *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = errnum;
    if (errnum != 0) {
        n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
    }
    return -1;
}

int kiln_error_prefix(kiln_error_t *err, const char *fmt, ...)
{
    char prefix[KILN_ERROR_MSG_MAX];
    char old[KILN_ERROR_MSG_MAX];
    va_list ap;

    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    return -1;
}

int kiln_error_is_set(const kiln_error_t *err)
{
    return err != NULL && err->msg[0] != '\0';
}
