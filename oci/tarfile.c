/* kiln — tar reading helpers (libarchive). */
#include "oci/tarfile.h"

#include <errno.h>
#include <string.h>

#include "utils/buf.h"

int kiln_tarfile_open(const char *path, struct archive **out, kiln_error_t *err)
{
    struct archive *a = archive_read_new();

    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        kiln_error_set(err, 0, "open archive %s: %s", path, archive_error_string(a));
        archive_read_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

const char *kiln_tarfile_name(struct archive_entry *e)
{
    const char *n = archive_entry_pathname(e);
    if (n == NULL)
        return "";
    while (n[0] == '.' && n[1] == '/')
        n += 2;
    return n;
}

int kiln_tarfile_read_entry(struct archive *a, const char *name, size_t cap, int json_only,
                            char **out, size_t *len, kiln_error_t *err)
{
    kiln_buf_t b;
    char chunk[65536];
    la_ssize_t n;
    int checked = !json_only;

    kiln_buf_init(&b, cap);
    while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
        if (!checked) {
            la_ssize_t k = 0;
            while (k < n && strchr(" \t\r\n", chunk[k]) != NULL)
                k++;
            if (k == n || chunk[k] != '{')
                return 0; /* not JSON (a layer): skipped, never held */
            checked = 1;
        }
        if (kiln_buf_append(&b, chunk, (size_t)n, err) < 0) {
            kiln_buf_free(&b);
            return kiln_error_prefix(err, "archive entry %s", name);
        }
    }
    if (n < 0) {
        kiln_buf_free(&b);
        return kiln_error_set(err, 0, "archive entry %s: %s", name, archive_error_string(a));
    }
    if (!checked)
        return 0;
    *out = kiln_buf_steal(&b, len);
    return 1;
}
