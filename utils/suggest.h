/* kiln — "did you mean": the candidate closest to a mistyped word (a flag, a stage name),
 * by edit distance, so an error can name what the user most likely meant. */
#ifndef KILN_UTILS_SUGGEST_H
#define KILN_UTILS_SUGGEST_H

#include <stddef.h>

/* The edit (Levenshtein) distance of a and b, compared without case; words longer than
 * KILN_SUGGEST_MAX_LEN count as far from everything (SIZE_MAX). */
#define KILN_SUGGEST_MAX_LEN 128
size_t kiln_suggest_distance(const char *a, const char *b);

/* The index in cands[0..n) (NULL entries skipped) of the candidate closest to word, if it is
 * close enough to be a typo of it: at most 2 edits, and fewer edits than half of the longer
 * word; ties go to the first. -1 when none is, or when word equals a candidate. */
long kiln_suggest_closest(const char *word, const char *const *cands, size_t n);

#endif
