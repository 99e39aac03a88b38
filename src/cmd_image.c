/* kiln images / tag / rmi — the local image store's names, as docker lists, adds and removes
 * them (oci/imagestore). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oci/imagestore.h"
#include "src/cli_output.h"
#include "src/cmd_image.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

int kiln_cli_image_store_open(const char *opt_root, kiln_store_t **s, kiln_error_t *err)
{
    _cleanup_free_ char *root = NULL;

    if (kiln_cli_store_root(opt_root, &root, err) < 0)
        return -1;
    return kiln_cli_store_open(root, s, err);
}

int kiln_cli_image_getopt(kiln_cli_image_opts_t *o, int argc, char **argv)
{
    struct option opts[6] = {{"root", required_argument, NULL, 'R'},
                             {"help", no_argument, NULL, 'h'}};
    char shorts[8] = ":h", *sp = shorts + 2;
    size_t n = 2;
    int c;

    if (o->formats)
        opts[n++] = (struct option){"format", required_argument, NULL, 'F'};
    if (o->flag) {
        opts[n++] = (struct option){o->flag, no_argument, NULL, o->flag[0]};
        *sp++ = o->flag[0];
    }
    if (o->value) {
        opts[n++] = (struct option){o->value, required_argument, NULL, o->value[0]};
        *sp++ = o->value[0];
        *sp++ = ':';
    }
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
        if (c == 'R') {
            o->root = optarg;
        } else if (c == 'h') {
            o->usage(stdout);
            return KILN_EXIT_OK;
        } else if (c == 'F' && o->formats) {
            const char *const *f = o->formats;
            while (*f && strcmp(*f, optarg) != 0)
                f++;
            if (*f == NULL)
                return kiln_cli_usage_error(o->cmd, "--format %s: %s or %s", optarg, o->formats[0],
                                            o->formats[1]);
            o->format = *f;
        } else if (o->flag && c == o->flag[0]) {
            o->flag_set = 1;
        } else if (o->value && c == o->value[0]) {
            o->value_arg = optarg;
        } else {
            return kiln_cli_bad_option(o->cmd, c, argv, opts);
        }
    }
    return -1;
}

/* docker's SIZE: decimal units, three significant digits ("7.81MB"). */
static void human_size(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lluB", (unsigned long long)n);
    else
        snprintf(buf, len, "%.*f%s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

/* docker's CREATED: how long ago the config's created time was ("3 minutes ago"). */
static void human_since(const char *created, char *buf, size_t len)
{
    struct tm tm = {0};
    const char *rest = created ? strptime(created, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    time_t t, now = time(NULL);
    long long d;

    if (rest == NULL) {
        snprintf(buf, len, "N/A");
        return;
    }
    t = timegm(&tm);
    d = (long long)(now - t);
    if (d < 60)
        snprintf(buf, len, "%s", d < 1 ? "Less than a second ago" : "Less than a minute ago");
    else if (d < 3600)
        snprintf(buf, len, "%lld minute%s ago", d / 60, d / 60 == 1 ? "" : "s");
    else if (d < 86400 * 2)
        snprintf(buf, len, "%lld hour%s ago", d / 3600, d / 3600 == 1 ? "" : "s");
    else if (d < 86400 * 60)
        snprintf(buf, len, "%lld days ago", d / 86400);
    else if (d < 86400 * 730)
        snprintf(buf, len, "%lld months ago", d / (86400 * 30));
    else
        snprintf(buf, len, "%lld years ago", d / (86400 * 365));
}

/* 1 when the entry matches the REPOSITORY[:TAG] filter of `kiln images` (NULL: all). */
static int matches(const char *filter_full, const char *filter_repo, const char *name)
{
    if (filter_full != NULL)
        return strcmp(filter_full, name) == 0;
    if (filter_repo != NULL) {
        size_t n = strlen(filter_repo);
        return strncmp(name, filter_repo, n) == 0 && name[n] == ':';
    }
    return 1;
}

static void images_usage(FILE *out)
{
    fprintf(out, "Usage: kiln images [OPTIONS] [REPOSITORY[:TAG]]\n\n"
                 "Lists the images named in kiln's store (kiln build -t, kiln tag, kiln load).\n\n"
                 "  -q, --quiet           only the image digests\n"
                 "      --format FORMAT   table (default) or json (one object per line)\n"
                 "      --root DIR        kiln root (default: kiln's store)\n");
}

int kiln_cmd_images(int argc, char **argv)
{
    static const char *const formats[] = {"table", "json", NULL};
    kiln_cli_image_opts_t o = {.cmd = "images",
                               .usage = images_usage,
                               .flag = "quiet",
                               .formats = formats,
                               .format = "table"};
    _cleanup_free_ char *store_root = NULL, *filter_full = NULL, *filter_repo = NULL;
    kiln_imagestore_index_t ix = {0};
    kiln_store_t *s = NULL;
    int store_failed = 0;
    kiln_error_t err = {0};
    int r = kiln_cli_image_getopt(&o, argc, argv);

    if (r >= 0)
        return r;
    if (argc - optind > 1)
        return kiln_cli_usage_error("images", "at most one REPOSITORY[:TAG]");
    if (optind < argc) {
        /* "app" lists every tag of app; "app:1" just that one */
        const char *slash = strrchr(argv[optind], '/');
        int has_tag = strchr(slash ? slash : argv[optind], ':') != NULL;
        if (kiln_imagestore_normalize(argv[optind], &filter_full, &err) < 0)
            return kiln_cli_usage_error("images", "%s", err.msg);
        if (!has_tag) {
            filter_repo = kiln_xstrndup(filter_full, strrchr(filter_full, ':') - filter_full);
            free(steal_pointer(&filter_full));
        }
    }
    if (kiln_cli_store_root(o.root, &store_root, &err) < 0 ||
        kiln_imagestore_load(store_root, &ix, &err) < 0)
        return kiln_cli_fail(&err);
    if (!o.flag_set && strcmp(o.format, "table") == 0)
        printf("%-40s %-20s %-71s %-10s %s\n", "REPOSITORY", "TAG", "DIGEST", "SIZE", "CREATED");
    for (size_t i = 0; i < ix.n; i++) {
        const kiln_imagestore_entry_t *e = &ix.entries[i];
        _cleanup_free_ char *repo = NULL, *tag = NULL;
        char ds[KILN_DIGEST_STR_MAX], size[32], since[48];

        if (!matches(filter_full, filter_repo, e->name))
            continue;
        kiln_digest_str(&e->digest, ds);
        if (o.flag_set) {
            printf("%s\n", ds);
            continue;
        }
        kiln_imagestore_familiar(e->name, &repo, &tag);
        uint64_t bytes = e->size;
        if (e->size_unknown) {
            /* a pulled image's layers are measured here, once (kept with each blob and in
             * the index), not by the pull; one that cannot be read shows as 0 */
            kiln_error_t me = {0};
            if (s == NULL && !store_failed)
                store_failed = kiln_cli_store_open(store_root, &s, &me) < 0;
            if (s == NULL || kiln_imagestore_measure(s, &e->digest, &bytes, &me) < 0)
                bytes = 0;
            for (size_t k = i; k < ix.n; k++) /* its other names: measured now */
                if (kiln_digest_equal(&ix.entries[k].digest, &e->digest)) {
                    ix.entries[k].size = bytes;
                    ix.entries[k].size_unknown = 0;
                }
        }
        human_size(bytes, size, sizeof(size));
        human_since(e->created, since, sizeof(since));
        if (strcmp(o.format, "json") == 0) {
            json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "Repository", repo, "Tag",
                                  tag, "Name", e->name, "Digest", ds, "Size", size, "SizeBytes",
                                  (json_int_t)bytes, "CreatedAt", e->created ? e->created : "",
                                  "CreatedSince", since);
            char *line = json_dumps(j, JSON_COMPACT);
            printf("%s\n", line);
            free(line);
            json_decref(j);
        } else {
            printf("%-40s %-20s %-71s %-10s %s\n", repo, tag, ds, size, since);
        }
    }
    kiln_imagestore_index_clear(&ix);
    if (s != NULL)
        kiln_store_close(s);
    return KILN_EXIT_OK;
}

static void tag_usage(FILE *out)
{
    fprintf(out, "Usage: kiln tag [--root DIR] SOURCE[:TAG] TARGET[:TAG]\n\n"
                 "Names the image SOURCE (a name in kiln's store, or a digest it lists)\n"
                 "TARGET too. Nothing is pushed.\n");
}

int kiln_cli_image_resolve(kiln_store_t *s, const char *name, kiln_digest_t *d, kiln_error_t *err)
{
    kiln_imagestore_entry_t e = {0};
    int r;

    /* a digest kiln images shows names its image too */
    if (strncmp(name, "sha256:", 7) == 0) {
        if (kiln_digest_parse(name, d, err) < 0)
            return -1;
        if (kiln_store_has(s, d, NULL) != 1)
            return kiln_error_set(err, 0, "no image %s in kiln's store", name);
        return 0;
    }
    r = kiln_imagestore_lookup(s, name, &e, err);
    if (r < 0)
        return -1;
    if (r == 0)
        return kiln_error_set(err, 0, "no image named %s in kiln's store (kiln images lists them)",
                              name);
    *d = e.digest;
    kiln_imagestore_entry_clear(&e);
    return 0;
}

int kiln_cmd_tag(int argc, char **argv)
{
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t d;
    kiln_cli_image_opts_t o = {.cmd = "tag", .usage = tag_usage};
    int r = kiln_cli_image_getopt(&o, argc, argv);

    if (r >= 0)
        return r;
    if (argc - optind != 2)
        return kiln_cli_usage_error("tag", "expected SOURCE and TARGET");
    if (kiln_cli_image_store_open(o.root, &s, &err) < 0 ||
        kiln_cli_image_resolve(s, argv[optind], &d, &err) < 0 ||
        kiln_imagestore_tag(s, (const char *const *)&argv[optind + 1], 1, &d, &err) < 0) {
        kiln_store_close(s);
        return kiln_cli_fail(&err);
    }
    kiln_store_close(s);
    return KILN_EXIT_OK;
}

static void rmi_usage(FILE *out)
{
    fprintf(out, "Usage: kiln rmi [--root DIR] NAME[:TAG]...\n\n"
                 "Removes the names from kiln's store (all or none: an unknown name fails).\n"
                 "The image's blobs stay until `kiln prune` finds nothing else using them.\n");
}

int kiln_cmd_rmi(int argc, char **argv)
{
    kiln_store_t *s = NULL;
    kiln_error_t err = {0};
    kiln_digest_t *ds = NULL;
    kiln_cli_image_opts_t o = {.cmd = "rmi", .usage = rmi_usage};
    int r = kiln_cli_image_getopt(&o, argc, argv);

    if (r >= 0)
        return r;
    if (argc - optind < 1)
        return kiln_cli_usage_error("rmi", "expected at least one NAME");
    ds = kiln_xzalloc((size_t)(argc - optind) * sizeof(*ds));
    if (kiln_cli_image_store_open(o.root, &s, &err) < 0 ||
        kiln_imagestore_untag(s, (const char *const *)argv + optind, (size_t)(argc - optind), ds,
                              &err) < 0) {
        kiln_store_close(s);
        free(ds);
        return kiln_cli_fail(&err);
    }
    kiln_store_close(s);
    for (int i = optind; i < argc; i++) {
        char dstr[KILN_DIGEST_STR_MAX];
        printf("Untagged: %s@%s\n", argv[i], kiln_digest_str(&ds[i - optind], dstr));
    }
    free(ds);
    return KILN_EXIT_OK;
}
