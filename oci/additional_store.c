/* kiln — reading an additional (read-only) image store: opened after its ownership and
 * permissions are checked, blobs and chain trees looked up by digest (see the header). */
#include "oci/additional_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

/* A chain's metadata: a few hundred bytes per layer. */
#define CHAIN_META_MAX (1u * 1024 * 1024)

struct kiln_astore {
    char *dir; /* canonical */
    char *empty;
    int fd;
    int blobs_fd; /* blobs/sha256 */
    int chains_fd;
};

/* Whether st (of path) can be changed by root or kiln's user only: owned by one of them and
 * not writable by group or others (a sticky directory may be, when sticky_ok: nobody can
 * rename what they do not own in it). -1 with err naming path and what would allow it. */
static int trusted(const struct stat *st, const char *path, bool sticky_ok, kiln_error_t *err)
{
    uid_t me = geteuid();

    if (st->st_uid != 0 && st->st_uid != me)
        return kiln_error_set(err, EPERM,
                              "%s is owned by uid %u, not by root or kiln's user (uid %u): an "
                              "additional store must be the operator's (chown it)",
                              path, (unsigned)st->st_uid, (unsigned)me);
    if ((st->st_mode & 022) != 0 && !(sticky_ok && S_ISDIR(st->st_mode) && (st->st_mode & 01000)))
        return kiln_error_set(err, EPERM,
                              "%s is writable by %s (mode %04o): an additional store must be "
                              "writable by its owner alone (chmod go-w %s)",
                              path, (st->st_mode & 002) ? "others" : "its group",
                              (unsigned)(st->st_mode & 07777), path);
    return 0;
}

/* Checks every directory above real (canonical), from / down. */
static int trusted_ancestors(const char *real, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xstrdup(real);
    for (char *slash = strrchr(p, '/'); slash != NULL; slash = strrchr(p, '/')) {
        struct stat st;
        if (slash == p)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (lstat(p, &st) < 0)
            return kiln_error_set(err, errno, "stat %s", p);
        if (trusted(&st, p, true, err) < 0)
            return -1;
        if (slash == p)
            break;
    }
    return 0;
}

/* Opens directory `name` under fd (no link followed) and checks it. */
static int open_dir_at(int fd, const char *dir, const char *name, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/%s", dir, name);
    _cleanup_close_ int d = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (d < 0)
        return kiln_error_set(err, errno,
                              "%s: %s is missing or not a directory (make the store with kiln "
                              "store add)",
                              dir, name);
    if (fstat(d, &st) < 0)
        return kiln_error_set(err, errno, "stat %s", path);
    if (trusted(&st, path, false, err) < 0)
        return -1;
    return steal_fd(&d);
}

/* The version marker: a regular file, trusted, holding KILN_ASTORE_VERSION. */
static int check_marker(int fd, const char *dir, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/" KILN_ASTORE_MARKER, dir);
    _cleanup_close_ int m = openat(fd, KILN_ASTORE_MARKER, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_free_ char *data = NULL;
    struct stat st;
    size_t n;

    if (m < 0)
        return kiln_error_set(err, errno,
                              "%s is not an additional store (no %s; make one with kiln store "
                              "add DIR IMAGE)",
                              dir, KILN_ASTORE_MARKER);
    if (fstat(m, &st) < 0 || !S_ISREG(st.st_mode))
        return kiln_error_set(err, EINVAL, "%s is not a regular file", path);
    if (trusted(&st, path, false, err) < 0 || kiln_fs_read_fd(m, 256, &data, &n, err) < 0)
        return -1;
    if (n != strlen(KILN_ASTORE_VERSION) || memcmp(data, KILN_ASTORE_VERSION, n) != 0)
        return kiln_error_set(err, EINVAL,
                              "%s: not a store of this kiln's version (expected \"%.*s\")", path,
                              (int)strlen(KILN_ASTORE_VERSION) - 1, KILN_ASTORE_VERSION);
    return 0;
}

/* The empty directory must stay empty: it stands for layers whose content the chain holds. */
static int check_empty(int fd, const char *path, kiln_error_t *err)
{
    int d = dup(fd);
    DIR *dp = d >= 0 ? fdopendir(d) : NULL;
    struct dirent *de;
    int ret = 0;

    if (dp == NULL) {
        if (d >= 0)
            close(d);
        return kiln_error_set(err, errno, "open %s", path);
    }
    while ((de = readdir(dp)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            ret = kiln_error_set(err, ENOTEMPTY, "%s is not empty (it holds %s)", path, de->d_name);
            break;
        }
    closedir(dp);
    return ret;
}

void kiln_astore_free(kiln_astore_t *a)
{
    if (a == NULL)
        return;
    kiln_closep(&a->fd);
    kiln_closep(&a->blobs_fd);
    kiln_closep(&a->chains_fd);
    free(a->dir);
    free(a->empty);
    free(a);
}

int kiln_astore_open(const char *dir, kiln_astore_t **out, kiln_error_t *err)
{
    _cleanup_free_ char *real = NULL;
    kiln_astore_t *a;
    struct stat st;
    int blobs = -1, empty = -1;

    if (dir == NULL || dir[0] != '/')
        return kiln_error_set(err, EINVAL, "additional store %s: must be an absolute path",
                              dir ? dir : "(null)");
    real = realpath(dir, NULL);
    if (real == NULL)
        return kiln_error_set(err, errno, "additional store %s", dir);
    a = kiln_xzalloc(sizeof(*a));
    a->fd = a->blobs_fd = a->chains_fd = -1;
    a->dir = steal_pointer(&real);
    a->empty = kiln_xasprintf("%s/empty", a->dir);
    a->fd = open(a->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (a->fd < 0) {
        kiln_error_set(err, errno, "additional store %s", a->dir);
        goto fail;
    }
    if (fstat(a->fd, &st) < 0) {
        kiln_error_set(err, errno, "stat %s", a->dir);
        goto fail;
    }
    if (trusted(&st, a->dir, false, err) < 0 || trusted_ancestors(a->dir, err) < 0 ||
        check_marker(a->fd, a->dir, err) < 0)
        goto fail;
    blobs = open_dir_at(a->fd, a->dir, "blobs", err);
    if (blobs < 0)
        goto fail;
    a->blobs_fd = open_dir_at(blobs, a->dir, "sha256", err);
    close(blobs);
    if (a->blobs_fd < 0)
        goto fail;
    a->chains_fd = open_dir_at(a->fd, a->dir, "chains", err);
    if (a->chains_fd < 0)
        goto fail;
    empty = open_dir_at(a->fd, a->dir, "empty", err);
    if (empty < 0)
        goto fail;
    if (check_empty(empty, a->empty, err) < 0) {
        close(empty);
        goto fail;
    }
    close(empty);
    *out = a;
    return 0;
fail:
    kiln_astore_free(a);
    return kiln_error_prefix(err, "additional store %s", dir);
}

const char *kiln_astore_dir(const kiln_astore_t *a)
{
    return a->dir;
}

const char *kiln_astore_empty_dir(const kiln_astore_t *a)
{
    return a->empty;
}

int kiln_astore_open_blob(const kiln_astore_t *a, const kiln_digest_t *d, int *fd, uint64_t *size,
                          kiln_error_t *err)
{
    _cleanup_close_ int f = openat(a->blobs_fd, d->hex, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (f < 0)
        return 0;
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    {
        _cleanup_free_ char *path = kiln_xasprintf("%s/blobs/sha256/%s", a->dir, d->hex);
        if (trusted(&st, path, false, err) < 0)
            return 0;
    }
    if (size != NULL)
        *size = (uint64_t)st.st_size;
    *fd = steal_fd(&f);
    return 1;
}

void kiln_astore_chain_id(const kiln_astore_layer_t *layers, size_t n, kiln_digest_t *out)
{
    /* ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)) */
    char a[KILN_DIGEST_STR_MAX], b[KILN_DIGEST_STR_MAX];
    kiln_digest_t c = layers[0].diff_id;
    for (size_t i = 1; i < n; i++) {
        _cleanup_free_ char *s =
            kiln_xasprintf("%s %s", kiln_digest_str(&c, a), kiln_digest_str(&layers[i].diff_id, b));
        kiln_digest_bytes(s, strlen(s), &c);
    }
    *out = c;
}

/* Whether the metadata json names exactly layers[0..n) as chain `id`. */
static int meta_matches(const json_t *j, const kiln_digest_t *id, const kiln_astore_layer_t *layers,
                        size_t n, const char *path, kiln_error_t *err)
{
    if (!json_is_object(j))
        return kiln_error_set(err, EINVAL, "%s is not a JSON object", path);
    const json_t *ls = json_object_get(j, "layers");
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX], ws[KILN_DIGEST_STR_MAX];

    if (kiln_digest_parse(json_string_value(json_object_get(j, "chain_id")), &d, NULL) < 0 ||
        !kiln_digest_equal(&d, id))
        return kiln_error_set(err, EINVAL, "%s names another chain_id than its file name", path);
    if (!json_is_array(ls) || json_array_size(ls) != n)
        return kiln_error_set(err, EINVAL, "%s does not list %zu layers", path, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *l = json_array_get(ls, i);
        if (kiln_digest_parse(json_string_value(json_object_get(l, "diff_id")), &d, NULL) < 0 ||
            !kiln_digest_equal(&d, &layers[i].diff_id))
            return kiln_error_set(err, EINVAL,
                                  "%s: layer %zu has diff_id %s, the image asks for %s", path, i,
                                  json_is_string(json_object_get(l, "diff_id"))
                                      ? json_string_value(json_object_get(l, "diff_id"))
                                      : "(none)",
                                  kiln_digest_str(&layers[i].diff_id, ws));
        if (kiln_digest_parse(json_string_value(json_object_get(l, "digest")), &d, NULL) < 0 ||
            !kiln_digest_equal(&d, &layers[i].digest))
            return kiln_error_set(err, EINVAL,
                                  "%s: layer %zu was unpacked from another blob than %s", path, i,
                                  kiln_digest_str(&layers[i].digest, ds));
    }
    return 0;
}

int kiln_astore_meta_check(const char *buf, size_t len, const kiln_astore_layer_t *layers, size_t n,
                           const char *what, kiln_error_t *err)
{
    kiln_digest_t id;
    json_t *j = NULL;
    int r;

    if (n == 0)
        return kiln_error_set(err, EINVAL, "%s: no layers asked for", what);
    kiln_astore_chain_id(layers, n, &id);
    if (kiln_json_loadb(buf, len, CHAIN_META_MAX, what, &j, err) < 0)
        return -1;
    r = meta_matches(j, &id, layers, n, what, err);
    json_decref(j);
    return r;
}

int kiln_astore_chain(const kiln_astore_t *a, const kiln_astore_layer_t *layers, size_t n,
                      char **path, kiln_error_t *err)
{
    kiln_digest_t id;
    _cleanup_free_ char *meta = NULL, *data = NULL, *tree = NULL;
    _cleanup_close_ int f = -1;
    struct stat st;
    size_t len;

    if (n == 0)
        return 0;
    kiln_astore_chain_id(layers, n, &id);
    meta = kiln_xasprintf("%s/chains/%s.json", a->dir, id.hex);
    tree = kiln_xasprintf("%s/chains/%s", a->dir, id.hex);
    {
        _cleanup_free_ char *name = kiln_xasprintf("%s.json", id.hex);
        f = openat(a->chains_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (f < 0) {
        if (errno == ENOENT)
            return 0;
        return kiln_error_set(err, errno, "open %s", meta);
    }
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode))
        return kiln_error_set(err, EINVAL, "%s is not a regular file", meta);
    if (trusted(&st, meta, false, err) < 0 ||
        kiln_fs_read_fd(f, CHAIN_META_MAX, &data, &len, err) < 0 ||
        kiln_astore_meta_check(data, len, layers, n, meta, err) < 0)
        return -1;
    if (fstatat(a->chains_fd, id.hex, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return kiln_error_set(err, ENOENT, "%s is missing (its metadata is there)", tree);
    if (trusted(&st, tree, false, err) < 0)
        return -1;
    *path = steal_pointer(&tree);
    return 1;
}
