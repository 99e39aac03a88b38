/* kiln — registry credentials and tokens: the credentials of a registry (docker config,
 * credential helpers, providers), Basic headers, Bearer tokens fetched from the challenge's
 * realm (over the same address policy as the registry) and cached per host and scope until
 * they expire, and the answer to a 401. */
#include "oci/registry.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oci/registry_http.h"
#include "oci/www_auth.h"
#include "utils/cleanup.h"
#include "utils/json.h"
#include "utils/mem.h"

#define TOKEN_BODY_CAP (1024u * 1024)

/* Credentials for a registry (cached). 1 found, 0 none, <0 error. */
static int get_cred(kiln_registry_t *r, const char *registry, kiln_cred_t *out, kiln_error_t *err)
{
    kiln_reg_cred_t *c;
    kiln_cred_t got = {0};
    int rc;

    pthread_mutex_lock(&r->lock);
    for (c = r->creds; c != NULL; c = c->next)
        if (strcmp(c->registry, registry) == 0)
            break;
    if (c == NULL) {
        rc = kiln_docker_config_get(registry, &got, err);
        if (rc < 0) {
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        c = kiln_xzalloc(sizeof(*c));
        c->registry = kiln_xstrdup(registry);
        c->found = rc;
        c->c = got;
        c->next = r->creds;
        r->creds = c;
    }
    if (c->found) {
        out->username = c->c.username ? kiln_xstrdup(c->c.username) : NULL;
        out->password = c->c.password ? kiln_xstrdup(c->c.password) : NULL;
        out->identity_token = c->c.identity_token ? kiln_xstrdup(c->c.identity_token) : NULL;
    }
    pthread_mutex_unlock(&r->lock);
    return c->found;
}

static void cred_cleanup(kiln_cred_t *c)
{
    kiln_cred_clear(c);
}

static char *token_key(const kiln_reg_repo_t *repo)
{
    return kiln_xasprintf("%s|%s", repo->ep->host, repo->scope);
}

static char *cache_lookup(kiln_registry_t *r, const char *key)
{
    char *hdr = NULL;
    time_t now = time(NULL);
    pthread_mutex_lock(&r->lock);
    for (kiln_reg_token_t *t = r->tokens; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0 && t->expires > now) {
            hdr = kiln_xstrdup(t->header);
            break;
        }
    pthread_mutex_unlock(&r->lock);
    return hdr;
}

static void cache_store(kiln_registry_t *r, const char *key, const char *hdr, time_t expires)
{
    kiln_reg_token_t *t;
    pthread_mutex_lock(&r->lock);
    for (t = r->tokens; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0)
            break;
    if (t == NULL) {
        t = kiln_xzalloc(sizeof(*t));
        t->key = kiln_xstrdup(key);
        t->next = r->tokens;
        r->tokens = t;
    } else {
        explicit_bzero(t->header, strlen(t->header));
        free(t->header);
    }
    t->header = kiln_xstrdup(hdr);
    t->expires = expires;
    pthread_mutex_unlock(&r->lock);
}

static void cache_drop(kiln_registry_t *r, const char *key)
{
    pthread_mutex_lock(&r->lock);
    for (kiln_reg_token_t *t = r->tokens; t != NULL; t = t->next)
        if (strcmp(t->key, key) == 0)
            t->expires = 0;
    pthread_mutex_unlock(&r->lock);
}

static char *basic_header(const kiln_cred_t *c)
{
    size_t ul = strlen(c->username ? c->username : ""), pl = strlen(c->password);
    _cleanup_free_ char *plain = kiln_xmalloc(ul + pl + 2);
    _cleanup_free_ char *b64 = kiln_xmalloc(4 * ((ul + pl + 1 + 2) / 3) + 1);
    char *hdr;
    memcpy(plain, c->username ? c->username : "", ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, c->password, pl);
    EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)plain, (int)(ul + pl + 1));
    hdr = kiln_xasprintf("Authorization: Basic %s", b64);
    explicit_bzero(plain, ul + pl + 1);
    explicit_bzero(b64, strlen(b64));
    return hdr;
}

/* Asks the token server of a Bearer challenge for a token covering repo's scope. */
static int fetch_token(kiln_reg_repo_t *repo, CURL *h, const kiln_www_auth_t *ch,
                       const kiln_cred_t *cred, char **header, time_t *expires, kiln_error_t *err)
{
    kiln_registry_t *r = repo->r;
    kiln_buf_t url;
    kiln_reg_req_t q;
    kiln_reg_endpoint_t tep = *repo->ep;
    _cleanup_json_ json_t *j = NULL;
    char errbuf[CURL_ERROR_SIZE];
    const char *tok;
    json_t *exp;
    long expires_in = 60;
    char *esc, *scopes, *save = NULL, *form = NULL;
    CURLcode cc;
    int attempt = 0;

    kiln_buf_init(&url, 0);
    kiln_buf_append(&url, ch->realm, strlen(ch->realm), NULL);
    kiln_buf_append(&url, strchr(ch->realm, '?') ? "&" : "?", 1, NULL);
    if (ch->service != NULL) {
        esc = curl_easy_escape(h, ch->service, 0);
        kiln_buf_appendf(&url, NULL, "service=%s&", esc);
        curl_free(esc);
    }
    scopes = kiln_xstrdup(repo->scope);
    for (char *s = strtok_r(scopes, " ", &save); s != NULL; s = strtok_r(NULL, " ", &save)) {
        esc = curl_easy_escape(h, s, 0);
        kiln_buf_appendf(&url, NULL, "scope=%s&", esc);
        curl_free(esc);
    }
    free(scopes);
    url.data[--url.len] = '\0';
    if (cred != NULL && cred->identity_token != NULL) {
        /* OAuth2 refresh-token grant (docker's "identitytoken"): the same
         * parameters as a form body, POSTed to the realm itself */
        char *q_mark = strchr(url.data, '?');
        esc = curl_easy_escape(h, cred->identity_token, 0);
        form = kiln_xasprintf("grant_type=refresh_token&client_id=kiln&refresh_token=%s&%s", esc,
                              q_mark + 1);
        explicit_bzero(esc, strlen(esc));
        curl_free(esc);
        *q_mark = '\0';
        kiln_reg_req_init(&q, "POST", kiln_buf_steal(&url, NULL));
        q.has_body = 1;
        q.body = form;
        q.body_len = strlen(form);
        q.content_type = "application/x-www-form-urlencoded";
        cred = NULL; /* no Basic credentials with a refresh token */
    } else {
        kiln_reg_req_init(&q, "GET", kiln_buf_steal(&url, NULL));
    }
    q.resp_cap = TOKEN_BODY_CAP;
    /* the token server is its own host: TLS per its own settings */
    {
        const char *hs = strstr(q.url, "://");
        size_t hl;
        hs = hs ? hs + 3 : q.url;
        hl = strcspn(hs, "/?");
        tep.host = kiln_xstrndup(hs, hl);
        tep.insecure = strncmp(q.url, "http://", 7) == 0 || kiln_reg_host_insecure(r, tep.host);
    }
    for (;;) {
        cc = kiln_reg_perform(r, &tep, h, &q, NULL, cred && cred->password ? cred->username : NULL,
                              cred ? cred->password : NULL, errbuf);
        if (((cc != CURLE_OK && cc != CURLE_REMOTE_ACCESS_DENIED) || q.status >= 500 ||
             q.status == 429) &&
            attempt < r->o.retries) {
            attempt++;
            usleep(r->o.backoff_ms * 1000u);
            continue;
        }
        break;
    }
    free(tep.host);
    if (form != NULL) {
        explicit_bzero(form, strlen(form));
        free(form);
    }
    if (cc != CURLE_OK) {
        kiln_error_set(err, 0, "token server for %s: %s", repo->ep->host,
                       errbuf[0] ? errbuf : curl_easy_strerror(cc));
        kiln_reg_req_free(&q);
        return -1;
    }
    if (q.status == 401 || q.status == 403) {
        kiln_error_set(err, 0, "authentication failed for %s%s%s: token server answered %ld",
                       repo->ep->host, cred && cred->username ? " as " : "",
                       cred && cred->username ? cred->username : "", q.status);
        kiln_reg_req_free(&q);
        return -1;
    }
    if (q.status != 200) {
        kiln_reg_fail(&q, err, "token server for %s", repo->ep->host);
        kiln_reg_req_free(&q);
        return -1;
    }
    if (kiln_json_loadb(q.resp.data ? q.resp.data : "", q.resp.len, TOKEN_BODY_CAP,
                        "token server answer", &j, err) < 0) {
        kiln_reg_req_free(&q);
        return kiln_error_prefix(err, "token server for %s", repo->ep->host);
    }
    kiln_reg_req_free(&q);
    tok = kiln_json_get_string(j, "token");
    if (tok == NULL || tok[0] == '\0')
        tok = kiln_json_get_string(j, "access_token");
    if (tok == NULL || tok[0] == '\0')
        return kiln_error_set(err, 0, "token server for %s returned no token", repo->ep->host);
    exp = json_object_get(j, "expires_in");
    if (json_is_integer(exp) && json_integer_value(exp) > 0)
        expires_in = (long)json_integer_value(exp);
    if (expires_in < 60)
        expires_in = 60;
    *header = kiln_xasprintf("Authorization: Bearer %s", tok);
    /* renew a little early so a token does not expire mid-request */
    *expires = time(NULL) + expires_in - 10;
    return 0;
}

/* Reacts to a 401: works out the Authorization header for the challenge. */
int kiln_reg_authenticate(kiln_reg_repo_t *repo, CURL *h, const char *www, int force,
                          kiln_error_t *err)
{
    kiln_www_auth_t ch = {0};
    _cleanup_(cred_cleanup) kiln_cred_t cred = {0};
    _cleanup_free_ char *key = token_key(repo);
    char *hdr = NULL;
    time_t expires = 0;
    int have;

    if (www == NULL)
        return kiln_error_set(err, 0, "%s answered 401 without a WWW-Authenticate header",
                              repo->ep->host);
    if (kiln_www_auth_parse(www, &ch, err) < 0)
        return kiln_error_prefix(err, "%s", repo->ep->host);
    have = get_cred(repo->r, repo->ep->registry, &cred, err);
    if (have < 0) {
        kiln_www_auth_free(&ch);
        return -1;
    }
    if (ch.scheme == KILN_WWW_AUTH_BASIC) {
        kiln_www_auth_free(&ch);
        if (!have || cred.password == NULL)
            return kiln_error_set(err, EACCES,
                                  "%s requires authentication and no credentials are configured "
                                  "(run 'kiln login %s')",
                                  repo->ep->host, repo->ep->registry);
        hdr = basic_header(&cred);
    } else {
        if (force)
            cache_drop(repo->r, key);
        else
            hdr = cache_lookup(repo->r, key);
        if (hdr == NULL) {
            if (fetch_token(repo, h, &ch, have ? &cred : NULL, &hdr, &expires, err) < 0) {
                kiln_www_auth_free(&ch);
                return -1;
            }
            cache_store(repo->r, key, hdr, expires);
        }
        kiln_www_auth_free(&ch);
    }
    if (repo->auth) {
        explicit_bzero(repo->auth, strlen(repo->auth));
        free(repo->auth);
    }
    repo->auth = hdr;
    repo->used_cached = 0;
    return 0;
}

char *kiln_reg_cached_auth(kiln_reg_repo_t *repo)
{
    _cleanup_free_ char *key = token_key(repo);
    return cache_lookup(repo->r, key);
}
