/* kiln — uploaded build contexts (see context.h). */
#include "job/context.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/digest.h"

#include "utils/cleanup.h"
#include "utils/mem.h"

/* A member path is acceptable when relative and free of ".." components. */
static int safe_member(const char *p)
{
    if (p == NULL || p[0] == '/' || p[0] == '\0')
        return 0;
    for (const char *c = p; c; c = strchr(c, '/')) {
        if (*c == '/')
            c++;
        if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
            return 0;
    }
    return 1;
}

/* Rewrites an entry's path (and hard link target) to lie under dir. */
static int prefix_path(struct archive_entry *e, const char *dir, kiln_error_t *err)
{
    const char *p = archive_entry_pathname(e), *l = archive_entry_hardlink(e);
    if (!safe_member(p) || (l && !safe_member(l)))
        return kiln_error_set(err, 0, "uploaded context: unsafe path '%.200s'", p ? p : "");
    {
        _cleanup_free_ char *np = kiln_xasprintf("%s/%s", dir, p);
        archive_entry_set_pathname(e, np);
    }
    if (l) {
        _cleanup_free_ char *nl = kiln_xasprintf("%s/%s", dir, l);
        archive_entry_set_hardlink(e, nl);
    }
    return 0;
}

/* A write of the unpacked tree failed: the message names the member, and err->code keeps
 * the OS error (ENOSPC tells the caller the disk is full, not the upload bad). Returns -1. */
static int unpack_fail(struct archive *w, struct archive_entry *e, kiln_error_t *err)
{
    int code = archive_errno(w);

    kiln_error_set(err, 0, "uploaded context: %s: %s", archive_entry_pathname(e),
                   archive_error_string(w));
    if (err)
        err->code = code;
    return -1;
}

/* Adds e to the running totals; fails (EFBIG, naming the cap and its config key) when the
 * entry count or the unpacked size would pass the caps, before e is written. */
static int count_entry(struct archive_entry *e, const kiln_context_caps_t *caps, uint64_t *n,
                       uint64_t *bytes, kiln_error_t *err)
{
    la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;

    if (++*n > caps->max_entries)
        return kiln_error_set(err, EFBIG,
                              "uploaded context: more than %llu entries (max_context_entries)",
                              (unsigned long long)caps->max_entries);
    if (size > 0 && (uint64_t)size > caps->max_bytes - *bytes)
        return kiln_error_set(err, EFBIG,
                              "uploaded context: unpacks to more than %llu bytes at '%.200s' "
                              "(max_context_unpacked_bytes)",
                              (unsigned long long)caps->max_bytes,
                              archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
    *bytes += size > 0 ? (uint64_t)size : 0;
    return 0;
}

/* A regular file being written, hashed for on_file as its blocks go by. */
typedef struct file_hash {
    kiln_sha256_t h;
    char *member; /* its path in the tarball; NULL: not reported */
    int whole;    /* its blocks came in order, without holes */
} file_hash_t;

/* Starts hashing e (before its path is rewritten) when on_file wants to hear of it. */
static void hash_start(file_hash_t *fh, struct archive_entry *e, kiln_context_file_fn on_file)
{
    fh->member = NULL;
    fh->whole = 1;
    if (on_file == NULL || archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
        kiln_sha256_init(&fh->h, NULL) < 0)
        return;
    fh->member = kiln_xstrdup(archive_entry_pathname(e));
}

static void hash_block(file_hash_t *fh, const void *blk, size_t sz, la_int64_t off)
{
    if (fh->member == NULL || !fh->whole)
        return;
    if (off < 0 || (uint64_t)off != fh->h.bytes)
        fh->whole = 0; /* sparse: the file is read by the build instead */
    else
        kiln_sha256_update(&fh->h, blk, sz);
}

/* The file is written (times and modes set): reports it with its stat when it was hashed
 * whole and is what was hashed. Ends the hash. */
static void hash_end(file_hash_t *fh, struct archive_entry *e, kiln_context_file_fn on_file,
                     void *ctx)
{
    kiln_digest_t d;
    unsigned char oid[KILN_CONTEXT_OID_LEN];
    struct stat st;

    if (fh->member == NULL)
        return;
    kiln_sha256_final(&fh->h, &d);
    if (fh->whole && lstat(archive_entry_pathname(e), &st) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size == fh->h.bytes) {
        for (size_t i = 0; i < sizeof(oid); i++) {
            unsigned v;
            sscanf(d.hex + 2 * i, "%2x", &v);
            oid[i] = (unsigned char)v;
        }
        on_file(ctx, fh->member, &st, oid);
    }
    free(fh->member);
    fh->member = NULL;
}

int kiln_context_unpack(const char *tarball, const char *dir, const kiln_context_caps_t *caps,
                        kiln_context_file_fn on_file, void *on_file_ctx, kiln_error_t *err)
{
    file_hash_t fh = {0};
    static const kiln_context_caps_t defaults = {KILN_CONTEXT_MAX_BYTES, KILN_CONTEXT_MAX_ENTRIES};
    struct archive *a = archive_read_new(), *w = archive_write_disk_new();
    struct archive_entry *e;
    uint64_t n = 0, bytes = 0;
    int ret = 0, r;

    if (caps == NULL)
        caps = &defaults;

    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_TIME |
                                          ARCHIVE_EXTRACT_PERM);
    if (archive_read_open_filename(a, tarball, 65536) != ARCHIVE_OK) {
        ret = kiln_error_set(err, 0, "uploaded context: %s", archive_error_string(a));
        goto out;
    }
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (count_entry(e, caps, &n, &bytes, err) < 0) {
            ret = -1;
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG && archive_entry_filetype(e) != AE_IFDIR &&
            archive_entry_filetype(e) != AE_IFLNK) {
            /* a FIFO, socket or device is never made on the host (a build
             * would skip it anyway): the upload is refused naming it */
            ret = kiln_error_set(err, 0,
                                 "uploaded context: '%.200s' is a FIFO, socket or device (only "
                                 "files, directories and symlinks)",
                                 archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
            break;
        }
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        hash_start(&fh, e, on_file);
        /* Paths are placed under dir by hand (no chdir: the server is multi-threaded). */
        if (prefix_path(e, dir, err) < 0) {
            ret = -1;
            break;
        }
        if (archive_write_header(w, e) != ARCHIVE_OK ||
            archive_write_data_block(w, NULL, 0, 0) < ARCHIVE_WARN) {
            ret = unpack_fail(w, e, err);
            break;
        }
        {
            const void *blk;
            size_t sz;
            la_int64_t off;
            int rr, wfail = 0;
            while ((rr = archive_read_data_block(a, &blk, &sz, &off)) == ARCHIVE_OK) {
                if (archive_write_data_block(w, blk, sz, off) < ARCHIVE_OK) {
                    rr = ARCHIVE_FATAL;
                    wfail = 1;
                    break;
                }
                hash_block(&fh, blk, sz, off);
            }
            if (wfail) {
                ret = unpack_fail(w, e, err);
                break;
            }
            if (rr != ARCHIVE_EOF) {
                ret = kiln_error_set(err, 0, "uploaded context: %s: %s", archive_entry_pathname(e),
                                     archive_error_string(a));
                break;
            }
        }
        if (archive_write_finish_entry(w) >= ARCHIVE_WARN)
            hash_end(&fh, e, on_file, on_file_ctx);
    }
    if (ret == 0 && r != ARCHIVE_EOF)
        ret = kiln_error_set(err, 0, "uploaded context: %s", archive_error_string(a));
out:
    if (fh.member) {
        kiln_sha256_dispose(&fh.h);
        free(fh.member);
    }
    archive_read_free(a);
    archive_write_close(w);
    archive_write_free(w);
    return ret;
}
