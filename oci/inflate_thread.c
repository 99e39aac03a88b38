/* kiln — inflating a compressed layer in a thread of its own (see inflate_thread.h). */
#include "oci/inflate_thread.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/pinflate.h"
#include "utils/mem.h"

#define SLOTS 8
#define SLOT_SIZE (256 * 1024)

struct kiln_inflate_thread {
    pthread_t th, hasher;
    kiln_hash_fn hash; /* the output's hook, when a hasher thread runs it */
    void *hash_ctx;
    uint64_t htail; /* the hasher's next slot: slots [htail, head) are not hashed yet */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kiln_decompressor_t *dec;
    kiln_pinflate_t *pf; /* a gzip layer: decoded on several threads where it allows */
    unsigned char *buf[SLOTS];
    const unsigned char *at[SLOTS]; /* where a slot's bytes are: its buf, or pinflate's */
    int viewed[SLOTS];              /* at is a pinflate view, given back once the slot is */
    uint64_t released;              /* the inflate thread's next slot to give back */
    size_t len[SLOTS];
    uint64_t head, tail; /* slots [tail, head) are filled */
    int held;            /* the consumer holds slot tail */
    int end, failed, stop;
    kiln_error_t err;
};

/* The first slot not free yet (locked): the reader's, or the hasher's when it is behind. */
static uint64_t freed(const kiln_inflate_thread_t *f)
{
    return f->hash != NULL && f->htail < f->tail ? f->htail : f->tail;
}

/* Tells the threads to stop. */
static void set_stop(kiln_inflate_thread_t *f)
{
    pthread_mutex_lock(&f->lock);
    f->stop = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* The thread: fills free slots until the input ends, fails or the consumer stops it. */
static void *inflate_main(void *arg)
{
    kiln_inflate_thread_t *f = arg;
    pthread_setname_np(pthread_self(), "kiln-inflate"); /* as ps and perf show it */
    for (;;) {
        pthread_mutex_lock(&f->lock);
        /* a slot is free once the reader gave it back and the hasher hashed it */
        while (!f->stop && f->head - freed(f) == SLOTS)
            pthread_cond_wait(&f->cond, &f->lock);
        int stop = f->stop;
        unsigned char *b = f->buf[f->head % SLOTS];
        uint64_t fr = freed(f);
        pthread_mutex_unlock(&f->lock);
        if (stop)
            return NULL;
        for (; f->released < fr; f->released++) /* (in order, as pinflate wants them) */
            if (f->viewed[f->released % SLOTS])
                kiln_pinflate_release(f->pf);
        const void *at = b;
        size_t fill = 0;
        ssize_t n;
        kiln_error_t e = {0};
        /* one read: what the input had so far is handed over at once (a layer still
         * downloading is unpacked as far as it arrived) */
        if ((n = f->pf != NULL ? kiln_pinflate_read_view(f->pf, b, SLOT_SIZE, &at, &e)
                               : kiln_decompressor_read(f->dec, b, SLOT_SIZE, &e)) > 0)
            fill = (size_t)n;
        pthread_mutex_lock(&f->lock);
        if (n < 0) {
            f->failed = 1;
            f->err = e;
        } else if (fill > 0) {
            f->len[f->head % SLOTS] = fill;
            f->at[f->head % SLOTS] = at;
            f->viewed[f->head % SLOTS] = at != b;
            f->head++;
        }
        if (n == 0)
            f->end = 1;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        if (n <= 0)
            return NULL;
    }
}

/* The hasher: the output's digest, slot by slot in order, beside the reader (the inflate
 * and the tar's SHA-256 were one serial chain: the longest of a big layer's unpack). Ends
 * at the end of the output, on a failure or when stopped. */
static void *hasher_main(void *arg)
{
    kiln_inflate_thread_t *f = arg;
    pthread_setname_np(pthread_self(), "kiln-hash"); /* as ps and perf show it */
    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->stop && !f->failed && !f->end && f->htail == f->head)
            pthread_cond_wait(&f->cond, &f->lock);
        if (f->stop || f->failed || f->htail == f->head)
            break;
        const unsigned char *b = f->at[f->htail % SLOTS];
        size_t n = f->len[f->htail % SLOTS];
        pthread_mutex_unlock(&f->lock);
        f->hash(f->hash_ctx, b, n);
        pthread_mutex_lock(&f->lock);
        f->htail++;
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

const void *kiln_inflate_thread_block(void *ctx, size_t *len, kiln_error_t *err)
{
    kiln_inflate_thread_t *f = ctx;
    const void *r = NULL;
    pthread_mutex_lock(&f->lock);
    if (f->held) {
        f->tail++;
        f->held = 0;
        pthread_cond_broadcast(&f->cond);
    }
    while (!f->failed && !f->end && f->head == f->tail)
        pthread_cond_wait(&f->cond, &f->lock);
    if (f->failed) {
        if (err != NULL)
            *err = f->err;
    } else if (f->head != f->tail) {
        f->held = 1;
        *len = f->len[f->tail % SLOTS];
        r = f->at[f->tail % SLOTS];
    } else {
        *len = 0;
        r = "";
    }
    pthread_mutex_unlock(&f->lock);
    return r;
}

/* Frees the slots, the lock and f (not the decompressor). */
static void inflate_free(kiln_inflate_thread_t *f)
{
    for (int i = 0; i < SLOTS; i++)
        free(f->buf[i]);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

kiln_inflate_thread_t *kiln_inflate_thread_start(kiln_decompressor_t *dec)
{
    kiln_inflate_thread_t *f = kiln_xzalloc(sizeof(*f));
    f->dec = dec;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    for (int i = 0; i < SLOTS; i++)
        f->buf[i] = kiln_xmalloc(SLOT_SIZE);
    /* the output's hook moves to a hasher thread of its own; without one, the inflate
     * thread keeps calling it */
    kiln_decompressor_take_out_hash(dec, &f->hash, &f->hash_ctx);
    int hooked = 0;
    if (f->hash != NULL && pthread_create(&f->hasher, NULL, hasher_main, f) != 0) {
        kiln_decompressor_set_out_hash(dec, f->hash, f->hash_ctx);
        f->hash = NULL;
        hooked = 1;
    }
    /* (the parallel decoder calls no output hook: only with the hook off the decompressor) */
    int workers = kiln_pinflate_auto_workers();
    if (!hooked && workers > 0 && kiln_decompressor_format(dec) == KILN_COMPRESSION_GZIP)
        f->pf = kiln_pinflate_new(dec, workers);
    if (pthread_create(&f->th, NULL, inflate_main, f) != 0) {
        if (f->hash != NULL) {
            set_stop(f);
            pthread_join(f->hasher, NULL);
            kiln_decompressor_set_out_hash(dec, f->hash, f->hash_ctx);
        }
        kiln_pinflate_free(f->pf);
        inflate_free(f);
        return NULL;
    }
    return f;
}

void kiln_inflate_thread_stop(kiln_inflate_thread_t *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    /* after the reader saw the end, the hasher finishes the slots it has not hashed (the
     * digest is then complete); else it stops where it is */
    if (!(f->end && !f->failed))
        f->stop = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->hash != NULL)
        pthread_join(f->hasher, NULL);
    set_stop(f);
    pthread_join(f->th, NULL);
    kiln_pinflate_free(f->pf);
    kiln_decompressor_free(f->dec);
    inflate_free(f);
}

int kiln_inflate_thread_ahead(kiln_inflate_thread_t *f)
{
    pthread_mutex_lock(&f->lock);
    int ahead = f->end || f->head - f->tail >= SLOTS / 2;
    pthread_mutex_unlock(&f->lock);
    return ahead;
}
