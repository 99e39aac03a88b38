/* kiln — read-only access to a source tree for the detection handlers.
 *
 * Every lookup resolves inside the tree's root (openat2 RESOLVE_IN_ROOT): a
 * symlink in a repository can never make a handler read a file outside it. */
#ifndef KILN_HANDLERS_TREE_H
#define KILN_HANDLERS_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "utils/error.h"

/* Largest manifest a handler reads (package.json, go.mod, kiln.json, …). */
#define KILN_TREE_FILE_CAP (4u * 1024 * 1024)

typedef struct kiln_tree {
    int fd;     /* O_PATH|O_DIRECTORY fd of the root */
    char *path; /* the root as given, for messages */
} kiln_tree_t;

/* Opens the directory `path` as a tree. Fails when it is not a directory. */
int kiln_tree_open(const char *path, kiln_tree_t *tree, kiln_error_t *err);
void kiln_tree_close(kiln_tree_t *tree);

/* True when `rel` names a regular file inside the tree. */
bool kiln_tree_is_file(const kiln_tree_t *tree, const char *rel);
/* True when `rel` names a directory inside the tree. */
bool kiln_tree_is_dir(const kiln_tree_t *tree, const char *rel);

/* Reads the file `rel` (capped at KILN_TREE_FILE_CAP). Returns 1 and sets *out
 * (NUL-terminated, malloc'ed) when read, 0 when the file does not exist, -1 on
 * any other error (too big, not a regular file, I/O). */
int kiln_tree_read(const kiln_tree_t *tree, const char *rel, char **out, kiln_error_t *err);

/* Lists the names at the top of the tree (sorted, at most `max`), for error
 * messages. Returns a NULL-terminated array (maybe empty) or NULL on error. */
char **kiln_tree_list(const kiln_tree_t *tree, const char *rel, size_t max, kiln_error_t *err);

#endif
