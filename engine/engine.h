/* kiln — the engine's shared state, internal to the engine folder: one build (engine_t),
 * its stages (stage_t), the small types several steps share, and the progress output. Each
 * engine file declares what it offers the others in its own header (engine/solve.h,
 * engine/cache.h, …), which includes this one; the public surface is engine/build.h. */
#ifndef KILN_ENGINE_ENGINE_H
#define KILN_ENGINE_ENGINE_H

#include "engine/build.h"
#include "engine/copytree.h"
#include "engine/strv.h"

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
#include "oci/layer_write.h"
#include "oci/layout.h"
#include "oci/registry.h"
#include "oci/unpack.h"
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
    /* a RUN's upper dir left empty and its work dir, kept for the next RUN (step_run.c) */
    char *spare_upper, *spare_work;
} stage_t;

typedef struct engine {
    const kiln_build_request_t *req;
    kiln_store_t *store;
    kiln_dockerfile_t *df;
    kiln_dockerignore_t *ignore;
    kiln_dockerignore_t *no_git; /* a named context's rules: no patterns, still no .git */
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
    /* step cache refs made but not written yet (engine/cache.c): "<ref name>\t<digest>",
     * queued and being written by the flusher thread, when the oldest queued was made
     * (CLOCK_MONOTONIC ms), the flusher, its wake-up and its first failure; under lock */
    strv_t cache_pending, cache_writing;
    uint64_t cache_pending_since;
    pthread_t cache_flusher;
    bool cache_flusher_on, cache_flusher_stop;
    pthread_cond_t cache_flush_cond;
    kiln_error_t cache_flush_err;
    struct kiln_rcache *rcache;    /* type=s3 remote caches (engine/remote_mounts), or NULL */
    struct base_pulls *base_pulls; /* FROM layers still downloading (engine/remote_base) */
    strv_t astore_noted;           /* chains of additional stores logged (engine/base_store) */
    struct kiln_netns_pool *netns; /* the --network none steps' namespaces (sandbox/netns) */
    struct kiln_run_trash *trash;  /* spent overlay work dirs being removed (engine/run_trash) */
    unsigned trash_seq;            /* names them in work (atomic) */
} engine_t;

typedef struct used_args {
    const strv_t *args;
    strv_t used;
} used_args_t;

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

/* The engine's progress output (engine/events.c): a line to the request's log callback,
 * a step's event in the request's progress form, a monotonic clock in seconds. */
void kiln_engine_log(engine_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kiln_engine_event(engine_t *e, int step, const char *event, const char *text, double secs);
void kiln_engine_event_at(engine_t *e, int step, const char *event, const char *text, double secs,
                          int line);
double kiln_engine_now(void);

/* The image of the target stage written into the store (engine/build.c). */
int kiln_build_finish_image(engine_t *e, stage_t *st, kiln_build_result_t *res, kiln_error_t *err);

#endif
