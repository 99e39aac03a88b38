/* kiln — a directory deployed to S3 (see s3.h): its regular files walked without following
 * links, hashed and sent in parallel (small ones with PutObject, large ones by multipart
 * upload), files whose manifest entry is unchanged skipped, and the new manifest written
 * last so a failed deploy never claims files it did not upload. */
#include "utils/aws/s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/aws/s3_object.h"
#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/pathres.h"

#define MANIFEST_CAP (64u * 1024 * 1024)
#define MAX_FILES 1000000

typedef struct file_ent {
    char *rel;
    size_t size;
    unsigned char md[32];
    const char *content_type;
    const char *cache_control;
    int skip;
} file_ent_t;

typedef struct deploy {
    kiln_s3_target_t t;
    const char *dir;
    int dirfd;
    const char *prefix;
    const kiln_s3_opts_t *o;
    size_t threshold;
    size_t part_size;
    unsigned concurrency;
    file_ent_t *files;
    size_t nfiles, alloc;
    json_t *old; /* previous manifest "files" object, or NULL */
    atomic_size_t next;
    atomic_int failed;
    atomic_size_t uploaded, skipped, multipart;
    atomic_ullong bytes;
    pthread_mutex_t lock;
    kiln_error_t err;
} deploy_t;

/* Walks dir (no symlinks followed), collecting regular files. */
static int walk(deploy_t *d, int dfd, const char *rel, kiln_error_t *err)
{
    DIR *dir;
    struct dirent *e;
    int fd = dup(dfd);
    if (fd < 0)
        return kiln_error_set(err, errno, "dup");
    dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return kiln_error_set(err, errno, "reading directory %s/%s", d->dir, rel);
    }
    while ((e = readdir(dir)) != NULL) {
        struct stat st;
        _cleanup_free_ char *r = NULL;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            closedir(dir);
            return kiln_error_set(err, errno, "stat %s/%s%s%s", d->dir, rel, rel[0] ? "/" : "",
                                  e->d_name);
        }
        r = rel[0] ? kiln_xasprintf("%s/%s", rel, e->d_name) : kiln_xstrdup(e->d_name);
        if (S_ISDIR(st.st_mode)) {
            _cleanup_close_ int sub =
                openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || walk(d, sub, r, err) < 0) {
                closedir(dir);
                return sub < 0 ? kiln_error_set(err, errno, "open %s/%s", d->dir, r) : -1;
            }
        } else if (S_ISREG(st.st_mode)) {
            if (d->nfiles >= MAX_FILES) {
                closedir(dir);
                return kiln_error_set(err, E2BIG, "%s: more than %d files", d->dir, MAX_FILES);
            }
            if (d->nfiles == d->alloc) {
                d->alloc = d->alloc ? d->alloc * 2 : 256;
                d->files = kiln_xrealloc(d->files, d->alloc * sizeof(*d->files));
            }
            memset(&d->files[d->nfiles], 0, sizeof(d->files[0]));
            d->files[d->nfiles].rel = steal_pointer(&r);
            d->files[d->nfiles].size = (size_t)st.st_size;
            d->nfiles++;
        }
    }
    closedir(dir);
    return 0;
}

static int unchanged(const deploy_t *d, const file_ent_t *f)
{
    json_t *e;
    char h[65];
    if (d->old == NULL || d->o->full)
        return 0;
    e = json_object_get(d->old, f->rel);
    if (!json_is_object(e))
        return 0;
    kiln_s3_hex(f->md, 32, h);
    return json_is_string(json_object_get(e, "sha256")) &&
           strcmp(json_string_value(json_object_get(e, "sha256")), h) == 0 &&
           json_integer_value(json_object_get(e, "size")) == (json_int_t)f->size &&
           json_is_string(json_object_get(e, "content_type")) &&
           strcmp(json_string_value(json_object_get(e, "content_type")), f->content_type) == 0 &&
           json_is_string(json_object_get(e, "cache_control")) &&
           strcmp(json_string_value(json_object_get(e, "cache_control")), f->cache_control) == 0;
}

static void set_failed(deploy_t *d, const kiln_error_t *e)
{
    pthread_mutex_lock(&d->lock);
    if (!d->failed) {
        d->err = *e;
        d->failed = 1;
    }
    pthread_mutex_unlock(&d->lock);
}

/* Hashes one file and uploads it with PutObject when small and changed. */
static int process_file(deploy_t *d, kiln_http_t *http, file_ent_t *f, kiln_error_t *err)
{
    _cleanup_close_ int fd = kiln_pathres_openat(d->dirfd, f->rel, O_RDONLY | O_NOFOLLOW);
    _cleanup_free_ char *key = NULL;
    _cleanup_free_ char *mem = NULL;
    size_t got = 0;
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s/%s", d->dir, f->rel);
    f->content_type = kiln_s3_content_type(f->rel);
    f->cache_control = d->o->cache_control ? d->o->cache_control : kiln_s3_cache_control(f->rel);
    if (f->size < d->threshold) {
        /* small: read once, hash and send from memory */
        mem = kiln_xmalloc(f->size + 1);
        while (got < f->size) {
            ssize_t n = read(fd, mem + got, f->size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return kiln_error_set(err, n < 0 ? errno : EIO, "read %s/%s", d->dir, f->rel);
            got += (size_t)n;
        }
        kiln_s3_sha256(-1, 0, f->size, mem, f->md, NULL);
    } else if (kiln_s3_sha256(fd, 0, f->size, NULL, f->md, err) < 0) {
        return kiln_error_prefix(err, "%s/%s", d->dir, f->rel);
    }
    if (unchanged(d, f)) {
        f->skip = 1;
        d->skipped++;
        return 0;
    }
    if (f->size >= d->threshold)
        return 0; /* multipart, done in the second phase */
    key = kiln_s3_join_key(d->prefix, f->rel);
    if (kiln_s3_put_object(&d->t, http, key, -1, f->size, mem, f->md, f->content_type,
                           f->cache_control, err) < 0)
        return -1;
    d->uploaded++;
    d->bytes += f->size;
    return 0;
}

static void *file_worker(void *arg)
{
    deploy_t *d = arg;
    kiln_http_t *http = kiln_http_new();
    for (;;) {
        size_t i = atomic_fetch_add(&d->next, 1);
        kiln_error_t e = {0};
        if (i >= d->nfiles || d->failed)
            break;
        if (process_file(d, http, &d->files[i], &e) < 0) {
            set_failed(d, &e);
            break;
        }
    }
    kiln_http_free(http);
    return NULL;
}

static int load_manifest(deploy_t *d, kiln_http_t *http, kiln_error_t *err)
{
    _cleanup_free_ char *key = kiln_s3_join_key(d->prefix, KILN_S3_MANIFEST_NAME);
    _cleanup_free_ char *path = kiln_s3_key_path(&d->t, key);
    kiln_aws_call_t call = {.service = "s3",
                            .endpoint = &d->t.ep,
                            .method = "GET",
                            .path = path,
                            .body_fd = -1,
                            .s3 = 1,
                            .response_cap = MANIFEST_CAP};
    kiln_http_response_t resp = {0};
    json_t *j;
    if (kiln_aws_send(d->t.aws, http, &call, &resp, err) < 0)
        return kiln_error_prefix(err, "GET s3://%s/%s", d->t.bucket, key);
    if (resp.status == 404) {
        kiln_http_response_free(&resp);
        return 0;
    }
    if (resp.status != 200) {
        kiln_aws_error_from_response(&resp, err, "GET deploy manifest");
        kiln_http_response_free(&resp);
        return kiln_error_prefix(err, "s3://%s/%s", d->t.bucket, key);
    }
    j = json_loadb(resp.body, resp.body_len, 0, NULL);
    kiln_http_response_free(&resp);
    if (j && json_is_object(json_object_get(j, "files"))) {
        d->old = json_incref(json_object_get(j, "files"));
    }
    json_decref(j); /* an unreadable manifest means: upload everything */
    return 0;
}

static int write_manifest(deploy_t *d, kiln_http_t *http, kiln_error_t *err)
{
    _cleanup_free_ char *key = kiln_s3_join_key(d->prefix, KILN_S3_MANIFEST_NAME);
    _cleanup_free_ char *text = NULL;
    json_t *root = json_object(), *files = json_object();
    unsigned char md[32];
    int ret;
    for (size_t i = 0; i < d->nfiles; i++) {
        file_ent_t *f = &d->files[i];
        char h[65];
        kiln_s3_hex(f->md, 32, h);
        json_object_set_new(files, f->rel,
                            json_pack("{s:s, s:I, s:s, s:s}", "sha256", h, "size",
                                      (json_int_t)f->size, "content_type", f->content_type,
                                      "cache_control", f->cache_control));
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "prefix", json_string(d->prefix));
    json_object_set_new(root, "files", files);
    text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(1));
    json_decref(root);
    kiln_s3_sha256(-1, 0, strlen(text), text, md, NULL);
    ret = kiln_s3_put_object(&d->t, http, key, -1, strlen(text), text, md, "application/json",
                             "no-cache", err);
    return ret;
}

static void deploy_free(deploy_t *d)
{
    for (size_t i = 0; i < d->nfiles; i++)
        free(d->files[i].rel);
    free(d->files);
    if (d->old)
        json_decref(d->old);
    if (d->dirfd >= 0)
        close(d->dirfd);
    kiln_s3_target_clear(&d->t);
    pthread_mutex_destroy(&d->lock);
}

int kiln_s3_upload_dir(kiln_aws_t *aws, const char *dir, const char *dest,
                       const kiln_s3_opts_t *opts, kiln_s3_stats_t *stats, kiln_error_t *err)
{
    static const kiln_s3_opts_t defaults = {0};
    _cleanup_free_ char *bucket = NULL;
    _cleanup_free_ char *prefix = NULL;
    deploy_t d = {0};
    kiln_http_t *http = NULL;
    pthread_t th[KILN_S3_MAX_CONCURRENCY];
    unsigned nth = 0;
    int ret = -1;

    memset(stats, 0, sizeof(*stats));
    d.dirfd = -1;
    d.o = opts ? opts : &defaults;
    kiln_s3_opts_defaults(d.o, &d.threshold, &d.part_size, &d.concurrency);
    pthread_mutex_init(&d.lock, NULL);
    if (kiln_s3_parse_url(dest, &bucket, &prefix, err) < 0)
        goto out;
    d.prefix = prefix;
    d.dir = dir;
    if (kiln_s3_target_init(&d.t, aws, bucket, err) < 0)
        goto out;
    d.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.dirfd < 0) {
        kiln_error_set(err, errno, "open %s", dir);
        goto out;
    }
    if (walk(&d, d.dirfd, "", err) < 0)
        goto out;
    stats->files = d.nfiles;
    http = kiln_http_new();
    if (load_manifest(&d, http, err) < 0)
        goto out;
    for (nth = 0; nth < d.concurrency && nth < d.nfiles; nth++)
        if (pthread_create(&th[nth], NULL, file_worker, &d) != 0)
            break;
    for (unsigned i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    if (nth == 0 && d.nfiles > 0)
        file_worker(&d);
    if (d.failed) {
        if (err)
            *err = d.err;
        goto out;
    }
    for (size_t i = 0; i < d.nfiles; i++) {
        file_ent_t *f = &d.files[i];
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *key = NULL;
        unsigned long long bytes = 0;
        if (f->skip || f->size < d.threshold)
            continue;
        fd = kiln_pathres_openat(d.dirfd, f->rel, O_RDONLY | O_NOFOLLOW);
        if (fd < 0) {
            kiln_error_set(err, errno, "open %s/%s", dir, f->rel);
            goto out;
        }
        key = kiln_s3_join_key(prefix, f->rel);
        ret =
            kiln_s3_multipart_upload(&d.t, http, key, fd, f->size, f->content_type,
                                     f->cache_control, d.part_size, d.o->concurrency, &bytes, err);
        d.bytes += bytes;
        if (ret < 0)
            goto out;
        ret = -1;
        d.uploaded++;
        d.multipart++;
    }
    if (write_manifest(&d, http, err) < 0) {
        kiln_error_prefix(err, "deploy manifest");
        goto out;
    }
    ret = 0;
out:
    stats->uploaded = d.uploaded;
    stats->skipped = d.skipped;
    stats->multipart = d.multipart;
    stats->bytes = d.bytes;
    kiln_http_free(http);
    deploy_free(&d);
    return ret;
}
