/* kiln — who wrote the commit a checkout resolved, and what it says (see git.h). */
#include <string.h>

#include "utils/cleanup.h"
#include "utils/git_impl.h"
#include "utils/mem.h"

/* s cut to at most max bytes at a UTF-8 character boundary, without trailing newlines;
 * malloc'ed, or NULL when s is NULL or empty. */
static char *cut(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;

    if (n > max)
        for (n = max; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
            ;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    return n ? kiln_xstrndup(s, n) : NULL;
}

int kiln_git_commit_info(const char *url, const kiln_git_opts_t *opts, const char *sha,
                         char **author, char **message, kiln_error_t *err)
{
    _cleanup_free_ char *path = NULL;
    git_repository *repo = NULL;
    git_commit *c = NULL;
    git_oid oid;
    int ret = -1;

    *author = *message = NULL;
    if (sha == NULL || git_oid_fromstr(&oid, sha) < 0)
        return kiln_error_set(err, 0, "commit info: '%s' is not a commit id", sha ? sha : "");
    path = kiln_git_mirror_path(opts->cache_dir, url);
    git_libgit2_init();
    /* the mirror the checkout just fetched into: read only, nothing fetched */
    if (git_repository_open_bare(&repo, path) < 0 || git_commit_lookup(&c, repo, &oid) < 0) {
        kiln_git_fail(err, "read commit of", url, sha);
        goto out;
    }
    *author = cut(git_commit_author(c) ? git_commit_author(c)->name : NULL, KILN_GIT_AUTHOR_MAX);
    *message = cut(git_commit_message(c), KILN_GIT_MESSAGE_MAX);
    ret = 0;
out:
    git_commit_free(c);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return ret;
}
