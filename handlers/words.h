/* kiln — checks of names that a provider puts into a generated shell command
 * or Dockerfile (an artifactId, a binary name, a module path): a manifest is
 * hostile, so only plain words and relative paths that stay inside the source
 * pass. */
#ifndef KILN_HANDLERS_WORDS_H
#define KILN_HANDLERS_WORDS_H

#include <stdbool.h>

/* True for a non-empty word of [A-Za-z0-9._+-] (at most 128 bytes) that does
 * not start with '-' or '.'. */
bool kiln_words_plain(const char *s);

/* True for a relative path whose components are plain words (no "..", no "."
 * alone, no empty component, not absolute; a trailing '/' is allowed). */
bool kiln_words_relpath(const char *s);

/* A --subdir as a path of the source: leading "/" and "./" and trailing "/" dropped
 * (malloc'ed); NULL when nothing is left or it is ".". */
char *kiln_words_subdir(const char *subdir);

#endif
