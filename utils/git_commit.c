/* kiln — who wrote the commit a checkout resolved, and what it says; a local directory's
 * repository, HEAD and origin (see git.h). */
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

int kiln_git_dir_info(const char *dir, char **url, char **commit)
{
    git_repository *repo = NULL;
    git_remote *origin = NULL;
    git_oid oid;
    char sha[GIT_OID_HEXSZ + 1];
    int ret = 0;

    *url = *commit = NULL;
    git_libgit2_init();
    if (git_repository_open_ext(&repo, dir, 0, NULL) < 0 ||
        git_reference_name_to_id(&oid, repo, "HEAD") < 0)
        goto out;
    git_oid_tostr(sha, sizeof(sha), &oid);
    *commit = kiln_xstrdup(sha);
    if (git_remote_lookup(&origin, repo, "origin") == 0 && git_remote_url(origin))
        *url = kiln_git_redact(git_remote_url(origin));
    ret = 1;
out:
    git_remote_free(origin);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return ret;
}
