/* kiln — libgit2 loaded on first use (utils/lazylib).
 *
 * kiln is not linked against libgit2: these definitions of the git_*
 * functions kiln calls load libgit2.so.1.5 the first time one runs and
 * forward to it. libgit2 brings 18 more shared libraries (mbedTLS, Kerberos,
 * libssh2, PCRE2, http-parser) whose loading and relocation cost every
 * command 1.6 ms of CPU at start-up, `kiln run` and each build step's
 * sandbox included, which never touch a git repository.
 *
 * When the library cannot be loaded, every call fails (-1, NULL, nothing
 * done) and git_error_last says which library is missing and what needs it,
 * so each caller's usual "git: <libgit2's message>" names it. */
#include <git2.h>
#include <git2/sys/repository.h>
#include <git2/sys/stream.h>
#include <stdarg.h>
#include <stdio.h>

#include "utils/lazylib.h"

typedef git_repository R;
typedef git_remote Rm;
typedef git_tree_entry TE;
typedef const git_remote_callbacks CB;

/* Every libgit2 function kiln calls, but those written out below: git_error_last
 * (whose answer names the missing library), git_libgit2_version and git_oid_tostr
 * (outputs filled when unloadable), and the variadic git_error_set (forwarded as
 * git_error_set_str). */
#define GIT_FUNCS(F, V)                                                                            \
    F(int, git_libgit2_init, (void), (), -1)                                                       \
    F(int, git_libgit2_shutdown, (void), (), 0)                                                    \
    F(int, git_error_set_str, (int klass, const char *s), (klass, s), -1)                          \
    F(int, git_stream_register, (git_stream_t type, git_stream_registration * reg), (type, reg),   \
      -1)                                                                                          \
    F(int, git_repository_init, (R * *out, const char *path, unsigned bare), (out, path, bare),    \
      -1)                                                                                          \
    F(int, git_repository_open_bare, (R * *out, const char *path), (out, path), -1)                \
    V(git_repository_free, (R * repo), (repo))                                                     \
    F(int, git_repository_set_head, (R * repo, const char *ref), (repo, ref), -1)                  \
    F(int, git_repository_set_index, (R * repo, git_index * index), (repo, index), -1)             \
    F(int, git_repository_set_workdir, (R * repo, const char *dir, int update),                    \
      (repo, dir, update), -1)                                                                     \
    F(int, git_revparse_single, (git_object * *out, R * repo, const char *spec),                   \
      (out, repo, spec), -1)                                                                       \
    V(git_object_free, (git_object * o), (o))                                                      \
    F(int, git_checkout_tree,                                                                      \
      (R * repo, const git_object *treeish, const git_checkout_options *opts),                     \
      (repo, treeish, opts), -1)                                                                   \
    V(git_commit_free, (git_commit * c), (c))                                                      \
    F(const git_oid *, git_commit_id, (const git_commit *c), (c), NULL)                            \
    F(int, git_commit_tree, (git_tree * *out, const git_commit *c), (out, c), -1)                  \
    F(int, git_commit_lookup, (git_commit * *out, R * repo, const git_oid *id), (out, repo, id),   \
      -1)                                                                                          \
    F(const git_signature *, git_commit_author, (const git_commit *c), (c), NULL)                  \
    F(const char *, git_commit_message, (const git_commit *c), (c), NULL)                          \
    F(int, git_oid_fromstr, (git_oid * out, const char *str), (out, str), -1)                      \
    F(int, git_repository_open_ext,                                                                \
      (R * *out, const char *path, unsigned int flags, const char *ceiling),                       \
      (out, path, flags, ceiling), -1)                                                             \
    F(int, git_reference_name_to_id, (git_oid * out, R * repo, const char *name),                  \
      (out, repo, name), -1)                                                                       \
    F(int, git_remote_lookup, (Rm * *out, R * repo, const char *name), (out, repo, name), -1)      \
    F(const char *, git_remote_url, (const Rm *r), (r), NULL)                                      \
    V(git_blob_free, (git_blob * b), (b))                                                          \
    F(const git_oid *, git_blob_id, (const git_blob *b), (b), NULL)                                \
    F(int, git_blob_lookup, (git_blob * *out, R * repo, const git_oid *id), (out, repo, id), -1)   \
    F(const void *, git_blob_rawcontent, (const git_blob *b), (b), NULL)                           \
    F(git_object_size_t, git_blob_rawsize, (const git_blob *b), (b), 0)                            \
    V(git_buf_dispose, (git_buf * b), (b))                                                         \
    F(int, git_config_open_ondisk, (git_config * *out, const char *path), (out, path), -1)         \
    F(int, git_config_foreach, (const git_config *cfg, git_config_foreach_cb cb, void *data),      \
      (cfg, cb, data), -1)                                                                         \
    F(int, git_config_get_string_buf, (git_buf * out, const git_config *cfg, const char *name),    \
      (out, cfg, name), -1)                                                                        \
    V(git_config_free, (git_config * cfg), (cfg))                                                  \
    F(int, git_credential_ssh_key_from_agent, (git_credential * *out, const char *user),           \
      (out, user), -1)                                                                             \
    F(int, git_credential_userpass_plaintext_new,                                                  \
      (git_credential * *out, const char *user, const char *pass), (out, user, pass), -1)          \
    F(int, git_index_open, (git_index * *out, const char *path), (out, path), -1)                  \
    F(size_t, git_index_entrycount, (const git_index *index), (index), 0)                          \
    F(const git_index_entry *, git_index_get_byindex, (git_index * index, size_t n), (index, n),   \
      NULL)                                                                                        \
    F(int, git_index_remove, (git_index * index, const char *path, int stage),                     \
      (index, path, stage), -1)                                                                    \
    F(int, git_index_write, (git_index * index), (index), -1)                                      \
    V(git_index_free, (git_index * index), (index))                                                \
    F(int, git_oid_cpy, (git_oid * out, const git_oid *src), (out, src), -1)                       \
    F(int, git_remote_create_anonymous, (Rm * *out, R * repo, const char *url), (out, repo, url),  \
      -1)                                                                                          \
    F(int, git_remote_connect,                                                                     \
      (Rm * r, git_direction dir, CB * cb, const git_proxy_options *proxy,                         \
       const git_strarray *headers),                                                               \
      (r, dir, cb, proxy, headers), -1)                                                            \
    F(int, git_remote_default_branch, (git_buf * out, Rm * r), (out, r), -1)                       \
    F(int, git_remote_disconnect, (Rm * r), (r), -1)                                               \
    F(int, git_remote_download,                                                                    \
      (Rm * r, const git_strarray *refspecs, const git_fetch_options *opts), (r, refspecs, opts),  \
      -1)                                                                                          \
    F(int, git_remote_prune, (Rm * r, CB * cb), (r, cb), -1)                                       \
    F(int, git_remote_update_tips,                                                                 \
      (Rm * r, CB * cb, int fetchhead, git_remote_autotag_option_t tags, const char *msg),         \
      (r, cb, fetchhead, tags, msg), -1)                                                           \
    V(git_remote_free, (Rm * r), (r))                                                              \
    F(const TE *, git_tree_entry_byindex, (const git_tree *t, size_t i), (t, i), NULL)             \
    F(const TE *, git_tree_entry_byname, (const git_tree *t, const char *name), (t, name), NULL)   \
    F(int, git_tree_entry_bypath, (TE * *out, const git_tree *t, const char *path),                \
      (out, t, path), -1)                                                                          \
    F(git_filemode_t, git_tree_entry_filemode, (const TE *e), (e), GIT_FILEMODE_UNREADABLE)        \
    V(git_tree_entry_free, (TE * e), (e))                                                          \
    F(const git_oid *, git_tree_entry_id, (const TE *e), (e), NULL)                                \
    F(const char *, git_tree_entry_name, (const TE *e), (e), NULL)                                 \
    F(int, git_tree_entry_to_object, (git_object * *out, R * repo, const TE *e), (out, repo, e),   \
      -1)                                                                                          \
    F(git_object_t, git_tree_entry_type, (const TE *e), (e), GIT_OBJECT_INVALID)                   \
    F(size_t, git_tree_entrycount, (const git_tree *t), (t), 0)                                    \
    V(git_tree_free, (git_tree * t), (t))                                                          \
    F(int, git_tree_walk,                                                                          \
      (const git_tree *t, git_treewalk_mode mode, git_treewalk_cb cb, void *data),                 \
      (t, mode, cb, data), -1)

#define GIT_HANDWRITTEN(F, V)                                                                      \
    F(const git_error *, git_error_last, (void), (), NULL)                                         \
    F(int, git_libgit2_version, (int *major, int *minor, int *rev), (major, minor, rev), -1)       \
    F(char *, git_oid_tostr, (char *out, size_t n, const git_oid *id), (out, n, id), NULL)

KILN_LAZYLIB_DEFINE(GIT_FUNCS, GIT_HANDWRITTEN, "libgit2.so.1.5",
                    "for git sources: clone, fetch, checkout and the mirror cache")
KILN_LAZYLIB_PRELOADER(git)

const git_error *git_error_last(void)
{
    static git_error unloaded = {.message = lazy_error, .klass = GIT_ERROR_OS};

    if (lazy_ready() < 0)
        return &unloaded;
    return lazy_fn.git_error_last();
}

void git_error_set(int klass, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (lazy_ready() < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lazy_fn.git_error_set_str(klass, msg);
}

/* kiln version prints 0.0.0 rather than what a caller left in the outputs. */
int git_libgit2_version(int *major, int *minor, int *rev)
{
    if (lazy_ready() < 0) {
        *major = *minor = *rev = 0;
        return -1;
    }
    return lazy_fn.git_libgit2_version(major, minor, rev);
}

/* An empty string, as libgit2 writes for a NULL id. */
char *git_oid_tostr(char *out, size_t n, const git_oid *id)
{
    if (lazy_ready() < 0) {
        if (out != NULL && n > 0)
            out[0] = '\0';
        return out;
    }
    return lazy_fn.git_oid_tostr(out, n, id);
}
