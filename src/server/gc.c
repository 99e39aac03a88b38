/* kiln server — the garbage collector (see gc.h): logs, contexts, scratch, secrets, git
 * mirrors, cache mounts, stat caches and build cache entries, by age and size. */
#include "src/server/gc.h"
#include "src/server/tenantcreds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "job/auto.h"
#include "job/kept_tree.h"
#include "src/server/accesslog.h"
#include "src/server/runner.h"
#include "src/server/tenantcreds.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define MAX_ENTRIES 100000

typedef struct entry {
    char *name;
    int dir;      /* the directory fd it is in */
    size_t group; /* its index among the directories pruned together */
    bool done;    /* removed, kept or failed: not looked at again */
    double mtime; /* newest mtime in the entry's top level */
    uint64_t size;
} entry_t;

/* Whether an entry of a directory may go; NULL = always. */
typedef int (*keep_fn)(const kiln_gc_opts_t *o, const char *name);

/* Disk usage of a tree (no symlinks followed), and its newest top-level mtime. */
static uint64_t tree_size(int at, const char *name, double *newest, int depth)
{
    struct stat sb;
    uint64_t total = 0;
    int fd;
    DIR *d;
    struct dirent *e;

    if (fstatat(at, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    if (newest && (double)sb.st_mtime > *newest)
        *newest = (double)sb.st_mtime;
    total = (uint64_t)sb.st_blocks * 512;
    if (!S_ISDIR(sb.st_mode) || depth > 64)
        return total;
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return total;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        total += tree_size(dirfd(d), e->d_name, depth == 0 ? newest : NULL, depth + 1);
    }
    closedir(d);
    return total;
}

static int by_age(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Removes entry en (unless keep protects it), counting it out of *total and
 * its directory's sum; either way it is not looked at again. */
static void drop(const kiln_gc_opts_t *o, entry_t *en, keep_fn keep, uint64_t *total,
                 uint64_t *sums, kiln_gc_stats_t *st)
{
    en->done = true;
    if (keep != NULL && keep(o, en->name))
        return;
    if (o->dry_run || kiln_fs_rm_rf_at(en->dir, en->name, NULL) == 0) {
        st->freed_bytes += en->size;
        st->removed++;
        *total -= en->size;
        sums[en->group] -= en->size;
    }
}

/* Removes entries of the directories fds (n of them, not closed; shown as what)
 * older than the age limit, then, until their total is within max_bytes, the
 * oldest of the directory holding the most (one directory: oldest first),
 * skipping those `keep` protects. */
static int prune_fds(const kiln_gc_opts_t *o, const int *fds, size_t nfds, const char *what,
                     double max_age, uint64_t max_bytes, keep_fn keep, kiln_gc_stats_t *st,
                     kiln_error_t *err)
{
    entry_t *list = NULL;
    size_t n = 0;
    uint64_t total = 0, *sums = kiln_xzalloc((nfds + 1) * sizeof(uint64_t));
    double now = (double)time(NULL);

    for (size_t k = 0; k < nfds; k++) {
        int dfd = openat(fds[k], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_closedir_ DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
        struct dirent *e;
        if (d == NULL) {
            if (dfd >= 0)
                close(dfd);
            for (size_t i = 0; i < n; i++)
                free(list[i].name);
            free(list);
            free(sums);
            return kiln_error_set(err, errno, "gc: open %s", what);
        }
        while ((e = readdir(d)) != NULL && n < MAX_ENTRIES) {
            entry_t en = {.dir = fds[k], .group = k};
            if (e->d_name[0] == '.' && (e->d_name[1] == '\0' || strcmp(e->d_name, "..") == 0))
                continue;
            en.size = tree_size(fds[k], e->d_name, &en.mtime, 0);
            en.name = kiln_xstrdup(e->d_name);
            total += en.size;
            sums[k] += en.size;
            list = kiln_xrealloc(list, (n + 1) * sizeof(*list));
            list[n++] = en;
        }
    }
    qsort(list, n, sizeof(*list), by_age);
    /* by age: every entry older than the limit */
    for (size_t i = 0; i < n; i++)
        if (max_age > 0 && now - list[i].mtime > max_age)
            drop(o, &list[i], keep, &total, sums, st);
    /* by size: the oldest entry of the directory (namespace) holding the most goes first,
     * so a tenant filling its caches evicts its own before anyone else's */
    while (max_bytes > 0 && total > max_bytes) {
        entry_t *victim = NULL;
        for (size_t i = 0; i < n; i++)
            if (!list[i].done && (victim == NULL || sums[list[i].group] > sums[victim->group]))
                victim = &list[i];
        if (victim == NULL)
            break;
        drop(o, victim, keep, &total, sums, st);
    }
    for (size_t i = 0; i < n; i++)
        free(list[i].name);
    free(list);
    free(sums);
    return 0;
}

/* prune_fds over one directory; a missing one has nothing to remove. */
static int prune_dir(const kiln_gc_opts_t *o, const char *dir, double max_age, uint64_t max_bytes,
                     keep_fn keep, kiln_gc_stats_t *st, kiln_error_t *err)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "gc: open %s", dir);
    return prune_fds(o, &fd, 1, dir, max_age, max_bytes, keep, st, err);
}

#define MAX_NAMESPACES 10000

/* The caches of one kind in the kiln root: the historical directory (legacy,
 * e.g. "git") and every namespace's (ns/<NAME>/<sub>, utils/cachens), pruned
 * together by age and total size (oldest first, whatever the namespace).
 * Namespace directories are opened without following links. A namespace's
 * stat cache file of the old single-file format older than the age limit
 * goes with the cache mounts (it only saves re-hashing). legacy NULL: namespaces only (their
 * "blobs", the marks of blobs a namespace may use: one that goes costs a download again). */
static int prune_kind(const kiln_gc_opts_t *o, const char *legacy, const char *sub,
                      uint64_t max_bytes, bool statcache, kiln_gc_stats_t *st, kiln_error_t *err)
{
    _cleanup_free_ char *ldir = legacy ? kiln_xasprintf("%s/%s", o->kiln_root, legacy)
                                       : kiln_xasprintf("%s/ns", o->kiln_root);
    _cleanup_free_ char *nsdir = kiln_xasprintf("%s/ns", o->kiln_root);
    _cleanup_closedir_ DIR *d = opendir(nsdir);
    int *fds = kiln_xzalloc(sizeof(int));
    size_t n = 0;
    struct dirent *e;
    int r;

    fds[0] = legacy ? open(ldir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fds[0] >= 0) {
        n = 1;
    } else if (legacy && errno != ENOENT && errno != ENOTDIR) { /* ENOTDIR: an old file */
        free(fds);
        return kiln_error_set(err, errno, "gc: open %s", ldir);
    }
    while (d != NULL && (e = readdir(d)) != NULL && n < MAX_NAMESPACES) {
        _cleanup_close_ int nfd = -1;
        struct stat sb;
        int fd;
        if (e->d_name[0] == '.')
            continue;
        nfd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0)
            continue;
        if (statcache && o->max_age_s > 0 &&
            fstatat(nfd, "statcache", &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
            (double)time(NULL) - (double)sb.st_mtime > o->max_age_s &&
            (o->dry_run || unlinkat(nfd, "statcache", 0) == 0)) {
            st->freed_bytes += (uint64_t)sb.st_blocks * 512;
            st->removed++;
        }
        fd = openat(nfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        fds = kiln_xrealloc(fds, (n + 1) * sizeof(int));
        fds[n++] = fd;
    }
    r = prune_fds(o, fds, n, ldir, o->max_age_s, max_bytes, NULL, st, err);
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    return r;
}

/* The build a file or directory belongs to ("b-….log" or "b-…"); keeps it unless final. */
static int keep_unless_final(const kiln_gc_opts_t *o, const char *name)
{
    char id[80], status[32];
    size_t n = strcspn(name, ".");
    if (n == 0 || n >= sizeof(id))
        return 1;
    memcpy(id, name, n);
    id[n] = '\0';
    if (kiln_db_build_status(o->db, id, status, sizeof(status), NULL) < 0)
        return strncmp(name, "b-", 2) != 0; /* unknown builds' leftovers go */
    return !kiln_db_status_final(status);
}

/* Keeps an uploaded context a queued or running build still needs. */
/* A context in use is kept, and the notes of its unpack (ID.notes) with it. */
static int keep_context(const kiln_gc_opts_t *o, const char *name)
{
    size_t n = strlen(name);
    char id[256];

    if (n > 6 && n - 6 < sizeof(id) && strcmp(name + n - 6, ".notes") == 0) {
        memcpy(id, name, n - 6);
        id[n - 6] = '\0';
        return kiln_db_context_in_use(o->db, id) != 0;
    }
    return kiln_db_context_in_use(o->db, name) != 0;
}

/* Kept work trees (job/kept_tree) unused for the age limit go, each moved away while gc holds
 * its lock (never deleted under a build that took the lock since gc looked); a tree a build
 * holds stays. A .gc-NAME left by a gc that stopped half-way goes too. */
static int prune_worktrees(const kiln_gc_opts_t *o, const char *wt, kiln_gc_stats_t *st,
                           kiln_error_t *err)
{
    _cleanup_close_ int fd = open(wt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_closedir_ DIR *d = NULL;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    int ret = 0;

    if (fd < 0)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "gc: open %s", wt);
    if (o->max_age_s <= 0)
        return 0;
    {
        int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || (d = fdopendir(dfd)) == NULL) {
            if (dfd >= 0)
                close(dfd);
            return kiln_error_set(err, errno, "gc: open %s", wt);
        }
    }
    /* names first: the renames below would show up in the same listing */
    while ((e = readdir(d)) != NULL && n < MAX_ENTRIES) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        names = kiln_xrealloc(names, (n + 1) * sizeof(char *));
        names[n++] = kiln_xstrdup(e->d_name);
    }
    for (size_t i = 0; i < n && ret == 0; i++) {
        _cleanup_free_ char *gone = NULL;
        uint64_t size;
        int r =
            strncmp(names[i], ".gc-", 4) == 0
                ? 1
                : kiln_kept_tree_claim(fd, names[i], o->max_age_s, o->dry_run ? NULL : &gone, err);
        if (r < 0)
            ret = -1;
        if (r != 1)
            continue;
        size = tree_size(fd, gone ? gone : names[i], NULL, 0);
        if (o->dry_run || kiln_fs_rm_rf_at(fd, gone ? gone : names[i], NULL) == 0) {
            st->freed_bytes += size;
            st->removed++;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ret;
}

/* Runs `kiln prune` on the blob store; returns its exit status. */
static int prune_store(const kiln_gc_opts_t *o, kiln_error_t *err)
{
    _cleanup_free_ char *log = kiln_xasprintf("%s/gc.log", o->server_root);
    char hours[32];
    char *argv[] = {(char *)o->prune_cmd,
                    (char *)"prune",
                    (char *)"--root",
                    (char *)o->kiln_root,
                    (char *)(o->dry_run ? "--dry-run" : "--no-wait"),
                    (char *)"--cache-max-age",
                    hours,
                    NULL};
    kiln_runner_result_t rr;

    /* build cache entries age like everything else the collector keeps */
    snprintf(hours, sizeof(hours), "%.6f", o->max_age_s / 3600.0);
    if (o->max_age_s <= 0)
        argv[5] = NULL;
    if (kiln_runner_run(argv, NULL, NULL, log, 1 << 20, 3600, NULL, NULL, &rr, err) < 0)
        return -1;
    return rr.exit_code;
}

int kiln_gc_run(const kiln_gc_opts_t *o, kiln_gc_stats_t *st, kiln_error_t *err)
{
    kiln_gc_stats_t s = {.prune_status = -1};
    _cleanup_free_ char *logs = kiln_xasprintf("%s/logs", o->server_root);
    _cleanup_free_ char *ctx = kiln_xasprintf("%s/contexts", o->server_root);
    _cleanup_free_ char *builds = kiln_xasprintf("%s/builds", o->server_root);
    _cleanup_free_ char *secrets = kiln_xasprintf("%s/secrets", o->server_root);
    _cleanup_free_ char *artifacts = kiln_xasprintf("%s/artifacts", o->server_root);

    /* Scratch and secrets of finished builds go at once, whatever their age. */
    if (prune_dir(o, builds, 1e-9, 0, keep_unless_final, &s, err) < 0 ||
        prune_dir(o, secrets, 1e-9, 0, keep_unless_final, &s, err) < 0 ||
        prune_dir(o, logs, o->logs_max_age_s > 0 ? o->logs_max_age_s : o->max_age_s, o->logs_max,
                  keep_unless_final, &s, err) < 0 ||
        prune_dir(o, artifacts, o->max_age_s, o->artifacts_max, keep_unless_final, &s, err) < 0 ||
        prune_dir(o, ctx, o->max_age_s, o->contexts_max, keep_context, &s, err) < 0)
        return -1;
    if (kiln_accesslog_sweep(o->access_log, (double)time(NULL), o->access_log_max_age_s, &s.removed,
                             err) < 0)
        return -1;
    if (o->kiln_root) {
        _cleanup_free_ char *wt = kiln_xasprintf("%s/" KILN_AUTO_WORKTREES, o->kiln_root);
        /* kept work trees go by age like the contexts (each is rebuilt by its next build) */
        if (prune_worktrees(o, wt, &s, err) < 0 ||
            prune_kind(o, "git", "git", o->git_max, false, &s, err) < 0 ||
            prune_kind(o, "build/cache-mounts", "cache-mounts", o->cache_max, true, &s, err) < 0 ||
            prune_kind(o, NULL, "blobs", 0, false, &s, err) < 0 ||
            /* a namespace's lazy blob records (oci/store_lazy): one that goes makes the
             * step cache entries naming its blob misses */
            prune_kind(o, NULL, "lazy", 0, false, &s, err) < 0 ||
            /* per-context stat cache files (engine/statcache) by age; each directory
             * keeps itself under its own cap */
            prune_kind(o, "build/statcache", "statcache", 0, false, &s, err) < 0)
            return -1;
        if (o->prune_cmd)
            s.prune_status = prune_store(o, err);
    }
    *st = s;
    return 0;
}

int kiln_gc_sweep_secrets(const kiln_gc_opts_t *o, kiln_error_t *err)
{
    _cleanup_free_ char *secrets = kiln_xasprintf("%s/secrets", o->server_root);
    _cleanup_closedir_ DIR *d = opendir(secrets);
    struct dirent *e;

    /* by status only: a directory written this very second goes too */
    if (d == NULL)
        return errno == ENOENT ? 0 : kiln_error_set(err, errno, "open %s", secrets);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (keep_unless_final(o, e->d_name)) {
            /* a queued build keeps its secrets, not its tenant's credential files: they are
             * written again (a role assumed afresh) when it runs */
            _cleanup_free_ char *creds =
                kiln_xasprintf("%s/%s/%s", secrets, e->d_name, KILN_TENANTCREDS_DIR);
            if (kiln_fs_rm_rf(creds, err) < 0)
                return -1;
        } else if (kiln_fs_rm_rf_at(dirfd(d), e->d_name, err) < 0) {
            return kiln_error_prefix(err, "%s", secrets);
        }
    }
    return 0;
}

struct kiln_gc_timer {
    kiln_gc_opts_t o;
    int interval_s;
    int stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
};

static void *timer_main(void *arg)
{
    kiln_gc_timer_t *t = arg;

    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += t->interval_s;
        while (!t->stop && pthread_cond_timedwait(&t->cond, &t->lock, &ts) != ETIMEDOUT)
            ;
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->lock);
        {
            kiln_gc_stats_t st;
            kiln_gc_run(&t->o, &st, NULL);
        }
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int kiln_gc_start(const kiln_gc_opts_t *o, int interval_s, kiln_gc_timer_t **out, kiln_error_t *err)
{
    kiln_gc_timer_t *t = kiln_xzalloc(sizeof(*t));
    int rc;

    t->o = *o;
    t->interval_s = interval_s > 0 ? interval_s : 3600;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    rc = pthread_create(&t->thread, NULL, timer_main, t);
    if (rc != 0) {
        free(t);
        return kiln_error_set(err, rc, "starting the garbage collector");
    }
    *out = t;
    return 0;
}

void kiln_gc_stop(kiln_gc_timer_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = 1;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t);
}
