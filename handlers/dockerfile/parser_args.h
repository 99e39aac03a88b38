/* kiln — the argument forms of Dockerfile instructions (BuildKit's parser helpers), shared by
 * the parser: whitespace-split words, words with quotes and escapes kept, `--flag[=value]`
 * words, `NAME=value` / `NAME value` pairs, and a JSON array of strings (exec form). Not for
 * use outside handlers/dockerfile/parser*.c. */
#ifndef KILN_HANDLERS_DOCKERFILE_PARSER_ARGS_H
#define KILN_HANDLERS_DOCKERFILE_PARSER_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

/* A growable NULL-terminated string vector with optional lengths. */
typedef struct kiln_df_strv {
    char **v;
    size_t *lens;
    size_t n, alloc;
} kiln_df_strv_t;

/* Appends n bytes of p (a copy) / a NUL-terminated p; frees every string. */
void kiln_df_strv_push_n(kiln_df_strv_t *s, const char *p, size_t n);
void kiln_df_strv_push(kiln_df_strv_t *s, const char *p);
void kiln_df_strv_clear(kiln_df_strv_t *s);

/* Go's unicode.IsSpace for single bytes, and BuildKit's token whitespace (space, tab). */
bool kiln_df_is_go_space(unsigned char c);
bool kiln_df_is_ws_token(unsigned char c);
/* A copy of s[0..n) without leading and trailing Go whitespace. */
char *kiln_df_trim_space_dup(const char *s, size_t n);

/* BuildKit's parseWords: splits on whitespace, keeps quotes and escapes. */
void kiln_df_args_words(const char *rest, char esc, kiln_df_strv_t *out);
/* Splits on whitespace into at most max words (max <= 0: no limit), the last keeping the
 * rest. */
void kiln_df_args_split_ws(const char *s, int max, kiln_df_strv_t *out);
/* The `--flag[=value]` words before the arguments (BuildKit's extractBuilderFlags).
 * Returns the rest of the line (pointer into `line`). */
const char *kiln_df_args_flags(const char *line, kiln_df_strv_t *flags);
/* `KEY=value ...` or the legacy `KEY value` (ENV, LABEL, ARG) into name/value pairs; -1 naming
 * the instruction `key` when a pair is malformed. */
int kiln_df_args_name_val(const char *rest, const char *key, char esc, kiln_df_strv_t *args,
                          kiln_error_t *err);
/* The exec form (a JSON array of strings, *json set) or else the shell form (one string, or
 * split into words when to_list). */
int kiln_df_args_json(const char *rest, bool to_list, kiln_df_strv_t *args, bool *json,
                      kiln_error_t *err);

#endif
