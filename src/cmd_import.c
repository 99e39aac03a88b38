/* kiln import — make a single-layer image from a rootfs directory or a
 * tarball (how base images are made from a debootstrap or busybox tree). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "export/export.h"
#include "oci/image.h"
#include "oci/imagesize.h"
#include "oci/imagestore.h"
#include "oci/layer_write.h"
#include "oci/layout.h"
#include "oci/store.h"
#include "src/cli_output.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define MAX_REPEAT 256

enum {
    OPT_CMD = 1000,
    OPT_ENTRYPOINT,
    OPT_ENV,
    OPT_WORKDIR,
    OPT_USER,
    OPT_LABEL,
    OPT_COMPRESSION,
    OPT_LEVEL,
    OPT_ROOT,
    OPT_EPOCH,
    OPT_ARCH,
};

typedef struct import_args {
    const char *source;
    const char *name;
    const char *outputs[8]; /* --output, at most 8 */
    size_t n_outputs;
    const char *cmd, *entrypoint, *workdir, *user, *root, *arch;
    const char *env[MAX_REPEAT];
    size_t n_env;
    const char *labels[MAX_REPEAT];
    size_t n_labels;
    kiln_compression_t compression;
    int level;
    int64_t epoch;
} import_args_t;

static void usage(FILE *out)
{
    fprintf(out, "Usage: kiln import ROOTFS_DIR|TARBALL -t NAME[:TAG] --output SPEC [options]\n\n"
                 "Makes a single-layer image from a directory tree or a tarball (plain, gzip or\n"
                 "zstd) and prints its manifest digest.\n\n"
                 "  -t, --tag NAME[:TAG]          image name (default tag: latest)\n"
                 "  -o, --output type=oci,dest=DIR[,tar=true]   OCI layout (archive when tar=true\n"
                 "                                              or DIR ends in .tar)\n"
                 "  -o, --output type=docker,dest=FILE          docker-archive (docker load)\n"
                 "      (repeatable; without --output the image is only kept in the store)\n"
                 "  --cmd JSON|STRING             [\"exec\",\"form\"] or a shell command\n"
                 "  --entrypoint JSON|STRING      same forms as --cmd\n"
                 "  --env K=V                     environment (repeatable)\n"
                 "  --workdir DIR  --user USER    working directory, user\n"
                 "  --label K=V                   label (repeatable)\n"
                 "  --arch ARCH                   architecture (default: this machine's)\n"
                 "  --compression gzip|zstd|none  layer compression (default gzip)\n"
                 "  --compression-level N         gzip 0..12 (default 3), zstd 1..19\n"
                 "  --source-date-epoch N         clamp mtimes and set created (default:\n"
                 "                                $SOURCE_DATE_EPOCH)\n"
                 "  --root DIR                    the blob store (default: kiln's store)\n");
}

/* Parses a non-negative decimal integer. */
static int parse_num(const char *s, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* --cmd / --entrypoint: a JSON array of strings, or a shell command string
 * (→ ["/bin/sh","-c",STRING]). *argv is a NULL-terminated malloc'ed vector. */
static int parse_argv_form(const char *what, const char *s, char ***argv, kiln_error_t *err)
{
    char **v = NULL;
    size_t n = 0;
    if (s[0] == '[') {
        json_error_t je;
        json_t *j = json_loads(s, 0, &je);
        if (j == NULL || !json_is_array(j)) {
            json_decref(j);
            return kiln_error_set(err, EINVAL, "--%s: not a JSON array of strings: %s", what,
                                  je.text);
        }
        n = json_array_size(j);
        v = kiln_xzalloc((n + 1) * sizeof(*v));
        for (size_t i = 0; i < n; i++) {
            const char *e = json_string_value(json_array_get(j, i));
            if (e == NULL) {
                json_decref(j);
                kiln_strv_free(v);
                return kiln_error_set(err, EINVAL, "--%s: element %zu is not a string", what, i);
            }
            v[i] = kiln_xstrdup(e);
        }
        json_decref(j);
    } else {
        v = kiln_xzalloc(4 * sizeof(*v));
        v[0] = kiln_xstrdup("/bin/sh");
        v[1] = kiln_xstrdup("-c");
        v[2] = kiln_xstrdup(s);
    }
    *argv = v;
    return 0;
}

/* The OCI architecture name of this machine. */
static const char *host_arch(void)
{
    struct utsname u;
    if (uname(&u) < 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    if (strcmp(u.machine, "i686") == 0 || strcmp(u.machine, "i386") == 0)
        return "386";
    if (strncmp(u.machine, "armv7", 5) == 0)
        return "arm";
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    return "amd64";
}

/* Writes the layer from the source into the store. */
static int make_layer(kiln_store_t *s, const import_args_t *a, kiln_layer_info_t *info,
                      kiln_error_t *err)
{
    struct stat st;
    if (stat(a->source, &st) < 0)
        return kiln_error_set(err, errno, "import source %s", a->source);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return kiln_error_set(err, EINVAL, "import source %s is neither a directory nor a file",
                              a->source);
    kiln_store_writer_t *sw = NULL;
    if (kiln_store_writer_new(s, NULL, -1, &sw, err) < 0)
        return -1;
    kiln_sink_t sink = kiln_store_writer_sink(sw);
    kiln_layer_opts_t o;
    kiln_layer_opts_init(&o);
    o.compression = a->compression;
    o.level = a->level;
    o.source_date_epoch = a->epoch;
    int r;
    if (S_ISDIR(st.st_mode)) {
        r = kiln_layer_write_dir(a->source, &o, &sink, info, err);
    } else {
        kiln_layer_writer_t *w = NULL;
        _cleanup_close_ int fd = open(a->source, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            r = kiln_error_set(err, errno, "opening %s", a->source);
        else
            r = kiln_layer_writer_new(&o, &sink, &w, err);
        if (r == 0)
            r = kiln_layer_writer_add_tar(w, fd, err);
        if (r == 0)
            r = kiln_layer_writer_finish(w, info, err);
        kiln_layer_writer_free(w);
        if (r < 0)
            kiln_error_prefix(err, "importing tarball %s", a->source);
    }
    if (r < 0) {
        kiln_store_writer_abort(sw);
        return -1;
    }
    if (kiln_store_writer_commit(sw, NULL, NULL, err) < 0)
        return -1;
    kiln_image_size_note(s, &info->digest, info->diff_size); /* not decompressed to be measured */
    return 0;
}

/* Builds and stores the config and manifest; *mdesc is the manifest's. */
static int make_image(kiln_store_t *s, const import_args_t *a, const kiln_layer_info_t *info,
                      kiln_descriptor_t *mdesc, kiln_error_t *err)
{
    json_t *cfg = kiln_image_config_new(a->arch ? a->arch : host_arch(), "linux");
    time_t created = a->epoch >= 0 ? (time_t)a->epoch : time(NULL);
    int r = kiln_image_config_set_created(cfg, created, err);
    for (size_t i = 0; r == 0 && i < a->n_env; i++) {
        if (strchr(a->env[i], '=') == NULL)
            r = kiln_error_set(err, EINVAL, "--env %s: expected K=V", a->env[i]);
        else
            r = kiln_image_config_set_env(cfg, a->env[i], err);
    }
    for (size_t i = 0; r == 0 && i < a->n_labels; i++) {
        const char *eq = strchr(a->labels[i], '=');
        if (eq == NULL) {
            r = kiln_error_set(err, EINVAL, "--label %s: expected K=V", a->labels[i]);
            break;
        }
        _cleanup_free_ char *k = kiln_xstrndup(a->labels[i], (size_t)(eq - a->labels[i]));
        kiln_image_config_set_label(cfg, k, eq + 1);
    }
    if (r == 0 && a->entrypoint != NULL) {
        _cleanup_strv_ char **v = NULL;
        r = parse_argv_form("entrypoint", a->entrypoint, &v, err);
        if (r == 0)
            kiln_image_config_set_entrypoint(cfg, (const char *const *)v);
    }
    if (r == 0 && a->cmd != NULL) {
        _cleanup_strv_ char **v = NULL;
        r = parse_argv_form("cmd", a->cmd, &v, err);
        if (r == 0)
            kiln_image_config_set_cmd(cfg, (const char *const *)v);
    }
    if (r == 0 && a->workdir != NULL)
        kiln_image_config_set_string(cfg, "WorkingDir", a->workdir);
    if (r == 0 && a->user != NULL)
        kiln_image_config_set_string(cfg, "User", a->user);
    if (r == 0) {
        kiln_image_config_add_diff_id(cfg, &info->diff_id);
        r = kiln_image_config_add_history(cfg, created, "kiln import", NULL, 0, err);
    }
    kiln_descriptor_t cdesc, ldesc;
    memset(&cdesc, 0, sizeof(cdesc));
    memset(&ldesc, 0, sizeof(ldesc));
    if (r == 0)
        r = kiln_image_store_put(s, cfg, KILN_MT_OCI_CONFIG, &cdesc, err);
    json_decref(cfg);
    if (r < 0)
        return -1;
    snprintf(ldesc.media_type, sizeof(ldesc.media_type), "%s", info->media_type);
    ldesc.digest = info->digest;
    ldesc.size = info->size;
    json_t *m = kiln_image_manifest_new(&cdesc, &ldesc, 1, NULL);
    r = kiln_image_store_put(s, m, KILN_MT_OCI_MANIFEST, mdesc, err);
    json_decref(m);
    kiln_descriptor_clear(&cdesc);
    return r;
}

/* Writes one --output through its exporter (export/): kiln import writes oci and docker
 * (also called docker-archive, as skopeo names it). */
static int write_output(kiln_store_t *s, const char *spec, const char *name,
                        const kiln_descriptor_t *mdesc, kiln_error_t *err)
{
    const char *tags[] = {name, NULL};
    kiln_export_image_t img = {
        .store = s, .manifest = mdesc, .tags = name ? tags : NULL, .n_tags = name != NULL};
    kiln_export_ctx_t ctx = {0};
    kiln_export_opts_t o = {0};
    const kiln_exporter_t *t;
    int r;

    if (kiln_export_opts_parse(spec, &o, err) < 0)
        return -1;
    t = kiln_exporter_find(strcmp(o.type, "docker-archive") == 0 ? "docker" : o.type);
    if (t == NULL || (strcmp(t->name, "oci") != 0 && strcmp(t->name, "docker") != 0))
        r = kiln_error_set(err, EINVAL,
                           "--output type=%s: kiln import writes type=oci or "
                           "type=docker",
                           o.type);
    else if ((r = kiln_export_opts_check_keys(&o, t->keys, err)) == 0 &&
             kiln_export_opts_get(&o, "dest") == NULL)
        r = kiln_error_set(err, EINVAL, "--output %s: dest= is required", spec);
    if (r == 0)
        r = t->run(&ctx, &img, &o, err);
    kiln_export_opts_free(&o);
    if (r < 0)
        return kiln_error_prefix(err, "output %s", spec);
    fprintf(stderr, "kiln import: wrote %s\n", spec);
    return 0;
}

/* Appends a repeatable option's value; fails (usage error printed) past max. */
static int add_repeat(const char **arr, size_t *n, size_t max, const char *what, const char *v)
{
    if (*n == max) {
        kiln_cli_usage_error("import", "too many %s (at most %zu)", what, max);
        return -1;
    }
    arr[(*n)++] = v;
    return 0;
}

/* Parses the command line into a; returns -1 to go on, or an exit status
 * (help, usage error). */
static int parse_args(int argc, char **argv, import_args_t *a)
{
    static const struct option opts[] = {
        {"tag", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"cmd", required_argument, NULL, OPT_CMD},
        {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
        {"env", required_argument, NULL, OPT_ENV},
        {"workdir", required_argument, NULL, OPT_WORKDIR},
        {"user", required_argument, NULL, OPT_USER},
        {"label", required_argument, NULL, OPT_LABEL},
        {"compression", required_argument, NULL, OPT_COMPRESSION},
        {"compression-level", required_argument, NULL, OPT_LEVEL},
        {"root", required_argument, NULL, OPT_ROOT},
        {"source-date-epoch", required_argument, NULL, OPT_EPOCH},
        {"arch", required_argument, NULL, OPT_ARCH},
        {NULL, 0, NULL, 0},
    };
    kiln_error_t err = {0};
    int64_t v;
    int c;
    const char *env_epoch = getenv("SOURCE_DATE_EPOCH");

    memset(a, 0, sizeof(*a));
    a->compression = KILN_COMPRESSION_GZIP;
    a->level = -1;
    a->epoch = -1;
    if (env_epoch != NULL && env_epoch[0] != '\0') {
        if (parse_num(env_epoch, INT64_MAX / 2, &v) < 0)
            return kiln_cli_usage_error("import", "SOURCE_DATE_EPOCH=%s is not a number",
                                        env_epoch);
        a->epoch = v;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        case 't':
            a->name = optarg;
            break;
        case 'o':
            if (add_repeat(a->outputs, &a->n_outputs, 8, "--output", optarg) < 0)
                return KILN_EXIT_USAGE;
            break;
        case OPT_CMD:
            a->cmd = optarg;
            break;
        case OPT_ENTRYPOINT:
            a->entrypoint = optarg;
            break;
        case OPT_ENV:
            if (add_repeat(a->env, &a->n_env, MAX_REPEAT, "--env", optarg) < 0)
                return KILN_EXIT_USAGE;
            break;
        case OPT_LABEL:
            if (add_repeat(a->labels, &a->n_labels, MAX_REPEAT, "--label", optarg) < 0)
                return KILN_EXIT_USAGE;
            break;
        case OPT_WORKDIR:
            a->workdir = optarg;
            break;
        case OPT_USER:
            a->user = optarg;
            break;
        case OPT_ROOT:
            a->root = optarg;
            break;
        case OPT_ARCH:
            a->arch = optarg;
            break;
        case OPT_COMPRESSION:
            if (kiln_compression_parse(optarg, &a->compression, &err) < 0)
                return kiln_cli_usage_error("import", "%s", err.msg);
            break;
        case OPT_LEVEL:
            if (parse_num(optarg, 99, &v) < 0)
                return kiln_cli_usage_error("import", "--compression-level %s: not a number",
                                            optarg);
            a->level = (int)v;
            break;
        case OPT_EPOCH:
            if (parse_num(optarg, INT64_MAX / 2, &v) < 0)
                return kiln_cli_usage_error("import", "--source-date-epoch %s: not a number",
                                            optarg);
            a->epoch = v;
            break;
        default:
            return KILN_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return kiln_cli_usage_error("import", "expected exactly one ROOTFS_DIR or TARBALL");
    a->source = argv[optind];
    if (a->name == NULL || a->name[0] == '\0')
        return kiln_cli_usage_error("import", "-t NAME[:TAG] is required");
    if (kiln_compression_check_level(a->compression, a->level, &err) < 0)
        return kiln_cli_usage_error("import", "%s", err.msg);
    return -1;
}

int kiln_cmd_import(int argc, char **argv)
{
    import_args_t a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;

    kiln_error_t err = {0};
    _cleanup_free_ char *root = NULL;
    _cleanup_free_ char *name = NULL;
    _cleanup_free_ char *refname = NULL;
    _cleanup_free_ char *tag = kiln_layout_tag_of(a.name);
    kiln_store_t *s = NULL;
    kiln_layer_info_t info;
    kiln_descriptor_t mdesc;
    char ds[KILN_DIGEST_STR_MAX];

    memset(&mdesc, 0, sizeof(mdesc));
    if (tag == NULL)
        return kiln_cli_usage_error("import", "-t %s: a digest is not a tag", a.name);
    /* "name" without a tag means name:latest (as docker tag does). */
    const char *last = strrchr(a.name, '/');
    name = strchr(last ? last : a.name, ':') ? kiln_xstrdup(a.name)
                                             : kiln_xasprintf("%s:latest", a.name);
    if (kiln_cli_store_root(a.root, &root, &err) < 0 || kiln_store_open(root, &s, &err) < 0)
        goto fail;
    fprintf(stderr, "kiln import: packing %s (%s)\n", a.source,
            kiln_compression_name(a.compression));
    if (make_layer(s, &a, &info, &err) < 0)
        goto fail;
    fprintf(stderr, "kiln import: layer %s, %llu bytes (%llu uncompressed, %llu entries)\n",
            kiln_digest_str(&info.digest, ds), (unsigned long long)info.size,
            (unsigned long long)info.diff_size, (unsigned long long)info.entries);
    if (make_image(s, &a, &info, &mdesc, &err) < 0)
        goto fail;
    refname = kiln_xasprintf("image/%s", name);
    if (kiln_store_ref_set(s, refname, &mdesc.digest, &err) < 0)
        goto fail;
    {
        /* docker import NAME: named in kiln's store too, when NAME is an image name */
        _cleanup_free_ char *full = NULL;
        const char *one = a.name;
        if (kiln_imagestore_normalize(a.name, &full, NULL) == 0 &&
            kiln_imagestore_tag(s, &one, 1, &mdesc.digest, &err) < 0)
            goto fail;
    }
    for (size_t i = 0; i < a.n_outputs; i++)
        if (write_output(s, a.outputs[i], name, &mdesc, &err) < 0)
            goto fail;
    printf("%s\n", kiln_digest_str(&mdesc.digest, ds));
    kiln_descriptor_clear(&mdesc);
    kiln_store_close(s);
    return KILN_EXIT_OK;
fail:
    kiln_descriptor_clear(&mdesc);
    kiln_store_close(s);
    return kiln_cli_fail(&err);
}
