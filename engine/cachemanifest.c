/* kiln — a remote cache mount's manifest: codec, scan, eviction, diff and restore
 * (see cachemanifest.h). */
#include "engine/cachemanifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/pathres.h"
#include "utils/workers.h"

#define READ_CHUNK (1u << 20)
#define SEGS_MAX 4096 /* ranges of one file: a 64 GiB file at most */

static void entry_clear(kiln_cm_entry_t *x)
{
    free(x->path);
    free(x->link);
    free(x->segs);
    memset(x, 0, sizeof(*x));
}

void kiln_cm_clear(kiln_cm_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        entry_clear(&m->e[i]);
    free(m->e);
    free(m->blobs);
    memset(m, 0, sizeof(*m));
}

static kiln_cm_entry_t *add_entry(kiln_cm_t *m)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->e = kiln_xrealloc(m->e, m->cap * sizeof(*m->e));
    }
    memset(&m->e[m->n], 0, sizeof(*m->e));
    return &m->e[m->n++];
}

uint32_t kiln_cm_add_blob(kiln_cm_t *m, const kiln_digest_t *d, uint64_t size)
{
    for (size_t i = m->nb; i-- > 0;)
        if (kiln_digest_equal(&m->blobs[i].digest, d))
            return (uint32_t)i;
    if (m->nb == m->capb) {
        m->capb = m->capb ? m->capb * 2 : 16;
        m->blobs = kiln_xrealloc(m->blobs, m->capb * sizeof(*m->blobs));
    }
    m->blobs[m->nb].digest = *d;
    m->blobs[m->nb].size = size;
    return (uint32_t)m->nb++;
}

void kiln_cm_add_seg(kiln_cm_t *m, size_t i, uint32_t blob, uint64_t off, uint64_t len)
{
    kiln_cm_entry_t *x = &m->e[i];
    x->segs = kiln_xrealloc(x->segs, (x->n_segs + 1) * sizeof(*x->segs));
    x->segs[x->n_segs++] = (kiln_cm_seg_t){blob, off, len};
}

uint64_t kiln_cm_total(const kiln_cm_t *m)
{
    uint64_t t = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].type == 'f')
            t += m->e[i].size;
    return t;
}

/* ---- codec */

char *kiln_cm_encode(const kiln_cm_t *m, size_t *len)
{
    json_t *root = json_object(), *blobs = json_array(), *entries = json_array();
    char *out;
    json_object_set_new(root, "kiln.cachemount.v1", json_integer(1));
    for (size_t i = 0; i < m->nb; i++) {
        char ds[KILN_DIGEST_STR_MAX];
        json_array_append_new(blobs, json_pack("[sI]", kiln_digest_str(&m->blobs[i].digest, ds),
                                               (json_int_t)m->blobs[i].size));
    }
    for (size_t i = 0; i < m->n; i++) {
        const kiln_cm_entry_t *x = &m->e[i];
        char t[2] = {x->type, 0};
        json_t *j =
            json_pack("{sssssIsIsIsI}", "p", x->path, "t", t, "m", (json_int_t)x->mode, "u",
                      (json_int_t)x->uid, "g", (json_int_t)x->gid, "mt", (json_int_t)x->mtime);
        if (x->type == 'f') {
            char ds[KILN_DIGEST_STR_MAX];
            json_t *c = json_array();
            json_object_set_new(j, "s", json_integer((json_int_t)x->size));
            json_object_set_new(j, "h", json_string(kiln_digest_str(&x->hash, ds)));
            for (size_t k = 0; k < x->n_segs; k++)
                json_array_append_new(c, json_pack("[III]", (json_int_t)x->segs[k].blob,
                                                   (json_int_t)x->segs[k].off,
                                                   (json_int_t)x->segs[k].len));
            json_object_set_new(j, "c", c);
        } else if (x->type == 'l') {
            json_object_set_new(j, "l", json_string(x->link));
        }
        json_array_append_new(entries, j);
    }
    json_object_set_new(root, "blobs", blobs);
    json_object_set_new(root, "entries", entries);
    out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    *len = strlen(out);
    return out;
}

int kiln_cm_check_path(const char *path, kiln_error_t *err)
{
    size_t n = strlen(path);
    const char *p = path;
    if (n == 0 || n > KILN_CM_PATH_MAX)
        return kiln_error_set(err, 0, "path of %zu bytes", n);
    if (path[0] == '/')
        return kiln_error_set(err, 0, "path %.200s is absolute", path);
    while (*p) {
        size_t c = strcspn(p, "/");
        if (c == 0 || (c == 1 && p[0] == '.') || (c == 2 && p[0] == '.' && p[1] == '.'))
            return kiln_error_set(err, 0, "path %.200s has a%s component", path,
                                  c == 0   ? "n empty"
                                  : c == 1 ? " \".\""
                                           : " \"..\"");
        p += c;
        if (*p == '/' && *++p == '\0')
            return kiln_error_set(err, 0, "path %.200s ends in /", path);
    }
    return 0;
}

/* A non-negative integer member of at most max, or -1. */
static int64_t get_uint(json_t *o, const char *key, uint64_t max)
{
    json_t *v = json_object_get(o, key);
    json_int_t x;
    if (!json_is_integer(v))
        return -1;
    x = json_integer_value(v);
    return x < 0 || (uint64_t)x > max ? -1 : (int64_t)x;
}

static int decode_entry(json_t *j, kiln_cm_t *m, uint64_t *total, uint64_t max_size,
                        kiln_error_t *err)
{
    const char *p = json_string_value(json_object_get(j, "p"));
    const char *t = json_string_value(json_object_get(j, "t"));
    int64_t mode = get_uint(j, "m", 07777), uid = get_uint(j, "u", 0xfffffffeu),
            gid = get_uint(j, "g", 0xfffffffeu);
    json_t *mt = json_object_get(j, "mt");
    kiln_cm_entry_t *x;
    if (p == NULL)
        return kiln_error_set(err, 0, "an entry has no path");
    if (kiln_cm_check_path(p, err) < 0)
        return -1;
    if (t == NULL || strlen(t) != 1 || strchr("fdl", t[0]) == NULL)
        return kiln_error_set(err, 0, "entry %.200s: type must be f, d or l", p);
    if (mode < 0 || uid < 0 || gid < 0 || !json_is_integer(mt))
        return kiln_error_set(err, 0, "entry %.200s: bad mode, owner or time", p);
    if (m->n >= KILN_CM_ENTRIES_MAX)
        return kiln_error_set(err, 0, "more than %d entries", KILN_CM_ENTRIES_MAX);
    x = add_entry(m);
    x->path = kiln_xstrdup(p);
    x->type = t[0];
    x->mode = (uint32_t)mode;
    x->uid = (uint32_t)uid;
    x->gid = (uint32_t)gid;
    x->mtime = json_integer_value(mt);
    if (x->type == 'l') {
        const char *l = json_string_value(json_object_get(j, "l"));
        if (l == NULL || l[0] == '\0' || strlen(l) > KILN_CM_PATH_MAX)
            return kiln_error_set(err, 0, "link %.200s: bad target", p);
        x->link = kiln_xstrdup(l);
    } else if (x->type == 'f') {
        int64_t size = get_uint(j, "s", max_size);
        const char *h = json_string_value(json_object_get(j, "h"));
        json_t *c = json_object_get(j, "c"), *seg;
        uint64_t sum = 0;
        size_t k;
        if (size < 0 || *total + (uint64_t)size > max_size)
            return kiln_error_set(err, EFBIG,
                                  "file %.200s: the files total more than the cache's max-size "
                                  "of %llu bytes",
                                  p, (unsigned long long)max_size);
        *total += (uint64_t)size;
        x->size = (uint64_t)size;
        if (h == NULL || kiln_digest_parse(h, &x->hash, NULL) < 0)
            return kiln_error_set(err, 0, "file %.200s: bad hash", p);
        if (!json_is_array(c) || json_array_size(c) > SEGS_MAX)
            return kiln_error_set(err, 0, "file %.200s: bad ranges", p);
        json_array_foreach(c, k, seg)
        {
            json_int_t b = json_integer_value(json_array_get(seg, 0)),
                       o = json_integer_value(json_array_get(seg, 1)),
                       n = json_integer_value(json_array_get(seg, 2));
            if (json_array_size(seg) != 3 || b < 0 || (size_t)b >= m->nb || o < 0 || n <= 0 ||
                (uint64_t)o > m->blobs[b].size || (uint64_t)n > m->blobs[b].size - (uint64_t)o)
                return kiln_error_set(err, 0, "file %.200s: range %zu is outside its blob", p, k);
            sum += (uint64_t)n;
            kiln_cm_add_seg(m, m->n - 1, (uint32_t)b, (uint64_t)o, (uint64_t)n);
        }
        if (sum != x->size)
            return kiln_error_set(err, 0, "file %.200s: its ranges make %llu bytes, not %llu", p,
                                  (unsigned long long)sum, (unsigned long long)x->size);
    }
    return 0;
}

int kiln_cm_decode(const char *buf, size_t len, uint64_t max_size, const char *what, kiln_cm_t *out,
                   kiln_error_t *err)
{
    json_t *root, *blobs, *entries, *v;
    json_error_t je;
    kiln_cm_t m = {0};
    uint64_t total = 0;
    size_t i;
    int ret = -1;
    if (len > KILN_CM_MANIFEST_MAX)
        return kiln_error_set(err, 0, "%s: manifest of %zu bytes is larger than %u", what, len,
                              KILN_CM_MANIFEST_MAX);
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return kiln_error_set(err, 0, "%s: manifest is not JSON: %s", what, je.text);
    blobs = json_object_get(root, "blobs");
    entries = json_object_get(root, "entries");
    if (json_integer_value(json_object_get(root, "kiln.cachemount.v1")) != 1 ||
        !json_is_array(blobs) || !json_is_array(entries)) {
        kiln_error_set(err, 0, "%s: not a kiln cache mount manifest (v1)", what);
        goto out;
    }
    json_array_foreach(blobs, i, v)
    {
        kiln_digest_t d;
        const char *ds = json_string_value(json_array_get(v, 0));
        json_int_t sz = json_integer_value(json_array_get(v, 1));
        if (ds == NULL || kiln_digest_parse(ds, &d, NULL) < 0 || sz <= 0 ||
            (uint64_t)sz > KILN_CM_PACK_MAX || i >= KILN_CM_ENTRIES_MAX) {
            kiln_error_set(err, 0, "%s: blob %zu is not [digest, size <= %u]", what, i,
                           KILN_CM_PACK_MAX);
            goto out;
        }
        if (kiln_cm_add_blob(&m, &d, (uint64_t)sz) != m.nb - 1) {
            kiln_error_set(err, 0, "%s: blob %zu is listed twice", what, i);
            goto out;
        }
    }
    json_array_foreach(entries, i, v)
    {
        if (decode_entry(v, &m, &total, max_size, err) < 0) {
            kiln_error_prefix(err, "%s", what);
            goto out;
        }
    }
    *out = m;
    memset(&m, 0, sizeof(m));
    ret = 0;
out:
    kiln_cm_clear(&m);
    json_decref(root);
    return ret;
}

/* ---- scan */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int hash_file(int fd, kiln_digest_t *out, kiln_error_t *err)
{
    kiln_sha256_t h;
    _cleanup_free_ char *buf = kiln_xmalloc(READ_CHUNK);
    if (kiln_sha256_init(&h, err) < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            kiln_sha256_dispose(&h);
            return kiln_error_set(err, errno, "read");
        }
        if (n == 0)
            break;
        kiln_sha256_update(&h, buf, (size_t)n);
    }
    kiln_sha256_final(&h, out);
    return 0;
}

static int64_t ns_of(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The entry of known at path, or NULL (known is sorted by path). */
static const kiln_cm_entry_t *find_known(const kiln_cm_t *known, const char *path)
{
    size_t lo = 0, hi = known ? known->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(known->e[mid].path, path);
        if (c == 0)
            return &known->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int scan_dir(int dfd, const char *rel, int depth, const kiln_cm_t *known, kiln_cm_t *m,
                    kiln_error_t *err)
{
    _cleanup_closedir_ DIR *d = NULL;
    struct dirent *de;
    char **names = NULL;
    size_t nn = 0;
    int ret = -1, dup = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (depth > KILN_CM_DEPTH_MAX)
        return kiln_error_set(err, 0, "%s: more than %d levels deep", rel, KILN_CM_DEPTH_MAX);
    if (dup < 0 || (d = fdopendir(dup)) == NULL) {
        if (dup >= 0)
            close(dup);
        return kiln_error_set(err, errno, "open %s", rel[0] ? rel : ".");
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (nn >= KILN_CM_ENTRIES_MAX)
            break;
        names = kiln_xrealloc(names, (nn + 1) * sizeof(*names));
        names[nn++] = kiln_xstrdup(de->d_name);
    }
    if (nn > 1)
        qsort(names, nn, sizeof(*names), cmp_name);
    for (size_t i = 0; i < nn; i++) {
        struct stat sb;
        _cleanup_free_ char *path =
            rel[0] ? kiln_xasprintf("%s/%s", rel, names[i]) : kiln_xstrdup(names[i]);
        kiln_cm_entry_t *x;
        if (fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* removed while listed */
            kiln_error_set(err, errno, "stat %s", path);
            goto out;
        }
        if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode) && !S_ISLNK(sb.st_mode))
            continue; /* sockets, fifos, devices are not cache content */
        if (m->n >= KILN_CM_ENTRIES_MAX || strlen(path) > KILN_CM_PATH_MAX) {
            kiln_error_set(err, 0, "%s: more than %d entries or a path too long", path,
                           KILN_CM_ENTRIES_MAX);
            goto out;
        }
        x = add_entry(m);
        x->path = kiln_xstrdup(path);
        x->mode = sb.st_mode & 07777;
        x->uid = sb.st_uid;
        x->gid = sb.st_gid;
        x->mtime = sb.st_mtim.tv_sec;
        x->used = sb.st_atim.tv_sec > sb.st_mtim.tv_sec ? sb.st_atim.tv_sec : sb.st_mtim.tv_sec;
        if (S_ISLNK(sb.st_mode)) {
            char buf[KILN_CM_PATH_MAX + 1];
            ssize_t n = readlinkat(dfd, names[i], buf, sizeof(buf) - 1);
            x->type = 'l';
            if (n <= 0) {
                kiln_error_set(err, n < 0 ? errno : EINVAL, "readlink %s", path);
                goto out;
            }
            buf[n] = '\0';
            x->link = kiln_xstrdup(buf);
        } else if (S_ISREG(sb.st_mode)) {
            const kiln_cm_entry_t *k = find_known(known, path);
            _cleanup_close_ int fd = -1;
            x->type = 'f';
            x->size = (uint64_t)sb.st_size;
            x->ino = (uint64_t)sb.st_ino;
            x->mtime_ns = ns_of(sb.st_mtim);
            x->ctime_ns = ns_of(sb.st_ctim);
            if (k && k->type == 'f' && k->ino == x->ino && k->size == x->size &&
                k->mtime_ns == x->mtime_ns && k->ctime_ns == x->ctime_ns && k->ctime_ns != 0) {
                x->hash = k->hash; /* unchanged since its hash was taken */
                continue;
            }
            fd = openat(dfd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || hash_file(fd, &x->hash, err) < 0) {
                kiln_error_set(err, errno, "read %s", path);
                goto out;
            }
        } else {
            _cleanup_close_ int sub =
                openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            x->type = 'd';
            if (sub < 0) {
                kiln_error_set(err, errno, "open %s", path);
                goto out;
            }
            if (scan_dir(sub, path, depth + 1, known, m, err) < 0)
                goto out;
        }
    }
    ret = 0;
out:
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    return ret;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const kiln_cm_entry_t *)a)->path, ((const kiln_cm_entry_t *)b)->path);
}

int kiln_cm_scan(int dirfd, const kiln_cm_t *known, kiln_cm_t *out, kiln_error_t *err)
{
    kiln_cm_t m = {0};
    if (scan_dir(dirfd, "", 0, known, &m, err) < 0) {
        kiln_cm_clear(&m);
        return -1;
    }
    /* the walk is depth first: "a/b" before "a-c"; the manifest is in byte order */
    if (m.n > 1)
        qsort(m.e, m.n, sizeof(*m.e), cmp_entry);
    *out = m;
    return 0;
}

/* ---- eviction and diff */

static int cmp_used(const void *a, const void *b)
{
    const kiln_cm_entry_t *x = *(kiln_cm_entry_t *const *)a, *y = *(kiln_cm_entry_t *const *)b;
    return x->used < y->used ? -1 : x->used > y->used ? 1 : strcmp(x->path, y->path);
}

size_t kiln_cm_evict(kiln_cm_t *m, uint64_t max_size)
{
    uint64_t total = kiln_cm_total(m);
    kiln_cm_entry_t **files;
    size_t nf = 0, dropped = 0, w = 0;
    if (total <= max_size)
        return 0;
    files = kiln_xmalloc((m->n + 1) * sizeof(*files));
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].type == 'f')
            files[nf++] = &m->e[i];
    qsort(files, nf, sizeof(*files), cmp_used);
    for (size_t i = 0; i < nf && total > max_size; i++) {
        total -= files[i]->size;
        files[i]->type = 0; /* dropped */
        dropped++;
    }
    free(files);
    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].type == 0)
            entry_clear(&m->e[i]);
        else
            m->e[w++] = m->e[i];
    }
    m->n = w;
    return dropped;
}

static int cmp_hash(const void *a, const void *b)
{
    const kiln_cm_entry_t *x = *(kiln_cm_entry_t *const *)a, *y = *(kiln_cm_entry_t *const *)b;
    return memcmp(x->hash.hex, y->hash.hex, 64);
}

void kiln_cm_diff(const kiln_cm_t *old, kiln_cm_t *now, size_t **missing, size_t *n_missing)
{
    const kiln_cm_entry_t **have = kiln_xmalloc((old->n + 1) * sizeof(*have));
    size_t nh = 0;
    *missing = kiln_xmalloc((now->n + 1) * sizeof(**missing));
    *n_missing = 0;
    now->nb = 0;
    for (size_t i = 0; i < old->n; i++)
        if (old->e[i].type == 'f' && old->e[i].n_segs > 0)
            have[nh++] = &old->e[i];
    qsort(have, nh, sizeof(*have), cmp_hash);
    for (size_t i = 0; i < now->n; i++) {
        kiln_cm_entry_t *x = &now->e[i];
        const kiln_cm_entry_t *key = x, **hit;
        if (x->type != 'f' || x->size == 0)
            continue;
        hit = nh ? bsearch(&key, have, nh, sizeof(*have), cmp_hash) : NULL;
        if (hit == NULL || (*hit)->size != x->size) {
            (*missing)[(*n_missing)++] = i;
            continue;
        }
        free(x->segs);
        x->segs = NULL;
        x->n_segs = 0;
        for (size_t k = 0; k < (*hit)->n_segs; k++) {
            const kiln_cm_seg_t *s = &(*hit)->segs[k];
            uint32_t b =
                kiln_cm_add_blob(now, &old->blobs[s->blob].digest, old->blobs[s->blob].size);
            kiln_cm_add_seg(now, i, b, s->off, s->len);
        }
    }
    free(have);
}

/* ---- restore */

typedef struct restore {
    int rootfd;
    const kiln_cm_t *m;
    size_t *order; /* (entry << 20 | seg) grouped by blob: first[b] .. first[b+1] */
    size_t *first;
    kiln_cm_fetch_fn fetch;
    void *ud;
} restore_t;

/* Fetches blob b and writes every range it holds into its file (a kiln_workers_fn). */
static int restore_blob(void *ud, void *http, size_t b, kiln_error_t *err)
{
    restore_t *r = ud;
    _cleanup_free_ char *buf = NULL;
    if (r->fetch(r->ud, http, &r->m->blobs[b], &buf, err) < 0)
        return -1;
    for (size_t k = r->first[b]; k < r->first[b + 1]; k++) {
        const kiln_cm_entry_t *x = &r->m->e[r->order[k] >> 20];
        size_t si = r->order[k] & 0xfffff;
        const kiln_cm_seg_t *s = &x->segs[si];
        uint64_t at = 0;
        _cleanup_close_ int fd = kiln_pathres_openat(r->rootfd, x->path, O_WRONLY | O_NOFOLLOW);
        for (size_t j = 0; j < si; j++)
            at += x->segs[j].len;
        if (fd < 0)
            return kiln_error_set(err, errno, "open %s", x->path);
        for (uint64_t done = 0; done < s->len;) {
            ssize_t n = pwrite(fd, buf + s->off + done, s->len - done, (off_t)(at + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return kiln_error_set(err, n < 0 ? errno : EIO, "write %s", x->path);
            done += (uint64_t)n;
        }
    }
    return 0;
}

/* The directory fd of path's parent, made (mkdir -p) inside the root; *base its last name. */
static int parent_dir(int rootfd, const char *path, const char **base, kiln_error_t *err)
{
    const char *slash = strrchr(path, '/');
    _cleanup_free_ char *dir = NULL;
    int fd = -1;
    if (slash == NULL) {
        *base = path;
        fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? kiln_error_set(err, errno, "dup") : fd;
    }
    *base = slash + 1;
    dir = kiln_xstrndup(path, (size_t)(slash - path));
    /* a parent must be a real directory of the tree: a link in the way is refused (ENOTDIR
     * from the component walk; links are only made after every file is written) */
    if (kiln_pathres_mkdir_p(rootfd, dir, 0755, &fd, err) < 0)
        return -1;
    return fd;
}

static int make_entries(int rootfd, const kiln_cm_t *m, char type, kiln_error_t *err)
{
    for (size_t i = 0; i < m->n; i++) {
        const kiln_cm_entry_t *x = &m->e[i];
        const char *base;
        _cleanup_close_ int dfd = -1;
        if (x->type != type)
            continue;
        dfd = parent_dir(rootfd, x->path, &base, err);
        if (dfd < 0)
            return kiln_error_prefix(err, "%s", x->path);
        if (type == 'd') {
            if (mkdirat(dfd, base, 0700) < 0 && errno != EEXIST)
                return kiln_error_set(err, errno, "mkdir %s", x->path);
        } else if (type == 'f') {
            _cleanup_close_ int fd =
                openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0 || ftruncate(fd, (off_t)x->size) < 0)
                return kiln_error_set(err, errno, "create %s", x->path);
        } else if (symlinkat(x->link, dfd, base) < 0) {
            /* a link over a directory the manifest's files made: a path through a link */
            return kiln_error_set(err, 0, "link %s: %s", x->path,
                                  errno == EEXIST ? "other entries are under it (a path through "
                                                    "a link is refused)"
                                                  : strerror(errno));
        }
    }
    return 0;
}

/* Owner, mode (set-id bits dropped) and time of entry x. */
static int finish_entry(int rootfd, kiln_cm_entry_t *x, bool root, kiln_error_t *err)
{
    struct timespec ts[2] = {{x->mtime, 0}, {x->mtime, 0}};
    mode_t mode = x->mode & 01777;
    if (x->type == 'l') {
        const char *slash = strrchr(x->path, '/');
        _cleanup_free_ char *dir = slash ? kiln_xstrndup(x->path, (size_t)(slash - x->path)) : NULL;
        _cleanup_close_ int dfd =
            dir ? kiln_pathres_openat(rootfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
                : fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        const char *base = slash ? slash + 1 : x->path;
        if (dfd < 0)
            return kiln_error_set(err, errno, "open %s", dir ? dir : ".");
        if (root && fchownat(dfd, base, x->uid, x->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return kiln_error_set(err, errno, "chown %s", x->path);
        (void)utimensat(dfd, base, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    {
        _cleanup_close_ int fd = kiln_pathres_openat(
            rootfd, x->path, O_RDONLY | O_NOFOLLOW | (x->type == 'd' ? O_DIRECTORY : 0));
        if (fd < 0)
            return kiln_error_set(err, errno, "open %s", x->path);
        struct stat sb;
        if (root && fchown(fd, x->uid, x->gid) < 0)
            return kiln_error_set(err, errno, "chown %s", x->path);
        if (fchmod(fd, mode) < 0 || futimens(fd, ts) < 0)
            return kiln_error_set(err, errno, "chmod %s", x->path);
        if (x->type == 'f' && fstat(fd, &sb) == 0) {
            /* the identity the hash is known for: the save's scan need not read it again */
            x->ino = (uint64_t)sb.st_ino;
            x->mtime_ns = ns_of(sb.st_mtim);
            x->ctime_ns = ns_of(sb.st_ctim);
        }
    }
    return 0;
}

/* Every entry's owner, mode and time: directories last and deepest first, so writing into
 * them does not change their times again. */
static int finish_entries(int rootfd, kiln_cm_t *m, kiln_error_t *err)
{
    bool root = geteuid() == 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].type != 'd' && finish_entry(rootfd, &m->e[i], root, err) < 0)
            return -1;
    for (size_t i = m->n; i-- > 0;)
        if (m->e[i].type == 'd' && finish_entry(rootfd, &m->e[i], root, err) < 0)
            return -1;
    return 0;
}

int kiln_cm_restore(int rootfd, kiln_cm_t *m, unsigned threads, kiln_cm_fetch_fn fetch,
                    void *(*new_http)(void), void (*free_http)(void *), void *ud, kiln_error_t *err)
{
    restore_t r = {.rootfd = rootfd, .m = m, .fetch = fetch, .ud = ud};
    size_t nseg = 0, *fill;
    int ret = -1;

    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].n_segs >= (1u << 20))
            return kiln_error_set(err, 0, "%s: too many ranges", m->e[i].path);
        nseg += m->e[i].n_segs;
    }
    if (make_entries(rootfd, m, 'd', err) < 0 || make_entries(rootfd, m, 'f', err) < 0)
        return -1;
    /* the ranges grouped by blob, so each blob is fetched once */
    r.first = kiln_xzalloc((m->nb + 2) * sizeof(*r.first));
    r.order = kiln_xmalloc((nseg + 1) * sizeof(*r.order));
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < m->e[i].n_segs; k++)
            r.first[m->e[i].segs[k].blob + 1]++;
    for (size_t b = 0; b < m->nb; b++)
        r.first[b + 1] += r.first[b];
    fill = kiln_xzalloc((m->nb + 1) * sizeof(*fill));
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < m->e[i].n_segs; k++) {
            uint32_t b = m->e[i].segs[k].blob;
            r.order[r.first[b] + fill[b]++] = (i << 20) | k;
        }
    free(fill);
    if (kiln_workers_run(m->nb, threads, restore_blob, new_http, free_http, &r, err) < 0 ||
        make_entries(rootfd, m, 'l', err) < 0 || finish_entries(rootfd, m, err) < 0)
        goto out;
    ret = 0;
out:
    free(r.first);
    free(r.order);
    return ret;
}
