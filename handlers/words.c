/* kiln — plain words and relative paths for generated commands (see words.h). */
#include "handlers/words.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"

#define WORD_MAX 128
#define PATH_MAX_LEN 512

/* Checks n bytes as one word. */
static bool plain_n(const char *s, size_t n)
{
    if (n == 0 || n > WORD_MAX || s[0] == '-' || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-' && c != '+')
            return false;
    }
    return true;
}

bool kiln_words_plain(const char *s)
{
    return s != NULL && plain_n(s, strlen(s));
}

bool kiln_words_relpath(const char *s)
{
    size_t len;

    if (s == NULL || s[0] == '\0' || s[0] == '/' || (len = strlen(s)) > PATH_MAX_LEN)
        return false;
    if (s[len - 1] == '/')
        len--;
    for (size_t i = 0; i < len;) {
        const char *slash = memchr(s + i, '/', len - i);
        size_t n = slash ? (size_t)(slash - (s + i)) : len - i;
        if (!plain_n(s + i, n))
            return false;
        i += n + 1;
    }
    return true;
}

char *kiln_words_subdir(const char *subdir)
{
    char *sub;
    size_t n;

    while (subdir[0] == '/' || (subdir[0] == '.' && subdir[1] == '/'))
        subdir += subdir[0] == '/' ? 1 : 2;
    sub = kiln_xstrdup(subdir);
    n = strlen(sub);
    while (n > 0 && sub[n - 1] == '/')
        sub[--n] = '\0';
    if (n == 0 || strcmp(sub, ".") == 0) {
        free(sub);
        return NULL;
    }
    return sub;
}
