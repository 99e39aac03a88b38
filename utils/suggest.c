/* kiln — "did you mean" (see suggest.h). */
#include "utils/suggest.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

size_t kiln_suggest_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[KILN_SUGGEST_MAX_LEN + 1];

    if (la > KILN_SUGGEST_MAX_LEN || lb > KILN_SUGGEST_MAX_LEN)
        return SIZE_MAX;
    /* one row of the classic table: row[j] = distance(a[0..i), b[0..j)) */
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

long kiln_suggest_closest(const char *word, const char *const *cands, size_t n)
{
    long best = -1;
    size_t best_d = SIZE_MAX;

    for (size_t i = 0; i < n; i++) {
        size_t d, longer;
        if (cands[i] == NULL)
            continue;
        d = kiln_suggest_distance(word, cands[i]);
        if (d == 0)
            return -1;
        longer = strlen(word) > strlen(cands[i]) ? strlen(word) : strlen(cands[i]);
        if (d <= 2 && d * 2 < longer && d < best_d) {
            best = (long)i;
            best_d = d;
        }
    }
    return best;
}
