/* kiln — registry flags, progress printing and remote inspect for the CLI. */
#include "src/cli_registry.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/docker_archive.h"
#include "oci/imagestore.h"
#include "oci/layout.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

static void strv_add(char ***v, const char *s)
{
    size_t n = 0;
    while (*v != NULL && (*v)[n] != NULL)
        n++;
    *v = kiln_xrealloc(*v, (n + 2) * sizeof(char *));
    (*v)[n] = kiln_xstrdup(s);
    (*v)[n + 1] = NULL;
}

void kiln_cli_registry_init(kiln_cli_registry_t *cr)
{
    memset(cr, 0, sizeof(*cr));
    kiln_registry_opts_init(&cr->opts);
    cr->progress = KILN_PROGRESS_AUTO;
    cr->tty = isatty(STDERR_FILENO);
    snprintf(cr->os, sizeof(cr->os), "linux");
    snprintf(cr->arch, sizeof(cr->arch), "amd64");
}

void kiln_cli_registry_free(kiln_cli_registry_t *cr)
{
    kiln_strv_free(cr->mirrors);
    kiln_strv_free(cr->insecure);
    cr->mirrors = cr->insecure = NULL;
}

int kiln_cli_registry_end(kiln_cli_registry_t *cr, kiln_registry_t *r, kiln_store_t *s, int rc)
{
    kiln_store_close(s);
    kiln_registry_free(r);
    kiln_cli_registry_free(cr);
    return rc;
}

int kiln_cli_registry_finish(kiln_cli_registry_t *cr, kiln_registry_t *r, kiln_store_t *s, int rc,
                             const kiln_error_t *err)
{
    if (rc == KILN_EXIT_FAIL)
        rc = kiln_cli_fail(err);
    return kiln_cli_registry_end(cr, r, s, rc);
}

static int parse_num(const char *cmd, const char *flag, const char *arg, long min, long max,
                     long *out)
{
    char *end;
    long n;
    errno = 0;
    n = strtol(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || n < min || n > max) {
        kiln_cli_usage_error(cmd, "%s wants a number from %ld to %ld, not '%s'", flag, min, max,
                             arg);
        return -1;
    }
    *out = n;
    return 0;
}

int kiln_cli_registry_opt(kiln_cli_registry_t *cr, const char *cmd, int c, const char *arg)
{
    long n;
    switch (c) {
    case KILN_OPT_MIRROR:
        if (strchr(arg, '=') == NULL) {
            kiln_cli_usage_error(cmd, "--registry-mirror wants SRC=HOST[/PREFIX], not '%s'", arg);
            return -1;
        }
        strv_add(&cr->mirrors, arg);
        return 1;
    case KILN_OPT_INSECURE:
        strv_add(&cr->insecure, arg);
        return 1;
    case KILN_OPT_CA:
        cr->opts.ca_file = arg;
        return 1;
    case KILN_OPT_REGCONFIG:
        cr->opts.config_file = arg;
        return 1;
    case KILN_OPT_RETRIES:
        if (parse_num(cmd, "--retries", arg, 0, 100, &n) < 0)
            return -1;
        cr->opts.retries = (int)n;
        return 1;
    case KILN_OPT_BACKOFF:
        if (parse_num(cmd, "--retry-backoff-ms", arg, 0, 600000, &n) < 0)
            return -1;
        cr->opts.backoff_ms = (unsigned)n;
        return 1;
    case KILN_OPT_STALL:
        if (parse_num(cmd, "--stall-timeout", arg, 1, 86400, &n) < 0)
            return -1;
        cr->opts.stall_timeout_s = (unsigned)n;
        return 1;
    case KILN_OPT_PARALLEL:
        if (parse_num(cmd, "--parallel", arg, 1, 64, &n) < 0)
            return -1;
        cr->opts.parallel = (unsigned)n;
        return 1;
    case KILN_OPT_PROGRESS:
        if (strcmp(arg, "auto") == 0)
            cr->progress = KILN_PROGRESS_AUTO;
        else if (strcmp(arg, "plain") == 0)
            cr->progress = KILN_PROGRESS_PLAIN;
        else if (strcmp(arg, "json") == 0)
            cr->progress = KILN_PROGRESS_JSON;
        else if (strcmp(arg, "none") == 0 || strcmp(arg, "quiet") == 0)
            cr->progress = KILN_PROGRESS_NONE;
        else {
            kiln_cli_usage_error(cmd, "--progress wants auto, plain, json or none");
            return -1;
        }
        return 1;
    case KILN_OPT_PLATFORM: {
        char os[32] = "", arch[32] = "", variant[32] = "";
        const char *s1 = strchr(arg, '/');
        const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
        if (s1 == NULL || s1 == arg || s1[1] == '\0' || (s2 && s2[1] == '\0') ||
            (size_t)(s1 - arg) >= sizeof(os) || strlen(s1 + 1) >= sizeof(arch)) {
            kiln_cli_usage_error(cmd, "--platform wants OS/ARCH[/VARIANT], not '%s'", arg);
            return -1;
        }
        snprintf(os, sizeof(os), "%.*s", (int)(s1 - arg), arg);
        if (s2 != NULL) {
            snprintf(arch, sizeof(arch), "%.*s", (int)(s2 - s1 - 1), s1 + 1);
            snprintf(variant, sizeof(variant), "%s", s2 + 1);
        } else {
            snprintf(arch, sizeof(arch), "%s", s1 + 1);
        }
        memcpy(cr->os, os, sizeof(os));
        memcpy(cr->arch, arch, sizeof(arch));
        memcpy(cr->variant, variant, sizeof(variant));
        return 1;
    }
    case KILN_OPT_ROOT:
        cr->root = arg;
        return 1;
    default:
        return 0;
    }
}

int kiln_cli_registry_getopt(kiln_cli_registry_t *cr, const char *cmd, int argc, char **argv,
                             const char *shortopts, const struct option *opts,
                             void (*usage)(FILE *out),
                             int (*other)(int c, const char *arg, void *ud), void *ud)
{
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        int k = kiln_cli_registry_opt(cr, cmd, c, optarg);
        if (k < 0)
            return -1;
        if (k > 0)
            continue;
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || other == NULL || other(c, optarg, ud) < 0)
            return -1;
    }
    return 0;
}

int kiln_cli_ecr_create_opt(int c, const char *arg, void *ud)
{
    (void)arg;
    if (c != KILN_OPT_ECR_CREATE)
        return -1;
    *(int *)ud = 1;
    return 0;
}

static const char *ev_name(kiln_registry_ev_kind_t k)
{
    switch (k) {
    case KILN_REGISTRY_EV_RESOLVED:
        return "resolved";
    case KILN_REGISTRY_EV_BLOB_START:
        return "blob_start";
    case KILN_REGISTRY_EV_BLOB_PROGRESS:
        return "blob_progress";
    case KILN_REGISTRY_EV_BLOB_DONE:
        return "blob_done";
    case KILN_REGISTRY_EV_BLOB_SKIPPED:
        return "blob_skipped";
    case KILN_REGISTRY_EV_BLOB_MOUNTED:
        return "blob_mounted";
    case KILN_REGISTRY_EV_RETRY:
        return "retry";
    case KILN_REGISTRY_EV_FALLBACK:
        return "fallback";
    case KILN_REGISTRY_EV_MANIFEST_PUT:
        return "manifest_put";
    }
    return "event";
}

static void print_event(const kiln_registry_event_t *ev, const char *sd);

/* Prints one event on stderr (events arrive serialised by the client). */
static void progress_cb(void *ud, const kiln_registry_event_t *ev)
{
    kiln_cli_registry_t *cr = ud;
    const char *d = ev->digest ? ev->digest : "";
    /* short digest for people: "sha256:0123456789ab" */
    char sd[20];
    snprintf(sd, sizeof(sd), "%.19s", d);

    if (cr->progress == KILN_PROGRESS_JSON) {
        json_t *j = json_pack("{s:s}", "event", ev_name(ev->kind));
        char *s;
        if (ev->ref)
            json_object_set_new(j, "ref", json_string(ev->ref));
        if (ev->digest)
            json_object_set_new(j, "digest", json_string(ev->digest));
        if (ev->host)
            json_object_set_new(j, "host", json_string(ev->host));
        if (ev->message)
            json_object_set_new(j, "message", json_string(ev->message));
        json_object_set_new(j, "size", json_integer((json_int_t)ev->size));
        json_object_set_new(j, "done", json_integer((json_int_t)ev->done));
        s = json_dumps(j, JSON_COMPACT);
        fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    if (cr->tty) {
        /* a terminal: one live line per blob in flight, redrawn under the log */
        int row = -1;
        for (int i = 0; i < cr->nlive; i++)
            if (strcmp(cr->live[i].digest, sd) == 0)
                row = i;
        if (ev->digest != NULL && row < 0 &&
            (ev->kind == KILN_REGISTRY_EV_BLOB_START ||
             ev->kind == KILN_REGISTRY_EV_BLOB_PROGRESS) &&
            cr->nlive < (int)(sizeof(cr->live) / sizeof(cr->live[0]))) {
            row = cr->nlive++;
            snprintf(cr->live[row].digest, sizeof(cr->live[row].digest), "%s", sd);
        }
        if (row >= 0) {
            cr->live[row].size = ev->size;
            cr->live[row].done = ev->done;
        }
        if (row >= 0 && ev->kind != KILN_REGISTRY_EV_BLOB_START &&
            ev->kind != KILN_REGISTRY_EV_BLOB_PROGRESS && ev->kind != KILN_REGISTRY_EV_RETRY) {
            cr->live[row] = cr->live[--cr->nlive];
        }
        if (cr->drawn > 0)
            fprintf(stderr, "\033[%dA\033[J", cr->drawn);
        cr->drawn = 0;
        if (ev->kind != KILN_REGISTRY_EV_BLOB_START && ev->kind != KILN_REGISTRY_EV_BLOB_PROGRESS)
            print_event(ev, sd);
        for (int i = 0; i < cr->nlive; i++, cr->drawn++)
            fprintf(stderr, "%s  %6.1f / %.1f MiB\n", cr->live[i].digest,
                    (double)cr->live[i].done / 1048576.0, (double)cr->live[i].size / 1048576.0);
        return;
    }
    if (ev->kind != KILN_REGISTRY_EV_BLOB_PROGRESS)
        print_event(ev, sd);
}

/* One plain progress line. */
static void print_event(const kiln_registry_event_t *ev, const char *sd)
{
    const char *d = ev->digest ? ev->digest : "";
    switch (ev->kind) {
    case KILN_REGISTRY_EV_RESOLVED:
        fprintf(stderr, "%s: %s (from %s%s)\n", ev->ref, d, ev->host,
                ev->message ? ", mirror" : "");
        break;
    case KILN_REGISTRY_EV_BLOB_START:
        fprintf(stderr, "%s: transferring %llu bytes\n", sd, (unsigned long long)ev->size);
        break;
    case KILN_REGISTRY_EV_BLOB_DONE:
        fprintf(stderr, "%s: done\n", sd);
        break;
    case KILN_REGISTRY_EV_BLOB_SKIPPED:
        fprintf(stderr, "%s: skipped (%s)\n", sd, ev->message ? ev->message : "present");
        break;
    case KILN_REGISTRY_EV_BLOB_MOUNTED:
        fprintf(stderr, "%s: mounted from %s\n", sd, ev->message ? ev->message : "");
        break;
    case KILN_REGISTRY_EV_RETRY:
        fprintf(stderr, "retrying: %s\n", ev->message ? ev->message : "");
        break;
    case KILN_REGISTRY_EV_FALLBACK:
        fprintf(stderr, "mirror %s failed (%s); trying the next endpoint\n", ev->host,
                ev->message ? ev->message : "");
        break;
    case KILN_REGISTRY_EV_MANIFEST_PUT:
        fprintf(stderr, "%s: manifest %s pushed\n", ev->ref ? ev->ref : "", d);
        break;
    default:
        break;
    }
}

int kiln_cli_registry_client(kiln_cli_registry_t *cr, kiln_registry_t **out, kiln_error_t *err)
{
    cr->opts.mirrors = (const char *const *)cr->mirrors;
    cr->opts.insecure = (const char *const *)cr->insecure;
    if (cr->progress != KILN_PROGRESS_NONE) {
        cr->opts.progress = progress_cb;
        cr->opts.progress_ud = cr;
    }
    return kiln_registry_new(&cr->opts, out, err);
}

int kiln_cli_registry_store(kiln_cli_registry_t *cr, kiln_store_t **out, kiln_error_t *err)
{
    _cleanup_free_ char *root = cr->root ? kiln_xstrdup(cr->root) : kiln_store_default_root();
    if (root == NULL)
        return kiln_error_set(err, 0, "no store root: pass --root DIR or set HOME");
    return kiln_cli_store_open(root, out, err);
}

void kiln_cli_registry_pull_opts(const kiln_cli_registry_t *cr, kiln_registry_pull_opts_t *po)
{
    memset(po, 0, sizeof(*po));
    po->os = cr->os;
    po->arch = cr->arch;
    po->variant = cr->variant[0] ? cr->variant : NULL;
}

kiln_loc_kind_t kiln_cli_location(const char *s, const char **rest)
{
    if (strncmp(s, "docker://", 9) == 0) {
        *rest = s + 9;
        return KILN_LOC_REGISTRY;
    }
    if (strncmp(s, "oci:", 4) == 0) {
        *rest = s + 4;
        return KILN_LOC_OCI;
    }
    if (strncmp(s, "docker-archive:", 15) == 0) {
        *rest = s + 15;
        return KILN_LOC_ARCHIVE;
    }
    *rest = s;
    return KILN_LOC_REGISTRY;
}

int kiln_cli_inspect_remote(kiln_cli_registry_t *cr, const char *ref, int raw)
{
    kiln_registry_t *r = NULL;
    kiln_error_t err = {0};
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *mbody = NULL;
    _cleanup_free_ char *cfg = NULL;
    _cleanup_json_ json_t *out = NULL;
    _cleanup_json_ json_t *config = NULL;
    kiln_reference_t pref = {0};
    kiln_manifest_t *m = NULL;
    kiln_index_t *ix = NULL;
    size_t len = 0, mlen = 0, clen = 0;
    char mt[256], ds[KILN_DIGEST_STR_MAX];
    kiln_digest_t d, md;
    json_t *layers, *cc;
    int rc = KILN_EXIT_FAIL;

    cr->progress = KILN_PROGRESS_NONE;
    if (kiln_reference_parse(ref, &pref, &err) < 0)
        return kiln_cli_fail(&err);
    if (kiln_cli_registry_client(cr, &r, &err) < 0)
        goto fail;
    if (kiln_registry_get_manifest(r, ref, &body, &len, mt, &d, &err) < 0)
        goto fail;
    if (raw) {
        fwrite(body, 1, len, stdout);
        rc = KILN_EXIT_OK;
        goto done;
    }
    md = d;
    if (strcmp(mt, KILN_MT_OCI_INDEX) == 0 || strcmp(mt, KILN_MT_DOCKER_LIST) == 0) {
        _cleanup_free_ char *child = NULL;
        char cmt[256];
        int k;
        if (kiln_image_parse_index(body, len, &ix, &err) < 0)
            goto fail;
        k = kiln_image_index_select(ix, cr->os, cr->arch, cr->variant[0] ? cr->variant : NULL,
                                    &err);
        if (k < 0)
            goto fail;
        child = kiln_xasprintf("%s/%s@%s", pref.registry, pref.repository,
                               kiln_digest_str(&ix->manifests[k].digest, ds));
        if (kiln_registry_get_manifest(r, child, &mbody, &mlen, cmt, &md, &err) < 0)
            goto fail;
    } else {
        mbody = steal_pointer(&body);
        mlen = len;
    }
    if (kiln_image_parse_manifest(mbody, mlen, &m, &err) < 0)
        goto fail;
    if (kiln_registry_get_blob(r, ref, &m->config.digest, KILN_IMAGE_CONFIG_MAX, &cfg, &clen,
                               &err) < 0)
        goto fail;
    if (kiln_image_parse_config(cfg, clen, &config, &err) < 0)
        goto fail;
    out = json_object();
    {
        _cleanup_free_ char *name = kiln_reference_name(&pref);
        json_object_set_new(out, "Name", json_string(name));
    }
    if (pref.tag)
        json_object_set_new(out, "Tag", json_string(pref.tag));
    json_object_set_new(out, "Digest", json_string(kiln_digest_str(&d, ds)));
    json_object_set_new(out, "MediaType", json_string(mt));
    json_object_set_new(out, "ManifestDigest", json_string(kiln_digest_str(&md, ds)));
    json_object_set(out, "Architecture", json_object_get(config, "architecture"));
    json_object_set(out, "Os", json_object_get(config, "os"));
    if (json_object_get(config, "variant"))
        json_object_set(out, "Variant", json_object_get(config, "variant"));
    if (json_object_get(config, "created"))
        json_object_set(out, "Created", json_object_get(config, "created"));
    layers = json_array();
    for (size_t i = 0; i < m->n_layers; i++)
        json_array_append_new(layers, json_string(kiln_digest_str(&m->layers[i].digest, ds)));
    json_object_set_new(out, "Layers", layers);
    cc = json_object_get(config, "config");
    json_object_set(out, "Env",
                    json_is_object(cc) && json_object_get(cc, "Env") ? json_object_get(cc, "Env")
                                                                     : json_null());
    json_object_set(out, "Labels",
                    json_is_object(cc) && json_object_get(cc, "Labels")
                        ? json_object_get(cc, "Labels")
                        : json_null());
    {
        char *s = json_dumps(out, JSON_INDENT(4));
        printf("%s\n", s);
        free(s);
    }
    rc = KILN_EXIT_OK;
    goto done;
fail:
    rc = kiln_cli_fail(&err);
done:
    kiln_manifest_free(m);
    kiln_index_free(ix);
    kiln_reference_free(&pref);
    kiln_registry_free(r);
    return rc;
}

int kiln_cli_layout_top(const char *dir, const char *tag, kiln_descriptor_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/index.json", dir);
    _cleanup_free_ char *buf = NULL;
    _cleanup_json_ json_t *j = NULL;
    size_t len = 0, i, found = (size_t)-1, count = 0;
    json_t *ms, *e;

    if (kiln_fs_read_file(path, KILN_IMAGE_MANIFEST_MAX, &buf, &len, err) < 0)
        return kiln_error_prefix(err, "OCI layout %s", dir);
    if (kiln_json_loadb(buf, len, KILN_IMAGE_MANIFEST_MAX, path, &j, err) < 0)
        return -1;
    ms = json_object_get(j, "manifests");
    if (!json_is_array(ms))
        return kiln_error_set(err, EINVAL, "%s: no \"manifests\" array", path);
    json_array_foreach(ms, i, e)
    {
        json_t *an = json_object_get(e, "annotations");
        const char *rn = kiln_json_get_string(an, "org.opencontainers.image.ref.name");
        const char *cn = kiln_json_get_string(an, "io.containerd.image.name");
        count++;
        if (tag == NULL || (rn && strcmp(rn, tag) == 0) || (cn && strcmp(cn, tag) == 0)) {
            if (found == (size_t)-1)
                found = i;
        }
    }
    if (found == (size_t)-1)
        return kiln_error_set(err, ENOENT, "OCI layout %s has no image tagged '%s'", dir,
                              tag ? tag : "");
    if (tag == NULL && count > 1)
        return kiln_error_set(err, EINVAL,
                              "OCI layout %s holds %zu images: name one with oci:%s:TAG", dir,
                              count, dir);
    return kiln_descriptor_from_json(json_array_get(ms, found), "index.json manifests entry", out,
                                     err);
}

/* Copies an image (manifest or index, everything under it) from a layout into the store. */
static int layout_to_store(kiln_store_t *s, const char *dir, const kiln_descriptor_t *d, int depth,
                           kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    _cleanup_free_ char *body = NULL;
    _cleanup_json_ json_t *j = NULL;
    uint64_t size = 0;
    size_t len = 0;
    kiln_digest_t got;
    char ds[KILN_DIGEST_STR_MAX];

    if (depth > 2)
        return kiln_error_set(err, EINVAL, "index nests too deeply in %s", dir);
    if (kiln_layout_open_blob(dir, &d->digest, &fd, &size, err) < 0)
        return -1;
    if (kiln_fs_read_fd(fd, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0)
        return -1;
    if (kiln_store_put_bytes(s, body, len, &got, err) < 0)
        return -1;
    if (!kiln_digest_equal(&got, &d->digest))
        return kiln_error_set(err, EIO, "%s: blob %s does not match its digest", dir,
                              kiln_digest_str(&d->digest, ds));
    if (kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, "manifest", &j, err) < 0)
        return -1;
    if (kiln_image_doc_kind(j) == KILN_DOC_INDEX) {
        kiln_index_t *ix = NULL;
        int rc = 0;
        if (kiln_image_parse_index(body, len, &ix, err) < 0)
            return -1;
        for (size_t i = 0; i < ix->n_manifests && rc == 0; i++)
            rc = layout_to_store(s, dir, &ix->manifests[i], depth + 1, err);
        kiln_index_free(ix);
        return rc;
    } else {
        kiln_manifest_t *m = NULL;
        int rc = 0;
        if (kiln_image_parse_manifest(body, len, &m, err) < 0)
            return -1;
        for (size_t i = 0; i <= m->n_layers && rc == 0; i++) {
            const kiln_descriptor_t *b = i == 0 ? &m->config : &m->layers[i - 1];
            _cleanup_close_ int bfd = -1;
            if (kiln_store_has(s, &b->digest, NULL) == 1)
                continue;
            rc = kiln_layout_open_blob(dir, &b->digest, &bfd, NULL, err);
            if (rc == 0)
                rc = kiln_store_put_fd(s, bfd, &b->digest, (int64_t)b->size, NULL, NULL, err);
        }
        kiln_manifest_free(m);
        return rc;
    }
}

int kiln_cli_source_to_store(kiln_cli_registry_t *cr, kiln_registry_t *r, kiln_store_t *s,
                             const char *src, int from_store_ok, kiln_descriptor_t *top,
                             char **from, kiln_error_t *err)
{
    const char *rest;
    kiln_loc_kind_t k = kiln_cli_location(src, &rest);

    *from = NULL;
    if (k == KILN_LOC_OCI) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        if (kiln_layout_parse_ref(src, &dir, &tag, err) < 0)
            return -1;
        if (kiln_cli_layout_top(dir, tag, top, err) < 0)
            return -1;
        return layout_to_store(s, dir, top, 0, err);
    }
    if (k == KILN_LOC_ARCHIVE) {
        kiln_docker_archive_image_t *img = NULL;
        if (kiln_docker_archive_read(rest, 0, s, &img, err) < 0)
            return -1;
        kiln_descriptor_copy(top, &img->manifest_desc);
        kiln_docker_archive_image_free(img);
        return 0;
    }
    if (from_store_ok && strncmp(src, "docker://", 9) != 0) {
        kiln_reference_t ref = {0};
        if (kiln_reference_parse(rest, &ref, NULL) == 0) {
            _cleanup_free_ char *full = kiln_reference_format(&ref);
            _cleanup_free_ char *pin = kiln_xasprintf("image/%s", full);
            _cleanup_free_ char *body = NULL;
            _cleanup_json_ json_t *j = NULL;
            kiln_digest_t d;
            size_t len = 0;
            kiln_imagestore_entry_t named = {0};
            kiln_reference_free(&ref);
            /* a name of the image store first (kiln build -t, tag, load), then a pulled image */
            if (kiln_imagestore_lookup(s, rest, &named, NULL) == 1) {
                d = named.digest;
                kiln_imagestore_entry_clear(&named);
            } else if (kiln_store_ref_get(s, pin, &d, NULL) != 1) {
                goto remote;
            }
            if (kiln_store_read_blob(s, &d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) == 0 &&
                kiln_image_load_json(body, len, KILN_IMAGE_MANIFEST_MAX, "manifest", &j, err) ==
                    0) {
                const char *mt = kiln_json_get_string(j, "mediaType");
                memset(top, 0, sizeof(*top));
                snprintf(top->media_type, sizeof(top->media_type), "%s",
                         mt                                         ? mt
                         : kiln_image_doc_kind(j) == KILN_DOC_INDEX ? KILN_MT_OCI_INDEX
                                                                    : KILN_MT_OCI_MANIFEST);
                top->digest = d;
                top->size = len;
                return 0;
            }
            kiln_error_clear(err);
        }
    }
remote : {
    kiln_registry_image_t img = {0};
    kiln_registry_pull_opts_t po;
    kiln_cli_registry_pull_opts(cr, &po);
    po.all_platforms = 1;
    if (kiln_registry_pull(r, s, rest, &po, &img, err) < 0)
        return -1;
    kiln_descriptor_copy(top, &img.top);
    *from = steal_pointer(&img.name);
    kiln_registry_image_clear(&img);
    return 0;
}
}

int kiln_cli_inspect_is_remote(const char *arg)
{
    if (arg[0] == '-' || strncmp(arg, "oci:", 4) == 0 || strncmp(arg, "docker-archive:", 15) == 0 ||
        strncmp(arg, "store:", 6) == 0)
        return 0;
    return 1;
}

int kiln_cli_inspect_remote_main(int argc, char **argv)
{
    static const struct option opts[] = {{"raw", no_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         KILN_CLI_REGISTRY_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    kiln_cli_registry_t cr;
    const char *rest;
    int c, raw = 0, rc;

    kiln_cli_registry_init(&cr);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int k = kiln_cli_registry_opt(&cr, "inspect", c, optarg);
        if (k > 0)
            continue;
        if (k == 0 && c == 'R') {
            raw = 1;
            continue;
        }
        if (k == 0 && c == 'h') {
            printf("Usage: kiln inspect [options] [docker://]REF\n\n"
                   "Describes a registry image (config, layers) as JSON; --raw prints the\n"
                   "manifest as served.\n\n" KILN_CLI_REGISTRY_HELP);
            kiln_cli_registry_free(&cr);
            return KILN_EXIT_OK;
        }
        kiln_cli_registry_free(&cr);
        return KILN_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        kiln_cli_registry_free(&cr);
        return kiln_cli_usage_error("inspect", "expected exactly one image reference");
    }
    kiln_cli_location(argv[optind], &rest);
    rc = kiln_cli_inspect_remote(&cr, rest, raw);
    kiln_cli_registry_free(&cr);
    return rc;
}
