/* kiln — how objects are described on S3 (see s3.h): Content-Type from the name's extension,
 * and the Cache-Control policy (immutable for content-hashed names, revalidated for HTML and
 * the rest). */
#include "utils/aws/s3.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"eot", "application/vnd.ms-fontobject"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"wav", "audio/wav"},
};

const char *kiln_s3_content_type(const char *name)
{
    const char *base = strrchr(name, '/');
    const char *dot = strrchr(base ? base + 1 : name, '.');
    if (dot == NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]); i++)
        if (strcasecmp(dot + 1, content_types[i].ext) == 0)
            return content_types[i].type;
    return "application/octet-stream";
}

/* A token looks like a content hash: 8+ hex characters with a digit, or 8-32
 * base64url characters mixing upper case, lower case and digits/-/_ (the
 * style of Vite and esbuild). */
static int hash_like(const char *t, size_t n)
{
    int hex = 1, digit = 0, upper = 0, lower = 0, other = 0;
    if (n < 8 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (isdigit(c))
            digit = 1;
        else if (isupper(c))
            upper = 1;
        else if (islower(c))
            lower = 1;
        else if (c == '_' || c == '-')
            other = 1;
        else
            return 0;
        if (!isxdigit(c) || isupper(c))
            hex = 0;
    }
    if (hex && digit)
        return 1;
    return n <= 32 && upper && lower && (digit || other || n == 8);
}

const char *kiln_s3_cache_control(const char *name)
{
    const char *base = strrchr(name, '/');
    const char *p;
    size_t len;
    const char *ext;
    base = base ? base + 1 : name;
    ext = strrchr(base, '.');
    if (ext && (strcasecmp(ext, ".html") == 0 || strcasecmp(ext, ".htm") == 0))
        return KILN_S3_CACHE_HTML;
    len = ext ? (size_t)(ext - base) : strlen(base);
    /* tokens after the first one, split on '.', '-' and '_' is too eager for
     * base64url hashes containing '-': split on '.' and on the last '-' */
    p = memchr(base, '.', len);
    while (p && p < base + len) {
        const char *next = memchr(p + 1, '.', (size_t)(base + len - p - 1));
        const char *tend = next ? next : base + len;
        if (hash_like(p + 1, (size_t)(tend - p - 1)))
            return KILN_S3_CACHE_IMMUTABLE;
        p = next;
    }
    p = NULL;
    for (const char *q = base; q < base + len; q++)
        if (*q == '-')
            p = q;
    if (p && p > base) {
        const char *tend = memchr(p, '.', (size_t)(base + len - p));
        if (hash_like(p + 1, (size_t)((tend ? tend : base + len) - p - 1)))
            return KILN_S3_CACHE_IMMUTABLE;
    }
    return KILN_S3_CACHE_DEFAULT;
}
