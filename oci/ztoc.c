/* kiln — the zTOC model and its flatbuffers encoding (soci-snapshotter's ztoc.fbs).
 *
 * The schema is small and fixed, so the encoder and decoder are written by hand. The
 * encoder lays the buffer out front to back: each table's vtable right before it, the
 * table 8-aligned with its 8-byte fields first, then its strings, vectors and child
 * tables after it, so every uoffset points forward as flatbuffers requires. The decoder
 * trusts nothing: every offset, vtable, length and count is checked against the buffer
 * before it is followed. */
#include "oci/ztoc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

/* Field ids, in schema declaration order. */
enum { ZT_VERSION, ZT_TOOL, ZT_CSIZE, ZT_USIZE, ZT_TOC, ZT_CINFO, ZT_N };
enum { CI_ALGO, CI_MAXSPAN, CI_DIGESTS, CI_CHECKPOINTS, CI_N };
enum {
    FM_NAME,
    FM_TYPE,
    FM_OFFSET,
    FM_SIZE,
    FM_LINKNAME,
    FM_MODE,
    FM_UID,
    FM_GID,
    FM_UNAME,
    FM_GNAME,
    FM_MTIME,
    FM_DEVMAJOR,
    FM_DEVMINOR,
    FM_XATTRS,
    FM_N
};

void kiln_ztoc_file_clear(kiln_ztoc_file_t *f)
{
    free(f->name);
    free(f->type);
    free(f->linkname);
    free(f->uname);
    free(f->gname);
    free(f->mod_time);
    for (size_t i = 0; i < f->n_xattrs; i++) {
        free(f->xattrs[i].key);
        free(f->xattrs[i].value);
    }
    free(f->xattrs);
    memset(f, 0, sizeof(*f));
}

void kiln_ztoc_free(kiln_ztoc_t *z)
{
    if (z == NULL)
        return;
    free(z->version);
    free(z->build_tool);
    for (size_t i = 0; i < z->n_files; i++)
        kiln_ztoc_file_clear(&z->files[i]);
    free(z->files);
    for (size_t i = 0; i < z->n_span_digests; i++)
        free(z->span_digests[i]);
    free(z->span_digests);
    free(z->checkpoints);
    free(z);
}

/* ---- little-endian helpers ---- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* ---- encoder ---- */

typedef struct fbw {
    uint8_t *b;
    size_t len, cap;
} fbw_t;

/* n zeroed bytes at the end (after padding to align); returns their position. */
static size_t fb_reserve(fbw_t *w, size_t align, size_t n)
{
    size_t pos = (w->len + align - 1) / align * align;
    if (pos + n > w->cap) {
        size_t c = w->cap ? w->cap : 4096;
        while (c < pos + n)
            c *= 2;
        w->b = kiln_xrealloc(w->b, c);
        w->cap = c;
    }
    memset(w->b + w->len, 0, pos + n - w->len);
    w->len = pos + n;
    return pos;
}

/* Points the uoffset at field position fpos to target (always after it). */
static void fb_link(fbw_t *w, size_t fpos, size_t target)
{
    wr32(w->b + fpos, (uint32_t)(target - fpos));
}

static size_t fb_string(fbw_t *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    size_t pos = fb_reserve(w, 4, 4 + n + 1);
    wr32(w->b + pos, (uint32_t)n);
    if (n)
        memcpy(w->b + pos + 4, s, n);
    return pos;
}

/* A string field: the string written now and linked. */
static void fb_string_field(fbw_t *w, size_t fpos, const char *s)
{
    fb_link(w, fpos, fb_string(w, s));
}

/* A vector of n uoffsets (filled by the caller); returns its position. */
static size_t fb_offset_vector(fbw_t *w, size_t n)
{
    size_t pos = fb_reserve(w, 4, 4 + 4 * n);
    wr32(w->b + pos, (uint32_t)n);
    return pos;
}

/* A table with nf fields of the given inline sizes (8, 4 or 1; 0 = absent): its vtable,
 * then the table 8-aligned with the fields sorted by size. fpos[i] receives each
 * field's position. Returns the table's position. */
static size_t fb_table(fbw_t *w, size_t nf, const uint8_t *sizes, size_t *fpos)
{
    uint16_t voff[16] = {0};
    size_t off = 8; /* soffset + padding keep 8-byte fields aligned */
    size_t vt, t;

    for (unsigned sz = 8; sz >= 1; sz /= 2) {
        for (size_t i = 0; i < nf; i++)
            if (sizes[i] == sz) {
                off = (off + sz - 1) / sz * sz;
                voff[i] = (uint16_t)off;
                off += sz;
            }
        if (sz == 1)
            break;
    }
    off = (off + 7) / 8 * 8;
    vt = fb_reserve(w, 2, 4 + 2 * nf);
    wr16(w->b + vt, (uint16_t)(4 + 2 * nf));
    wr16(w->b + vt + 2, (uint16_t)off);
    for (size_t i = 0; i < nf; i++)
        wr16(w->b + vt + 4 + 2 * i, voff[i]);
    t = fb_reserve(w, 8, off);
    wr32(w->b + t, (uint32_t)(int32_t)(t - vt));
    for (size_t i = 0; i < nf; i++)
        fpos[i] = voff[i] ? t + voff[i] : 0;
    return t;
}

static void encode_file(fbw_t *w, size_t link_pos, const kiln_ztoc_file_t *f)
{
    static const uint8_t sizes[FM_N] = {
        [FM_NAME] = 4,  [FM_TYPE] = 4,     [FM_OFFSET] = 8,   [FM_SIZE] = 8,  [FM_LINKNAME] = 4,
        [FM_MODE] = 8,  [FM_UID] = 4,      [FM_GID] = 4,      [FM_UNAME] = 4, [FM_GNAME] = 4,
        [FM_MTIME] = 4, [FM_DEVMAJOR] = 8, [FM_DEVMINOR] = 8, [FM_XATTRS] = 4};
    size_t fp[FM_N], t, vec;

    t = fb_table(w, FM_N, sizes, fp);
    fb_link(w, link_pos, t);
    wr64(w->b + fp[FM_OFFSET], (uint64_t)f->offset);
    wr64(w->b + fp[FM_SIZE], (uint64_t)f->size);
    wr64(w->b + fp[FM_MODE], (uint64_t)f->mode);
    wr32(w->b + fp[FM_UID], f->uid);
    wr32(w->b + fp[FM_GID], f->gid);
    wr64(w->b + fp[FM_DEVMAJOR], (uint64_t)f->devmajor);
    wr64(w->b + fp[FM_DEVMINOR], (uint64_t)f->devminor);
    fb_string_field(w, fp[FM_NAME], f->name);
    fb_string_field(w, fp[FM_TYPE], f->type);
    fb_string_field(w, fp[FM_LINKNAME], f->linkname);
    fb_string_field(w, fp[FM_UNAME], f->uname);
    fb_string_field(w, fp[FM_GNAME], f->gname);
    fb_string_field(w, fp[FM_MTIME], f->mod_time);
    vec = fb_offset_vector(w, f->n_xattrs);
    fb_link(w, fp[FM_XATTRS], vec);
    for (size_t i = 0; i < f->n_xattrs; i++) {
        static const uint8_t xs[2] = {4, 4};
        size_t xp[2];
        size_t xt = fb_table(w, 2, xs, xp);
        fb_link(w, vec + 4 + 4 * i, xt);
        fb_string_field(w, xp[0], f->xattrs[i].key);
        fb_string_field(w, xp[1], f->xattrs[i].value);
    }
}

int kiln_ztoc_encode(const kiln_ztoc_t *z, uint8_t **out, size_t *len, kiln_error_t *err)
{
    static const uint8_t zs[ZT_N] = {[ZT_VERSION] = 4, [ZT_TOOL] = 4, [ZT_CSIZE] = 8,
                                     [ZT_USIZE] = 8,   [ZT_TOC] = 4,  [ZT_CINFO] = 4};
    static const uint8_t cs[CI_N] = {
        [CI_ALGO] = 1, [CI_MAXSPAN] = 4, [CI_DIGESTS] = 4, [CI_CHECKPOINTS] = 4};
    static const uint8_t ts[1] = {4};
    fbw_t w = {0};
    size_t zp[ZT_N], cp[CI_N], tp[1], root, t, vec, pos;

    if (z->n_files > KILN_ZTOC_MAX_FILES)
        return kiln_error_set(err, 0, "zTOC: %zu files (at most %u)", z->n_files,
                              KILN_ZTOC_MAX_FILES);
    root = fb_reserve(&w, 8, 8); /* the root uoffset, padded so tables stay aligned */
    t = fb_table(&w, ZT_N, zs, zp);
    fb_link(&w, root, t);
    wr64(w.b + zp[ZT_CSIZE], (uint64_t)z->compressed_size);
    wr64(w.b + zp[ZT_USIZE], (uint64_t)z->uncompressed_size);
    fb_string_field(&w, zp[ZT_VERSION], z->version ? z->version : KILN_ZTOC_VERSION);
    fb_string_field(&w, zp[ZT_TOOL], z->build_tool);

    t = fb_table(&w, 1, ts, tp);
    fb_link(&w, zp[ZT_TOC], t);
    vec = fb_offset_vector(&w, z->n_files);
    fb_link(&w, tp[0], vec);
    for (size_t i = 0; i < z->n_files; i++)
        encode_file(&w, vec + 4 + 4 * i, &z->files[i]);

    t = fb_table(&w, CI_N, cs, cp);
    fb_link(&w, zp[ZT_CINFO], t);
    w.b[cp[CI_ALGO]] = (uint8_t)(z->algorithm ? z->algorithm : 1);
    wr32(w.b + cp[CI_MAXSPAN], (uint32_t)z->max_span_id);
    vec = fb_offset_vector(&w, z->n_span_digests);
    fb_link(&w, cp[CI_DIGESTS], vec);
    for (size_t i = 0; i < z->n_span_digests; i++)
        fb_link(&w, vec + 4 + 4 * i, fb_string(&w, z->span_digests[i]));
    pos = fb_reserve(&w, 4, 4 + z->checkpoints_len);
    wr32(w.b + pos, (uint32_t)z->checkpoints_len);
    if (z->checkpoints_len)
        memcpy(w.b + pos + 4, z->checkpoints, z->checkpoints_len);
    fb_link(&w, cp[CI_CHECKPOINTS], pos);
    fb_reserve(&w, 8, 0);
    *out = w.b;
    *len = w.len;
    return 0;
}

/* ---- decoder ---- */

typedef struct fbr {
    const uint8_t *b;
    size_t len;
} fbr_t;

typedef struct fbt {
    size_t pos, vt;
    uint16_t vsize, tsize;
} fbt_t;

/* The table at pos, its vtable checked to lie inside the buffer. */
static int fb_table_at(const fbr_t *r, size_t pos, const char *what, fbt_t *t, kiln_error_t *err)
{
    int64_t vt;

    if (pos > r->len || r->len - pos < 4)
        return kiln_error_set(err, 0, "zTOC: %s: table at %zu is past the end (%zu bytes)", what,
                              pos, r->len);
    vt = (int64_t)pos - (int32_t)rd32(r->b + pos);
    if (vt < 0 || (uint64_t)vt + 4 > r->len)
        return kiln_error_set(err, 0,
                              "zTOC: %s: vtable of the table at %zu is outside the "
                              "buffer",
                              what, pos);
    t->pos = pos;
    t->vt = (size_t)vt;
    t->vsize = rd16(r->b + t->vt);
    t->tsize = rd16(r->b + t->vt + 2);
    if (t->vsize < 4 || (t->vsize & 1) || t->vt + t->vsize > r->len)
        return kiln_error_set(err, 0, "zTOC: %s: bad vtable size %u", what, t->vsize);
    if (t->tsize < 4 || pos + t->tsize > r->len)
        return kiln_error_set(err, 0, "zTOC: %s: table size %u runs past the end", what, t->tsize);
    return 0;
}

/* The position of field id (size bytes inline) in t: 1 when present, 0 when absent. */
static int fb_field(const fbr_t *r, const fbt_t *t, unsigned id, unsigned size, const char *what,
                    size_t *fpos, kiln_error_t *err)
{
    uint16_t voff;

    if (4 + 2 * id + 2 > t->vsize)
        return 0;
    voff = rd16(r->b + t->vt + 4 + 2 * id);
    if (voff == 0)
        return 0;
    if (voff < 4 || (size_t)voff + size > t->tsize)
        return kiln_error_set(err, 0, "zTOC: %s: field offset %u outside its table", what, voff);
    *fpos = t->pos + voff;
    return 1;
}

/* Follows the uoffset at fpos; the target leaves room for a 4-byte length. */
static int fb_deref(const fbr_t *r, size_t fpos, const char *what, size_t *target,
                    kiln_error_t *err)
{
    uint64_t tg = (uint64_t)fpos + rd32(r->b + fpos);
    if (tg + 4 > r->len)
        return kiln_error_set(err, 0, "zTOC: %s: offset points past the end", what);
    *target = (size_t)tg;
    return 0;
}

/* A string at pos (its length prefix there), copied; NUL inside is refused. */
static int fb_string_at(const fbr_t *r, size_t pos, const char *what, char **out, kiln_error_t *err)
{
    uint32_t n = rd32(r->b + pos);
    if ((uint64_t)pos + 4 + n > r->len)
        return kiln_error_set(err, 0, "zTOC: %s: string of %u bytes runs past the end", what, n);
    if (memchr(r->b + pos + 4, 0, n) != NULL)
        return kiln_error_set(err, 0, "zTOC: %s: string holds a NUL byte", what);
    *out = kiln_xstrndup((const char *)r->b + pos + 4, n);
    return 0;
}

/* A string field (absent: ""). */
static int fb_get_string(const fbr_t *r, const fbt_t *t, unsigned id, const char *what, char **out,
                         kiln_error_t *err)
{
    size_t fp = 0, sp = 0;
    int has = fb_field(r, t, id, 4, what, &fp, err);
    if (has < 0)
        return -1;
    if (!has) {
        *out = kiln_xstrdup("");
        return 0;
    }
    if (fb_deref(r, fp, what, &sp, err) < 0)
        return -1;
    return fb_string_at(r, sp, what, out, err);
}

static int fb_get_i64(const fbr_t *r, const fbt_t *t, unsigned id, const char *what, int64_t *out,
                      kiln_error_t *err)
{
    size_t fp = 0;
    int has = fb_field(r, t, id, 8, what, &fp, err);
    if (has < 0)
        return -1;
    *out = has ? (int64_t)rd64(r->b + fp) : 0;
    return 0;
}

static int fb_get_u32(const fbr_t *r, const fbt_t *t, unsigned id, const char *what, uint32_t *out,
                      kiln_error_t *err)
{
    size_t fp = 0;
    int has = fb_field(r, t, id, 4, what, &fp, err);
    if (has < 0)
        return -1;
    *out = has ? rd32(r->b + fp) : 0;
    return 0;
}

/* A vector field of n elements of elem bytes: *pos is its first element (absent: n 0). */
static int fb_get_vector(const fbr_t *r, const fbt_t *t, unsigned id, size_t elem, const char *what,
                         size_t *pos, size_t *n, kiln_error_t *err)
{
    size_t fp = 0, vp = 0;
    uint32_t cnt;
    int has = fb_field(r, t, id, 4, what, &fp, err);

    *n = 0;
    *pos = 0;
    if (has <= 0)
        return has;
    if (fb_deref(r, fp, what, &vp, err) < 0)
        return -1;
    cnt = rd32(r->b + vp);
    if ((uint64_t)vp + 4 + (uint64_t)cnt * elem > r->len)
        return kiln_error_set(err, 0, "zTOC: %s: vector of %u elements runs past the end", what,
                              cnt);
    *pos = vp + 4;
    *n = cnt;
    return 0;
}

/* The table a vector element (a uoffset at epos) points to. */
static int fb_elem_table(const fbr_t *r, size_t epos, const char *what, fbt_t *t, kiln_error_t *err)
{
    size_t tp = 0;
    if (fb_deref(r, epos, what, &tp, err) < 0)
        return -1;
    return fb_table_at(r, tp, what, t, err);
}

static int decode_file(const fbr_t *r, const fbt_t *t, size_t idx, kiln_ztoc_file_t *f,
                       kiln_error_t *err)
{
    char w[64];
    size_t xpos, nx;
    uint32_t u;

    snprintf(w, sizeof(w), "toc.metadata[%zu]", idx);
    if (fb_get_string(r, t, FM_NAME, w, &f->name, err) < 0 ||
        fb_get_string(r, t, FM_TYPE, w, &f->type, err) < 0 ||
        fb_get_string(r, t, FM_LINKNAME, w, &f->linkname, err) < 0 ||
        fb_get_string(r, t, FM_UNAME, w, &f->uname, err) < 0 ||
        fb_get_string(r, t, FM_GNAME, w, &f->gname, err) < 0 ||
        fb_get_string(r, t, FM_MTIME, w, &f->mod_time, err) < 0 ||
        fb_get_i64(r, t, FM_OFFSET, w, &f->offset, err) < 0 ||
        fb_get_i64(r, t, FM_SIZE, w, &f->size, err) < 0 ||
        fb_get_i64(r, t, FM_MODE, w, &f->mode, err) < 0 ||
        fb_get_i64(r, t, FM_DEVMAJOR, w, &f->devmajor, err) < 0 ||
        fb_get_i64(r, t, FM_DEVMINOR, w, &f->devminor, err) < 0 ||
        fb_get_u32(r, t, FM_UID, w, &f->uid, err) < 0 || fb_get_u32(r, t, FM_GID, w, &u, err) < 0)
        return -1;
    f->gid = u;
    if (f->offset < 0 || f->size < 0 || f->offset > INT64_MAX - f->size)
        return kiln_error_set(err, 0,
                              "zTOC: %s (%.200s): offset %lld / size %lld out of "
                              "range",
                              w, f->name, (long long)f->offset, (long long)f->size);
    if (fb_get_vector(r, t, FM_XATTRS, 4, w, &xpos, &nx, err) < 0)
        return -1;
    if (nx == 0)
        return 0;
    f->xattrs = kiln_xzalloc(nx * sizeof(*f->xattrs));
    for (size_t i = 0; i < nx; i++) {
        fbt_t xt;
        f->n_xattrs = i + 1;
        if (fb_elem_table(r, xpos + 4 * i, w, &xt, err) < 0 ||
            fb_get_string(r, &xt, 0, w, &f->xattrs[i].key, err) < 0 ||
            fb_get_string(r, &xt, 1, w, &f->xattrs[i].value, err) < 0)
            return -1;
    }
    return 0;
}

static int decode_cinfo(const fbr_t *r, const fbt_t *t, kiln_ztoc_t *z, kiln_error_t *err)
{
    size_t fp = 0, dpos, nd, cpos, ncp;
    uint32_t maxspan;
    int has = fb_field(r, t, CI_ALGO, 1, "compression_info", &fp, err);

    if (has < 0)
        return -1;
    z->algorithm = has ? (int8_t)r->b[fp] : 1;
    if (z->algorithm != 1)
        return kiln_error_set(err, 0,
                              "zTOC: compression_info.compression_algorithm %d is "
                              "not gzip (1)",
                              z->algorithm);
    if (fb_get_u32(r, t, CI_MAXSPAN, "compression_info.max_span_id", &maxspan, err) < 0)
        return -1;
    z->max_span_id = (int32_t)maxspan;
    if (fb_get_vector(r, t, CI_DIGESTS, 4, "compression_info.span_digests", &dpos, &nd, err) < 0 ||
        fb_get_vector(r, t, CI_CHECKPOINTS, 1, "compression_info.checkpoints", &cpos, &ncp, err) <
            0)
        return -1;
    if (z->max_span_id < 0 || (uint64_t)z->max_span_id + 1 != nd)
        return kiln_error_set(err, 0,
                              "zTOC: compression_info: max_span_id %d but %zu span "
                              "digests",
                              z->max_span_id, nd);
    z->span_digests = kiln_xzalloc(nd * sizeof(char *));
    for (size_t i = 0; i < nd; i++) {
        size_t sp;
        kiln_digest_t d;
        z->n_span_digests = i + 1;
        if (fb_deref(r, dpos + 4 * i, "compression_info.span_digests", &sp, err) < 0 ||
            fb_string_at(r, sp, "compression_info.span_digests", &z->span_digests[i], err) < 0)
            return -1;
        if (kiln_digest_parse(z->span_digests[i], &d, err) < 0)
            return kiln_error_prefix(err, "zTOC: compression_info.span_digests[%zu]", i);
    }
    z->checkpoints = kiln_xmalloc(ncp ? ncp : 1);
    memcpy(z->checkpoints, r->b + cpos, ncp);
    z->checkpoints_len = ncp;
    {
        _cleanup_free_ kiln_zinfo_point_t *pts = NULL;
        size_t n;
        int64_t span;
        if (kiln_zinfo_parse(z->checkpoints, ncp, &pts, &n, &span, err) < 0)
            return kiln_error_prefix(err, "zTOC: compression_info.checkpoints");
        if (n != nd)
            return kiln_error_set(err, 0,
                                  "zTOC: compression_info: %zu checkpoints but %zu "
                                  "span digests",
                                  n, nd);
    }
    return 0;
}

int kiln_ztoc_decode(const void *buf, size_t len, kiln_ztoc_t **out, kiln_error_t *err)
{
    fbr_t r = {buf, len};
    fbt_t root, toc, ci;
    size_t fp = 0, tp = 0, mpos, nm;
    kiln_ztoc_t *z;
    int has;

    if (len < 8)
        return kiln_error_set(err, 0, "zTOC: %zu bytes is too short", len);
    if (len > KILN_ZTOC_MAX_BYTES)
        return kiln_error_set(err, 0, "zTOC: %zu bytes (at most %u)", len, KILN_ZTOC_MAX_BYTES);
    if (fb_deref(&r, 0, "root", &tp, err) < 0 || fb_table_at(&r, tp, "root", &root, err) < 0)
        return -1;
    z = kiln_xzalloc(sizeof(*z));
    if (fb_get_string(&r, &root, ZT_VERSION, "version", &z->version, err) < 0 ||
        fb_get_string(&r, &root, ZT_TOOL, "build_tool_identifier", &z->build_tool, err) < 0 ||
        fb_get_i64(&r, &root, ZT_CSIZE, "compressed_archive_size", &z->compressed_size, err) < 0 ||
        fb_get_i64(&r, &root, ZT_USIZE, "uncompressed_archive_size", &z->uncompressed_size, err) <
            0)
        goto fail;
    if (strcmp(z->version, KILN_ZTOC_VERSION) != 0) {
        kiln_error_set(err, 0, "zTOC: version '%.32s' is not %s", z->version, KILN_ZTOC_VERSION);
        goto fail;
    }
    if (z->compressed_size < 0 || z->uncompressed_size < 0) {
        kiln_error_set(err, 0, "zTOC: negative archive size");
        goto fail;
    }
    if ((has = fb_field(&r, &root, ZT_TOC, 4, "toc", &fp, err)) < 0)
        goto fail;
    if (!has) {
        kiln_error_set(err, 0, "zTOC: field toc is missing");
        goto fail;
    }
    if (fb_elem_table(&r, fp, "toc", &toc, err) < 0 ||
        fb_get_vector(&r, &toc, 0, 4, "toc.metadata", &mpos, &nm, err) < 0)
        goto fail;
    if (nm > KILN_ZTOC_MAX_FILES) {
        kiln_error_set(err, 0, "zTOC: toc.metadata has %zu entries (at most %u)", nm,
                       KILN_ZTOC_MAX_FILES);
        goto fail;
    }
    z->files = kiln_xzalloc((nm ? nm : 1) * sizeof(*z->files));
    for (size_t i = 0; i < nm; i++) {
        fbt_t ft;
        z->n_files = i + 1;
        if (fb_elem_table(&r, mpos + 4 * i, "toc.metadata", &ft, err) < 0 ||
            decode_file(&r, &ft, i, &z->files[i], err) < 0)
            goto fail;
    }
    if ((has = fb_field(&r, &root, ZT_CINFO, 4, "compression_info", &fp, err)) < 0)
        goto fail;
    if (!has) {
        kiln_error_set(err, 0, "zTOC: field compression_info is missing");
        goto fail;
    }
    if (fb_elem_table(&r, fp, "compression_info", &ci, err) < 0 ||
        decode_cinfo(&r, &ci, z, err) < 0)
        goto fail;
    *out = z;
    return 0;
fail:
    kiln_ztoc_free(z);
    return -1;
}

/* ---- zinfo ---- */

int kiln_zinfo_parse(const uint8_t *blob, size_t len, kiln_zinfo_point_t **points, size_t *n,
                     int64_t *span, kiln_error_t *err)
{
    uint32_t cnt;
    kiln_zinfo_point_t *p;

    if (len < KILN_ZTOC_ZINFO_HEADER)
        return kiln_error_set(err, 0, "zinfo of %zu bytes is too short", len);
    cnt = rd32(blob);
    if (cnt == 0 || (uint64_t)cnt * KILN_ZTOC_CHECKPOINT_BYTES != len - KILN_ZTOC_ZINFO_HEADER)
        return kiln_error_set(err, 0,
                              "zinfo says %u checkpoints but holds %zu bytes (%u each after a "
                              "%d-byte header)",
                              cnt, len, KILN_ZTOC_CHECKPOINT_BYTES, KILN_ZTOC_ZINFO_HEADER);
    p = kiln_xzalloc(cnt * sizeof(*p));
    for (uint32_t i = 0; i < cnt; i++) {
        const uint8_t *c = blob + KILN_ZTOC_ZINFO_HEADER + (size_t)i * KILN_ZTOC_CHECKPOINT_BYTES;
        uint64_t in = rd64(c), o = rd64(c + 8);
        p[i].in = (int64_t)in;
        p[i].out = (int64_t)o;
        p[i].bits = c[16];
        p[i].window = c + 17;
        if (in > (uint64_t)INT64_MAX / 2 || o > (uint64_t)INT64_MAX / 2 || p[i].bits > 7 ||
            (p[i].bits && in == 0) || (i == 0 && o != 0) ||
            (i > 0 && (p[i].in <= p[i - 1].in || p[i].out <= p[i - 1].out))) {
            free(p);
            return kiln_error_set(err, 0,
                                  "zinfo checkpoint %u is malformed (in %llu, out %llu, bits %u)",
                                  i, (unsigned long long)in, (unsigned long long)o, c[16]);
        }
    }
    *span = (int64_t)rd64(blob + 4);
    *points = p;
    *n = cnt;
    return 0;
}

void kiln_zinfo_span_range(const kiln_zinfo_point_t *p, size_t n, size_t i, int64_t layer_size,
                           int64_t *start, int64_t *end)
{
    *start = p[i].in - (p[i].bits ? 1 : 0);
    *end = i + 1 < n ? p[i + 1].in : layer_size;
}
