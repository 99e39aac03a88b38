/* kiln — Amazon ECR authentication and repositories (see ecr.h). */
#include "utils/aws/ecr.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

#define ECR_RESPONSE_CAP (256u * 1024)
#define ECR_TARGET "AmazonEC2ContainerRegistry_V20150921."
#define CACHE_SLOTS 16

int kiln_ecr_parse_host(const char *host, char **account, char **region)
{
    _cleanup_free_ char *h = kiln_xstrndup(host, strcspn(host, ":/"));
    const char *p = h, *dot;
    size_t n = 0;

    /* <12 digits>.dkr.ecr.<region>.amazonaws.com[.cn] (also dkr.ecr-fips) */
    while (isdigit((unsigned char)p[n]))
        n++;
    if (n != 12 || p[n] != '.')
        return 0;
    p += n + 1;
    if (strncmp(p, "dkr.ecr.", 8) == 0)
        p += 8;
    else if (strncmp(p, "dkr.ecr-fips.", 13) == 0)
        p += 13;
    else
        return 0;
    dot = strchr(p, '.');
    if (dot == NULL || dot == p)
        return 0;
    if (strcmp(dot, ".amazonaws.com") != 0 && strcmp(dot, ".amazonaws.com.cn") != 0)
        return 0;
    if (account)
        *account = kiln_xstrndup(h, 12);
    if (region)
        *region = kiln_xstrndup(p, (size_t)(dot - p));
    return 1;
}

typedef struct token_slot {
    char *host;
    char *user;
    char *password;
    time_t expires;
} token_slot_t;

static token_slot_t cache[CACHE_SLOTS];
static unsigned cache_next;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void slot_clear(token_slot_t *s)
{
    if (s->password)
        OPENSSL_cleanse(s->password, strlen(s->password));
    free(s->host);
    free(s->user);
    free(s->password);
    memset(s, 0, sizeof(*s));
}

void kiln_ecr_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (unsigned i = 0; i < CACHE_SLOTS; i++)
        slot_clear(&cache[i]);
    pthread_mutex_unlock(&cache_lock);
}

/* One ECR JSON 1.1 call for the registry of host; as kiln_aws_post. */
static int ecr_call(kiln_aws_t *aws, const char *host, const char *action, json_t *payload,
                    const char *what, kiln_http_response_t *resp, kiln_error_t *err)
{
    _cleanup_free_ char *account = NULL;
    _cleanup_free_ char *region = NULL;
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *target = kiln_xasprintf("X-Amz-Target: " ECR_TARGET "%s", action);
    const char *hdrs[2] = {"Content-Type: application/x-amz-json-1.1", target};
    kiln_aws_endpoint_t ep = {0};
    int ret;

    kiln_ecr_parse_host(host, &account, &region);
    if (account && json_object_get(payload, "registryId") == NULL &&
        strcmp(action, "GetAuthorizationToken") != 0)
        json_object_set_new(payload, "registryId", json_string(account));
    if (account && strcmp(action, "GetAuthorizationToken") == 0)
        json_object_set_new(payload, "registryIds", json_pack("[s]", account));
    body = json_dumps(payload, JSON_COMPACT);
    memset(resp, 0, sizeof(*resp));
    if (kiln_aws_endpoint_resolve("ecr", region ? region : aws->region, &ep, err) < 0)
        return -1;
    ret = kiln_aws_post(aws, "ecr", region, &ep, hdrs, 2, body, ECR_RESPONSE_CAP, what, resp, err);
    kiln_aws_endpoint_clear(&ep);
    return ret;
}

/* Decodes base64 "user:password". */
static int decode_token(const char *b64, char **user, char **password)
{
    size_t n = strlen(b64);
    unsigned char *dec;
    int dl;
    char *colon;
    if (n == 0 || n % 4 != 0 || n > 64 * 1024)
        return -1;
    dec = kiln_xzalloc(n + 4);
    dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    while (dl > 0 && n > 0 && b64[n - 1] == '=') {
        dl--;
        n--;
    }
    colon = dl > 0 ? memchr(dec, ':', (size_t)dl) : NULL;
    if (colon == NULL) {
        OPENSSL_cleanse(dec, n + 4);
        free(dec);
        return -1;
    }
    *user = kiln_xstrndup((char *)dec, (size_t)(colon - (char *)dec));
    *password = kiln_xstrndup(colon + 1, (size_t)dl - (size_t)(colon + 1 - (char *)dec));
    OPENSSL_cleanse(dec, n + 4);
    free(dec);
    return 0;
}

int kiln_ecr_login(kiln_aws_t *aws, const char *host, char **username, char **password,
                   time_t *expires_at, kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("ECR GetAuthorizationToken for %s", host);
    kiln_http_response_t resp = {0};
    json_t *ans = NULL, *data;
    const char *tok;
    char *user = NULL, *pass = NULL;
    time_t exp;
    token_slot_t *s;

    pthread_mutex_lock(&cache_lock);
    for (unsigned i = 0; i < CACHE_SLOTS; i++) {
        s = &cache[i];
        if (s->host && strcmp(s->host, host) == 0 &&
            s->expires - KILN_ECR_REFRESH_MARGIN > time(NULL)) {
            *username = kiln_xstrdup(s->user);
            *password = kiln_xstrdup(s->password);
            if (expires_at)
                *expires_at = s->expires;
            pthread_mutex_unlock(&cache_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&cache_lock);

    {
        json_t *payload = json_object();
        int r = ecr_call(aws, host, "GetAuthorizationToken", payload, what, &resp, err);
        json_decref(payload);
        if (r < 0) {
            kiln_http_response_free(&resp);
            return -1;
        }
    }
    ans = kiln_aws_json_parse(resp.body, resp.body_len, ECR_RESPONSE_CAP, what, err);
    kiln_http_response_free(&resp);
    if (ans == NULL)
        return -1;
    data = json_array_get(json_object_get(ans, "authorizationData"), 0);
    tok = json_string_value(json_object_get(data, "authorizationToken"));
    exp = (time_t)json_number_value(json_object_get(data, "expiresAt"));
    if (tok == NULL || decode_token(tok, &user, &pass) < 0) {
        json_decref(ans);
        return kiln_error_set(err, EPROTO, "%s: answer has no usable authorizationToken", what);
    }
    json_decref(ans);
    if (exp == 0)
        exp = time(NULL) + 12 * 3600; /* ECR tokens last 12 hours */

    pthread_mutex_lock(&cache_lock);
    s = NULL;
    for (unsigned i = 0; i < CACHE_SLOTS && s == NULL; i++)
        if (cache[i].host && strcmp(cache[i].host, host) == 0)
            s = &cache[i];
    if (s == NULL)
        s = &cache[cache_next++ % CACHE_SLOTS];
    slot_clear(s);
    s->host = kiln_xstrdup(host);
    s->user = kiln_xstrdup(user);
    s->password = kiln_xstrdup(pass);
    s->expires = exp;
    pthread_mutex_unlock(&cache_lock);

    *username = user;
    *password = pass;
    if (expires_at)
        *expires_at = exp;
    return 0;
}

int kiln_ecr_create_repository(kiln_aws_t *aws, const char *host, const char *name,
                               kiln_error_t *err)
{
    _cleanup_free_ char *what = kiln_xasprintf("ECR CreateRepository %s on %s", name, host);
    kiln_http_response_t resp = {0};
    json_t *payload;
    int r;

    if (name[0] == '\0' || strlen(name) > 256)
        return kiln_error_set(err, EINVAL, "bad ECR repository name '%s'", name);
    payload = json_pack("{s:s}", "repositoryName", name);
    r = ecr_call(aws, host, "CreateRepository", payload, what, &resp, err);
    json_decref(payload);
    if (r < 0 && resp.status == 400 && resp.body &&
        strstr(resp.body, "RepositoryAlreadyExistsException")) {
        kiln_error_clear(err);
        r = 0; /* already there: fine */
    } else if (r == 0) {
        r = 1;
    }
    kiln_http_response_free(&resp);
    return r;
}
