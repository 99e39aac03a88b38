/* kiln run — runs one command in kiln's step sandbox (a debugging aid for the
 * sandbox a build uses), prints its output and exits with its exit code. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/lowerview.h"
#include "oci/layer_write.h"
#include "oci/layout.h"
#include "oci/sink.h"
#include "sandbox/diff.h"
#include "sandbox/idmap.h"
#include "sandbox/rootfs.h"
#include "sandbox/sandbox.h"
#include "src/cmd_image.h"
#include "src/commands.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"
#include "utils/pathres.h"
#include "utils/size.h"

#define MAX_MOUNTS 64
#define MAX_ENV 256
#define MAX_ALLOW 256

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln run --rootfs DIR [options] -- CMD ARGS...\n"
            "       kiln run [options] NAME[:TAG] [CMD ARGS...]\n\n"
            "Runs CMD in a step sandbox over the root filesystem DIR (read-only; the\n"
            "step's changes go to a fresh upper dir, in memory unless --diff-output or\n"
            "--keep-upper asks for them) and exits with CMD's exit code (128+signal\n"
            "when killed).\n\n"
            "  --rootfs DIR              the root filesystem (repeat: top-most first)\n"
            "  --rootfs oci:DIR[:TAG]    an image in an OCI layout (layers unpacked once\n"
            "                            into $KILN_LAYER_CACHE, default /var/cache/kiln/layers)\n"
            "  NAME[:TAG]                an image named in kiln's store (kiln images): its\n"
            "                            Entrypoint/Cmd (CMD ARGS replace Cmd), Env, WorkingDir\n"
            "                            and User unless given here\n"
            "  --root DIR                kiln root of NAME (default: kiln's store)\n"
            "  --isolation MODE          auto (default) = sandbox (fails where user namespaces\n"
            "                            are unavailable), chroot (no user namespace: the step\n"
            "                            runs as real root), none\n"
            "  --network MODE            nat (default), none, host\n"
            "  --allow-address CIDR[:PORT]  nat: let the step reach this non-public range\n"
            "                            (repeatable; default: public addresses and DNS only)\n"
            "  --memory SIZE             memory limit, e.g. 512m\n"
            "  --pids N                  process limit\n"
            "  --cpu SECONDS             CPU time limit\n"
            "  --timeout DURATION        wall-clock limit, e.g. 60s, 2m, 500ms\n"
            "  --file-size SIZE          largest file the step may write\n"
            "  --nofile N                open files limit\n"
            "  --ulimit NAME=SOFT[:HARD] a resource limit as docker's (repeatable)\n"
            "  --shm-size SIZE           size of /dev/shm (default 64m)\n"
            "  --add-host HOST:IP        a line of the step's /etc/hosts (repeatable)\n"
            "  --mount SPEC              type=bind,src=P,dst=P[,ro] | type=tmpfs,dst=P[,size=S]\n"
            "                            | type=cache,src=P,dst=P | type=secret,src=P,dst=P\n"
            "  --env K=V                 environment (repeat); default: PATH and HOME\n"
            "  --workdir DIR             working directory inside (created if missing)\n"
            "  --user UID[:GID]          numeric ids or a name from the rootfs /etc/passwd\n"
            "  --hostname NAME           hostname inside (default kiln)\n"
            "  --diff-output FILE.tar    write the step's changes as a layer (tar; .tar.gz\n"
            "                            or .tar.zst compress)\n"
            "  --keep-upper DIR          keep the upper dir (overlay form) at DIR\n"
            "  --differ walk|overlay     run on a copy of the rootfs and find the changes\n"
            "                            with the walking differ (default overlay)\n"
            "  --source-date-epoch N     clamp the diff's mtimes to N\n"
            "  --timestamps              prefix output lines with their time\n"
            "  -v, --verbose             say which isolation was picked\n"
            "  --seccomp unconfined      run without the seccomp filter\n");
}

/* Parses "60s", "2m", "500ms", "1h", "30": milliseconds. */
static int parse_duration(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    uint64_t mul = 1000;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno || end == s || *end ? -1 : 0;
}

/* type=bind,src=…,dst=…,ro | type=tmpfs,dst=…,size=… ; strings point into spec. */
static int parse_mount(char *spec, kiln_mount_t *m)
{
    char *save = NULL, *tok;
    int have_type = 0;

    memset(m, 0, sizeof(*m));
    for (tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        const char *v = eq ? eq + 1 : "";
        if (eq)
            *eq = '\0';
        if (strcmp(tok, "type") == 0) {
            have_type = 1;
            if (strcmp(v, "bind") == 0)
                m->type = KILN_MOUNT_BIND;
            else if (strcmp(v, "tmpfs") == 0)
                m->type = KILN_MOUNT_TMPFS;
            else if (strcmp(v, "cache") == 0)
                m->type = KILN_MOUNT_CACHE;
            else if (strcmp(v, "secret") == 0)
                m->type = KILN_MOUNT_SECRET;
            else
                return -1;
        } else if (strcmp(tok, "src") == 0 || strcmp(tok, "source") == 0) {
            m->src = v;
        } else if (strcmp(tok, "dst") == 0 || strcmp(tok, "target") == 0 ||
                   strcmp(tok, "destination") == 0) {
            m->dst = v;
        } else if (strcmp(tok, "ro") == 0 || strcmp(tok, "readonly") == 0) {
            m->readonly = 1;
        } else if (strcmp(tok, "rw") == 0) {
            m->readonly = 0;
        } else if (strcmp(tok, "size") == 0) {
            if (kiln_size_parse(v, &m->size, NULL) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    if (!have_type || m->dst == NULL || m->dst[0] != '/')
        return -1;
    if (m->type != KILN_MOUNT_TMPFS && (m->src == NULL || m->src[0] == '\0'))
        return -1;
    return 0;
}

/* Looks up a user name (and its primary gid) in the rootfs's /etc/passwd. */
static int lookup_user(const char *const *lowers, size_t n, const char *name, uid_t *uid,
                       gid_t *gid)
{
    _cleanup_free_ char *data = NULL;
    char *save = NULL, *line;
    size_t len;

    /* /etc/passwd as the merged rootfs has it, read inside the layer that
     * holds it: a link there is followed in the image, never to the host */
    {
        _cleanup_free_ char *canon = NULL;
        _cleanup_close_ int rootfd = -1;
        int layer = -1;
        if (kiln_lowerview_resolve(lowers, n, "/etc/passwd", 0, &canon, &layer, NULL) < 0 ||
            layer < 0 || kiln_pathres_open_root(lowers[layer], &rootfd, NULL) < 0 ||
            kiln_pathres_read_file(rootfd, canon, 1 << 20, &data, &len, NULL) < 0)
            return -1;
    }
    for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4], *s2 = NULL;
        int i = 0;
        for (char *t = strtok_r(line, ":", &s2); t && i < 4; t = strtok_r(NULL, ":", &s2))
            f[i++] = t;
        if (i == 4 && strcmp(f[0], name) == 0) {
            *uid = (uid_t)strtoul(f[2], NULL, 10);
            *gid = (gid_t)strtoul(f[3], NULL, 10);
            return 0;
        }
    }
    return -1;
}

static int parse_user(const char *const *lowers, size_t n, const char *spec, uid_t *uid, gid_t *gid)
{
    _cleanup_free_ char *u = kiln_xstrdup(spec);
    char *colon = strchr(u, ':'), *end;
    unsigned long v;

    if (colon)
        *colon = '\0';
    errno = 0;
    v = strtoul(u, &end, 10);
    if (*u && *end == '\0' && !errno && v < 65536) {
        *uid = (uid_t)v;
        *gid = (gid_t)v;
    } else if (lookup_user(lowers, n, u, uid, gid) < 0) {
        return -1;
    }
    if (colon) {
        errno = 0;
        v = strtoul(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end || errno || v >= 65536)
            return -1;
        *gid = (gid_t)v;
    }
    return 0;
}

/* Scratch dirs (upper and work) of runs whose changes are kept:
 * SCRATCH_DIR/run-<pid>-XXXXXX. */
#define SCRATCH_DIR "/var/tmp/kiln"

static int show_timestamps, verbose;

static void print_line(void *opaque, kiln_log_stream_t stream, const struct timespec *ts,
                       const char *line, size_t len)
{
    FILE *out = stream == KILN_LOG_STDOUT ? stdout : stderr;
    (void)opaque;
    /* What auto stands for and the cgroups enforcing the limits are noise
     * for a person at a terminal (a fallback to rlimits is not). */
    if (stream == KILN_LOG_SYSTEM && !verbose &&
        (memmem(line, len, "(auto)", 6) != NULL ||
         (len > 8 && memcmp(line, "limits: ", 8) == 0 && memmem(line, len, "RLIMIT", 6) == NULL)))
        return;
    if (show_timestamps) {
        struct tm tm;
        char when[32];
        gmtime_r(&ts->tv_sec, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        fprintf(out, "%s.%03ld ", when, ts->tv_nsec / 1000000);
    }
    if (stream == KILN_LOG_SYSTEM)
        fputs("kiln: ", out);
    fwrite(line, 1, len, out);
    fputc('\n', out);
    if (stream != KILN_LOG_STDOUT)
        fflush(out);
}

static int64_t source_date_epoch = -1;

static int write_layer(const char *base, const char *upper, const kiln_layer_opts_t *opts,
                       kiln_sink_t *sink, kiln_layer_info_t *info, kiln_error_t *err)
{
    kiln_layer_writer_t *w = NULL;
    int r;

    if (base == NULL)
        return kiln_layer_write_dir(upper, opts, sink, info, err);
    if (kiln_layer_writer_new(opts, sink, &w, err) < 0)
        return -1;
    r = kiln_diff_write(base, upper, w, err);
    if (r == 0)
        r = kiln_layer_writer_finish(w, info, err);
    kiln_layer_writer_free(w);
    return r;
}

/* Writes the changes as a layer tar (compression from the file name) via a
 * temp file renamed into place: the upper dir (overlay form), or, with base
 * set, what the walking differ finds between base and upper. */
static int write_diff(const char *base, const char *upper, const char *dest, kiln_error_t *err)
{
    _cleanup_free_ char *tmp = kiln_xasprintf("%s.tmp-%d", dest, (int)getpid());
    _cleanup_close_ int fd = -1;
    kiln_layer_opts_t opts;
    kiln_layer_info_t info;
    kiln_sink_t sink;
    size_t n = strlen(dest);
    struct timespec t0, t1;

    kiln_layer_opts_init(&opts);
    opts.overlay_upper = base == NULL;
    opts.source_date_epoch = source_date_epoch;
    opts.compression = KILN_COMPRESSION_NONE;
    if ((n > 3 && strcmp(dest + n - 3, ".gz") == 0) || (n > 4 && strcmp(dest + n - 4, ".tgz") == 0))
        opts.compression = KILN_COMPRESSION_GZIP;
    else if (n > 4 && strcmp(dest + n - 4, ".zst") == 0)
        opts.compression = KILN_COMPRESSION_ZSTD;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return kiln_error_set(err, errno, "creating %s", tmp);
    sink = kiln_sink_fd(&fd);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (write_layer(base, upper, &opts, &sink, &info, err) < 0 || fsync(fd) < 0 ||
        rename(tmp, dest) < 0) {
        if (!kiln_error_is_set(err))
            kiln_error_set(err, errno, "writing %s", dest);
        unlink(tmp);
        return kiln_error_prefix(err, "diff output %s", dest);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (verbose)
        fprintf(stderr, "kiln: layer written in %.1f ms (%llu entries, %llu bytes, %s differ)\n",
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
                (unsigned long long)info.entries, (unsigned long long)info.size,
                base ? "walking" : "overlay");
    return 0;
}

/* Removes the flattened bottom of an image made for one run (cleanup handler). */
static void remove_flat(char **dir)
{
    if (*dir != NULL)
        kiln_fs_rm_rf(*dir, NULL);
    free(*dir);
}

/* An image of kiln's store: its layers unpacked into the layer cache (top-most first) and
 * its config (malloc'ed/owned by the caller). */
static int store_image(const char *root, const char *name, const char *cache, char ***lowers,
                       size_t *n, json_t **config, kiln_error_t *err)
{
    kiln_store_t *s = NULL;
    kiln_digest_t d;
    kiln_manifest_t *m = NULL;
    _cleanup_free_ char *body = NULL, *cfg = NULL;
    size_t len = 0, clen = 0;
    int r = -1;

    if (kiln_cli_image_store_open(root, &s, err) < 0)
        return -1;
    if (kiln_cli_image_resolve(s, name, &d, err) < 0 ||
        kiln_store_read_blob(s, &d, KILN_IMAGE_MANIFEST_MAX, &body, &len, err) < 0 ||
        kiln_image_parse_manifest(body, len, &m, err) < 0 ||
        kiln_store_read_blob(s, &m->config.digest, KILN_IMAGE_CONFIG_MAX, &cfg, &clen, err) < 0 ||
        kiln_image_parse_config(cfg, clen, config, err) < 0)
        goto out;
    if (kiln_rootfs_from_store(s, m, cache, lowers, n, err) < 0) {
        json_decref(steal_pointer(config));
        kiln_error_prefix(err, "image %s", name);
        goto out;
    }
    r = 0;
out:
    kiln_manifest_free(m);
    kiln_store_close(s);
    return r;
}

/* The strings of a config's array field (e.g. Cmd) appended to v (a NULL-terminated list of
 * at most max - 1 entries); how many were added. */
static size_t append_strings(json_t *arr, const char **v, size_t at, size_t max)
{
    size_t i, k = at;
    json_t *e;

    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e) && k + 1 < max)
            v[k++] = json_string_value(e);
    }
    v[k] = NULL;
    return k - at;
}

int kiln_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"rootfs", required_argument, NULL, 'r'},
                                         {"isolation", required_argument, NULL, 'i'},
                                         {"network", required_argument, NULL, 'n'},
                                         {"allow-address", required_argument, NULL, 'A'},
                                         {"memory", required_argument, NULL, 'm'},
                                         {"pids", required_argument, NULL, 'p'},
                                         {"cpu", required_argument, NULL, 'c'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"file-size", required_argument, NULL, 'F'},
                                         {"nofile", required_argument, NULL, 'N'},
                                         {"mount", required_argument, NULL, 'M'},
                                         {"env", required_argument, NULL, 'e'},
                                         {"workdir", required_argument, NULL, 'w'},
                                         {"user", required_argument, NULL, 'u'},
                                         {"hostname", required_argument, NULL, 'H'},
                                         {"diff-output", required_argument, NULL, 'd'},
                                         {"keep-upper", required_argument, NULL, 'K'},
                                         {"timestamps", no_argument, NULL, 'T'},
                                         {"seccomp", required_argument, NULL, 'S'},
                                         {"differ", required_argument, NULL, 'D'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"source-date-epoch", required_argument, NULL, 'E'},
                                         {"root", required_argument, NULL, 'R'},
                                         {"ulimit", required_argument, NULL, 'U'},
                                         {"shm-size", required_argument, NULL, 'Z'},
                                         {"add-host", required_argument, NULL, 'X'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *lowers[KILN_IDMAP_MAX_LOWERS];
    const char *image_ref = NULL, *root = NULL, *store_name = NULL;
    _cleanup_json_ json_t *config = NULL;
    kiln_ulimit_t ulimits[MAX_ALLOW];
    _cleanup_strv_ char **hosts = NULL;
    size_t n_ulimits = 0, n_hosts = 0;
    const char *image_argv[MAX_ENV + 1];
    __attribute__((cleanup(remove_flat))) char *flat = NULL;
    _cleanup_strv_ char **image_lowers = NULL;
    size_t n_lowers = 0, n_mounts = 0, n_env = 0;
    kiln_mount_t mounts[MAX_MOUNTS];
    const char *env[MAX_ENV + 1];
    const char *allow[MAX_ALLOW];
    size_t n_allow = 0;
    const char *user = NULL, *diff_out = NULL, *keep_upper = NULL;
    _cleanup_free_ char *scratch = NULL, *upper = NULL, *work = NULL;
    kiln_step_t step;
    kiln_step_result_t res;
    kiln_error_t err = {0};
    int c, ret, walk = 0;

    kiln_step_init(&step);
    show_timestamps = verbose = 0;
    source_date_epoch = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (n_lowers == sizeof(lowers) / sizeof(lowers[0]))
                return kiln_cli_usage_error("run", "too many --rootfs");
            if (strncmp(optarg, "oci:", 4) == 0)
                image_ref = optarg;
            else
                lowers[n_lowers++] = optarg;
            break;
        case 'i':
            if (kiln_isolation_parse(optarg, &step.isolation) < 0)
                return kiln_cli_usage_error("run", "bad --isolation '%s'", optarg);
            break;
        case 'n':
            if (kiln_net_mode_parse(optarg, &step.network) < 0)
                return kiln_cli_usage_error("run", "bad --network '%s'", optarg);
            break;
        case 'A':
            if (n_allow == MAX_ALLOW || kiln_netpolicy_validate(optarg, &err) < 0)
                return kiln_cli_usage_error("run", "--allow-address: %s",
                                            err.msg[0] ? err.msg : "too many entries");
            allow[n_allow++] = optarg;
            break;
        case 'm':
            if (kiln_size_parse(optarg, &step.limits.memory, NULL) < 0)
                return kiln_cli_usage_error("run", "bad --memory '%s'", optarg);
            break;
        case 'F':
            if (kiln_size_parse(optarg, &step.limits.file_size, NULL) < 0)
                return kiln_cli_usage_error("run", "bad --file-size '%s'", optarg);
            break;
        case 'p':
            if (parse_u64(optarg, &step.limits.pids) < 0)
                return kiln_cli_usage_error("run", "bad --pids '%s'", optarg);
            break;
        case 'c':
            if (parse_u64(optarg, &step.limits.cpu_secs) < 0)
                return kiln_cli_usage_error("run", "bad --cpu '%s'", optarg);
            break;
        case 'N':
            if (parse_u64(optarg, &step.limits.nofile) < 0)
                return kiln_cli_usage_error("run", "bad --nofile '%s'", optarg);
            break;
        case 't':
            if (parse_duration(optarg, &step.limits.timeout_ms) < 0)
                return kiln_cli_usage_error("run", "bad --timeout '%s'", optarg);
            break;
        case 'M':
            if (n_mounts == MAX_MOUNTS || parse_mount(optarg, &mounts[n_mounts]) < 0)
                return kiln_cli_usage_error("run", "bad --mount (see kiln run -h)");
            n_mounts++;
            break;
        case 'e':
            if (n_env == MAX_ENV || strchr(optarg, '=') == NULL || optarg[0] == '=')
                return kiln_cli_usage_error("run", "bad --env '%s' (K=V)", optarg);
            env[n_env++] = optarg;
            break;
        case 'w':
            if (optarg[0] != '/')
                return kiln_cli_usage_error("run", "--workdir must be absolute");
            step.cwd = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'H':
            step.hostname = optarg;
            break;
        case 'd':
            diff_out = optarg;
            break;
        case 'K':
            keep_upper = optarg;
            break;
        case 'T':
            show_timestamps = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'D':
            if (strcmp(optarg, "walk") != 0 && strcmp(optarg, "overlay") != 0)
                return kiln_cli_usage_error("run", "bad --differ '%s'", optarg);
            walk = strcmp(optarg, "walk") == 0;
            break;
        case 'E': {
            uint64_t v;
            if (parse_u64(optarg, &v) < 0 || v > INT64_MAX)
                return kiln_cli_usage_error("run", "bad --source-date-epoch '%s'", optarg);
            source_date_epoch = (int64_t)v;
            break;
        }
        case 'S':
            if (strcmp(optarg, "unconfined") == 0)
                step.seccomp = KILN_SECCOMP_UNCONFINED;
            else if (strcmp(optarg, "default") != 0)
                return kiln_cli_usage_error("run", "bad --seccomp '%s'", optarg);
            break;
        case 'R':
            root = optarg;
            break;
        case 'U':
            if (n_ulimits == MAX_ALLOW || kiln_ulimit_parse(optarg, &ulimits[n_ulimits], &err) < 0)
                return kiln_cli_usage_error("run", "%s",
                                            err.msg[0] ? err.msg : "too many --ulimit");
            n_ulimits++;
            break;
        case 'Z':
            if (kiln_size_parse(optarg, &step.shm_size, NULL) < 0 || step.shm_size == 0)
                return kiln_cli_usage_error("run", "bad --shm-size '%s'", optarg);
            break;
        case 'X': {
            char *line = NULL;
            if (n_hosts == MAX_ALLOW || kiln_add_host_parse(optarg, &line, &err) < 0)
                return kiln_cli_usage_error("run", "%s",
                                            err.msg[0] ? err.msg : "too many --add-host");
            hosts = kiln_xrealloc(hosts, (n_hosts + 2) * sizeof(*hosts));
            hosts[n_hosts++] = line;
            hosts[n_hosts] = NULL;
            break;
        }
        case 'h':
            usage(stdout);
            return KILN_EXIT_OK;
        default:
            return KILN_EXIT_USAGE;
        }
    }
    /* no --rootfs and no "--": the first word is an image of kiln's store, as docker run's */
    if (n_lowers == 0 && image_ref == NULL && optind < argc && strcmp(argv[optind - 1], "--") != 0)
        store_name = argv[optind++];
    if (optind >= argc && store_name == NULL)
        return kiln_cli_usage_error("run", "missing the command to run (after --)");
    if (image_ref != NULL || store_name != NULL) {
        /* An image: its layers, unpacked once into the shared lower cache. */
        _cleanup_free_ char *dir = NULL, *tag = NULL;
        const char *cache = getenv("KILN_LAYER_CACHE");
        size_t n = 0;
        if (n_lowers != 0)
            return kiln_cli_usage_error("run", "--rootfs oci:… cannot be combined with dirs");
        if (store_name != NULL) {
            if (store_image(root, store_name, cache ? cache : KILN_ROOTFS_CACHE_DEFAULT,
                            &image_lowers, &n, &config, &err) < 0)
                return kiln_cli_fail(&err);
            image_ref = store_name;
        } else if (kiln_layout_parse_ref(image_ref, &dir, &tag, &err) < 0 ||
                   kiln_rootfs_from_layout(dir, tag, cache ? cache : KILN_ROOTFS_CACHE_DEFAULT,
                                           &image_lowers, &n, &err) < 0) {
            return kiln_cli_fail(&err);
        }
        if (n > sizeof(lowers) / sizeof(lowers[0])) {
            /* More layers than a step is mounted on (the build flattens its
             * long stages the same way): the bottom ones merged into one tree
             * for this run, hardlinked from the layer cache, removed after. */
            size_t keep = sizeof(lowers) / sizeof(lowers[0]) - 1;
            if (kiln_fs_mkdtemp(cache ? cache : KILN_ROOTFS_CACHE_DEFAULT, ".flat-", &flat, &err) <
                    0 ||
                kiln_lowerview_flatten((const char *const *)image_lowers + keep, n - keep, flat,
                                       &err) < 0) {
                kiln_error_prefix(&err, "image %s: flattening its bottom %zu layers", image_ref,
                                  n - keep);
                return kiln_cli_fail(&err);
            }
            n = keep;
        }
        for (size_t i = 0; i < n; i++)
            lowers[n_lowers++] = image_lowers[i];
        if (flat != NULL)
            lowers[n_lowers++] = flat;
    }
    if (n_lowers == 0 && step.isolation != KILN_ISOLATION_NONE)
        return kiln_cli_usage_error("run", "--rootfs is required");
    for (size_t i = 0; i < n_lowers; i++) {
        struct stat st;
        if (stat(lowers[i], &st) < 0 || !S_ISDIR(st.st_mode))
            return kiln_cli_usage_error("run", "--rootfs %s is not a directory", lowers[i]);
    }
    if (config != NULL) {
        /* the image's settings, as docker run applies them, unless the flags gave them */
        json_t *ic = json_object_get(config, "config");
        const char *wd = kiln_json_get_string(ic, "WorkingDir");
        const char *u = kiln_json_get_string(ic, "User");
        size_t k = append_strings(json_object_get(ic, "Entrypoint"), image_argv, 0, MAX_ENV + 1);
        if (optind < argc)
            for (int i = optind; i < argc && k < MAX_ENV; i++)
                image_argv[k++] = argv[i];
        else
            k += append_strings(json_object_get(ic, "Cmd"), image_argv, k, MAX_ENV + 1);
        image_argv[k] = NULL;
        if (k == 0)
            return kiln_cli_usage_error("run", "image %s has no Entrypoint or Cmd: give CMD",
                                        store_name);
        /* flags' --env come last: they win over the image's */
        {
            const char *merged[MAX_ENV + 1];
            size_t m = append_strings(json_object_get(ic, "Env"), merged, 0, MAX_ENV + 1 - n_env);
            memcpy(merged + m, env, n_env * sizeof(*env));
            n_env += m;
            memcpy(env, merged, n_env * sizeof(*env));
        }
        if (step.cwd == NULL && wd != NULL && wd[0] == '/')
            step.cwd = wd;
        if (user == NULL && u != NULL && *u)
            user = u;
    }
    if (user && parse_user(lowers, n_lowers, user, &step.uid, &step.gid) < 0)
        return kiln_cli_usage_error("run", "bad --user '%s'", user);
    env[n_env] = NULL;
    if (n_env)
        step.env = env;
    step.allow_addresses = allow;
    step.n_allow_addresses = n_allow;
    step.ulimits = ulimits;
    step.n_ulimits = n_ulimits;
    step.extra_hosts = (const char *const *)hosts;
    step.n_extra_hosts = n_hosts;
    step.argv = config != NULL ? image_argv : (const char *const *)argv + optind;
    step.lowers = lowers;
    step.n_lowers = n_lowers;
    step.mounts = mounts;
    step.n_mounts = n_mounts;
    step.stdin_fd = isatty(0) ? -1 : 0;
    step.log = print_line;

    kiln_sandbox_sweep(NULL);
    kiln_sandbox_sweep_dir(SCRATCH_DIR, "run-");
    if (diff_out == NULL && keep_upper == NULL && !walk) {
        /* Nobody keeps the changes: the sandbox holds them in memory, and
         * nothing is created (then removed) on the host's disk. */
        step.upper = step.work = NULL;
    } else {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "run-%d-", (int)getpid());
        if (kiln_fs_mkdir_p(SCRATCH_DIR, 0700, &err) < 0 ||
            kiln_fs_mkdtemp(SCRATCH_DIR, prefix, &scratch, &err) < 0)
            return kiln_cli_fail(&err);
        upper = kiln_xasprintf("%s/upper", scratch);
        work = kiln_xasprintf("%s/work", scratch);
        if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0) {
            kiln_error_set(&err, errno, "creating %s", upper);
            kiln_fs_rm_rf(scratch, NULL);
            return kiln_cli_fail(&err);
        }
        step.upper = upper;
        step.work = work;
    }
    if (walk) {
        if (n_lowers != 1) {
            kiln_fs_rm_rf(scratch, NULL);
            return kiln_cli_usage_error("run", "--differ walk takes one --rootfs");
        }
        kiln_fs_rm_rf(upper, NULL);
        if (kiln_diff_copy_tree(lowers[0], upper, &err) < 0) {
            kiln_fs_rm_rf(scratch, NULL);
            return kiln_cli_fail(&err);
        }
        step.rw_root = upper;
    }

    ret = kiln_sandbox_run(&step, &res, &err);
    fflush(stdout);
    if (ret == 0 && diff_out && write_diff(walk ? lowers[0] : NULL, upper, diff_out, &err) < 0)
        ret = -1;
    if (ret == 0 && keep_upper && rename(upper, keep_upper) < 0) {
        kiln_error_set(&err, errno, "moving the upper dir to %s", keep_upper);
        ret = -1;
    }
    if (scratch != NULL)
        kiln_fs_rm_rf(scratch, NULL);
    if (ret < 0)
        return kiln_cli_fail(&err);
    return res.exit_code;
}
