/* kiln — zstd:chunked layers: writer and reader (see zstd_chunked.h).
 *
 * The writer reads the tar block by block. Header blocks (and PAX / GNU long-name records,
 * and the padding after each file) gather in a pending buffer; a regular file with content
 * first flushes that buffer as one frame, then streams its content as a frame of its own,
 * whose compressed range and content digest go into its TOC entry. The end-of-archive
 * blocks close the last pending frame. */
#include "oci/zstd_chunked.h"

#include "oci/ztoc_tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define BLOCK 512
#define IO_CHUNK (256u << 10)
#define PENDING_MAX (64u << 20) /* headers between two files (PAX records included) */
#define PAX_MAX (1u << 20)
#define OBUF (128u << 10)

static const unsigned char SKIP_MAGIC[4] = {0x50, 0x2a, 0x4d, 0x18};
static const char FOOTER_MAGIC[8] = {'G', 'N', 'U', 'l', 'I', 'n', 'U', 'x'};

typedef struct zw {
    kiln_zstd_chunked_read_fn rd;
    void *rd_ud;
    const kiln_sink_t *out;
    ZSTD_CCtx *cctx;
    kiln_sha256_t blob, tar;
    uint64_t off;
    kiln_buf_t pending;
    char *obuf;
    size_t ocap;
} zw_t;

static int emit(zw_t *w, const void *buf, size_t len, kiln_error_t *err)
{
    if (len == 0)
        return 0;
    kiln_sha256_update(&w->blob, buf, len);
    w->off += len;
    return kiln_sink_write(w->out, buf, len, err);
}

/* Feeds len bytes (end: the frame's last) to the current frame. */
static int frame_feed(zw_t *w, const void *buf, size_t len, int end, kiln_error_t *err)
{
    ZSTD_inBuffer in = {buf, len, 0};
    for (;;) {
        ZSTD_outBuffer o = {w->obuf, w->ocap, 0};
        size_t left = ZSTD_compressStream2(w->cctx, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            return kiln_error_set(err, EIO, "zstd: %s", ZSTD_getErrorName(left));
        if (emit(w, w->obuf, o.pos, err) < 0)
            return -1;
        if (end ? left == 0 : in.pos == in.size)
            return 0;
    }
}

/* The pending header bytes as one frame. */
static int flush_pending(zw_t *w, kiln_error_t *err)
{
    int r;
    if (w->pending.len == 0)
        return 0;
    r = frame_feed(w, w->pending.data, w->pending.len, 1, err);
    w->pending.len = 0;
    return r;
}

/* Reads exactly len bytes: 1, 0 at the end before any byte, -1 (also cut short). */
static int read_full(zw_t *w, void *buf, size_t len, kiln_error_t *err)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = w->rd(w->rd_ud, (char *)buf + got, len - got, err);
        if (n < 0)
            return kiln_error_prefix(err, "reading the tar");
        if (n == 0)
            return got == 0 ? 0 : kiln_error_set(err, 0, "the tar ends inside a block");
        got += (size_t)n;
    }
    return 1;
}

static int pending_add(zw_t *w, const void *b, size_t len, kiln_error_t *err)
{
    if (w->pending.len + len > PENDING_MAX)
        return kiln_error_set(err, E2BIG, "more than %u bytes of tar headers in a row",
                              PENDING_MAX);
    return kiln_buf_append(&w->pending, b, len, err);
}

/* A tar number field (octal, or base-256 when its top bit is set). */
static uint64_t tar_num(const char *p, size_t n)
{
    uint64_t v = 0;
    if ((unsigned char)p[0] & 0x80) {
        for (size_t i = 1; i < n; i++)
            v = (v << 8) | (unsigned char)p[i];
        return v;
    }
    for (size_t i = 0; i < n && p[i]; i++)
        if (p[i] >= '0' && p[i] <= '7')
            v = v * 8 + (uint64_t)(p[i] - '0');
    return v;
}

/* The value of key in PAX records rec (len bytes), malloc'ed, or NULL. */
static char *pax_get(const char *rec, size_t len, const char *key)
{
    size_t i = 0, kl = strlen(key);
    while (i < len) {
        char *end = NULL;
        unsigned long n = strtoul(rec + i, &end, 10);
        const char *sp =
            end && end < rec + len ? memchr(end, ' ', (size_t)(rec + len - end)) : NULL;
        if (n == 0 || sp == NULL || i + n > len)
            return NULL;
        if ((size_t)(rec + i + n - 1 - (sp + 1)) > kl && strncmp(sp + 1, key, kl) == 0 &&
            sp[1 + kl] == '=')
            return kiln_xstrndup(sp + 2 + kl, (size_t)(rec + i + n - 1 - (sp + 2 + kl)));
        i += n;
    }
    return NULL;
}

/* A tar type flag's TOC type ('\0' and '7' are old spellings of a regular file). */
static const char *entry_type(char t)
{
    return t == '\0' || t == '7' ? "reg" : kiln_ztoc_tar_type_name(t);
}

static char *field(const char *p, size_t n)
{
    return kiln_xstrndup(p, strnlen(p, n));
}

/* One entry's TOC object from its header h and the overrides of PAX/GNU records. */
static json_t *toc_entry(const char *h, const char *type, const char *path, const char *link,
                         uint64_t size)
{
    char when[32];
    time_t mt = (time_t)tar_num(h + 136, 12);
    struct tm tm;
    json_t *o = json_object();
    _cleanup_free_ char *name = NULL;
    if (path) {
        name = kiln_xstrdup(path);
    } else {
        _cleanup_free_ char *pre = field(h + 345, 155);
        _cleanup_free_ char *nm = field(h, 100);
        name = pre[0] ? kiln_xasprintf("%s/%s", pre, nm) : kiln_xstrdup(nm);
    }
    gmtime_r(&mt, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "name", json_string(name));
    if (strcmp(type, "symlink") == 0 || strcmp(type, "hardlink") == 0) {
        _cleanup_free_ char *l = link ? kiln_xstrdup(link) : field(h + 157, 100);
        json_object_set_new(o, "linkName", json_string(l));
    }
    json_object_set_new(o, "mode", json_integer((json_int_t)(tar_num(h + 100, 8) & 07777)));
    json_object_set_new(o, "size", json_integer((json_int_t)size));
    json_object_set_new(o, "uid", json_integer((json_int_t)tar_num(h + 108, 8)));
    json_object_set_new(o, "gid", json_integer((json_int_t)tar_num(h + 116, 8)));
    json_object_set_new(o, "modtime", json_string(when));
    if (strcmp(type, "char") == 0 || strcmp(type, "block") == 0) {
        json_object_set_new(o, "devMajor", json_integer((json_int_t)tar_num(h + 329, 8)));
        json_object_set_new(o, "devMinor", json_integer((json_int_t)tar_num(h + 337, 8)));
    }
    return o;
}

/* Streams size bytes of content (and its padding into pending) as a frame of its own; sets
 * the entry's digest and range. */
static int file_frame(zw_t *w, uint64_t size, json_t *entry, char *buf, kiln_error_t *err)
{
    kiln_sha256_t h;
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];
    uint64_t start, left = size;
    size_t pad = (size_t)((BLOCK - size % BLOCK) % BLOCK);
    if (flush_pending(w, err) < 0 || kiln_sha256_init(&h, err) < 0)
        return -1;
    start = w->off;
    while (left > 0) {
        size_t n = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
        if (read_full(w, buf, n, err) <= 0) {
            kiln_sha256_dispose(&h);
            return kiln_error_set(err, err->code, "the tar ends inside a file's content");
        }
        kiln_sha256_update(&h, buf, n);
        kiln_sha256_update(&w->tar, buf, n);
        left -= n;
        if (frame_feed(w, buf, n, left == 0, err) < 0) {
            kiln_sha256_dispose(&h);
            return -1;
        }
    }
    kiln_sha256_final(&h, &d);
    json_object_set_new(entry, "digest", json_string(kiln_digest_str(&d, ds)));
    json_object_set_new(entry, "offset", json_integer((json_int_t)start));
    json_object_set_new(entry, "endOffset", json_integer((json_int_t)w->off));
    if (pad > 0) {
        if (read_full(w, buf, pad, err) <= 0)
            return kiln_error_set(err, err->code, "the tar ends inside a file's padding");
        kiln_sha256_update(&w->tar, buf, pad);
        return pending_add(w, buf, pad, err);
    }
    return 0;
}

/* Reads size bytes of a record's data (PAX or GNU long name) into pending and *out. */
static int record(zw_t *w, uint64_t size, char **out, char *buf, kiln_error_t *err)
{
    uint64_t padded = (size + BLOCK - 1) / BLOCK * BLOCK;
    if (size > PAX_MAX)
        return kiln_error_set(err, E2BIG, "a tar extended header of %llu bytes",
                              (unsigned long long)size);
    if (read_full(w, buf, (size_t)padded, err) <= 0)
        return kiln_error_set(err, err->code, "the tar ends inside an extended header");
    kiln_sha256_update(&w->tar, buf, (size_t)padded);
    *out = kiln_xstrndup(buf, (size_t)size);
    return pending_add(w, buf, (size_t)padded, err);
}

/* The skippable frame holding len bytes. */
static int skippable(zw_t *w, const void *data, size_t len, kiln_error_t *err)
{
    unsigned char hdr[8];
    memcpy(hdr, SKIP_MAGIC, 4);
    for (int i = 0; i < 4; i++)
        hdr[4 + i] = (unsigned char)(len >> (8 * i));
    return emit(w, hdr, 8, err) < 0 ? -1 : emit(w, data, len, err);
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* len bytes of src as one zstd frame into out. */
static int compress_mem(ZSTD_CCtx *cctx, const void *src, size_t len, kiln_buf_t *out,
                        kiln_error_t *err)
{
    ZSTD_inBuffer in = {src, len, 0};
    char obuf[16384];
    for (;;) {
        ZSTD_outBuffer o = {obuf, sizeof(obuf), 0};
        size_t left = ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_end);
        if (ZSTD_isError(left))
            return kiln_error_set(err, EIO, "zstd: %s", ZSTD_getErrorName(left));
        if (kiln_buf_append(out, obuf, o.pos, err) < 0)
            return -1;
        if (left == 0)
            return 0;
    }
}

/* The TOC compressed, as its skippable frame, then the footer. */
static int write_toc(zw_t *w, json_t *entries, kiln_zstd_chunked_info_t *info, kiln_error_t *err)
{
    json_t *toc = json_pack("{s:i,s:O}", "version", 1, "entries", entries);
    _cleanup_free_ char *text = json_dumps(toc, JSON_COMPACT);
    size_t tlen = strlen(text);
    unsigned char footer[64] = {0};
    kiln_buf_t c;
    int r;
    json_decref(toc);
    kiln_buf_init(&c, 0);
    if (compress_mem(w->cctx, text, tlen, &c, err) < 0) {
        kiln_buf_free(&c);
        return -1;
    }
    info->toc_offset = w->off + 8;
    info->toc_length = c.len;
    info->toc_uncompressed = tlen;
    kiln_digest_bytes(c.data, c.len, &info->toc_digest);
    r = skippable(w, c.data, c.len, err);
    kiln_buf_free(&c);
    if (r < 0)
        return -1;
    put_le64(footer, info->toc_offset);
    put_le64(footer + 8, info->toc_length);
    put_le64(footer + 16, tlen);
    put_le64(footer + 24, 1);
    memcpy(footer + 56, FOOTER_MAGIC, 8);
    return skippable(w, footer, sizeof(footer), err);
}

/* Walks the tar, writing frames and the TOC entries. */
static int walk(zw_t *w, json_t *entries, char *buf, kiln_error_t *err)
{
    _cleanup_free_ char *pax = NULL;
    _cleanup_free_ char *longname = NULL;
    _cleanup_free_ char *longlink = NULL;
    for (;;) {
        char h[BLOCK];
        uint64_t size;
        const char *type;
        int r = read_full(w, h, BLOCK, err);
        if (r < 0)
            return -1;
        if (r == 0) /* no end-of-archive blocks: what was read is the tar */
            return 0;
        kiln_sha256_update(&w->tar, h, BLOCK);
        if (pending_add(w, h, BLOCK, err) < 0)
            return -1;
        if (h[0] == '\0') { /* end of archive: the rest (zeros) into the last frame */
            ssize_t n;
            while ((n = w->rd(w->rd_ud, buf, IO_CHUNK, err)) > 0) {
                kiln_sha256_update(&w->tar, buf, (size_t)n);
                if (pending_add(w, buf, (size_t)n, err) < 0)
                    return -1;
            }
            return n < 0 ? kiln_error_prefix(err, "reading the tar") : 0;
        }
        size = tar_num(h + 124, 12);
        if (h[156] == 'x' || h[156] == 'g' || h[156] == 'L' || h[156] == 'K') {
            char **slot = h[156] == 'x' ? &pax : h[156] == 'L' ? &longname : &longlink;
            char *tmp = NULL;
            if (record(w, size, &tmp, buf, err) < 0)
                return -1;
            if (h[156] == 'g') {
                free(tmp);
            } else {
                free(*slot);
                *slot = tmp;
            }
            continue;
        }
        type = entry_type(h[156]);
        {
            _cleanup_free_ char *ppath = pax ? pax_get(pax, strlen(pax), "path") : NULL;
            _cleanup_free_ char *plink = pax ? pax_get(pax, strlen(pax), "linkpath") : NULL;
            _cleanup_free_ char *psize = pax ? pax_get(pax, strlen(pax), "size") : NULL;
            json_t *e = NULL;
            if (psize)
                size = strtoull(psize, NULL, 10);
            if (type != NULL) {
                e = toc_entry(h, type, ppath ? ppath : longname, plink ? plink : longlink,
                              strcmp(type, "reg") == 0 ? size : 0);
                json_array_append_new(entries, e);
            }
            free(pax);
            pax = NULL;
            free(longname);
            longname = NULL;
            free(longlink);
            longlink = NULL;
            if (type && strcmp(type, "reg") == 0 && size > 0) {
                if (file_frame(w, size, e, buf, err) < 0)
                    return kiln_error_prefix(err, "%s",
                                             json_string_value(json_object_get(e, "name")));
            } else if (size > 0) { /* data of another kind of entry: kept with the headers */
                uint64_t padded = (size + BLOCK - 1) / BLOCK * BLOCK;
                while (padded > 0) {
                    size_t n = padded < IO_CHUNK ? (size_t)padded : IO_CHUNK;
                    if (read_full(w, buf, n, err) <= 0)
                        return kiln_error_set(err, EIO, "the tar ends inside an entry");
                    kiln_sha256_update(&w->tar, buf, n);
                    if (pending_add(w, buf, n, err) < 0)
                        return -1;
                    padded -= n;
                }
            }
        }
    }
}

int kiln_zstd_chunked_write(kiln_zstd_chunked_read_fn rd, void *rd_ud, int level,
                            const kiln_sink_t *out, kiln_zstd_chunked_info_t *info,
                            kiln_error_t *err)
{
    zw_t w = {.rd = rd, .rd_ud = rd_ud, .out = out};
    _cleanup_free_ char *buf =
        kiln_xmalloc(IO_CHUNK > PAX_MAX + BLOCK ? IO_CHUNK : PAX_MAX + BLOCK);
    json_t *entries = json_array();
    int ret = -1;
    memset(info, 0, sizeof(*info));
    level = level > 0 ? level : 3;
    kiln_buf_init(&w.pending, 0);
    w.cctx = ZSTD_createCCtx();
    w.ocap = OBUF;
    w.obuf = kiln_xmalloc(w.ocap);
    if (w.cctx == NULL || kiln_sha256_init(&w.blob, err) < 0)
        goto out;
    if (kiln_sha256_init(&w.tar, err) < 0) {
        kiln_sha256_dispose(&w.blob);
        goto out;
    }
    ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_checksumFlag, 1);
    if (walk(&w, entries, buf, err) < 0 || flush_pending(&w, err) < 0 ||
        write_toc(&w, entries, info, err) < 0) {
        kiln_sha256_dispose(&w.blob);
        kiln_sha256_dispose(&w.tar);
        goto out;
    }
    kiln_sha256_final(&w.blob, &info->digest);
    kiln_sha256_final(&w.tar, &info->diff_id);
    info->size = w.off;
    info->entries = json_array_size(entries);
    ret = 0;
out:
    json_decref(entries);
    ZSTD_freeCCtx(w.cctx);
    free(w.obuf);
    kiln_buf_free(&w.pending);
    return ret;
}

static ssize_t fd_read(void *ud, void *buf, size_t len, kiln_error_t *err)
{
    ssize_t n;
    do
        n = read(*(int *)ud, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        kiln_error_set(err, errno, "read");
    return n;
}

int kiln_zstd_chunked_write_fd(int tar_fd, int level, const kiln_sink_t *out,
                               kiln_zstd_chunked_info_t *info, kiln_error_t *err)
{
    return kiln_zstd_chunked_write(fd_read, &tar_fd, level, out, info, err);
}

void kiln_zstd_chunked_annotations(const kiln_zstd_chunked_info_t *info, char **checksum,
                                   char **position)
{
    char ds[KILN_DIGEST_STR_MAX];
    *checksum = kiln_xstrdup(kiln_digest_str(&info->toc_digest, ds));
    *position = kiln_xasprintf("%llu:%llu:%llu:1", (unsigned long long)info->toc_offset,
                               (unsigned long long)info->toc_length,
                               (unsigned long long)info->toc_uncompressed);
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off, kiln_error_t *err)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return kiln_error_set(err, n < 0 ? errno : EIO, "reading the blob at %llu",
                                  (unsigned long long)(off + got));
        got += (size_t)n;
    }
    return 0;
}

/* Decompresses src (its frames) into a buffer of exactly want bytes: more or fewer, or a
 * frame cut short, is an error. */
static int inflate_exact(const void *src, size_t len, uint64_t want, char **out, kiln_error_t *err)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    ZSTD_inBuffer in = {src, len, 0};
    char *buf = kiln_xmalloc(want + 1);
    ZSTD_outBuffer o = {buf, want + 1, 0};
    size_t left = 1;
    if (d == NULL) {
        free(buf);
        return kiln_error_set(err, ENOMEM, "zstd: no decompression context");
    }
    while (in.pos < in.size && o.pos <= want) {
        left = ZSTD_decompressStream(d, &o, &in);
        if (ZSTD_isError(left))
            break;
        if (o.pos == o.size)
            break;
    }
    ZSTD_freeDCtx(d);
    if (ZSTD_isError(left) || left != 0 || o.pos != want) {
        free(buf);
        return kiln_error_set(err, 0, "its frame does not inflate to exactly %llu bytes (%s)",
                              (unsigned long long)want,
                              ZSTD_isError(left) ? ZSTD_getErrorName(left) : "size");
    }
    *out = buf;
    return 0;
}

/* Checks one regular file's range: it inflates alone to its size and digest. */
static int verify_file(int fd, uint64_t size, json_t *e, kiln_error_t *err)
{
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *dig = json_string_value(json_object_get(e, "digest"));
    json_int_t fsize = json_integer_value(json_object_get(e, "size"));
    json_int_t o = json_integer_value(json_object_get(e, "offset"));
    json_int_t end = json_integer_value(json_object_get(e, "endOffset"));
    _cleanup_free_ char *cbuf = NULL;
    _cleanup_free_ char *data = NULL;
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];
    if (name == NULL || dig == NULL || o < 0 || end <= o || (uint64_t)end > size || fsize <= 0 ||
        fsize > (json_int_t)(1ll << 40) || end - o > (json_int_t)KILN_ZSTD_CHUNKED_TOC_MAX * 16)
        return kiln_error_set(err, 0, "TOC entry %s: bad range or digest", name ? name : "?");
    cbuf = kiln_xmalloc((size_t)(end - o));
    if (pread_full(fd, cbuf, (size_t)(end - o), (uint64_t)o, err) < 0 ||
        inflate_exact(cbuf, (size_t)(end - o), (uint64_t)fsize, &data, err) < 0)
        return kiln_error_prefix(err, "%s", name);
    kiln_digest_bytes(data, (size_t)fsize, &d);
    if (strcmp(kiln_digest_str(&d, ds), dig) != 0)
        return kiln_error_set(err, 0, "%s: its frame's content is %s, the TOC says %s", name, ds,
                              dig);
    return 0;
}

int kiln_zstd_chunked_verify(int fd, uint64_t size, const char *checksum, const char *position,
                             json_t **toc_out, kiln_error_t *err)
{
    unsigned char f[KILN_ZSTD_CHUNKED_FOOTER];
    uint64_t off, clen, ulen;
    _cleanup_free_ char *cbuf = NULL;
    _cleanup_free_ char *text = NULL;
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];
    json_t *toc, *entries, *e;
    size_t i;
    if (size < sizeof(f))
        return kiln_error_set(err, 0, "%llu bytes: no zstd:chunked footer",
                              (unsigned long long)size);
    if (pread_full(fd, f, sizeof(f), size - sizeof(f), err) < 0)
        return -1;
    if (memcmp(f, SKIP_MAGIC, 4) != 0 || f[4] != 64 || f[5] || f[6] || f[7] ||
        memcmp(f + 8 + 56, FOOTER_MAGIC, 8) != 0 || get_le64(f + 8 + 24) != 1)
        return kiln_error_set(err, 0, "no zstd:chunked footer (skippable frame, GNUlInUx, type 1)");
    off = get_le64(f + 8);
    clen = get_le64(f + 16);
    ulen = get_le64(f + 24);
    if (clen == 0 || clen > KILN_ZSTD_CHUNKED_TOC_MAX || ulen > KILN_ZSTD_CHUNKED_TOC_MAX ||
        off < 8 || off > size - sizeof(f) || clen > size - sizeof(f) - off)
        return kiln_error_set(err, 0, "the footer's TOC range %llu+%llu is outside the blob",
                              (unsigned long long)off, (unsigned long long)clen);
    if (position) {
        _cleanup_free_ char *want =
            kiln_xasprintf("%llu:%llu:%llu:1", (unsigned long long)off, (unsigned long long)clen,
                           (unsigned long long)ulen);
        if (strcmp(position, want) != 0)
            return kiln_error_set(err, 0, "annotation %s is %s, the footer says %s",
                                  KILN_ZSTD_CHUNKED_POSITION, position, want);
    }
    cbuf = kiln_xmalloc(clen);
    if (pread_full(fd, cbuf, clen, off, err) < 0)
        return -1;
    kiln_digest_bytes(cbuf, clen, &d);
    if (checksum && strcmp(checksum, kiln_digest_str(&d, ds)) != 0)
        return kiln_error_set(err, 0, "annotation %s is %s, the TOC's bytes are %s",
                              KILN_ZSTD_CHUNKED_CHECKSUM, checksum, ds);
    if (inflate_exact(cbuf, clen, ulen, &text, err) < 0)
        return kiln_error_prefix(err, "the TOC");
    toc = json_loadb(text, ulen, JSON_REJECT_DUPLICATES, NULL);
    entries = json_object_get(toc, "entries");
    if (json_integer_value(json_object_get(toc, "version")) != 1 || !json_is_array(entries) ||
        json_array_size(entries) > KILN_ZSTD_CHUNKED_ENTRIES_MAX) {
        json_decref(toc);
        return kiln_error_set(err, 0, "the TOC is not a version 1 zstd:chunked manifest");
    }
    json_array_foreach(entries, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        if (t && strcmp(t, "reg") == 0 && json_integer_value(json_object_get(e, "size")) > 0 &&
            verify_file(fd, size, e, err) < 0) {
            json_decref(toc);
            return kiln_error_prefix(err, "TOC entry %zu", i);
        }
    }
    if (toc_out)
        *toc_out = toc;
    else
        json_decref(toc);
    return 0;
}
