/* kiln — named refs that pin blobs (see store.h): set, read (touching the last use), deleted,
 * walked, and expired by age under a prefix. A ref's file is named by the SHA-256 of its name
 * and holds the digest and the name. */
#include "oci/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "oci/store_impl.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define REF_NAME_MAX 1024

/* Checks a ref name and derives its file name (hex of its sha256). */
static int ref_file(const char *name, kiln_digest_t *file, kiln_error_t *err)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > REF_NAME_MAX)
        return kiln_error_set(err, 0, "invalid ref name: length must be 1..%d", REF_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
            return kiln_error_set(
                err, EINVAL, "invalid ref name '%.80s': only printable ASCII without spaces", name);
    }
    kiln_digest_bytes(name, n, file);
    return 0;
}

/* The ref file's name and body for name -> d. */
static int ref_body(const char *name, const kiln_digest_t *d, kiln_digest_t *file, char **body,
                    kiln_error_t *err)
{
    if (ref_file(name, file, err) < 0)
        return -1;
    *body = kiln_xasprintf("sha256:%s\n%s\n", d->hex, name);
    return 0;
}

int kiln_store_ref_set(kiln_store_t *s, const char *name, const kiln_digest_t *d, kiln_error_t *err)
{
    kiln_digest_t f;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *body = NULL;

    if (ref_body(name, d, &f, &body, err) < 0)
        return -1;
    if (kiln_store_sync(s, err) < 0)
        return kiln_error_prefix(err, "ref %s", name);
    path = kiln_xasprintf("%s/refs/%s", s->root, f.hex);
    if (kiln_fs_write_file_atomic(path, body, strlen(body), 0644, err) < 0)
        return kiln_error_prefix(err, "ref %s", name);
    return 0;
}

int kiln_store_ref_set_volatile(kiln_store_t *s, const char *name, const kiln_digest_t *d,
                                kiln_error_t *err)
{
    kiln_digest_t f;
    _cleanup_free_ char *body = NULL;
    _cleanup_close_ int fd = -1;
    char tmp[96];
    size_t len;

    if (ref_body(name, d, &f, &body, err) < 0)
        return -1;
    if (kiln_store_sync(s, err) < 0)
        return kiln_error_prefix(err, "ref %s", name);
    /* a dot name: walks skip it; the pid and a random part keep writers apart */
    snprintf(tmp, sizeof(tmp), ".%.16s-%d-%lx", f.hex, (int)getpid(), (unsigned long)random());
    fd = openat(s->refs_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return kiln_error_set(err, errno, "ref %s: create temp file", name);
    len = strlen(body);
    if (kiln_fs_write_all(fd, body, len, err) < 0 ||
        (renameat(s->refs_fd, tmp, s->refs_fd, f.hex) < 0 &&
         kiln_error_set(err, errno, "ref %s: rename into place", name) < 0)) {
        unlinkat(s->refs_fd, tmp, 0);
        return kiln_error_prefix(err, "ref %s", name);
    }
    return 0;
}

/* Reads one ref file; fills name (malloc'ed) and digest. 0 ok, <0 bad file. */
static int ref_read(int refs_fd, const char *file, char **name, kiln_digest_t *d, kiln_error_t *err)
{
    _cleanup_close_ int fd = openat(refs_fd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    _cleanup_free_ char *data = NULL;
    size_t len;
    char *nl, *nl2;

    if (fd < 0)
        return kiln_error_set(err, errno, "ref file %s", file);
    if (kiln_fs_read_fd(fd, REF_NAME_MAX + 128, &data, &len, err) < 0)
        return kiln_error_prefix(err, "ref file %s", file);
    nl = strchr(data, '\n');
    if (nl == NULL)
        return kiln_error_set(err, 0, "ref file %s: malformed", file);
    *nl = '\0';
    if (kiln_digest_parse(data, d, err) < 0)
        return kiln_error_prefix(err, "ref file %s", file);
    nl2 = strchr(nl + 1, '\n');
    if (nl2 != NULL)
        *nl2 = '\0';
    *name = kiln_xstrdup(nl + 1);
    return 0;
}

int kiln_store_ref_get(kiln_store_t *s, const char *name, kiln_digest_t *d, kiln_error_t *err)
{
    kiln_digest_t f;
    _cleanup_free_ char *stored = NULL;

    if (ref_file(name, &f, err) < 0)
        return -1;
    if (faccessat(s->refs_fd, f.hex, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (ref_read(s->refs_fd, f.hex, &stored, d, err) < 0)
        return kiln_error_prefix(err, "ref %s", name);
    /* the file's mtime is the ref's last use, which kiln_store_refs_expire ages by */
    (void)utimensat(s->refs_fd, f.hex, NULL, AT_SYMLINK_NOFOLLOW);
    return 1;
}

int kiln_store_ref_delete(kiln_store_t *s, const char *name, kiln_error_t *err)
{
    kiln_digest_t f;

    if (ref_file(name, &f, err) < 0)
        return -1;
    if (unlinkat(s->refs_fd, f.hex, 0) < 0 && errno != ENOENT)
        return kiln_error_set(err, errno, "delete ref %s", name);
    return 0;
}

/* Opens a DIR stream over (a fresh fd of) the directory fd; NULL + err on failure. */
DIR *kiln_store_opendir(int fd, const char *what, kiln_error_t *err)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir;

    if (dfd < 0) {
        kiln_error_set(err, errno, "open %s", what);
        return NULL;
    }
    dir = fdopendir(dfd);
    if (dir == NULL) {
        kiln_error_set(err, errno, "open %s", what);
        close(dfd);
    }
    return dir;
}

/* Walks the refs directory fd (not closed). */
int kiln_store_refs_walk(int refs_fd, int (*fn)(const char *name, const kiln_digest_t *d, void *ud),
                         void *ud, kiln_error_t *err)
{
    _cleanup_closedir_ DIR *dir = kiln_store_opendir(refs_fd, "refs directory", err);
    struct dirent *de;

    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        _cleanup_free_ char *name = NULL;
        kiln_digest_t d;
        int r;

        if (de->d_name[0] == '.' || strlen(de->d_name) != 64)
            continue; /* temp files of atomic writes, stray names */
        kiln_error_t rerr = {0};
        if (ref_read(refs_fd, de->d_name, &name, &d, &rerr) < 0) {
            /* gone meanwhile, or a volatile ref a crash left empty or cut: it names nothing */
            if (rerr.code == ENOENT || rerr.code == 0 || rerr.code == EINVAL)
                continue;
            if (err != NULL)
                *err = rerr;
            return -1;
        }
        r = fn(name, &d, ud);
        if (r < 0)
            return r;
    }
    return 0;
}

int kiln_store_ref_foreach(kiln_store_t *s,
                           int (*fn)(const char *name, const kiln_digest_t *d, void *ud), void *ud,
                           kiln_error_t *err)
{
    return kiln_store_refs_walk(s->refs_fd, fn, ud, err);
}

typedef struct expire_ctx {
    int refs_fd;
    const char *prefix;
    double oldest; /* refs last used before this time go */
    int dry_run;
    unsigned removed;
    kiln_error_t *err;
} expire_ctx_t;

static int expire_one(const char *name, const kiln_digest_t *d, void *ud)
{
    expire_ctx_t *x = ud;
    kiln_digest_t f;
    struct stat sb;

    (void)d;
    if (strncmp(name, x->prefix, strlen(x->prefix)) != 0 || ref_file(name, &f, NULL) < 0 ||
        fstatat(x->refs_fd, f.hex, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
        (double)sb.st_mtime >= x->oldest)
        return 0;
    if (!x->dry_run && unlinkat(x->refs_fd, f.hex, 0) < 0 && errno != ENOENT)
        return kiln_error_set(x->err, errno, "delete ref %s", name);
    x->removed++;
    return 0;
}

int kiln_store_refs_expire(kiln_store_t *s, const char *prefix, double max_age_s, int dry_run,
                           unsigned *removed, kiln_error_t *err)
{
    expire_ctx_t x = {s->refs_fd, prefix, (double)time(NULL) - max_age_s, dry_run, 0, err};

    if (kiln_store_refs_walk(s->refs_fd, expire_one, &x, err) < 0)
        return -1;
    *removed = x.removed;
    return 0;
}
