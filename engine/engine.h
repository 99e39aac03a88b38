/* kiln — the engine's shared state, internal to the engine folder: the build (engine_t) and its
 * stages (stage_t), small string-vector helpers, and what each engine file offers the
 * others. Only the engine files include it; the public surface is engine/build.h. */
#ifndef KILN_ENGINE_ENGINE_H
#define KILN_ENGINE_ENGINE_H

#include "engine/build.h"
#include "engine/copytree.h"

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
#include "utils/env.h"
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

static inline void strv_add(strv_t *s, char *owned)
{
    s->v = kiln_xrealloc(s->v, (s->n + 2) * sizeof(char *));
    s->v[s->n++] = owned;
    s->v[s->n] = NULL;
}

static inline void strv_clear(strv_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

/* Sets "K=V" in s, replacing an existing K. */
static inline void kv_set(strv_t *s, const char *k, const char *v)
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

static inline const char *kv_get(const strv_t *s, const char *k)
{
    size_t kl = strlen(k);
    for (size_t i = s->n; i > 0; i--)
        if (strncmp(s->v[i - 1], k, kl) == 0 && s->v[i - 1][kl] == '=')
            return s->v[i - 1] + kl + 1;
    return NULL;
}

static inline char tolower_ascii(char c)
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

typedef struct used_args {
    const strv_t *args;
    strv_t used;
} used_args_t;

static inline int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct expand_ctx {
    engine_t *e;
    stage_t *st;
} expand_ctx_t;

/* Where a bind mount's files come from, for the step's cache key. */
typedef struct bind_src {
    stage_t *dep; /* a stage: owned[0] is the path in it, resolved after a miss */
    bool context; /* the build context: owned[0] is the path */
    char *as;     /* context: the source as written (hashed so, as before) */
} bind_src_t;

/* engine/events.c */
void kiln_engine_log(engine_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kiln_engine_event(engine_t *e, int step, const char *event, const char *text, double secs);
double kiln_engine_now(void);

/* engine/expand.c */
int kiln_expand_word(engine_t *e, const stage_t *st, const char *word, used_args_t *u, char **out,
                     kiln_error_t *err);
int kiln_expand_raw(engine_t *e, const stage_t *st, const char *text, char **out,
                    kiln_error_t *err);
const char *kiln_expand_build_arg(engine_t *e, const char *name);
int kiln_expand_cb(void *ctx, const char *word, char **out, kiln_error_t *err);

/* engine/step_meta.c */
void kiln_step_history(engine_t *e, stage_t *st, const char *created_by, int empty);
int kiln_step_workdir(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);
int kiln_step_meta(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);

/* engine/cache.c */
void kiln_cache_key_step(kiln_digest_t *key, const char *what, const char *extra);
char *kiln_cache_ref(const engine_t *e, const kiln_digest_t *key);
bool kiln_cache_ns_knows(engine_t *e, const kiln_digest_t *d);
void kiln_cache_ns_note(engine_t *e, const kiln_digest_t *d);
int kiln_cache_lookup(engine_t *e, stage_t *st, const kiln_digest_t *key, bool *hit,
                      kiln_error_t *err);
int kiln_cache_store(engine_t *e, stage_t *st, const kiln_digest_t *key, const layer_t *l,
                     kiln_error_t *err);
void kiln_cache_hash_str(kiln_sha256_t *h, const char *s);

/* engine/remote_cache.c */
int kiln_remote_cache_pull(engine_t *e, const char *ref, kiln_registry_image_t *ri,
                           kiln_error_t *err);
int kiln_remote_cache_registry(engine_t *e, kiln_error_t *err);
int kiln_remote_cache_import(engine_t *e, const char *ref, kiln_error_t *err);
int kiln_remote_cache_export(engine_t *e, const stage_t *target, kiln_error_t *err);

/* engine/snapshot.c */
bool kiln_snapshot_is_chroot(const kiln_build_request_t *req);
int kiln_snapshot_lower_dir(engine_t *e, const layer_t *l, char **out, kiln_error_t *err);
int kiln_snapshot_commit_layer(engine_t *e, stage_t *st, const char *dir, int overlay, layer_t *out,
                               kiln_error_t *err);
int kiln_snapshot_commit_step(engine_t *e, stage_t *st, const char *dir, int overlay,
                              const char *created_by, const kiln_digest_t *key, kiln_error_t *err);
int kiln_snapshot_extract(engine_t *e, stage_t *st, const char *path, const char *dir,
                          kiln_error_t *err);
int kiln_snapshot_resolve(engine_t *e, stage_t *st, const char *path, unsigned flags, char **out,
                          char **dir, kiln_error_t *err);
int kiln_snapshot_rootfs(engine_t *e, stage_t *st, char **out, kiln_error_t *err);

/* engine/user.c */
bool kiln_user_all_digits(const char *s);
int kiln_user_resolve(engine_t *e, stage_t *st, const char *spec, uid_t *uid, gid_t *gid,
                      kiln_error_t *err);

/* engine/step_from.c */
int kiln_step_from_image(engine_t *e, stage_t *st, const char *ref, kiln_error_t *err);
int kiln_step_from(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);

/* engine/mounts.c */
int kiln_mounts_bind_source(int rootfd, const char *src, const char *what, char **out,
                            kiln_error_t *err);
int kiln_mounts_insecure_copy(engine_t *e, char **src, char **view, kiln_error_t *err);
int kiln_mounts_parse(engine_t *e, stage_t *st, const char *spec, kiln_mount_t *m, char **owned,
                      int *lock_fd, bind_src_t *bs, kiln_error_t *err);

/* engine/step_run.c */
int kiln_step_run(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err);

/* engine/copytree.c (the rest: engine/copytree.h) */
int kiln_copytree_list_dir(int fd, const char *what, strv_t *out, kiln_error_t *err);

/* engine/fetch.c */
char *kiln_fetch_url_basename(const char *url);
int kiln_fetch_url(engine_t *e, const char *url, const char *checksum, char **file,
                   kiln_digest_t *digest, kiln_error_t *err);

/* engine/step_copy.c */
int kiln_step_copy_hash_context(engine_t *e, const char *canon, const char *written,
                                kiln_digest_t *out, kiln_error_t *err);
int kiln_step_copy_mkdirs_in(const char *root, const char *path, int *out, kiln_error_t *err);
int kiln_step_copy_stage_root(engine_t *e, stage_t *dep, const strv_t *srcs, const char **root,
                              char **view, kiln_error_t *err);
int kiln_step_copy(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
                   kiln_error_t *err);

/* engine/solve.c */
/* The dependency graph of a build: deps[i][k] when stage i reads stage k (FROM, COPY/ADD
 * --from, RUN --mount from=), needed[i] when the target needs stage i (directly or not). */
typedef struct kiln_solve_graph {
    size_t n, target;
    bool **deps;
    bool *needed;
} kiln_solve_graph_t;
stage_t *kiln_solve_find(engine_t *e, const char *name, size_t before);
void kiln_solve_graph(engine_t *e, const stage_t *target, kiln_solve_graph_t *g);
void kiln_solve_graph_free(kiln_solve_graph_t *g);
/* The next wave: needed stages other than the target, not started (state 0), whose
 * dependencies are built (state 2), at most MAX_PARALLEL, into wave[]; their count. */
size_t kiln_solve_wave(const kiln_solve_graph_t *g, const int *state, size_t *wave);
/* The order the stages run in when every one succeeds: wave after wave, then the
 * target; order[] has room for g->n; returns how many stages run. */
size_t kiln_solve_order(const kiln_solve_graph_t *g, size_t *order);
int kiln_solve_run_stage(engine_t *e, stage_t *st, kiln_error_t *err);
int kiln_solve_run(engine_t *e, stage_t *target, kiln_error_t *err);
int kiln_solve_split(engine_t *e, kiln_error_t *err);
void kiln_solve_stage_clear(stage_t *st);

/* engine/build.c */
int kiln_build_finish_image(engine_t *e, stage_t *st, kiln_build_result_t *res, kiln_error_t *err);

#endif
