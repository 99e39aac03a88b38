/* kiln — directory tree / change list → PAX tar → gzip|zstd|none, in one pass. */
#include "oci/layer_write.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "oci/layer_walk.h"
#include "oci/tar_reader.h"
#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define READ_BUF_SIZE (1024 * 1024)
#define READAHEAD_HINT_MIN (256 * 1024)
#define XATTR_LIST_MAX_BYTES (64 * 1024)
#define XATTR_VALUE_MAX_BYTES (64 * 1024)

/* A (dev, ino) → first layer path seen, for files with several links. */
struct link_slot {
    dev_t dev;
    ino_t ino;
    char *path;
};

/* Hashes and counts what goes through it, then forwards it. */
struct hash_tee {
    kiln_sha256_t h;
    uint64_t bytes;
    kiln_sink_t *next;
    int hash; /* 0: only count and forward (no compression, or next hashes it) */
};

struct kiln_layer_writer {
    kiln_layer_opts_t opts;
    char *prefix; /* normalised: no leading/trailing '/', "" for none */
    struct archive *a;
    struct archive_entry *e;
    kiln_compressor_t *comp;
    struct hash_tee tee; /* compressed stream → caller's sink */
    kiln_sink_t tee_sink;
    kiln_sha256_t diff; /* uncompressed tar */
    int diff_by_comp;   /* the compressor hashes the tar into diff (in its writer thread) */
    int diff_by_sink;   /* uncompressed into a sink that hashes it: its digest is the diff_id */
    uint64_t diff_bytes;
    kiln_error_t cb_err; /* error raised inside the libarchive callback */
    int cb_failed;
    unsigned char *rbuf;
    struct link_slot *links;
    size_t nlinks, links_alloc;
    uint64_t entries;
    int finished;
    int discard; /* abandoned: the callback drops what libarchive still writes */
};

void kiln_layer_opts_init(kiln_layer_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->compression = KILN_COMPRESSION_GZIP;
    opts->level = -1;
    opts->source_date_epoch = -1;
    opts->threaded = 1;
    opts->readahead = 1;
}

const char *kiln_layer_media_type(kiln_compression_t c)
{
    switch (c) {
    case KILN_COMPRESSION_GZIP:
        return KILN_MEDIA_LAYER_GZIP;
    case KILN_COMPRESSION_ZSTD:
        return KILN_MEDIA_LAYER_ZSTD;
    default:
        return KILN_MEDIA_LAYER_TAR;
    }
}

static int tee_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    struct hash_tee *t = ctx;
    if (t->hash)
        kiln_sha256_update(&t->h, buf, len);
    t->bytes += len;
    return kiln_sink_write(t->next, buf, len, err);
}

/* libarchive's write callback: the raw tar. Hashes it (diff_id) and feeds the
 * compressor; errors are kept in the writer for the caller to report. */
static la_ssize_t archive_cb_write(struct archive *a, void *ctx, const void *buf, size_t len)
{
    kiln_layer_writer_t *w = ctx;
    if (w->discard)
        return (la_ssize_t)len;
    if (!w->diff_by_comp && !w->diff_by_sink)
        kiln_sha256_update(&w->diff, buf, len);
    w->diff_bytes += len;
    if (kiln_compressor_write(w->comp, buf, len, &w->cb_err) < 0) {
        w->cb_failed = 1;
        archive_set_error(a, EIO, "layer output failed");
        return -1;
    }
    return (la_ssize_t)len;
}

/* Turns a libarchive failure into an error naming the path. */
static int archive_fail(kiln_layer_writer_t *w, const char *path, kiln_error_t *err)
{
    if (w->cb_failed) {
        if (err)
            *err = w->cb_err;
        return kiln_error_prefix(err, "layer entry %s", path);
    }
    return kiln_error_set(err, archive_errno(w->a), "layer entry %s: %s", path,
                          archive_error_string(w->a) ? archive_error_string(w->a) : "tar error");
}

/* Strips leading and trailing slashes and "./" from a prefix. */
static char *normalise_prefix(const char *p)
{
    if (p == NULL)
        return kiln_xstrdup("");
    while (*p == '/' || (p[0] == '.' && p[1] == '/'))
        p += p[0] == '.' ? 2 : 1;
    if (strcmp(p, ".") == 0)
        return kiln_xstrdup("");
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    return kiln_xstrndup(p, n);
}

static int64_t clamp_mtime(const kiln_layer_writer_t *w, int64_t t)
{
    if (w->opts.source_date_epoch >= 0 && t > w->opts.source_date_epoch)
        return w->opts.source_date_epoch;
    return t;
}

static uint32_t shift_id(const kiln_layer_writer_t *w, uint32_t id)
{
    if (w->opts.id_shift > 0 && id >= w->opts.id_shift)
        return id - w->opts.id_shift;
    return id;
}

/* "<prefix>/<path>" (or path alone); malloc'ed. */
static char *full_path(const kiln_layer_writer_t *w, const char *path)
{
    return kiln_layer_join_prefix(w->prefix, path);
}

/* Writes a header-only entry (directory, empty marker file). */
static int write_synthetic(kiln_layer_writer_t *w, const char *path, mode_t mode, int64_t mtime,
                           kiln_error_t *err)
{
    archive_entry_clear(w->e);
    archive_entry_copy_pathname(w->e, path);
    archive_entry_set_mode(w->e, mode);
    archive_entry_set_uid(w->e, 0);
    archive_entry_set_gid(w->e, 0);
    archive_entry_set_mtime(w->e, clamp_mtime(w, mtime), 0);
    archive_entry_set_size(w->e, 0);
    if (archive_write_header(w->a, w->e) < ARCHIVE_WARN)
        return archive_fail(w, path, err);
    w->entries++;
    return 0;
}

/* Writes the overlay opaque marker ".wh..wh..opq" of directory lpath. */
static int write_opaque(kiln_layer_writer_t *w, const char *lpath, int64_t mtime, kiln_error_t *err)
{
    _cleanup_free_ char *opq =
        lpath[0] ? kiln_xasprintf("%s/.wh..wh..opq", lpath) : kiln_xstrdup(".wh..wh..opq");
    return write_synthetic(w, opq, AE_IFREG | 0644, mtime, err);
}

int kiln_layer_writer_new(const kiln_layer_opts_t *opts, kiln_sink_t *out,
                          kiln_layer_writer_t **res, kiln_error_t *err)
{
    kiln_layer_opts_t defaults;
    if (opts == NULL) {
        kiln_layer_opts_init(&defaults);
        opts = &defaults;
    }
    kiln_layer_writer_t *w = kiln_xzalloc(sizeof(*w));
    w->opts = *opts;
    w->prefix = normalise_prefix(opts->prefix);
    w->tee.next = out;
    /* A sink that hashes what it receives (a store blob) gives the blob's
     * digest: the compressed stream is not hashed twice. */
    w->tee.hash = opts->compression != KILN_COMPRESSION_NONE && out->digest == NULL;
    w->tee_sink.write = tee_write;
    w->tee_sink.ctx = &w->tee;
    if (kiln_sha256_init(&w->diff, err) < 0 ||
        (w->tee.hash && kiln_sha256_init(&w->tee.h, err) < 0) ||
        kiln_compressor_new(opts->compression, opts->level, opts->threaded, &w->tee_sink, &w->comp,
                            err) < 0) {
        kiln_layer_writer_free(w);
        return kiln_error_prefix(err, "layer writer");
    }
    w->diff_by_sink = opts->compression == KILN_COMPRESSION_NONE && out->digest != NULL;
    w->diff_by_comp = !w->diff_by_sink && kiln_compressor_hash_input(w->comp, &w->diff);
    w->rbuf = kiln_xmalloc(READ_BUF_SIZE);
    w->e = archive_entry_new();
    w->a = archive_write_new();
    if (w->a == NULL || w->e == NULL) {
        kiln_layer_writer_free(w);
        return kiln_error_set(err, ENOMEM, "layer writer: cannot allocate libarchive objects");
    }
    /* Full PAX (not pax_restricted): xattrs, long and non-ASCII names, big
     * files always get their extended records. Unblocked: no padding past the
     * end-of-archive marker, data buffers go straight to the callback. */
    if (archive_write_set_format_pax(w->a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_open2(w->a, w, NULL, archive_cb_write, NULL, NULL) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "layer writer: %s", archive_error_string(w->a));
        kiln_layer_writer_free(w);
        return -1;
    }
    /* The directories of the prefix. */
    if (w->prefix[0] != '\0') {
        char *p = w->prefix;
        for (char *s = strchr(p, '/');; s = strchr(s + 1, '/')) {
            _cleanup_free_ char *dir = kiln_xstrndup(p, s ? (size_t)(s - p) : strlen(p));
            int64_t t = w->opts.source_date_epoch >= 0 ? w->opts.source_date_epoch : 0;
            if (write_synthetic(w, dir, AE_IFDIR | 0755, t, err) < 0) {
                kiln_layer_writer_free(w);
                return -1;
            }
            if (s == NULL)
                break;
        }
    }
    *res = w;
    return 0;
}

/* Adds the xattrs of fd to the entry (overlay ones dropped in overlay mode).
 * *opaque is set when the directory is an overlay opaque dir. */
static int add_xattrs(kiln_layer_writer_t *w, int fd, const char *path, int *opaque,
                      kiln_error_t *err)
{
    char list[XATTR_LIST_MAX_BYTES];
    ssize_t n = flistxattr(fd, list, sizeof(list));
    if (n < 0) {
        if (errno == ENOTSUP || errno == ENODATA)
            return 0;
        return kiln_error_set(err, errno, "listing xattrs of %s", path);
    }
    /* Records in name order, so that the tar does not depend on the fs. */
    const char *names[512];
    size_t count = 0;
    for (ssize_t off = 0; off < n && count < 512; off += (ssize_t)strlen(list + off) + 1)
        names[count++] = list + off;
    for (size_t i = 1; i < count; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    _cleanup_free_ char *val = NULL;
    for (size_t i = 0; i < count; i++) {
        const char *name = names[i];
        int overlay =
            strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
        if (val == NULL)
            val = kiln_xmalloc(XATTR_VALUE_MAX_BYTES);
        ssize_t vn = fgetxattr(fd, name, val, XATTR_VALUE_MAX_BYTES);
        if (vn < 0) {
            if (errno == ENODATA)
                continue;
            return kiln_error_set(err, errno, "reading xattr %s of %s", name, path);
        }
        if (w->opts.overlay_upper && overlay) {
            if ((strcmp(name, "trusted.overlay.opaque") == 0 ||
                 strcmp(name, "user.overlay.opaque") == 0) &&
                vn == 1 && val[0] == 'y')
                *opaque = 1;
            continue;
        }
        archive_entry_xattr_add_entry(w->e, name, val, (size_t)vn);
    }
    return 0;
}

/* Finds or records (dev, ino); returns the first path when seen before. */
static const char *link_lookup(kiln_layer_writer_t *w, const struct stat *st, const char *path)
{
    if (w->links_alloc > 0) {
        size_t i = (size_t)((st->st_ino * 0x9E3779B97F4A7C15ull) ^ st->st_dev) % w->links_alloc;
        while (w->links[i].path != NULL) {
            if (w->links[i].ino == st->st_ino && w->links[i].dev == st->st_dev)
                return w->links[i].path;
            i = (i + 1) % w->links_alloc;
        }
    }
    if ((w->nlinks + 1) * 2 > w->links_alloc) {
        size_t nalloc = w->links_alloc ? w->links_alloc * 2 : 256;
        struct link_slot *nt = kiln_xzalloc(nalloc * sizeof(*nt));
        for (size_t j = 0; j < w->links_alloc; j++) {
            if (w->links[j].path == NULL)
                continue;
            size_t i =
                (size_t)((w->links[j].ino * 0x9E3779B97F4A7C15ull) ^ w->links[j].dev) % nalloc;
            while (nt[i].path != NULL)
                i = (i + 1) % nalloc;
            nt[i] = w->links[j];
        }
        free(w->links);
        w->links = nt;
        w->links_alloc = nalloc;
    }
    size_t i = (size_t)((st->st_ino * 0x9E3779B97F4A7C15ull) ^ st->st_dev) % w->links_alloc;
    while (w->links[i].path != NULL)
        i = (i + 1) % w->links_alloc;
    w->links[i].dev = st->st_dev;
    w->links[i].ino = st->st_ino;
    w->links[i].path = kiln_xstrdup(path);
    w->nlinks++;
    return NULL;
}

/* Streams the content of a regular file (exactly size bytes): read straight
 * into the compressor's block where it has one (gzip: no copy of the data
 * between the read and the compression), else into rbuf. */
static int write_data(kiln_layer_writer_t *w, int fd, const char *path, uint64_t size,
                      kiln_sha256_t *tee, kiln_error_t *err)
{
    uint64_t left = size;
    /* A larger read-ahead pays off only past the default window. */
    if (size > READAHEAD_HINT_MIN)
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (left > 0) {
        void *dst;
        size_t room;
        if (kiln_compressor_buffer(w->comp, &dst, &room, err) < 0)
            return kiln_error_prefix(err, "layer entry %s", path);
        if (dst == NULL) {
            dst = w->rbuf;
            room = READ_BUF_SIZE;
        }
        size_t want = left < room ? (size_t)left : room;
        ssize_t n = read(fd, dst, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_set(err, errno, "reading %s", path);
        if (n == 0)
            return kiln_error_set(err, 0, "%s shrank while it was being read", path);
        if (tee != NULL)
            kiln_sha256_update(tee, dst, (size_t)n);
        if (archive_write_data(w->a, dst, (size_t)n) < 0)
            return archive_fail(w, path, err);
        left -= (uint64_t)n;
    }
    return 0;
}

/* Writes one entry as `lpath` (layer path, prefix applied) from st: its type,
 * mode, owner, mtime and size. fd: the open regular file whose data goes in
 * (exactly st_size bytes), else -1; target: a symlink's target; xfd: an fd
 * whose xattrs go in, or -1. *opaque is set for an overlay opaque directory. */
static int write_entry_stat(kiln_layer_writer_t *w, const char *lpath, const struct stat *st,
                            int fd, const char *target, int xfd, int *opaque, kiln_sha256_t *tee,
                            kiln_error_t *err)
{
    archive_entry_clear(w->e);
    archive_entry_copy_pathname(w->e, lpath);
    archive_entry_set_mode(w->e, st->st_mode);
    archive_entry_set_uid(w->e, shift_id(w, st->st_uid));
    archive_entry_set_gid(w->e, shift_id(w, st->st_gid));
    archive_entry_set_mtime(w->e, clamp_mtime(w, st->st_mtim.tv_sec), 0);
    archive_entry_set_size(w->e, 0);
    int has_data = 0;

    if (S_ISREG(st->st_mode)) {
        const char *first = st->st_nlink > 1 ? link_lookup(w, st, lpath) : NULL;
        if (first != NULL) {
            archive_entry_copy_hardlink(w->e, first);
        } else {
            archive_entry_set_size(w->e, st->st_size);
            has_data = st->st_size > 0;
        }
    } else if (S_ISLNK(st->st_mode)) {
        archive_entry_copy_symlink(w->e, target);
    } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
        archive_entry_set_rdevmajor(w->e, major(st->st_rdev));
        archive_entry_set_rdevminor(w->e, minor(st->st_rdev));
    } else if (S_ISSOCK(st->st_mode)) {
        return 0; /* sockets do not go into layers (as docker/buildkit) */
    }
    if (xfd >= 0 && add_xattrs(w, xfd, lpath, opaque, err) < 0)
        return -1;
    if (archive_write_header(w->a, w->e) < ARCHIVE_WARN)
        return archive_fail(w, lpath, err);
    w->entries++;
    if (has_data && write_data(w, fd, lpath, (uint64_t)st->st_size, tee, err) < 0)
        return -1;
    if (archive_write_finish_entry(w->a) < ARCHIVE_WARN)
        return archive_fail(w, lpath, err);
    return has_data;
}

/* Writes one entry for dirfd/name as `lpath` (layer path, prefix applied).
 * st is its lstat; fd an open fd for regular files and directories (else -1).
 * *opaque is set for an overlay opaque directory. */
static int write_entry(kiln_layer_writer_t *w, int dirfd, const char *name, const char *lpath,
                       const struct stat *st, int fd, int *opaque, kiln_error_t *err)
{
    char target[4096];
    if (S_ISLNK(st->st_mode)) {
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return kiln_error_set(err, errno, "reading symlink %s", lpath);
        target[n] = '\0';
    }
    return write_entry_stat(w, lpath, st, fd, target, fd, opaque, NULL, err) < 0 ? -1 : 0;
}

/* Appends ".wh.<base>" next to path's base name. */
static char *whiteout_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return kiln_xasprintf(".wh.%s", path);
    return kiln_xasprintf("%.*s/.wh.%s", (int)(slash - path), path, slash + 1);
}

/* Is this (overlay upper) file a whiteout: a 0:0 character device? */
static int is_overlay_whiteout(const kiln_layer_writer_t *w, const struct stat *st)
{
    return w->opts.overlay_upper && S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* Writes one item of the walk (oci/layer_walk): an entry (a whiteout in
 * overlay mode; a directory's opaque marker after its entry), or a
 * directory's end. Takes the item. */
static int write_item(void *ctx, kiln_layer_item_t *it, kiln_error_t *err)
{
    kiln_layer_writer_t *w = ctx;
    int r = 0;
    if (it->kind == KILN_LAYER_ITEM_ENTRY && is_overlay_whiteout(w, &it->st)) {
        _cleanup_free_ char *wh = whiteout_path(it->lpath);
        r = write_synthetic(w, wh, AE_IFREG | 0644, it->st.st_mtim.tv_sec, err);
    } else if (it->kind == KILN_LAYER_ITEM_ENTRY) {
        int opaque = 0;
        r = write_entry_stat(w, it->lpath, &it->st, it->fd, it->target, it->fd, &opaque, NULL, err);
        if (r >= 0 && opaque)
            r = write_opaque(w, it->lpath, it->st.st_mtim.tv_sec, err);
    }
    kiln_layer_item_release(it);
    return r < 0 ? -1 : 0;
}

/* Writes dirfd/name (and what is below it) through the walk. */
static int add_tree(kiln_layer_writer_t *w, int dirfd, const char *name, const char *rel,
                    int skip_self, kiln_error_t *err)
{
    kiln_layer_walk_t cfg = {
        .prefix = w->prefix,
        .filter = w->opts.filter,
        .filter_ctx = w->opts.filter_ctx,
        .emit = write_item,
        .emit_ctx = w,
        .readahead = w->opts.readahead,
    };
    return kiln_layer_walk(&cfg, dirfd, name, rel, skip_self, err);
}

int kiln_layer_writer_add(kiln_layer_writer_t *w, int dirfd, const char *name, const char *path,
                          kiln_error_t *err)
{
    struct stat st;
    _cleanup_free_ char *lpath = full_path(w, path);
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", lpath);
    if (is_overlay_whiteout(w, &st)) {
        _cleanup_free_ char *wh = whiteout_path(lpath);
        return write_synthetic(w, wh, AE_IFREG | 0644, st.st_mtim.tv_sec, err);
    }
    _cleanup_close_ int fd = -1;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
            return kiln_error_set(err, errno, "opening %s", lpath);
    }
    int opaque = 0;
    if (write_entry(w, dirfd, name, lpath, &st, fd, &opaque, err) < 0)
        return -1;
    return opaque ? write_opaque(w, lpath, st.st_mtim.tv_sec, err) : 0;
}

int kiln_layer_writer_add_stat(kiln_layer_writer_t *w, const char *path, const struct stat *st,
                               int fd, const char *target, kiln_sha256_t *tee, kiln_error_t *err)
{
    _cleanup_free_ char *lpath = full_path(w, path);
    int opaque = 0;
    if (S_ISREG(st->st_mode) && st->st_size > 0 && fd < 0)
        return kiln_error_set(err, EINVAL, "layer entry %s: no data", lpath);
    if (S_ISLNK(st->st_mode) && target == NULL)
        return kiln_error_set(err, EINVAL, "layer entry %s: no link target", lpath);
    return write_entry_stat(w, lpath, st, fd, target, -1, &opaque, tee, err);
}

int kiln_layer_writer_add_tree(kiln_layer_writer_t *w, int dirfd, const char *name,
                               const char *path, kiln_error_t *err)
{
    /* A walk thread pays off for a directory only: a single file or link
     * (a change list adds many) is written in this thread. */
    struct stat st;
    int ra = w->opts.readahead;
    if (ra && (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)))
        w->opts.readahead = 0;
    int r = add_tree(w, dirfd, name, path, 0, err);
    w->opts.readahead = ra;
    return r;
}

int kiln_layer_writer_add_whiteout(kiln_layer_writer_t *w, const char *path, kiln_error_t *err)
{
    _cleanup_free_ char *lpath = full_path(w, path);
    _cleanup_free_ char *wh = whiteout_path(lpath);
    int64_t t = w->opts.source_date_epoch >= 0 ? w->opts.source_date_epoch : 0;
    return write_synthetic(w, wh, AE_IFREG | 0644, t, err);
}

int kiln_layer_writer_add_opaque(kiln_layer_writer_t *w, const char *dir, kiln_error_t *err)
{
    _cleanup_free_ char *lpath = full_path(w, dir);
    int64_t t = w->opts.source_date_epoch >= 0 ? w->opts.source_date_epoch : 0;
    return write_opaque(w, lpath, t, err);
}

/* Cleans an entry path (and a hardlink target) and puts the prefix in front. */
static char *tar_entry_path(kiln_layer_writer_t *w, const char *name, const char *orig,
                            const char *what, kiln_error_t *err)
{
    _cleanup_free_ char *p = kiln_xstrdup(name);
    if (kiln_layer_clean_path(p, what, orig, err) < 0)
        return NULL;
    return full_path(w, p);
}

/* Copies one entry (header + data) of the source tar into the layer. */
static int copy_tar_entry(kiln_layer_writer_t *w, kiln_tar_reader_t *tr, struct archive_entry *in,
                          kiln_error_t *err)
{
    const char *orig = archive_entry_pathname(in);
    if (orig == NULL)
        return kiln_error_set(err, EINVAL, "tar entry without a name");
    _cleanup_free_ char *path = tar_entry_path(w, orig, orig, "its name", err);
    if (path == NULL)
        return -1;
    if (path[0] == '\0')
        return 0; /* the root itself */
    if (w->opts.filter != NULL) {
        int keep = w->opts.filter(w->opts.filter_ctx, path, archive_entry_stat(in), err);
        if (keep <= 0)
            return keep;
    }
    archive_entry_clear(w->e);
    archive_entry_copy_pathname(w->e, path);
    archive_entry_set_mode(w->e, archive_entry_mode(in));
    archive_entry_set_uid(w->e, shift_id(w, (uint32_t)archive_entry_uid(in)));
    archive_entry_set_gid(w->e, shift_id(w, (uint32_t)archive_entry_gid(in)));
    archive_entry_set_mtime(w->e, clamp_mtime(w, archive_entry_mtime(in)), 0);
    archive_entry_set_size(w->e, 0);
    int has_data = 0;
    const char *hl = archive_entry_hardlink(in);
    if (hl != NULL) {
        _cleanup_free_ char *what = kiln_xasprintf("its hardlink target '%.512s'", hl);
        _cleanup_free_ char *target = tar_entry_path(w, hl, orig, what, err);
        if (target == NULL)
            return -1;
        archive_entry_copy_hardlink(w->e, target);
    } else if (archive_entry_filetype(in) == AE_IFREG) {
        archive_entry_set_size(w->e, archive_entry_size(in));
        has_data = archive_entry_size(in) > 0;
    } else if (archive_entry_filetype(in) == AE_IFLNK) {
        archive_entry_copy_symlink(w->e, archive_entry_symlink(in));
    } else if (archive_entry_filetype(in) == AE_IFCHR || archive_entry_filetype(in) == AE_IFBLK) {
        archive_entry_set_rdevmajor(w->e, archive_entry_rdevmajor(in));
        archive_entry_set_rdevminor(w->e, archive_entry_rdevminor(in));
    }
    const char *xn;
    const void *xv;
    size_t xl;
    archive_entry_xattr_reset(in);
    while (archive_entry_xattr_next(in, &xn, &xv, &xl) == ARCHIVE_OK)
        archive_entry_xattr_add_entry(w->e, xn, xv, xl);
    if (archive_write_header(w->a, w->e) < ARCHIVE_WARN)
        return archive_fail(w, path, err);
    w->entries++;
    while (has_data) {
        ssize_t n = kiln_tar_reader_data(tr, w->rbuf, READ_BUF_SIZE, err);
        if (n < 0)
            return kiln_error_prefix(err, "tar entry '%.512s'", orig);
        if (n == 0)
            break;
        if (archive_write_data(w->a, w->rbuf, (size_t)n) < 0)
            return archive_fail(w, path, err);
    }
    if (archive_write_finish_entry(w->a) < ARCHIVE_WARN)
        return archive_fail(w, path, err);
    return 0;
}

int kiln_layer_writer_add_tar(kiln_layer_writer_t *w, int fd, kiln_error_t *err)
{
    kiln_tar_reader_t *tr = NULL;
    if (kiln_tar_reader_open(fd, NULL, NULL, NULL, &tr, err) < 0)
        return -1;
    int r;
    struct archive_entry *in;
    while ((r = kiln_tar_reader_next(tr, &in, err)) > 0)
        if (copy_tar_entry(w, tr, in, err) < 0) {
            r = -1;
            break;
        }
    if (r == 0)
        r = kiln_tar_reader_finish(tr, err);
    kiln_tar_reader_free(tr);
    return r;
}

int kiln_layer_writer_finish(kiln_layer_writer_t *w, kiln_layer_info_t *info, kiln_error_t *err)
{
    if (w->finished)
        return kiln_error_set(err, EINVAL, "layer writer already finished");
    w->finished = 1;
    if (archive_write_close(w->a) != ARCHIVE_OK)
        return archive_fail(w, "(end of archive)", err);
    if (kiln_compressor_finish(w->comp, err) < 0)
        return kiln_error_prefix(err, "finishing the layer");
    kiln_layer_info_t res;
    memset(&res, 0, sizeof(res));
    if (w->diff_by_sink)
        w->tee.next->digest(w->tee.next->ctx, &res.diff_id);
    else
        kiln_sha256_final(&w->diff, &res.diff_id);
    res.diff_size = w->diff_bytes;
    if (w->tee.hash)
        kiln_sha256_final(&w->tee.h, &res.digest);
    else if (w->opts.compression != KILN_COMPRESSION_NONE)
        w->tee.next->digest(w->tee.next->ctx, &res.digest);
    else
        res.digest = res.diff_id;
    res.size = w->tee.bytes;
    res.media_type = kiln_layer_media_type(w->opts.compression);
    res.entries = w->entries;
    *info = res;
    return 0;
}

void kiln_layer_writer_free(kiln_layer_writer_t *w)
{
    if (w == NULL)
        return;
    if (w->a != NULL) {
        /* Closing (not archive_write_fail, which leaks libarchive's format
         * state) with the callback discarding: nothing more reaches the sink. */
        w->discard = 1;
        if (!w->finished)
            archive_write_close(w->a);
        archive_write_free(w->a);
    }
    archive_entry_free(w->e);
    kiln_compressor_free(w->comp);
    kiln_sha256_dispose(&w->diff);
    kiln_sha256_dispose(&w->tee.h);
    for (size_t i = 0; i < w->links_alloc; i++)
        free(w->links[i].path);
    free(w->links);
    free(w->rbuf);
    free(w->prefix);
    free(w);
}

int kiln_layer_write_dir(const char *dir, const kiln_layer_opts_t *opts, kiln_sink_t *out,
                         kiln_layer_info_t *info, kiln_error_t *err)
{
    kiln_layer_writer_t *w = NULL;
    if (kiln_layer_writer_new(opts, out, &w, err) < 0)
        return -1;
    int r = add_tree(w, AT_FDCWD, dir, "", 1, err);
    if (r == 0)
        r = kiln_layer_writer_finish(w, info, err);
    kiln_layer_writer_free(w);
    if (r < 0)
        return kiln_error_prefix(err, "writing a layer from %s", dir);
    return 0;
}
