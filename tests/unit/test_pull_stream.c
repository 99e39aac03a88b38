/* Unit tests for oci/pull_stream: a reader following a blob while it is written, a download
 * that starts over in a new file, and a failed download ending the reader with its error;
 * memory mode: a push finding no room is refused until the reader makes room (and wakes the
 * producer), a reader that gives up lets the rest through, the digest checked at the end;
 * the zero-copy reader (kiln_blob_stream_block): blocks never past the ring's end nor over
 * 256 KiB, held until the next call (the producer never writes over them), the end only
 * once the blob is verified, a failed blob's error instead. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "oci/digest.h"
#include "oci/pull_stream.h"
#include "utils/error.h"

#define SIZE (300 * 1024)

static unsigned char data[SIZE];

/* A temp file (unlinked) and a read-only fd of it. */
static void temp_pair(int *wfd, int *rfd)
{
    char path[] = "/tmp/kiln-test-pull-stream.XXXXXX";
    *wfd = mkstemp(path);
    assert_true(*wfd >= 0);
    *rfd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(*rfd >= 0);
    unlink(path);
}

/* A stream reading a new temp file; *wfd writes it. */
static kiln_blob_stream_t *new_stream(int *wfd)
{
    kiln_digest_t d;
    int rfd;
    memset(&d, 0, sizeof(d));
    kiln_blob_stream_t *bs = kiln_blob_stream_new(&d);
    temp_pair(wfd, &rfd);
    kiln_blob_stream_restart(bs, rfd);
    return bs;
}

typedef struct {
    kiln_blob_stream_t *bs;
    int wfd;
    int fail;    /* end with a failure instead of success */
    int restart; /* start over in a new file halfway */
} producer_t;

/* Writes data in small chunks, growing the stream after each, then ends it. */
static void *producer(void *arg)
{
    producer_t *p = arg;
    size_t done = 0;
    while (done < SIZE) {
        size_t n = SIZE - done < 7000 ? SIZE - done : 7000;
        assert_int_equal(write(p->wfd, data + done, n), (ssize_t)n);
        done += n;
        kiln_blob_stream_grow(p->bs, done);
        if (p->restart && done >= SIZE / 2) {
            int w, r;
            p->restart = 0;
            temp_pair(&w, &r);
            close(p->wfd);
            p->wfd = w;
            kiln_blob_stream_restart(p->bs, r);
            done = 0; /* the same bytes again, from the start */
        }
        usleep(200);
    }
    close(p->wfd);
    if (p->fail) {
        kiln_error_t e = {0};
        kiln_error_set(&e, EIO, "blob sha256:%064d: content does not match its digest", 0);
        kiln_blob_stream_finish(p->bs, 0, 0, &e);
    } else {
        kiln_blob_stream_finish(p->bs, 1, SIZE, NULL);
    }
    return NULL;
}

/* Reads the whole stream through kiln_blob_stream_read; returns its last result. */
static ssize_t read_all(kiln_blob_stream_t *bs, unsigned char *out, size_t *got, kiln_error_t *err)
{
    kiln_blob_reader_t rd = {bs, 0};
    ssize_t n;
    *got = 0;
    while ((n = kiln_blob_stream_read(&rd, out + *got, 4096, err)) > 0)
        *got += (size_t)n;
    return n;
}

static void run(int fail, int restart)
{
    int wfd;
    kiln_blob_stream_t *bs = new_stream(&wfd);
    producer_t p = {bs, wfd, fail, restart};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, producer, &p), 0);
    unsigned char *out = calloc(1, SIZE);
    size_t got;
    kiln_error_t err = {0};
    ssize_t last = read_all(bs, out, &got, &err);
    pthread_join(th, NULL);
    if (fail) {
        assert_int_equal(last, -1);
        assert_non_null(strstr(err.msg, "does not match its digest"));
        assert_int_equal(kiln_blob_stream_wait(bs, NULL), -1);
    } else {
        assert_int_equal(last, 0);
        assert_int_equal(got, SIZE);
        assert_memory_equal(out, data, SIZE);
        assert_int_equal(kiln_blob_stream_wait(bs, NULL), 0);
    }
    free(out);
    kiln_blob_stream_unref(bs);
}

static void test_follows_the_write(void **state)
{
    (void)state;
    run(0, 0);
}

static void test_restart_same_bytes(void **state)
{
    (void)state;
    run(0, 1);
}

static void test_failure_ends_reader(void **state)
{
    (void)state;
    run(1, 0);
}

/* A second reader of the same stream (a layer named twice) reads it from the start. */
static void test_second_reader(void **state)
{
    (void)state;
    int wfd;
    kiln_blob_stream_t *bs = new_stream(&wfd);
    assert_int_equal(write(wfd, data, SIZE), SIZE);
    close(wfd);
    kiln_blob_stream_finish(bs, 1, SIZE, NULL);
    unsigned char *out = calloc(1, SIZE);
    size_t got;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(read_all(bs, out, &got, NULL), 0);
        assert_int_equal(got, SIZE);
        assert_memory_equal(out, data, SIZE);
    }
    free(out);
    kiln_blob_stream_unref(bs);
}

static int wakes;
static void count_wake(void *ud)
{
    (void)ud;
    wakes++;
}

/* A memory-mode stream of data[0, SIZE) (its real digest) with a ring of cap bytes. */
static kiln_blob_stream_t *mem_stream(size_t cap)
{
    kiln_digest_t d;
    kiln_digest_bytes(data, SIZE, &d);
    kiln_blob_stream_t *bs = kiln_blob_stream_new(&d);
    assert_int_equal(kiln_blob_stream_memory(bs, cap, count_wake, NULL, NULL), 0);
    return bs;
}

/* Pushes without waiting, reading whenever a push is refused: the bytes come out whole, each
 * refusal ends with a wake-up once the reader has made room, the digest checks out. */
static void test_memory_pause_and_resume(void **state)
{
    (void)state;
    kiln_blob_stream_t *bs = mem_stream(64 * 1024);
    kiln_blob_reader_t rd = {bs, 0};
    static unsigned char out[SIZE];
    size_t got = 0, done = 0;
    int refused = 0;
    wakes = 0;
    while (done < SIZE) {
        size_t n = SIZE - done < 5000 ? SIZE - done : 5000;
        if (kiln_blob_stream_push(bs, data + done, n, 0)) {
            done += n;
            continue;
        }
        refused++;
        assert_true(kiln_blob_stream_blocked(bs));
        while (kiln_blob_stream_blocked(bs)) {
            ssize_t r = kiln_blob_stream_read(&rd, out + got, 3000, NULL);
            assert_true(r > 0);
            got += (size_t)r;
        }
    }
    assert_true(refused > 0);
    assert_int_equal(wakes, refused);
    assert_int_equal(kiln_blob_stream_pushed(bs), SIZE);
    assert_int_equal(kiln_blob_stream_commit(bs, SIZE, NULL), 0);
    for (;;) {
        ssize_t r = kiln_blob_stream_read(&rd, out + got, SIZE - got + 1, NULL);
        assert_true(r >= 0);
        if (r == 0)
            break;
        got += (size_t)r;
    }
    assert_int_equal(got, SIZE);
    assert_memory_equal(out, data, SIZE);
    assert_int_equal(kiln_blob_stream_wait(bs, NULL), 0);
    kiln_blob_stream_unref(bs);
}

/* A reader that gives up: the producer is not held (its bytes still hashed), and other bytes
 * than the digest's fail the stream naming the blob. */
static void test_memory_abandon_and_mismatch(void **state)
{
    (void)state;
    kiln_blob_stream_t *bs = mem_stream(16 * 1024);
    kiln_blob_reader_t rd = {bs, 0};
    unsigned char buf[1000];
    kiln_error_t err = {0};
    assert_int_equal(kiln_blob_stream_push(bs, data, 10000, 0), 1);
    assert_int_equal(kiln_blob_stream_push(bs, data + 10000, 10000, 0), 0);
    assert_true(kiln_blob_stream_read(&rd, buf, sizeof(buf), NULL) > 0);
    kiln_blob_stream_abandon(bs);
    assert_false(kiln_blob_stream_blocked(bs));
    for (size_t done = 10000; done < SIZE; done += 10000) {
        unsigned char chunk[10000];
        size_t n = SIZE - done < sizeof(chunk) ? SIZE - done : sizeof(chunk);
        memcpy(chunk, data + done, n);
        if (done == 50000)
            chunk[0] ^= 1; /* one byte other than the blob's */
        assert_int_equal(kiln_blob_stream_push(bs, chunk, n, 0), 1);
    }
    assert_int_equal(kiln_blob_stream_commit(bs, SIZE, &err), -1);
    assert_non_null(strstr(err.msg, "does not match its digest"));
    assert_int_equal(kiln_blob_stream_wait(bs, NULL), -1);
    kiln_blob_stream_unref(bs);
}

typedef struct {
    kiln_blob_stream_t *bs;
    uint64_t size; /* what the commit says (SIZE: the blob's) */
    int rc;
} mem_producer_t;

/* Pushes data[0, SIZE) in uneven pieces, waiting for room, then commits. */
static void *mem_producer(void *arg)
{
    mem_producer_t *p = arg;
    for (size_t done = 0, k = 0; done < SIZE; k++) {
        size_t n = 1000 + (k * 7919) % 9000;
        n = SIZE - done < n ? SIZE - done : n;
        assert_int_equal(kiln_blob_stream_push(p->bs, data + done, n, 1), 1);
        done += n;
    }
    p->rc = kiln_blob_stream_commit(p->bs, p->size, NULL);
    return NULL;
}

/* Reads bs through its blocks into out (room for SIZE): the bytes, or -1 with err. */
static ssize_t read_blocks(kiln_blob_stream_t *bs, unsigned char *out, kiln_error_t *err)
{
    kiln_blob_reader_t rd = {bs, 0};
    size_t got = 0, len = 0;
    for (;;) {
        const unsigned char *b = kiln_blob_stream_block(&rd, &len, err);
        if (b == NULL)
            return -1;
        if (len == 0)
            return (ssize_t)got;
        assert_true(len <= 256 * 1024);
        assert_true(got + len <= SIZE);
        /* held until the next call: the same bytes now as after a pause of the producer */
        memcpy(out + got, b, len);
        usleep(got % 7 == 0 ? 200 : 0);
        assert_memory_equal(out + got, b, len);
        got += len;
        assert_int_equal(rd.pos, got);
    }
}

/* The zero-copy reader over a small ring (it wraps many times) while a thread pushes. */
static void test_memory_blocks(void **state)
{
    (void)state;
    static unsigned char out[SIZE];
    kiln_blob_stream_t *bs = mem_stream(24 * 1024);
    assert_true(kiln_blob_stream_in_memory(bs));
    mem_producer_t p = {bs, SIZE, -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, mem_producer, &p), 0);
    ssize_t got = read_blocks(bs, out, NULL);
    pthread_join(th, NULL);
    assert_int_equal(p.rc, 0);
    assert_int_equal(got, SIZE);
    assert_memory_equal(out, data, SIZE);
    kiln_blob_stream_unref(bs);
}

/* A blob whose size is not the expected one: the reader gets the download's error, never
 * the end; a stream not in memory mode is refused by name. */
static void test_memory_blocks_failure(void **state)
{
    (void)state;
    static unsigned char out[SIZE];
    kiln_error_t err = {0};
    kiln_blob_stream_t *bs = mem_stream(64 * 1024);
    mem_producer_t p = {bs, SIZE + 1, -2};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, mem_producer, &p), 0);
    assert_int_equal(read_blocks(bs, out, &err), -1);
    pthread_join(th, NULL);
    assert_int_equal(p.rc, -1);
    assert_non_null(strstr(err.msg, "does not match the expected"));
    kiln_blob_stream_unref(bs);

    int wfd;
    size_t len = 0;
    bs = new_stream(&wfd);
    kiln_blob_reader_t rd = {bs, 0};
    assert_false(kiln_blob_stream_in_memory(bs));
    memset(&err, 0, sizeof(err));
    assert_null(kiln_blob_stream_block(&rd, &len, &err));
    assert_non_null(strstr(err.msg, "not streamed in memory"));
    close(wfd);
    kiln_blob_stream_unref(bs);
}

int main(void)
{
    for (size_t i = 0; i < SIZE; i++)
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follows_the_write),
        cmocka_unit_test(test_restart_same_bytes),
        cmocka_unit_test(test_failure_ends_reader),
        cmocka_unit_test(test_second_reader),
        cmocka_unit_test(test_memory_pause_and_resume),
        cmocka_unit_test(test_memory_abandon_and_mismatch),
        cmocka_unit_test(test_memory_blocks),
        cmocka_unit_test(test_memory_blocks_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
