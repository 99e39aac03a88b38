/* kiln — the Dockerfile build engine (stages, cache keys, executor). */
#include "src/build/build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/entitlement.h"
#include "engine/lowerview.h"
#include "engine/statcache.h"
#include "handlers/dockerfile/dockerignore.h"
#include "handlers/dockerfile/instructions.h"
#include "handlers/dockerfile/parser.h"
#include "handlers/dockerfile/shell.h"
#include "oci/layer_read.h"
#include "oci/layer_write.h"
#include "oci/layout.h"
#include "oci/registry.h"
#include "sandbox/diff.h"
#include "sandbox/sandbox.h"
#include "utils/buf.h"
#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/http.h"
#include "utils/mem.h"
#include "utils/pathres.h"
#include "utils/size.h"

#define MAX_STAGES 256
#define MAX_PARALLEL 4
#define MAX_COPY_LINKS 100000
/* ADD <url> downloads are held in memory: at most this much. */
#define ADD_URL_MAX (512u << 20)
#define LOG_TAIL 20
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

typedef struct strv {
    char **v;
    size_t n;
} strv_t;

static void strv_add(strv_t *s, char *owned)
{
    s->v = kiln_xrealloc(s->v, (s->n + 2) * sizeof(char *));
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
}

static void strv_clear(strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Sets "K=V" in s, replacing an existing K. */
static void kv_set(strv_t *s, const char *k, const char *v)
{
    size_t kl = strlen(k);
    for (size_t i = 0; i < s->n; i++) {
        if (strncmp(s->v[i], k, kl) == 0 && (s->v[i][kl] == '=' || s->v[i][kl] == '\0')) {
            free(s->v[i]);
            s->v[i] = kiln_xasprintf("%s=%s", k, v);
            return;
        }
    }
    strv_add(s, kiln_xasprintf("%s=%s", k, v));
}

static const char *kv_get(const strv_t *s, const char *k)
{
    size_t kl = strlen(k);
    for (size_t i = s->n; i > 0; i--)
        if (strncmp(s->v[i - 1], k, kl) == 0 && s->v[i - 1][kl] == '=')
            return s->v[i - 1] + kl + 1;
    return NULL;
}

static char tolower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

typedef struct layer {
    kiln_descriptor_t desc;
    kiln_digest_t diff_id;
} layer_t;

typedef struct stage {
    char *name;        /* lower-cased AS name, or NULL */
    size_t first, end; /* node range: FROM at first, instructions first+1..end-1 */
    int index;
    int state; /* 0 not built, 1 building, 2 built, 3 failed */
    json_t *config;
    layer_t *layers;
    size_t n_layers;
    kiln_digest_t key;
    strv_t args;  /* ARGs in scope with values */
    char *rootfs; /* merged rootfs for COPY --from (lazily made) */
    struct engine *e;
    int step;             /* the "#N" of the step running now */
    char *tail[LOG_TAIL]; /* last lines of the running RUN, for its error */
    size_t tail_n;
    kiln_error_t err;  /* a failure while running in a worker thread */
    pthread_t builder; /* the thread building it (state 1) */
} stage_t;

typedef struct engine {
    const kiln_build_request_t *req;
    kiln_store_t *store;
    kiln_dockerfile_t *df;
    kiln_dockerignore_t *ignore;
    stage_t stages[MAX_STAGES];
    size_t n_stages;
    strv_t meta_args; /* ARGs before the first FROM, resolved */
    strv_t build_args;
    char *work;       /* <root>/build/tmp/XXXX for this build */
    char *lowers_dir; /* <root>/build/lowers */
    /* the caches of the build's namespace (utils/cachens): RUN cache mounts,
     * the stat cache file, and the ref prefix of step cache entries */
    char *mounts_dir;
    char *statcache_path;
    char *cache_prefix;
    int known_fd; /* <root>/ns/NAME/blobs (blobs the namespace may use), -1 without one */
    int step_no;
    time_t created; /* SOURCE_DATE_EPOCH, or the build's start */
    int have_sde;
    time_t stamp; /* newest time a layer of this image was built (cached or not) */
    kiln_registry_t *registry;
    kiln_netpolicy_t *fetch_policy;    /* ADD URLs: public + the allowlist */
    kiln_netpolicy_t *registry_policy; /* registries (see kiln_build_netpolicy) */
    kiln_build_result_t *res;
    pthread_mutex_t lock; /* guards the shared state above when stages run in parallel */
    pthread_cond_t cond;  /* a stage finished */
    /* cache entries this build used or made: "<stage index> <entry digest> <key hex>" */
    strv_t cache_used;
} engine_t;

static void emit(engine_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(engine_t *e, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    if (e->req->progress == KILN_PROGRESS_QUIET)
        return;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (s == NULL)
        return;
    if (e->req->log)
        e->req->log(e->req->log_ctx, s);
    else
        fprintf(stderr, "%s\n", s);
    free(s);
}

/* One progress event of step N: plain "#N text" lines, or with
 * --progress=json one JSON object per line:
 * {"step":N,"event":"start|log|cached|done|error","text":…,"seconds":…}. */
static void emit_event(engine_t *e, int step, const char *event, const char *text, double secs)
{
    if (e->req->progress == KILN_PROGRESS_QUIET)
        return;
    if (e->req->progress == KILN_PROGRESS_JSON) {
        json_t *j = json_pack("{s:i,s:s}", "step", step, "event", event);
        char *s;
        if (text != NULL)
            json_object_set_new(j, "text", json_string(text));
        if (secs >= 0)
            json_object_set_new(j, "seconds", json_real(secs));
        s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(j);
        if (s != NULL)
            emit(e, "%s", s);
        free(s);
        return;
    }
    if (strcmp(event, "log") == 0 && e->req->progress == KILN_PROGRESS_TTY)
        return; /* condensed: steps and their status only (a failure shows its last lines) */
    if (strcmp(event, "start") == 0 || strcmp(event, "log") == 0)
        emit(e, "#%d %s", step, text ? text : "");
    else if (strcmp(event, "cached") == 0)
        emit(e, "#%d CACHED", step);
    else if (strcmp(event, "done") == 0)
        emit(e, "#%d DONE %.1fs", step, secs);
    else
        emit(e, "#%d ERROR: %s", step, text ? text : "");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The variables visible to word expansion in a stage: ARGs then ENV (ENV wins). */
static void stage_vars(const stage_t *st, strv_t *out)
{
    json_t *env = json_object_get(json_object_get(st->config, "config"), "Env");
    size_t i;
    json_t *v;
    for (size_t k = 0; k < st->args.n; k++)
        strv_add(out, kiln_xstrdup(st->args.v[k]));
    json_array_foreach(env, i, v)
    {
        if (json_is_string(v))
            strv_add(out, kiln_xstrdup(json_string_value(v)));
    }
}

typedef struct used_args {
    const strv_t *args;
    strv_t used;
} used_args_t;

static void on_use(void *ctx, const char *name, bool found)
{
    used_args_t *u = ctx;
    const char *v;
    if (!found || u == NULL)
        return;
    v = kv_get(u->args, name);
    if (v != NULL && kv_get(&u->used, name) == NULL)
        kv_set(&u->used, name, v);
}

static int expand(engine_t *e, const stage_t *st, const char *word, used_args_t *u, char **out,
                  kiln_error_t *err)
{
    strv_t vars = {0};
    kiln_shell_opts_t o = {.escape = e->df->escape};
    kiln_shell_env_t env = {0};
    int r;
    stage_vars(st, &vars);
    env.vars = vars.v;
    env.n_vars = vars.n;
    env.on_use = on_use;
    env.ctx = u;
    r = kiln_shell_process_word(word, &o, &env, out, err);
    strv_clear(&vars);
    return r;
}

/* Expands variables only (quotes kept): heredoc bodies of COPY/ADD. */
static int expand_raw(engine_t *e, const stage_t *st, const char *text, char **out,
                      kiln_error_t *err)
{
    strv_t vars = {0};
    kiln_shell_opts_t o = {.escape = e->df->escape, .skip_quotes = true, .raw_escapes = true};
    kiln_shell_env_t env = {0};
    int r;
    stage_vars(st, &vars);
    env.vars = vars.v;
    env.n_vars = vars.n;
    r = kiln_shell_process_word(text, &o, &env, out, err);
    strv_clear(&vars);
    return r;
}

static const char *build_arg(engine_t *e, const char *name)
{
    const char *v = kv_get(&e->build_args, name);
    return v;
}

/* ---------------------------------------------------------------- history */

static void add_history(engine_t *e, stage_t *st, const char *created_by, int empty)
{
    /* "created" is filled in at the end (see finish_image) */
    kiln_image_config_add_history(st->config, 0, created_by, "buildkit.dockerfile.v0", empty, NULL);
}

/* ---------------------------------------------------------------- cache */

static void key_step(kiln_digest_t *key, const char *what, const char *extra)
{
    kiln_sha256_t h;
    char ks[KILN_DIGEST_STR_MAX];
    kiln_sha256_init(&h, NULL);
    kiln_digest_str(key, ks);
    kiln_sha256_update(&h, ks, strlen(ks));
    kiln_sha256_update(&h, "\n", 1);
    kiln_sha256_update(&h, what, strlen(what));
    kiln_sha256_update(&h, "\n", 1);
    if (extra)
        kiln_sha256_update(&h, extra, strlen(extra));
    kiln_sha256_final(&h, key);
}

/* The store ref of a step cache entry, in the build's namespace. */
static char *cache_ref(const engine_t *e, const kiln_digest_t *key)
{
    char ks[KILN_DIGEST_STR_MAX];
    kiln_digest_str(key, ks);
    return kiln_xasprintf("%s%s", e->cache_prefix, strchr(ks, ':') + 1);
}

/* Whether the build's namespace may use blob d of the shared store: always
 * without a namespace, else only when it fetched or built d itself (a digest
 * alone, learnt from another tenant's manifest, does not give its bytes). A
 * use keeps the mark fresh for gc. */
static bool ns_knows(engine_t *e, const kiln_digest_t *d)
{
    if (e->known_fd < 0)
        return true;
    return utimensat(e->known_fd, d->hex, NULL, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Records that the build's namespace fetched (verified) or built blob d. */
static void ns_note(engine_t *e, const kiln_digest_t *d)
{
    int fd;
    if (e->known_fd < 0)
        return;
    fd = openat(e->known_fd, d->hex, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    (void)utimensat(e->known_fd, d->hex, NULL, AT_SYMLINK_NOFOLLOW);
}

/* kiln_registry_pull hooks: a blob another namespace stored is fetched again */
static int pull_may_reuse(void *ud, const kiln_digest_t *d)
{
    return ns_knows(ud, d);
}

static void pull_on_blob(void *ud, const kiln_digest_t *d)
{
    ns_note(ud, d);
}

/* Pulls ref into the store for this build (see pull_may_reuse). */
static int build_pull(engine_t *e, const char *ref, kiln_registry_image_t *ri, kiln_error_t *err)
{
    kiln_registry_pull_opts_t po = {
        .may_reuse = pull_may_reuse, .on_blob = pull_on_blob, .hook_ud = e};
    return kiln_registry_pull(e->registry, e->store, ref, &po, ri, err);
}

static void note_cache_entry(engine_t *e, const stage_t *st, const kiln_digest_t *key,
                             const kiln_digest_t *entry)
{
    char ks[KILN_DIGEST_STR_MAX], es[KILN_DIGEST_STR_MAX];
    kiln_digest_str(key, ks);
    kiln_digest_str(entry, es);
    pthread_mutex_lock(&e->lock);
    strv_add(&e->cache_used, kiln_xasprintf("%d %s %s", st->index, es, strchr(ks, ':') + 1));
    pthread_mutex_unlock(&e->lock);
}

/* Looks a step up: on a hit replaces the stage config and appends the layer. */
static int cache_lookup(engine_t *e, stage_t *st, const kiln_digest_t *key, bool *hit,
                        kiln_error_t *err)
{
    _cleanup_free_ char *ref = cache_ref(e, key);
    _cleanup_free_ char *body = NULL;
    kiln_digest_t d;
    size_t len;
    json_t *j, *cfg, *layer;
    int r;

    *hit = false;
    if (e->req->no_cache)
        return 0;
    r = kiln_store_ref_get(e->store, ref, &d, err);
    if (r <= 0)
        return r;
    note_cache_entry(e, st, key, &d);
    if (kiln_store_read_blob(e->store, &d, 0, &body, &len, err) < 0)
        return 0; /* a broken entry is a miss */
    j = json_loadb(body, len, 0, NULL);
    if (j == NULL)
        return 0;
    cfg = json_object_get(j, "config");
    layer = json_object_get(j, "layer");
    if (!json_is_object(cfg)) {
        json_decref(j);
        return 0;
    }
    if (json_is_object(layer)) {
        layer_t l = {0};
        const char *diff = json_string_value(json_object_get(j, "diff_id"));
        if (kiln_descriptor_from_json(layer, "layer", &l.desc, NULL) < 0 || diff == NULL ||
            kiln_digest_parse(diff, &l.diff_id, NULL) < 0 ||
            !kiln_store_has(e->store, &l.desc.digest, NULL) || !ns_knows(e, &l.desc.digest)) {
            kiln_descriptor_clear(&l.desc);
            json_decref(j);
            return 0;
        }
        st->layers = kiln_xrealloc(st->layers, (st->n_layers + 1) * sizeof(layer_t));
        st->layers[st->n_layers++] = l;
    }
    json_decref(st->config);
    st->config = json_deep_copy(cfg);
    {
        json_int_t built = json_integer_value(json_object_get(j, "built"));
        pthread_mutex_lock(&e->lock);
        if ((time_t)built > e->stamp)
            e->stamp = (time_t)built;
        pthread_mutex_unlock(&e->lock);
    }
    json_decref(j);
    *hit = true;
    return 0;
}

static int cache_store(engine_t *e, stage_t *st, const kiln_digest_t *key, const layer_t *l,
                       kiln_error_t *err)
{
    _cleanup_free_ char *ref = cache_ref(e, key);
    json_t *j = json_object();
    kiln_descriptor_t desc = {0};
    int r;
    json_object_set(j, "config", st->config);
    pthread_mutex_lock(&e->lock);
    if (e->created > e->stamp)
        e->stamp = e->created;
    pthread_mutex_unlock(&e->lock);
    json_object_set_new(j, "built", json_integer((json_int_t)e->created));
    if (l != NULL) {
        char ds[KILN_DIGEST_STR_MAX];
        json_object_set_new(j, "layer", kiln_descriptor_to_json(&l->desc));
        json_object_set_new(j, "diff_id", json_string(kiln_digest_str(&l->diff_id, ds)));
    }
    r = kiln_image_store_put(e->store, j, "application/vnd.kiln.cache.v1+json", &desc, err);
    json_decref(j);
    if (r < 0)
        return -1;
    r = kiln_store_ref_set(e->store, ref, &desc.digest, err);
    if (r == 0 && l != NULL) {
        /* the entry is kiln's own JSON: pin its layer too, so a prune keeps it */
        _cleanup_free_ char *lref = kiln_xasprintf("%s.layer", ref);
        r = kiln_store_ref_set(e->store, lref, &l->desc.digest, err);
    }
    if (r == 0)
        note_cache_entry(e, st, key, &desc.digest);
    kiln_descriptor_clear(&desc);
    return r;
}

/* ---------------------------------------------------------------- layers */

/* Whether steps run in chroot isolation (no user namespace). */
static bool build_is_chroot(const kiln_build_request_t *req)
{
    return req->isolation != NULL && strcmp(req->isolation, "chroot") == 0;
}

/* The marker saying blob l->desc holds the tree lowers/<diff_id>. */
static char *lower_proof(const engine_t *e, const layer_t *l)
{
    return kiln_xasprintf("%s/%s.blob-%s", e->lowers_dir, l->diff_id.hex, l->desc.digest.hex);
}

/* Records that layer l's blob was seen to hold its diff_id's tree (unpacked
 * with the diff_id checked, or written from that very tree). */
static void lower_prove(const engine_t *e, const layer_t *l)
{
    _cleanup_free_ char *proof = lower_proof(e, l);
    int fd = open(proof, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

/* The unpacked (overlay form) directory of a layer, made on first use. The
 * tree lowers/<diff_id> is shared by every build whose layer has that diff_id,
 * but it stands for a layer blob only once that blob was seen to hold it
 * (lower_prove): an image whose config names someone else's diff_id next to a
 * blob of its own gets its own blob unpacked (and refused for the mismatch),
 * never the other tree. */
static int lower_dir(engine_t *e, const layer_t *l, char **out, kiln_error_t *err)
{
    char ds[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *proof = lower_proof(e, l);
    _cleanup_close_ int fd = -1;
    kiln_unpack_opts_t o;
    struct stat st;

    kiln_digest_str(&l->diff_id, ds);
    dir = kiln_xasprintf("%s/%s", e->lowers_dir, strchr(ds, ':') + 1);
    if (stat(dir, &st) == 0 && access(proof, F_OK) == 0) {
        *out = steal_pointer(&dir);
        return 0;
    }
    if (kiln_fs_mkdtemp(e->lowers_dir, ".tmp-", &tmp, err) < 0)
        return -1;
    if (kiln_store_open_blob(e->store, &l->desc.digest, &fd, NULL, err) < 0)
        goto fail;
    kiln_unpack_opts_init(&o);
    o.overlay_form = 1;
    o.expect_diff_id = &l->diff_id;
    if (kiln_layer_unpack(fd, tmp, &o, NULL, err) < 0)
        goto fail;
    /* an existing tree of this diff_id is the same tree (the diff_id just checked) */
    if (rename(tmp, dir) < 0 && errno != EEXIST && errno != ENOTEMPTY) {
        kiln_error_set(err, errno, "rename %s", dir);
        goto fail;
    }
    kiln_fs_rm_rf(tmp, NULL);
    lower_prove(e, l);
    *out = steal_pointer(&dir);
    return 0;
fail:
    kiln_fs_rm_rf(tmp, NULL);
    return kiln_error_prefix(err, "unpacking layer %s", ds);
}

/* Writes dir as a layer into the store and appends it to the stage. */
static int commit_layer(engine_t *e, stage_t *st, const char *dir, int overlay, layer_t *out,
                        kiln_error_t *err)
{
    kiln_layer_opts_t o;
    kiln_store_writer_t *w = NULL;
    kiln_sink_t sink;
    kiln_layer_info_t info;
    layer_t l = {0};

    kiln_layer_opts_init(&o);
    o.compression = e->req->compression;
    o.level = e->req->compression_level;
    o.source_date_epoch = e->have_sde ? (int64_t)e->created : -1;
    o.overlay_upper = overlay;
    if (kiln_store_writer_new(e->store, NULL, -1, &w, err) < 0)
        return -1;
    sink = kiln_store_writer_sink(w);
    if (kiln_layer_write_dir(dir, &o, &sink, &info, err) < 0) {
        kiln_store_writer_abort(w);
        return -1;
    }
    if (kiln_store_writer_commit(w, &l.desc.digest, &l.desc.size, err) < 0)
        return -1;
    ns_note(e, &l.desc.digest);
    snprintf(l.desc.media_type, sizeof(l.desc.media_type), "%s", info.media_type);
    l.diff_id = info.diff_id;
    st->layers = kiln_xrealloc(st->layers, (st->n_layers + 1) * sizeof(layer_t));
    st->layers[st->n_layers++] = l;
    kiln_image_config_add_diff_id(st->config, &l.diff_id);
    *out = l;
    {
        /* The tree just written is this layer's unpacked (overlay) form: keep
         * it as the lower dir for later steps instead of unpacking the blob. */
        char ds[KILN_DIGEST_STR_MAX];
        _cleanup_free_ char *lower = NULL;
        kiln_digest_str(&l.diff_id, ds);
        lower = kiln_xasprintf("%s/%s", e->lowers_dir, strchr(ds, ':') + 1);
        if (access(lower, F_OK) != 0)
            (void)rename(dir, lower);
        lower_prove(e, &l);
    }
    return 0;
}

/* A step that made a layer: commit `dir` as the layer, add its history entry,
 * advance the stage's cache key and record the cache entry. */
static int commit_step(engine_t *e, stage_t *st, const char *dir, int overlay,
                       const char *created_by, const kiln_digest_t *key, kiln_error_t *err)
{
    layer_t l;

    if (commit_layer(e, st, dir, overlay, &l, err) < 0)
        return -1;
    add_history(e, st, created_by, 0);
    st->key = *key;
    return cache_store(e, st, key, &l, err);
}

/* The stage's unpacked layer dirs (made when missing), top-most first:
 * *out has st->n_layers entries (+ a NULL), freed with free_lowers. */
static int stage_lowers(engine_t *e, stage_t *st, char ***out, kiln_error_t *err)
{
    char **lowers = kiln_xzalloc((st->n_layers + 1) * sizeof(char *));
    for (size_t i = 0; i < st->n_layers; i++) {
        if (lower_dir(e, &st->layers[i], &lowers[st->n_layers - 1 - i], err) < 0) {
            for (size_t k = 0; k < st->n_layers; k++)
                free(lowers[k]);
            free(lowers);
            return -1;
        }
    }
    *out = lowers;
    return 0;
}

/* Merges path of the stage's layers (their unpacked dirs, made when missing)
 * into dir with kiln_lowerview_extract: 1 done, 0 needs the full rootfs, -1. */
static int stage_extract(engine_t *e, stage_t *st, const char *path, const char *dir,
                         kiln_error_t *err)
{
    char **lowers = NULL;
    int r;

    if (stage_lowers(e, st, &lowers, err) < 0)
        return -1;
    r = kiln_lowerview_extract((const char *const *)lowers, st->n_layers, path, dir, err);
    kiln_strv_free(lowers);
    return r;
}

/* path as the stage's merged tree sees it (kiln_lowerview_resolve: links
 * followed inside the tree; flags KILN_PATHRES_*): *out the canonical path,
 * *dir (when not NULL) the unpacked layer dir holding it or NULL when it
 * does not exist. A stage without layers: path as written. -1 with err. */
static int stage_resolve(engine_t *e, stage_t *st, const char *path, unsigned flags, char **out,
                         char **dir, kiln_error_t *err)
{
    char **lowers = NULL;
    int layer = -1, r;

    if (dir)
        *dir = NULL;
    if (st->n_layers == 0) {
        if (!(flags & KILN_PATHRES_MISSING_OK))
            return kiln_error_set(err, ENOENT, "resolving %s", path);
        *out = kiln_xstrdup(path);
        return 0;
    }
    if (stage_lowers(e, st, &lowers, err) < 0)
        return -1;
    r = kiln_lowerview_resolve((const char *const *)lowers, st->n_layers, path, flags, out, &layer,
                               err);
    if (r == 0 && dir && layer >= 0)
        *dir = kiln_xstrdup(lowers[layer]);
    kiln_strv_free(lowers);
    return r;
}

/* A merged rootfs of the stage (all layers, files hardlinked from their
 * unpacked dirs: read-only), for COPY --from sources that need it whole. */
static int stage_rootfs_locked(engine_t *e, stage_t *st, char **out, kiln_error_t *err)
{
    if (st->rootfs == NULL) {
        _cleanup_free_ char *dir = NULL;
        if (kiln_fs_mkdtemp(e->work, "rootfs-", &dir, err) < 0)
            return -1;
        if (stage_extract(e, st, ".", dir, err) < 0) {
            kiln_fs_rm_rf(dir, NULL);
            return -1;
        }
        st->rootfs = steal_pointer(&dir);
    }
    *out = st->rootfs;
    return 0;
}

/* Serialized: two stages may COPY --from the same stage at once. */
static int stage_rootfs(engine_t *e, stage_t *st, char **out, kiln_error_t *err)
{
    int r;
    pthread_mutex_lock(&e->lock);
    r = stage_rootfs_locked(e, st, out, err);
    pthread_mutex_unlock(&e->lock);
    return r;
}

/* ---------------------------------------------------------------- users */

/* Finds name in an /etc/passwd- or /etc/group-style file of the stage (read
 * inside the stage's tree: a link there never leads to the host's file);
 * returns 1 and the numeric id (and the primary gid for passwd), 0 when
 * absent, -1 on failure. */
static int lookup_id(engine_t *e, stage_t *st, const char *file, const char *name, long *id,
                     long *gid, kiln_error_t *err)
{
    _cleanup_free_ char *canon = NULL;
    _cleanup_free_ char *dir = NULL;
    _cleanup_free_ char *text = NULL;
    _cleanup_close_ int rootfd = -1;
    size_t len;
    char *save = NULL;

    if (stage_resolve(e, st, file, KILN_PATHRES_MISSING_OK, &canon, &dir, err) < 0)
        return -1;
    if (dir == NULL || kiln_pathres_open_root(dir, &rootfd, NULL) < 0 ||
        kiln_pathres_read_file(rootfd, canon, 4u << 20, &text, &len, NULL) < 0)
        return 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        char *p = line;
        for (int k = 0; k < 4 && p; k++) {
            f[k] = p;
            p = strchr(p, ':');
            if (p)
                *p++ = '\0';
        }
        if (f[0] && f[2] && strcmp(f[0], name) == 0) {
            *id = strtol(f[2], NULL, 10);
            if (gid)
                *gid = f[3] ? strtol(f[3], NULL, 10) : *id;
            return 1;
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* "user[:group]" → ids, names resolved through the image's files. */
static int resolve_user(engine_t *e, stage_t *st, const char *spec, uid_t *uid, gid_t *gid,
                        kiln_error_t *err)
{
    _cleanup_free_ char *u = kiln_xstrdup(spec && *spec ? spec : "0");
    char *g = strchr(u, ':');
    long id = 0, pg = 0;
    if (g)
        *g++ = '\0';
    if (all_digits(u)) {
        id = strtol(u, NULL, 10);
        pg = id;
        if (!g) { /* primary group from passwd when the uid is listed */
            pg = id;
        }
    } else {
        int r = lookup_id(e, st, "etc/passwd", u, &id, &pg, err);
        if (r < 0)
            return -1;
        if (r == 0)
            return kiln_error_set(err, 0,
                                  "unable to find user %s: no matching entries in passwd file", u);
    }
    if (g) {
        if (all_digits(g)) {
            pg = strtol(g, NULL, 10);
        } else {
            long gg;
            int r = lookup_id(e, st, "etc/group", g, &gg, NULL, err);
            if (r < 0)
                return -1;
            if (r == 0)
                return kiln_error_set(
                    err, 0, "unable to find group %s: no matching entries in group file", g);
            pg = gg;
        }
    }
    *uid = (uid_t)id;
    *gid = (gid_t)pg;
    return 0;
}

/* ---------------------------------------------------------------- FROM */

static stage_t *find_stage(engine_t *e, const char *name, size_t before)
{
    for (size_t i = 0; i < before && i < e->n_stages; i++)
        if (e->stages[i].name && strcasecmp(e->stages[i].name, name) == 0)
            return &e->stages[i];
    if (all_digits(name)) {
        size_t i = (size_t)strtoul(name, NULL, 10);
        if (i < before && i < e->n_stages)
            return &e->stages[i];
    }
    return NULL;
}

static int run_stage(engine_t *e, stage_t *st, kiln_error_t *err);

static void stage_take_layers_of(stage_t *st, const kiln_descriptor_t *layers, size_t n,
                                 json_t *config)
{
    json_t *diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
    st->layers = kiln_xzalloc((n + 1) * sizeof(layer_t));
    for (size_t i = 0; i < n; i++) {
        kiln_descriptor_copy(&st->layers[i].desc, &layers[i]);
        kiln_digest_parse(json_string_value(json_array_get(diffs, i)), &st->layers[i].diff_id,
                          NULL);
    }
    st->n_layers = n;
}

static int registry_client(engine_t *e, kiln_error_t *err);

/* Whether real (a canonical path) is dir or lies beneath it. */
static bool path_beneath(const char *real, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(real, dir, n) == 0 && (real[n] == '\0' || real[n] == '/' || n == 1);
}

/* The layout directory a FROM oci:DIR reads. In server mode DIR is a
 * tenant's: it must resolve, links followed, to a directory beneath one of
 * the operator's oci_dirs (each resolved the same way), so neither `..` nor
 * a link leads out of them; the resolved path is what is read. Sets *out
 * (malloc'ed); -1 naming the path and the setting otherwise. */
static int oci_source_dir(engine_t *e, const char *dir, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *real = NULL;
    kiln_buf_t allowed;

    if (!e->req->server_mode) {
        *out = kiln_xstrdup(dir);
        return 0;
    }
    real = dir[0] == '/' ? realpath(dir, NULL) : NULL;
    for (size_t i = 0; real != NULL && i < e->req->n_oci_dirs; i++) {
        _cleanup_free_ char *root = realpath(e->req->oci_dirs[i], NULL);
        if (root != NULL && path_beneath(real, root)) {
            *out = steal_pointer(&real);
            return 0;
        }
    }
    kiln_buf_init(&allowed, 0);
    for (size_t i = 0; i < e->req->n_oci_dirs; i++)
        kiln_buf_appendf(&allowed, NULL, "%s%s", i ? ", " : "", e->req->oci_dirs[i]);
    kiln_error_set(err, 0,
                   "%s is not in a directory server builds may read OCI layouts from "
                   "(\"policy\": {\"oci_dirs\": [...]} in the server config; now: %s)",
                   dir, allowed.len ? allowed.data : "none");
    kiln_buf_free(&allowed);
    return -1;
}

static int from_image(engine_t *e, stage_t *st, const char *ref, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len;
    kiln_digest_t top;
    json_t *cfg = NULL;

    if (strncmp(ref, "oci:", 4) == 0) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        _cleanup_free_ char *src = NULL;
        kiln_layout_image_t *img = NULL;
        if (kiln_layout_parse_ref(ref, &dir, &tag, err) < 0 ||
            oci_source_dir(e, dir, &src, err) < 0 || kiln_layout_resolve(src, tag, &img, err) < 0)
            return -1;
        if (kiln_layout_import(e->store, img, err) < 0) {
            kiln_layout_image_free(img);
            return -1;
        }
        cfg = json_deep_copy(img->config);
        top = img->manifest_desc.digest;
        stage_take_layers_of(st, img->manifest->layers, img->manifest->n_layers, cfg);
        kiln_layout_image_free(img);
    } else {
        kiln_registry_image_t ri = {0};
        if (registry_client(e, err) < 0)
            return -1;
        {
            _cleanup_free_ char *msg = kiln_xasprintf("resolve image %s", ref);
            emit_event(e, st->step, "log", msg, -1);
        }
        if (build_pull(e, ref, &ri, err) < 0)
            return -1;
        if (kiln_store_read_blob(e->store, &ri.parsed->config.digest, KILN_IMAGE_CONFIG_MAX, &body,
                                 &len, err) < 0 ||
            kiln_image_parse_config(body, len, &cfg, err) < 0) {
            kiln_registry_image_clear(&ri);
            return -1;
        }
        top = ri.manifest.digest;
        stage_take_layers_of(st, ri.parsed->layers, ri.parsed->n_layers, cfg);
        kiln_registry_image_clear(&ri);
    }
    st->config = cfg;
    st->key = top;
    return 0;
}

static int do_from(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    _cleanup_free_ char *base = NULL;
    stage_t meta = {0};
    stage_t *dep;

    for (size_t i = 0; i < n->n_flags; i++)
        if (strncmp(n->flags[i], "--platform=", 11) != 0)
            return kiln_df_error(n, err, "unknown flag: %s", n->flags[i]);
    if (n->n_args == 0)
        return kiln_df_error(n, err, "FROM requires either one or three arguments");
    if (n->n_args != 1 && !(n->n_args == 3 && strcasecmp(n->args[1], "as") == 0))
        return kiln_df_error(n, err, "FROM requires either one or three arguments");
    meta.args = e->meta_args;
    meta.config = json_object();
    if (expand(e, &meta, n->args[0], NULL, &base, err) < 0) {
        json_decref(meta.config);
        return kiln_df_error(n, err, "%s", err->msg);
    }
    json_decref(meta.config);
    if (base[0] == '\0')
        return kiln_df_error(n, err, "base name (%s) should not be blank", n->args[0]);
    dep = find_stage(e, base, (size_t)st->index);
    if (dep != NULL) {
        if (run_stage(e, dep, err) < 0)
            return -1;
        st->config = json_deep_copy(dep->config);
        st->layers = kiln_xzalloc((dep->n_layers + 1) * sizeof(layer_t));
        for (size_t i = 0; i < dep->n_layers; i++) {
            kiln_descriptor_copy(&st->layers[i].desc, &dep->layers[i].desc);
            st->layers[i].diff_id = dep->layers[i].diff_id;
        }
        st->n_layers = dep->n_layers;
        st->key = dep->key;
    } else if (strcmp(base, "scratch") == 0) {
        st->config = kiln_image_config_new("amd64", "linux");
        kiln_digest_bytes("scratch", 7, &st->key);
    } else {
        const char *c = NULL;
        for (size_t i = 0; i < e->req->n_contexts; i++) {
            size_t l = strlen(base);
            if (strncmp(e->req->contexts[i], base, l) == 0 && e->req->contexts[i][l] == '=')
                c = e->req->contexts[i] + l + 1;
        }
        if (c != NULL && strncmp(c, "docker-image://", 15) == 0)
            base = (free(base), kiln_xstrdup(c + 15));
        if (from_image(e, st, base, err) < 0)
            return kiln_error_prefix(err, "Dockerfile:%d: FROM %s", n->start_line, base);
    }
    /* Like BuildKit, every stage has a PATH (images from scratch get the default). */
    {
        json_t *env = json_object_get(kiln_image_config_obj(st->config), "Env");
        bool has_path = false;
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v)
        {
            if (json_is_string(v) && strncmp(json_string_value(v), "PATH=", 5) == 0)
                has_path = true;
        }
        if (!has_path)
            kiln_image_config_set_env(st->config, "PATH=" DEFAULT_PATH, NULL);
    }
    /* The stage's history starts from the base; created is ours. */
    if (json_object_get(st->config, "history") == NULL)
        json_object_set_new(st->config, "history", json_array());
    return 0;
}

/* ---------------------------------------------------------------- RUN */

static void run_log(void *opaque, kiln_log_stream_t stream, const struct timespec *ts,
                    const char *line, size_t len)
{
    stage_t *st = opaque;
    /* of kiln's own notes, the egress filter's refusals go in the step's log
     * (they name the address and the --allow-address that opens it) */
    if (stream == KILN_LOG_SYSTEM && (len < 9 || memcmp(line, "network: ", 9) != 0))
        return;
    {
        _cleanup_free_ char *l = kiln_xstrndup(line, len);
        emit_event(st->e, st->step, "log", l, -1);
    }
    if (st->tail_n == LOG_TAIL) {
        free(st->tail[0]);
        memmove(st->tail, st->tail + 1, (LOG_TAIL - 1) * sizeof(char *));
        st->tail_n--;
    }
    st->tail[st->tail_n++] = kiln_xstrndup(line, len);
}

/* Finds --secret id=ID's source: src=/source=FILE, or env=VAR (keys in any
 * order; without either, the environment variable named ID). */
static int secret_source(engine_t *e, const char *sid, char **file, char **envname)
{
    for (size_t i = 0; i < e->req->n_secrets; i++) {
        _cleanup_free_ char *spec = kiln_xstrdup(e->req->secrets[i]);
        char *save = NULL, *id = NULL, *src = NULL, *env = NULL;
        for (char *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *v = strchr(kv, '=');
            if (v == NULL)
                continue;
            *v++ = '\0';
            if (strcmp(kv, "id") == 0)
                id = v;
            else if (strcmp(kv, "src") == 0 || strcmp(kv, "source") == 0)
                src = v;
            else if (strcmp(kv, "env") == 0)
                env = v;
        }
        if (id == NULL || strcmp(id, sid) != 0)
            continue;
        if (src != NULL)
            *file = kiln_xstrdup(src);
        else
            *envname = kiln_xstrdup(env ? env : id);
        return 0;
    }
    return -1;
}

/* Parses "--mount=k=v,k=v" into a sandbox mount. */

/* sharing=private (BuildKit): a writer that finds the cache in use gets an
 * instance of its own. The first instance not locked by another step
 * (<dir>, <dir>.p1, <dir>.p2, …) is locked and used; *dir is replaced by it.
 * Instances persist like the cache itself. Returns -1 with err set. */
static int private_cache_instance(char **dir, const char *uid, const char *gid, const char *mode,
                                  int *lock_fd, kiln_error_t *err)
{
    for (int i = 0; i < 64; i++) {
        _cleanup_free_ char *p = i == 0 ? kiln_xstrdup(*dir) : kiln_xasprintf("%s.p%d", *dir, i);
        int fd;
        if (i > 0 && access(p, F_OK) != 0) {
            if (kiln_fs_mkdir_p(p, 0755, err) < 0)
                return -1;
            if ((uid || gid) && chown(p, uid ? (uid_t)strtoul(uid, NULL, 10) : 0,
                                      gid ? (gid_t)strtoul(gid, NULL, 10) : 0) < 0)
                return kiln_error_set(err, errno, "chown %s", p);
            if (mode && chmod(p, (mode_t)strtoul(mode, NULL, 8) & 07777) < 0)
                return kiln_error_set(err, errno, "chmod %s", p);
        }
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_set(err, errno, "open %s", p);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *lock_fd = fd;
            free(*dir);
            *dir = steal_pointer(&p);
            return 0;
        }
        close(fd);
    }
    return kiln_error_set(err, EBUSY, "64 private instances are all in use");
}

static int stage_sources_root(engine_t *e, stage_t *dep, const strv_t *srcs, const char **root,
                              char **view, kiln_error_t *err);
static int hash_context_path(engine_t *e, const char *canon, const char *written,
                             kiln_digest_t *out, kiln_error_t *err);

/* Where a bind mount's files come from, for the step's cache key. */
typedef struct bind_src {
    stage_t *dep; /* a stage: owned[0] is the path in it, resolved after a miss */
    bool context; /* the build context: owned[0] is the path */
    char *as;     /* context: the source as written (hashed so, as before) */
} bind_src_t;

/* What a FIFO, socket or device is called in messages. */
static const char *special_kind(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "a special file";
}

/* A mount target as BuildKit takes it: relative to WORKDIR. */
static char *mount_target(const stage_t *st, const char *target)
{
    const char *wd =
        json_string_value(json_object_get(json_object_get(st->config, "config"), "WorkingDir"));
    if (target[0] == '/')
        return kiln_xstrdup(target);
    return kiln_xasprintf("%s/%s", wd && *wd && strcmp(wd, "/") != 0 ? wd : "", target);
}

/* The canonical path of a bind mount's source src inside rootfd (links
 * followed inside it, ".." stopping at it), which must be a directory or a
 * regular file; what names the root in messages. -1 with err. */
static int bind_source(int rootfd, const char *src, const char *what, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *canon = NULL;
    _cleanup_close_ int fd = -1;
    struct stat sb;
    size_t n;
    if (kiln_pathres_resolve(rootfd, src, 0, &canon, err) < 0 ||
        kiln_pathres_open(rootfd, canon, O_PATH, 0, 0, &fd, err) < 0 || fstat(fd, &sb) < 0)
        return kiln_error_set(err, 0, "bind mount source %s: not found in %s", src, what);
    for (n = strlen(canon); n > 1 && canon[n - 1] == '/';)
        canon[--n] = '\0'; /* "dir/": the directory */
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
        return kiln_error_set(err, 0, "bind mount source %s is %s, not a regular file or directory",
                              src, special_kind(sb.st_mode));
    *out = steal_pointer(&canon);
    return 0;
}

/* A stage's files reach a bind mount hardlinked from the shared unpacked
 * layer dirs, read-only. A RUN --security=insecure step holds CAP_SYS_ADMIN in
 * its user namespace and could remount that rw and write through the links
 * into trees other builds (other tenants) use, or into the build context (the
 * caller's directory) for a context bind: it gets a private copy instead.
 * *src is replaced by the copy, which lives in *view (the view the copy was
 * made from, when there is one, goes at once; *view is removed after the step). */
static int insecure_bind_copy(engine_t *e, char **src, char **view, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL;
    char *copy;

    if (kiln_fs_mkdtemp(e->work, "bindcopy-", &dir, err) < 0)
        return -1;
    copy = kiln_xasprintf("%s/t", dir);
    if (kiln_diff_copy_tree(*src, copy, err) < 0) {
        free(copy);
        kiln_fs_rm_rf(dir, NULL);
        return -1;
    }
    free(*src);
    *src = copy;
    if (*view != NULL) {
        kiln_fs_rm_rf(*view, NULL);
        free(*view);
    }
    *view = steal_pointer(&dir);
    return 0;
}

static int parse_mount(engine_t *e, stage_t *st, const char *spec, kiln_mount_t *m, char **owned,
                       int *lock_fd, bind_src_t *bs, kiln_error_t *err)
{
    _cleanup_free_ char *s = kiln_xstrdup(spec);
    char *save = NULL, *type = "bind", *target = NULL, *id = NULL, *src = NULL, *from = NULL;
    char *sharing = NULL, *uid = NULL, *gid = NULL, *mode = NULL;
    bool ro = false;
    for (char *kv = strtok_r(s, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (v)
            *v++ = '\0';
        if (strcmp(kv, "type") == 0)
            type = v;
        else if (strcmp(kv, "target") == 0 || strcmp(kv, "dst") == 0 ||
                 strcmp(kv, "destination") == 0)
            target = v;
        else if (strcmp(kv, "id") == 0)
            id = v;
        else if (strcmp(kv, "source") == 0 || strcmp(kv, "src") == 0)
            src = v;
        else if (strcmp(kv, "from") == 0)
            from = v;
        else if (strcmp(kv, "ro") == 0 || strcmp(kv, "readonly") == 0)
            ro = v == NULL || strcmp(v, "true") == 0;
        else if (strcmp(kv, "sharing") == 0)
            sharing = v;
        else if (strcmp(kv, "uid") == 0)
            uid = v;
        else if (strcmp(kv, "gid") == 0)
            gid = v;
        else if (strcmp(kv, "mode") == 0)
            mode = v;
    }
    if (type == NULL)
        return kiln_error_set(err, 0, "mount type missing in %s", spec);
    memset(m, 0, sizeof(*m));
    if (strcmp(type, "cache") == 0) {
        kiln_digest_t d;
        char ds[KILN_DIGEST_STR_MAX];
        const char *cid = id ? id : target;
        if (target == NULL)
            return kiln_error_set(err, 0, "cache mount needs a target: %s", spec);
        kiln_digest_bytes(cid, strlen(cid), &d);
        kiln_digest_str(&d, ds);
        owned[0] = kiln_xasprintf("%s/%.32s", e->mounts_dir, strchr(ds, ':') + 1);
        if (access(owned[0], F_OK) != 0) {
            /* a new cache dir gets the uid/gid/mode asked for (BuildKit: 0:0 0755) */
            if (kiln_fs_mkdir_p(owned[0], 0755, err) < 0)
                return -1;
            if ((uid || gid) && chown(owned[0], uid ? (uid_t)strtoul(uid, NULL, 10) : 0,
                                      gid ? (gid_t)strtoul(gid, NULL, 10) : 0) < 0)
                return kiln_error_set(err, errno, "chown cache mount %s", cid);
            if (mode && chmod(owned[0], (mode_t)strtoul(mode, NULL, 8) & 07777) < 0)
                return kiln_error_set(err, errno, "chmod cache mount %s", cid);
        }
        if (sharing && strcmp(sharing, "shared") != 0 && strcmp(sharing, "locked") != 0 &&
            strcmp(sharing, "private") != 0)
            return kiln_error_set(err, 0, "cache mount sharing=%s: want shared, private or locked",
                                  sharing);
        if (sharing && strcmp(sharing, "locked") == 0) {
            /* one step at a time uses a locked cache (others wait) */
            *lock_fd = open(owned[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX) < 0)
                return kiln_error_set(err, errno, "locking cache mount %s", cid);
        } else if (sharing && strcmp(sharing, "private") == 0 &&
                   private_cache_instance(&owned[0], uid, gid, mode, lock_fd, err) < 0) {
            return kiln_error_prefix(err, "cache mount %s", cid);
        }
        m->type = KILN_MOUNT_CACHE;
        m->src = owned[0];
        owned[1] = mount_target(st, target);
        m->dst = owned[1];
        return 0;
    }
    if (strcmp(type, "secret") == 0) {
        const char *slash = target ? strrchr(target, '/') : NULL;
        const char *sid = id ? id : (slash ? slash + 1 : target);
        _cleanup_free_ char *file = NULL;
        _cleanup_free_ char *envname = NULL;
        if (sid == NULL || secret_source(e, sid, &file, &envname) < 0)
            return kiln_error_set(err, 0,
                                  "secret %s not provided (--secret id=%s,src=FILE or env=VAR)",
                                  sid ? sid : "?", sid ? sid : "ID");
        m->type = KILN_MOUNT_SECRET;
        /* a private 0400 copy in the work dir (removed after the build), so the
         * caller's file is never exposed or changed */
        {
            _cleanup_free_ char *text = NULL;
            size_t len = 0;
            owned[0] = kiln_xasprintf("%s/secret-%s", e->work, sid);
            if (file != NULL) {
                if (kiln_fs_read_file(file, 1u << 20, &text, &len, err) < 0)
                    return kiln_error_prefix(err, "secret %s", sid);
            } else {
                const char *v = getenv(envname);
                if (v == NULL)
                    return kiln_error_set(err, 0, "secret %s: environment variable %s is not set",
                                          sid, envname);
                text = kiln_xstrdup(v);
                len = strlen(v);
            }
            if (kiln_fs_write_file_atomic(owned[0], text, len, 0400, err) < 0) {
                explicit_bzero(text, len);
                return kiln_error_prefix(err, "secret %s", sid);
            }
            explicit_bzero(text, len);
        }
        owned[1] = target ? mount_target(st, target) : kiln_xasprintf("/run/secrets/%s", sid);
        m->src = owned[0];
        m->dst = owned[1];
        m->readonly = 1;
        return 0;
    }
    if (strcmp(type, "ssh") == 0) {
        /* the caller's SSH agent, as BuildKit's default ssh mount */
        if (e->req->ssh_socket == NULL)
            return kiln_error_set(err, 0,
                                  "RUN --mount=type=ssh needs an SSH agent (--ssh default)");
        m->type = KILN_MOUNT_BIND;
        owned[0] = kiln_xstrdup(e->req->ssh_socket);
        owned[1] = mount_target(st, target ? target : "/run/buildkit/ssh_agent.0");
        m->src = owned[0];
        m->dst = owned[1];
        m->readonly = 0;
        return 0;
    }
    if (strcmp(type, "tmpfs") == 0) {
        if (target == NULL)
            return kiln_error_set(err, 0, "tmpfs mount needs a target: %s", spec);
        m->type = KILN_MOUNT_TMPFS;
        owned[1] = mount_target(st, target);
        m->dst = owned[1];
        return 0;
    }
    if (strcmp(type, "bind") == 0) {
        char *root = NULL;
        if (target == NULL)
            return kiln_error_set(err, 0, "bind mount needs a target: %s", spec);
        if (from != NULL) {
            stage_t *dep = find_stage(e, from, (size_t)st->index);
            if (dep == NULL)
                return kiln_error_set(err, 0, "bind mount from unknown stage %s", from);
            if (run_stage(e, dep, err) < 0)
                return -1;
            bs->dep = dep;
            /* the stage's files are only materialized when the step runs */
            owned[0] = kiln_xstrdup(src ? src : ".");
        } else {
            /* resolved inside the context: the host path of what is inside */
            _cleanup_close_ int rootfd = -1;
            _cleanup_free_ char *canon = NULL;
            root = (char *)e->req->context_dir;
            bs->context = true;
            if (kiln_pathres_open_root(root, &rootfd, err) < 0 ||
                bind_source(rootfd, src ? src : ".", "the build context", &canon, err) < 0)
                return -1;
            owned[0] = kiln_xasprintf("%s%s", root, strcmp(canon, "/") == 0 ? "" : canon);
            bs->as = kiln_xstrdup(src ? src : ".");
        }
        owned[1] = mount_target(st, target);
        m->type = KILN_MOUNT_BIND;
        m->src = owned[0];
        m->dst = owned[1];
        m->readonly = ro || true;
        return 0;
    }
    return kiln_error_set(err, 0, "unsupported mount type %s", type);
}

static char *join_argv(char *const *v, size_t n)
{
    kiln_buf_t b;
    kiln_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            kiln_buf_append(&b, " ", 1, NULL);
        kiln_buf_append(&b, v[i], strlen(v[i]), NULL);
    }
    return kiln_buf_steal(&b, NULL);
}

/* Why a failed RUN may have failed when the build limits its steps (a fork or an
 * allocation that hit the limit); "" when no limit is set. Static storage. */
static const char *limits_note(const kiln_build_request_t *req, const kiln_step_result_t *res)
{
    static __thread char note[200];
    char mem[32], pids[32], cpu[32], disk[32];

    if (!req->memory_limit && !req->pids_limit && !req->cpu_time_limit && !req->disk_limit)
        return "";
    kiln_size_format(req->memory_limit, mem, sizeof(mem));
    kiln_size_format(req->disk_limit, disk, sizeof(disk));
    snprintf(pids, sizeof(pids), "%llu", (unsigned long long)req->pids_limit);
    snprintf(cpu, sizeof(cpu), "%llus", (unsigned long long)req->cpu_time_limit);
    snprintf(note, sizeof(note), "\n  %s (step limits: memory %s, pids %s, cpu time %s, disk %s)",
             res->oom_killed ? "killed: out of memory" : "the step may have hit a limit",
             req->memory_limit ? mem : "none", req->pids_limit ? pids : "none",
             req->cpu_time_limit ? cpu : "none", req->disk_limit ? disk : "none");
    return note;
}

static int do_run(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    strv_t argv = {0}, env = {0};
    used_args_t used = {.args = &st->args};
    kiln_mount_t mounts[16];
    char *owned[32] = {0};
    int locks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    bind_src_t binds[16] = {{0}};
    char *views[16] = {0};
    size_t n_mounts = 0;
    const char **lowers = NULL;
    _cleanup_free_ char *upper = NULL;
    _cleanup_free_ char *work = NULL;
    _cleanup_free_ char *created_by = NULL;
    _cleanup_free_ char *keytext = NULL;
    json_t *cfg = json_object_get(st->config, "config");
    kiln_step_t step;
    kiln_step_result_t res = {0};
    kiln_digest_t key = st->key;
    bool hit = false;
    int ret = -1;
    const char *net = e->req->network;
    kiln_run_security_t sec = {0};

    /* command line */
    if (n->json) {
        for (size_t i = 0; i < n->n_args; i++)
            strv_add(&argv, kiln_xstrdup(n->args[i]));
    } else {
        json_t *sh = json_object_get(cfg, "Shell");
        size_t i;
        json_t *v;
        if (json_array_size(sh) > 0) {
            json_array_foreach(sh, i, v) strv_add(&argv, kiln_xstrdup(json_string_value(v)));
        } else {
            strv_add(&argv, kiln_xstrdup("/bin/sh"));
            strv_add(&argv, kiln_xstrdup("-c"));
        }
        if (n->n_heredocs == 1 && n->n_args > 0 && strncmp(n->args[0], "<<", 2) == 0 &&
            strpbrk(n->args[0], " \t") == NULL) {
            /* RUN <<EOF: the heredoc is the script */
            char *body = kiln_df_heredoc_content(&n->heredocs[0]);
            if (strncmp(body, "#!", 2) == 0 && n_mounts < 16) {
                /* a script with its own interpreter runs as a file, as in BuildKit
                 * (mounted read-only at /dev/pipes/NAME) */
                owned[2 * n_mounts] = kiln_xasprintf("%s/heredoc-%d", e->work, st->step);
                owned[2 * n_mounts + 1] = kiln_xasprintf("/dev/pipes/%s", n->heredocs[0].name);
                if (kiln_fs_write_file_atomic(owned[2 * n_mounts], body, strlen(body), 0755, err) <
                    0) {
                    free(body);
                    goto out;
                }
                mounts[n_mounts] = (kiln_mount_t){.type = KILN_MOUNT_BIND,
                                                  .src = owned[2 * n_mounts],
                                                  .dst = owned[2 * n_mounts + 1],
                                                  .readonly = 1};
                strv_clear(&argv);
                strv_add(&argv, kiln_xstrdup(owned[2 * n_mounts + 1]));
                n_mounts++;
                free(body);
            } else {
                strv_add(&argv, body);
            }
        } else if (n->n_heredocs > 0) {
            /* `RUN cmd <<EOF …`: the shell reads the heredocs itself */
            kiln_buf_t b;
            kiln_buf_init(&b, 0);
            kiln_buf_appendf(&b, NULL, "%s\n", n->n_args ? n->args[0] : "");
            for (size_t k = 0; k < n->n_heredocs; k++) {
                _cleanup_free_ char *body = kiln_df_heredoc_content(&n->heredocs[k]);
                kiln_buf_appendf(&b, NULL, "%s%s\n", body, n->heredocs[k].name);
            }
            strv_add(&argv, kiln_buf_steal(&b, NULL));
        } else {
            strv_add(&argv, kiln_xstrdup(n->n_args ? n->args[0] : ""));
        }
    }
    /* every ARG in scope reaches the command's environment (BuildKit does the same) */
    for (size_t i = 0; i < st->args.n; i++)
        strv_add(&used.used, kiln_xstrdup(st->args.v[i]));
    for (size_t i = 0; i < n->n_flags; i++) {
        if (strncmp(n->flags[i], "--mount=", 8) == 0) {
            if (n_mounts >= 16) {
                kiln_df_error(n, err, "too many mounts");
                goto out;
            }
            if (parse_mount(e, st, n->flags[i] + 8, &mounts[n_mounts], owned + 2 * n_mounts,
                            &locks[n_mounts], &binds[n_mounts], err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            n_mounts++;
        } else if (strncmp(n->flags[i], "--network=", 10) != 0 &&
                   strncmp(n->flags[i], "--security=", 11) != 0) {
            kiln_df_error(n, err, "unknown flag: %s", n->flags[i]);
            goto out;
        }
    }
    if (kiln_entitlement_check_run(n, e->req->entitlements, build_is_chroot(e->req), &sec, err) < 0)
        goto out;
    if (sec.network)
        net = sec.network;
    {
        _cleanup_free_ char *cmd = join_argv(argv.v, argv.n);
        kiln_buf_t kb;
        kiln_buf_init(&kb, 0);
        if (used.used.n > 0) {
            kiln_buf_appendf(&kb, NULL, "|%zu", used.used.n);
            for (size_t i = 0; i < used.used.n; i++)
                kiln_buf_appendf(&kb, NULL, " %s", used.used.v[i]);
            kiln_buf_append(&kb, " ", 1, NULL);
        }
        kiln_buf_appendf(&kb, NULL, "%s", cmd);
        created_by = kiln_xasprintf("RUN %s # buildkit", kb.data);
        kiln_buf_free(&kb);
    }
    keytext = kiln_xasprintf("%s\nflags:%zu", created_by, n->n_flags);
    for (size_t i = 0; i < n->n_flags; i++) {
        char *k2 = kiln_xasprintf("%s %s", keytext, n->flags[i]);
        free(keytext);
        keytext = k2;
    }
    {
        json_t *envj = json_object_get(cfg, "Env");
        char *envs = json_dumps(envj ? envj : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        char *wd = (char *)json_string_value(json_object_get(cfg, "WorkingDir"));
        char *usr = (char *)json_string_value(json_object_get(cfg, "User"));
        char *k2 = kiln_xasprintf("%s\nenv:%s\nwd:%s\nuser:%s", keytext, envs, wd ? wd : "",
                                  usr ? usr : "");
        free(envs);
        free(keytext);
        keytext = k2;
    }
    for (size_t i = 0; i < n_mounts; i++) {
        /* bind mounts are inputs: a stage by its cache key, context files by content */
        char ds[KILN_DIGEST_STR_MAX];
        kiln_digest_t d;
        char *k2 = NULL;
        if (binds[i].dep != NULL) {
            k2 = kiln_xasprintf("%s\nbind%zu:stage:%s", keytext, i,
                                kiln_digest_str(&binds[i].dep->key, ds));
        } else if (binds[i].context) {
            /* owned[2i] is the context dir + the canonical path in it */
            const char *rel = owned[2 * i] + strlen(e->req->context_dir);
            if (hash_context_path(e, rel[0] ? rel : "/", binds[i].as, &d, err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            k2 = kiln_xasprintf("%s\nbind%zu:context:%s", keytext, i, kiln_digest_str(&d, ds));
        } else {
            continue;
        }
        free(keytext);
        keytext = k2;
    }
    for (size_t i = 0; i < n->n_heredocs; i++) {
        /* a heredoc run as a file is not in the command line: key its content */
        char *k2 = kiln_xasprintf("%s\nheredoc:%s", keytext,
                                  n->heredocs[i].content ? n->heredocs[i].content : "");
        free(keytext);
        keytext = k2;
    }
    key_step(&key, keytext, NULL);
    if (cache_lookup(e, st, &key, &hit, err) < 0)
        goto out;
    if (hit) {
        st->key = key;
        ret = 1;
        goto out;
    }
    for (size_t i = 0; i < n_mounts; i++) {
        /* a miss: the bind-mounted paths of stages, merged from their layers */
        strv_t one = {0};
        const char *root = NULL;
        char *src;
        int r;
        if (binds[i].context && sec.insecure) {
            /* the context is the caller's own directory: not writable either */
            if (insecure_bind_copy(e, &owned[2 * i], &views[i], err) < 0) {
                kiln_error_prefix(err, "Dockerfile:%d: RUN bind mount", n->start_line);
                goto out;
            }
            mounts[i].src = owned[2 * i];
        }
        if (binds[i].dep == NULL)
            continue;
        _cleanup_close_ int rootfd = -1;
        _cleanup_free_ char *canon = NULL;
        strv_add(&one, kiln_xstrdup(owned[2 * i]));
        r = stage_sources_root(e, binds[i].dep, &one, &root, &views[i], err);
        strv_clear(&one);
        /* resolved inside the stage's tree: its links never reach the host */
        if (r == 0 && (kiln_pathres_open_root(root, &rootfd, err) < 0 ||
                       bind_source(rootfd, owned[2 * i], "the stage", &canon, err) < 0))
            r = -1;
        if (r < 0) {
            kiln_error_prefix(err, "Dockerfile:%d: RUN bind mount", n->start_line);
            goto out;
        }
        src = kiln_xasprintf("%s%s", root, strcmp(canon, "/") == 0 ? "" : canon);
        if (sec.insecure && insecure_bind_copy(e, &src, &views[i], err) < 0) {
            free(src);
            kiln_error_prefix(err, "Dockerfile:%d: RUN bind mount", n->start_line);
            goto out;
        }
        free(owned[2 * i]);
        owned[2 * i] = src;
        mounts[i].src = src;
    }

    /* environment: image Env, then the build args (Env wins) */
    for (size_t i = 0; i < used.used.n; i++)
        strv_add(&env, kiln_xstrdup(used.used.v[i]));
    {
        json_t *envj = json_object_get(cfg, "Env");
        size_t i;
        json_t *v;
        json_array_foreach(envj, i, v)
        {
            const char *s = json_string_value(v);
            const char *eq = s ? strchr(s, '=') : NULL;
            if (eq) {
                _cleanup_free_ char *k = kiln_xstrndup(s, (size_t)(eq - s));
                kv_set(&env, k, eq + 1);
            }
        }
        if (kv_get(&env, "PATH") == NULL)
            kv_set(&env, "PATH", DEFAULT_PATH);
    }
    for (size_t i = 0; i < n->n_flags; i++)
        if (strncmp(n->flags[i], "--mount=", 8) == 0 && strstr(n->flags[i], "type=ssh") != NULL)
            for (size_t k = 0; k < n_mounts; k++)
                if (mounts[k].src && e->req->ssh_socket &&
                    strcmp(mounts[k].src, e->req->ssh_socket) == 0)
                    kv_set(&env, "SSH_AUTH_SOCK", mounts[k].dst);
    lowers = kiln_xzalloc((st->n_layers + 1) * sizeof(char *));
    for (size_t i = 0; i < st->n_layers; i++) {
        char *d = NULL;
        if (lower_dir(e, &st->layers[i], &d, err) < 0)
            goto out;
        lowers[st->n_layers - 1 - i] = d; /* top-most first */
    }
    if (kiln_fs_mkdtemp(e->work, "upper-", &upper, err) < 0 ||
        kiln_fs_mkdtemp(e->work, "work-", &work, err) < 0)
        goto out;
    /* the upper dir is the root inode of the step: any user must traverse it */
    if (chmod(upper, 0755) < 0) {
        kiln_error_set(err, errno, "chmod %s", upper);
        goto out;
    }
    kiln_step_init(&step);
    step.lowers = lowers;
    /* two identical layers (e.g. RUN true twice) share one directory */
    step.n_lowers = kiln_lowerview_unique((char **)lowers, st->n_layers);
    step.upper = upper;
    step.work = work;
    step.argv = (const char *const *)argv.v;
    step.env = (const char *const *)env.v;
    step.cwd = json_string_value(json_object_get(cfg, "WorkingDir"));
    if (step.cwd == NULL || step.cwd[0] == '\0')
        step.cwd = "/";
    if (resolve_user(e, st, json_string_value(json_object_get(cfg, "User")), &step.uid, &step.gid,
                     err) < 0) {
        kiln_df_error(n, err, "%s", err->msg);
        goto out;
    }
    step.mounts = mounts;
    step.n_mounts = n_mounts;
    if (net && strcmp(net, "none") == 0)
        step.network = KILN_NET_NONE;
    else if (net && strcmp(net, "host") == 0)
        step.network = KILN_NET_HOST;
    if (e->req->isolation && kiln_isolation_parse(e->req->isolation, &step.isolation) < 0) {
        kiln_error_set(err, 0, "unknown isolation %s", e->req->isolation);
        goto out;
    }
    step.allow_addresses = e->req->allow_addresses;
    step.n_allow_addresses = e->req->n_allow_addresses;
    if (sec.insecure) {
        /* BuildKit's insecure mode: still in the step's user namespace */
        step.caps = KILN_CAPS_ALL;
        step.seccomp = KILN_SECCOMP_UNCONFINED;
    }
    step.limits.memory = e->req->memory_limit;
    step.limits.pids = e->req->pids_limit;
    step.limits.cpu_secs = e->req->cpu_time_limit;
    step.limits.disk = e->req->disk_limit;
    step.log = run_log;
    step.log_opaque = st;
    for (size_t i = 0; i < st->tail_n; i++)
        free(st->tail[i]);
    st->tail_n = 0;
    if (kiln_sandbox_run(&step, &res, err) < 0) {
        kiln_error_prefix(err, "Dockerfile:%d: RUN", n->start_line);
        goto out;
    }
    if (res.disk_exceeded) {
        char lim[32];
        kiln_size_format(e->req->disk_limit, lim, sizeof(lim));
        kiln_error_set(err, 0,
                       "Dockerfile:%d: process \"%s\" wrote more than the disk limit %s of a "
                       "step (its changes to the image's files)",
                       n->start_line, created_by, lim);
        goto out;
    }
    if (res.exit_code != 0) {
        kiln_buf_t b;
        kiln_buf_init(&b, 0);
        for (size_t i = 0; i < st->tail_n; i++)
            kiln_buf_appendf(&b, NULL, "\n  %s", st->tail[i]);
        kiln_error_set(err, 0,
                       "Dockerfile:%d: process \"%s\" did not complete successfully: exit code: "
                       "%d%s%s",
                       n->start_line, created_by, res.exit_code, b.data ? b.data : "",
                       limits_note(e->req, &res));
        kiln_buf_free(&b);
        goto out;
    }
    if (commit_step(e, st, upper, 1, created_by, &key, err) < 0)
        goto out;
    ret = 0;
out:
    if (lowers) {
        for (size_t i = 0; i < st->n_layers; i++)
            free((char *)lowers[i]);
        free(lowers);
    }
    if (upper)
        kiln_fs_rm_rf(upper, NULL);
    if (work)
        kiln_fs_rm_rf(work, NULL);
    for (size_t i = 0; i < 16; i++) {
        if (views[i])
            kiln_fs_rm_rf(views[i], NULL);
        free(views[i]);
        free(binds[i].as);
    }
    for (size_t i = 0; i < 32; i++)
        free(owned[i]);
    for (size_t i = 0; i < 16; i++)
        if (locks[i] >= 0)
            close(locks[i]);
    strv_clear(&argv);
    strv_clear(&env);
    strv_clear(&used.used);
    return ret;
}

/* ---------------------------------------------------------------- COPY / ADD */

typedef struct copy_ctx {
    engine_t *e;
    int step;                          /* for messages about skipped entries */
    const kiln_dockerignore_t *ignore; /* only for the main context */
    long uid, gid;                     /* -1 keep */
    long mode;                         /* -1 keep */
    bool root_owned;                   /* files without --chown belong to 0:0 */
    bool quiet;                        /* skipped entries were reported by the hash pass */
    kiln_sha256_t *hash;               /* hash mode: walk and hash, copy nothing */
    kiln_statcache_t *statcache;       /* for context files in hash mode, or NULL */
    nlink_t nlink_bias;                /* links the source tree itself adds (a lower view: 1) */
    int dest_root;                     /* copy mode: the staging directory */
    const char *hash_from;             /* hash mode: the source's canonical path … */
    const char *hash_as;               /* … hashed as written (cache keys as before) */
    struct copy_link {
        dev_t dev;
        ino_t ino;
        char *path; /* from dest_root */
    } * links;      /* first copy of each multiply-linked source file */
    size_t n_links;
} copy_ctx_t;

static void copy_ctx_clear(copy_ctx_t *c)
{
    for (size_t i = 0; i < c->n_links; i++)
        free(c->links[i].path);
    free(c->links);
    c->links = NULL;
    c->n_links = 0;
}

static void hash_str(kiln_sha256_t *h, const char *s)
{
    kiln_sha256_update(h, s, strlen(s) + 1);
}

/* Copies a regular file's data between two fds (in-kernel when possible). */
static int copy_file_data(int in, int out, const char *what, kiln_error_t *err)
{
    char buf[1 << 16];
    ssize_t r;
    for (;;) {
        r = copy_file_range(in, NULL, out, NULL, 1u << 30, 0);
        if (r > 0)
            continue;
        if (r == 0)
            return 0;
        if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
            return kiln_error_set(err, errno, "copy %s", what);
        break; /* fall back to read/write from where we are */
    }
    while ((r = read(in, buf, sizeof(buf))) > 0)
        if (kiln_fs_write_all(out, buf, (size_t)r, err) < 0)
            return -1;
    if (r < 0)
        return kiln_error_set(err, errno, "read %s", what);
    return 0;
}

/* The owner COPY gives an entry whose source stat is st. */
static void copy_owner(const copy_ctx_t *c, const struct stat *st, uid_t *u, gid_t *g)
{
    *u = c->uid >= 0 ? (uid_t)c->uid : (c->root_owned ? 0 : st->st_uid);
    *g = c->gid >= 0 ? (gid_t)c->gid : (c->root_owned ? 0 : st->st_gid);
}

/* Owner, mode and mtime onto a file or directory made by the copy. */
static void apply_meta_fd(const copy_ctx_t *c, int fd, const struct stat *st)
{
    struct timespec ts[2] = {st->st_mtim, st->st_mtim};
    uid_t u;
    gid_t g;
    copy_owner(c, st, &u, &g);
    (void)fchown(fd, u, g);
    (void)fchmod(fd, c->mode >= 0 ? (mode_t)c->mode : st->st_mode & 07777);
    (void)futimens(fd, ts);
}

/* Sorted names of the directory fd (without . and ..). */
static int list_dir(int fd, const char *what, strv_t *out, kiln_error_t *err)
{
    int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;
    if (d == NULL) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return kiln_error_set(err, e, "open directory %s", what);
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        strv_add(out, kiln_xstrdup(de->d_name));
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(char *), cmp_str);
    return 0;
}

/* The directory name under dfd in the staging tree, made when missing. A
 * link or file an earlier source of the same COPY put there is replaced,
 * never followed. Returns an O_RDONLY fd or -1. */
static int dest_dir(int dfd, const char *name, const char *drel, kiln_error_t *err)
{
    int fd;
    if (mkdirat(dfd, name, 0755) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", drel);
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        if (unlinkat(dfd, name, 0) < 0 || mkdirat(dfd, name, 0755) < 0)
            return kiln_error_set(err, errno, "mkdir %s", drel);
        fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return kiln_error_set(err, errno, "open %s", drel);
    return fd;
}

static int copy_entry(copy_ctx_t *c, int sfd, const char *name, const char *rel, int dfd,
                      const char *drel, kiln_error_t *err);

/* Hashes an entry's path as the source was written ("./src/x" stays that,
 * though it is read as "src/x"), so cache keys do not depend on how the
 * source resolved. */
static void hash_rel(copy_ctx_t *c, const char *rel)
{
    _cleanup_free_ char *as = NULL;
    size_t n = c->hash_from ? strlen(c->hash_from) : 0;
    if (c->hash_from == NULL || strncmp(rel, c->hash_from, n) != 0) {
        hash_str(c->hash, rel);
        return;
    }
    if (n == 0 && rel[0] != '\0' && c->hash_as[0] != '\0')
        as = kiln_xasprintf("%s/%s", c->hash_as, rel);
    else
        as = kiln_xasprintf("%s%s", c->hash_as, rel + n);
    hash_str(c->hash, as);
}

/* A directory's entries (source dir fd sub, path rel) into the staging
 * directory dsub (copy mode; path drel), then its metadata from st. */
static int copy_dir(copy_ctx_t *c, int sub, const char *rel, int dsub, const char *drel,
                    const struct stat *st, kiln_error_t *err)
{
    strv_t names = {0};
    int ret = 0;
    if (list_dir(sub, rel[0] ? rel : ".", &names, err) < 0)
        return -1;
    for (size_t i = 0; i < names.n && ret == 0; i++) {
        _cleanup_free_ char *r2 =
            rel[0] ? kiln_xasprintf("%s/%s", rel, names.v[i]) : kiln_xstrdup(names.v[i]);
        _cleanup_free_ char *d2 = c->hash ? NULL : kiln_xasprintf("%s/%s", drel, names.v[i]);
        ret = copy_entry(c, sub, names.v[i], r2, dsub, d2, err);
    }
    strv_clear(&names);
    if (ret == 0 && !c->hash)
        apply_meta_fd(c, dsub, st);
    return ret;
}

/* A regular file (opened as in, stat st): hashed, or copied into dfd as the
 * last component of drel (hardlinks within one COPY kept). */
static int copy_reg(copy_ctx_t *c, int in, const char *rel, int dfd, const char *dname,
                    const char *drel, const struct stat *st, kiln_error_t *err)
{
    _cleanup_close_ int out = -1;
    if (c->hash) {
        kiln_digest_t d;
        char ds[KILN_DIGEST_STR_MAX];
        if (c->statcache) {
            if (kiln_statcache_hash(c->statcache, rel, in, st, &d, err) < 0)
                return -1;
        } else if (kiln_digest_fd(in, &d, NULL, err) < 0) {
            return kiln_error_prefix(err, "hashing %s", rel);
        }
        hash_str(c->hash, kiln_digest_str(&d, ds));
        return 0;
    }
    (void)unlinkat(dfd, dname, 0);
    if (st->st_nlink > 1 + c->nlink_bias) {
        /* hardlinks within one COPY stay hardlinks */
        for (size_t i = 0; i < c->n_links; i++) {
            if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino) {
                _cleanup_close_ int first = -1;
                if (kiln_pathres_open(c->dest_root, c->links[i].path, O_PATH, 0,
                                      KILN_PATHRES_NOFOLLOW, &first, NULL) == 0 &&
                    linkat(first, "", dfd, dname, AT_EMPTY_PATH) == 0)
                    return 0;
                break;
            }
        }
        if (c->n_links < MAX_COPY_LINKS) {
            c->links = kiln_xrealloc(c->links, (c->n_links + 1) * sizeof(*c->links));
            c->links[c->n_links].dev = st->st_dev;
            c->links[c->n_links].ino = st->st_ino;
            c->links[c->n_links++].path = kiln_xstrdup(drel);
        }
    }
    out = openat(dfd, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 st->st_mode & 07777);
    if (out < 0)
        return kiln_error_set(err, errno, "create %s", drel);
    if (copy_file_data(in, out, rel, err) < 0)
        return -1;
    apply_meta_fd(c, out, st);
    return 0;
}

/* Walks the entry name of the source directory sfd (rel: its path from the
 * source root) honouring the ignore rules for context paths, never following
 * a link: symlinks are copied as symlinks; FIFOs, sockets and devices are
 * skipped with a message and never opened. Hash mode (c->hash): hashes names,
 * modes, link targets and file contents. Copy mode: copies it into the
 * staging directory dfd (drel: its path there) with the COPY ownership and
 * mode rules. */
static int copy_entry(copy_ctx_t *c, int sfd, const char *name, const char *rel, int dfd,
                      const char *drel, kiln_error_t *err)
{
    const char *dname = drel ? (strrchr(drel, '/') ? strrchr(drel, '/') + 1 : drel) : NULL;
    struct stat st, st2;
    bool excluded;

    if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", rel[0] ? rel : ".");
    excluded = c->ignore && rel[0] && kiln_dockerignore_excluded(c->ignore, rel);
    if (excluded && !(S_ISDIR(st.st_mode) && kiln_dockerignore_may_reinclude(c->ignore, rel)))
        return 0;
    if (c->hash) {
        char meta[64];
        hash_rel(c, rel);
        snprintf(meta, sizeof(meta), "%o", (unsigned)st.st_mode);
        hash_str(c->hash, meta);
    }
    if (S_ISDIR(st.st_mode)) {
        _cleanup_close_ int sub =
            openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int dsub = -1;
        if (sub < 0)
            return kiln_error_set(err, errno, "open directory %s", rel[0] ? rel : ".");
        if (!c->hash && (dsub = dest_dir(dfd, dname, drel, err)) < 0)
            return -1;
        return copy_dir(c, sub, rel, dsub, drel, &st, err);
    }
    if (excluded)
        return 0;
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        struct timespec ts[2] = {st.st_mtim, st.st_mtim};
        uid_t u;
        gid_t g;
        ssize_t l = readlinkat(sfd, name, target, sizeof(target) - 1);
        if (l < 0)
            return kiln_error_set(err, errno, "readlink %s", rel);
        target[l] = '\0';
        if (c->hash) {
            hash_str(c->hash, target);
            return 0;
        }
        (void)unlinkat(dfd, dname, 0);
        if (symlinkat(target, dfd, dname) < 0)
            return kiln_error_set(err, errno, "symlink %s", drel);
        copy_owner(c, &st, &u, &g);
        (void)fchownat(dfd, dname, u, g, AT_SYMLINK_NOFOLLOW);
        (void)utimensat(dfd, dname, ts, AT_SYMLINK_NOFOLLOW);
        return 0;
    }
    if (S_ISREG(st.st_mode)) {
        /* O_NONBLOCK: had it become a FIFO since the stat, the open does not wait */
        _cleanup_close_ int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (in < 0)
            return kiln_error_set(err, errno, "open %s", rel);
        if (fstat(in, &st2) < 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st.st_ino)
            return kiln_error_set(err, EAGAIN, "%s changed while being copied", rel);
        return copy_reg(c, in, rel, dfd, dname, drel, &st, err);
    }
    if (!c->quiet) {
        _cleanup_free_ char *msg =
            kiln_xasprintf("skipping %s: %s is not copied (only files, directories and symlinks)",
                           rel, special_kind(st.st_mode));
        emit_event(c->e, c->step, "log", msg, -1);
    }
    return 0;
}

/* The stat cache of the context at root: the build context under the
 * request's context identity (else its canonical path), a named context
 * under its canonical path. NULL when it cannot be used: files are then
 * hashed every time. */
static kiln_statcache_t *statcache_for(engine_t *e, const char *root)
{
    _cleanup_free_ char *canon = realpath(root, NULL);
    const char *id = root == e->req->context_dir && e->req->context_id ? e->req->context_id
                     : canon                                           ? canon
                                                                       : root;
    kiln_statcache_t *sc = NULL;

    if (kiln_statcache_open(e->statcache_path, id, e->req->stat_cache_max, &sc, NULL) < 0)
        return NULL;
    return sc;
}

/* Saves a COPY's stat cache (a failure only costs hashing again next time)
 * and says on step's log how much of the context it spared reading. */
static void statcache_done(engine_t *e, int step, kiln_statcache_t *sc)
{
    kiln_statcache_stats_t s;
    _cleanup_free_ char *msg = NULL;

    kiln_statcache_save(sc, NULL);
    kiln_statcache_stats(sc, &s);
    if (s.hits + s.hashed == 0)
        return;
    msg = kiln_xasprintf("stat cache: %llu of %llu files unchanged, %llu hashed",
                         (unsigned long long)s.hits, (unsigned long long)(s.hits + s.hashed),
                         (unsigned long long)s.hashed);
    emit_event(e, step, "log", msg, -1);
}

/* Opens the directory holding the in-root canonical path canon ("/" the
 * root itself) under rootfd: *dirfd and *name (borrowed from canon, "." for
 * the root). -1 with err. */
static int source_at(int rootfd, const char *canon, int *dirfd, const char **name,
                     kiln_error_t *err)
{
    const char *slash = strrchr(canon, '/');
    _cleanup_free_ char *parent = NULL;
    if (canon[0] == '\0' || strcmp(canon, "/") == 0 || strcmp(canon, ".") == 0) {
        *name = ".";
        return kiln_pathres_open(rootfd, "/", O_RDONLY | O_DIRECTORY, 0, 0, dirfd, err);
    }
    parent = slash ? kiln_xstrndup(canon, (size_t)(slash - canon)) : kiln_xstrdup("");
    *name = slash ? slash + 1 : canon;
    return kiln_pathres_open(rootfd, parent, O_RDONLY | O_DIRECTORY, 0, 0, dirfd, err);
}

/* Hashes the source at canon (canonical, inside rootfd; written: as the
 * Dockerfile wrote it) into c->hash. */
static int hash_source(copy_ctx_t *c, int rootfd, const char *canon, const char *written,
                       kiln_error_t *err)
{
    _cleanup_close_ int dfd = -1;
    const char *name;
    const char *rel = canon[0] == '/' ? canon + 1 : canon;
    int r;
    if (source_at(rootfd, canon, &dfd, &name, err) < 0)
        return -1;
    c->hash_from = rel;
    c->hash_as = written;
    r = copy_entry(c, dfd, name, rel, -1, NULL, err);
    c->hash_from = c->hash_as = NULL;
    if (r == 0 && c->statcache) /* walked whole: entries of vanished files under it go */
        kiln_statcache_scanned(c->statcache, rel);
    return r;
}

/* The content digest of the context path canon (canonical inside the
 * context: a file or tree, ignore rules applied), through the stat cache. */
static int hash_context_path(engine_t *e, const char *canon, const char *written,
                             kiln_digest_t *out, kiln_error_t *err)
{
    _cleanup_close_ int rootfd = -1;
    copy_ctx_t c = {.e = e, .ignore = e->ignore};
    kiln_statcache_t *sc = NULL;
    kiln_sha256_t h;
    int r;

    if (kiln_pathres_open_root(e->req->context_dir, &rootfd, err) < 0)
        return -1;
    sc = statcache_for(e, e->req->context_dir);
    kiln_sha256_init(&h, NULL);
    c.hash = &h;
    c.statcache = sc;
    c.quiet = true;
    r = hash_source(&c, rootfd, canon, written, err);
    if (r == 0) {
        if (sc != NULL)
            kiln_statcache_save(sc, NULL); /* a failure only costs re-hashing next time */
        kiln_sha256_final(&h, out);
    } else {
        kiln_sha256_dispose(&h);
    }
    kiln_statcache_free(sc);
    return r;
}

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* Resolves dst against WORKDIR; keeps a trailing '/'. */
static char *resolve_dest(const stage_t *st, const char *dst)
{
    const char *wd =
        json_string_value(json_object_get(json_object_get(st->config, "config"), "WorkingDir"));
    if (dst[0] == '/')
        return kiln_xstrdup(dst);
    if (strcmp(dst, ".") == 0 || strcmp(dst, "./") == 0)
        return kiln_xasprintf("%s/", wd && *wd ? wd : "");
    return kiln_xasprintf("%s/%s", wd && *wd && strcmp(wd, "/") != 0 ? wd : "", dst);
}

/* mkdir -p of path inside the directory root (kiln's own staging dir; links
 * in it followed inside it); *out (when not NULL) the directory's fd. */
static int mkdirs_in(const char *root, const char *path, int *out, kiln_error_t *err)
{
    _cleanup_close_ int rfd = -1;
    if (kiln_pathres_open_root(root, &rfd, err) < 0)
        return -1;
    return kiln_pathres_mkdir_p(rfd, path, 0755, out, err);
}

/* The URL without userinfo and query, for messages (tokens stay out of logs). */
static char *url_for_display(const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    size_t n;
    if (at && (!slash || at < slash))
        host = at + 1;
    n = strcspn(host, "?#");
    return kiln_xasprintf("%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)n, host);
}

/* The file name ADD gives a download: the last path element of the URL. */
static char *url_basename(const char *url)
{
    _cleanup_free_ char *clean = url_for_display(url);
    const char *p = strstr(clean, "://");
    const char *path = strchr(p ? p + 3 : clean, '/');
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash == NULL || slash[1] == '\0')
        return kiln_xstrdup("index.html");
    return kiln_xstrdup(slash + 1);
}

/* Downloads url into a file in the work dir; *digest is its sha256. When
 * checksum ("sha256:hex") is given the content must match it. */
static int fetch_url(engine_t *e, const char *url, const char *checksum, char **file,
                     kiln_digest_t *digest, kiln_error_t *err)
{
    kiln_http_t *h = kiln_http_new();
    kiln_http_request_t rq = {.method = "GET",
                              .url = url,
                              .body_fd = -1,
                              .response_cap = ADD_URL_MAX,
                              .timeout_seconds = 600,
                              .follow_redirects = 1};
    kiln_http_response_t resp = {0};
    _cleanup_free_ char *shown = url_for_display(url);
    _cleanup_free_ char *path = NULL;
    int r;

    kiln_http_set_policy(h, e->fetch_policy);
    r = kiln_http_do(h, &rq, &resp, err);
    if (r < 0) {
        if (kiln_http_refusal(h) != NULL) /* the policy's message names the address */
            kiln_error_set(err, 0, "ADD %s: %s", shown, kiln_http_refusal(h));
        else
            kiln_error_prefix(err, "ADD %s", shown);
        kiln_http_free(h);
        return -1;
    }
    kiln_http_free(h);
    if (resp.status != 200) {
        kiln_http_response_free(&resp);
        return kiln_error_set(err, 0, "ADD %s: HTTP status %ld", shown, resp.status);
    }
    kiln_digest_bytes(resp.body, resp.body_len, digest);
    if (checksum != NULL) {
        kiln_digest_t want;
        char got[KILN_DIGEST_STR_MAX];
        if (kiln_digest_parse(checksum, &want, NULL) < 0) {
            kiln_http_response_free(&resp);
            return kiln_error_set(err, 0, "invalid --checksum %s (want sha256:HEX)", checksum);
        }
        if (!kiln_digest_equal(&want, digest)) {
            kiln_http_response_free(&resp);
            return kiln_error_set(err, 0, "ADD %s: checksum mismatch: expected %s, got %s", shown,
                                  checksum, kiln_digest_str(digest, got));
        }
    }
    path = kiln_xasprintf("%s/url-XXXXXX", e->work);
    {
        _cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0 || kiln_fs_write_all(fd, resp.body, resp.body_len, err) < 0) {
            if (fd < 0)
                kiln_error_set(err, errno, "creating %s", path);
            kiln_http_response_free(&resp);
            return -1;
        }
    }
    kiln_http_response_free(&resp);
    *file = steal_pointer(&path);
    return 0;
}

/* Where the sources of a COPY/ADD come from: the context, a stage, a named
 * context or an image. Sets *root (borrowed) and *ign (NULL when not the
 * main context), or for a stage or an image *dep (built; *root NULL: its
 * files are only materialized when the step misses the cache). */
static int copy_source_root(engine_t *e, stage_t *st, const kiln_df_node_t *n, const char *from,
                            const char **root, const kiln_dockerignore_t **ign, stage_t **dep_out,
                            kiln_error_t *err)
{
    stage_t *dep;

    *root = e->req->context_dir;
    *ign = e->ignore;
    *dep_out = NULL;
    if (from == NULL)
        return 0;
    *ign = NULL;
    dep = find_stage(e, from, (size_t)st->index);
    if (dep != NULL) {
        if (run_stage(e, dep, err) < 0)
            return -1;
        *root = NULL;
        *dep_out = dep;
        return 0;
    }
    if (all_digits(from))
        return kiln_df_error(n, err, "unknown stage %s (stages are numbered from 0, earlier only)",
                             from);
    if (find_stage(e, from, e->n_stages) != NULL)
        return kiln_df_error(n, err, "stage %s is defined after this instruction", from);
    for (size_t i = 0; i < e->req->n_contexts; i++) {
        size_t fl = strlen(from);
        if (strncmp(e->req->contexts[i], from, fl) == 0 && e->req->contexts[i][fl] == '=' &&
            strncmp(e->req->contexts[i] + fl + 1, "docker-image://", 15) != 0) {
            *root = e->req->contexts[i] + fl + 1;
            return 0;
        }
    }
    for (size_t i = 0; i < e->req->n_contexts; i++) {
        size_t fl = strlen(from);
        if (strncmp(e->req->contexts[i], from, fl) == 0 && e->req->contexts[i][fl] == '=')
            from = e->req->contexts[i] + fl + 1 + 15; /* NAME=docker-image://REF */
    }
    /* an image reference: a throwaway stage kept until the build ends */
    pthread_mutex_lock(&e->lock);
    if (e->n_stages >= MAX_STAGES) {
        pthread_mutex_unlock(&e->lock);
        return kiln_df_error(n, err, "too many stages");
    }
    dep = &e->stages[e->n_stages];
    memset(dep, 0, sizeof(*dep));
    dep->index = (int)e->n_stages;
    dep->state = 2;
    dep->e = e;
    e->n_stages++;
    pthread_mutex_unlock(&e->lock);
    if (from_image(e, dep, from, err) < 0)
        return kiln_error_prefix(err, "Dockerfile:%d: COPY --from=%s", n->start_line, from);
    dep->name = kiln_xstrdup(from);
    *root = NULL;
    *dep_out = dep;
    return 0;
}

/* Where to read the sources srcs (expanded, relative to the stage root) of a
 * COPY --from=dep that missed the cache. Plain paths are merged from the
 * stage's unpacked layers (kept under the kiln root across builds) into a
 * fresh view with hardlinks: *view is set, *root is it, and the caller
 * removes it. Globs, symlinks on the way and the like need the stage's full
 * rootfs: *root is that, *view NULL. Returns -1 on failure. */
static int stage_sources_root(engine_t *e, stage_t *dep, const strv_t *srcs, const char **root,
                              char **view, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL;
    char *rootfs = NULL;
    int r = 1;

    *view = NULL;
    if (kiln_fs_mkdtemp(e->work, "view-", &dir, err) < 0)
        return -1;
    for (size_t i = 0; i < srcs->n && r == 1; i++) {
        /* a glob needs the directory above its first wildcard */
        _cleanup_free_ char *p = kiln_xstrdup(srcs->v[i]);
        char *w = strpbrk(p, "*?[");
        if (w != NULL) {
            *w = '\0';
            w = strrchr(p, '/');
            if (w == NULL)
                p[0] = '\0';
            else
                *w = '\0';
        }
        r = stage_extract(e, dep, p[0] ? p : ".", dir, err);
    }
    if (r != 1)
        kiln_fs_rm_rf(dir, NULL);
    if (r < 0)
        return -1;
    if (r == 1) {
        *root = dir;
        *view = steal_pointer(&dir);
        return 0;
    }
    if (stage_rootfs(e, dep, &rootfs, err) < 0)
        return -1;
    *root = rootfs;
    return 0;
}

/* Cleans a source path of a stage or image lexically, as BuildKit does:
 * "." and empty components dropped, ".." removes the previous one and stops
 * at the root (so no source leaves the stage's tree). In place. */
static void clean_stage_path(char *s)
{
    size_t out = 0, i = 0, len = strlen(s);

    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '/')
            j++;
        if (j - i == 2 && s[i] == '.' && s[i + 1] == '.') {
            while (out > 0 && s[out - 1] != '/')
                out--;
            if (out > 0)
                out--; /* the '/' before the dropped component */
        } else if (!(j - i == 0 || (j - i == 1 && s[i] == '.'))) {
            if (out > 0)
                s[out++] = '/';
            memmove(s + out, s + i, j - i);
            out += j - i;
        }
        i = j + 1;
    }
    s[out] = '\0';
}

/* Expands the sources of a COPY/ADD: URLs (ADD) to urls, paths (without
 * leading '/', cleaned for a stage or image) to paths; heredoc sources are
 * left out. */
static int expand_sources(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
                          bool from_context, strv_t *paths, strv_t *urls, kiln_error_t *err)
{
    for (size_t i = 0; i + 1 < n->n_args; i++) {
        _cleanup_free_ char *s = NULL;
        if (n->n_heredocs > 0 && strstr(n->args[i], "<<") != NULL)
            continue; /* a heredoc source */
        if (expand(e, st, n->args[i], NULL, &s, err) < 0)
            return kiln_df_error(n, err, "%s", err->msg);
        if (is_add && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)) {
            strv_add(urls, steal_pointer(&s));
            continue;
        }
        while (s[0] == '/')
            memmove(s, s + 1, strlen(s));
        if (from_context &&
            (strcmp(s, "..") == 0 || strncmp(s, "../", 3) == 0 || strstr(s, "/../") != NULL))
            return kiln_df_error(n, err, "source %s is outside the build context", s);
        if (!from_context)
            clean_stage_path(s);
        strv_add(paths, steal_pointer(&s));
    }
    return 0;
}

/* Expands the glob pattern pat (relative to the root) by reading the
 * directories under rootfd: each directory on the way resolved inside the
 * root, wildcards matched as glob(3) does (a leading '.' only by a '.').
 * Adds the matches, as paths under the root (links in them not resolved), to
 * out, sorted per directory. */
static int glob_in_root(int rootfd, const char *dir, const char *pat, strv_t *out,
                        kiln_error_t *err)
{
    const char *slash = strchr(pat, '/');
    _cleanup_free_ char *comp =
        slash ? kiln_xstrndup(pat, (size_t)(slash - pat)) : kiln_xstrdup(pat);
    const char *rest = slash ? slash + 1 : NULL;
    strv_t names = {0};
    _cleanup_close_ int dfd = -1;
    bool trail; /* a pattern ending in "/" matches only directories, as glob(3) */
    int ret = 0;

    while (rest && *rest == '/')
        rest++;
    trail = rest && *rest == '\0';
    if (trail)
        rest = NULL;
    if (comp[0] == '\0' || !has_glob(comp)) {
        _cleanup_free_ char *p = dir[0] ? kiln_xasprintf("%s/%s", dir, comp) : kiln_xstrdup(comp);
        _cleanup_free_ char *canon = NULL;
        if (kiln_pathres_resolve(rootfd, p, rest ? 0 : KILN_PATHRES_NOFOLLOW, &canon, NULL) < 0)
            return 0; /* no match */
        if (rest == NULL) {
            strv_add(out, steal_pointer(&p));
            return 0;
        }
        return glob_in_root(rootfd, p, rest, out, err);
    }
    if (kiln_pathres_open(rootfd, dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY, 0, 0, &dfd, NULL) < 0)
        return 0; /* not a directory: no match */
    if (list_dir(dfd, dir, &names, err) < 0)
        return -1;
    for (size_t i = 0; i < names.n && ret == 0; i++) {
        _cleanup_free_ char *p = NULL;
        if (fnmatch(comp, names.v[i], FNM_PERIOD) != 0)
            continue;
        p = kiln_xasprintf("%s%s%s%s", dir, dir[0] ? "/" : "", names.v[i], trail ? "/" : "");
        if (rest == NULL) {
            _cleanup_free_ char *canon = NULL;
            if (!trail || kiln_pathres_resolve(rootfd, p, 0, &canon, NULL) == 0)
                strv_add(out, steal_pointer(&p));
        } else
            ret = glob_in_root(rootfd, p, rest, out, err);
    }
    strv_clear(&names);
    return ret;
}

/* Resolves the expanded source paths inside rootfd (the context, a named
 * context or a stage's tree): globs expanded by reading directories there,
 * each source's links followed inside the root (as BuildKit's
 * FollowSymlinks), checked to exist and not be excluded by ign. srcs gets
 * each source as written (or matched: the cache key and its name in the
 * destination), canon its canonical path in the root. A FIFO, socket or
 * device named as a source is refused. */
static int copy_sources(const kiln_df_node_t *n, int rootfd, const kiln_dockerignore_t *ign,
                        const strv_t *paths, strv_t *srcs, strv_t *canon, kiln_error_t *err)
{
    for (size_t i = 0; i < paths->n; i++) {
        const char *s = paths->v[i];
        strv_t cands = {0};
        size_t before = srcs->n;
        if (has_glob(s)) {
            if (glob_in_root(rootfd, "", s, &cands, err) < 0)
                return -1;
        } else {
            strv_add(&cands, kiln_xstrdup(s[0] ? s : "."));
        }
        for (size_t k = 0; k < cands.n; k++) {
            const char *m = cands.v[k];
            _cleanup_free_ char *cp = NULL;
            _cleanup_close_ int dfd = -1;
            const char *name;
            struct stat sst;
            bool ok = kiln_pathres_resolve(rootfd, m, 0, &cp, NULL) == 0;
            size_t cl = ok ? strlen(cp) : 0;
            while (cl > 1 && cp[cl - 1] == '/')
                cp[--cl] = '\0'; /* "dir/": the directory */
            ok = ok && source_at(rootfd, cp, &dfd, &name, NULL) == 0 &&
                 fstatat(dfd, name, &sst, AT_SYMLINK_NOFOLLOW) == 0;
            const char *rel = ok ? cp + 1 : "";
            if (ok && ign && rel[0] && !S_ISDIR(sst.st_mode) &&
                (kiln_dockerignore_excluded(ign, rel) ||
                 (strcmp(m, ".") != 0 && kiln_dockerignore_excluded(ign, m))))
                ok = false;
            if (!ok && has_glob(s))
                continue;
            if (!ok) {
                strv_clear(&cands);
                return kiln_error_set(
                    err, 0, "Dockerfile:%d: failed to compute cache key: \"/%s\": not found: %s",
                    n->start_line, s, n->original);
            }
            if (!S_ISDIR(sst.st_mode) && !S_ISREG(sst.st_mode)) {
                int r = kiln_error_set(err, EINVAL,
                                       "Dockerfile:%d: source %s is %s, not a regular file or "
                                       "directory: %s",
                                       n->start_line, m, special_kind(sst.st_mode), n->original);
                strv_clear(&cands);
                return r;
            }
            strv_add(srcs, kiln_xstrdup(m));
            strv_add(canon, steal_pointer(&cp));
        }
        strv_clear(&cands);
        if (has_glob(s) && srcs->n == before)
            return kiln_df_error(n, err, "no source files were specified");
    }
    return 0;
}

/* Tries a local archive for ADD: the source file in (opened) is extracted
 * into dest_in of the staging directory. *done set when it was one. */
static int add_archive(engine_t *e, copy_ctx_t *c, int in, const char *staging, const char *dest_in,
                       bool *done, kiln_error_t *err)
{
    _cleanup_free_ char *tmpd = NULL;
    _cleanup_free_ char *dd = kiln_xstrdup(dest_in);
    _cleanup_close_ int tfd = -1;
    _cleanup_close_ int ddir = -1;
    kiln_unpack_opts_t uo;
    kiln_error_t ignored = {0};
    copy_ctx_t c2 = *c;
    struct stat st;
    int r;

    *done = false;
    if (kiln_fs_mkdtemp(e->work, "add-", &tmpd, err) < 0)
        return 0;
    kiln_unpack_opts_init(&uo);
    if (lseek(in, 0, SEEK_SET) < 0 || kiln_layer_unpack(in, tmpd, &uo, NULL, &ignored) < 0) {
        kiln_fs_rm_rf(tmpd, NULL);
        return 0; /* not an archive: copied as a file */
    }
    c2.ignore = NULL;
    c2.links = NULL;
    c2.n_links = 0;
    c2.root_owned = false; /* an archive keeps its owners */
    tfd = open(tmpd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = tfd < 0 ? kiln_error_set(err, errno, "open %s", tmpd) : 0;
    if (r == 0 && fstat(tfd, &st) < 0)
        r = kiln_error_set(err, errno, "stat %s", tmpd);
    while (dd[0] && dd[strlen(dd) - 1] == '/')
        dd[strlen(dd) - 1] = '\0';
    if (r == 0)
        r = mkdirs_in(staging, dest_in, &ddir, err);
    if (r == 0)
        r = copy_dir(&c2, tfd, "", ddir, dd, &st, err);
    copy_ctx_clear(&c2);
    kiln_fs_rm_rf(tmpd, NULL);
    *done = r == 0;
    return r;
}

/* The last component of a path made by staging_slot. */
static const char *last_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Where a non-directory source goes in the staging dir: for a directory
 * destination (dest_in ends with '/') base inside it, else dest_in itself.
 * *ddir is the (made) directory holding it, *drel its path. -1 with err. */
static int staging_slot(const char *staging, const char *dest_in, bool dir_dest, const char *base,
                        int *ddir, char **drel, kiln_error_t *err)
{
    _cleanup_free_ char *parent = NULL;
    if (dir_dest) {
        parent = kiln_xstrdup(dest_in);
        *drel =
            kiln_xasprintf("%s%s%s", dest_in, dest_in[strlen(dest_in) - 1] == '/' ? "" : "/", base);
    } else {
        const char *slash = strrchr(dest_in, '/');
        parent = kiln_xstrndup(dest_in, slash ? (size_t)(slash - dest_in) : 0);
        *drel = kiln_xstrdup(dest_in);
    }
    return mkdirs_in(staging, parent[0] ? parent : "/", ddir, err);
}

/* Several sources (n_sources, heredocs added here) need a directory destination. */
static int copy_check_dest(const kiln_df_node_t *n, bool is_add, bool dir_dest, size_t n_sources,
                           kiln_error_t *err)
{
    if (n_sources + n->n_heredocs > 1 && !dir_dest)
        return kiln_df_error(n, err,
                             "When using %s with more than one source file, the destination must "
                             "be a directory and end with a /",
                             is_add ? "ADD" : "COPY");
    return 0;
}

static int do_copy(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
                   kiln_error_t *err)
{
    strv_t srcs = {0}, canon = {0}, bodies = {0}, urls = {0}, url_files = {0}, paths = {0};
    const char *checksum = NULL;
    _cleanup_free_ char *view = NULL;
    stage_t *dep = NULL;
    _cleanup_free_ char *dest = NULL;
    _cleanup_free_ char *dest_raw = NULL;
    _cleanup_free_ char *staging = NULL;
    _cleanup_free_ char *created_by = NULL;
    _cleanup_free_ char *dest_in = NULL;
    _cleanup_close_ int rootfd = -1;
    _cleanup_close_ int sroot = -1;
    const char *from = NULL, *chown_s = NULL, *chmod_s = NULL, *root;
    const kiln_dockerignore_t *ign;
    copy_ctx_t c = {.e = e,
                    .step = st->step,
                    .uid = -1,
                    .gid = -1,
                    .mode = -1,
                    .root_owned = true,
                    .dest_root = -1};
    kiln_statcache_t *sc = NULL;
    kiln_sha256_t h;
    kiln_digest_t content, key = st->key;
    char cs[KILN_DIGEST_STR_MAX];
    bool dir_dest, hit = false;
    int ret = -1;

    for (size_t i = 0; i < n->n_flags; i++) {
        const char *f = n->flags[i];
        if (strncmp(f, "--from=", 7) == 0)
            from = f + 7;
        else if (strncmp(f, "--chown=", 8) == 0)
            chown_s = f + 8;
        else if (strncmp(f, "--chmod=", 8) == 0)
            chmod_s = f + 8;
        else if (strcmp(f, "--link") == 0 || strncmp(f, "--link=", 7) == 0 ||
                 (is_add && strncmp(f, "--keep-git-dir", 14) == 0))
            continue;
        else if (is_add && strncmp(f, "--checksum=", 11) == 0)
            checksum = f + 11;
        else
            return kiln_df_error(n, err, "unknown flag: %s", f);
    }
    if (n->n_args < 2 && n->n_heredocs == 0)
        return kiln_df_error(n, err, "%s requires at least two arguments", is_add ? "ADD" : "COPY");
    if (expand(e, st, n->args[n->n_args - 1], NULL, &dest_raw, err) < 0)
        return kiln_df_error(n, err, "%s", err->msg);
    dest = resolve_dest(st, dest_raw);
    dir_dest = dest[strlen(dest) - 1] == '/';
    if (copy_source_root(e, st, n, from, &root, &ign, &dep, err) < 0)
        return -1;
    if (chown_s) {
        uid_t u;
        gid_t g;
        _cleanup_free_ char *x = NULL;
        if (expand(e, st, chown_s, NULL, &x, err) < 0 || resolve_user(e, st, x, &u, &g, err) < 0)
            return kiln_df_error(n, err, "%s", err->msg);
        c.uid = u;
        /* "a username without groupname … uses the same numeric UID as the GID" */
        c.gid = strchr(x, ':') ? (long)g : (long)u;
    }
    if (chmod_s) {
        char *endp;
        c.mode = strtol(chmod_s, &endp, 8);
        if (*endp || c.mode < 0 || c.mode > 07777)
            return kiln_df_error(n, err, "invalid chmod %s", chmod_s);
    }
    if (dep == NULL && kiln_pathres_open_root(root, &rootfd, err) < 0)
        return kiln_df_error(n, err, "%s", err->msg);
    kiln_sha256_init(&h, NULL);
    if (expand_sources(e, st, n, is_add, from == NULL, &paths, &urls, err) < 0 ||
        (dep == NULL && copy_sources(n, rootfd, ign, &paths, &srcs, &canon, err) < 0))
        goto out;
    if (urls.n > 0 && checksum != NULL && urls.n != 1) {
        kiln_df_error(n, err, "ADD --checksum needs exactly one URL source");
        goto out;
    }
    if (copy_check_dest(n, is_add, dir_dest, (dep ? paths.n : srcs.n) + urls.n, err) < 0)
        goto out;

    /* 1. the cache key: a stage (or image) source is keyed by the stage's own
     * cache key and the paths, as BuildKit does: nothing of it is read unless
     * this step misses; other sources are hashed (context files through the
     * stat cache) */
    if (dep == NULL)
        sc = statcache_for(e, root);
    if (dep != NULL) {
        char ks[KILN_DIGEST_STR_MAX];
        hash_str(&h, "stage");
        hash_str(&h, kiln_digest_str(&dep->key, ks));
        for (size_t i = 0; i < paths.n; i++)
            hash_str(&h, paths.v[i][0] ? paths.v[i] : ".");
    }
    c.hash = &h;
    c.statcache = sc;
    c.ignore = ign;
    for (size_t i = 0; i < srcs.n; i++) {
        hash_str(&h, srcs.v[i]);
        /* "." was read as the root itself: hashed as "" */
        if (hash_source(&c, rootfd, canon.v[i], strcmp(srcs.v[i], ".") == 0 ? "" : srcs.v[i], err) <
            0)
            goto out;
    }
    for (size_t i = 0; i < urls.n; i++) {
        /* with --checksum the key needs no download; else the content decides */
        hash_str(&h, urls.v[i]);
        if (checksum != NULL) {
            hash_str(&h, checksum); /* downloaded on a miss only */
            continue;
        }
        {
            kiln_digest_t d;
            char ds[KILN_DIGEST_STR_MAX];
            char *file = NULL;
            if (fetch_url(e, urls.v[i], NULL, &file, &d, err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            strv_add(&url_files, file);
            hash_str(&h, kiln_digest_str(&d, ds));
        }
    }
    for (size_t i = 0; i < n->n_heredocs; i++) {
        char *body = kiln_df_heredoc_content(&n->heredocs[i]);
        if (n->heredocs[i].expand) {
            /* unquoted delimiter: variables expand, quotes stay as written */
            char *x = NULL;
            int r = expand_raw(e, st, body, &x, err);
            free(body);
            if (r < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            body = x;
        }
        hash_str(&h, body);
        strv_add(&bodies, body);
    }
    if (sc != NULL)
        statcache_done(e, st->step, sc);
    kiln_sha256_final(&h, &content);
    kiln_digest_str(&content, cs);
    {
        kiln_buf_t b;
        kiln_buf_init(&b, 0);
        kiln_buf_appendf(&b, NULL, "%s", is_add ? "ADD" : "COPY");
        for (size_t i = 0; i < n->n_flags; i++)
            if (strncmp(n->flags[i], "--from=", 7) == 0 ||
                strncmp(n->flags[i], "--chown", 7) == 0 || strncmp(n->flags[i], "--chmod", 7) == 0)
                kiln_buf_appendf(&b, NULL, " %s", n->flags[i]);
        for (size_t i = 0; i < n->n_args; i++)
            kiln_buf_appendf(&b, NULL, " %s", n->args[i]);
        kiln_buf_appendf(&b, NULL, " # buildkit");
        created_by = kiln_buf_steal(&b, NULL);
    }
    {
        _cleanup_free_ char *kt = kiln_xasprintf("%s\ndest:%s\nowner:%ld:%ld:%lo\ncontent:%s",
                                                 created_by, dest, c.uid, c.gid, c.mode, cs);
        key_step(&key, kt, NULL);
    }
    if (cache_lookup(e, st, &key, &hit, err) < 0)
        goto out;
    if (hit) {
        st->key = key;
        ret = 1;
        goto out;
    }

    /* 2. a miss: the layer's tree in a staging dir, then the layer */
    c.hash = NULL;
    c.statcache = NULL;
    c.quiet = dep == NULL; /* the hash pass reported what it skipped */
    if (dep != NULL) {
        if (stage_sources_root(e, dep, &paths, &root, &view, err) < 0 ||
            kiln_pathres_open_root(root, &rootfd, err) < 0 ||
            copy_sources(n, rootfd, NULL, &paths, &srcs, &canon, err) < 0 ||
            copy_check_dest(n, is_add, dir_dest, srcs.n + urls.n, err) < 0)
            goto out;
        c.nlink_bias = 1; /* a view or rootfs of hardlinks to the stage's layer dirs */
    }
    if (kiln_fs_mkdtemp(e->work, "copy-", &staging, err) < 0 || chmod(staging, 0755) < 0 ||
        kiln_pathres_open_root(staging, &sroot, err) < 0)
        goto out;
    c.dest_root = sroot;
    /* the destination as the image sees it: links on the way followed inside
     * the stage's tree (absolute ones from its root), never on the host */
    if (stage_resolve(e, st, dest, KILN_PATHRES_MISSING_OK, &dest_in, NULL, err) < 0) {
        kiln_df_error(n, err, "destination %s: %s", dest, err->msg);
        goto out;
    }
    for (size_t i = 0; i < srcs.n; i++) {
        const char *base = strrchr(srcs.v[i], '/') ? strrchr(srcs.v[i], '/') + 1 : srcs.v[i];
        const char *rel = canon.v[i] + 1;
        _cleanup_close_ int sdir = -1;
        _cleanup_close_ int ddir = -1;
        _cleanup_free_ char *drel = NULL;
        const char *name;
        struct stat sst;
        bool done = false;
        if (source_at(rootfd, canon.v[i], &sdir, &name, err) < 0)
            goto out;
        if (fstatat(sdir, name, &sst, AT_SYMLINK_NOFOLLOW) < 0) {
            kiln_error_set(err, errno, "stat %s", srcs.v[i]);
            goto out;
        }
        if (S_ISDIR(sst.st_mode)) { /* a directory: its contents go to dest */
            _cleanup_close_ int sub =
                openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            _cleanup_free_ char *dd = kiln_xstrdup(dest_in);
            while (dd[0] && dd[strlen(dd) - 1] == '/')
                dd[strlen(dd) - 1] = '\0';
            if (sub < 0) {
                kiln_error_set(err, errno, "open directory %s", srcs.v[i]);
                goto out;
            }
            if (mkdirs_in(staging, dest_in, &ddir, err) < 0 ||
                copy_dir(&c, sub, rel, ddir, dd, &sst, err) < 0)
                goto out;
            continue;
        }
        if (is_add && S_ISREG(sst.st_mode)) {
            _cleanup_close_ int in =
                openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (in >= 0 && (add_archive(e, &c, in, staging, dest_in, &done, err) < 0 || done)) {
                if (!done)
                    goto out;
                continue;
            }
        }
        if (staging_slot(staging, dest_in, dir_dest, base, &ddir, &drel, err) < 0 ||
            copy_entry(&c, sdir, name, rel, ddir, drel, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < urls.n; i++) {
        _cleanup_free_ char *base = url_basename(urls.v[i]);
        _cleanup_free_ char *drel = NULL;
        _cleanup_close_ int ddir = -1;
        const char *file = i < url_files.n ? url_files.v[i] : NULL;
        char *fetched = NULL;
        kiln_digest_t d;
        if (file == NULL) {
            if (fetch_url(e, urls.v[i], checksum, &fetched, &d, err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            strv_add(&url_files, fetched);
            file = fetched;
        }
        if (staging_slot(staging, dest_in, dir_dest, base, &ddir, &drel, err) < 0)
            goto out;
        (void)unlinkat(ddir, last_name(drel), 0);
        if (renameat(AT_FDCWD, file, ddir, last_name(drel)) < 0) {
            kiln_error_set(err, errno, "rename %s", drel);
            goto out;
        }
        /* BuildKit gives downloaded files mode 0600 unless --chmod */
        (void)fchmodat(ddir, last_name(drel), c.mode >= 0 ? (mode_t)c.mode : 0600, 0);
        (void)fchownat(ddir, last_name(drel), c.uid >= 0 ? (uid_t)c.uid : 0,
                       c.gid >= 0 ? (gid_t)c.gid : 0, AT_SYMLINK_NOFOLLOW);
    }
    for (size_t i = 0; i < n->n_heredocs; i++) {
        _cleanup_free_ char *drel = NULL;
        _cleanup_close_ int ddir = -1;
        _cleanup_close_ int fd = -1;
        if (staging_slot(staging, dest_in, dir_dest, n->heredocs[i].name, &ddir, &drel, err) < 0)
            goto out;
        (void)unlinkat(ddir, last_name(drel), 0);
        fd = openat(ddir, last_name(drel), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        if (fd < 0) {
            kiln_error_set(err, errno, "create %s", drel);
            goto out;
        }
        if (kiln_fs_write_all(fd, bodies.v[i], strlen(bodies.v[i]), err) < 0)
            goto out;
        (void)fchmod(fd, c.mode >= 0 ? (mode_t)c.mode : 0644);
        if (c.uid >= 0)
            (void)fchown(fd, (uid_t)c.uid, (gid_t)c.gid);
    }
    if (commit_step(e, st, staging, 0, created_by, &key, err) < 0)
        goto out;
    ret = 0;
out:
    copy_ctx_clear(&c);
    kiln_sha256_dispose(&h);
    kiln_statcache_free(sc);
    if (staging)
        kiln_fs_rm_rf(staging, NULL);
    if (view)
        kiln_fs_rm_rf(view, NULL);
    strv_clear(&srcs);
    strv_clear(&canon);
    strv_clear(&paths);
    strv_clear(&bodies);
    strv_clear(&urls);
    for (size_t i = 0; i < url_files.n; i++)
        if (url_files.v[i])
            unlink(url_files.v[i]);
    strv_clear(&url_files);
    return ret;
}

/* ---------------------------------------------------------------- metadata */

/* WORKDIR: sets WorkingDir and creates the directory (a layer) when missing. */
static int do_workdir(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    _cleanup_free_ char *w = NULL;
    _cleanup_free_ char *full = NULL;
    _cleanup_free_ char *hist = NULL;
    _cleanup_free_ char *staging = NULL;
    _cleanup_free_ char *canon = NULL;
    _cleanup_free_ char *dir = NULL;
    kiln_digest_t key = st->key;
    bool exists = false, hit = false;
    layer_t l;
    int ret = -1;

    if (n->n_args != 1)
        return kiln_df_error(n, err, "WORKDIR requires exactly one argument");
    if (expand(e, st, n->args[0], NULL, &w, err) < 0)
        return kiln_df_error(n, err, "%s", err->msg);
    full = kiln_df_workdir(st->config, w);
    kiln_image_config_set_string(st->config, "WorkingDir", full);
    hist = kiln_xasprintf("WORKDIR %s", full);
    /* the directory as the image sees it (links followed inside its tree) */
    if (strcmp(full, "/") != 0 &&
        stage_resolve(e, st, full, KILN_PATHRES_MISSING_OK, &canon, &dir, err) < 0)
        return kiln_df_error(n, err, "WORKDIR %s: %s", full, err->msg);
    exists = dir != NULL;
    if (exists || strcmp(full, "/") == 0) {
        add_history(e, st, hist, 1);
        key_step(&st->key, hist, NULL);
        return 0;
    }
    key_step(&key, hist, "mkdir");
    if (cache_lookup(e, st, &key, &hit, err) < 0)
        return -1;
    if (hit) {
        st->key = key;
        return 1;
    }
    if (kiln_fs_mkdtemp(e->work, "wd-", &staging, err) < 0)
        return -1;
    if (mkdirs_in(staging, canon, NULL, err) < 0 || commit_layer(e, st, staging, 0, &l, err) < 0)
        goto out;
    add_history(e, st, hist, 0);
    st->key = key;
    ret = cache_store(e, st, &key, &l, err);
out:
    kiln_fs_rm_rf(staging, NULL);
    return ret;
}

/* ARG: declares build arguments in the stage's scope (with --build-arg
 * overrides and global ARG values carried over). */
static int do_arg(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_buf_t *hist,
                  kiln_error_t *err)
{
    kiln_buf_appendf(hist, NULL, "ARG");
    for (size_t i = 0; i < n->n_args; i++) {
        _cleanup_free_ char *w = kiln_xstrdup(n->args[i]);
        char *eq = strchr(w, '=');
        const char *ov;
        _cleanup_free_ char *val = NULL;
        if (eq) {
            *eq = '\0';
            if (expand(e, st, eq + 1, NULL, &val, err) < 0)
                return kiln_df_error(n, err, "%s", err->msg);
        }
        ov = build_arg(e, w);
        if (ov == NULL && val == NULL) {
            /* declared without a value: a global ARG value carries over */
            const char *m = kv_get(&e->meta_args, w);
            if (m != NULL)
                val = kiln_xstrdup(m);
        }
        if (ov != NULL || val != NULL) {
            kv_set(&st->args, w, ov ? ov : val);
            kiln_buf_appendf(hist, NULL, " %s=%s", w, ov ? ov : val);
        } else {
            kiln_buf_appendf(hist, NULL, " %s", w);
        }
    }
    return 0;
}

typedef struct expand_ctx {
    engine_t *e;
    stage_t *st;
} expand_ctx_t;

static int expand_cb(void *ctx, const char *word, char **out, kiln_error_t *err)
{
    expand_ctx_t *x = ctx;
    return expand(x->e, x->st, word, NULL, out, err);
}

/* Instructions that only change the config (one history entry, no layer). */
static int do_meta(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    kiln_buf_t hist;
    _cleanup_free_ char *text = NULL;
    expand_ctx_t x = {e, st};

    if (strcmp(n->keyword, "arg") == 0) {
        kiln_buf_init(&hist, 0);
        if (do_arg(e, st, n, &hist, err) < 0) {
            kiln_buf_free(&hist);
            return -1;
        }
        text = kiln_buf_steal(&hist, NULL);
    } else if (kiln_df_apply_config(st->config, n, expand_cb, &x, &text, err) < 0) {
        return -1;
    }
    add_history(e, st, text, 1);
    {
        /* the config changed: chain the key so later steps see it */
        char *s = json_dumps(kiln_image_config_obj(st->config), JSON_COMPACT | JSON_SORT_KEYS);
        key_step(&st->key, text, s);
        free(s);
    }
    return 0;
}

/* ---------------------------------------------------------------- stages */

static char *upper_kw(const char *kw)
{
    char *u = kiln_xstrdup(kw);
    for (char *p = u; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    return u;
}

static void record_step(engine_t *e, const char *name, double secs, int cached)
{
    kiln_build_result_t *r = e->res;
    pthread_mutex_lock(&e->lock);
    r->steps = kiln_xrealloc(r->steps, (r->n_steps + 1) * sizeof(*r->steps));
    r->steps[r->n_steps].name = kiln_xstrdup(name);
    r->steps[r->n_steps].seconds = secs;
    r->steps[r->n_steps].cached = cached;
    r->n_steps++;
    pthread_mutex_unlock(&e->lock);
}

/* Claims a stage for this thread. Returns 1 when it must be built by the
 * caller, 0 when it is already built (waiting while another thread builds
 * it), <0 on a failed stage or a dependency cycle. */
static int claim_stage(engine_t *e, stage_t *st, kiln_error_t *err)
{
    int r;
    pthread_mutex_lock(&e->lock);
    while (st->state == 1 && !pthread_equal(st->builder, pthread_self()))
        pthread_cond_wait(&e->cond, &e->lock);
    if (st->state == 2) {
        r = 0;
    } else if (st->state == 3) {
        r = kiln_error_set(err, 0, "stage %s failed", st->name ? st->name : "(unnamed)");
    } else if (st->state == 1) {
        r = kiln_error_set(err, 0, "Dockerfile:%d: circular dependency between stages",
                           e->df->nodes[st->first].start_line);
    } else {
        st->state = 1;
        st->builder = pthread_self();
        r = 1;
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

static void release_stage(engine_t *e, stage_t *st, bool ok)
{
    pthread_mutex_lock(&e->lock);
    st->state = ok ? 2 : 3;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static int dispatch(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    if (strcmp(n->keyword, "run") == 0)
        return do_run(e, st, n, err);
    if (strcmp(n->keyword, "copy") == 0 || strcmp(n->keyword, "add") == 0)
        return do_copy(e, st, n, n->keyword[0] == 'a', err);
    if (strcmp(n->keyword, "workdir") == 0)
        return do_workdir(e, st, n, err);
    return do_meta(e, st, n, err);
}

/* Runs the base image's ONBUILD triggers right after FROM (as BuildKit does)
 * and clears them from the new image. */
static int run_onbuild(engine_t *e, stage_t *st, kiln_error_t *err)
{
    json_t *cfg = kiln_image_config_obj(st->config);
    json_t *triggers = json_deep_copy(json_object_get(cfg, "OnBuild"));
    size_t i;
    json_t *t;
    int ret = 0;

    json_object_del(cfg, "OnBuild");
    json_array_foreach(triggers, i, t)
    {
        const char *text = json_string_value(t);
        kiln_dockerfile_t *df = NULL;
        if (text == NULL)
            continue;
        {
            _cleanup_free_ char *msg = kiln_xasprintf("ONBUILD %s", text);
            emit_event(e, st->step, "log", msg, -1);
        }
        if (kiln_dockerfile_parse(text, strlen(text), "ONBUILD", &df, err) < 0) {
            ret = -1;
            break;
        }
        for (size_t k = 0; k < df->n_nodes && ret >= 0; k++) {
            const char *kw = df->nodes[k].keyword;
            if (strcmp(kw, "from") == 0 || strcmp(kw, "onbuild") == 0 ||
                strcmp(kw, "maintainer") == 0)
                ret = kiln_error_set(err, 0, "ONBUILD trigger %s is not allowed: %s", kw, text);
            else
                ret = dispatch(e, st, &df->nodes[k], err);
        }
        kiln_dockerfile_free(df);
        if (ret < 0) {
            kiln_error_prefix(err, "ONBUILD trigger of the base image");
            break;
        }
    }
    json_decref(triggers);
    return ret < 0 ? -1 : 0;
}

static int run_stage(engine_t *e, stage_t *st, kiln_error_t *err)
{
    size_t total;
    _cleanup_free_ char *sname = NULL;
    int c = claim_stage(e, st, err);

    if (c <= 0)
        return c;
    total = st->end - st->first;
    sname = st->name ? kiln_xstrdup(st->name) : kiln_xasprintf("stage-%d", st->index);
    for (size_t i = st->first; i < st->end; i++) {
        const kiln_df_node_t *n = &e->df->nodes[i];
        _cleanup_free_ char *kwu = upper_kw(n->keyword);
        _cleanup_free_ char *title = NULL;
        const char *text = n->original;
        double t0 = now_s();
        int r;
        while (*text == ' ' || *text == '\t')
            text++;
        text += strlen(n->keyword);
        while (*text == ' ' || *text == '\t')
            text++;
        title = kiln_xasprintf("[%s %zu/%zu] %s %s", sname, i - st->first + 1, total, kwu, text);
        pthread_mutex_lock(&e->lock);
        st->step = ++e->step_no;
        pthread_mutex_unlock(&e->lock);
        emit_event(e, st->step, "start", title, -1);
        if (i == st->first) {
            r = do_from(e, st, n, err);
            if (r >= 0 &&
                json_array_size(json_object_get(kiln_image_config_obj(st->config), "OnBuild")) > 0)
                r = run_onbuild(e, st, err);
        } else {
            r = dispatch(e, st, n, err);
        }
        if (r < 0) {
            emit_event(e, st->step, "error", err->msg, now_s() - t0);
            release_stage(e, st, false);
            return -1;
        }
        if (r == 1)
            emit_event(e, st->step, "cached", NULL, now_s() - t0);
        else
            emit_event(e, st->step, "done", NULL, now_s() - t0);
        record_step(e, title, now_s() - t0, r == 1);
    }
    release_stage(e, st, true);
    return 0;
}

/* The stage a FROM / --from / from= names, when it is an earlier stage.
 * Names with variables are expanded with the global ARGs. */
static stage_t *stage_ref(engine_t *e, const stage_t *st, const char *ref)
{
    _cleanup_free_ char *x = NULL;
    if (strchr(ref, '$') != NULL) {
        stage_t meta = {.args = e->meta_args, .config = json_object()};
        int r = expand(e, &meta, ref, NULL, &x, NULL);
        json_decref(meta.config);
        if (r < 0)
            return NULL;
        ref = x;
    }
    return find_stage(e, ref, (size_t)st->index);
}

/* Marks in deps[] the earlier stages st reads from (FROM, COPY/ADD --from,
 * RUN --mount from=). */
static void stage_deps(engine_t *e, const stage_t *st, bool *deps)
{
    for (size_t i = st->first; i < st->end; i++) {
        const kiln_df_node_t *n = &e->df->nodes[i];
        stage_t *d = NULL;
        if (i == st->first && n->n_args > 0 && (d = stage_ref(e, st, n->args[0])) != NULL)
            deps[d->index] = true;
        for (size_t k = 0; k < n->n_flags; k++) {
            const char *f = n->flags[k];
            const char *from = NULL;
            _cleanup_free_ char *tmp = NULL;
            if (strncmp(f, "--from=", 7) == 0) {
                from = f + 7;
            } else if (strncmp(f, "--mount=", 8) == 0 && (from = strstr(f, "from=")) != NULL) {
                tmp = kiln_xstrndup(from + 5, strcspn(from + 5, ","));
                from = tmp;
            }
            if (from != NULL && (d = stage_ref(e, st, from)) != NULL)
                deps[d->index] = true;
        }
    }
}

static void mark_needed(engine_t *e, const stage_t *st, bool *needed, bool **deps)
{
    if (needed[st->index])
        return;
    needed[st->index] = true;
    for (size_t i = 0; i < e->n_stages; i++)
        if (deps[st->index][i])
            mark_needed(e, &e->stages[i], needed, deps);
}

typedef struct stage_job {
    engine_t *e;
    stage_t *st;
    int rc;
} stage_job_t;

static void *stage_thread(void *arg)
{
    stage_job_t *j = arg;
    j->rc = run_stage(j->e, j->st, &j->st->err);
    return NULL;
}

/* Builds the stages the target needs, independent ones in parallel (one
 * thread per ready stage, in waves), then the target. */
static int run_graph(engine_t *e, stage_t *target, kiln_error_t *err)
{
    size_t n = e->n_stages;
    bool **deps = kiln_xzalloc(n * sizeof(bool *));
    bool *needed = kiln_xzalloc(n * sizeof(bool));
    int ret = 0;

    for (size_t i = 0; i < n; i++) {
        deps[i] = kiln_xzalloc(n * sizeof(bool));
        stage_deps(e, &e->stages[i], deps[i]);
    }
    mark_needed(e, target, needed, deps);
    for (;;) {
        stage_job_t jobs[MAX_PARALLEL];
        pthread_t th[MAX_PARALLEL];
        size_t nj = 0;
        for (size_t i = 0; i < n && nj < MAX_PARALLEL; i++) {
            bool ready = needed[i] && e->stages[i].state == 0 && &e->stages[i] != target;
            for (size_t k = 0; ready && k < n; k++)
                if (deps[i][k] && e->stages[k].state != 2)
                    ready = false;
            if (ready)
                jobs[nj++] = (stage_job_t){.e = e, .st = &e->stages[i]};
        }
        if (nj == 0)
            break;
        if (nj == 1) {
            stage_thread(&jobs[0]);
        } else {
            for (size_t k = 0; k < nj; k++)
                if (pthread_create(&th[k], NULL, stage_thread, &jobs[k]) != 0)
                    stage_thread(&jobs[k]), th[k] = 0;
            for (size_t k = 0; k < nj; k++)
                if (th[k] != 0)
                    pthread_join(th[k], NULL);
        }
        for (size_t k = 0; k < nj; k++) {
            if (jobs[k].rc < 0 && ret == 0) {
                *err = jobs[k].st->err;
                ret = -1;
            }
        }
        if (ret < 0)
            break;
    }
    for (size_t i = 0; i < n; i++)
        free(deps[i]);
    free(deps);
    free(needed);
    if (ret < 0)
        return ret;
    return run_stage(e, target, err);
}

static int split_stages(engine_t *e, kiln_error_t *err)
{
    bool seen_from = false;
    /* BuildKit's automatic platform ARGs (global scope; a stage declares them
     * with a bare ARG to use them) */
    static const char *const platform_args[][2] = {{"TARGETPLATFORM", "linux/amd64"},
                                                   {"TARGETOS", "linux"},
                                                   {"TARGETARCH", "amd64"},
                                                   {"TARGETVARIANT", ""},
                                                   {"BUILDPLATFORM", "linux/amd64"},
                                                   {"BUILDOS", "linux"},
                                                   {"BUILDARCH", "amd64"},
                                                   {"BUILDVARIANT", ""}};
    for (size_t i = 0; i < sizeof(platform_args) / sizeof(platform_args[0]); i++)
        kv_set(&e->meta_args, platform_args[i][0], platform_args[i][1]);
    for (size_t i = 0; i < e->df->n_nodes; i++) {
        const kiln_df_node_t *n = &e->df->nodes[i];
        if (strcmp(n->keyword, "from") == 0) {
            stage_t *st;
            if (e->n_stages >= MAX_STAGES)
                return kiln_error_set(err, 0, "Dockerfile:%d: too many stages", n->start_line);
            if (e->n_stages > 0)
                e->stages[e->n_stages - 1].end = i;
            st = &e->stages[e->n_stages];
            memset(st, 0, sizeof(*st));
            st->first = i;
            st->end = e->df->n_nodes;
            st->index = (int)e->n_stages;
            st->e = e;
            if (n->n_args == 3 && strcasecmp(n->args[1], "as") == 0) {
                st->name = kiln_xstrdup(n->args[2]);
                for (char *p = st->name; *p; p++)
                    *p = (char)tolower_ascii(*p);
                for (size_t k = 0; k < e->n_stages; k++)
                    if (e->stages[k].name && strcmp(e->stages[k].name, st->name) == 0)
                        return kiln_df_error(n, err, "duplicate stage name %s", st->name);
            }
            e->n_stages++;
            seen_from = true;
        } else if (!seen_from) {
            if (strcmp(n->keyword, "arg") != 0)
                return kiln_df_error(n, err, "no build stage in current context");
            for (size_t k = 0; k < n->n_args; k++) {
                _cleanup_free_ char *w = kiln_xstrdup(n->args[k]);
                char *eq = strchr(w, '=');
                const char *ov;
                if (eq)
                    *eq = '\0';
                ov = build_arg(e, w);
                if (ov)
                    kv_set(&e->meta_args, w, ov);
                else if (eq) {
                    stage_t meta = {.args = e->meta_args, .config = json_object()};
                    _cleanup_free_ char *v = NULL;
                    int r = expand(e, &meta, eq + 1, NULL, &v, err);
                    json_decref(meta.config);
                    if (r < 0)
                        return kiln_df_error(n, err, "%s", err->msg);
                    kv_set(&e->meta_args, w, v);
                }
            }
        } else if (!kiln_df_known_keyword(n->keyword)) {
            return kiln_df_error(n, err, "unknown instruction: %s", n->keyword);
        }
    }
    if (e->n_stages == 0)
        return kiln_error_set(err, 0, "Dockerfile: no FROM instruction");
    return 0;
}

static void stage_clear(stage_t *st)
{
    free(st->name);
    json_decref(st->config);
    for (size_t i = 0; i < st->n_layers; i++)
        kiln_descriptor_clear(&st->layers[i].desc);
    free(st->layers);
    strv_clear(&st->args);
    free(st->rootfs);
    for (size_t i = 0; i < st->tail_n; i++)
        free(st->tail[i]);
}

static int registry_client(engine_t *e, kiln_error_t *err)
{
    int r = 0;
    pthread_mutex_lock(&e->lock);
    if (e->registry == NULL) {
        kiln_registry_opts_t o;
        kiln_registry_opts_init(&o);
        o.insecure = e->req->insecure_registries;
        o.mirrors = e->req->mirrors;
        o.policy = e->registry_policy;
        if (e->req->registry_config)
            o.config_file = e->req->registry_config;
        r = kiln_registry_new(&o, &e->registry, err);
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

/* Imports the cache entries of a registry cache image (pulled into the store
 * with all its layers) as local entries. A missing image is not an error. */
static int cache_import(engine_t *e, const char *ref, kiln_error_t *err)
{
    kiln_registry_image_t ri = {0};
    kiln_error_t perr = {0};
    _cleanup_free_ char *body = NULL;
    size_t len, i = 0;
    json_t *cfg, *map, *entry;
    const char *key;

    if (registry_client(e, err) < 0)
        return -1;
    if (build_pull(e, ref, &ri, &perr) < 0) {
        emit(e, "WARNING: cache from %s not imported: %s", ref, perr.msg);
        return 0;
    }
    if (kiln_store_read_blob(e->store, &ri.parsed->config.digest, KILN_IMAGE_CONFIG_MAX, &body,
                             &len, err) < 0) {
        kiln_registry_image_clear(&ri);
        return -1;
    }
    kiln_registry_image_clear(&ri);
    cfg = json_loadb(body, len, 0, NULL);
    map = json_object_get(cfg, "kiln.cache.v1");
    json_object_foreach(map, key, entry)
    {
        kiln_digest_t kd, have;
        kiln_descriptor_t desc = {0};
        _cleanup_free_ char *name = NULL;
        if (kiln_digest_parse_hex(key, &kd, NULL) < 0)
            continue;
        name = cache_ref(e, &kd);
        if (kiln_store_ref_get(e->store, name, &have, NULL) == 1)
            continue; /* a local entry wins */
        {
            kiln_descriptor_t ld = {0};
            json_t *layer = json_object_get(entry, "layer");
            bool foreign = false;
            if (json_is_object(layer) &&
                kiln_descriptor_from_json(layer, "layer", &ld, NULL) == 0) {
                _cleanup_free_ char *lref = kiln_xasprintf("%s.layer", name);
                /* an entry may only name a layer this namespace fetched (the cache
                 * image's own) or built, not any blob of the shared store */
                foreign = !ns_knows(e, &ld.digest);
                if (!foreign)
                    kiln_store_ref_set(e->store, lref, &ld.digest, NULL);
            }
            kiln_descriptor_clear(&ld);
            if (foreign)
                continue;
        }
        if (kiln_image_store_put(e->store, entry, "application/vnd.kiln.cache.v1+json", &desc,
                                 err) < 0 ||
            kiln_store_ref_set(e->store, name, &desc.digest, err) < 0) {
            kiln_descriptor_clear(&desc);
            json_decref(cfg);
            return -1;
        }
        kiln_descriptor_clear(&desc);
        i++;
    }
    json_decref(cfg);
    emit(e, "imported %zu cache entries from %s", i, ref);
    return 0;
}

/* Pushes this build's cache entries (and their layers) as one image: an OCI
 * manifest whose config is a valid image config carrying the entries under
 * "kiln.cache.v1", so any registry (ECR included) stores it. */
static int cache_export(engine_t *e, const stage_t *target, kiln_error_t *err)
{
    json_t *cfg = kiln_image_config_new("amd64", "linux");
    json_t *map = json_object();
    kiln_descriptor_t *layers = NULL, cdesc = {0}, mdesc = {0};
    size_t nl = 0;
    json_t *man = NULL;
    int ret = -1;
    const char *refs[1] = {e->req->cache_to};

    for (size_t i = 0; i < e->cache_used.n; i++) {
        int sidx = -1;
        char es[KILN_DIGEST_STR_MAX], kh[80];
        kiln_digest_t ed;
        _cleanup_free_ char *body = NULL;
        size_t len;
        json_t *entry, *layer;
        if (sscanf(e->cache_used.v[i], "%d %71s %79s", &sidx, es, kh) != 3 ||
            (!e->req->cache_to_max && sidx != target->index) ||
            kiln_digest_parse(es, &ed, NULL) < 0 ||
            kiln_store_read_blob(e->store, &ed, 0, &body, &len, NULL) < 0)
            continue;
        entry = json_loadb(body, len, 0, NULL);
        if (entry == NULL)
            continue;
        layer = json_object_get(entry, "layer");
        if (json_is_object(layer)) {
            kiln_descriptor_t d = {0};
            bool dup = false;
            if (kiln_descriptor_from_json(layer, "layer", &d, NULL) == 0) {
                for (size_t k = 0; k < nl && !dup; k++)
                    dup = kiln_digest_equal(&layers[k].digest, &d.digest);
                if (!dup) {
                    const char *diff = json_string_value(json_object_get(entry, "diff_id"));
                    kiln_digest_t dd;
                    layers = kiln_xrealloc(layers, (nl + 1) * sizeof(*layers));
                    layers[nl++] = d;
                    if (diff && kiln_digest_parse(diff, &dd, NULL) == 0)
                        kiln_image_config_add_diff_id(cfg, &dd);
                } else {
                    kiln_descriptor_clear(&d);
                }
            }
        }
        json_object_set_new(map, kh, entry);
    }
    json_object_set_new(cfg, "kiln.cache.v1", map);
    if (kiln_image_store_put(e->store, cfg, KILN_MT_OCI_CONFIG, &cdesc, err) < 0)
        goto out;
    man = kiln_image_manifest_new(&cdesc, layers, nl, NULL);
    if (kiln_image_store_put(e->store, man, KILN_MT_OCI_MANIFEST, &mdesc, err) < 0)
        goto out;
    if (registry_client(e, err) < 0)
        goto out;
    {
        kiln_blob_source_t src = kiln_registry_source_store(e->store);
        if (kiln_registry_push(e->registry, &src, &mdesc, refs, 1, NULL, NULL, err) < 0)
            goto out;
    }
    emit(e, "exported %zu cache entries (%zu layers) to %s", json_object_size(map), nl,
         e->req->cache_to);
    ret = 0;
out:
    for (size_t i = 0; i < nl; i++)
        kiln_descriptor_clear(&layers[i]);
    free(layers);
    kiln_descriptor_clear(&cdesc);
    kiln_descriptor_clear(&mdesc);
    json_decref(man);
    json_decref(cfg);
    if (ret < 0)
        kiln_error_prefix(err, "exporting the cache to %s", e->req->cache_to);
    return ret;
}

static int finish_image(engine_t *e, stage_t *st, kiln_build_result_t *res, kiln_error_t *err)
{
    kiln_descriptor_t cfgd = {0};
    kiln_descriptor_t *layers = kiln_xzalloc((st->n_layers + 1) * sizeof(kiln_descriptor_t));
    json_t *man;
    int r;

    /* One time for everything this build added: SOURCE_DATE_EPOCH, else the
     * newest build time of its layers, so a fully cached rebuild is identical. */
    {
        time_t t = e->have_sde ? e->created : (e->stamp ? e->stamp : e->created);
        char buf[64];
        struct tm tm;
        size_t i;
        json_t *h;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_array_foreach(json_object_get(st->config, "history"), i, h)
        {
            if (json_object_get(h, "created") == NULL)
                json_object_set_new(h, "created", json_string(buf));
        }
        json_object_set_new(st->config, "created", json_string(buf));
    }
    for (size_t i = 0; i < e->req->n_labels; i++) {
        const char *kv = e->req->labels[i];
        const char *eq = strchr(kv, '=');
        _cleanup_free_ char *k = kiln_xstrndup(kv, eq ? (size_t)(eq - kv) : strlen(kv));
        kiln_image_config_set_label(st->config, k, eq ? eq + 1 : "");
    }
    /* diff_ids must list exactly the layers (a cache hit restored them) */
    {
        json_t *diffs = json_array();
        char ds[KILN_DIGEST_STR_MAX];
        for (size_t i = 0; i < st->n_layers; i++)
            json_array_append_new(diffs, json_string(kiln_digest_str(&st->layers[i].diff_id, ds)));
        json_object_set_new(json_object_get(st->config, "rootfs"), "diff_ids", diffs);
    }
    if (kiln_image_store_put(e->store, st->config, KILN_MT_OCI_CONFIG, &cfgd, err) < 0) {
        free(layers);
        return -1;
    }
    for (size_t i = 0; i < st->n_layers; i++)
        layers[i] = st->layers[i].desc;
    man = kiln_image_manifest_new(&cfgd, layers, st->n_layers, NULL);
    r = kiln_image_store_put(e->store, man, KILN_MT_OCI_MANIFEST, &res->manifest, err);
    json_decref(man);
    res->config_digest = cfgd.digest;
    kiln_descriptor_clear(&cfgd);
    if (r < 0) {
        free(layers);
        return -1;
    }
    res->layers = kiln_xzalloc((st->n_layers + 1) * sizeof(kiln_descriptor_t));
    for (size_t i = 0; i < st->n_layers; i++)
        kiln_descriptor_copy(&res->layers[i], &st->layers[i].desc);
    res->n_layers = st->n_layers;
    free(layers);
    {
        /* pin the result so a prune keeps it */
        char ds[KILN_DIGEST_STR_MAX];
        _cleanup_free_ char *ref =
            kiln_xasprintf("build/%s", strchr(kiln_digest_str(&res->manifest.digest, ds), ':') + 1);
        kiln_store_ref_set(e->store, ref, &res->manifest.digest, NULL);
    }
    return 0;
}

/* path (absolute or relative to the working directory) as a path inside
 * dir, compared lexically (no link on the way is followed); NULL when it is
 * not under dir. */
static char *path_under(const char *dir, const char *path)
{
    char cwd[PATH_MAX];
    _cleanup_free_ char *d = NULL;
    _cleanup_free_ char *p = NULL;
    size_t n;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    d = dir[0] == '/' ? kiln_xstrdup(dir) : kiln_xasprintf("%s/%s", cwd, dir);
    p = path[0] == '/' ? kiln_xstrdup(path) : kiln_xasprintf("%s/%s", cwd, path);
    n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = '\0';
    if (strncmp(p, d, n) != 0 || p[n] != '/')
        return NULL;
    return kiln_xstrdup(p + n + 1);
}

/* Reads and parses the Dockerfile: CONTEXT/Dockerfile or -f FILE. One inside
 * the context is opened inside it (a link in it resolved there, never to a
 * host file); one elsewhere inside its own directory. *rel_out is its path
 * inside *dir_out (-1: the context; else an fd the caller closes), or NULL
 * when it came from stdin. */
static int load_dockerfile(const kiln_build_request_t *req, int ctxfd, kiln_dockerfile_t **df,
                           int *dir_out, char **rel_out, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *rel = NULL;
    _cleanup_close_ int dirfd = -1;
    size_t len = 0;
    int r;
    *rel_out = NULL;
    *dir_out = -1;
    if (req->dockerfile_text != NULL)
        return kiln_dockerfile_parse(req->dockerfile_text, req->dockerfile_len, "Dockerfile", df,
                                     err);
    rel = req->dockerfile_path ? path_under(req->context_dir, req->dockerfile_path)
                               : kiln_xstrdup("Dockerfile");
    if (rel != NULL) {
        r = kiln_pathres_read_file(ctxfd, rel, KILN_DOCKERFILE_MAX, &text, &len, err);
    } else {
        _cleanup_free_ char *dir = kiln_xstrdup(req->dockerfile_path);
        char *slash = strrchr(dir, '/');
        const char *base = slash ? req->dockerfile_path + (slash - dir) + 1 : req->dockerfile_path;
        if (slash)
            slash[slash == dir ? 1 : 0] = '\0';
        r = kiln_pathres_open_root(slash ? dir : ".", &dirfd, err);
        if (r == 0)
            r = kiln_pathres_read_file(dirfd, base, KILN_DOCKERFILE_MAX, &text, &len, err);
        rel = kiln_xstrdup(base);
    }
    if (r < 0)
        return kiln_error_prefix(err, "reading the Dockerfile");
    if (kiln_dockerfile_parse(text, len, "Dockerfile", df, err) < 0)
        return -1;
    *rel_out = steal_pointer(&rel);
    *dir_out = steal_fd(&dirfd);
    return 0;
}

int kiln_build_netpolicy(const kiln_build_request_t *req, kiln_build_fetch_t what,
                         kiln_netpolicy_t **out, kiln_error_t *err)
{
    /* the operator names registries on the command line and in the
     * Dockerfiles they build themselves: only link-local and metadata
     * addresses are off limits there; a tenant's everything else is public */
    bool public = what != KILN_BUILD_FETCH_REGISTRY || req->server_mode;

    return kiln_netpolicy_with(public ? KILN_NETPOLICY_PUBLIC : KILN_NETPOLICY_NO_LINK_LOCAL,
                               req->allow_addresses, req->n_allow_addresses, out, err);
}

int kiln_build_run(const kiln_build_request_t *req, kiln_store_t *store, kiln_build_result_t *res,
                   kiln_error_t *err)
{
    engine_t *e = kiln_xzalloc(sizeof(*e));
    _cleanup_free_ char *dfpath = NULL;
    _cleanup_free_ char *tmproot = NULL;
    _cleanup_close_ int ctxfd = -1;
    _cleanup_close_ int dfdir = -1;
    stage_t *target = NULL;
    int ret = -1;
    const char *sde = getenv("SOURCE_DATE_EPOCH");

    memset(res, 0, sizeof(*res));
    e->known_fd = -1;
    e->req = req;
    e->store = store;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->res = res;
    if (kiln_build_netpolicy(req, KILN_BUILD_FETCH_URL, &e->fetch_policy, err) < 0 ||
        kiln_build_netpolicy(req, KILN_BUILD_FETCH_REGISTRY, &e->registry_policy, err) < 0)
        goto out;
    if (kiln_pathres_open_root(req->context_dir, &ctxfd, err) < 0) {
        kiln_error_prefix(err, "the build context");
        goto out;
    }
    if (load_dockerfile(req, ctxfd, &e->df, &dfdir, &dfpath, err) < 0)
        goto out;
    if (kiln_dockerignore_load(ctxfd, dfdir, dfpath, &e->ignore, err) < 0)
        goto out;
    for (size_t i = 0; i < req->n_build_args; i++) {
        const char *a = req->build_args[i];
        const char *eq = strchr(a, '=');
        if (eq) {
            _cleanup_free_ char *k = kiln_xstrndup(a, (size_t)(eq - a));
            kv_set(&e->build_args, k, eq + 1);
        } else if (getenv(a) != NULL) {
            kv_set(&e->build_args, a, getenv(a));
        }
    }
    e->have_sde = 1;
    if (req->source_date_epoch >= 0)
        e->created = (time_t)req->source_date_epoch;
    else if (sde && *sde)
        e->created = (time_t)strtoll(sde, NULL, 10);
    else
        e->created = time(NULL), e->have_sde = 0;
    tmproot = kiln_xasprintf("%s/build/tmp", kiln_store_root(store));
    e->lowers_dir = kiln_xasprintf("%s/build/lowers", kiln_store_root(store));
    if (kiln_fs_mkdir_p(tmproot, 0711, err) < 0 || kiln_fs_mkdir_p(e->lowers_dir, 0755, err) < 0 ||
        kiln_fs_mkdtemp(tmproot, "b-", &e->work, err) < 0)
        goto out;
    /* what a build can write and a later one trusts is kept per namespace */
    if (kiln_cachens_path(kiln_store_root(store), req->cache_namespace, KILN_CACHENS_MOUNTS,
                          &e->mounts_dir, err) < 0 ||
        kiln_cachens_path(kiln_store_root(store), req->cache_namespace, KILN_CACHENS_STATCACHE,
                          &e->statcache_path, err) < 0)
        goto out;
    e->cache_prefix = kiln_cachens_ref_prefix(req->cache_namespace);
    if (req->cache_namespace != NULL) {
        _cleanup_free_ char *known = NULL;
        if (kiln_cachens_path(kiln_store_root(store), req->cache_namespace, KILN_CACHENS_BLOBS,
                              &known, err) < 0)
            goto out;
        /* checked link-free just above; only kiln writes there */
        e->known_fd = open(known, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (e->known_fd < 0) {
            kiln_error_set(err, errno, "open %s", known);
            goto out;
        }
    }
    /* Mount sources (cache dirs, secrets) are opened by the step as its mapped
     * root: the directories above them must be traversable (not listable). */
    {
        const char *dirs[] = {kiln_store_root(store), NULL, tmproot, e->work};
        _cleanup_free_ char *b = kiln_xasprintf("%s/build", kiln_store_root(store));
        dirs[1] = b;
        for (size_t i = 0; i < 4; i++) {
            struct stat sb;
            if (stat(dirs[i], &sb) == 0 && (sb.st_mode & 0111) != 0111 &&
                chmod(dirs[i], (sb.st_mode & 07777) | 0111) < 0) {
                kiln_error_set(err, errno, "chmod %s", dirs[i]);
                goto out;
            }
        }
    }
    if (split_stages(e, err) < 0)
        goto out;
    /* refused entitlements fail the build before any step runs */
    if (kiln_entitlement_check_dockerfile(e->df, req->entitlements, build_is_chroot(req), err) < 0)
        goto out;
    if (req->target && *req->target) {
        target = find_stage(e, req->target, e->n_stages);
        if (target == NULL) {
            kiln_error_set(err, 0, "target stage \"%s\" could not be found", req->target);
            goto out;
        }
    } else {
        target = &e->stages[e->n_stages - 1];
    }
    for (size_t i = 0; i < req->n_cache_from && !req->no_cache; i++)
        if (cache_import(e, req->cache_from[i], err) < 0)
            goto out;
    if (run_graph(e, target, err) < 0)
        goto out;
    if (finish_image(e, target, res, err) < 0)
        goto out;
    if (req->cache_to != NULL && cache_export(e, target, err) < 0)
        goto out;
    ret = 0;
out:
    if (e->work)
        kiln_fs_rm_rf(e->work, NULL);
    free(e->work);
    free(e->lowers_dir);
    free(e->mounts_dir);
    free(e->statcache_path);
    free(e->cache_prefix);
    if (e->known_fd >= 0)
        close(e->known_fd);
    for (size_t i = 0; i < e->n_stages; i++)
        stage_clear(&e->stages[i]);
    strv_clear(&e->meta_args);
    strv_clear(&e->build_args);
    strv_clear(&e->cache_used);
    kiln_dockerfile_free(e->df);
    kiln_dockerignore_free(e->ignore);
    if (e->registry)
        kiln_registry_free(e->registry);
    kiln_netpolicy_free(e->fetch_policy);
    kiln_netpolicy_free(e->registry_policy);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
    if (ret < 0)
        kiln_build_result_clear(res);
    return ret;
}

void kiln_build_result_clear(kiln_build_result_t *res)
{
    kiln_descriptor_clear(&res->manifest);
    for (size_t i = 0; i < res->n_layers; i++)
        kiln_descriptor_clear(&res->layers[i]);
    free(res->layers);
    for (size_t i = 0; i < res->n_steps; i++)
        free(res->steps[i].name);
    free(res->steps);
    memset(res, 0, sizeof(*res));
}

int kiln_build_export_local(kiln_store_t *store, const kiln_build_result_t *res, const char *dest,
                            kiln_error_t *err)
{
    if (kiln_fs_mkdir_p(dest, 0755, err) < 0)
        return -1;
    for (size_t i = 0; i < res->n_layers; i++) {
        _cleanup_close_ int fd = -1;
        kiln_unpack_opts_t o;
        kiln_unpack_opts_init(&o);
        if (kiln_store_open_blob(store, &res->layers[i].digest, &fd, NULL, err) < 0 ||
            kiln_layer_unpack(fd, dest, &o, NULL, err) < 0)
            return kiln_error_prefix(err, "exporting to %s", dest);
    }
    return 0;
}
