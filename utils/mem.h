/* kiln — allocation helpers. Allocation failure aborts (like crun's OOM()):
 * there is no sensible recovery and it keeps every caller simple. */
#ifndef KILN_UTILS_MEM_H
#define KILN_UTILS_MEM_H

#include <stddef.h>

void *kiln_xmalloc(size_t n);
void *kiln_xzalloc(size_t n);
void *kiln_xrealloc(void *p, size_t n);
char *kiln_xstrdup(const char *s);
char *kiln_xstrndup(const char *s, size_t n);
char *kiln_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
