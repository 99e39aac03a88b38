/* kiln — go.mod: the lines the Go provider needs (module, go, toolchain),
 * each with its line number so that a plan and its errors can say which line
 * decided what. The file is hostile: every value is checked to be what its
 * directive allows (a module path, a Go version name), never used as text
 * otherwise. */
#ifndef KILN_HANDLERS_GO_MOD_H
#define KILN_HANDLERS_GO_MOD_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

typedef struct kiln_gomod {
    char *module;    /* "example.com/x/y" */
    char *go;        /* the go line's version ("1.23"), NULL when absent */
    int go_line;     /* 1-based */
    char *toolchain; /* the toolchain line without "go" ("1.24.2"); NULL when absent or default */
    int toolchain_line;
    bool has_require; /* at least one require (a dependency to download) */
} kiln_gomod_t;

/* Parses go.mod text (len bytes; "go.mod" in messages). Fails naming the line
 * for a missing or malformed module, a go or toolchain line that is not a Go
 * version name, a repeated go/toolchain/module line or a NUL byte. */
int kiln_gomod_parse(const char *text, size_t len, kiln_gomod_t *out, kiln_error_t *err);
void kiln_gomod_free(kiln_gomod_t *m);

#endif
