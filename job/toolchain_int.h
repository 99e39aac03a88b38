/* kiln — what job/toolchain.c and job/toolchain_pm.c share (not a public interface). */
#ifndef KILN_JOB_TOOLCHAIN_INT_H
#define KILN_JOB_TOOLCHAIN_INT_H

#include "utils/error.h"

#define KILN_TC_VERSION_FILE ".kiln-version"
#define KILN_TC_INTEGRITY_FILE ".kiln-integrity"
/* The corepack-style hashes ("sha512.<hex>" lines) of what a package manager's
 * packageManager hash is of, recorded beside its unpacked copy. */
#define KILN_TC_HASHES_FILE ".kiln-hashes"

/* Makes the directory sfd (closed) a tree of hard links in dfd: directories made, symbolic
 * links copied, regular files linked (one already in dfd replaced). */
int kiln_tc_link_tree(int sfd, int dfd, const char *what, kiln_error_t *err);

/* Makes dst (created when missing) a tree of hard links to src's (kiln_tc_link_tree). */
int kiln_tc_link_dir(const char *src, const char *dst, kiln_error_t *err);

/* A new temp dir under cache (*tmp, malloc'ed) holding base's tree as hard links, without
 * base's own records: the start of a composed toolchain. Nothing is left on failure. */
int kiln_tc_compose_start(const char *base, const char *cache, char **tmp, kiln_error_t *err);

/* Writes the version file into tmp and renames tmp to final (a concurrent build that
 * renamed its copy first wins: then tmp stays, for the caller to remove). */
int kiln_tc_publish(const char *tmp, const char *final, const char *ver, kiln_error_t *err);

#endif
