/* kiln — the streaming tar walker of zTOCs (see ztoc_tar.h). It follows Go's archive/tar
 * reader, which soci's TOC builder uses, so that the TOC kiln writes is the one soci
 * would: the same names, type names, data offsets and end position. */
#include "oci/ztoc_tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utils/mem.h"

enum { ST_HEADER, ST_EXT, ST_SKIP, ST_END };

static void free_pax(kiln_ztoc_tar_t *t)
{
    for (size_t i = 0; i < t->n_pax; i++) {
        free(t->pax[i].key);
        free(t->pax[i].value);
    }
    free(t->pax);
    t->pax = NULL;
    t->n_pax = 0;
}

void kiln_ztoc_tar_clear(kiln_ztoc_tar_t *t)
{
    free_pax(t);
    free(t->ext);
    free(t->long_name);
    free(t->long_link);
    for (size_t i = 0; i < t->n_files; i++)
        kiln_ztoc_file_clear(&t->files[i]);
    free(t->files);
    memset(t, 0, sizeof(*t));
}

/* A NUL-terminated (or full) header field as a string. */
static char *field_str(const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n);
    return kiln_xstrndup((const char *)p, z ? (size_t)(z - p) : n);
}

/* A numeric header field as Go parses it: base-256 when the high bit is set, else octal
 * with leading/trailing NULs and spaces trimmed (empty = 0). */
static int field_num(const uint8_t *p, size_t n, const char *what, int64_t *out, kiln_error_t *err)
{
    size_t a = 0, b = n;
    uint64_t v = 0;

    if (p[0] & 0x80) {
        if (p[0] & 0x40)
            return kiln_error_set(err, 0, "tar header: negative %s", what);
        v = p[0] & 0x3f;
        for (size_t i = 1; i < n; i++) {
            if (v >> 55)
                return kiln_error_set(err, 0, "tar header: %s overflows", what);
            v = (v << 8) | p[i];
        }
        *out = (int64_t)v;
        return 0;
    }
    while (a < b && (p[a] == 0 || p[a] == ' '))
        a++;
    while (b > a && (p[b - 1] == 0 || p[b - 1] == ' '))
        b--;
    for (size_t i = a; i < b; i++) {
        if (p[i] < '0' || p[i] > '7' || (v >> 60))
            return kiln_error_set(err, 0, "tar header: %s field is not an octal number", what);
        v = v * 8 + (uint64_t)(p[i] - '0');
    }
    *out = (int64_t)v;
    return 0;
}

/* A decimal PAX number (non-negative, as Go's strconv.ParseInt for ids and sizes). */
static int pax_int(const char *s, const char *key, int64_t *out, kiln_error_t *err)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (*s == 0 || *end != 0 || errno != 0 || v < 0 || *s == '+' || *s == ' ')
        return kiln_error_set(err, 0, "tar PAX record %s: '%.40s' is not a number", key, s);
    *out = v;
    return 0;
}

/* A PAX time "SECONDS[.FRACTION]" as seconds and nanoseconds (Go: at most 9 digits of the
 * fraction are kept). */
static int pax_time(const char *s, int64_t *sec, long *nsec, kiln_error_t *err)
{
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
    char ibuf[32];
    long long v;
    char *end;
    int neg = s[0] == '-';
    long ns = 0;

    if (ilen == 0 || ilen >= sizeof(ibuf))
        return kiln_error_set(err, 0, "tar PAX mtime '%.40s' is malformed", s);
    memcpy(ibuf, s, ilen);
    ibuf[ilen] = 0;
    errno = 0;
    v = strtoll(ibuf, &end, 10);
    if (*end != 0 || errno != 0 || ibuf[neg] < '0' || ibuf[neg] > '9')
        return kiln_error_set(err, 0, "tar PAX mtime '%.40s' is malformed", s);
    if (dot) {
        int digits = 0;
        for (const char *p = dot + 1; *p; p++) {
            if (*p < '0' || *p > '9')
                return kiln_error_set(err, 0, "tar PAX mtime '%.40s' is malformed", s);
            if (digits < 9) {
                ns = ns * 10 + (*p - '0');
                digits++;
            }
        }
        if (dot[1] == 0)
            return kiln_error_set(err, 0, "tar PAX mtime '%.40s' is malformed", s);
        for (; digits < 9; digits++)
            ns *= 10;
        if (neg && ns) { /* Go: -1.5 is 1.5 s before the epoch */
            v -= 1;
            ns = 1000000000L - ns;
        }
    }
    *sec = v;
    *nsec = ns;
    return 0;
}

/* RFC 3339 with nanoseconds, trailing zeros dropped, UTC — Go's time.MarshalText of a
 * UTC time; "" outside years 0..9999 (where Go's MarshalText fails and soci writes ""). */
static char *format_time(int64_t sec, long nsec)
{
    struct tm tm;
    time_t tt = (time_t)sec;
    char buf[64], frac[16] = "";

    if (sec < -62167219200LL || sec > 253402300799LL || gmtime_r(&tt, &tm) == NULL)
        return kiln_xstrdup("");
    if (nsec) {
        int n = snprintf(frac, sizeof(frac), ".%09ld", nsec);
        while (n > 1 && frac[n - 1] == '0')
            frac[--n] = 0;
    }
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return kiln_xstrdup(buf);
}

static const char *pax_get(const kiln_ztoc_tar_t *t, const char *key)
{
    for (size_t i = 0; i < t->n_pax; i++)
        if (strcmp(t->pax[i].key, key) == 0)
            return t->pax[i].value;
    return NULL;
}

/* Parses "LEN KEY=VALUE\n" records (a later key replaces an earlier one). */
static int parse_pax(kiln_ztoc_tar_t *t, kiln_error_t *err)
{
    size_t p = 0;

    free_pax(t);
    while (p < t->ext_len) {
        size_t len = 0, q = p;
        const uint8_t *rec, *eq;
        char *key;
        size_t i;

        while (q < t->ext_len && t->ext[q] >= '0' && t->ext[q] <= '9' && len < 1u << 24)
            len = len * 10 + (size_t)(t->ext[q++] - '0');
        if (q == p || q >= t->ext_len || t->ext[q] != ' ' || len < (q - p) + 3 ||
            len > t->ext_len - p || t->ext[p + len - 1] != '\n')
            return kiln_error_set(err, 0, "tar PAX header: malformed record at byte %zu", p);
        rec = t->ext + q + 1;
        eq = memchr(rec, '=', (size_t)(t->ext + p + len - 1 - rec));
        if (eq == NULL || eq == rec || memchr(rec, 0, (size_t)(t->ext + p + len - 1 - rec)))
            return kiln_error_set(err, 0, "tar PAX header: malformed record at byte %zu", p);
        key = kiln_xstrndup((const char *)rec, (size_t)(eq - rec));
        for (i = 0; i < t->n_pax; i++)
            if (strcmp(t->pax[i].key, key) == 0)
                break;
        if (i == t->n_pax) {
            t->pax = kiln_xrealloc(t->pax, (t->n_pax + 1) * sizeof(*t->pax));
            t->pax[t->n_pax].key = key;
            t->pax[t->n_pax].value = NULL;
            t->n_pax++;
        } else {
            free(key);
            free(t->pax[i].value);
        }
        t->pax[i].value =
            kiln_xstrndup((const char *)eq + 1, (size_t)(t->ext + p + len - 1 - (eq + 1)));
        p += len;
    }
    return 0;
}

static int cmp_xattr(const void *a, const void *b)
{
    return strcmp(((const kiln_ztoc_xattr_t *)a)->key, ((const kiln_ztoc_xattr_t *)b)->key);
}

const char *kiln_ztoc_tar_type_name(int flag)
{
    switch (flag) {
    case '0':
        return "reg";
    case '1':
        return "hardlink";
    case '2':
        return "symlink";
    case '3':
        return "char";
    case '4':
        return "block";
    case '5':
        return "dir";
    case '6':
        return "fifo";
    }
    return NULL;
}

static int header_checksum_ok(const uint8_t *b)
{
    int64_t want;
    long u = 0, s = 0;

    if (field_num(b + 148, 8, "chksum", &want, NULL) < 0)
        return 0;
    for (int i = 0; i < 512; i++) {
        uint8_t c = (i >= 148 && i < 156) ? ' ' : b[i];
        u += c;
        s += (signed char)c;
    }
    return want == u || want == s;
}

/* An entry header (not an extension): the file recorded, the data to skip set. */
static int entry_header(kiln_ztoc_tar_t *t, const uint8_t *b, kiln_error_t *err)
{
    kiln_ztoc_file_t f = {0};
    int ustar = memcmp(b + 257,
                       "ustar\0"
                       "00",
                       8) == 0;
    int gnu = memcmp(b + 257, "ustar  \0", 8) == 0;
    int flag = b[156];
    int64_t mtime = 0, v;
    long nsec = 0;
    const char *s;

    if (flag == 0)
        flag = '0'; /* Go: TypeRegA, a dir when the name ends in '/' (below) */
    if (field_num(b + 100, 8, "mode", &f.mode, err) < 0 ||
        field_num(b + 124, 12, "size", &f.size, err) < 0 ||
        field_num(b + 136, 12, "mtime", &mtime, err) < 0)
        return -1;
    if (field_num(b + 108, 8, "uid", &v, err) < 0)
        return -1;
    f.uid = (uint32_t)v;
    if (field_num(b + 116, 8, "gid", &v, err) < 0)
        return -1;
    f.gid = (uint32_t)v;
    f.name = field_str(b, 100);
    f.linkname = field_str(b + 157, 100);
    if (ustar || gnu) {
        f.uname = field_str(b + 265, 32);
        f.gname = field_str(b + 297, 32);
        if (field_num(b + 329, 8, "devmajor", &f.devmajor, err) < 0 ||
            field_num(b + 337, 8, "devminor", &f.devminor, err) < 0)
            goto fail;
    } else {
        f.uname = kiln_xstrdup("");
        f.gname = kiln_xstrdup("");
    }
    if (ustar && b[345]) {
        char *prefix = field_str(b + 345, 155);
        char *full = kiln_xasprintf("%s/%s", prefix, f.name);
        free(prefix);
        free(f.name);
        f.name = full;
    }
    /* PAX records override the header (Go's mergePAX; empty values are ignored) */
    if ((s = pax_get(t, "path")) && *s) {
        free(f.name);
        f.name = kiln_xstrdup(s);
    }
    if ((s = pax_get(t, "linkpath")) && *s) {
        free(f.linkname);
        f.linkname = kiln_xstrdup(s);
    }
    if ((s = pax_get(t, "uname")) && *s) {
        free(f.uname);
        f.uname = kiln_xstrdup(s);
    }
    if ((s = pax_get(t, "gname")) && *s) {
        free(f.gname);
        f.gname = kiln_xstrdup(s);
    }
    if ((s = pax_get(t, "uid")) && *s) {
        if (pax_int(s, "uid", &v, err) < 0)
            goto fail;
        f.uid = (uint32_t)v;
    }
    if ((s = pax_get(t, "gid")) && *s) {
        if (pax_int(s, "gid", &v, err) < 0)
            goto fail;
        f.gid = (uint32_t)v;
    }
    if ((s = pax_get(t, "size")) && *s && pax_int(s, "size", &f.size, err) < 0)
        goto fail;
    if ((s = pax_get(t, "mtime")) && *s && pax_time(s, &mtime, &nsec, err) < 0)
        goto fail;
    if (t->long_name) {
        free(f.name);
        f.name = t->long_name;
        t->long_name = NULL;
    }
    if (t->long_link) {
        free(f.linkname);
        f.linkname = t->long_link;
        t->long_link = NULL;
    }
    if (b[156] == 0 && f.name[0] && f.name[strlen(f.name) - 1] == '/')
        flag = '5';
    if (kiln_ztoc_tar_type_name(flag) == NULL) {
        kiln_error_set(err, 0,
                       "tar entry '%.200s': type '%c' cannot be indexed by SOCI (regular files, "
                       "links, directories, devices and fifos only)",
                       f.name, flag > 32 && flag < 127 ? flag : '?');
        goto fail;
    }
    f.type = kiln_xstrdup(kiln_ztoc_tar_type_name(flag));
    f.mod_time = format_time(mtime, nsec);
    f.offset = t->pos; /* the data starts right after this header block */
    if (t->n_pax) {
        f.xattrs = t->pax;
        f.n_xattrs = t->n_pax;
        qsort(f.xattrs, f.n_xattrs, sizeof(*f.xattrs), cmp_xattr);
        t->pax = NULL;
        t->n_pax = 0;
    }
    if (t->n_files == KILN_ZTOC_MAX_FILES) {
        kiln_error_set(err, 0, "tar: more than %u entries", KILN_ZTOC_MAX_FILES);
        goto fail;
    }
    if (t->n_files == t->cap_files) {
        t->cap_files = t->cap_files ? t->cap_files * 2 : 64;
        t->files = kiln_xrealloc(t->files, t->cap_files * sizeof(*t->files));
    }
    t->files[t->n_files++] = f;
    /* header-only types carry no data whatever their size field says (Go) */
    t->skip = (flag >= '1' && flag <= '6') ? 0 : (f.size + 511) / 512 * 512;
    t->state = t->skip ? ST_SKIP : ST_HEADER;
    return 0;
fail:
    kiln_ztoc_file_clear(&f);
    return -1;
}

static int ext_done(kiln_ztoc_tar_t *t, kiln_error_t *err);

/* A complete 512-byte block in header position. */
static int header_block(kiln_ztoc_tar_t *t, kiln_error_t *err)
{
    static const uint8_t zero[512];
    const uint8_t *b = t->blk;
    int64_t size;

    if (memcmp(b, zero, 512) == 0) {
        if (++t->zeros == 2) {
            t->state = ST_END;
            t->done = 1;
            t->end = t->pos;
        }
        return 0;
    }
    if (t->zeros)
        return kiln_error_set(err, 0, "tar: a zero block followed by a header at byte %lld",
                              (long long)t->pos - 512);
    if (!header_checksum_ok(b))
        return kiln_error_set(err, 0, "tar: bad header checksum at byte %lld",
                              (long long)t->pos - 512);
    switch (b[156]) {
    case 'x':
    case 'L':
    case 'K':
        if (field_num(b + 124, 12, "size", &size, err) < 0)
            return -1;
        if (size > KILN_ZTOC_TAR_EXT_MAX)
            return kiln_error_set(err, 0,
                                  "tar: extended header of %lld bytes at byte %lld "
                                  "(at most %d)",
                                  (long long)size, (long long)t->pos - 512, KILN_ZTOC_TAR_EXT_MAX);
        t->ext_type = b[156];
        t->ext_need = (size_t)size;
        t->ext_len = 0;
        free(t->ext);
        t->ext = kiln_xmalloc(t->ext_need + 1);
        t->skip = (size + 511) / 512 * 512 - size; /* padding after the data */
        t->state = ST_EXT;
        return t->ext_need ? 0 : ext_done(t, err);
    case 'g':
        return kiln_error_set(err, 0,
                              "tar: a global PAX header (at byte %lld) cannot be "
                              "indexed by SOCI",
                              (long long)t->pos - 512);
    }
    return entry_header(t, b, err);
}

/* The extension's data is complete. */
static int ext_done(kiln_ztoc_tar_t *t, kiln_error_t *err)
{
    t->ext[t->ext_len] = 0;
    if (t->ext_type == 'x') {
        if (parse_pax(t, err) < 0)
            return -1;
    } else {
        char **slot = t->ext_type == 'L' ? &t->long_name : &t->long_link;
        free(*slot);
        *slot = field_str(t->ext, t->ext_len);
    }
    free(t->ext);
    t->ext = NULL;
    t->state = t->skip ? ST_SKIP : ST_HEADER;
    return 0;
}

int kiln_ztoc_tar_feed(kiln_ztoc_tar_t *t, const uint8_t *buf, size_t len, kiln_error_t *err)
{
    while (len > 0 && t->state != ST_END) {
        size_t n;
        switch (t->state) {
        case ST_HEADER:
            n = 512 - t->have < len ? 512 - t->have : len;
            memcpy(t->blk + t->have, buf, n);
            t->have += n;
            t->pos += (int64_t)n;
            if (t->have == 512) {
                t->have = 0;
                if (header_block(t, err) < 0)
                    return -1;
            }
            break;
        case ST_EXT:
            n = t->ext_need - t->ext_len < len ? t->ext_need - t->ext_len : len;
            memcpy(t->ext + t->ext_len, buf, n);
            t->ext_len += n;
            t->pos += (int64_t)n;
            if (t->ext_len == t->ext_need && ext_done(t, err) < 0)
                return -1;
            break;
        default: /* ST_SKIP */
            n = (uint64_t)t->skip < len ? (size_t)t->skip : len;
            t->skip -= (int64_t)n;
            t->pos += (int64_t)n;
            if (t->skip == 0)
                t->state = ST_HEADER;
            break;
        }
        buf += n;
        len -= n;
    }
    return 0;
}

int kiln_ztoc_tar_finish(kiln_ztoc_tar_t *t, kiln_error_t *err)
{
    if (t->state == ST_END)
        return 0;
    if (t->state != ST_HEADER || t->have != 0 || t->n_pax || t->long_name || t->long_link)
        return kiln_error_set(err, 0, "tar stream ends inside an entry (at byte %lld)",
                              (long long)t->pos);
    t->done = 1;
    t->end = t->pos;
    return 0;
}

static int cmp_str(const char *field, const char *a, const char *b, kiln_error_t *err)
{
    if (strcmp(a ? a : "", b ? b : "") == 0)
        return 0;
    return kiln_error_set(err, 0, "%s is '%.200s' in the zTOC but '%.200s' in the layer", field,
                          a ? a : "", b ? b : "");
}

static int cmp_num(const char *field, int64_t a, int64_t b, kiln_error_t *err)
{
    if (a == b)
        return 0;
    return kiln_error_set(err, 0, "%s is %lld in the zTOC but %lld in the layer", field,
                          (long long)a, (long long)b);
}

int kiln_ztoc_file_compare(const kiln_ztoc_file_t *a, const kiln_ztoc_file_t *b, kiln_error_t *err)
{
    if (cmp_str("name", a->name, b->name, err) < 0 || cmp_str("type", a->type, b->type, err) < 0 ||
        cmp_num("data offset", a->offset, b->offset, err) < 0 ||
        cmp_num("size", a->size, b->size, err) < 0 ||
        cmp_str("linkname", a->linkname, b->linkname, err) < 0 ||
        cmp_num("mode", a->mode, b->mode, err) < 0 || cmp_num("uid", a->uid, b->uid, err) < 0 ||
        cmp_num("gid", a->gid, b->gid, err) < 0 || cmp_str("uname", a->uname, b->uname, err) < 0 ||
        cmp_str("gname", a->gname, b->gname, err) < 0 ||
        cmp_str("mod_time", a->mod_time, b->mod_time, err) < 0 ||
        cmp_num("devmajor", a->devmajor, b->devmajor, err) < 0 ||
        cmp_num("devminor", a->devminor, b->devminor, err) < 0 ||
        cmp_num("PAX record count", (int64_t)a->n_xattrs, (int64_t)b->n_xattrs, err) < 0)
        return -1;
    for (size_t i = 0; i < a->n_xattrs; i++)
        if (cmp_str("PAX record key", a->xattrs[i].key, b->xattrs[i].key, err) < 0 ||
            cmp_str("PAX record value", a->xattrs[i].value, b->xattrs[i].value, err) < 0)
            return -1;
    return 0;
}
