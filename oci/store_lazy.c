/* kiln — lazy blobs (see store_lazy.h): the records under <root>/lazy and the fetch that
 * kiln_store_open_blob falls back to. */
#include "oci/store_lazy.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/store_impl.h"
#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define RECORD_MAX 8192

static kiln_store_fetch_fn fetcher;
/* A registry source's fetch pulls its whole image (every lazy layer of it at once): one at a
 * time per process, so that the readers of its other layers wait for it instead of pulling
 * it again. Other fetches (an S3 cache's, one blob each) run in parallel: the layers a stage
 * unpacks at once download at once. */
static pthread_mutex_t fetch_mu = PTHREAD_MUTEX_INITIALIZER;

void kiln_store_set_fetcher(kiln_store_fetch_fn fn)
{
    fetcher = fn;
}

void kiln_store_set_fetch_policy(kiln_store_t *s, const kiln_netpolicy_t *p)
{
    kiln_netpolicy_free(s->fetch_policy);
    s->fetch_policy = p ? kiln_netpolicy_dup(p) : NULL;
}

const kiln_netpolicy_t *kiln_store_fetch_policy(const kiln_store_t *s)
{
    return s->fetch_policy;
}

/* The directory the handle's records go to: the namespace's, or <root>/lazy, made and opened
 * once per handle (a fully cached build records a dozen blobs, each a mkdir -p and an open
 * before). The fd is the store's, not the caller's. */
static int lazy_dir(kiln_store_t *s, kiln_error_t *err)
{
    int fd = __atomic_load_n(&s->lazy_fd, __ATOMIC_ACQUIRE), old = -1;
    if (s->ns != NULL)
        return s->ns_lazy_fd;
    if (fd >= 0)
        return fd;
    if ((fd = kiln_store_open_subdir(kiln_store_root(s), "lazy", err)) < 0)
        return -1;
    if (!__atomic_compare_exchange_n(&s->lazy_fd, &old, fd, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        close(fd); /* another thread's came first */
        return old;
    }
    return fd;
}

/* Opens the directory of namespace ns's cache of kind under root (made and checked by
 * utils/cachens): the fd or -1 with err. */
static int ns_dir(const char *root, const char *ns, kiln_cachens_kind_t kind, kiln_error_t *err)
{
    _cleanup_free_ char *path = NULL;
    int fd;
    if (kiln_cachens_path(root, ns, kind, &path, err) < 0)
        return -1;
    /* checked link-free by kiln_cachens_path; only kiln writes there */
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? kiln_error_set(err, errno, "open %s", path) : fd;
}

int kiln_store_set_namespace(kiln_store_t *s, const char *ns, kiln_error_t *err)
{
    _cleanup_close_ int lazy = -1, blobs = -1;
    if (ns == NULL || (s->ns != NULL && strcmp(s->ns, ns) == 0))
        return 0;
    if (s->ns != NULL)
        return kiln_error_set(err, EINVAL, "blob store %s: used for namespace %s already, not %s",
                              s->root, s->ns, ns);
    if ((lazy = ns_dir(s->root, ns, KILN_CACHENS_LAZY, err)) < 0 ||
        (blobs = ns_dir(s->root, ns, KILN_CACHENS_BLOBS, err)) < 0)
        return -1;
    s->ns_lazy_fd = steal_fd(&lazy);
    s->ns_blobs_fd = steal_fd(&blobs);
    s->ns = kiln_xstrdup(ns);
    return 0;
}

const char *kiln_store_namespace(const kiln_store_t *s)
{
    return s->ns;
}

bool kiln_store_ns_knows(kiln_store_t *s, const kiln_digest_t *d)
{
    if (s->ns == NULL)
        return true;
    /* a use keeps the mark fresh for gc */
    return utimensat(s->ns_blobs_fd, d->hex, NULL, AT_SYMLINK_NOFOLLOW) == 0;
}

void kiln_store_ns_note(kiln_store_t *s, const kiln_digest_t *d)
{
    int fd;
    if (s->ns == NULL)
        return;
    fd = openat(s->ns_blobs_fd, d->hex, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    (void)utimensat(s->ns_blobs_fd, d->hex, NULL, AT_SYMLINK_NOFOLLOW);
}

/* Whether the bytes of d are here for the store's namespace: in the root (and, with a
 * namespace, fetched or built by it) or in an additional store (the operator's, for every
 * namespace). */
static bool usable(kiln_store_t *s, const kiln_digest_t *d)
{
    return kiln_store_has(s, d, NULL) == 1 &&
           (kiln_store_ns_knows(s, d) || kiln_store_in_additional(s, d));
}

/* Writes the record with no fsync, neither of it nor of <root>/lazy: a record can be lost in
 * a crash, never be wrong, and is made again by the next build that names the blob, so a
 * fully cached build on a fresh root pays no sync for it (it was 5-11 fsyncs, the first of
 * them committing the whole new root's metadata: most of what separated it from a warm root).
 * After a crash the record is (1) the one written: complete, since it is renamed into place
 * whole; (2) absent, or an older record of the same blob; or (3) empty or cut short (the
 * rename reached the disk before the bytes). A cut record never parses: its JSON object's
 * closing brace is its last byte, and kiln_store_lazy_get refuses it as not readable. So the
 * blob is either not lazy, lazy from a source that served it before, or unreadable; and
 * whatever a record names, the fetch goes through the store writer with the blob's digest and
 * size, so no record can put other bytes under a digest. A step cache entry whose layer is
 * neither in the store nor readably lazy is a miss (engine/cache), so the next build runs
 * the step or imports the entry again and records the blob anew (the layer cache's import,
 * the FROM's kiln_remote_base_join); an image ref that names such a blob fails the command
 * that needs its bytes (push, save, an export) naming the blob, and the rebuild of the same
 * commit records it again. */
int kiln_store_lazy_note(kiln_store_t *s, const kiln_digest_t *d, uint64_t size, uint64_t usize,
                         const char *source, const char *via, kiln_error_t *err)
{
    int dfd;
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *text = NULL;
    char tmp[KILN_DIGEST_STR_MAX + 24];
    json_t *j, *v = NULL;
    if (usable(s, d))
        return 0;
    if (strlen(source) >= KILN_STORE_LAZY_SOURCE_MAX)
        return kiln_error_set(err, E2BIG, "blob sha256:%s: source too long", d->hex);
    /* json_is_object evaluates its argument twice: load first, then test */
    if (via != NULL && strlen(via) < KILN_STORE_LAZY_VIA_MAX)
        v = json_loads(via, 0, NULL);
    if (via != NULL && !json_is_object(v)) {
        json_decref(v);
        return kiln_error_set(err, E2BIG, "blob sha256:%s: registry settings not recordable",
                              d->hex);
    }
    if ((dfd = lazy_dir(s, err)) < 0) {
        json_decref(v);
        return -1;
    }
    j = json_pack("{sIsIss}", "size", (json_int_t)size, "usize", (json_int_t)usize, "source",
                  source);
    if (v != NULL)
        json_object_set_new(j, "registry", v);
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d", d->hex, (int)getpid());
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return kiln_error_set(err, errno, "recording lazy blob sha256:%s", d->hex);
    if (kiln_fs_write_all(fd, text, strlen(text), err) < 0 || renameat(dfd, tmp, dfd, d->hex) < 0) {
        int e = errno;
        unlinkat(dfd, tmp, 0);
        return kiln_error_set(err, e, "recording lazy blob sha256:%s", d->hex);
    }
    return 0;
}

int kiln_store_lazy_parse(const char *body, size_t len, kiln_store_lazy_t *out)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *src = json_object_get(j, "source"), *size = json_object_get(j, "size");
    json_t *usize = json_object_get(j, "usize"), *reg = json_object_get(j, "registry");
    _cleanup_free_ char *via = json_is_object(reg) ? json_dumps(reg, JSON_COMPACT) : NULL;
    int ok = json_is_string(src) && json_is_integer(size) && json_integer_value(size) > 0 &&
             strlen(json_string_value(src)) < sizeof(out->source) &&
             (usize == NULL || (json_is_integer(usize) && json_integer_value(usize) >= 0)) &&
             (reg == NULL || (via != NULL && strlen(via) < sizeof(out->via)));
    if (ok) {
        out->size = (uint64_t)json_integer_value(size);
        out->usize = (uint64_t)json_integer_value(usize);
        snprintf(out->source, sizeof(out->source), "%s", json_string_value(src));
        snprintf(out->via, sizeof(out->via), "%s", via ? via : "");
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* Reads the record rel under the directory fd at: 1 and *out, 0 when there is none, -1. */
static int lazy_read(int at, const char *rel, const kiln_digest_t *d, kiln_store_lazy_t *out,
                     kiln_error_t *err)
{
    _cleanup_close_ int fd = openat(at, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    if (fd < 0)
        return errno == ENOENT ? 0
                               : kiln_error_set(err, errno, "lazy blob record sha256:%s", d->hex);
    if (kiln_fs_read_fd(fd, RECORD_MAX, &body, &len, err) < 0)
        return kiln_error_prefix(err, "lazy blob record sha256:%s", d->hex);
    if (kiln_store_lazy_parse(body, len, out) < 0)
        return kiln_error_set(err, EINVAL, "lazy blob record sha256:%s is not readable", d->hex);
    return 1;
}

int kiln_store_lazy_get_at(int root_fd, const kiln_digest_t *d, kiln_store_lazy_t *out,
                           kiln_error_t *err)
{
    _cleanup_free_ char *rel = kiln_xasprintf("lazy/%s", d->hex);
    return lazy_read(root_fd, rel, d, out, err);
}

int kiln_store_lazy_get(kiln_store_t *s, const kiln_digest_t *d, kiln_store_lazy_t *out,
                        kiln_error_t *err)
{
    _cleanup_close_ int root = -1;
    if (s->ns != NULL) /* a namespace sees its own records only */
        return lazy_read(s->ns_lazy_fd, d->hex, d, out, err);
    root = open(kiln_store_root(s), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return kiln_error_set(err, errno, "blob store %s", kiln_store_root(s));
    return kiln_store_lazy_get_at(root, d, out, err);
}

/* The source's registry image NAME after prefix (KILN_STORE_LAZY_REGISTRY[_INSECURE]), or
 * NULL when the source does not start with it. */
static const char *after_prefix(const char *source, const char *prefix)
{
    return strncmp(source, prefix, strlen(prefix)) == 0 ? source + strlen(prefix) : NULL;
}

/* Whether the source is a registry's (its fetch pulls a whole image). */
static bool registry_source(const char *source)
{
    return after_prefix(source, KILN_STORE_LAZY_REGISTRY) != NULL ||
           after_prefix(source, KILN_STORE_LAZY_REGISTRY_INSECURE) != NULL;
}

int kiln_store_lazy_source_name(const char *source, char *name, size_t len)
{
    const char *src = after_prefix(source, KILN_STORE_LAZY_REGISTRY);
    if (src == NULL)
        src = after_prefix(source, KILN_STORE_LAZY_REGISTRY_INSECURE);
    const char *at = src ? strchr(src, '@') : NULL;
    if (at == NULL || (size_t)(at - src) >= len)
        return 0;
    snprintf(name, len, "%.*s", (int)(at - src), src);
    return 1;
}

int kiln_store_lazy_pending(kiln_store_t *s, const kiln_digest_t *d, kiln_store_lazy_t *out)
{
    return !usable(s, d) && kiln_store_lazy_get(s, d, out, NULL) == 1;
}

int kiln_store_lazy_registry_name(kiln_store_t *s, const kiln_digest_t *d, char *name, size_t len)
{
    kiln_store_lazy_t l;
    if (usable(s, d) || kiln_store_lazy_get(s, d, &l, NULL) != 1)
        return 0;
    return kiln_store_lazy_source_name(l.source, name, len);
}

/* Fetches lazy blob d (record l) unless it became usable meanwhile, then notes it as the
 * namespace's: 1, or -1 with err naming the blob and its source. */
static int fetch(kiln_store_t *s, const kiln_digest_t *d, const kiln_store_lazy_t *l,
                 kiln_error_t *err)
{
    bool whole = registry_source(l->source);
    int r;
    if (fetcher == NULL)
        return kiln_error_set(err, ENOENT,
                              "blob sha256:%s is not in store %s yet (a lazy blob of %s: kiln "
                              "build, push, save and run fetch it when they need it)",
                              d->hex, kiln_store_root(s), l->source);
    if (whole)
        pthread_mutex_lock(&fetch_mu);
    r = usable(s, d) ? 0 : fetcher(s, d, l, err);
    if (r == 0)
        kiln_store_ns_note(s, d);
    if (whole)
        pthread_mutex_unlock(&fetch_mu);
    if (r < 0)
        return kiln_error_prefix(err, "fetching lazy blob sha256:%s from %s", d->hex, l->source);
    return 1;
}

int kiln_store_lazy_fetch(kiln_store_t *s, const kiln_digest_t *d, kiln_error_t *err)
{
    kiln_store_lazy_t l;
    int r = kiln_store_lazy_get(s, d, &l, err);
    return r <= 0 ? r : fetch(s, d, &l, err);
}

int kiln_store_lazy_prove(kiln_store_t *s, const kiln_digest_t *d, kiln_error_t *err)
{
    kiln_store_lazy_t l;
    int r;
    /* not here at all: kiln_store_open_blob's fallback fetches it */
    if (s->ns == NULL || kiln_store_has(s, d, NULL) != 1 || usable(s, d))
        return 0;
    r = kiln_store_lazy_get(s, d, &l, err);
    return r <= 0 ? r : fetch(s, d, &l, err);
}
