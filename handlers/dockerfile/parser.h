/* kiln — Dockerfile parser producing BuildKit's AST.
 *
 * Parsing follows BuildKit's frontend/dockerfile/parser: parser directives
 * (`# escape=`, `# syntax=`, `# check=`) at the top, comments, line
 * continuations with the escape token, per-instruction argument forms (JSON
 * arrays with fallback to the shell form, whitespace lists, key=value pairs),
 * `--flags` before the arguments, ONBUILD sub-instructions and heredocs
 * (`<<EOF`, `<<-EOF`, quoted delimiters, several per instruction) on RUN, COPY
 * and ADD. Line numbers are 1-based and inclusive. */
#ifndef KILN_HANDLERS_DOCKERFILE_PARSER_H
#define KILN_HANDLERS_DOCKERFILE_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/buf.h"
#include "utils/error.h"

/* Input cap: a Dockerfile bigger than this is refused. */
#define KILN_DOCKERFILE_MAX (4u << 20)

typedef struct kiln_df_heredoc {
    char *name;    /* the delimiter word, quotes removed */
    unsigned fd;   /* `3<<EOF` → 3; 0 when not given */
    bool expand;   /* false when the delimiter was quoted */
    bool chomp;    /* `<<-`: leading tabs are removed from content */
    char *content; /* the lines between, each with its newline */
} kiln_df_heredoc_t;

typedef struct kiln_df_node kiln_df_node_t;
struct kiln_df_node {
    char *keyword;  /* lower case: "run", "copy", … */
    char *original; /* the instruction text after joining continuation lines */
    char **flags;   /* "--from=x" …, NULL-terminated */
    size_t n_flags;
    /* Arguments as BuildKit's Next chain: for ENV/LABEL triples
     * (key, value, "" or "="); for HEALTHCHECK the type then the command. */
    char **args; /* NULL-terminated */
    size_t n_args;
    size_t *arg_lens;    /* byte lengths (a JSON "\u0000" is kept past the NUL) */
    bool json;           /* arguments came from a JSON array */
    kiln_df_node_t *sub; /* ONBUILD's instruction, else NULL */
    kiln_df_heredoc_t *heredocs;
    size_t n_heredocs;
    int start_line, end_line;
};

typedef struct kiln_dockerfile {
    kiln_df_node_t *nodes;
    size_t n_nodes;
    char escape;  /* '\\' or '`' */
    char *syntax; /* the `# syntax=` directive, or NULL */
    int start_line, end_line;
    char **warnings; /* NULL-terminated */
    size_t n_warnings;
} kiln_dockerfile_t;

/* Parses Dockerfile text. On failure err reads "Dockerfile:LINE: message"
 * (the name is `name`, "Dockerfile" when NULL). On success *out must be freed
 * with kiln_dockerfile_free(). */
int kiln_dockerfile_parse(const char *text, size_t len, const char *name, kiln_dockerfile_t **out,
                          kiln_error_t *err);

void kiln_dockerfile_free(kiln_dockerfile_t *df);

/* Appends BuildKit's Node.Dump() of one instruction (no trailing newline). */
int kiln_df_node_dump(const kiln_df_node_t *node, kiln_buf_t *out, kiln_error_t *err);
/* Appends the AST dump of the whole file: one "(…)\n" line per instruction. */
int kiln_dockerfile_dump(const kiln_dockerfile_t *df, kiln_buf_t *out, kiln_error_t *err);

/* Appends s as Go's strconv.Quote would write it. */
int kiln_df_go_quote(const char *s, kiln_buf_t *out, kiln_error_t *err);
int kiln_df_go_quote_n(const char *s, size_t n, kiln_buf_t *out, kiln_error_t *err);

/* Content of a heredoc with `<<-` applied (leading tabs removed per line);
 * malloc'ed. */
char *kiln_df_heredoc_content(const kiln_df_heredoc_t *h);

#endif
