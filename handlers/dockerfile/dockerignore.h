/* kiln — .dockerignore with Docker's semantics.
 *
 * Lines starting with '#' are comments; each other line is trimmed, a leading
 * '!' re-includes, the pattern is cleaned like a path (leading '/' dropped).
 * `*` matches within one path element, `?` one character, `[...]` a class,
 * `**` any number of elements (also none), `\x` a literal x. Patterns apply in
 * order, the last match wins, and a pattern matching a parent directory
 * matches everything below it.
 *
 * Unlike Docker's local contexts, kiln never lets a repository's `.git` (the
 * directory, or the `.git` file of a worktree or submodule, at any depth) into
 * a context, whatever the ignore file says: a `!.git` re-include is not
 * honoured (BuildKit likewise drops `.git` from git contexts). */
#ifndef KILN_HANDLERS_DOCKERFILE_DOCKERIGNORE_H
#define KILN_HANDLERS_DOCKERFILE_DOCKERIGNORE_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

/* A .dockerignore bigger than this is refused. */
#define KILN_DOCKERIGNORE_MAX (1u << 20)

typedef struct kiln_dockerignore kiln_dockerignore_t;

/* Parses .dockerignore text. On success *out is freed with kiln_dockerignore_free(). */
int kiln_dockerignore_parse(const char *text, size_t len, kiln_dockerignore_t **out,
                            kiln_error_t *err);

/* Loads the ignore file for a build: "<dockerfile>.dockerignore" next to the
 * Dockerfile when it exists (dockerfile: its path inside the directory fd
 * dfdir, -1 meaning the context; or NULL), else ".dockerignore" of the
 * context (the directory fd ctxfd). Both are read inside their directory,
 * so a link never leads to a host file; no file gives an empty
 * (match-nothing) set; a FIFO, socket or device is refused, never read. */
int kiln_dockerignore_load(int ctxfd, int dfdir, const char *dockerfile, kiln_dockerignore_t **out,
                           kiln_error_t *err);

/* Adds the patterns of the ignore file name (read inside ctxfd like
 * kiln_dockerignore_load, e.g. ".kilnignore") after those of di, so they win;
 * no file adds nothing. -1 with err naming the file. */
int kiln_dockerignore_add_file(kiln_dockerignore_t *di, int ctxfd, const char *name,
                               kiln_error_t *err);

void kiln_dockerignore_free(kiln_dockerignore_t *di);

/* True when the context-relative path has an element named ".git": never in a context. */
bool kiln_dockerignore_is_git(const char *path);

/* True when the context-relative path (with '/' separators, no leading "./")
 * is excluded from the build context (always for a .git path). */
bool kiln_dockerignore_excluded(const kiln_dockerignore_t *di, const char *path);

/* True once matching a path took more than the step budget (hostile
 * backtracking patterns): that path was reported excluded, and the caller
 * must fail naming the ignore file rather than build from an undecided set. */
bool kiln_dockerignore_overrun(const kiln_dockerignore_t *di);

/* True when an excluded directory must still be walked because a '!'
 * pattern may re-include something below it. */
bool kiln_dockerignore_may_reinclude(const kiln_dockerignore_t *di, const char *dir);

/* Number of patterns, and pattern i as written after cleaning ("!x" for
 * re-includes); for tests and debugging. */
size_t kiln_dockerignore_count(const kiln_dockerignore_t *di);
const char *kiln_dockerignore_pattern(const kiln_dockerignore_t *di, size_t i);

#endif
