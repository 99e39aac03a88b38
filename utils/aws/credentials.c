/* kiln — the AWS credential chain (see credentials.h). */
#include "utils/aws/credentials.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "utils/aws/client.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/http.h"
#include "utils/mem.h"

#define ECS_HOST "http://169.254.170.2"
#define IMDS_HOST "http://169.254.169.254"

const char *kiln_aws_profile(void)
{
    const char *p = getenv("AWS_PROFILE");
    if (p == NULL || p[0] == '\0')
        p = getenv("AWS_DEFAULT_PROFILE");
    return p && p[0] ? p : "default";
}

/* inih's options are process-wide variables (Debian builds it with INI_RUNTIME_OPTIONS); they
 * are set once, before the first parse, and never changed after, so parses may run in parallel.
 * - lines up to the whole file: with a shorter limit inih would cut a long line (a session token
 *   is often over 1000 bytes) and parse its tail as a line of its own;
 * - no inline comments: botocore's configparser has none, so "key = a ;b" is "a ;b";
 * - multi-line values on: an indented line continues the previous key (the "s3 =" nested
 *   settings of ~/.aws/config) and is reported under that key's name, which ini_get ignores
 *   after the key's first value. */
static pthread_once_t ini_once = PTHREAD_ONCE_INIT;

static void ini_setup(void)
{
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_initial_alloc = 256;
    ini_max_line = (int)KILN_AWS_INI_MAX + 3; /* + '\r', '\n', NUL */
    ini_allow_inline_comments = false;
    ini_allow_multiline = true;
    ini_allow_bom = true;
    ini_allow_no_value = false;
    ini_stop_on_first_error = false;
}

typedef struct ini_text {
    const char *p, *end;
} ini_text_t;

/* fgets() over a memory buffer: the next line, at most num - 1 bytes, NUL-terminated. */
static char *ini_read(char *str, int num, void *stream)
{
    ini_text_t *t = stream;
    size_t n = 0;
    if (t->p >= t->end || num < 2)
        return NULL;
    while (n + 1 < (size_t)num && t->p < t->end) {
        char ch = *t->p++;
        str[n++] = ch;
        if (ch == '\n')
            break;
    }
    str[n] = '\0';
    return str;
}

typedef struct ini_lookup {
    const char *section, *key;
    char *value;
} ini_lookup_t;

/* Called by inih for each key = value (and each continuation line, under its key's name). */
static int ini_pair(void *user, const char *section, const char *name, const char *value)
{
    ini_lookup_t *l = user;
    size_t sl = strlen(section);
    if (l->value != NULL || sl >= KILN_AWS_INI_SECTION_MAX + 1) /* possibly cut by inih */
        return 1;
    /* "[ default ]" names "default", as botocore reads it */
    while (sl > 0 && (section[sl - 1] == ' ' || section[sl - 1] == '\t'))
        sl--;
    while (sl > 0 && (*section == ' ' || *section == '\t'))
        section++, sl--;
    if (sl == strlen(l->section) && memcmp(section, l->section, sl) == 0 &&
        strcasecmp(name, l->key) == 0)
        l->value = kiln_xstrdup(value);
    return 1;
}

char *kiln_aws_ini_get(const char *text, size_t len, const char *section, const char *key)
{
    /* a NUL ends the text: inih reads C strings and would otherwise cut the line there and
     * parse the rest of it as a line of its own */
    ini_text_t t = {text, text + strnlen(text, len)};
    ini_lookup_t l = {section, key, NULL};
    /* keys before the first section (section "") belong to no profile */
    if (len > KILN_AWS_INI_MAX || section[0] == '\0' || strlen(section) > KILN_AWS_INI_SECTION_MAX)
        return NULL;
    pthread_once(&ini_once, ini_setup);
    /* lines that are not "[section]", "key = value" or a comment are skipped (inih reports the
     * first one's number; the SDKs refuse the file, kiln reads what it can, as it always has) */
    if (ini_parse_stream(ini_read, &t, ini_pair, &l) < 0) {
        free(l.value);
        return NULL;
    }
    return l.value;
}

/* Path of a shared AWS file: env override, else ~/.aws/<name>. NULL without HOME. */
static char *aws_file_path(const char *env, const char *name)
{
    const char *v = getenv(env);
    const char *home = getenv("HOME");
    if (v && v[0]) {
        if (v[0] == '~' && v[1] == '/' && home)
            return kiln_xasprintf("%s%s", home, v + 1);
        return kiln_xstrdup(v);
    }
    if (home == NULL || home[0] == '\0')
        return NULL;
    return kiln_xasprintf("%s/.aws/%s", home, name);
}

/* Section of the active profile: "[profile NAME]" in the config file, "[NAME]" in the
 * credentials file and for the default profile. */
static char *profile_section(int config_style)
{
    const char *profile = kiln_aws_profile();
    if (config_style && strcmp(profile, "default") != 0)
        return kiln_xasprintf("profile %s", profile);
    return kiln_xstrdup(profile);
}

/* Reads an INI value of the active profile from one shared file. */
static char *file_get(const char *env, const char *name, int config_style, const char *key)
{
    _cleanup_free_ char *path = aws_file_path(env, name);
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *section = profile_section(config_style);
    size_t len = 0;
    if (path == NULL || kiln_fs_read_file(path, KILN_AWS_INI_MAX, &text, &len, NULL) < 0)
        return NULL;
    return kiln_aws_ini_get(text, len, section, key);
}

char *kiln_aws_config_get(const char *key)
{
    return file_get("AWS_CONFIG_FILE", "config", 1, key);
}

static int from_env(kiln_aws_creds_t *out, kiln_buf_t *why)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (id == NULL || !id[0] || secret == NULL || !secret[0]) {
        kiln_buf_appendf(why, NULL, "environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY %s)",
                         (id && id[0]) || (secret && secret[0]) ? "only partly set" : "not set");
        return 0;
    }
    out->access_key_id = kiln_xstrdup(id);
    out->secret_access_key = kiln_xstrdup(secret);
    out->session_token = token && token[0] ? kiln_xstrdup(token) : NULL;
    out->source = "environment";
    return 1;
}

static int from_files(kiln_aws_creds_t *out, kiln_buf_t *why)
{
    static const struct {
        const char *env, *name;
        int config_style;
        const char *label;
    } files[] = {
        {"AWS_SHARED_CREDENTIALS_FILE", "credentials", 0, "shared credentials file"},
        {"AWS_CONFIG_FILE", "config", 1, "shared config file"},
    };
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *path = aws_file_path(files[i].env, files[i].name);
        _cleanup_free_ char *section = profile_section(files[i].config_style);
        _cleanup_free_ char *id =
            file_get(files[i].env, files[i].name, files[i].config_style, "aws_access_key_id");
        _cleanup_free_ char *secret =
            file_get(files[i].env, files[i].name, files[i].config_style, "aws_secret_access_key");
        if (id && id[0] && secret && secret[0]) {
            out->access_key_id = steal_pointer(&id);
            out->secret_access_key = steal_pointer(&secret);
            out->session_token =
                file_get(files[i].env, files[i].name, files[i].config_style, "aws_session_token");
            out->source = files[i].label;
            return 1;
        }
        if (strlen(section) > KILN_AWS_INI_SECTION_MAX)
            kiln_buf_appendf(why, NULL,
                             "; %s %s (section [%s] is over %d bytes, more than its parser "
                             "reads: use a shorter profile name)",
                             files[i].label, path ? path : "(no HOME)", section,
                             KILN_AWS_INI_SECTION_MAX);
        else
            kiln_buf_appendf(why, NULL, "; %s %s (no keys for profile '%s')", files[i].label,
                             path ? path : "(no HOME)", kiln_aws_profile());
    }
    return 0;
}

/* ISO 8601 "2026-11-25T10:00:00Z" (fractions allowed) to time_t; 0 if unparsable. */
time_t kiln_aws_time_parse(const char *s)
{
    struct tm tm = {0};
    if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) == NULL)
        return 0;
    return timegm(&tm);
}

/* Parses the JSON both ECS and IMDS answer with. */
static int parse_cred_json(const char *body, size_t len, const char *what, kiln_aws_creds_t *out,
                           kiln_error_t *err)
{
    json_t *j = kiln_aws_json_parse(body, len, 64 * 1024, what, err);
    const char *id, *secret, *token;
    if (j == NULL)
        return -1;
    id = kiln_aws_json_str(j, "AccessKeyId");
    secret = kiln_aws_json_str(j, "SecretAccessKey");
    token = kiln_aws_json_str(j, "Token");
    if (id == NULL || secret == NULL) {
        json_decref(j);
        return kiln_error_set(err, EINVAL, "%s: answer has no AccessKeyId/SecretAccessKey", what);
    }
    out->access_key_id = kiln_xstrdup(id);
    out->secret_access_key = kiln_xstrdup(secret);
    out->session_token = token ? kiln_xstrdup(token) : NULL;
    out->expiration = kiln_aws_time_parse(kiln_aws_json_str(j, "Expiration"));
    json_decref(j);
    return 0;
}

/* Simple GET/PUT with optional single header; returns status or -1. */
static int small_request(const char *method, const char *url, const char *header, char **body,
                         size_t *len, kiln_error_t *err)
{
    kiln_http_t *h = kiln_http_new();
    kiln_http_request_t req = {.method = method, .url = url, .body_fd = -1, .timeout_seconds = 5};
    kiln_http_response_t resp = {0};
    const char *hdrs[1] = {header};
    int ret;
    if (header) {
        req.headers = hdrs;
        req.n_headers = 1;
    }
    if (strcmp(method, "PUT") == 0) {
        req.body = "";
        req.body_len = 0;
    }
    ret = kiln_http_do(h, &req, &resp, err);
    kiln_http_free(h);
    if (ret < 0)
        return -1;
    *body = steal_pointer(&resp.body);
    *len = resp.body_len;
    ret = (int)resp.status;
    kiln_http_response_free(&resp);
    return ret;
}

static int from_ecs(kiln_aws_creds_t *out, kiln_buf_t *why, kiln_error_t *err)
{
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tok = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    const char *tokfile = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    _cleanup_free_ char *url = NULL;
    _cleanup_free_ char *filetok = NULL;
    _cleanup_free_ char *hdr = NULL;
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    int status;

    if (rel && rel[0])
        url = kiln_xasprintf("%s%s", ECS_HOST, rel);
    else if (full && full[0])
        url = kiln_xstrdup(full);
    if (url == NULL) {
        kiln_buf_appendf(why, NULL,
                         "; ECS container credentials (AWS_CONTAINER_CREDENTIALS_"
                         "RELATIVE_URI/FULL_URI not set)");
        return 0;
    }
    if (tokfile && tokfile[0]) {
        size_t tl = 0;
        if (kiln_fs_read_file(tokfile, 16 * 1024, &filetok, &tl, err) < 0)
            return kiln_error_prefix(err, "ECS container credentials token file");
        while (tl > 0 && (filetok[tl - 1] == '\n' || filetok[tl - 1] == '\r'))
            filetok[--tl] = '\0';
        tok = filetok;
    }
    if (tok && tok[0])
        hdr = kiln_xasprintf("Authorization: %s", tok);
    status = small_request("GET", url, hdr, &body, &len, err);
    if (status < 0)
        return kiln_error_prefix(err, "ECS container credentials");
    if (status != 200)
        return kiln_error_set(err, EACCES, "ECS container credentials: %s answered HTTP %d", url,
                              status);
    if (parse_cred_json(body, len, "ECS container credentials", out, err) < 0)
        return -1;
    out->source = "ECS container credentials";
    return 1;
}

/* IMDSv2 session tokens live IMDS_TOKEN_TTL seconds; one is reused (per
 * endpoint) until IMDS_TOKEN_MARGIN seconds before that, as the SDKs do. */
#define IMDS_TOKEN_TTL 21600
#define IMDS_TOKEN_MARGIN 60

static struct {
    pthread_mutex_t lock;
    char *base;
    char *token;
    time_t expires;
} imds_token = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Forgets the cached token (it was refused, or belongs to another endpoint). */
static void imds_token_drop_locked(void)
{
    if (imds_token.token)
        explicit_bzero(imds_token.token, strlen(imds_token.token));
    free(imds_token.token);
    free(imds_token.base);
    imds_token.token = imds_token.base = NULL;
}

/* A session token for the metadata service at base (cached, or fetched with
 * PUT /latest/api/token); malloc'ed, or NULL when the service is unreachable
 * or refuses. fresh=1 skips the cache. */
static char *imds_get_token(const char *base, int fresh)
{
    _cleanup_free_ char *url = kiln_xasprintf("%s/latest/api/token", base);
    _cleanup_free_ char *ttl_hdr =
        kiln_xasprintf("X-aws-ec2-metadata-token-ttl-seconds: %d", IMDS_TOKEN_TTL);
    char *token = NULL;
    size_t len = 0;
    time_t now = time(NULL);
    int status;

    pthread_mutex_lock(&imds_token.lock);
    if (!fresh && imds_token.token && strcmp(imds_token.base, base) == 0 &&
        imds_token.expires > now) {
        token = kiln_xstrdup(imds_token.token);
        pthread_mutex_unlock(&imds_token.lock);
        return token;
    }
    status = small_request("PUT", url, ttl_hdr, &token, &len, NULL);
    if (status != 200 || token == NULL || len == 0 || len > 4096) {
        free(token);
        pthread_mutex_unlock(&imds_token.lock);
        return NULL;
    }
    token[strcspn(token, "\r\n")] = '\0';
    imds_token_drop_locked();
    imds_token.base = kiln_xstrdup(base);
    imds_token.token = kiln_xstrdup(token);
    imds_token.expires = now + IMDS_TOKEN_TTL - IMDS_TOKEN_MARGIN;
    pthread_mutex_unlock(&imds_token.lock);
    return token;
}

/* GET base/path with the session token; a 401 (token expired or revoked)
 * gets one retry with a new token. Returns the status, or -1 when the
 * service is unreachable. */
static int imds_get(const char *base, const char *path, char **body, size_t *len, kiln_error_t *err)
{
    _cleanup_free_ char *url = kiln_xasprintf("%s%s", base, path);
    int status = -1;

    for (int fresh = 0; fresh < 2; fresh++) {
        _cleanup_free_ char *token = imds_get_token(base, fresh);
        _cleanup_free_ char *hdr = NULL;
        if (token == NULL)
            return -1;
        hdr = kiln_xasprintf("X-aws-ec2-metadata-token: %s", token);
        free(*body);
        *body = NULL;
        status = small_request("GET", url, hdr, body, len, err);
        explicit_bzero(hdr, strlen(hdr));
        if (status != 401)
            break;
    }
    return status;
}

static int from_imds(kiln_aws_creds_t *out, kiln_buf_t *why, kiln_error_t *err)
{
    const char *disabled = getenv("AWS_EC2_METADATA_DISABLED");
    const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    _cleanup_free_ char *role = NULL;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *body = NULL;
    _cleanup_free_ char *token = NULL;
    size_t len = 0;
    int status;
    kiln_error_t local = {0};

    if (disabled && strcasecmp(disabled, "true") == 0) {
        kiln_buf_appendf(why, NULL,
                         "; EC2 instance metadata (disabled by "
                         "AWS_EC2_METADATA_DISABLED)");
        return 0;
    }
    if (base == NULL || base[0] == '\0')
        base = IMDS_HOST;
    token = imds_get_token(base, 0);
    if (token == NULL) {
        kiln_buf_appendf(why, NULL, "; EC2 instance metadata (%s unreachable)", base);
        return 0;
    }
    status = imds_get(base, "/latest/meta-data/iam/security-credentials/", &role, &len, &local);
    if (status != 200 || len == 0) {
        kiln_buf_appendf(why, NULL, "; EC2 instance metadata (no instance role)");
        return 0;
    }
    role[strcspn(role, "\r\n")] = '\0';
    path = kiln_xasprintf("/latest/meta-data/iam/security-credentials/%s", role);
    status = imds_get(base, path, &body, &len, err);
    if (status < 0)
        return kiln_error_prefix(err, "EC2 instance metadata");
    if (status != 200)
        return kiln_error_set(err, EACCES, "EC2 instance metadata: role '%s' answered HTTP %d",
                              role, status);
    if (parse_cred_json(body, len, "EC2 instance metadata", out, err) < 0)
        return -1;
    out->source = "EC2 instance metadata";
    return 1;
}

int kiln_aws_credentials_resolve(kiln_aws_creds_t *out, kiln_error_t *err)
{
    kiln_aws_creds_t c = {0};
    kiln_buf_t why;
    int r;

    kiln_buf_init(&why, 0);
    r = from_env(&c, &why);
    if (r == 0)
        r = from_files(&c, &why);
    if (r == 0)
        r = from_ecs(&c, &why, err);
    if (r == 0)
        r = from_imds(&c, &why, err);
    if (r < 0) {
        kiln_buf_free(&why);
        kiln_aws_creds_clear(&c);
        return kiln_error_prefix(err, "AWS credentials");
    }
    if (r == 0) {
        kiln_error_set(err, 0, "no AWS credentials found; tried: %s", why.data);
        if (err)
            err->code = ENOENT;
        kiln_buf_free(&why);
        return -1;
    }
    kiln_buf_free(&why);
    *out = c;
    return 0;
}

struct kiln_aws_cred_provider {
    pthread_mutex_t lock;
    kiln_aws_creds_t cur;
    int have;
};

kiln_aws_cred_provider_t *kiln_aws_cred_provider_new(void)
{
    kiln_aws_cred_provider_t *p = kiln_xzalloc(sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

void kiln_aws_cred_provider_free(kiln_aws_cred_provider_t *p)
{
    if (p == NULL)
        return;
    kiln_aws_creds_clear(&p->cur);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void kiln_aws_cred_provider_set(kiln_aws_cred_provider_t *p, const kiln_aws_creds_t *creds)
{
    pthread_mutex_lock(&p->lock);
    kiln_aws_creds_clear(&p->cur);
    kiln_aws_creds_copy(&p->cur, creds);
    /* given, not found: never looked up again (expiry included) */
    p->cur.expiration = 0;
    p->have = 1;
    pthread_mutex_unlock(&p->lock);
}

int kiln_aws_cred_provider_get(kiln_aws_cred_provider_t *p, kiln_aws_creds_t *out,
                               kiln_error_t *err)
{
    int ret = 0;
    pthread_mutex_lock(&p->lock);
    if (!p->have || (p->cur.expiration != 0 &&
                     p->cur.expiration - KILN_AWS_CREDS_REFRESH_MARGIN <= time(NULL))) {
        kiln_aws_creds_t fresh = {0};
        if (kiln_aws_credentials_resolve(&fresh, err) < 0) {
            ret = -1;
        } else {
            kiln_aws_creds_clear(&p->cur);
            p->cur = fresh;
            p->have = 1;
        }
    }
    if (ret == 0)
        kiln_aws_creds_copy(out, &p->cur);
    pthread_mutex_unlock(&p->lock);
    return ret;
}
