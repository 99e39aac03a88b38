/* kiln server — the last API body made for each of a few builds, keyed by the exact bytes of
 * the rows it was made from. The body of GET /v1/builds/{id} is a pure function of its row
 * and phases, so a GET whose rows are byte for byte those of the last one reuses its body
 * instead of parsing the stored JSON again; any change in the rows is a miss (no
 * invalidation to forget). Thread-safe; bounded (KILN_BODYMEMO_SLOTS entries of at most
 * KILN_BODYMEMO_MAX bytes of key and of body each). */
#ifndef KILN_SERVER_BODYMEMO_H
#define KILN_SERVER_BODYMEMO_H

#include <stddef.h>

#define KILN_BODYMEMO_SLOTS 256
#define KILN_BODYMEMO_MAX (16u << 10)

typedef struct kiln_bodymemo kiln_bodymemo_t;

kiln_bodymemo_t *kiln_bodymemo_new(void);
void kiln_bodymemo_free(kiln_bodymemo_t *m);

/* 1 and a copy of the body kept for id with exactly key (*body malloc'ed, NUL-terminated,
 * *len without the NUL), 0 when there is none. */
int kiln_bodymemo_get(kiln_bodymemo_t *m, const char *id, const void *key, size_t klen, char **body,
                      size_t *len);
/* Keeps body for id and key (replacing the slot's entry); too large a key or body is not kept. */
void kiln_bodymemo_put(kiln_bodymemo_t *m, const char *id, const void *key, size_t klen,
                       const char *body, size_t len);

#endif
