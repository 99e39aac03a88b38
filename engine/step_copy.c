/* kiln — COPY and ADD: sources from the context, a named context or a stage (globs,
 * .dockerignore, heredocs, URLs, local archives unpacked by ADD) hashed into the step's
 * cache key, then on a miss copied into a staging tree and committed as a layer. */
#include "engine/step_copy.h"

#include "engine/cache.h"
#include "engine/copy_sources.h"
#include "engine/copytree.h"
#include "engine/expand.h"
#include "engine/fetch.h"
#include "engine/mounts.h"
#include "engine/snapshot.h"
#include "engine/solve.h"
#include "engine/step_from.h"
#include "engine/user.h"

/* A skipped entry of a COPY, on the step's log. */
static void copy_note(void *ctx, int step, const char *msg)
{
    kiln_engine_event(ctx, step, "log", msg, -1);
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
    kiln_engine_event(e, step, "log", msg, -1);
}

/* The content digest of the context path canon (canonical inside the
 * context: a file or tree, ignore rules applied), through the stat cache. */
int kiln_step_copy_hash_context(engine_t *e, const char *canon, const char *written,
                                kiln_digest_t *out, kiln_error_t *err)
{
    _cleanup_close_ int rootfd = -1;
    kiln_copytree_t c = {.note = copy_note, .note_ctx = e, .ignore = e->ignore};
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
    r = kiln_copytree_hash_source(&c, rootfd, canon, written, err);
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

/* A RUN bind mount of the context sees what COPY would: the context path
 * canon (canonical in the context) is copied, ignore rules applied and .git
 * left out, into a private directory; *src becomes the copy (the caller's own
 * files are then never under the step, even an insecure one) and *view the
 * directory to remove after the step. -1 with err. */
int kiln_step_copy_context_view(engine_t *e, const char *canon, char **src, char **view,
                                kiln_error_t *err)
{
    kiln_copytree_t c = {.note = copy_note,
                         .note_ctx = e,
                         .ignore = e->ignore,
                         .uid = -1,
                         .gid = -1,
                         .mode = -1,
                         .quiet = true};
    _cleanup_free_ char *dir = NULL;
    _cleanup_close_ int rootfd = -1;
    _cleanup_close_ int sdir = -1;
    _cleanup_close_ int droot = -1;
    const char *name;
    int r;

    if (kiln_fs_mkdtemp(e->work, "bindctx-", &dir, err) < 0)
        return -1;
    r = kiln_pathres_open_root(e->req->context_dir, &rootfd, err) < 0 ||
                kiln_pathres_open_root(dir, &droot, err) < 0 ||
                kiln_copytree_source_at(rootfd, canon, &sdir, &name, err) < 0
            ? -1
            : 0;
    if (r == 0) {
        c.dest_root = droot;
        r = kiln_copytree_entry(&c, sdir, name, canon + 1, droot, "t", err);
        kiln_copytree_clear(&c);
        if (r == 0 && faccessat(droot, "t", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
            r = kiln_error_set(err, ENOENT,
                               "bind mount source %s: excluded from the build context (%s)",
                               canon + 1,
                               kiln_dockerignore_is_git(canon + 1) ? ".git is never part of it"
                                                                   : "by .dockerignore");
    }
    if (r < 0) {
        kiln_fs_rm_rf(dir, NULL);
        return -1;
    }
    kiln_mounts_use_copy(src, view, steal_pointer(&dir));
    return 0;
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
int kiln_step_copy_mkdirs_in(const char *root, const char *path, int *out, kiln_error_t *err)
{
    _cleanup_close_ int rfd = -1;
    if (kiln_pathres_open_root(root, &rfd, err) < 0)
        return -1;
    return kiln_pathres_mkdir_p(rfd, path, 0755, out, err);
}

/* Where the sources of a COPY/ADD come from: the context, a stage, a named
 * context or an image. Sets *root (borrowed) and *ign (NULL for a stage or an
 * image; a named context leaves out .git only), or for a stage or an image *dep (built; *root NULL:
 * its files are only materialized when the step misses the cache). */
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
    dep = kiln_solve_find(e, from, (size_t)st->index);
    if (dep != NULL) {
        if (kiln_solve_run_stage(e, dep, err) < 0)
            return -1;
        *root = NULL;
        *dep_out = dep;
        return 0;
    }
    if (kiln_user_all_digits(from))
        return kiln_df_error(n, err, "unknown stage %s (stages are numbered from 0, earlier only)",
                             from);
    if (kiln_solve_find(e, from, e->n_stages) != NULL)
        return kiln_df_error(n, err, "stage %s is defined after this instruction", from);
    for (size_t i = 0; i < e->req->n_contexts; i++) {
        size_t fl = strlen(from);
        if (strncmp(e->req->contexts[i], from, fl) == 0 && e->req->contexts[i][fl] == '=' &&
            strncmp(e->req->contexts[i] + fl + 1, "docker-image://", 15) != 0) {
            *root = e->req->contexts[i] + fl + 1;
            *ign = e->no_git; /* .git is never part of a named context either */
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
    if (kiln_step_from_image(e, dep, from, err) < 0)
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
int kiln_step_copy_stage_root(engine_t *e, stage_t *dep, const strv_t *srcs, const char **root,
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
        r = kiln_snapshot_extract(e, dep, p[0] ? p : ".", dir, err);
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
    if (kiln_snapshot_rootfs(e, dep, &rootfs, err) < 0)
        return -1;
    *root = rootfs;
    return 0;
}

/* Tries a local archive for ADD: the source file in (opened) is extracted
 * into dest_in of the staging directory. *done set when it was one. */
static int add_archive(engine_t *e, kiln_copytree_t *c, int in, const char *staging,
                       const char *dest_in, bool *done, kiln_error_t *err)
{
    _cleanup_free_ char *tmpd = NULL;
    _cleanup_free_ char *dd = kiln_xstrdup(dest_in);
    _cleanup_close_ int tfd = -1;
    _cleanup_close_ int ddir = -1;
    kiln_unpack_opts_t uo;
    kiln_error_t ignored = {0};
    kiln_copytree_t c2 = *c;
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
        r = kiln_step_copy_mkdirs_in(staging, dest_in, &ddir, err);
    if (r == 0)
        r = kiln_copytree_dir(&c2, tfd, "", ddir, dd, &st, err);
    kiln_copytree_clear(&c2);
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
    return kiln_step_copy_mkdirs_in(staging, parent[0] ? parent : "/", ddir, err);
}

/* The destination dest as the image sees it (*out, or kept when already resolved): links
 * on the way followed inside the stage's tree (absolute ones from its root), never on the
 * host. -1 with err naming the instruction. */
static int copy_dest(engine_t *e, stage_t *st, const kiln_df_node_t *n, const char *dest,
                     char **out, kiln_error_t *err)
{
    if (*out != NULL)
        return 0;
    if (kiln_snapshot_resolve(e, st, dest, KILN_PATHRES_MISSING_OK, out, NULL, err) < 0)
        return kiln_df_error(n, err, "destination %s: %s", dest, err->msg);
    return 0;
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

/* Directories a staging copy makes on the way to the layer path p (without it): 0755,
 * root's, dated SOURCE_DATE_EPOCH or else the epoch, so a layer does not depend on the
 * time it was built. */
static int layer_parents(engine_t *e, kiln_layer_writer_t *w, const char *p, kiln_error_t *err)
{
    struct stat d = {.st_mode = S_IFDIR | 0755, .st_nlink = 1};
    d.st_mtim.tv_sec = e->have_sde ? e->created : 0;
    for (const char *s = strchr(p, '/'); s != NULL; s = strchr(s + 1, '/')) {
        _cleanup_free_ char *dir = kiln_xstrndup(p, (size_t)(s - p));
        if (dir[0] != '\0' && kiln_layer_writer_add_stat(w, dir, &d, -1, NULL, NULL, err) < 0)
            return -1;
    }
    return 0;
}

/* A COPY (or ADD) of the one context source canon (written src) to dest_in, written
 * straight from the context into its layer by the copytree walk, with no staging tree:
 * each file read once, into the tar (and, in the walk that also hashes for the cache
 * key, hashed as it goes); the layer's tree is only unpacked from the blob when a later
 * step mounts it. The entries are those the staging copy would give the tree writer, in
 * its order: the walk goes through each directory in the writer's order (names sorted
 * bytewise, a directory before its entries). This begins it: *sl started with the
 * directories on the way written, *top the source's path in the layer. Returns 1 when
 * begun, 0 when the source needs the staging copy (an ADD of a file: it may be an
 * archive), -1 with err. */
static int direct_begin(engine_t *e, int rootfd, const char *src, const char *canon,
                        const char *dest_in, bool dir_dest, bool is_add, kiln_snapshot_layer_t *sl,
                        char **top, kiln_error_t *err)
{
    _cleanup_close_ int sdir = -1;
    const char *name;
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    struct stat sst;

    if (kiln_copytree_source_at(rootfd, canon, &sdir, &name, err) < 0)
        return -1;
    if (fstatat(sdir, name, &sst, AT_SYMLINK_NOFOLLOW) < 0)
        return kiln_error_set(err, errno, "stat %s", src);
    if (is_add && S_ISREG(sst.st_mode))
        return 0;
    while (*dest_in == '/')
        dest_in++;
    if (S_ISDIR(sst.st_mode)) { /* its contents go to dest, the directory's stat to dest */
        *top = kiln_xstrdup(dest_in);
        while ((*top)[0] && (*top)[strlen(*top) - 1] == '/')
            (*top)[strlen(*top) - 1] = '\0';
    } else if (dir_dest) {
        *top = kiln_xasprintf("%s%s%s", dest_in,
                              dest_in[0] == '\0' || dest_in[strlen(dest_in) - 1] == '/' ? "" : "/",
                              base);
    } else {
        *top = kiln_xstrdup(dest_in);
    }
    if (kiln_snapshot_layer_begin(e, sl, err) < 0) {
        free(steal_pointer(top));
        return -1;
    }
    if (layer_parents(e, sl->w, *top, err) < 0) {
        kiln_snapshot_layer_abort(sl);
        free(steal_pointer(top));
        return -1;
    }
    return 1;
}

/* The walk of a direct COPY after a miss (the hash walk read nothing, or more than the
 * stat cache spared): the source canon into the layer begun as top. -1 with err. */
static int direct_walk(kiln_copytree_t *c, kiln_layer_writer_t *w, int rootfd, const char *canon,
                       const char *top, kiln_error_t *err)
{
    _cleanup_close_ int sdir = -1;
    const char *name;
    int r;

    if (kiln_copytree_source_at(rootfd, canon, &sdir, &name, err) < 0)
        return -1;
    c->layer = w;
    r = kiln_copytree_entry(c, sdir, name, canon + 1, -1, top, err);
    c->layer = NULL;
    return r;
}

int kiln_step_copy(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
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
    kiln_copytree_t c = {.note = copy_note,
                         .note_ctx = e,
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
    bool dir_dest, direct, one_pass = false;
    kiln_snapshot_layer_t sl;
    _cleanup_free_ char *top = NULL;
    int ret = -1, r;

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
    if (kiln_expand_word(e, st, n->args[n->n_args - 1], NULL, &dest_raw, err) < 0)
        return kiln_df_error(n, err, "%s", err->msg);
    dest = resolve_dest(st, dest_raw);
    dir_dest = dest[strlen(dest) - 1] == '/';
    if (copy_source_root(e, st, n, from, &root, &ign, &dep, err) < 0)
        return -1;
    if (chown_s) {
        uid_t u;
        gid_t g;
        _cleanup_free_ char *x = NULL;
        if (kiln_expand_word(e, st, chown_s, NULL, &x, err) < 0 ||
            kiln_user_resolve(e, st, x, &u, &g, err) < 0)
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
    if (kiln_copy_sources_expand(e, st, n, is_add, from == NULL, &paths, &urls, err) < 0 ||
        (dep == NULL && kiln_copy_sources_resolve(n, rootfd, ign, &paths, &srcs, &canon, err) < 0))
        goto out;
    if (urls.n > 0 && checksum != NULL && urls.n != 1) {
        kiln_df_error(n, err, "ADD --checksum needs exactly one URL source");
        goto out;
    }
    if (copy_check_dest(n, is_add, dir_dest, (dep ? paths.n : srcs.n) + urls.n, err) < 0)
        goto out;
    direct = dep == NULL && srcs.n == 1 && urls.n == 0 && n->n_heredocs == 0;

    /* 1. the cache key: a stage (or image) source is keyed by the stage's own
     * cache key and the paths, as BuildKit does: nothing of it is read unless
     * this step misses; other sources are hashed (context files through the
     * stat cache) */
    if (dep == NULL)
        sc = statcache_for(e, root);
    if (direct && sc != NULL) {
        /* a stat cache that knows none of the context (its first build): every file is
         * read for the key anyway, so the layer is written in the same pass, before the
         * cache lookup (a hit then only drops it) */
        kiln_statcache_stats_t scs;
        kiln_statcache_stats(sc, &scs);
        if (scs.loaded == 0) {
            if (copy_dest(e, st, n, dest, &dest_in, err) < 0)
                goto out;
            r = direct_begin(e, rootfd, srcs.v[0], canon.v[0], dest_in, dir_dest, is_add, &sl, &top,
                             err);
            if (r < 0)
                goto out;
            one_pass = r == 1;
            c.layer = one_pass ? sl.w : NULL;
            c.layer_as = top;
        }
    }
    if (dep != NULL) {
        char ks[KILN_DIGEST_STR_MAX];
        kiln_cache_hash_str(&h, "stage");
        kiln_cache_hash_str(&h, kiln_digest_str(&dep->key, ks));
        for (size_t i = 0; i < paths.n; i++)
            kiln_cache_hash_str(&h, paths.v[i][0] ? paths.v[i] : ".");
    }
    c.hash = &h;
    c.statcache = sc;
    c.ignore = ign;
    for (size_t i = 0; i < srcs.n; i++) {
        kiln_cache_hash_str(&h, srcs.v[i]);
        /* "." was read as the root itself: hashed as "" */
        if (kiln_copytree_hash_source(&c, rootfd, canon.v[i],
                                      strcmp(srcs.v[i], ".") == 0 ? "" : srcs.v[i], err) < 0)
            goto out;
    }
    for (size_t i = 0; i < urls.n; i++) {
        /* with --checksum the key needs no download; else the content decides */
        kiln_cache_hash_str(&h, urls.v[i]);
        if (checksum != NULL) {
            kiln_cache_hash_str(&h, checksum); /* downloaded on a miss only */
            continue;
        }
        {
            kiln_digest_t d;
            char ds[KILN_DIGEST_STR_MAX];
            char *file = NULL;
            if (kiln_fetch_url(e, urls.v[i], NULL, &file, &d, err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            strv_add(&url_files, file);
            kiln_cache_hash_str(&h, kiln_digest_str(&d, ds));
        }
    }
    for (size_t i = 0; i < n->n_heredocs; i++) {
        char *body = kiln_df_heredoc_content(&n->heredocs[i]);
        if (n->heredocs[i].expand) {
            /* unquoted delimiter: variables expand, quotes stay as written */
            char *x = NULL;
            r = kiln_expand_raw(e, st, body, &x, err);
            free(body);
            if (r < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            body = x;
        }
        kiln_cache_hash_str(&h, body);
        strv_add(&bodies, body);
    }
    c.layer = NULL;
    c.layer_as = NULL;
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
        kiln_cache_key_step(&key, kt, NULL);
    }
    if ((ret = kiln_cache_lookup(e, st, &key, err)) != 0)
        goto out; /* a hit (1) or an error; a layer written in the hash pass is dropped */
    ret = -1;
    if (one_pass) {
        one_pass = false; /* committed or dropped by the commit */
        if (kiln_snapshot_layer_commit_step(e, st, &sl, created_by, &key, err) < 0)
            goto out;
        ret = 0;
        goto out;
    }

    /* 2. a miss: the layer's tree in a staging dir, then the layer */
    c.hash = NULL;
    c.statcache = NULL;
    c.quiet = dep == NULL; /* the hash pass reported what it skipped */
    if (dep != NULL) {
        if (kiln_step_copy_stage_root(e, dep, &paths, &root, &view, err) < 0 ||
            kiln_pathres_open_root(root, &rootfd, err) < 0 ||
            kiln_copy_sources_resolve(n, rootfd, NULL, &paths, &srcs, &canon, err) < 0 ||
            copy_check_dest(n, is_add, dir_dest, srcs.n + urls.n, err) < 0)
            goto out;
        c.nlink_bias = 1; /* a view or rootfs of hardlinks to the stage's layer dirs */
    }
    if (copy_dest(e, st, n, dest, &dest_in, err) < 0)
        goto out;
    if (direct) {
        r = direct_begin(e, rootfd, srcs.v[0], canon.v[0], dest_in, dir_dest, is_add, &sl, &top,
                         err);
        if (r < 0)
            goto out;
        if (r == 1) {
            if (direct_walk(&c, sl.w, rootfd, canon.v[0], top, err) < 0) {
                kiln_snapshot_layer_abort(&sl);
                goto out;
            }
            if (kiln_snapshot_layer_commit_step(e, st, &sl, created_by, &key, err) == 0)
                ret = 0;
            goto out;
        }
    }
    if (kiln_fs_mkdtemp(e->work, "copy-", &staging, err) < 0 || chmod(staging, 0755) < 0 ||
        kiln_pathres_open_root(staging, &sroot, err) < 0)
        goto out;
    c.dest_root = sroot;
    for (size_t i = 0; i < srcs.n; i++) {
        const char *base = strrchr(srcs.v[i], '/') ? strrchr(srcs.v[i], '/') + 1 : srcs.v[i];
        const char *rel = canon.v[i] + 1;
        _cleanup_close_ int sdir = -1;
        _cleanup_close_ int ddir = -1;
        _cleanup_free_ char *drel = NULL;
        const char *name;
        struct stat sst;
        bool done = false;
        if (kiln_copytree_source_at(rootfd, canon.v[i], &sdir, &name, err) < 0)
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
            if (kiln_step_copy_mkdirs_in(staging, dest_in, &ddir, err) < 0 ||
                kiln_copytree_dir(&c, sub, rel, ddir, dd, &sst, err) < 0)
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
            kiln_copytree_entry(&c, sdir, name, rel, ddir, drel, err) < 0)
            goto out;
    }
    for (size_t i = 0; i < urls.n; i++) {
        _cleanup_free_ char *base = kiln_fetch_url_basename(urls.v[i]);
        _cleanup_free_ char *drel = NULL;
        _cleanup_close_ int ddir = -1;
        const char *file = i < url_files.n ? url_files.v[i] : NULL;
        char *fetched = NULL;
        kiln_digest_t d;
        if (file == NULL) {
            if (kiln_fetch_url(e, urls.v[i], checksum, &fetched, &d, err) < 0) {
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
    if (kiln_snapshot_commit_step(e, st, staging, 0, created_by, &key, err) < 0)
        goto out;
    ret = 0;
out:
    if (one_pass)
        kiln_snapshot_layer_abort(&sl);
    kiln_copytree_clear(&c);
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
