/* kiln — what the unpack of an uploaded context wrote (each regular file's member path, its
 * stat once written and the content id of its bytes, job/context.h), kept so that the stat
 * cache of the build that uses the tree can be told later (job/source): a re-upload with one
 * file changed then hashes that file only. Kept in memory (the unpack's callback) and, for a
 * context the server unpacks when it is uploaded (POST /v1/contexts), in a file beside the
 * tree (<contexts>/ID.notes, written by the server under its own root, read back capped). */
#ifndef KILN_JOB_CONTEXT_NOTES_H
#define KILN_JOB_CONTEXT_NOTES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "job/context.h"
#include "utils/error.h"

typedef struct kiln_context_note {
    char *member; /* as in the tarball, without a leading "./" */
    struct stat st;
    unsigned char oid[KILN_CONTEXT_OID_LEN];
} kiln_context_note_t;

typedef struct kiln_context_notes {
    kiln_context_note_t *v;
    size_t n, cap;
} kiln_context_notes_t;

/* A kiln_context_file_fn: appends the file to the notes ctx (a kiln_context_notes_t). */
void kiln_context_notes_add(void *ctx, const char *member, const struct stat *st,
                            const unsigned char oid[KILN_CONTEXT_OID_LEN]);

void kiln_context_notes_clear(kiln_context_notes_t *n);

/* Writes the notes to path (0600, atomically). -1 with err naming path. */
int kiln_context_notes_save(const kiln_context_notes_t *n, const char *path, kiln_error_t *err);

/* Reads notes written by kiln_context_notes_save; at most max_entries (0: the unpack's
 * default cap). -1 with err naming path when it is missing, foreign, truncated or past a
 * cap; *out is then empty. */
int kiln_context_notes_load(const char *path, uint64_t max_entries, kiln_context_notes_t *out,
                            kiln_error_t *err);

#endif
