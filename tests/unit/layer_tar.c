/* Test helpers: hand-made layer tars and tree listings (see layer_tar.h). */
#include "layer_tar.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <archive.h>
#include <cmocka.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Writes a plain tar with libarchive (names taken verbatim, even hostile ones). */
void make_tar(const char *path, const struct tentry *e, size_t n)
{
    struct archive *a = archive_write_new();
    assert_non_null(a);
    archive_write_set_format_pax(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_copy_pathname(ae, e[i].name);
        archive_entry_set_mode(ae, e[i].type | 0644);
        archive_entry_set_mtime(ae, 1700000000, 0);
        if (e[i].hardlink)
            archive_entry_copy_hardlink(ae, e[i].link);
        else if (e[i].type == AE_IFLNK)
            archive_entry_copy_symlink(ae, e[i].link);
        if (e[i].type == AE_IFCHR || e[i].type == AE_IFBLK)
            archive_entry_set_rdev(ae, makedev(8, 1));
        size_t len = e[i].data ? strlen(e[i].data) : 0;
        archive_entry_set_size(ae, (la_int64_t)len);
        assert_true(archive_write_header(a, ae) >= ARCHIVE_WARN);
        if (len > 0)
            assert_int_equal(archive_write_data(a, e[i].data, len), (la_ssize_t)len);
        archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
}

void dump_tree(const char *dir, const char *rel, char **out)
{
    _cleanup_free_ char *p = rel[0] ? kiln_xasprintf("%s/%s", dir, rel) : kiln_xstrdup(dir);
    struct dirent **names = NULL;
    int n = scandir(p, &names, NULL, alphasort);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0) {
            _cleanup_free_ char *r = rel[0] ? kiln_xasprintf("%s/%s", rel, nm) : kiln_xstrdup(nm);
            _cleanup_free_ char *full = kiln_xasprintf("%s/%s", dir, r);
            struct stat st;
            char what[256] = "";
            assert_int_equal(lstat(full, &st), 0);
            if (S_ISLNK(st.st_mode)) {
                ssize_t k = readlink(full, what, sizeof(what) - 1);
                what[k < 0 ? 0 : k] = '\0';
            } else if (S_ISREG(st.st_mode)) {
                _cleanup_free_ char *c = NULL;
                size_t len;
                kiln_error_t err = {0};
                (void)kiln_fs_read_file(full, 1 << 20, &c, &len, &err);
                snprintf(what, sizeof(what), "%s nlink=%lu", c ? c : "?",
                         (unsigned long)st.st_nlink);
            }
            char *line = kiln_xasprintf("%s%s %o %s\n", *out, r, (unsigned)st.st_mode, what);
            free(*out);
            *out = line;
            if (S_ISDIR(st.st_mode))
                dump_tree(dir, r, out);
        }
        free(names[i]);
    }
    free(names);
}
