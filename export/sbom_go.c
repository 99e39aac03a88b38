/* kiln — Go build information of a binary (see sbom_go.h). */
#include "export/sbom_go.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define ELF_MAGIC                                                                                  \
    "\x7f"                                                                                         \
    "ELF"

/* A uvarint at data[*p] (Go's encoding/binary): 1 read, 0 when the bytes end first, -1 when
 * it is longer than 10 bytes or overflows. */
static int uvarint(const unsigned char *data, size_t len, size_t *p, uint64_t *out)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < 10; i++) {
        unsigned char b;
        if (*p >= len)
            return 0;
        b = data[(*p)++];
        if (i == 9 && b > 1)
            return -1;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = v;
            return 1;
        }
    }
    return -1;
}

/* A field of a module line: no control character, space or DEL (a path or version never has
 * one; a hostile one could forge SPDX or purl text). */
static int field_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
            return 0;
    return 1;
}

static void module_clear(kiln_go_module_t *m)
{
    free(m->path);
    free(m->version);
    free(m->sum);
    memset(m, 0, sizeof(*m));
}

/* "MODULE\tVERSION[\tSUM]" (rest of a mod, dep or => line) into m; -1 when malformed. */
static int module_fields(const char *s, size_t n, kiln_go_module_t *m)
{
    const char *f[3] = {0};
    size_t fl[3] = {0}, k = 0, start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '\t')
            continue;
        if (k == 3)
            return -1;
        f[k] = s + start;
        fl[k++] = i - start;
        start = i + 1;
    }
    if (k < 2 || !field_ok(f[0], fl[0]) || !field_ok(f[1], fl[1]) ||
        (k == 3 && fl[2] && !field_ok(f[2], fl[2])))
        return -1;
    module_clear(m);
    m->path = kiln_xstrndup(f[0], fl[0]);
    m->version = kiln_xstrndup(f[1], fl[1]);
    if (k == 3 && fl[2])
        m->sum = kiln_xstrndup(f[2], fl[2]);
    return 0;
}

/* The module information's lines into out; -1 with err naming the line that is malformed. */
static int parse_modinfo(const char *mod, size_t n, kiln_go_buildinfo_t *out, kiln_error_t *err)
{
    kiln_go_module_t *last = NULL;
    size_t line_no = 0;

    /* the linker frames it with 16 sentinel bytes each side */
    if (n >= 33 && mod[n - 17] == '\n') {
        mod += 16;
        n -= 32;
    }
    while (n > 0) {
        const char *nl = memchr(mod, '\n', n);
        size_t ll = nl ? (size_t)(nl - mod) : n;
        kiln_go_module_t *m = NULL;

        line_no++;
        if (ll > 5 && strncmp(mod, "path\t", 5) == 0) {
            if (!field_ok(mod + 5, ll - 5))
                return kiln_error_set(err, 0, "go build info line %zu: a bad path", line_no);
            free(out->path);
            out->path = kiln_xstrndup(mod + 5, ll - 5);
        } else if (ll > 4 && strncmp(mod, "mod\t", 4) == 0) {
            m = &out->main;
            if (module_fields(mod + 4, ll - 4, m) < 0)
                goto bad;
            last = m;
        } else if (ll > 4 && strncmp(mod, "dep\t", 4) == 0) {
            if (out->n_deps >= KILN_GO_DEPS_MAX)
                return kiln_error_set(err, 0, "go build info: more than %u modules",
                                      KILN_GO_DEPS_MAX);
            out->deps = kiln_xrealloc(out->deps, (out->n_deps + 1) * sizeof(*out->deps));
            m = &out->deps[out->n_deps];
            memset(m, 0, sizeof(*m));
            if (module_fields(mod + 4, ll - 4, m) < 0)
                goto bad;
            out->n_deps++;
            last = m;
        } else if (ll > 3 && strncmp(mod, "=>\t", 3) == 0) {
            /* what was compiled is the replacement: it stands for the module */
            if (last == NULL || module_fields(mod + 3, ll - 3, last) < 0)
                goto bad;
            last = NULL;
        }
        /* build settings and lines of later Go releases: not packages */
        if (nl == NULL)
            break;
        n -= ll + 1;
        mod = nl + 1;
    }
    return 0;
bad:
    return kiln_error_set(err, 0, "go build info line %zu: a malformed module line", line_no);
}

int kiln_go_buildinfo_parse(const unsigned char *data, size_t len, kiln_go_buildinfo_t *out,
                            kiln_error_t *err)
{
    kiln_go_buildinfo_t bi = {0};
    uint64_t vlen, mlen;
    size_t p = KILN_GO_BUILDINFO_HEADER;
    int r;

    memset(out, 0, sizeof(*out));
    if (len < KILN_GO_BUILDINFO_HEADER)
        return 0;
    if (memcmp(data, KILN_GO_BUILDINFO_MAGIC, KILN_GO_BUILDINFO_MAGIC_LEN) != 0)
        return kiln_error_set(err, 0, "go build info: no magic");
    if (data[14] != 4 && data[14] != 8)
        return kiln_error_set(err, 0, "go build info: pointer size %u", data[14]);
    if ((data[15] & 2) == 0)
        return kiln_error_set(err, 0,
                              "go build info: the pointer form of Go before 1.18 (not read)");
    if ((r = uvarint(data, len, &p, &vlen)) <= 0)
        return r == 0 ? 0 : kiln_error_set(err, 0, "go build info: a bad version length");
    if (vlen > KILN_GO_VERSION_MAX)
        return kiln_error_set(err, 0, "go build info: a version longer than %u bytes",
                              KILN_GO_VERSION_MAX);
    if (len - p < vlen)
        return 0;
    if (!field_ok((const char *)data + p, (size_t)vlen))
        return kiln_error_set(err, 0, "go build info: a bad Go version");
    bi.go_version = kiln_xstrndup((const char *)data + p, (size_t)vlen);
    p += (size_t)vlen;
    if ((r = uvarint(data, len, &p, &mlen)) <= 0 || mlen > KILN_GO_MODINFO_MAX) {
        kiln_go_buildinfo_clear(&bi);
        if (r == 0)
            return 0;
        return kiln_error_set(err, 0, "go build info: module information over %u bytes",
                              KILN_GO_MODINFO_MAX);
    }
    if (len - p < mlen) {
        kiln_go_buildinfo_clear(&bi);
        return 0;
    }
    if (parse_modinfo((const char *)data + p, (size_t)mlen, &bi, err) < 0) {
        kiln_go_buildinfo_clear(&bi);
        return -1;
    }
    bi.len = p + (size_t)mlen;
    *out = bi;
    return 1;
}

void kiln_go_buildinfo_clear(kiln_go_buildinfo_t *bi)
{
    free(bi->go_version);
    free(bi->path);
    module_clear(&bi->main);
    for (size_t i = 0; i < bi->n_deps; i++)
        module_clear(&bi->deps[i]);
    free(bi->deps);
    memset(bi, 0, sizeof(*bi));
}

char *kiln_go_sum_hex(const char *sum)
{
    unsigned char raw[36];
    char *hex;

    /* "h1:" + 44 base64 characters, the last one '=': 32 bytes (33 decoded with the pad) */
    if (sum == NULL || strncmp(sum, "h1:", 3) != 0 || strlen(sum) != 47 || sum[45] == '=' ||
        sum[46] != '=' ||
        strspn(sum + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                        "0123456789+/") != 43)
        return NULL;
    if (EVP_DecodeBlock(raw, (const unsigned char *)sum + 3, 44) != 33)
        return NULL;
    hex = kiln_xmalloc(65);
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    return hex;
}

/* ---- scanning an executable as it streams ---- */

static void scan_append(kiln_go_scan_t *s, const unsigned char *d, size_t n)
{
    if (s->cap - s->n < n) {
        s->cap = s->n + n + 4096;
        s->buf = kiln_xrealloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->n, d, n);
    s->n += n;
}

static void scan_drop(kiln_go_scan_t *s, size_t k)
{
    memmove(s->buf, s->buf + k, s->n - k);
    s->n -= k;
    s->off += k;
}

/* Looks for the magic in what is buffered; keeps only what a later chunk may complete. */
static void scan_search(kiln_go_scan_t *s)
{
    size_t i = (16 - s->off % 16) % 16;

    for (; i + KILN_GO_BUILDINFO_MAGIC_LEN <= s->n; i += 16) {
        if (s->buf[i] == 0xff &&
            memcmp(s->buf + i, KILN_GO_BUILDINFO_MAGIC, KILN_GO_BUILDINFO_MAGIC_LEN) == 0) {
            scan_drop(s, i);
            s->state = 2;
            return;
        }
    }
    scan_drop(s, i < s->n ? i : s->n);
}

/* Collecting: the blob parsed once enough bytes are there; a malformed one (a stray magic)
 * is skipped and the search goes on past it. at_end: no more bytes will come. */
static void scan_collect(kiln_go_scan_t *s, int at_end)
{
    while (s->state == 2) {
        kiln_error_t e = {0};
        int r = kiln_go_buildinfo_parse(s->buf, s->n, &s->info, &e);
        if (r == 1) {
            s->state = 3;
            return;
        }
        if (r == 0 && !at_end && s->n < KILN_GO_BUILDINFO_MAX)
            return; /* more bytes needed */
        scan_drop(s, s->n < 16 ? s->n : 16);
        s->state = 1;
        scan_search(s);
    }
}

int kiln_go_scan_feed(kiln_go_scan_t *s, const void *data, size_t len, kiln_error_t *err)
{
    (void)err;
    if (s->state >= 3 || len == 0)
        return 0;
    scan_append(s, data, len);
    if (s->state == 0) {
        if (s->n < 4)
            return 0;
        if (memcmp(s->buf, ELF_MAGIC, 4) != 0) {
            s->state = 4;
            free(s->buf);
            s->buf = NULL;
            s->n = s->cap = 0;
            return 0;
        }
        s->state = 1;
    }
    if (s->state == 1)
        scan_search(s);
    scan_collect(s, 0);
    return 0;
}

int kiln_go_scan_finish(kiln_go_scan_t *s, kiln_error_t *err)
{
    (void)err;
    scan_collect(s, 1);
    return s->state == 3;
}

int kiln_go_scan_done(const kiln_go_scan_t *s)
{
    return s->state >= 3;
}

void kiln_go_scan_clear(kiln_go_scan_t *s)
{
    free(s->buf);
    kiln_go_buildinfo_clear(&s->info);
    memset(s, 0, sizeof(*s));
}
