/* kiln — Go checksum database lookups through a module proxy (see sumdb.h). */
#include "utils/sumdb.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

/* sum.golang.org's verifier key
 * "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8": key hash 0x033de0ae,
 * algorithm 1 (Ed25519), the public key below. */
#define SUMDB_NAME "sum.golang.org"
static const unsigned char sumdb_keyhash[4] = {0x03, 0x3d, 0xe0, 0xae};
static const unsigned char sumdb_key[32] = {
    0xce, 0x33, 0x72, 0xd7, 0x5a, 0xd1, 0xee, 0x5e, 0xcd, 0xaf, 0x87, 0x27, 0x29, 0x3d, 0x4b, 0x11,
    0x1d, 0x87, 0xeb, 0x37, 0x53, 0x1d, 0x7c, 0x86, 0xd4, 0xd3, 0x00, 0x3f, 0x0e, 0xb8, 0x09, 0xfc};

#define LOOKUP_CAP (64 * 1024)
#define TILE_H 8
#define TILE_W (1 << TILE_H)
#define TILES_MAX 32

typedef struct tile {
    char *path;
    unsigned char *data; /* w * 32 bytes */
    int w;
} tile_t;

typedef struct proof {
    kiln_http_t *h;
    const char *base; /* <proxy>/sumdb/sum.golang.org */
    long long size;   /* records in the signed tree */
    long long rec;    /* the record's index */
    unsigned char leaf[32];
    tile_t tiles[TILES_MAX];
    size_t n_tiles;
} proof_t;

char *kiln_sumdb_tile_path(int level, long long n, int w)
{
    char num[96], tmp[96];

    snprintf(num, sizeof(num), "%03lld", n % 1000);
    for (long long m = n / 1000; m > 0; m /= 1000) {
        snprintf(tmp, sizeof(tmp), "x%03lld/%s", m % 1000, num);
        memcpy(num, tmp, sizeof(num));
    }
    if (w == TILE_W)
        return kiln_xasprintf("tile/%d/%d/%s", TILE_H, level, num);
    return kiln_xasprintf("tile/%d/%d/%s.p/%d", TILE_H, level, num, w);
}

/* GETs base/path (capped) into *resp; fails unless HTTP 200. */
static int get(kiln_http_t *h, const char *url, size_t cap, kiln_http_response_t *resp,
               kiln_error_t *err)
{
    kiln_http_request_t req = {
        .method = "GET", .url = url, .body_fd = -1, .response_cap = cap, .timeout_seconds = 120};

    if (kiln_http_do(h, &req, resp, err) < 0)
        return -1;
    if (resp->status != 200) {
        long st = resp->status;
        kiln_http_response_free(resp);
        return kiln_error_set(err, 0, "GET %s: HTTP %ld", url, st);
    }
    return 0;
}

static void sha256_2(const void *a, size_t al, const void *b, size_t bl, const void *c, size_t cl,
                     unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, a, al);
    EVP_DigestUpdate(ctx, b, bl);
    if (c)
        EVP_DigestUpdate(ctx, c, cl);
    EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
}

/* RFC 6962 interior node: SHA-256(0x01 || left || right). */
static void node_hash(const unsigned char *l, const unsigned char *r, unsigned char out[32])
{
    static const unsigned char one = 1;
    sha256_2(&one, 1, l, 32, r, 32, out);
}

/* The tile of level tl, index n, the tree's width there (fetched once per proof). */
static const tile_t *tile(proof_t *p, int tl, long long n, kiln_error_t *err)
{
    long long count = p->size >> (TILE_H * tl);
    int w = (int)(count - n * TILE_W > TILE_W ? TILE_W : count - n * TILE_W);
    _cleanup_free_ char *path = kiln_sumdb_tile_path(tl, n, w), *url = NULL;
    kiln_http_response_t resp = {0};
    tile_t *t;

    for (size_t i = 0; i < p->n_tiles; i++)
        if (strcmp(p->tiles[i].path, path) == 0)
            return &p->tiles[i];
    if (p->n_tiles >= TILES_MAX) {
        kiln_error_set(err, 0, "checksum database: more than %d tiles for one proof", TILES_MAX);
        return NULL;
    }
    url = kiln_xasprintf("%s/%s", p->base, path);
    if (get(p->h, url, (size_t)w * 32 + 1, &resp, err) < 0)
        return NULL;
    if (resp.body_len != (size_t)w * 32) {
        kiln_error_set(err, 0, "GET %s: %zu bytes, a tile of width %d has %d", url, resp.body_len,
                       w, w * 32);
        kiln_http_response_free(&resp);
        return NULL;
    }
    t = &p->tiles[p->n_tiles++];
    t->path = steal_pointer(&path);
    t->data = (unsigned char *)resp.body;
    t->w = w;
    resp.body = NULL;
    kiln_http_response_free(&resp);
    return t;
}

/* The stored hash of the complete subtree at `level`, index k (2^level records from
 * k << level): from the bottom row of its tile level, combined up. */
static int stored(proof_t *p, int level, long long k, unsigned char out[32], kiln_error_t *err)
{
    int tl = level / TILE_H, r = level % TILE_H;
    long long first = k << r;
    const tile_t *t = tile(p, tl, first / TILE_W, err);
    unsigned char row[TILE_W][32];
    int n = 1 << r, off = (int)(first % TILE_W);

    if (t == NULL)
        return -1;
    if (off + n > t->w)
        return kiln_error_set(err, 0, "checksum database: tile %s is too narrow", t->path);
    memcpy(row, t->data + (size_t)off * 32, (size_t)n * 32);
    for (; n > 1; n /= 2)
        for (int i = 0; i < n / 2; i++)
            node_hash(row[2 * i], row[2 * i + 1], row[i]);
    memcpy(out, row[0], 32);
    return 0;
}

/* The Merkle tree hash of records [lo, hi) with the record's own leaf hash in place
 * of the database's: equal to the signed root only when the record is in the tree. */
static int range_hash(proof_t *p, long long lo, long long hi, unsigned char out[32],
                      kiln_error_t *err)
{
    long long n = hi - lo, k = 1;
    unsigned char l[32], r[32];
    int level = 0;

    if (n == 1 && lo == p->rec) {
        memcpy(out, p->leaf, 32);
        return 0;
    }
    if ((n & (n - 1)) == 0 && (p->rec < lo || p->rec >= hi)) {
        while ((1LL << level) < n)
            level++;
        return stored(p, level, lo >> level, out, err);
    }
    while (k * 2 < n)
        k *= 2;
    if (range_hash(p, lo, lo + k, l, err) < 0 || range_hash(p, lo + k, hi, r, err) < 0)
        return -1;
    node_hash(l, r, out);
    return 0;
}

/* Checks the signed note "go.sum database tree\nSIZE\nHASH\n\n— sum.golang.org SIG\n…" and
 * reads its size and root hash. */
static int check_note(const char *note, long long *size, unsigned char root[32], const char *url,
                      kiln_error_t *err)
{
    static const char dash[] = "\xe2\x80\x94 " SUMDB_NAME " ";
    const char *sep = strstr(note, "\n\n"), *line;
    unsigned char sig[96], hash[40];
    size_t textlen;
    EVP_PKEY *key;
    EVP_MD_CTX *ctx;
    int ok = 0, n;
    char *end;

    if (sep == NULL || strncmp(note, "go.sum database tree\n", 21) != 0)
        return kiln_error_set(err, 0, "%s: no signed tree head in the answer", url);
    textlen = (size_t)(sep - note) + 1;
    for (line = sep + 2; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
        size_t l = strcspn(line, "\n");
        if (strncmp(line, dash, sizeof(dash) - 1) != 0 || l - (sizeof(dash) - 1) > 100)
            continue;
        n = EVP_DecodeBlock(sig, (const unsigned char *)line + sizeof(dash) - 1,
                            (int)(l - (sizeof(dash) - 1)));
        /* 4-byte key hash + 64-byte signature: 68 bytes, 92 base64 chars (EVP counts padding) */
        if (n != 69 && n != 68)
            continue;
        if (memcmp(sig, sumdb_keyhash, 4) != 0)
            continue;
        key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, sumdb_key, 32);
        ctx = EVP_MD_CTX_new();
        ok = key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig + 4, 64, (const unsigned char *)note, textlen) == 1;
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(key);
        break;
    }
    if (!ok)
        return kiln_error_set(err, 0, "%s: the tree head is not signed by " SUMDB_NAME, url);
    *size = strtoll(note + 21, &end, 10);
    if (*end != '\n' || *size <= 0 || strcspn(end + 1, "\n") != 44 ||
        EVP_DecodeBlock(hash, (const unsigned char *)end + 1, 44) != 33)
        return kiln_error_set(err, 0, "%s: malformed tree head", url);
    memcpy(root, hash, 32);
    return 0;
}

/* The h1 of "<module> <version> h1:…" in the record text, or NULL. */
static char *record_h1(const char *data, size_t len, const char *module, const char *version)
{
    _cleanup_free_ char *want = kiln_xasprintf("%s %s h1:", module, version);
    size_t wl = strlen(want);

    for (const char *p = data; p < data + len;) {
        const char *nl = memchr(p, '\n', (size_t)(data + len - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
        if (l == wl + 44 && strncmp(p, want, wl) == 0)
            return kiln_xstrndup(p + wl - 3, 47);
        p += l + 1;
    }
    return NULL;
}

int kiln_sumdb_lookup(kiln_http_t *h, const char *proxy, const char *module, const char *version,
                      char **h1, kiln_error_t *err)
{
    _cleanup_free_ char *base = kiln_xasprintf("%s/sumdb/" SUMDB_NAME, proxy);
    _cleanup_free_ char *url = kiln_xasprintf("%s/supported", base), *found = NULL;
    kiln_http_response_t resp = {0};
    proof_t p = {.h = h, .base = base};
    unsigned char root[32], got[32];
    static const unsigned char zero = 0;
    const char *body, *data, *sep;
    char *end;
    int ret = -1;

    if (get(h, url, 1024, &resp, err) < 0)
        return kiln_error_prefix(err, "the proxy %s does not serve the Go checksum database",
                                 proxy);
    kiln_http_response_free(&resp);
    free(url);
    url = kiln_xasprintf("%s/lookup/%s@%s", base, module, version);
    if (get(h, url, LOOKUP_CAP, &resp, err) < 0)
        return -1;
    body = resp.body;
    p.rec = strtoll(body, &end, 10);
    data = end + 1;
    if (end == body || *end != '\n' || p.rec < 0 || (sep = strstr(data, "\n\n")) == NULL) {
        kiln_error_set(err, 0, "%s: malformed answer", url);
        goto out;
    }
    if (check_note(sep + 2, &p.size, root, url, err) < 0)
        goto out;
    if (p.rec >= p.size) {
        kiln_error_set(err, 0, "%s: record %lld is outside the signed tree of %lld", url, p.rec,
                       p.size);
        goto out;
    }
    /* the leaf: SHA-256(0x00 || record data), the data ending with its last newline */
    sha256_2(&zero, 1, data, (size_t)(sep - data) + 1, NULL, 0, p.leaf);
    if (range_hash(&p, 0, p.size, got, err) < 0)
        goto out;
    if (memcmp(got, root, 32) != 0) {
        kiln_error_set(err, 0, "%s: the record is not in the signed tree (inclusion proof failed)",
                       url);
        goto out;
    }
    found = record_h1(data, (size_t)(sep - data) + 1, module, version);
    if (found == NULL) {
        kiln_error_set(err, 0, "%s: the record has no h1 for %s %s", url, module, version);
        goto out;
    }
    *h1 = steal_pointer(&found);
    ret = 0;
out:
    for (size_t i = 0; i < p.n_tiles; i++) {
        free(p.tiles[i].path);
        free(p.tiles[i].data);
    }
    kiln_http_response_free(&resp);
    return ret;
}
