/* kiln — git sources over libgit2 (see git.h). */
#include "utils/git.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <git2/sys/stream.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/netpolicy.h"

/* Deepest submodule nesting followed. */
#define SUBMODULE_DEPTH_MAX 8
/* Largest credentials file and .gitmodules read. */
#define SMALL_FILE_CAP (256 * 1024)

bool kiln_git_is_url(const char *s)
{
    static const char *const schemes[] = {"http://", "https://", "git://", "ssh://", "file://"};
    const char *colon, *slash, *at;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0)
            return true;
    /* scp-like: user@host:path (a '@' and a ':' before any '/'). */
    at = strchr(s, '@');
    colon = strchr(s, ':');
    slash = strchr(s, '/');
    return at && colon && at < colon && (slash == NULL || colon < slash) && at != s;
}

kiln_git_transport_t kiln_git_url_transport(const char *url)
{
    /* the prefixes libgit2 knows, matched as it does (case-sensitively) */
    static const struct {
        const char *prefix;
        kiln_git_transport_t t;
    } schemes[] = {{"https://", KILN_GIT_HTTPS}, {"http://", KILN_GIT_HTTP},
                   {"ssh://", KILN_GIT_SSH},     {"git+ssh://", KILN_GIT_SSH},
                   {"ssh+git://", KILN_GIT_SSH}, {"git://", KILN_GIT_PLAIN},
                   {"file://", KILN_GIT_LOCAL}};
    size_t word = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
    struct stat st;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncmp(url, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
            return schemes[i].t;
    if (url[0] == '\0' ||
        (word > 0 && (strncmp(url + word, "::", 2) == 0 || strncmp(url + word, "://", 3) == 0)))
        return KILN_GIT_OTHER; /* git's remote helpers (ext::, fd::), unknown schemes */
    /* scp-like [user@]host:path (a ':' before any '/'); libgit2 prefers a
     * local path of that name when one exists */
    if (colon != NULL && colon != url && (slash == NULL || colon < slash) && lstat(url, &st) < 0)
        return KILN_GIT_SSH;
    return KILN_GIT_LOCAL;
}

void kiln_git_split_ref(const char *spec, char **url, char **ref)
{
    const char *hash = strrchr(spec, '#');

    if (hash == NULL || hash[1] == '\0') {
        *url = hash ? kiln_xstrndup(spec, (size_t)(hash - spec)) : kiln_xstrdup(spec);
        *ref = NULL;
        return;
    }
    *url = kiln_xstrndup(spec, (size_t)(hash - spec));
    *ref = kiln_xstrdup(hash + 1);
}

/* Copies `text`, replacing the userinfo of every "scheme://user[:pw]@" in it
 * with `repl` (NULL = drop it and its '@'). */
static char *scrub_userinfo(const char *text, const char *repl)
{
    size_t n = strlen(text), o = 0, rl = repl ? strlen(repl) + 1 : 0;
    char *out = kiln_xmalloc(n * (rl + 1) + 1);
    const char *p = text;

    while (*p) {
        const char *sep = strstr(p, "://"), *host, *end, *at = NULL;
        if (sep == NULL)
            break;
        host = sep + 3;
        memcpy(out + o, p, (size_t)(host - p));
        o += (size_t)(host - p);
        for (end = host;
             *end && *end != '/' && !isspace((unsigned char)*end) && *end != '\'' && *end != '"';
             end++)
            if (*end == '@')
                at = end;
        if (at != NULL) {
            if (repl) {
                memcpy(out + o, repl, rl - 1);
                o += rl - 1;
                out[o++] = '@';
            }
            host = at + 1;
        }
        memcpy(out + o, host, (size_t)(end - host));
        o += (size_t)(end - host);
        p = end;
    }
    memcpy(out + o, p, strlen(p) + 1);
    return out;
}

char *kiln_git_redact(const char *url)
{
    return scrub_userinfo(url, "***");
}

char *kiln_git_url_host(const char *url)
{
    const char *s = strstr(url, "://"), *e, *at;

    if (s != NULL) {
        s += 3;
        e = s + strcspn(s, "/");
    } else { /* user@host:path */
        s = url;
        e = s + strcspn(s, ":");
    }
    at = memchr(s, '@', (size_t)(e - s));
    if (at)
        s = at + 1;
    return kiln_xstrndup(s, (size_t)(e - s));
}

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

    if (path == NULL || kiln_fs_read_file(path, SMALL_FILE_CAP, &text, NULL, &e) < 0)
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

/* Fills err from libgit2's last error, with URLs in it redacted. */
static int git_fail(kiln_error_t *err, const char *what, const char *url, const char *ref)
{
    const git_error *ge = git_error_last();
    _cleanup_free_ char *red = kiln_git_redact(url);
    _cleanup_free_ char *msg = scrub_userinfo(ge && ge->message ? ge->message : "failed", "***");

    if (ref)
        return kiln_error_set(err, 0, "git %s %s#%s: %s", what, red, ref, msg);
    return kiln_error_set(err, 0, "git %s %s: %s", what, red, msg);
}

/* The mirror directory for a URL: <cache>/<sha256 of the URL without userinfo>.git */
static char *mirror_path(const char *cache, const char *url)
{
    _cleanup_free_ char *key = scrub_userinfo(url, NULL);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < mdlen && i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return kiln_xasprintf("%s/%s.git", cache, hex);
}

/* --- the address policy on libgit2's connections ---------------------- */

/* The policy the connections of this thread's fetch must pass (set around
 * each fetch; NULL outside one: link-local and metadata are still refused). */
static __thread const kiln_netpolicy_t *fetch_policy;

/* A TCP stream registered as libgit2's GIT_STREAM_STANDARD: its http
 * transport, its OpenSSL TLS stream (which wraps the standard stream) and its
 * ssh transport all open connections through it. The layout is that of
 * libgit2's own git_socket_stream (parent, host, port, fd) because its ssh
 * transport hands the fd in that place to libssh2. */
typedef struct policed_stream {
    git_stream parent;
    char *host;
    char *port;
    int s;
} policed_stream_t;

/* Resolves the host, checks each candidate address with the policy and
 * connects to the first that passes and answers: the address checked is the
 * address connected to, whatever DNS says next. */
static int ps_connect(git_stream *gs)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    const kiln_netpolicy_t *p = fetch_policy;
    kiln_netpolicy_t *fallback = p ? NULL : kiln_netpolicy_new(KILN_NETPOLICY_NO_LINK_LOCAL);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *ai = NULL;
    kiln_error_t refusal = {0};
    int gai, last_errno = 0;

    gai = getaddrinfo(st->host, st->port, &hints, &ai);
    if (gai != 0) {
        kiln_netpolicy_free(fallback);
        git_error_set(GIT_ERROR_NET, "failed to resolve address for %s: %s", st->host,
                      gai_strerror(gai));
        return -1;
    }
    for (struct addrinfo *a = ai; a != NULL && st->s < 0; a = a->ai_next) {
        int fd;
        if (kiln_netpolicy_check(p ? p : fallback, a->ai_addr, a->ai_addrlen,
                                 refusal.msg[0] ? NULL : &refusal) < 0)
            continue;
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            last_errno = errno;
            close(fd);
            continue;
        }
        st->s = fd;
    }
    freeaddrinfo(ai);
    kiln_netpolicy_free(fallback);
    if (st->s >= 0)
        return 0;
    if (refusal.msg[0] && last_errno == 0 &&
        strncmp(refusal.msg, st->host, strlen(st->host)) == 0) /* an address: said once */
        git_error_set_str(GIT_ERROR_NET, refusal.msg);
    else if (refusal.msg[0] && last_errno == 0)
        git_error_set(GIT_ERROR_NET, "%s: %s", st->host, refusal.msg);
    else
        git_error_set(GIT_ERROR_NET, "failed to connect to %s: %s", st->host,
                      strerror(last_errno ? last_errno : ECONNREFUSED));
    return -1;
}

static int ps_certificate(git_cert **out, git_stream *gs)
{
    (void)out;
    (void)gs;
    git_error_set_str(GIT_ERROR_NET, "a plain TCP stream has no certificate");
    return -1;
}

static ssize_t ps_read(git_stream *gs, void *data, size_t len)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    ssize_t n;
    do {
        n = recv(st->s, data, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        git_error_set(GIT_ERROR_NET, "read from %s: %s", st->host, strerror(errno));
    return n;
}

static ssize_t ps_write(git_stream *gs, const char *data, size_t len, int flags)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(st->s, data + off, len - off, flags | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            git_error_set(GIT_ERROR_NET, "write to %s: %s", st->host, strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    return (ssize_t)len;
}

static int ps_close(git_stream *gs)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    if (st->s >= 0)
        close(st->s);
    st->s = -1;
    return 0;
}

static void ps_free(git_stream *gs)
{
    policed_stream_t *st = (policed_stream_t *)gs;
    ps_close(gs);
    free(st->host);
    free(st->port);
    free(st);
}

static int ps_new(git_stream **out, const char *host, const char *port)
{
    static const git_stream ops = {.version = GIT_STREAM_VERSION,
                                   .connect = ps_connect,
                                   .certificate = ps_certificate,
                                   .read = ps_read,
                                   .write = ps_write,
                                   .close = ps_close,
                                   .free = ps_free};
    policed_stream_t *st = kiln_xzalloc(sizeof(*st));
    st->parent = ops;
    st->host = kiln_xstrdup(host);
    st->port = kiln_xstrdup(port);
    st->s = -1;
    *out = &st->parent;
    return 0;
}

/* Registers the policed stream (again after each git_libgit2_init: the
 * registry is cleared when libgit2 shuts down). */
static int register_stream(kiln_error_t *err)
{
    git_stream_registration reg = {.version = GIT_STREAM_VERSION, .init = ps_new};
    if (git_stream_register(GIT_STREAM_STANDARD, &reg) < 0)
        return kiln_error_set(err, 0, "git: cannot register the policed socket stream");
    return 0;
}

/* --- which URLs a checkout may fetch ---------------------------------- */

/* The address policy for a URL: the operator's own URL outside server mode
 * refuses only link-local and metadata addresses; everything else is public
 * plus the allowlist. */
static int url_policy(const kiln_git_policy_t *gp, bool operator_url, kiln_netpolicy_t **out,
                      kiln_error_t *err)
{
    return kiln_netpolicy_with(operator_url && !gp->server_mode ? KILN_NETPOLICY_NO_LINK_LOCAL
                                                                : KILN_NETPOLICY_PUBLIC,
                               gp->allow_addresses, gp->n_allow_addresses, out, err);
}

/* Whether url may be fetched under gp; -1 naming it and what would allow
 * it. sm_name and sm_raw name the submodule and its .gitmodules URL (NULL for
 * the repository itself); local_parent says the repository holding that
 * .gitmodules is itself local. */
static int check_url(const kiln_git_policy_t *gp, const char *url, const char *sm_name,
                     const char *sm_raw, bool local_parent, kiln_error_t *err)
{
    kiln_git_transport_t t = kiln_git_url_transport(url);
    _cleanup_free_ char *what = NULL, *red = kiln_git_redact(url);
    const char *why = NULL;

    if (t == KILN_GIT_HTTPS || t == KILN_GIT_SSH)
        return 0;
    if ((t == KILN_GIT_HTTP || t == KILN_GIT_PLAIN) && gp->allow_http)
        return 0;
    if (!gp->server_mode && t == KILN_GIT_LOCAL && (sm_name == NULL || local_parent))
        return 0; /* the operator's own repository on this host */
    if (!gp->server_mode && t == KILN_GIT_OTHER && sm_name == NULL)
        return 0; /* libgit2 itself refuses what it cannot fetch */
    if (sm_name != NULL) {
        _cleanup_free_ char *raw = kiln_git_redact(sm_raw);
        what =
            strcmp(sm_raw, url) == 0
                ? kiln_xasprintf("submodule \"%s\": URL %s in .gitmodules", sm_name, raw)
                : kiln_xasprintf("submodule \"%s\": URL %s (%s) in .gitmodules", sm_name, raw, red);
    } else {
        what = kiln_xasprintf("git source %s", red);
    }
    if (t == KILN_GIT_HTTP || t == KILN_GIT_PLAIN)
        why = gp->server_mode ? "plain-text git needs \"policy\": {\"allow_http_git\": true} in "
                                "the server config"
                              : "plain-text git needs --allow-http-git";
    if (gp->server_mode)
        return kiln_error_set(err, 0,
                              "%s is not allowed for server builds (only https:// and ssh://%s%s)",
                              what, why ? "; " : "", why ? why : "");
    if (why != NULL)
        return kiln_error_set(err, 0, "%s is not allowed (%s)", what, why);
    return kiln_error_set(err, 0,
                          "%s is not allowed: a submodule of a remote repository must be "
                          "https:// or ssh://",
                          what);
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
        return git_fail(err, "remote", url, NULL);
    fetch_policy = policy;
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
            git_fail(err, "fetch", url, NULL);
        }
        goto out;
    }
    if (git_remote_default_branch(&def, remote) == 0)
        git_repository_set_head(repo, def.ptr);
    if (git_remote_download(remote, &refspecs, &fo) < 0 ||
        git_remote_update_tips(remote, &fo.callbacks, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, NULL) < 0 ||
        git_remote_prune(remote, &fo.callbacks) < 0) {
        git_fail(err, "fetch", url, NULL);
        goto out;
    }
    ret = 0;
out:
    git_buf_dispose(&def);
    if (remote) {
        git_remote_disconnect(remote);
        git_remote_free(remote);
    }
    fetch_policy = NULL;
    return ret;
}

/* Opens (or creates, temp + rename) the mirror of `url` and fetches into it.
 * `lockfd` receives the held lock on the mirror. */
static int mirror_open(const char *url, const kiln_git_opts_t *opts, const kiln_netpolicy_t *policy,
                       git_repository **out, int *lockfd, kiln_error_t *err)
{
    _cleanup_free_ char *path = mirror_path(opts->cache_dir, url);
    _cleanup_free_ char *lock = kiln_xasprintf("%s.lock", path);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    git_repository *repo = NULL;
    struct stat st;

    if (kiln_fs_mkdir_p(opts->cache_dir, 0700, err) < 0)
        return -1;
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0)
        return kiln_error_set(err, errno, "lock %s", lock);
    if (stat(path, &st) == 0) {
        if (git_repository_open_bare(&repo, path) < 0)
            return git_fail(err, "open mirror of", url, NULL);
        if (mirror_fetch(repo, url, opts, policy, err) < 0) {
            git_repository_free(repo);
            return -1;
        }
    } else {
        if (kiln_fs_mkdtemp(opts->cache_dir, ".mirror-", &tmp, err) < 0)
            return -1;
        if (git_repository_init(&repo, tmp, 1) < 0) {
            git_fail(err, "init mirror of", url, NULL);
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
            return git_fail(err, "open mirror of", url, NULL);
    }
    *out = repo;
    *lockfd = steal_fd(&fd);
    return 0;
}

/* Resolves a ref in the mirror: NULL = HEAD, then refs/heads/REF, refs/tags/REF,
 * then a commit SHA (full or abbreviated). */
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
        return git_fail(err, "read tree of", url, NULL);
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
    if (git_blob_rawsize(blob) > SMALL_FILE_CAP) {
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
        ret = git_fail(err, "parse .gitmodules of", url, NULL);
        goto out;
    }
    if (url_policy(&opts->policy, false, &policy, err) < 0)
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
            r = check_url(&opts->policy, abs, f.name + 10, sub_url.ptr, local_parent, err);
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
    git_repository *repo = NULL;
    git_commit *c = NULL;
    git_tree *tree = NULL;
    _cleanup_close_ int lockfd = -1;
    char sha[GIT_OID_HEXSZ + 1];
    int ret = -1;

    if (mkdir(dest, 0755) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", dest);
    if (mirror_open(url, opts, policy, &repo, &lockfd, err) < 0)
        return -1;
    if (resolve_ref(repo, url, ref, &c, err) < 0)
        goto out;
    if (git_commit_tree(&tree, c) < 0) {
        git_fail(err, "read tree of", url, ref);
        goto out;
    }
    {
        _cleanup_close_ int dfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) {
            kiln_error_set(err, errno, "open %s", dest);
            goto out;
        }
        if (write_tree(repo, tree, dfd, dest, opts, err) < 0) {
            kiln_error_prefix(err, "git checkout %s", ref ? ref : "HEAD");
            goto out;
        }
    }
    git_oid_tostr(sha, sizeof(sha), git_commit_id(c));
    if (checkout_submodules(repo, tree, url, opts, dest, depth, err) < 0)
        goto out;
    *commit = kiln_xstrdup(sha);
    ret = 0;
out:
    git_tree_free(tree);
    git_commit_free(c);
    git_repository_free(repo);
    return ret;
}

int kiln_git_checkout(const char *url, const char *ref, const kiln_git_opts_t *opts,
                      const char *dest, char **commit, kiln_error_t *err)
{
    kiln_netpolicy_t *policy = NULL;
    struct stat st;
    int ret;

    if (stat(dest, &st) == 0)
        return kiln_error_set(err, EEXIST, "git checkout destination %s", dest);
    if (check_url(&opts->policy, url, NULL, NULL, false, err) < 0 ||
        url_policy(&opts->policy, true, &policy, err) < 0)
        return -1;
    git_libgit2_init();
    ret = register_stream(err);
    if (ret == 0)
        ret = checkout_at(url, ref, opts, policy, dest, 0, commit, err);
    git_libgit2_shutdown();
    kiln_netpolicy_free(policy);
    if (ret < 0)
        kiln_fs_rm_rf(dest, NULL); /* nothing half-written is left */
    return ret;
}
