/* kiln — a git checkout (see git.h): the commit's tree written into the destination without
 * .git (modes and links as git records them, nothing outside the destination), then each
 * submodule (.gitmodules URL checked by the source policy, resolved against the parent's URL)
 * checked out the same way, nested at most SUBMODULE_DEPTH_MAX deep. Fetching is
 * git_mirror.c, URLs and the source policy git_url.c, the policed connections git_stream.c. */
#include "utils/git.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/git_impl.h"
#include "utils/mem.h"

/* Deepest submodule nesting followed. */
#define SUBMODULE_DEPTH_MAX 8

/* Resolves a submodule URL relative to its parent's ("../x.git", "./x"). */
static char *resolve_relative(const char *parent, const char *rel)
{
    _cleanup_free_ char *base = kiln_xstrdup(parent);
    size_t n = strlen(base);

    if (strncmp(rel, "./", 2) != 0 && strncmp(rel, "../", 3) != 0)
        return kiln_xstrdup(rel);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    for (;;) {
        if (strncmp(rel, "./", 2) == 0) {
            rel += 2;
        } else if (strncmp(rel, "../", 3) == 0) {
            char *slash = strrchr(base, '/');
            if (slash)
                *slash = '\0';
            rel += 3;
        } else {
            break;
        }
    }
    return kiln_xasprintf("%s/%s", base, rel);
}

static int checkout_at(const char *url, const char *ref, const kiln_git_opts_t *opts,
                       const kiln_netpolicy_t *policy, const char *dest, int depth, char **commit,
                       kiln_error_t *err);

typedef struct gitlink {
    char *path;
    git_oid oid;
} gitlink_t;

typedef struct gitlinks {
    gitlink_t items[64];
    size_t n;
} gitlinks_t;

static int collect_gitlinks(const char *root, const git_tree_entry *e, void *payload)
{
    gitlinks_t *g = payload;
    if (git_tree_entry_filemode(e) == GIT_FILEMODE_COMMIT && g->n < 64) {
        g->items[g->n].path = kiln_xasprintf("%s%s", root, git_tree_entry_name(e));
        git_oid_cpy(&g->items[g->n].oid, git_tree_entry_id(e));
        g->n++;
    }
    return 0;
}

typedef struct sm_find {
    const char *path;
    char *name; /* "submodule.NAME.path" key of the match */
} sm_find_t;

/* Matches "submodule.<name>.path" = f->path; plain string tests, not
 * git_config_foreach_match (its regex path leaks pcre2 match data). */
static int find_path_cb(const git_config_entry *e, void *payload)
{
    sm_find_t *f = payload;
    size_t n = strlen(e->name);

    if (f->name == NULL && n > 15 && strncmp(e->name, "submodule.", 10) == 0 &&
        strcmp(e->name + n - 5, ".path") == 0 && strcmp(e->value, f->path) == 0)
        f->name = kiln_xstrdup(e->name);
    return 0;
}

/* Checks out every submodule (gitlink + .gitmodules entry) of the tree. */
static int checkout_submodules(git_repository *repo, git_tree *tree, const char *url,
                               const kiln_git_opts_t *opts, const char *dest, int depth,
                               kiln_error_t *err)
{
    gitlinks_t links = {.n = 0};
    git_tree_entry *gm = NULL;
    git_blob *blob = NULL;
    git_config *cfg = NULL;
    kiln_netpolicy_t *policy = NULL;
    _cleanup_free_ char *tmp = NULL;
    bool local_parent = kiln_git_url_transport(url) == KILN_GIT_LOCAL;
    int ret = -1;

    if (git_tree_walk(tree, GIT_TREEWALK_PRE, collect_gitlinks, &links) < 0)
        return kiln_git_fail(err, "read tree of", url, NULL);
    if (links.n == 0)
        return 0;
    if (depth >= SUBMODULE_DEPTH_MAX) {
        ret = kiln_error_set(err, 0, "git: submodules nested deeper than %d", SUBMODULE_DEPTH_MAX);
        goto out;
    }
    if (git_tree_entry_bypath(&gm, tree, ".gitmodules") < 0 ||
        git_blob_lookup(&blob, repo, git_tree_entry_id(gm)) < 0) {
        ret = kiln_error_set(err, 0, "git: %s has submodules but no .gitmodules", dest);
        goto out;
    }
    if (git_blob_rawsize(blob) > KILN_GIT_SMALL_FILE_CAP) {
        ret = kiln_error_set(err, 0, "git: .gitmodules is too large");
        goto out;
    }
    tmp = kiln_xasprintf("%s/.gitmodules-XXXXXX", opts->cache_dir);
    {
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0 || kiln_fs_write_all(fd, git_blob_rawcontent(blob),
                                        (size_t)git_blob_rawsize(blob), err) < 0) {
            ret = fd < 0 ? kiln_error_set(err, errno, "create %s", tmp) : -1;
            goto out;
        }
    }
    if (git_config_open_ondisk(&cfg, tmp) < 0) {
        ret = kiln_git_fail(err, "parse .gitmodules of", url, NULL);
        goto out;
    }
    if (kiln_git_url_policy(&opts->policy, false, &policy, err) < 0)
        goto out;
    for (size_t i = 0; i < links.n; i++) {
        sm_find_t f = {.path = links.items[i].path};
        char sha[GIT_OID_HEXSZ + 1];
        git_buf sub_url = GIT_BUF_INIT;
        int r;

        git_oid_tostr(sha, sizeof(sha), &links.items[i].oid);
        git_config_foreach(cfg, find_path_cb, &f);
        if (f.name == NULL) {
            ret = kiln_error_set(err, 0, "git: submodule %s is not in .gitmodules",
                                 links.items[i].path);
            goto out;
        }
        memcpy(f.name + strlen(f.name) - 4, "url", 4);
        r = git_config_get_string_buf(&sub_url, cfg, f.name);
        if (r < 0 || strstr(links.items[i].path, "..") != NULL) {
            free(f.name);
            git_buf_dispose(&sub_url);
            ret = kiln_error_set(err, 0, "git: submodule %s has no url", links.items[i].path);
            goto out;
        }
        {
            _cleanup_free_ char *abs = resolve_relative(url, sub_url.ptr);
            _cleanup_free_ char *sub_dest = kiln_xasprintf("%s/%s", dest, links.items[i].path);
            _cleanup_free_ char *sub_commit = NULL;
            /* "submodule.NAME.url" → NAME, for the message */
            f.name[strlen(f.name) - 4] = '\0';
            r = kiln_git_check_url(&opts->policy, abs, f.name + 10, sub_url.ptr, local_parent, err);
            free(f.name);
            git_buf_dispose(&sub_url);
            if (r < 0)
                goto out;
            if (checkout_at(abs, sha, opts, policy, sub_dest, depth + 1, &sub_commit, err) < 0) {
                kiln_error_prefix(err, "submodule %s", links.items[i].path);
                goto out;
            }
        }
    }
    ret = 0;
out:
    kiln_netpolicy_free(policy);
    if (tmp)
        unlink(tmp);
    for (size_t i = 0; i < links.n; i++)
        free(links.items[i].path);
    git_config_free(cfg);
    git_blob_free(blob);
    git_tree_entry_free(gm);
    return ret;
}

/* Writes a tree's files under the directory fd (no .git, no filters):
 * regular files with their mode, symlinks as symlinks, gitlinks as empty
 * directories (filled by the submodule checkout). Names come from git, which
 * forbids "/", "." and ".."; every create is O_EXCL/O_NOFOLLOW under dirfd. */
static int write_tree(git_repository *repo, git_tree *tree, int dirfd, const char *where,
                      const kiln_git_opts_t *opts, kiln_error_t *err)
{
    size_t n = git_tree_entrycount(tree);

    for (size_t i = 0; i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(tree, i);
        const char *name = git_tree_entry_name(e);
        git_filemode_t mode = git_tree_entry_filemode(e);
        git_object *obj = NULL;
        int r = 0;

        if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            strcasecmp(name, ".git") == 0)
            return kiln_error_set(err, 0, "%s: refusing tree entry \"%s\"", where, name);
        if (mode == GIT_FILEMODE_COMMIT) {
            if (mkdirat(dirfd, name, 0755) < 0)
                return kiln_error_set(err, errno, "mkdir %s/%s", where, name);
            continue;
        }
        if (git_tree_entry_to_object(&obj, repo, e) < 0)
            return kiln_error_set(err, 0, "%s/%s: missing object", where, name);
        if (mode == GIT_FILEMODE_TREE) {
            _cleanup_close_ int sub = -1;
            _cleanup_free_ char *sub_where = kiln_xasprintf("%s/%s", where, name);
            if (mkdirat(dirfd, name, 0755) < 0 ||
                (sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
                r = kiln_error_set(err, errno, "mkdir %s", sub_where);
            else
                r = write_tree(repo, (git_tree *)obj, sub, sub_where, opts, err);
        } else if (mode == GIT_FILEMODE_LINK) {
            git_blob *b = (git_blob *)obj;
            _cleanup_free_ char *target =
                kiln_xstrndup(git_blob_rawcontent(b), (size_t)git_blob_rawsize(b));
            if (symlinkat(target, dirfd, name) < 0)
                r = kiln_error_set(err, errno, "symlink %s/%s", where, name);
        } else {
            git_blob *b = (git_blob *)obj;
            _cleanup_close_ int fd =
                openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
            if (fd < 0)
                r = kiln_error_set(err, errno, "create %s/%s", where, name);
            else
                r = kiln_fs_write_all(fd, git_blob_rawcontent(b), (size_t)git_blob_rawsize(b), err);
            if (r == 0 && opts->on_file)
                opts->on_file(opts->on_file_ctx, where, name, fd, git_blob_id(b)->id);
        }
        git_object_free(obj);
        if (r < 0)
            return -1;
    }
    return 0;
}

static int checkout_at(const char *url, const char *ref, const kiln_git_opts_t *opts,
                       const kiln_netpolicy_t *policy, const char *dest, int depth, char **commit,
                       kiln_error_t *err)
{
    kiln_git_target_t t;
    int ret = -1;

    if (kiln_git_target_open(url, ref, opts, policy, dest, &t, err) < 0)
        return -1;
    {
        _cleanup_close_ int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
            kiln_error_set(err, errno, "open %s", dest);
            goto out;
        }
        if (write_tree(t.repo, t.tree, dfd, dest, opts, err) < 0) {
            kiln_error_prefix(err, "git checkout %s", ref ? ref : "HEAD");
            goto out;
        }
    }
    if (checkout_submodules(t.repo, t.tree, url, opts, dest, depth, err) < 0)
        goto out;
    *commit = kiln_xstrdup(t.sha);
    ret = 0;
out:
    kiln_git_target_close(&t);
    return ret;
}

int kiln_git_session(const char *url, const kiln_git_opts_t *opts, kiln_git_session_fn fn,
                     void *ctx, kiln_error_t *err)
{
    kiln_netpolicy_t *policy = NULL;
    int ret;

    if (kiln_git_check_url(&opts->policy, url, NULL, NULL, false, err) < 0 ||
        kiln_git_url_policy(&opts->policy, true, &policy, err) < 0)
        return -1;
    if (git_libgit2_init() < 0) {
        /* libgit2 is loaded on first use (utils/git_lazy): its message names it */
        kiln_netpolicy_free(policy);
        return kiln_error_set(err, 0, "git: %s", git_error_last()->message);
    }
    ret = kiln_git_stream_register(err);
    kiln_git_deadline_set(opts->timeout_s);
    if (ret == 0)
        ret = fn(ctx, policy, err);
    kiln_git_deadline_set(0);
    git_libgit2_shutdown();
    kiln_netpolicy_free(policy);
    return ret;
}

/* kiln_git_checkout's arguments, through kiln_git_session. */
typedef struct fresh {
    const char *url, *ref, *dest;
    const kiln_git_opts_t *opts;
    char **commit;
} fresh_t;

static int fresh_checkout(void *ctx, const kiln_netpolicy_t *policy, kiln_error_t *err)
{
    fresh_t *f = ctx;
    return checkout_at(f->url, f->ref, f->opts, policy, f->dest, 0, f->commit, err);
}

int kiln_git_checkout(const char *url, const char *ref, const kiln_git_opts_t *opts,
                      const char *dest, char **commit, kiln_error_t *err)
{
    fresh_t f = {.url = url, .ref = ref, .dest = dest, .opts = opts, .commit = commit};
    struct stat st;
    int ret;

    if (stat(dest, &st) == 0)
        return kiln_error_set(err, EEXIST, "git checkout destination %s", dest);
    ret = kiln_git_session(url, opts, fresh_checkout, &f, err);
    if (ret < 0)
        kiln_fs_rm_rf(dest, NULL); /* nothing half-written is left */
    return ret;
}
