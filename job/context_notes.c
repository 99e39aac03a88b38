/* kiln — what an uploaded context's unpack wrote, kept (see context_notes.h). The file is
 * "kiln-context-notes 1\n" and one record per file: its fixed part (little-endian as the
 * machine writes it: the file never leaves the machine) then the member path. */
#include "job/context_notes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define MAGIC "kiln-context-notes 1\n"
#define PATH_MAX_LEN 4096
/* the whole file: the entry cap times a record with a long path */
#define FILE_MAX (256ULL << 20)

typedef struct record {
    uint64_t dev, ino, size;
    int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
    uint32_t mode, path_len;
    unsigned char oid[KILN_CONTEXT_OID_LEN];
    unsigned char pad[4];
} record_t;

void kiln_context_notes_add(void *ctx, const char *member, const struct stat *st,
                            const unsigned char oid[KILN_CONTEXT_OID_LEN])
{
    kiln_context_notes_t *u = ctx;

    while (member[0] == '.' && member[1] == '/')
        member += 2;
    if (u->n == u->cap) {
        u->cap = u->cap ? 2 * u->cap : 256;
        u->v = kiln_xrealloc(u->v, u->cap * sizeof(*u->v));
    }
    u->v[u->n].member = kiln_xstrdup(member);
    u->v[u->n].st = *st;
    memcpy(u->v[u->n].oid, oid, KILN_CONTEXT_OID_LEN);
    u->n++;
}

void kiln_context_notes_clear(kiln_context_notes_t *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->v[i].member);
    free(n->v);
    memset(n, 0, sizeof(*n));
}

int kiln_context_notes_save(const kiln_context_notes_t *n, const char *path, kiln_error_t *err)
{
    kiln_buf_t b;
    int ret;

    kiln_buf_init(&b, 0);
    kiln_buf_append(&b, MAGIC, strlen(MAGIC), NULL);
    for (size_t i = 0; i < n->n; i++) {
        const kiln_context_note_t *x = &n->v[i];
        record_t r = {.dev = (uint64_t)x->st.st_dev,
                      .ino = (uint64_t)x->st.st_ino,
                      .size = (uint64_t)x->st.st_size,
                      .mtime_s = x->st.st_mtim.tv_sec,
                      .mtime_ns = x->st.st_mtim.tv_nsec,
                      .ctime_s = x->st.st_ctim.tv_sec,
                      .ctime_ns = x->st.st_ctim.tv_nsec,
                      .mode = (uint32_t)x->st.st_mode,
                      .path_len = (uint32_t)strlen(x->member)};
        if (r.path_len > PATH_MAX_LEN)
            continue; /* not noted: that file is hashed by the build */
        memcpy(r.oid, x->oid, sizeof(r.oid));
        kiln_buf_append(&b, &r, sizeof(r), NULL);
        kiln_buf_append(&b, x->member, r.path_len, NULL);
    }
    ret = kiln_fs_write_file_atomic(path, b.data, b.len, 0600, err);
    kiln_buf_free(&b);
    return ret;
}

int kiln_context_notes_load(const char *path, uint64_t max_entries, kiln_context_notes_t *out,
                            kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int fd = -1;
    kiln_context_notes_t n = {0};
    size_t len = 0, off = strlen(MAGIC);
    struct stat fst;

    memset(out, 0, sizeof(*out));
    if (max_entries == 0)
        max_entries = KILN_CONTEXT_MAX_ENTRIES;
    /* the file is the server's own, but never through a link, nor a fifo that blocks */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP)
        return kiln_error_set(err, 0, "%s: a symbolic link, not a context notes file", path);
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", path);
    if (fstat(fd, &fst) < 0 || !S_ISREG(fst.st_mode))
        return kiln_error_set(err, 0, "%s: not a regular file, not a context notes file", path);
    if (kiln_fs_read_fd(fd, FILE_MAX, &text, &len, err) < 0)
        return kiln_error_prefix(err, "%s", path);
    if (len < off || memcmp(text, MAGIC, off) != 0)
        return kiln_error_set(err, 0, "%s: not a context notes file", path);
    while (off < len) {
        record_t r;
        struct stat st = {0};
        _cleanup_free_ char *member = NULL;
        if (len - off < sizeof(r) || n.n >= max_entries)
            goto bad;
        memcpy(&r, text + off, sizeof(r));
        off += sizeof(r);
        if (r.path_len == 0 || r.path_len > PATH_MAX_LEN || len - off < r.path_len)
            goto bad;
        member = kiln_xstrndup(text + off, r.path_len);
        off += r.path_len;
        if (strlen(member) != r.path_len)
            goto bad; /* a NUL inside */
        st.st_dev = (dev_t)r.dev;
        st.st_ino = (ino_t)r.ino;
        st.st_size = (off_t)r.size;
        st.st_mtim.tv_sec = r.mtime_s;
        st.st_mtim.tv_nsec = r.mtime_ns;
        st.st_ctim.tv_sec = r.ctime_s;
        st.st_ctim.tv_nsec = r.ctime_ns;
        st.st_mode = (mode_t)r.mode;
        kiln_context_notes_add(&n, member, &st, r.oid);
    }
    *out = n;
    return 0;
bad:
    kiln_context_notes_clear(&n);
    return kiln_error_set(err, 0, "%s: truncated or past its caps", path);
}
