/* kiln — a kept work tree brought to a commit in place (see git.h): the repository's
 * mirror (fetched as for a fresh checkout) is given the tree as its work directory and an
 * index kept beside it, outside the tree, and libgit2's forced checkout writes only the
 * files whose content differs from what the index recorded, removing every untracked or
 * ignored entry a previous build could have left (a planted symlink included). */
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/repository.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/fs.h"
#include "utils/git.h"
#include "utils/git_impl.h"
#include "utils/mem.h"

/* Drops from the kept index, and removes from the tree, every entry the tree no longer holds
 * as the index recorded it (type, size, mtime, inode) or that sits below something other
 * than a real directory (a planted link): libgit2's own comparison misses a file replaced
 * by a link, and the checkout then writes each dropped entry afresh. A component that is
 * not a directory is removed itself, never followed. */
static void scrub_kept(git_index *idx, const char *dest)
{
    for (size_t i = git_index_entrycount(idx); i-- > 0;) {
        const git_index_entry *e = git_index_get_byindex(idx, i);
        char *full = kiln_xasprintf("%s/%s", dest, e->path), *rel = full + strlen(dest) + 1;
        struct stat st;
        bool bad = false;

        for (char *p = strchr(rel, '/'); p && !bad; p = strchr(p + 1, '/')) {
            *p = '\0';
            if (lstat(full, &st) < 0) {
                bad = true; /* gone: the checkout writes it again */
            } else if (!S_ISDIR(st.st_mode)) {
                kiln_fs_rm_rf(full, NULL);
                bad = true;
            }
            *p = '/';
        }
        if (!bad) {
            unsigned fmt = e->mode & S_IFMT;
            bad = lstat(full, &st) < 0 || (st.st_mode & S_IFMT) != fmt ||
                  (uint32_t)st.st_size != e->file_size ||
                  (uint32_t)st.st_mtime != (uint32_t)e->mtime.seconds ||
                  (uint32_t)st.st_ino != e->ino;
            if (bad)
                kiln_fs_rm_rf(full, NULL);
        }
        if (bad)
            git_index_remove(idx, e->path, 0);
        free(full);
    }
}

/* What the checkout's progress callback needs to note each file it wrote. */
typedef struct written {
    const kiln_git_opts_t *opts;
    git_tree *tree;
    const char *dest;
} written_t;

/* libgit2 progress, called after each file the checkout wrote: hands it to opts->on_file
 * with its blob id (a link or a directory is not a regular file: skipped). */
static void on_written(const char *path, size_t done, size_t total, void *payload)
{
    written_t *w = payload;
    git_tree_entry *te = NULL;
    (void)done;
    (void)total;

    if (path == NULL || w->opts->on_file == NULL || git_tree_entry_bypath(&te, w->tree, path) < 0)
        return;
    if (git_tree_entry_type(te) == GIT_OBJECT_BLOB &&
        git_tree_entry_filemode(te) != GIT_FILEMODE_LINK) {
        char *full = kiln_xasprintf("%s/%s", w->dest, path), *slash = strrchr(full, '/');
        int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            *slash = '\0';
            w->opts->on_file(w->opts->on_file_ctx, full, slash + 1, fd, git_tree_entry_id(te)->id);
            close(fd);
        }
        free(full);
    }
    git_tree_entry_free(te);
}

/* The in-place checkout itself, under the mirror's lock: 1 when the commit has submodules
 * (the caller checks out afresh), -1 with err naming the URL and ref. */
static int checkout_kept_at(const char *url, const char *ref, const kiln_git_opts_t *opts,
                            const kiln_netpolicy_t *policy, const char *dest,
                            const char *index_path, char **commit, kiln_error_t *err)
{
    kiln_git_target_t t;
    git_index *idx = NULL;
    int ret = -1;
    git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;

    if (kiln_git_target_open(url, ref, opts, policy, dest, &t, err) < 0)
        return -1;
    if (git_tree_entry_byname(t.tree, ".gitmodules") != NULL) {
        ret = 1; /* submodules are checked out by the fresh path only */
        goto out;
    }
    /* in memory only: the shared mirror's config is not touched */
    if (git_repository_set_workdir(t.repo, dest, 0) < 0 || git_index_open(&idx, index_path) < 0 ||
        git_repository_set_index(t.repo, idx) < 0) {
        kiln_git_fail(err, "open the kept tree for", url, ref);
        goto out;
    }
    scrub_kept(idx, dest);
    written_t w = {.opts = opts, .tree = t.tree, .dest = dest};
    co.progress_cb = on_written;
    co.progress_payload = &w;
    co.checkout_strategy =
        GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
    co.disable_filters = 1; /* the blobs as they are, as the fresh checkout writes them */
    /* what the tree held is what the kept index says (not the mirror's HEAD, which the
     * fetch moved): a file changed or replaced since (a link planted) is rewritten */
    co.baseline_index = idx;
    if (git_checkout_tree(t.repo, (const git_object *)t.tree, &co) < 0 ||
        git_index_write(idx) < 0) {
        kiln_git_fail(err, "check out (kept tree)", url, ref);
        goto out;
    }
    *commit = kiln_xstrdup(t.sha);
    ret = 0;
out:
    git_index_free(idx);
    kiln_git_target_close(&t);
    return ret;
}

/* kiln_git_checkout_kept's arguments, through kiln_git_session. */
typedef struct kept {
    const char *url, *ref, *dest, *index_path;
    const kiln_git_opts_t *opts;
    char **commit;
} kept_t;

static int kept_checkout(void *ctx, const kiln_netpolicy_t *policy, kiln_error_t *err)
{
    kept_t *k = ctx;
    return checkout_kept_at(k->url, k->ref, k->opts, policy, k->dest, k->index_path, k->commit,
                            err);
}

int kiln_git_checkout_kept(const char *url, const char *ref, const kiln_git_opts_t *opts,
                           const char *dest, const char *index_path, char **commit,
                           kiln_error_t *err)
{
    kept_t k = {.url = url,
                .ref = ref,
                .dest = dest,
                .index_path = index_path,
                .opts = opts,
                .commit = commit};
    return kiln_git_session(url, opts, kept_checkout, &k, err);
}
