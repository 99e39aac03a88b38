/* kiln — libarchive loaded on first use (utils/lazylib).
 *
 * kiln is not linked against libarchive: these definitions of the archive_*
 * functions kiln calls load libarchive.so.13 the first time one runs and
 * forward to it. libarchive brings 16 more shared libraries (libxml2 with
 * ICU and libstdc++, nettle, lzma, lz4, bzip2, acl) whose loading and
 * relocation cost every command 1.6 ms of CPU at start-up, `kiln run` and
 * each build step's sandbox included, which never read or write an archive.
 *
 * When the library cannot be loaded, the constructors return a handle that
 * is never dereferenced (not NULL: callers take NULL for out-of-memory), every
 * operation on it fails with ARCHIVE_FATAL and archive_error_string says which
 * library is missing and what needs it. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "utils/lazylib.h"

/* What the constructors hand out when libarchive is missing: an address no
 * function here ever follows (each checks the library first). */
static char unloaded_handle;
#define NO_ARCHIVE ((struct archive *)&unloaded_handle)
#define NO_ENTRY ((struct archive_entry *)&unloaded_handle)

typedef struct archive A;
typedef struct archive_entry E;

/* Every libarchive function kiln calls, but the variadic archive_set_error. */
#define ARCHIVE_FUNCS(F, V)                                                                        \
    F(A *, archive_read_new, (void), (), NO_ARCHIVE)                                               \
    F(A *, archive_write_new, (void), (), NO_ARCHIVE)                                              \
    F(A *, archive_write_disk_new, (void), (), NO_ARCHIVE)                                         \
    F(int, archive_read_free, (A * a), (a), ARCHIVE_OK)                                            \
    F(int, archive_write_free, (A * a), (a), ARCHIVE_OK)                                           \
    F(int, archive_write_close, (A * a), (a), ARCHIVE_FATAL)                                       \
    F(int, archive_errno, (A * a), (a), ELIBACC)                                                   \
    F(const char *, archive_version_details, (void), (), lazy_error)                               \
    F(const char *, archive_error_string, (A * a), (a), lazy_error)                                \
    F(int, archive_read_support_filter_all, (A * a), (a), ARCHIVE_FATAL)                           \
    F(int, archive_read_support_filter_gzip, (A * a), (a), ARCHIVE_FATAL)                          \
    F(int, archive_read_support_format_tar, (A * a), (a), ARCHIVE_FATAL)                           \
    F(int, archive_read_support_format_zip_seekable, (A * a), (a), ARCHIVE_FATAL)                  \
    F(int, archive_read_open,                                                                      \
      (A * a, void *data, archive_open_callback *o, archive_read_callback *r,                      \
       archive_close_callback *c),                                                                 \
      (a, data, o, r, c), ARCHIVE_FATAL)                                                           \
    F(int, archive_read_open_filename, (A * a, const char *path, size_t block), (a, path, block),  \
      ARCHIVE_FATAL)                                                                               \
    F(int, archive_read_open_memory, (A * a, const void *buf, size_t size), (a, buf, size),        \
      ARCHIVE_FATAL)                                                                               \
    F(int, archive_read_next_header, (A * a, E * *e), (a, e), ARCHIVE_FATAL)                       \
    F(la_ssize_t, archive_read_data, (A * a, void *buf, size_t size), (a, buf, size),              \
      ARCHIVE_FATAL)                                                                               \
    F(int, archive_read_data_block, (A * a, const void **buf, size_t *size, la_int64_t *offset),   \
      (a, buf, size, offset), ARCHIVE_FATAL)                                                       \
    F(int, archive_write_open2,                                                                    \
      (A * a, void *data, archive_open_callback *o, archive_write_callback *w,                     \
       archive_close_callback *c, archive_free_callback *f),                                       \
      (a, data, o, w, c, f), ARCHIVE_FATAL)                                                        \
    F(int, archive_write_open_fd, (A * a, int fd), (a, fd), ARCHIVE_FATAL)                         \
    F(int, archive_write_open_memory, (A * a, void *buf, size_t size, size_t *used),               \
      (a, buf, size, used), ARCHIVE_FATAL)                                                         \
    F(int, archive_read_support_format_zip, (A * a), (a), ARCHIVE_FATAL)                           \
    F(int, archive_write_open_filename, (A * a, const char *path), (a, path), ARCHIVE_FATAL)       \
    V(archive_entry_set_rdev, (E * e, dev_t d), (e, d))                                            \
    F(mode_t, archive_entry_perm, (E * e), (e), 0)                                                 \
    F(int, archive_write_set_bytes_in_last_block, (A * a, int n), (a, n), ARCHIVE_FATAL)           \
    F(int, archive_write_set_bytes_per_block, (A * a, int n), (a, n), ARCHIVE_FATAL)               \
    F(int, archive_write_set_format_pax, (A * a), (a), ARCHIVE_FATAL)                              \
    F(int, archive_write_set_format_pax_restricted, (A * a), (a), ARCHIVE_FATAL)                   \
    F(int, archive_write_set_format_zip, (A * a), (a), ARCHIVE_FATAL)                              \
    F(int, archive_write_disk_set_options, (A * a, int flags), (a, flags), ARCHIVE_FATAL)          \
    F(int, archive_write_header, (A * a, E * e), (a, e), ARCHIVE_FATAL)                            \
    F(la_ssize_t, archive_write_data, (A * a, const void *buf, size_t n), (a, buf, n),             \
      ARCHIVE_FATAL)                                                                               \
    F(la_ssize_t, archive_write_data_block, (A * a, const void *buf, size_t n, la_int64_t off),    \
      (a, buf, n, off), ARCHIVE_FATAL)                                                             \
    F(int, archive_write_finish_entry, (A * a), (a), ARCHIVE_FATAL)                                \
    F(E *, archive_entry_new, (void), (), NO_ENTRY)                                                \
    F(E *, archive_entry_clear, (E * e), (e), e)                                                   \
    V(archive_entry_free, (E * e), (e))                                                            \
    V(archive_entry_copy_hardlink, (E * e, const char *s), (e, s))                                 \
    V(archive_entry_copy_pathname, (E * e, const char *s), (e, s))                                 \
    V(archive_entry_copy_symlink, (E * e, const char *s), (e, s))                                  \
    V(archive_entry_set_hardlink, (E * e, const char *s), (e, s))                                  \
    V(archive_entry_set_pathname, (E * e, const char *s), (e, s))                                  \
    V(archive_entry_set_symlink, (E * e, const char *s), (e, s))                                   \
    V(archive_entry_set_filetype, (E * e, unsigned int t), (e, t))                                 \
    V(archive_entry_set_mode, (E * e, mode_t m), (e, m))                                           \
    V(archive_entry_set_perm, (E * e, mode_t m), (e, m))                                           \
    V(archive_entry_set_uid, (E * e, la_int64_t id), (e, id))                                      \
    V(archive_entry_set_gid, (E * e, la_int64_t id), (e, id))                                      \
    V(archive_entry_set_size, (E * e, la_int64_t n), (e, n))                                       \
    V(archive_entry_set_mtime, (E * e, time_t s, long ns), (e, s, ns))                             \
    V(archive_entry_set_rdevmajor, (E * e, dev_t d), (e, d))                                       \
    V(archive_entry_set_rdevminor, (E * e, dev_t d), (e, d))                                       \
    V(archive_entry_xattr_add_entry, (E * e, const char *name, const void *v, size_t n),           \
      (e, name, v, n))                                                                             \
    F(int, archive_entry_xattr_reset, (E * e), (e), 0)                                             \
    F(int, archive_entry_xattr_count, (E * e), (e), 0)                                             \
    F(int, archive_entry_sparse_count, (E * e), (e), 0)                                            \
    F(int, archive_entry_xattr_next, (E * e, const char **name, const void **v, size_t *n),        \
      (e, name, v, n), ARCHIVE_WARN)                                                               \
    F(mode_t, archive_entry_filetype, (E * e), (e), 0)                                             \
    F(mode_t, archive_entry_mode, (E * e), (e), 0)                                                 \
    F(la_int64_t, archive_entry_uid, (E * e), (e), 0)                                              \
    F(la_int64_t, archive_entry_gid, (E * e), (e), 0)                                              \
    F(la_int64_t, archive_entry_size, (E * e), (e), 0)                                             \
    F(int, archive_entry_size_is_set, (E * e), (e), 0)                                             \
    F(time_t, archive_entry_mtime, (E * e), (e), 0)                                                \
    F(long, archive_entry_mtime_nsec, (E * e), (e), 0)                                             \
    F(dev_t, archive_entry_rdevmajor, (E * e), (e), 0)                                             \
    F(dev_t, archive_entry_rdevminor, (E * e), (e), 0)                                             \
    F(const char *, archive_entry_pathname, (E * e), (e), NULL)                                    \
    F(const char *, archive_entry_hardlink, (E * e), (e), NULL)                                    \
    F(const char *, archive_entry_symlink, (E * e), (e), NULL)                                     \
    F(const struct stat *, archive_entry_stat, (E * e), (e), NULL)

#define ARCHIVE_VARIADIC(F, V) V(archive_set_error, (A * a, int e, const char *fmt, ...), ())

KILN_LAZYLIB_DEFINE(ARCHIVE_FUNCS, ARCHIVE_VARIADIC, "libarchive.so.13",
                    "to read and write tar and zip archives: image layers and archives, build "
                    "contexts, toolchains, function zips")
KILN_LAZYLIB_PRELOADER(archive)

void archive_set_error(A *a, int e, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (lazy_ready() < 0)
        return;
    if (fmt == NULL) { /* clears the message */
        lazy_fn.archive_set_error(a, e, NULL);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lazy_fn.archive_set_error(a, e, "%s", msg);
}
