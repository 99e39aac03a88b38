/* kiln — the S3 output spec (-o type=s3,dest=s3://bucket/prefix,...): s3:// URLs, sizes and
 * the keys an s3 output takes, each bad value refused naming it. */
#include "utils/aws/s3.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/size.h"

int kiln_s3_parse_url(const char *url, char **bucket, char **prefix, kiln_error_t *err)
{
    const char *b, *slash;
    _cleanup_free_ char *bk = NULL;
    char *px;
    size_t n;
    if (strncmp(url, "s3://", 5) != 0)
        return kiln_error_set(err, EINVAL, "'%s' is not an s3://bucket/prefix URL", url);
    b = url + 5;
    slash = strchr(b, '/');
    bk = slash ? kiln_xstrndup(b, (size_t)(slash - b)) : kiln_xstrdup(b);
    n = strlen(bk);
    if (n < 3 || n > 63)
        return kiln_error_set(err, EINVAL, "'%s': bucket name must be 3 to 63 characters", url);
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)bk[i]) || isdigit((unsigned char)bk[i]) || bk[i] == '-' ||
              bk[i] == '.'))
            return kiln_error_set(err, EINVAL, "'%s': bad character '%c' in bucket name", url,
                                  bk[i]);
    slash = slash ? slash : b + strlen(b);
    while (*slash == '/')
        slash++;
    px = kiln_xstrdup(slash);
    n = strlen(px);
    while (n > 0 && px[n - 1] == '/')
        px[--n] = '\0';
    *bucket = steal_pointer(&bk);
    *prefix = px;
    return 0;
}

int kiln_s3_parse_size(const char *s, size_t *out)
{
    uint64_t v;

    if (kiln_size_parse(s, &v, NULL) < 0 || v > SIZE_MAX)
        return -1;
    *out = (size_t)v;
    return 0;
}

void kiln_s3_output_clear(kiln_s3_output_t *out)
{
    free(out->dest);
    free(out->cache_control);
    memset(out, 0, sizeof(*out));
}

static const char *const output_keys[] = {
    "type", "dest", "cache-control", "part-size", "multipart-threshold", "concurrency", "full",
};

/* Length of the known key `tok` starts with (followed by '='), or 0. */
static size_t known_key(const char *tok, size_t len)
{
    for (size_t i = 0; i < sizeof(output_keys) / sizeof(output_keys[0]); i++) {
        size_t kl = strlen(output_keys[i]);
        if (len > kl && tok[kl] == '=' && strncmp(tok, output_keys[i], kl) == 0)
            return kl;
    }
    return 0;
}

int kiln_s3_output_parse(const char *spec, kiln_s3_output_t *out, kiln_error_t *err)
{
    kiln_s3_output_t o = {0};
    const char *p = spec;
    int is_s3 = 0;

    while (*p) {
        const char *start = p, *end;
        size_t kl;
        _cleanup_free_ char *val = NULL;
        while (*p == ' ')
            p++;
        kl = known_key(p, strlen(p));
        if (kl == 0) {
            kiln_error_set(err, EINVAL, "--output '%s': unknown field at '%s'", spec, start);
            goto fail;
        }
        /* the value runs to the next ",<known key>=" */
        end = p + kl + 1;
        for (;;) {
            const char *comma = strchr(end, ',');
            const char *q;
            if (comma == NULL) {
                end += strlen(end);
                break;
            }
            q = comma + 1;
            while (*q == ' ')
                q++;
            if (known_key(q, strlen(q))) {
                end = comma;
                break;
            }
            end = comma + 1;
        }
        val = kiln_xstrndup(p + kl + 1, (size_t)(end - p - kl - 1));
        if (strncmp(p, "type", kl) == 0 && kl == 4) {
            if (strcmp(val, "s3") != 0) {
                kiln_error_set(err, EINVAL, "--output '%s': type must be s3", spec);
                goto fail;
            }
            is_s3 = 1;
        } else if (kl == 4 && strncmp(p, "dest", 4) == 0) {
            free(o.dest);
            o.dest = steal_pointer(&val);
        } else if (kl == 13 && strncmp(p, "cache-control", 13) == 0) {
            free(o.cache_control);
            o.cache_control = steal_pointer(&val);
        } else if (kl == 4 && strncmp(p, "full", 4) == 0) {
            o.opts.full = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
        } else {
            size_t n = 0;
            if (kiln_s3_parse_size(val, &n) < 0 || (kl == 11 && (n == 0 || n > 64))) {
                kiln_error_set(err, EINVAL, "--output '%s': bad %.*s '%s'", spec, (int)kl, p, val);
                goto fail;
            }
            if (kl == 9)
                o.opts.part_size = n;
            else if (kl == 19)
                o.opts.multipart_threshold = n;
            else
                o.opts.concurrency = (unsigned)n;
        }
        p = *end ? end + 1 : end;
    }
    if (!is_s3 || o.dest == NULL) {
        kiln_error_set(err, EINVAL, "--output '%s': needs type=s3 and dest=s3://BUCKET/PREFIX",
                       spec);
        goto fail;
    }
    if (strncmp(o.dest, "s3://", 5) != 0) {
        kiln_error_set(err, EINVAL, "--output '%s': dest must be an s3:// URL", spec);
        goto fail;
    }
    o.opts.cache_control = o.cache_control;
    *out = o;
    return 0;
fail:
    kiln_s3_output_clear(&o);
    return -1;
}
