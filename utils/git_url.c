/* kiln — git URLs (see git.h): what kind of address a source is, its ref and host, URLs with
 * their credentials redacted (also inside libgit2's error text), and which URLs the source
 * policy lets a checkout or a submodule fetch, with the address policy their connections
 * get. */
#include "utils/git.h"

#include <ctype.h>
#include <git2.h>
#include <string.h>
#include <sys/stat.h>

#include "utils/cleanup.h"
#include "utils/git_impl.h"
#include "utils/mem.h"

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
char *kiln_git_scrub_userinfo(const char *text, const char *repl)
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
    return kiln_git_scrub_userinfo(url, "***");
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

/* The address policy for a URL: the operator's own URL outside server mode
 * refuses only link-local and metadata addresses; everything else is public
 * plus the allowlist. */
int kiln_git_url_policy(const kiln_git_policy_t *gp, bool operator_url, kiln_netpolicy_t **out,
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
int kiln_git_check_url(const kiln_git_policy_t *gp, const char *url, const char *sm_name,
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

/* Fills err from libgit2's last error, with URLs in it redacted. */
int kiln_git_fail(kiln_error_t *err, const char *what, const char *url, const char *ref)
{
    const git_error *ge = git_error_last();
    _cleanup_free_ char *red = kiln_git_redact(url);
    _cleanup_free_ char *msg =
        kiln_git_scrub_userinfo(ge && ge->message ? ge->message : "failed", "***");

    if (ref)
        return kiln_error_set(err, 0, "git %s %s#%s: %s", what, red, ref, msg);
    return kiln_error_set(err, 0, "git %s %s: %s", what, red, msg);
}
