/* kiln server — the API body memo (see bodymemo.h): a direct-mapped table by id, one
 * reader-writer lock per slot: GETs of one build read it side by side (a reader preempted
 * while holding a mutex stalled every other reader of that build), a new body takes it alone,
 * only to swap pointers. */
#include "src/server/bodymemo.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/mem.h"
#include "utils/rwlock.h"

typedef struct slot {
    pthread_rwlock_t lock;
    char *id, *key, *body; /* NULL when empty */
    size_t klen, len;
} slot_t;

struct kiln_bodymemo {
    slot_t s[KILN_BODYMEMO_SLOTS];
};

static slot_t *slot_of(kiln_bodymemo_t *m, const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &m->s[h % KILN_BODYMEMO_SLOTS];
}

static void slot_clear(slot_t *s)
{
    free(s->id);
    free(s->key);
    free(s->body);
    s->id = s->key = s->body = NULL;
    s->klen = s->len = 0;
}

kiln_bodymemo_t *kiln_bodymemo_new(void)
{
    kiln_bodymemo_t *m = kiln_xzalloc(sizeof(*m));
    for (size_t i = 0; i < KILN_BODYMEMO_SLOTS; i++)
        kiln_rwlock_init_writer_first(&m->s[i].lock);
    return m;
}

void kiln_bodymemo_free(kiln_bodymemo_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < KILN_BODYMEMO_SLOTS; i++) {
        slot_clear(&m->s[i]);
        pthread_rwlock_destroy(&m->s[i].lock);
    }
    free(m);
}

int kiln_bodymemo_get(kiln_bodymemo_t *m, const char *id, const void *key, size_t klen, char **body,
                      size_t *len)
{
    slot_t *s = slot_of(m, id);
    int found = 0;

    pthread_rwlock_rdlock(&s->lock);
    if (s->id && strcmp(s->id, id) == 0 && s->klen == klen && memcmp(s->key, key, klen) == 0) {
        *body = kiln_xmalloc(s->len + 1);
        memcpy(*body, s->body, s->len + 1);
        *len = s->len;
        found = 1;
    }
    pthread_rwlock_unlock(&s->lock);
    return found;
}

void kiln_bodymemo_put(kiln_bodymemo_t *m, const char *id, const void *key, size_t klen,
                       const char *body, size_t len)
{
    slot_t *s = slot_of(m, id);
    char *nid, *nkey, *nbody;
    slot_t old;

    if (klen > KILN_BODYMEMO_MAX || len > KILN_BODYMEMO_MAX)
        return;
    /* copies made before the lock: the slot is held only to swap them in */
    nid = kiln_xstrdup(id);
    nkey = kiln_xmalloc(klen ? klen : 1);
    memcpy(nkey, key, klen);
    nbody = kiln_xmalloc(len + 1);
    memcpy(nbody, body, len);
    nbody[len] = '\0';
    pthread_rwlock_wrlock(&s->lock);
    old = *s;
    s->id = nid;
    s->key = nkey;
    s->klen = klen;
    s->body = nbody;
    s->len = len;
    pthread_rwlock_unlock(&s->lock);
    slot_clear(&old); /* freed outside the lock */
}
