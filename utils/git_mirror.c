/* kiln — the mirror cache (see git.h): one bare mirror per URL (named by the hash of the URL
 * without credentials) created by temp + rename and locked while used, fetched with all
 * branches and tags over the policed stream with the credentials git.h lists, and a ref
 * resolved in it (branch, tag, then commit). */
#include "utils/git.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/git_impl.h"
#include "utils/mem.h"

typedef struct cred_ctx {
    const kiln_git_opts_t *opts;
    const char *url;
    int attempts;
    bool offered; /* we handed out a credential */
} cred_ctx_t;

/* Looks `host` up in the credentials file ("HOST TOKEN" or "HOST USER:PASS"
 * per line, # comments). Returns a malloc'ed secret or NULL. */
static char *file_secret(const char *path, const char *host)
{
    _cleanup_free_ char *text = NULL;
    kiln_error_t e = {0};
    char *save = NULL, *line;
    size_t hl = strlen(host);

    if (path == NULL || kiln_fs_read_file(path, KILN_GIT_SMALL_FILE_CAP, &text, NULL, &e) < 0)
        return NULL;
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == '#' || strncmp(line, host, hl) != 0 || (line[hl] != ' ' && line[hl] != '\t'))
            continue;
        line += hl;
        while (*line == ' ' || *line == '\t')
            line++;
        line[strcspn(line, " \t\r")] = '\0';
        if (*line)
            return kiln_xstrdup(line);
    }
    return NULL;
}

/* The secret for a host: KILN_GIT_TOKEN_<HOST>, the file, KILN_GIT_TOKEN. */
static char *host_secret(const kiln_git_opts_t *opts, const char *host)
{
    _cleanup_free_ char *var = kiln_xasprintf("KILN_GIT_TOKEN_%s", host);
    _cleanup_free_ char *bare = kiln_xstrdup(host);
    const char *v;
    char *s;

    for (char *p = var + 15; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    if (opts->credential && opts->credential_host && strcmp(opts->credential_host, host) == 0)
        return kiln_xstrdup(opts->credential);
    if ((v = kiln_env_get(opts->env, var)) != NULL)
        return kiln_xstrdup(v);
    if ((s = file_secret(opts->credentials_file, host)) != NULL)
        return s;
    bare[strcspn(bare, ":")] = '\0';
    if (strcmp(bare, host) != 0 && (s = file_secret(opts->credentials_file, bare)) != NULL)
        return s;
    if ((v = kiln_env_get(opts->env, "KILN_GIT_TOKEN")) != NULL)
        return kiln_xstrdup(v);
    return NULL;
}

/* libgit2 credential callback: one try per kind, then give up. */
static int credentials_cb(git_credential **out, const char *url, const char *user_from_url,
                          unsigned int allowed, void *payload)
{
    cred_ctx_t *c = payload;
    _cleanup_free_ char *host = kiln_git_url_host(url), *secret = NULL;
    const char *colon;

    if (++c->attempts > 2)
        return GIT_EUSER;
    if (allowed & GIT_CREDENTIAL_SSH_KEY)
        return git_credential_ssh_key_from_agent(out, user_from_url ? user_from_url : "git");
    if (!(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT))
        return GIT_PASSTHROUGH;
    secret = host_secret(c->opts, host);
    if (secret == NULL || c->attempts > 1)
        return GIT_EUSER;
    c->offered = true;
    colon = strchr(secret, ':');
    if (colon != NULL) {
        _cleanup_free_ char *user = kiln_xstrndup(secret, (size_t)(colon - secret));
        return git_credential_userpass_plaintext_new(out, user, colon + 1);
    }
    return git_credential_userpass_plaintext_new(
        out, user_from_url && *user_from_url ? user_from_url : "x-access-token", secret);
}

char *kiln_git_mirror_path(const char *cache, const char *url)
{
    _cleanup_free_ char *key = kiln_git_scrub_userinfo(url, NULL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < mdlen && i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return kiln_xasprintf("%s/%s.git", cache, hex);
}

/* Fetches all branches and tags of `url` into the bare repo, and points its
 * HEAD at the remote's default branch. */
static int mirror_fetch(git_repository *repo, const char *url, const kiln_git_opts_t *opts,
                        const kiln_netpolicy_t *policy, kiln_error_t *err)
{
    git_remote *remote = NULL;
    git_fetch_options fo = GIT_FETCH_OPTIONS_INIT;
    char *specs[] = {"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"};
    git_strarray refspecs = {specs, 2};
    cred_ctx_t cc = {.opts = opts, .url = url};
    git_buf def = GIT_BUF_INIT;
    int ret = -1;

    if (git_remote_create_anonymous(&remote, repo, url) < 0)
        return kiln_git_fail(err, "remote", url, NULL);
    kiln_git_stream_set_policy(policy);
    fo.callbacks.credentials = credentials_cb;
    fo.callbacks.payload = &cc;
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
    if (git_remote_connect(remote, GIT_DIRECTION_FETCH, &fo.callbacks, NULL, NULL) < 0) {
        if (cc.attempts > 0) {
            _cleanup_free_ char *red = kiln_git_redact(url);
            kiln_error_set(err, 0,
                           "git fetch %s: authentication failed (%s); set KILN_GIT_TOKEN, "
                           "KILN_GIT_TOKEN_<HOST>, a credentials file line, or the ssh agent",
                           red, cc.offered ? "the credential was refused" : "no credential");
        } else {
            kiln_git_fail(err, "fetch", url, NULL);
        }
        goto out;
    }
    if (git_remote_default_branch(&def, remote) == 0)
        git_repository_set_head(repo, def.ptr);
    if (git_remote_download(remote, &refspecs, &fo) < 0 ||
        git_remote_update_tips(remote, &fo.callbacks, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, NULL) < 0 ||
        git_remote_prune(remote, &fo.callbacks) < 0) {
        kiln_git_fail(err, "fetch", url, NULL);
        goto out;
    }
    ret = 0;
out:
    git_buf_dispose(&def);
    if (remote) {
        git_remote_disconnect(remote);
        git_remote_free(remote);
    }
    kiln_git_stream_set_policy(NULL);
    return ret;
}

/* Opens (or creates, temp + rename) the mirror of `url` and fetches into it.
 * `lockfd` receives the held lock on the mirror. */
int kiln_git_mirror_open(const char *url, const kiln_git_opts_t *opts,
                         const kiln_netpolicy_t *policy, git_repository **out, int *lockfd,
                         kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_git_mirror_path(opts->cache_dir, url);
    _cleanup_free_ char *lock = kiln_xasprintf("%s.lock", path);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    git_repository *repo = NULL;
    struct stat st;

    if (kiln_fs_mkdir_p(opts->cache_dir, 0700, err) < 0)
        return -1;
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return kiln_error_set(err, errno, "lock %s", lock);
    /* another checkout of the repository holds it: wait, within the checkout's deadline */
    while (flock(fd, kiln_git_deadline_left_ms() < 0 ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return kiln_error_set(err, errno, "lock %s", lock);
        if (kiln_git_deadline_left_ms() == 0) {
            _cleanup_free_ char *red = kiln_git_redact(url);
            return kiln_error_set(err, ETIMEDOUT,
                                  "git fetch %s: another checkout of it held its mirror past the "
                                  "checkout's timeout",
                                  red);
        }
        usleep(50000);
    }
    if (stat(path, &st) == 0) {
        if (git_repository_open_bare(&repo, path) < 0)
            return kiln_git_fail(err, "open mirror of", url, NULL);
        if (mirror_fetch(repo, url, opts, policy, err) < 0) {
            git_repository_free(repo);
            return -1;
        }
    } else {
        if (kiln_fs_mkdtemp(opts->cache_dir, ".mirror-", &tmp, err) < 0)
            return -1;
        if (git_repository_init(&repo, tmp, 1) < 0) {
            kiln_git_fail(err, "init mirror of", url, NULL);
            kiln_fs_rm_rf(tmp, NULL);
            return -1;
        }
        if (mirror_fetch(repo, url, opts, policy, err) < 0) {
            git_repository_free(repo);
            kiln_fs_rm_rf(tmp, NULL);
            return -1;
        }
        git_repository_free(repo);
        repo = NULL;
        if (rename(tmp, path) < 0) {
            kiln_fs_rm_rf(tmp, NULL);
            return kiln_error_set(err, errno, "rename mirror to %s", path);
        }
        if (git_repository_open_bare(&repo, path) < 0)
            return kiln_git_fail(err, "open mirror of", url, NULL);
    }
    *out = repo;
    *lockfd = steal_fd(&fd);
    return 0;
}

/* Resolves a ref in the mirror: NULL = HEAD, then refs/heads/REF, refs/tags/REF,
 * then a commit SHA (full or abbreviated). */
/* Resolves a ref in the mirror (see kiln_git_target_open). -1 naming the ref and the URL. */
static int resolve_ref(git_repository *repo, const char *url, const char *ref, git_commit **out,
                       kiln_error_t *err)
{
    git_object *obj = NULL;
    bool hex = ref != NULL && strlen(ref) >= 4 && strlen(ref) <= 40;
    int r;

    for (const char *p = ref; hex && *p; p++)
        hex = isxdigit((unsigned char)*p);
    if (ref == NULL) {
        r = git_revparse_single(&obj, repo, "HEAD^{commit}");
    } else {
        _cleanup_free_ char *h = kiln_xasprintf("refs/heads/%s^{commit}", ref);
        _cleanup_free_ char *t = kiln_xasprintf("refs/tags/%s^{commit}", ref);
        _cleanup_free_ char *c = kiln_xasprintf("%s^{commit}", ref);
        r = git_revparse_single(&obj, repo, h);
        if (r < 0)
            r = git_revparse_single(&obj, repo, t);
        if (r < 0 && hex)
            r = git_revparse_single(&obj, repo, c);
    }
    if (r < 0) {
        _cleanup_free_ char *red = kiln_git_redact(url);
        return kiln_error_set(err, 0, "git: %s%s not found in %s (searched branches, tags%s)",
                              ref ? "ref " : "the default branch", ref ? ref : "", red,
                              hex ? " and commits" : "");
    }
    *out = (git_commit *)obj;
    return 0;
}

int kiln_git_target_open(const char *url, const char *ref, const kiln_git_opts_t *opts,
                         const kiln_netpolicy_t *policy, const char *dest, kiln_git_target_t *t,
                         kiln_error_t *err)
{
    memset(t, 0, sizeof(*t));
    t->lockfd = -1;
    if (mkdir(dest, 0755) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", dest);
    if (kiln_git_mirror_open(url, opts, policy, &t->repo, &t->lockfd, err) < 0)
        return -1;
    if (resolve_ref(t->repo, url, ref, &t->commit, err) < 0)
        goto fail;
    if (git_commit_tree(&t->tree, t->commit) < 0) {
        kiln_git_fail(err, "read tree of", url, ref);
        goto fail;
    }
    git_oid_tostr(t->sha, sizeof(t->sha), git_commit_id(t->commit));
    return 0;
fail:
    kiln_git_target_close(t);
    return -1;
}

void kiln_git_target_close(kiln_git_target_t *t)
{
    git_tree_free(t->tree);
    git_commit_free(t->commit);
    git_repository_free(t->repo);
    if (t->lockfd >= 0)
        close(t->lockfd);
    memset(t, 0, sizeof(*t));
    t->lockfd = -1;
}
