/* kiln — the engine's entry point kiln_build_run (engine/build.h): opens the context and
 * the Dockerfile, sets up the build's work dirs and cache namespace, solves and runs the
 * target, writes the image (config with history, manifest) into the store; the fetch
 * policies of a build; the local export of a built image. */
#include "engine/build.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine/cache.h"
#include "engine/engine.h"
#include "engine/remote_base.h"
#include "engine/remote_cache.h"
#include "engine/remote_layers.h"
#include "engine/remote_mounts.h"
#include "engine/run_trash.h"
#include "engine/snapshot.h"
#include "engine/solve.h"
#include "oci/store_lazy.h"
#include "sandbox/netns.h"

int kiln_build_finish_image(engine_t *e, stage_t *st, kiln_build_result_t *res, kiln_error_t *err)
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

/* Marks the build's work dir as a top of directory trees for ext4 (FS_TOPDIR_FL, what
 * `chattr +T` sets): the step's upper and work dirs made in it are spread over the block
 * groups (by name) as top-level dirs are, instead of all going to the group the rest of the
 * disk's churn goes to. Each overlay mount allocates 7 inodes in its work dir, and on ext4
 * without a journal an allocation walks every free inode of its group deleted in the last
 * 60-360 s (a buffer lookup each): in a busy group, milliseconds a step. Best effort: other
 * filesystems refuse the flag, and it changes nothing but where inodes go. */
static void spread_step_dirs(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), flags = 0;

    if (fd < 0)
        return;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && !(flags & FS_TOPDIR_FL)) {
        flags |= FS_TOPDIR_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0) {
            /* not ext2/3/4, or not allowed: the default placement */
        }
    }
    close(fd);
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
    const char *sde = kiln_env_lookup(req->env, "SOURCE_DATE_EPOCH");

    memset(res, 0, sizeof(*res));
    e->req = req;
    e->store = store;
    /* the blobs of steps are synced in groups, before the refs that name them */
    kiln_store_defer_sync(store, 1);
    kiln_cache_init(e);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->netns = kiln_netns_pool_new();
    e->trash = kiln_run_trash_new();
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
    if (kiln_dockerignore_load(ctxfd, dfdir, dfpath, &e->ignore, err) < 0 ||
        (req->ignore_file != NULL &&
         kiln_dockerignore_add_file(e->ignore, ctxfd, req->ignore_file, err) < 0) ||
        kiln_dockerignore_parse("", 0, &e->no_git, err) < 0)
        goto out;
    for (size_t i = 0; i < req->n_build_args; i++) {
        const char *a = req->build_args[i];
        const char *eq = strchr(a, '=');
        if (eq) {
            _cleanup_free_ char *k = kiln_xstrndup(a, (size_t)(eq - a));
            kv_set(&e->build_args, k, eq + 1);
        } else if (kiln_env_lookup(req->env, a) != NULL) {
            kv_set(&e->build_args, a, kiln_env_lookup(req->env, a));
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
    spread_step_dirs(e->work);
    /* what a build can write and a later one trusts is kept per namespace */
    if (kiln_cachens_path(kiln_store_root(store), req->cache_namespace, KILN_CACHENS_MOUNTS,
                          &e->mounts_dir, err) < 0 ||
        kiln_cachens_path(kiln_store_root(store), req->cache_namespace, KILN_CACHENS_STATCACHE,
                          &e->statcache_path, err) < 0)
        goto out;
    e->cache_prefix = kiln_cachens_ref_prefix(req->cache_namespace);
    /* the blobs the namespace may use and its lazy blob records (oci/store_lazy): kept by
     * the store handle, so the outputs written after the build honour them too */
    if (kiln_store_set_namespace(store, req->cache_namespace, err) < 0)
        goto out;
    /* a lazy blob's registry fetch goes where this build's own FROM may go, not where the
     * recording build could (oci/store_lazy.h); set before any step thread uses the handle */
    kiln_store_set_fetch_policy(store, e->registry_policy);
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
    if (kiln_solve_split(e, err) < 0)
        goto out;
    /* refused entitlements fail the build before any step runs */
    if (kiln_entitlement_check_dockerfile(e->df, req->entitlements, kiln_snapshot_is_chroot(req),
                                          err) < 0)
        goto out;
    if (req->target && *req->target) {
        target = kiln_solve_find(e, req->target, e->n_stages);
        if (target == NULL) {
            kiln_error_set(err, 0, "target stage \"%s\" could not be found", req->target);
            goto out;
        }
    } else {
        target = &e->stages[e->n_stages - 1];
    }
    if (kiln_remote_mounts_init(e, err) < 0 ||
        (!req->no_cache && kiln_remote_layers_import(e, err) < 0))
        goto out;
    for (size_t i = 0; i < req->n_cache_from && !req->no_cache; i++)
        if (kiln_remote_cache_import(e, req->cache_from[i], err) < 0)
            goto out;
    if (kiln_solve_run(e, target, err) < 0)
        goto out;
    /* the FROM images' layers still downloading are the image's too */
    if (kiln_remote_base_join(e, err) < 0)
        goto out;
    if (kiln_build_finish_image(e, target, res, err) < 0)
        goto out;
    /* the cache mounts first: a registry --cache-to pushes them with its cache image */
    if (kiln_remote_mounts_save(e, err) < 0 || kiln_remote_layers_export(e, target, err) < 0)
        goto out;
    if (req->cache_to != NULL && kiln_remote_cache_export(e, target, err) < 0)
        goto out;
    ret = 0;
out:
    /* the steps that completed keep their cache entries, the build failed or not */
    if (kiln_cache_finish(e, ret == 0 ? err : NULL) < 0)
        ret = -1;
    kiln_store_defer_sync(store, 0);
    kiln_run_trash_free(e->trash); /* its entries are inside e->work */
    e->trash = NULL;
    if (e->work)
        kiln_fs_rm_rf(e->work, NULL);
    free(e->work);
    free(e->lowers_dir);
    free(e->mounts_dir);
    free(e->statcache_path);
    free(e->cache_prefix);
    kiln_remote_mounts_free(e);
    kiln_remote_base_free(e);
    for (size_t i = 0; i < e->n_stages; i++)
        kiln_solve_stage_clear(&e->stages[i]);
    strv_clear(&e->meta_args);
    strv_clear(&e->build_args);
    strv_clear(&e->cache_used);
    strv_clear(&e->astore_noted);
    kiln_dockerfile_free(e->df);
    kiln_dockerignore_free(e->ignore);
    kiln_dockerignore_free(e->no_git);
    if (e->registry)
        kiln_registry_free(e->registry);
    kiln_netpolicy_free(e->fetch_policy);
    kiln_netpolicy_free(e->registry_policy);
    kiln_netns_pool_free(e->netns);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
    free(e);
    if (ret < 0) {
        /* what kind of failure it was outlives the rest of the result */
        const char *code = res->fail_code;
        int status = res->fail_exit_status;
        kiln_build_result_clear(res);
        res->fail_code = code;
        res->fail_exit_status = status;
    }
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
    for (size_t i = 0; i < res->n_bases; i++) {
        free(res->bases[i].ref);
        free(res->bases[i].digest);
    }
    free(res->bases);
    memset(res, 0, sizeof(*res));
}
