/* kiln — the stat cache of build contexts (see statcache.h for the contract).
 *
 * File format (version 2, all integers little-endian):
 *
 *     "kilnstc\n"  u32 version (2)  u32 id length  u64 entry count
 *     the context identity (id length bytes, no NUL)
 *     per entry: u64 dev, ino, size; i64 mtime ns, ctime ns, verified ns;
 *                u8 sha256[32]; u8 git blob id[20]; u8 flags; u8 zero;
 *                u16 path length; the path and a NUL
 *     sha256 of everything above (32 bytes)
 *
 * In memory: an array of entries and an open-addressing table of their
 * indexes (linear probing, at most half full) hashed with SipHash-1-3 under a
 * random key, so no set of context paths can make lookups degrade. Loaded
 * paths point into the file's buffer. */
#include "engine/statcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/size.h"

#define MAGIC "kilnstc\n"
#define VERSION 2u
#define HDR_LEN 24u /* magic, version, id length, count */
#define ENTRY_FIXED (6 * 8 + 32 + 20 + 4)
#define SUM_LEN 32u
#define MAX_ENTRIES (1u << 23)     /* per context, in a file or in memory */
#define LOAD_HARD_MAX (1ULL << 30) /* the largest file read, whatever the cap */
#define MAX_SCANNED 64             /* subtrees remembered per session; more: no drops */
#define MAX_DIR_FILES 100000       /* files of the directory considered for eviction */
#define TMP_PREFIX ".tmp-"
#define TMP_STALE_S 3600 /* a temp file this old was left by a crash */

enum {
    F_DIGEST = 1,  /* digest valid */
    F_OID = 2,     /* oid valid: the file was written by kiln checkout from that blob */
    F_TRUSTED = 4, /* written by kiln itself: no racy check */
    F_KNOWN = 7,
};

typedef struct entry {
    char *path;
    uint64_t h;
    uint64_t dev, ino, size;
    int64_t mtime, ctime, verified;
    unsigned char digest[32];
    unsigned char oid[KILN_STATCACHE_OID_LEN];
    uint8_t flags;
    bool seen;  /* looked up or noted in this session */
    bool owned; /* path malloc'ed (else inside buf) */
} entry_t;

struct kiln_statcache {
    bool disabled;
    int dirfd;
    char *dir, *id, *name; /* name: the file's name in dir */
    uint64_t max_bytes;
    uint64_t key[2];
    char *buf; /* the loaded file */
    entry_t *e;
    size_t n, alloc;
    uint32_t *slots; /* index + 1; 0 = empty */
    size_t n_slots;  /* a power of two, or 0 */
    char *scanned[MAX_SCANNED];
    size_t n_scanned;
    bool scanned_overflow;
    bool dirty;
    kiln_statcache_stats_t st;
};

/* ------------------------------------------------------------ hashing */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 of s under key k: paths from a hostile context cannot be
 * chosen to collide without knowing the per-cache random key. */
static uint64_t siphash13(const uint64_t k[2], const char *s, size_t len)
{
    const unsigned char *in = (const unsigned char *)s;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
    uint64_t b = (uint64_t)len << 56, m;

    for (; len >= 8; len -= 8, in += 8) {
        memcpy(&m, in, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < len; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void table_put(kiln_statcache_t *c, size_t idx)
{
    size_t mask = c->n_slots - 1;
    for (size_t i = c->e[idx].h & mask;; i = (i + 1) & mask) {
        if (c->slots[i] == 0) {
            c->slots[i] = (uint32_t)idx + 1;
            return;
        }
    }
}

static void table_grow(kiln_statcache_t *c)
{
    size_t want = c->n_slots ? c->n_slots * 2 : 1024;
    free(c->slots);
    c->slots = kiln_xzalloc(want * sizeof(uint32_t));
    c->n_slots = want;
    for (size_t i = 0; i < c->n; i++)
        table_put(c, i);
}

static entry_t *find(kiln_statcache_t *c, const char *path, uint64_t h)
{
    size_t mask = c->n_slots - 1;
    if (c->n_slots == 0)
        return NULL;
    for (size_t i = h & mask; c->slots[i] != 0; i = (i + 1) & mask) {
        entry_t *e = &c->e[c->slots[i] - 1];
        if (e->h == h && strcmp(e->path, path) == 0)
            return e;
    }
    return NULL;
}

/* Appends an entry for path (owned or inside buf); NULL when full. */
static entry_t *add(kiln_statcache_t *c, char *path, uint64_t h, bool owned)
{
    entry_t *e;
    if (c->n >= MAX_ENTRIES)
        return NULL;
    if (c->n == c->alloc) {
        c->alloc = c->alloc ? c->alloc * 2 : 1024;
        c->e = kiln_xrealloc(c->e, c->alloc * sizeof(entry_t));
    }
    e = &c->e[c->n++];
    memset(e, 0, sizeof(*e));
    e->path = path;
    e->h = h;
    e->owned = owned;
    if ((c->n + 1) * 2 > c->n_slots)
        table_grow(c);
    else
        table_put(c, c->n - 1);
    return e;
}

static void clear_entries(kiln_statcache_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i].owned)
            free(c->e[i].path);
    c->n = 0;
    if (c->slots)
        memset(c->slots, 0, c->n_slots * sizeof(uint32_t));
}

/* -------------------------------------------------------- the format */

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch - 'a' + 10;
}

static void digest_to_bin(const kiln_digest_t *d, unsigned char out[32])
{
    for (int i = 0; i < 32; i++)
        out[i] = (unsigned char)(hexval(d->hex[2 * i]) << 4 | hexval(d->hex[2 * i + 1]));
}

static void bin_to_digest(const unsigned char in[32], kiln_digest_t *d)
{
    static const char x[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        d->hex[2 * i] = x[in[i] >> 4];
        d->hex[2 * i + 1] = x[in[i] & 15];
    }
    d->hex[64] = '\0';
}

/* Whether p is a clean relative path: components neither empty, "." nor "..". */
static bool clean_rel(const char *p)
{
    const char *s = p;
    if (*p == '\0')
        return false;
    for (;;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        if (s[n] == '\0')
            return true;
        s += n + 1;
    }
}

/* Parses a file (data, len) of context id into c's entries (paths pointing
 * into data, which must stay). -1 with err saying what is wrong; c may then
 * hold some entries (the caller clears them). */
static int parse(kiln_statcache_t *c, char *data, size_t len, const char *id, kiln_error_t *err)
{
    const unsigned char *d = (const unsigned char *)data;
    unsigned char sum[32];
    kiln_digest_t dg;
    size_t idlen = strlen(id), p, end;
    uint64_t count;
    uint32_t flen;

    if (len < HDR_LEN + SUM_LEN)
        return kiln_error_set(err, 0, "truncated (%zu bytes)", len);
    end = len - SUM_LEN;
    kiln_digest_bytes(d, end, &dg);
    digest_to_bin(&dg, sum);
    if (memcmp(sum, d + end, SUM_LEN) != 0)
        return kiln_error_set(err, 0, "checksum mismatch (damaged or truncated)");
    if (memcmp(d, MAGIC, 8) != 0)
        return kiln_error_set(err, 0, "not a stat cache file");
    if (get_u32(d + 8) != VERSION)
        return kiln_error_set(err, 0, "version %u (this kiln reads %u)", get_u32(d + 8), VERSION);
    flen = get_u32(d + 12);
    count = get_u64(d + 16);
    if (flen != idlen || flen > end - HDR_LEN || memcmp(d + HDR_LEN, id, idlen) != 0)
        return kiln_error_set(err, 0, "the file is of another context");
    p = HDR_LEN + idlen;
    if (count > MAX_ENTRIES || count > (end - p) / (ENTRY_FIXED + 2))
        return kiln_error_set(err, 0, "entry count %llu out of bounds", (unsigned long long)count);
    for (uint64_t i = 0; i < count; i++) {
        const unsigned char *q = d + p;
        size_t plen;
        char *path;
        uint64_t h;
        entry_t *e;
        if (end - p < ENTRY_FIXED)
            return kiln_error_set(err, 0, "entry %llu truncated", (unsigned long long)i);
        plen = (size_t)q[ENTRY_FIXED - 2] | (size_t)q[ENTRY_FIXED - 1] << 8;
        if ((q[ENTRY_FIXED - 4] & ~F_KNOWN) != 0 || q[ENTRY_FIXED - 3] != 0)
            return kiln_error_set(err, 0, "entry %llu: unknown flags", (unsigned long long)i);
        if (plen == 0 || plen > KILN_STATCACHE_PATH_MAX || end - p - ENTRY_FIXED < plen + 1)
            return kiln_error_set(err, 0, "entry %llu: bad path length %zu", (unsigned long long)i,
                                  plen);
        path = data + p + ENTRY_FIXED;
        if (path[plen] != '\0' || memchr(path, '\0', plen) != NULL || !clean_rel(path))
            return kiln_error_set(err, 0, "entry %llu: bad path", (unsigned long long)i);
        h = siphash13(c->key, path, plen);
        if (find(c, path, h) != NULL)
            return kiln_error_set(err, 0, "entry %llu: path repeated", (unsigned long long)i);
        e = add(c, path, h, false);
        e->dev = get_u64(q);
        e->ino = get_u64(q + 8);
        e->size = get_u64(q + 16);
        e->mtime = (int64_t)get_u64(q + 24);
        e->ctime = (int64_t)get_u64(q + 32);
        e->verified = (int64_t)get_u64(q + 40);
        memcpy(e->digest, q + 48, 32);
        memcpy(e->oid, q + 80, KILN_STATCACHE_OID_LEN);
        e->flags = q[ENTRY_FIXED - 4];
        p += ENTRY_FIXED + plen + 1;
    }
    if (p != end)
        return kiln_error_set(err, 0, "%zu bytes after the last entry", end - p);
    return 0;
}

/* Whether the entry goes on save: not seen in a subtree that was rescanned. */
static bool vanished(const kiln_statcache_t *c, const entry_t *e)
{
    if (e->seen || c->scanned_overflow)
        return false;
    for (size_t i = 0; i < c->n_scanned; i++) {
        size_t n = strlen(c->scanned[i]);
        if (n == 0 ||
            (strncmp(e->path, c->scanned[i], n) == 0 && (e->path[n] == '\0' || e->path[n] == '/')))
            return true;
    }
    return false;
}

/* The file's bytes: the kept entries of c; *len its size. */
static unsigned char *serialize(const kiln_statcache_t *c, size_t *len)
{
    size_t idlen = strlen(c->id), total = HDR_LEN + idlen + SUM_LEN, p;
    uint64_t count = 0;
    unsigned char *d;
    kiln_digest_t dg;

    for (size_t i = 0; i < c->n; i++) {
        if (vanished(c, &c->e[i]))
            continue;
        total += ENTRY_FIXED + strlen(c->e[i].path) + 1;
        count++;
    }
    d = kiln_xzalloc(total);
    memcpy(d, MAGIC, 8);
    put_u32(d + 8, VERSION);
    put_u32(d + 12, (uint32_t)idlen);
    put_u64(d + 16, count);
    memcpy(d + HDR_LEN, c->id, idlen);
    p = HDR_LEN + idlen;
    for (size_t i = 0; i < c->n; i++) {
        const entry_t *e = &c->e[i];
        size_t plen = strlen(e->path);
        unsigned char *q = d + p;
        if (vanished(c, e))
            continue;
        put_u64(q, e->dev);
        put_u64(q + 8, e->ino);
        put_u64(q + 16, e->size);
        put_u64(q + 24, (uint64_t)e->mtime);
        put_u64(q + 32, (uint64_t)e->ctime);
        put_u64(q + 40, (uint64_t)e->verified);
        memcpy(q + 48, e->digest, 32);
        memcpy(q + 80, e->oid, KILN_STATCACHE_OID_LEN);
        q[ENTRY_FIXED - 4] = e->flags;
        q[ENTRY_FIXED - 2] = (unsigned char)(plen & 0xff);
        q[ENTRY_FIXED - 1] = (unsigned char)(plen >> 8);
        memcpy(q + ENTRY_FIXED, e->path, plen + 1);
        p += ENTRY_FIXED + plen + 1;
    }
    kiln_digest_bytes(d, p, &dg);
    digest_to_bin(&dg, d + p);
    *len = total;
    return d;
}

/* ------------------------------------------------------------ opening */

static void random_key(uint64_t k[2])
{
    if (getrandom(k, 2 * sizeof(uint64_t), GRND_NONBLOCK) != (ssize_t)(2 * sizeof(uint64_t))) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)k;
        k[1] = (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32);
    }
}

static kiln_statcache_t *new_cache(const char *id)
{
    kiln_statcache_t *c = kiln_xzalloc(sizeof(*c));
    c->dirfd = -1;
    c->id = kiln_xstrdup(id);
    random_key(c->key);
    return c;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Opens dir (made 0700 when missing; an old single-file cache there goes),
 * never through a link, and checks it is kiln's own. The fd or -1. */
static int open_dir(const char *dir, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    struct stat sb;

    if (lstat(dir, &sb) == 0 && S_ISREG(sb.st_mode) && unlink(dir) < 0)
        return kiln_error_set(err, errno, "remove the old stat cache file %s", dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        _cleanup_free_ char *parent = kiln_xstrdup(dir);
        char *slash = strrchr(parent, '/');
        if (errno != ENOENT || slash == NULL || slash == parent)
            return kiln_error_set(err, errno, "mkdir %s", dir);
        *slash = '\0';
        if (kiln_fs_mkdir_p(parent, 0700, err) < 0)
            return -1;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return kiln_error_set(err, errno, "mkdir %s", dir);
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kiln_error_set(err, errno,
                              errno == ELOOP || errno == ENOTDIR
                                  ? "stat cache %s is not a directory (a link or a file)"
                                  : "open %s",
                              dir);
    if (fstat(fd, &sb) < 0)
        return kiln_error_set(err, errno, "stat %s", dir);
    if (sb.st_uid != geteuid())
        return kiln_error_set(err, EPERM, "stat cache %s is owned by uid %u, not kiln's", dir,
                              (unsigned)sb.st_uid);
    if ((sb.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
        return kiln_error_set(err, errno, "chmod %s", dir);
    return steal_fd(&fd);
}

/* Loads the context's file into c (a refused file: damaged, c empty). */
static void load(kiln_statcache_t *c)
{
    _cleanup_close_ int fd =
        openat(c->dirfd, c->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    uint64_t cap = c->max_bytes < LOAD_HARD_MAX ? c->max_bytes : LOAD_HARD_MAX;
    struct stat sb;
    size_t len = 0;

    if (fd < 0) {
        c->st.damaged = errno != ENOENT;
        return;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
        (uint64_t)sb.st_size > cap || kiln_fs_read_fd(fd, (size_t)cap, &c->buf, &len, NULL) < 0 ||
        parse(c, c->buf, len, c->id, NULL) < 0) {
        clear_entries(c);
        free(c->buf);
        c->buf = NULL;
        c->st.damaged = 1;
        c->dirty = true; /* replaced on save */
        return;
    }
    c->st.loaded = c->n;
    (void)futimens(fd, NULL); /* its mtime is its last use (LRU) */
}

int kiln_statcache_open(const char *dir, const char *context_id, int64_t max_bytes,
                        kiln_statcache_t **out, kiln_error_t *err)
{
    kiln_statcache_t *c;
    kiln_digest_t name;
    size_t idlen = context_id ? strlen(context_id) : 0;

    if (idlen == 0 || idlen > KILN_STATCACHE_ID_MAX)
        return kiln_error_set(err, EINVAL,
                              "stat cache: a context identity of %zu bytes (want 1 to %d)", idlen,
                              KILN_STATCACHE_ID_MAX);
    c = new_cache(context_id);
    if (max_bytes < 0) {
        c->disabled = true;
        *out = c;
        return 0;
    }
    c->max_bytes = max_bytes ? (uint64_t)max_bytes : KILN_STATCACHE_DEFAULT_MAX;
    c->dirfd = open_dir(dir, err);
    if (c->dirfd < 0) {
        kiln_statcache_free(c);
        return -1;
    }
    c->dir = kiln_xstrdup(dir);
    kiln_digest_bytes(context_id, idlen, &name);
    c->name = kiln_xasprintf("%s.sc", name.hex);
    load(c);
    *out = c;
    return 0;
}

/* ------------------------------------------------------------ lookups */

static bool stat_matches(const entry_t *e, const struct stat *st)
{
    return e->dev == (uint64_t)st->st_dev && e->ino == (uint64_t)st->st_ino &&
           e->size == (uint64_t)st->st_size &&
           e->mtime == (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec &&
           e->ctime == (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static void set_stat(entry_t *e, const struct stat *st)
{
    e->dev = (uint64_t)st->st_dev;
    e->ino = (uint64_t)st->st_ino;
    e->size = (uint64_t)st->st_size;
    e->mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    e->ctime = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

/* The entry of rel, made when missing (NULL when rel cannot be kept). */
static entry_t *lookup(kiln_statcache_t *c, const char *rel, bool *fresh)
{
    size_t len = strlen(rel);
    uint64_t h;
    entry_t *e;

    *fresh = false;
    if (c->disabled || len == 0 || len > KILN_STATCACHE_PATH_MAX || !clean_rel(rel))
        return NULL;
    h = siphash13(c->key, rel, len);
    e = find(c, rel, h);
    if (e == NULL) {
        e = add(c, kiln_xstrdup(rel), h, true);
        if (e == NULL)
            return NULL;
        *fresh = true;
    }
    e->seen = true;
    return e;
}

/* kiln_statcache_hash's reader: the digest of the file fd. */
static int digest_fd(void *ctx, kiln_digest_t *out, kiln_error_t *err)
{
    return kiln_digest_fd(*(int *)ctx, out, NULL, err);
}

int kiln_statcache_hash(kiln_statcache_t *c, const char *rel, int fd, const struct stat *st,
                        kiln_digest_t *out, kiln_error_t *err)
{
    return kiln_statcache_hash_with(c, rel, st, digest_fd, &fd, out, err);
}

int kiln_statcache_hash_with(kiln_statcache_t *c, const char *rel, const struct stat *st,
                             int (*digest)(void *ctx, kiln_digest_t *out, kiln_error_t *err),
                             void *ctx, kiln_digest_t *out, kiln_error_t *err)
{
    bool fresh;
    entry_t *e = lookup(c, rel, &fresh);
    int64_t t0;

    if (e && !fresh && (e->flags & F_DIGEST) && stat_matches(e, st) &&
        ((e->flags & F_TRUSTED) || (e->mtime < e->verified - KILN_STATCACHE_RACY_NS &&
                                    e->ctime < e->verified - KILN_STATCACHE_RACY_NS))) {
        bin_to_digest(e->digest, out);
        c->st.hits++;
        return 0;
    }
    t0 = now_ns(); /* before reading: a change from now on moves ctime past it */
    if (digest(ctx, out, err) < 0)
        return kiln_error_prefix(err, "hashing %s", rel);
    c->st.hashed++;
    if (e == NULL)
        return 0;
    if (!fresh && stat_matches(e, st)) {
        e->flags |= F_DIGEST; /* a checkout's file, or a racy one: what it knew stays */
    } else {
        set_stat(e, st);
        e->flags = F_DIGEST;
    }
    e->verified = t0;
    digest_to_bin(out, e->digest);
    c->dirty = true;
    return 0;
}

void kiln_statcache_note(kiln_statcache_t *c, const char *rel, const struct stat *st,
                         const unsigned char oid[KILN_STATCACHE_OID_LEN])
{
    bool fresh;
    entry_t *e = lookup(c, rel, &fresh);

    if (e == NULL)
        return;
    c->st.noted++;
    if (!fresh && (e->flags & (F_OID | F_DIGEST)) == (F_OID | F_DIGEST) &&
        memcmp(e->oid, oid, KILN_STATCACHE_OID_LEN) == 0) {
        c->st.kept++;
        e->flags = F_OID | F_DIGEST | F_TRUSTED;
    } else {
        /* the build that follows hashes it once and keeps the digest with the blob id */
        memcpy(e->oid, oid, KILN_STATCACHE_OID_LEN);
        e->flags = F_OID | F_TRUSTED;
    }
    set_stat(e, st);
    e->verified = now_ns();
    c->dirty = true;
}

void kiln_statcache_scanned(kiln_statcache_t *c, const char *rel)
{
    if (c->disabled)
        return;
    while (rel[0] == '/')
        rel++;
    if (c->n_scanned == MAX_SCANNED) {
        c->scanned_overflow = true;
        return;
    }
    c->scanned[c->n_scanned++] = kiln_xstrdup(rel);
}

/* ------------------------------------------------------------- saving */

typedef struct dir_file {
    char name[80];
    int64_t mtime;
    uint64_t size;
} dir_file_t;

static int by_mtime(const void *a, const void *b)
{
    const dir_file_t *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Whether name is a context file's: 64 hex digits and ".sc". */
static bool context_file(const char *name)
{
    return strlen(name) == 67 && strspn(name, "0123456789abcdef") == 64 &&
           strcmp(name + 64, ".sc") == 0;
}

/* Deletes stale temp files, then the least recently used context files
 * (this cache's own last) while the directory holds more than the cap. */
static void evict(kiln_statcache_t *c)
{
    int dfd = openat(c->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    dir_file_t *files = NULL, own = {{0}};
    size_t n = 0, alloc = 0;
    uint64_t total = 0;
    bool have_own = false;
    time_t now = time(NULL);
    struct dirent *de;

    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    while ((de = readdir(d)) != NULL && n < MAX_DIR_FILES) {
        struct stat sb;
        if (fstatat(c->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
            continue;
        if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            if (now - sb.st_mtime > TMP_STALE_S)
                (void)unlinkat(c->dirfd, de->d_name, 0);
            continue;
        }
        if (!context_file(de->d_name))
            continue;
        total += (uint64_t)sb.st_size;
        if (strcmp(de->d_name, c->name) == 0) {
            snprintf(own.name, sizeof(own.name), "%s", de->d_name);
            own.size = (uint64_t)sb.st_size;
            have_own = true;
            continue;
        }
        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            files = kiln_xrealloc(files, alloc * sizeof(*files));
        }
        snprintf(files[n].name, sizeof(files[n].name), "%s", de->d_name);
        files[n].mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        files[n].size = (uint64_t)sb.st_size;
        n++;
    }
    if (n > 1)
        qsort(files, n, sizeof(*files), by_mtime);
    for (size_t i = 0; i < n && total > c->max_bytes; i++) {
        if (unlinkat(c->dirfd, files[i].name, 0) == 0 || errno == ENOENT) {
            total -= files[i].size;
            c->st.evicted++;
        }
    }
    if (have_own && total > c->max_bytes && unlinkat(c->dirfd, own.name, 0) == 0)
        c->st.evicted++; /* larger than the cap on its own: not kept */
    free(files);
}

int kiln_statcache_save(kiln_statcache_t *c, kiln_error_t *err)
{
    _cleanup_free_ unsigned char *data = NULL;
    _cleanup_close_ int fd = -1;
    char tmp[40];
    uint64_t r[2], dropped = 0;
    size_t len;

    if (c->disabled)
        return 0;
    for (size_t i = 0; i < c->n; i++)
        dropped += vanished(c, &c->e[i]);
    c->st.dropped = dropped;
    if (!c->dirty && dropped == 0)
        return 0;
    data = serialize(c, &len);
    random_key(r);
    snprintf(tmp, sizeof(tmp), TMP_PREFIX "%016llx", (unsigned long long)(r[0] ^ r[1]));
    fd = openat(c->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return kiln_error_set(err, errno, "create a temp file in %s", c->dir);
    /* no fsync: a file torn by a crash fails its checksum and is only hashed again */
    if (kiln_fs_write_all(fd, data, len, err) < 0) {
        (void)unlinkat(c->dirfd, tmp, 0);
        return kiln_error_prefix(err, "saving the stat cache %s/%s", c->dir, c->name);
    }
    if (close(steal_fd(&fd)) < 0 || renameat(c->dirfd, tmp, c->dirfd, c->name) < 0) {
        int e = errno;
        (void)unlinkat(c->dirfd, tmp, 0);
        return kiln_error_set(err, e, "saving the stat cache %s/%s", c->dir, c->name);
    }
    c->dirty = false;
    evict(c);
    return 0;
}

void kiln_statcache_stats(const kiln_statcache_t *c, kiln_statcache_stats_t *out)
{
    *out = c->st;
}

void kiln_statcache_free(kiln_statcache_t *c)
{
    if (c == NULL)
        return;
    clear_entries(c);
    for (size_t i = 0; i < c->n_scanned; i++)
        free(c->scanned[i]);
    free(c->e);
    free(c->slots);
    free(c->buf);
    free(c->dir);
    free(c->id);
    free(c->name);
    if (c->dirfd >= 0)
        close(c->dirfd);
    free(c);
}

int kiln_statcache_check(const void *data, size_t len, const char *context_id, size_t *entries,
                         kiln_error_t *err)
{
    kiln_statcache_t *c = new_cache(context_id ? context_id : "");
    char *copy = kiln_xzalloc(len + 1);
    int r;

    memcpy(copy, data, len);
    r = parse(c, copy, len, c->id, err);
    if (r == 0 && entries)
        *entries = c->n;
    kiln_statcache_free(c);
    free(copy);
    return r;
}

int kiln_statcache_parse_max(const char *s, int64_t *out, kiln_error_t *err)
{
    uint64_t v;
    if (kiln_size_parse(s, &v, err) < 0 || v > (uint64_t)INT64_MAX)
        return kiln_error_set(err, EINVAL,
                              "stat cache cap '%.40s': want a size (e.g. 256m, 0 = none)", s);
    *out = v == 0 ? -1 : (int64_t)v;
    return 0;
}
