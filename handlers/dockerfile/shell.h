/* kiln — Dockerfile word expansion, as BuildKit's shell lexer does it.
 *
 * kiln_shell_process_word() expands $V, ${V}, ${V:-x}, ${V-x}, ${V:+x}, ${V+x},
 * ${V:?msg}, ${V?msg}, ${V#p}, ${V##p}, ${V%p}, ${V%%p}, ${V/p/r}, ${V//p/r},
 * removes quotes and escapes, and returns one string (spaces kept);
 * kiln_shell_process_words() does the same and splits the result into words
 * (unquoted whitespace separates words; whitespace coming from an unquoted
 * variable splits too). */
#ifndef KILN_HANDLERS_DOCKERFILE_SHELL_H
#define KILN_HANDLERS_DOCKERFILE_SHELL_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

/* Where variables come from. `vars` are "KEY=VALUE" strings (a later entry
 * overrides an earlier one; "KEY" alone means set to empty). When `lookup` is
 * set it is asked first; it returns the value or NULL when the name is unset.
 * `on_use`, when set, is told each name looked up and whether it was set
 * (the build engine uses it to know which build args a step depends on). */
typedef struct kiln_shell_env {
    char *const *vars;
    size_t n_vars;
    const char *(*lookup)(void *ctx, const char *name);
    void (*on_use)(void *ctx, const char *name, bool found);
    void *ctx;
} kiln_shell_env_t;

typedef struct kiln_shell_opts {
    char escape;      /* '\\' (default when 0) or '`' */
    bool raw_quotes;  /* keep quote characters in the output */
    bool raw_escapes; /* keep escape characters in the output */
    bool skip_unset;  /* leave references to unset variables as written */
    bool skip_quotes; /* quotes are ordinary characters (heredoc bodies) */
} kiln_shell_opts_t;

/* Expands `word`. On success *out is a malloc'ed string. Fails on unterminated
 * quotes, bad substitutions and ${V?msg} of an unset variable, with a message
 * naming the word. opts may be NULL (defaults). */
int kiln_shell_process_word(const char *word, const kiln_shell_opts_t *opts,
                            const kiln_shell_env_t *env, char **out, kiln_error_t *err);

/* Expands and splits `word`. On success *out is a NULL-terminated malloc'ed
 * string vector (free with kiln_strv_free) and *n (if not NULL) its length. */
int kiln_shell_process_words(const char *word, const kiln_shell_opts_t *opts,
                             const kiln_shell_env_t *env, char ***out, size_t *n,
                             kiln_error_t *err);

#endif
