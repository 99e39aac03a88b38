/* kiln — stat cache for content hashes of context files. */
#include "src/build/statcache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* The file is small text; refuse absurd sizes rather than load them. */
#define STATCACHE_MAX (256u << 20)
#define STATCACHE_MAGIC "kiln-statcache-v1\n"

typedef struct entry {
    char *path;
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns;
    kiln_digest_t digest;
} entry_t;

struct kiln_statcache {
    char *file;
    entry_t *e;
    size_t n, alloc;
    bool sorted; /* e[] sorted by path (entries appended since are unsorted) */
    size_t n_sorted;
    bool dirty;
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->path, ((const entry_t *)b)->path);
}

static void add_entry(kiln_statcache_t *c, const entry_t *e)
{
    if (c->n == c->alloc) {
        c->alloc = c->alloc ? c->alloc * 2 : 1024;
        c->e = kiln_xrealloc(c->e, c->alloc * sizeof(entry_t));
    }
    c->e[c->n++] = *e;
}

/* One line: "<hex> <dev> <ino> <size> <mtime_ns> <ctime_ns> <path>". */
static bool parse_line(char *line, entry_t *e)
{
    char hex[65];
    int used = 0;
    if (sscanf(line, "%64s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNd64 " %" SCNd64 " %n", hex,
               &e->dev, &e->ino, &e->size, &e->mtime_ns, &e->ctime_ns, &used) != 6 ||
        used <= 0 || line[used] == '\0')
        return false;
    if (kiln_digest_parse_hex(hex, &e->digest, NULL) < 0)
        return false;
    e->path = kiln_xstrdup(line + used);
    return true;
}

void kiln_statcache_open(const char *path, kiln_statcache_t **out)
{
    kiln_statcache_t *c = kiln_xzalloc(sizeof(*c));
    _cleanup_free_ char *text = NULL;
    size_t len = 0;

    c->file = kiln_xstrdup(path);
    if (kiln_fs_read_file(path, STATCACHE_MAX, &text, &len, NULL) == 0 &&
        strncmp(text, STATCACHE_MAGIC, strlen(STATCACHE_MAGIC)) == 0) {
        char *save = NULL;
        for (char *l = strtok_r(text + strlen(STATCACHE_MAGIC), "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
            entry_t e = {0};
            if (parse_line(l, &e))
                add_entry(c, &e);
        }
    }
    if (c->n > 1) /* qsort and bsearch want a non-NULL array */
        qsort(c->e, c->n, sizeof(entry_t), cmp_entry);
    c->n_sorted = c->n;
    *out = c;
}

static entry_t *find(kiln_statcache_t *c, const char *path)
{
    entry_t key = {.path = (char *)path};
    entry_t *hit =
        c->n_sorted ? bsearch(&key, c->e, c->n_sorted, sizeof(entry_t), cmp_entry) : NULL;
    if (hit)
        return hit;
    for (size_t i = c->n_sorted; i < c->n; i++)
        if (strcmp(c->e[i].path, path) == 0)
            return &c->e[i];
    return NULL;
}

static int64_t ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

int kiln_statcache_hash(kiln_statcache_t *c, const char *path, int fd, const struct stat *st,
                        kiln_digest_t *out, kiln_error_t *err)
{
    entry_t *e = find(c, path);
    uint64_t size = 0;

    if (e && e->dev == (uint64_t)st->st_dev && e->ino == (uint64_t)st->st_ino &&
        e->size == (uint64_t)st->st_size && e->mtime_ns == ns(&st->st_mtim) &&
        e->ctime_ns == ns(&st->st_ctim)) {
        *out = e->digest;
        return 0;
    }
    if (kiln_digest_fd(fd, out, &size, err) < 0)
        return kiln_error_prefix(err, "hashing %s", path);
    if (e == NULL) {
        entry_t ne = {.path = kiln_xstrdup(path)};
        add_entry(c, &ne);
        e = &c->e[c->n - 1];
    }
    e->dev = (uint64_t)st->st_dev;
    e->ino = (uint64_t)st->st_ino;
    e->size = (uint64_t)st->st_size;
    e->mtime_ns = ns(&st->st_mtim);
    e->ctime_ns = ns(&st->st_ctim);
    e->digest = *out;
    c->dirty = true;
    return 0;
}

int kiln_statcache_save(kiln_statcache_t *c, kiln_error_t *err)
{
    kiln_buf_t b;
    int r;
    if (!c->dirty)
        return 0;
    kiln_buf_init(&b, STATCACHE_MAX);
    if (kiln_buf_append(&b, STATCACHE_MAGIC, strlen(STATCACHE_MAGIC), err) < 0)
        goto fail;
    for (size_t i = 0; i < c->n; i++) {
        char ds[KILN_DIGEST_STR_MAX];
        const entry_t *e = &c->e[i];
        if (strchr(e->path, '\n') != NULL)
            continue; /* cannot be stored in this format: simply not cached */
        kiln_digest_str(&e->digest, ds);
        if (kiln_buf_appendf(&b, err,
                             "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64 " %s\n",
                             strchr(ds, ':') + 1, e->dev, e->ino, e->size, e->mtime_ns, e->ctime_ns,
                             e->path) < 0)
            goto fail;
    }
    r = kiln_fs_write_file_atomic(c->file, b.data, b.len, 0600, err);
    kiln_buf_free(&b);
    if (r == 0)
        c->dirty = false;
    return r;
fail:
    kiln_buf_free(&b);
    return kiln_error_prefix(err, "saving %s", c->file);
}

void kiln_statcache_free(kiln_statcache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->e[i].path);
    free(c->e);
    free(c->file);
    free(c);
}
