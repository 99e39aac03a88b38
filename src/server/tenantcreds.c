/* kiln server — per-tenant registry and AWS credentials (see tenantcreds.h). */
#include "src/server/tenantcreds.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/docker_config.h"
#include "src/server/cli.h"
#include "src/server/tenant.h"
#include "utils/aws/client.h"
#include "utils/aws/credentials.h"
#include "utils/aws/sts.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* Largest credentials file, password file or auth file read. */
#define FILE_CAP (1024 * 1024)

/* Fails unless every key of object o is one of keys (NULL-terminated). */
static int known_keys(json_t *o, const char *const *keys, const char *where, kiln_error_t *err)
{
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v)
    {
        int ok = 0;
        for (size_t i = 0; keys[i]; i++)
            ok |= strcmp(key, keys[i]) == 0;
        if (!ok)
            return kiln_error_set(err, 0, "%s: unknown key '%.64s'", where, key);
    }
    return 0;
}

/* The string member key of o (NULL when absent); fails when present and not a non-empty
 * string, or (absolute) not an absolute path. */
static int opt_string(json_t *o, const char *key, int absolute, const char *where, const char **out,
                      kiln_error_t *err)
{
    json_t *v = json_object_get(o, key);

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return kiln_error_set(err, 0, "%s.%s: must be a non-empty string", where, key);
    if (absolute && json_string_value(v)[0] != '/')
        return kiln_error_set(err, 0, "%s.%s: must be an absolute path", where, key);
    *out = json_string_value(v);
    return 0;
}

/* Whether s is a registry host "HOST[:PORT]" (letters, digits, '.', '-', one ':PORT'). */
static int host_valid(const char *s)
{
    size_t n = strlen(s), colons = 0;
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        colons += ch == ':';
        if (!isalnum((unsigned char)ch) && ch != '.' && ch != '-' && ch != ':')
            return 0;
    }
    return colons <= 1 && s[0] != ':' && s[n - 1] != ':';
}

/* Only kiln's own ECR helper: another `docker-credential-*` would read a store that is the
 * server's, shared by every tenant. */
static int helper_ok(json_t *v, const char *where, kiln_error_t *err)
{
    if (!json_is_string(v) || strcmp(json_string_value(v), "ecr-login") != 0)
        return kiln_error_set(err, 0,
                              "%s: only \"ecr-login\" (kiln's own, with the tenant's AWS "
                              "credentials) is allowed; another helper reads a store shared "
                              "by every tenant",
                              where);
    return 0;
}

/* Adds the auths and credHelpers of the docker config.json at path to cfg. */
static int merge_auth_file(json_t *cfg, const char *path, const char *where, kiln_error_t *err)
{
    char *text = NULL;
    size_t len = 0;
    json_t *doc, *v, *auths = json_object_get(cfg, "auths"),
                     *helpers = json_object_get(cfg, "credHelpers");
    const char *key;
    int rc = 0;

    if (kiln_fs_read_file(path, FILE_CAP, &text, &len, err) < 0)
        return kiln_error_prefix(err, "%s.auth_file", where);
    doc = json_loadb(text, len, 0, NULL);
    explicit_bzero(text, len);
    free(text);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return kiln_error_set(err, 0, "%s.auth_file %s: not a JSON object (docker config.json)",
                              where, path);
    }
    if (json_object_get(doc, "credsStore"))
        rc = kiln_error_set(err, 0,
                            "%s.auth_file %s: credsStore is not allowed (a helper's store is "
                            "shared by every tenant); list auths or credHelpers ecr-login",
                            where, path);
    json_object_foreach(json_object_get(doc, "auths"), key, v)
    {
        if (rc == 0 && json_is_object(v))
            json_object_set(auths, key, v);
    }
    json_object_foreach(json_object_get(doc, "credHelpers"), key, v)
    {
        char at[512];
        snprintf(at, sizeof(at), "%s.auth_file %s: credHelpers[%.200s]", where, path, key);
        if (rc == 0 && (rc = helper_ok(v, at, err)) == 0)
            json_object_set(helpers, key, v);
    }
    json_decref(doc);
    return rc;
}

/* Adds hosts[host] = {"username", "password" | "password_file"} or {"helper": "ecr-login"}
 * to cfg. */
static int merge_host(json_t *cfg, const char *host, json_t *h, const char *where,
                      kiln_error_t *err)
{
    static const char *const keys[] = {"username", "password", "password_file", "helper", NULL};
    _cleanup_free_ char *at = kiln_xasprintf("%s.hosts[%.200s]", where, host);
    const char *user, *pass, *pass_file;
    json_t *helper;

    if (!host_valid(host))
        return kiln_error_set(err, 0, "%s: not a registry host (HOST[:PORT])", at);
    if (!json_is_object(h))
        return kiln_error_set(err, 0, "%s: must be an object", at);
    if (known_keys(h, keys, at, err) < 0 || opt_string(h, "username", 0, at, &user, err) < 0 ||
        opt_string(h, "password", 0, at, &pass, err) < 0 ||
        opt_string(h, "password_file", 1, at, &pass_file, err) < 0)
        return -1;
    if ((helper = json_object_get(h, "helper")) != NULL) {
        _cleanup_free_ char *hat = kiln_xasprintf("%s.helper", at);
        if (user || pass || pass_file)
            return kiln_error_set(err, 0, "%s: a helper or a username and password, not both", at);
        if (helper_ok(helper, hat, err) < 0)
            return -1;
        json_object_set(json_object_get(cfg, "credHelpers"), host, helper);
        return 0;
    }
    if (user == NULL || (pass == NULL) == (pass_file == NULL))
        return kiln_error_set(err, 0,
                              "%s: needs \"username\" and one of \"password\", \"password_file\" "
                              "(or \"helper\": \"ecr-login\")",
                              at);
    if (pass_file) {
        char *text = NULL;
        size_t len = 0;
        if (kiln_fs_read_file(pass_file, FILE_CAP, &text, &len, err) < 0)
            return kiln_error_prefix(err, "%s.password_file", at);
        text[strcspn(text, "\r\n")] = '\0';
        json_object_set_new(json_object_get(cfg, "auths"), host,
                            json_pack("{s:s,s:s}", "username", user, "password", text));
        explicit_bzero(text, len);
        free(text);
        return 0;
    }
    json_object_set_new(json_object_get(cfg, "auths"), host,
                        json_pack("{s:s,s:s}", "username", user, "password", pass));
    return 0;
}

/* The docker config.json of a tenant's "registry" credentials (where: "tenant 'x'
 * .credentials.registry"), in *out. */
static int registry_config(json_t *reg, const char *where, json_t **out, kiln_error_t *err)
{
    static const char *const keys[] = {"auth_file", "hosts", NULL};
    json_t *cfg, *hosts = json_object_get(reg, "hosts"), *v;
    const char *auth_file, *host;

    if (!json_is_object(reg))
        return kiln_error_set(err, 0, "%s: must be an object", where);
    if (known_keys(reg, keys, where, err) < 0 ||
        opt_string(reg, "auth_file", 1, where, &auth_file, err) < 0)
        return -1;
    if (hosts && !json_is_object(hosts))
        return kiln_error_set(err, 0, "%s.hosts: must be an object {HOST: {...}}", where);
    if (auth_file == NULL && hosts == NULL)
        return kiln_error_set(err, 0, "%s: needs \"auth_file\" or \"hosts\"", where);
    cfg = json_pack("{s:{},s:{}}", "auths", "credHelpers");
    if (auth_file && merge_auth_file(cfg, auth_file, where, err) < 0)
        goto fail;
    json_object_foreach(hosts, host, v)
    {
        if (merge_host(cfg, host, v, where, err) < 0)
            goto fail;
    }
    *out = cfg;
    return 0;
fail:
    json_decref(cfg);
    return -1;
}

/* A tenant's "aws" settings, checked. */
typedef struct aws_settings {
    const char *credentials_file, *profile, *role_arn, *external_id, *session_name, *region,
        *sts_endpoint;
    unsigned duration;
} aws_settings_t;

/* Whether every character of s is in the set allowed (plus alphanumerics). */
static int chars_ok(const char *s, const char *allowed)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(allowed, *s))
            return 0;
    return 1;
}

/* Reads and checks a tenant's "aws" object into *s. */
static int aws_settings(json_t *aws, const char *where, aws_settings_t *s, kiln_error_t *err)
{
    static const char *const keys[] = {"credentials_file", "profile",      "role_arn",
                                       "external_id",      "session_name", "duration",
                                       "region",           "sts_endpoint", NULL};
    json_t *d;

    memset(s, 0, sizeof(*s));
    if (!json_is_object(aws))
        return kiln_error_set(err, 0, "%s: must be an object", where);
    if (known_keys(aws, keys, where, err) < 0 ||
        opt_string(aws, "credentials_file", 1, where, &s->credentials_file, err) < 0 ||
        opt_string(aws, "profile", 0, where, &s->profile, err) < 0 ||
        opt_string(aws, "role_arn", 0, where, &s->role_arn, err) < 0 ||
        opt_string(aws, "external_id", 0, where, &s->external_id, err) < 0 ||
        opt_string(aws, "session_name", 0, where, &s->session_name, err) < 0 ||
        opt_string(aws, "region", 0, where, &s->region, err) < 0 ||
        opt_string(aws, "sts_endpoint", 0, where, &s->sts_endpoint, err) < 0)
        return -1;
    if (s->credentials_file == NULL && s->role_arn == NULL)
        return kiln_error_set(err, 0, "%s: needs \"credentials_file\" or \"role_arn\"", where);
    if (s->profile && (s->credentials_file == NULL || !chars_ok(s->profile, "_-.+@")))
        return kiln_error_set(err, 0,
                              "%s.profile: a profile name ([A-Za-z0-9_.+@-]) of the tenant's "
                              "credentials_file",
                              where);
    if (s->profile && strlen(s->profile) > KILN_AWS_INI_SECTION_MAX) /* see credentials.h */
        return kiln_error_set(err, 0, "%s.profile: at most %d characters", where,
                              KILN_AWS_INI_SECTION_MAX);
    if (s->role_arn && (strncmp(s->role_arn, "arn:aws", 7) != 0 ||
                        strstr(s->role_arn, ":role/") == NULL || strlen(s->role_arn) > 2048))
        return kiln_error_set(err, 0, "%s.role_arn: must be arn:aws:iam::ACCOUNT:role/NAME", where);
    if ((s->external_id || s->session_name || json_object_get(aws, "duration") ||
         s->sts_endpoint) &&
        s->role_arn == NULL)
        return kiln_error_set(err, 0,
                              "%s: external_id, session_name, duration and sts_endpoint go with "
                              "role_arn",
                              where);
    if (s->external_id && (strlen(s->external_id) < 2 || strlen(s->external_id) > 1224 ||
                           !chars_ok(s->external_id, "+=,.@:/-_")))
        return kiln_error_set(err, 0, "%s.external_id: 2 to 1224 of [A-Za-z0-9+=,.@:/_-]", where);
    if (s->session_name && (strlen(s->session_name) < 2 || strlen(s->session_name) > 64 ||
                            !chars_ok(s->session_name, "+=,.@-_")))
        return kiln_error_set(err, 0, "%s.session_name: 2 to 64 of [A-Za-z0-9+=,.@_-]", where);
    if (s->region && (strlen(s->region) > 32 || !chars_ok(s->region, "-")))
        return kiln_error_set(err, 0, "%s.region: a region name such as eu-west-1", where);
    if (s->sts_endpoint && strncmp(s->sts_endpoint, "https://", 8) != 0 &&
        strncmp(s->sts_endpoint, "http://", 7) != 0)
        return kiln_error_set(err, 0, "%s.sts_endpoint: must be an http(s):// URL", where);
    if ((d = json_object_get(aws, "duration")) != NULL) {
        if (!json_is_integer(d) || json_integer_value(d) < 900 || json_integer_value(d) > 43200)
            return kiln_error_set(err, 0, "%s.duration: seconds from 900 to 43200", where);
        s->duration = (unsigned)json_integer_value(d);
    }
    return 0;
}

/* Reads the keys of profile s->profile (default "default") from s->credentials_file. */
static int file_creds(const aws_settings_t *s, const char *where, kiln_aws_creds_t *out,
                      kiln_error_t *err)
{
    const char *profile = s->profile ? s->profile : "default";
    char *text = NULL;
    size_t len = 0;

    memset(out, 0, sizeof(*out));
    if (kiln_fs_read_file(s->credentials_file, FILE_CAP, &text, &len, err) < 0)
        return kiln_error_prefix(err, "%s.credentials_file", where);
    out->access_key_id = kiln_aws_ini_get(text, len, profile, "aws_access_key_id");
    out->secret_access_key = kiln_aws_ini_get(text, len, profile, "aws_secret_access_key");
    out->session_token = kiln_aws_ini_get(text, len, profile, "aws_session_token");
    out->source = "tenant credentials file";
    explicit_bzero(text, len);
    free(text);
    if (out->access_key_id == NULL || out->secret_access_key == NULL || !out->access_key_id[0] ||
        !out->secret_access_key[0]) {
        kiln_aws_creds_clear(out);
        return kiln_error_set(err, 0,
                              "%s.credentials_file %s: profile [%s] has no aws_access_key_id "
                              "and aws_secret_access_key",
                              where, s->credentials_file, profile);
    }
    return 0;
}

/* The tenant's AWS credentials now: its file's keys, or the role assumed with them (or
 * with the server's own when it names no file). */
static int aws_creds(const aws_settings_t *s, const char *where, kiln_aws_creds_t *out,
                     kiln_error_t *err)
{
    kiln_aws_creds_t base = {0};
    kiln_aws_sts_assume_t a = {.role_arn = s->role_arn,
                               .session_name = s->session_name,
                               .external_id = s->external_id,
                               .duration_s = s->duration,
                               .region = s->region,
                               .endpoint = s->sts_endpoint};
    kiln_aws_t *aws;
    int rc;

    if (s->credentials_file && file_creds(s, where, &base, err) < 0)
        return -1;
    if (s->role_arn == NULL) {
        *out = base;
        return 0;
    }
    aws = kiln_aws_new(s->region);
    if (s->credentials_file)
        kiln_aws_cred_provider_set(aws->creds, &base);
    kiln_aws_creds_clear(&base);
    rc = kiln_aws_sts_assume_role(aws, &a, out, err);
    kiln_aws_free(aws);
    return rc < 0 ? kiln_error_prefix(err, "%s.role_arn", where) : 0;
}

int kiln_tenantcreds_check(json_t *creds, const char *where, kiln_error_t *err)
{
    static const char *const keys[] = {"registry", "aws", "inherit", NULL};
    _cleanup_free_ char *at = kiln_xasprintf("%s.credentials", where);
    json_t *v;

    if (!json_is_object(creds))
        return kiln_error_set(err, 0, "%s: must be an object", at);
    if (known_keys(creds, keys, at, err) < 0)
        return -1;
    if ((v = json_object_get(creds, "inherit")) != NULL && !json_is_boolean(v))
        return kiln_error_set(err, 0, "%s.inherit: must be true or false", at);
    if ((v = json_object_get(creds, "registry")) != NULL) {
        _cleanup_free_ char *rat = kiln_xasprintf("%s.registry", at);
        json_t *cfg = NULL;
        if (registry_config(v, rat, &cfg, err) < 0)
            return -1;
        json_decref(cfg);
    }
    if ((v = json_object_get(creds, "aws")) != NULL) {
        _cleanup_free_ char *aat = kiln_xasprintf("%s.aws", at);
        aws_settings_t s;
        kiln_aws_creds_t c = {0};
        if (aws_settings(v, aat, &s, err) < 0)
            return -1;
        /* the file is read now so a bad one stops the server; a role is assumed per build */
        if (s.credentials_file && file_creds(&s, aat, &c, err) < 0)
            return -1;
        kiln_aws_creds_clear(&c);
    }
    return 0;
}

kiln_creds_source_t kiln_tenantcreds_source(json_t *creds, const char *tenant, const char *kind)
{
    if (creds == NULL)
        return tenant == NULL || strcmp(tenant, KILN_TENANT_DEFAULT) == 0 ? KILN_CREDS_SERVER
                                                                          : KILN_CREDS_NONE;
    if (json_object_get(creds, kind))
        return KILN_CREDS_OWN;
    return json_is_true(json_object_get(creds, "inherit")) ? KILN_CREDS_SERVER : KILN_CREDS_NONE;
}

/* Whether environment entry kv ("NAME=value") goes to the children of a build whose
 * registry / AWS credentials are not the server's (scrub_reg, scrub_aws; scrub_git: the
 * server's git token and credentials file). */
static int env_keep(const char *kv, int scrub_reg, int scrub_aws, int scrub_git)
{
    /* AWS settings that are not credentials: where the services are, how to retry */
    static const char *const aws_keep[] = {"AWS_REGION=",
                                           "AWS_DEFAULT_REGION=",
                                           "AWS_ENDPOINT_URL=",
                                           "AWS_ENDPOINT_URL_",
                                           "AWS_MAX_ATTEMPTS=",
                                           "AWS_RETRY_MODE=",
                                           "AWS_CA_BUNDLE=",
                                           "AWS_USE_FIPS_ENDPOINT=",
                                           "AWS_USE_DUALSTACK_ENDPOINT=",
                                           NULL};
    static const char *const reg_drop[] = {
        "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=", "DOCKER_AUTH_CONFIG=", NULL};
    /* never a build's: the API tokens, the key that seals queued jobs' secrets */
    static const char *const always_drop[] = {"KILN_API_TOKENS=", "KILN_JOB_KEY_FILE=", NULL};
    /* the server's git logins: its token (KILN_GIT_TOKEN and KILN_GIT_TOKEN_<HOST>), its
     * credentials file, its ssh agent */
    static const char *const git_drop[] = {"KILN_GIT_TOKEN=", "KILN_GIT_TOKEN_",
                                           "KILN_GIT_CREDENTIALS=", "SSH_AUTH_SOCK=", NULL};

    for (size_t i = 0; always_drop[i]; i++)
        if (strncmp(kv, always_drop[i], strlen(always_drop[i])) == 0)
            return 0;
    for (size_t i = 0; scrub_git && git_drop[i]; i++)
        if (strncmp(kv, git_drop[i], strlen(git_drop[i])) == 0)
            return 0;
    for (size_t i = 0; scrub_reg && reg_drop[i]; i++)
        if (strncmp(kv, reg_drop[i], strlen(reg_drop[i])) == 0)
            return 0;
    if (scrub_aws && strncmp(kv, "AWS_", 4) == 0) {
        for (size_t i = 0; aws_keep[i]; i++)
            if (strncmp(kv, aws_keep[i], strlen(aws_keep[i])) == 0)
                return 1;
        return 0;
    }
    return 1;
}

/* Appends s (taken: freed here) to the NULL-terminated vector *v of *n entries. */
static void env_push(char ***v, unsigned *n, char *s)
{
    kiln_server_strv_add(v, n, s);
    free(s);
}

/* Writes text as dir/name, 0600; wipes the caller's copy after. */
static int write_secret(const char *dir, const char *name, char *text, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_xasprintf("%s/%s", dir, name);
    int rc = kiln_fs_write_file_atomic(path, text, strlen(text), 0600, err);
    explicit_bzero(text, strlen(text));
    return rc;
}

/* Writes the build's docker config.json (the tenant's registry credentials, or none) in
 * dir/docker. */
static int prepare_registry(json_t *creds, kiln_creds_source_t src, const char *dir,
                            const char *where, kiln_error_t *err)
{
    _cleanup_free_ char *d = kiln_xasprintf("%s/docker", dir);
    json_t *cfg = NULL;
    char *text;

    if (kiln_fs_mkdir_p(d, 0700, err) < 0)
        return -1;
    if (src == KILN_CREDS_OWN) {
        _cleanup_free_ char *at = kiln_xasprintf("%s.credentials.registry", where);
        if (registry_config(json_object_get(creds, "registry"), at, &cfg, err) < 0)
            return -1;
    } else {
        cfg = json_object();
    }
    text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    if (text == NULL)
        return kiln_error_set(err, ENOMEM, "%s: the registry credentials", where);
    {
        int rc = write_secret(d, "config.json", text, err);
        free(text);
        return rc;
    }
}

/* Writes the build's AWS shared credentials and config files (the tenant's keys, or
 * empty ones) in dir/aws; *region: the tenant's region or NULL. */
static int prepare_aws(json_t *creds, kiln_creds_source_t src, const char *dir, const char *where,
                       const char **region, kiln_error_t *err)
{
    _cleanup_free_ char *d = kiln_xasprintf("%s/aws", dir);
    _cleanup_free_ char *at = kiln_xasprintf("%s.credentials.aws", where);
    char *cred_text, *config_text;
    aws_settings_t s = {0};
    kiln_aws_creds_t c = {0};
    int rc;

    *region = NULL;
    if (kiln_fs_mkdir_p(d, 0700, err) < 0)
        return -1;
    if (src == KILN_CREDS_OWN) {
        if (aws_settings(json_object_get(creds, "aws"), at, &s, err) < 0 ||
            aws_creds(&s, at, &c, err) < 0)
            return -1;
        *region = s.region;
        cred_text = kiln_xasprintf(
            "[default]\naws_access_key_id = %s\naws_secret_access_key = "
            "%s\n%s%s%s",
            c.access_key_id, c.secret_access_key, c.session_token ? "aws_session_token = " : "",
            c.session_token ? c.session_token : "", c.session_token ? "\n" : "");
        kiln_aws_creds_clear(&c);
    } else {
        cred_text = kiln_xstrdup("");
    }
    config_text =
        s.region ? kiln_xasprintf("[default]\nregion = %s\n", s.region) : kiln_xstrdup("");
    rc = write_secret(d, "credentials", cred_text, err);
    if (rc == 0)
        rc = write_secret(d, "config", config_text, err);
    free(cred_text);
    free(config_text);
    return rc;
}

int kiln_tenantcreds_prepare(json_t *creds, const char *tenant, const char *secrets_dir,
                             char *const *base, char ***envp, kiln_error_t *err)
{
    kiln_creds_source_t reg = kiln_tenantcreds_source(creds, tenant, "registry");
    kiln_creds_source_t aws = kiln_tenantcreds_source(creds, tenant, "aws");
    _cleanup_free_ char *dir = kiln_xasprintf("%s/%s", secrets_dir, KILN_TENANTCREDS_DIR);
    _cleanup_free_ char *where = kiln_xasprintf("tenant '%s'", tenant ? tenant : "default");
    /* the server's git credentials go with the server's other credentials */
    int scrub_git = reg != KILN_CREDS_SERVER || aws != KILN_CREDS_SERVER;
    const char *region = NULL;
    char **env = NULL;
    unsigned n = 0;

    *envp = NULL;
    /* a build that inherits everything gets no directory (its secrets dir holds only its
     * request's secrets, as before tenants had credentials) */
    if (kiln_fs_rm_rf(dir, err) < 0 || (scrub_git && (kiln_fs_mkdir_p(secrets_dir, 0700, err) < 0 ||
                                                      kiln_fs_mkdir_p(dir, 0700, err) < 0)))
        return -1;
    if ((reg != KILN_CREDS_SERVER && prepare_registry(creds, reg, dir, where, err) < 0) ||
        (aws != KILN_CREDS_SERVER && prepare_aws(creds, aws, dir, where, &region, err) < 0))
        return -1;
    if (scrub_git) {
        char empty[1] = "";
        if (write_secret(dir, "git-credentials", empty, err) < 0)
            return -1;
    }
    for (size_t i = 0; base && base[i]; i++)
        if (env_keep(base[i], reg != KILN_CREDS_SERVER, aws != KILN_CREDS_SERVER, scrub_git) &&
            !(region && (strncmp(base[i], "AWS_REGION=", 11) == 0 ||
                         strncmp(base[i], "AWS_DEFAULT_REGION=", 19) == 0)))
            env_push(&env, &n, kiln_xstrdup(base[i]));
    if (reg != KILN_CREDS_SERVER)
        env_push(&env, &n, kiln_xasprintf("DOCKER_CONFIG=%s/docker", dir));
    if (aws != KILN_CREDS_SERVER) {
        env_push(&env, &n, kiln_xasprintf("AWS_SHARED_CREDENTIALS_FILE=%s/aws/credentials", dir));
        env_push(&env, &n, kiln_xasprintf("AWS_CONFIG_FILE=%s/aws/config", dir));
        env_push(&env, &n, kiln_xstrdup("AWS_PROFILE=default"));
        /* never the server's instance role */
        env_push(&env, &n, kiln_xstrdup("AWS_EC2_METADATA_DISABLED=true"));
        if (region)
            env_push(&env, &n, kiln_xasprintf("AWS_REGION=%s", region));
    }
    if (scrub_git)
        env_push(&env, &n, kiln_xasprintf("KILN_GIT_CREDENTIALS=%s/git-credentials", dir));
    if (env == NULL)
        env = kiln_xzalloc(sizeof(char *));
    *envp = env;
    return 0;
}
