/* kiln server — tenants (see tenant.h): each from the config with its prefixes, entitlements
 * and limits, tokens kept as hashes and compared in constant time, the `default` tenant of
 * the older single-tenant forms. */
#include "src/server/tenant.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entitlement.h"
#include "src/server/limits.h"
#include "src/server/outconf.h"
#include "src/server/tenantcreds.h"
#include "utils/cleanup.h"
#include "utils/hmac.h"
#include "utils/mem.h"

/* Keys a tenant object may have. "credentials" is read by the per-tenant credentials code;
 * everything else is refused, so a typo never silently drops a restriction. */
static const char *const tenant_keys[] = {"name",   "tokens",         "outputs",    "entitlements",
                                          "limits", "max_concurrent", "credentials"};

int kiln_tenant_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KILN_TENANT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 (i > 0 && (ch == '_' || ch == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

/* The SHA-256 a configured token is compared as: "sha256:<64 hex>" decoded, any other string
 * (8+ characters) hashed. Fails naming where (never the token itself). */
static int token_hash(json_t *v, const char *where, uint8_t out[32], kiln_error_t *err)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (!json_is_string(v))
        return kiln_error_set(err, 0, "%s: must be a string", where);
    if (strncmp(s, "sha256:", 7) == 0) {
        if (kiln_hmac_parse_hex(s + 7, out) < 0)
            return kiln_error_set(err, 0, "%s: a sha256: token must be sha256:<64 hex digits>",
                                  where);
        return 0;
    }
    if (n < 8 || memchr(s, '\0', n) != NULL)
        return kiln_error_set(err, 0, "%s: must be a string of 8+ characters", where);
    SHA256((const unsigned char *)s, n, out);
    return 0;
}

/* Adds the token v to tenant t (a repeat within t is dropped); fails when another tenant of
 * c already has it, naming both tenants. */
static int add_token(kiln_config_t *c, kiln_tenant_t *t, json_t *v, const char *where,
                     kiln_error_t *err)
{
    uint8_t h[32];

    if (token_hash(v, where, h, err) < 0)
        return -1;
    for (size_t i = 0; i < c->n_tenants; i++) {
        kiln_tenant_t *o = &c->tenants[i];
        for (size_t k = 0; k < o->n_tokens; k++) {
            if (memcmp(o->token_hashes[k], h, 32) != 0)
                continue;
            if (o == t)
                return 0;
            return kiln_error_set(err, 0,
                                  "%s: the same token is also tenant '%s''s; a token belongs to "
                                  "one tenant",
                                  where, o->name);
        }
    }
    t->token_hashes = kiln_xrealloc(t->token_hashes, (t->n_tokens + 1) * sizeof(*t->token_hashes));
    memcpy(t->token_hashes[t->n_tokens++], h, 32);
    return 0;
}

/* Appends a tenant called name with no restrictions; returns it. */
static kiln_tenant_t *add_tenant(kiln_config_t *c, const char *name, json_t *raw)
{
    kiln_tenant_t *t;
    c->tenants = kiln_xrealloc(c->tenants, (c->n_tenants + 1) * sizeof(*c->tenants));
    t = &c->tenants[c->n_tenants++];
    memset(t, 0, sizeof(*t));
    t->name = kiln_xstrdup(name);
    t->raw = raw ? json_incref(raw) : json_object();
    t->entitlements = kiln_config_entitlements(c);
    return t;
}

/* Checks one "outputs" prefix list (registry or s3) of tenant at where; sets *out to it. */
static int load_prefixes(json_t *outputs, const char *key, const char *where, json_t **out,
                         kiln_error_t *err)
{
    json_t *list = json_object_get(outputs, key), *v;
    size_t i;

    if (list == NULL)
        return 0;
    if (!json_is_array(list))
        return kiln_error_set(err, 0, "%s.outputs.%s: must be an array of strings", where, key);
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return kiln_error_set(err, 0, "%s.outputs.%s[%zu]: must be a non-empty string", where,
                                  key, i);
    }
    *out = json_incref(list);
    return 0;
}

/* Fills t's restrictions from its config object o (at where); fails naming the key. */
static int load_restrictions(kiln_tenant_t *t, json_t *o, const char *where, kiln_error_t *err)
{
    json_t *outputs = json_object_get(o, "outputs"), *v;
    const char *key;
    size_t i;

    if (outputs) {
        if (!json_is_object(outputs))
            return kiln_error_set(err, 0, "%s.outputs: must be an object", where);
        json_object_foreach(outputs, key, v)
        {
            /* notify: exact targets, checked by the output rules (outconf.h) */
            if (strcmp(key, "registry") != 0 && strcmp(key, "s3") != 0 &&
                strcmp(key, "notify") != 0)
                return kiln_error_set(err, 0,
                                      "%s.outputs.%s: unknown key (expected registry, s3 or "
                                      "notify)",
                                      where, key);
        }
        if (load_prefixes(outputs, "registry", where, &t->registry_prefixes, err) < 0 ||
            load_prefixes(outputs, "s3", where, &t->s3_prefixes, err) < 0 ||
            load_prefixes(outputs, "notify", where, &t->notify_targets, err) < 0)
            return -1;
        /* outputs given: a kind of output it does not list is not allowed at all */
        if (t->registry_prefixes == NULL)
            t->registry_prefixes = json_array();
        if (t->s3_prefixes == NULL)
            t->s3_prefixes = json_array();
        if (t->notify_targets == NULL)
            t->notify_targets = json_array();
        {
            /* each prefix parses as outconf will read it (src/server/outconf.h) */
            kiln_outconf_rules_t rules = {.tenant = t->name,
                                          .registry = t->registry_prefixes,
                                          .s3 = t->s3_prefixes,
                                          .notify = t->notify_targets};
            kiln_error_t e = {0};
            if (kiln_outconf_rules_check(&rules, &e) < 0)
                return kiln_error_set(err, 0, "%s.%s", where, e.msg);
        }
    }
    if ((v = json_object_get(o, "entitlements")) != NULL) {
        if (!json_is_array(v))
            return kiln_error_set(err, 0, "%s.entitlements: must be an array of strings", where);
        t->entitlements = 0;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) || strchr(json_string_value(e), ',') ||
                kiln_entitlement_parse(json_string_value(e), &t->entitlements, NULL) < 0)
                return kiln_error_set(err, 0,
                                      "%s.entitlements[%zu]: must be network.host or "
                                      "security.insecure",
                                      where, i);
        }
    }
    if ((v = json_object_get(o, "limits")) != NULL) {
        kiln_limits_policy_t scratch = {0};
        if (!json_is_object(v))
            return kiln_error_set(err, 0, "%s.limits: must be an object", where);
        if (kiln_limits_policy_config(&scratch, v, NULL, err) < 0)
            return kiln_error_prefix(err, "%s", where);
        t->limits = json_incref(v);
    }
    if ((v = json_object_get(o, "max_concurrent")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000)
            return kiln_error_set(err, 0,
                                  "%s.max_concurrent: must be an integer from 0 (unbounded) to "
                                  "100000",
                                  where);
        t->max_concurrent = json_integer_value(v);
    }
    return 0;
}

/* Loads tenants[i] (object o) into c; fails naming it. */
static int load_tenant(kiln_config_t *c, json_t *o, size_t i, kiln_error_t *err)
{
    json_t *name = json_object_get(o, "name"), *tokens, *v;
    char where[128];
    const char *key;
    kiln_tenant_t *t;
    size_t k;

    snprintf(where, sizeof(where), "tenants[%zu]", i);
    if (!json_is_object(o))
        return kiln_error_set(err, 0, "%s: must be an object", where);
    if (!json_is_string(name) || !kiln_tenant_name_valid(json_string_value(name)))
        return kiln_error_set(err, 0, "%s.name: must match [a-z0-9][a-z0-9_-]{0,62}", where);
    /* from here on the tenant is named by its name: clearer than an index */
    snprintf(where, sizeof(where), "tenant '%s'", json_string_value(name));
    if (kiln_config_tenant_named(c, json_string_value(name)))
        return kiln_error_set(err, 0, "%s: the name is used by another tenant", where);
    json_object_foreach(o, key, v)
    {
        int known = 0;
        for (k = 0; k < sizeof(tenant_keys) / sizeof(tenant_keys[0]); k++)
            known |= strcmp(key, tenant_keys[k]) == 0;
        if (!known)
            return kiln_error_set(err, 0, "%s: unknown key '%.64s'", where, key);
    }
    tokens = json_object_get(o, "tokens");
    if (tokens && !json_is_array(tokens))
        return kiln_error_set(err, 0, "%s.tokens: must be an array of strings", where);
    t = add_tenant(c, json_string_value(name), o);
    if (load_restrictions(t, o, where, err) < 0)
        return -1;
    if ((v = json_object_get(o, "credentials")) != NULL &&
        kiln_tenantcreds_check(v, where, err) < 0)
        return -1;
    json_array_foreach(tokens, k, v)
    {
        char at[160];
        snprintf(at, sizeof(at), "%s.tokens[%zu]", where, k);
        if (add_token(c, t, v, at, err) < 0)
            return -1;
    }
    return 0;
}

int kiln_tenants_load(kiln_config_t *c, json_t *root, json_t *legacy_tokens, kiln_error_t *err)
{
    json_t *list = root ? json_object_get(root, "tenants") : NULL, *v;
    size_t i;

    if (list && !json_is_array(list))
        return kiln_error_set(err, 0, "tenants: must be an array of objects");
    json_array_foreach(list, i, v)
    {
        if (load_tenant(c, v, i, err) < 0)
            return -1;
    }
    if (c->n_tenants == 0 || json_array_size(legacy_tokens) > 0) {
        kiln_tenant_t *t;
        if (kiln_config_tenant_named(c, KILN_TENANT_DEFAULT))
            return kiln_error_set(err, 0,
                                  "tenant 'default': the top-level tokens (or KILN_API_TOKENS) "
                                  "are tenant 'default''s: list them in its \"tokens\" instead");
        t = add_tenant(c, KILN_TENANT_DEFAULT, NULL);
        json_array_foreach(legacy_tokens, i, v)
        {
            char at[64];
            snprintf(at, sizeof(at), "tokens[%zu]", i);
            if (add_token(c, t, v, at, err) < 0)
                return -1;
        }
    }
    return 0;
}

void kiln_tenants_free(kiln_config_t *c)
{
    for (size_t i = 0; i < c->n_tenants; i++) {
        kiln_tenant_t *t = &c->tenants[i];
        free(t->name);
        json_decref(t->registry_prefixes);
        json_decref(t->s3_prefixes);
        json_decref(t->notify_targets);
        json_decref(t->limits);
        json_decref(t->raw);
        free(t->token_hashes);
    }
    free(c->tenants);
    c->tenants = NULL;
    c->n_tenants = 0;
}

static EVP_MD *token_md;
static pthread_once_t token_md_once = PTHREAD_ONCE_INIT;

/* SHA-256 fetched once: SHA256() looks the algorithm up again on every call (half of a
 * token check's CPU, paid on every API request). */
static void token_md_init(void)
{
    token_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The SHA-256 of a presented token into h. */
static void presented_hash(const char *tok, size_t n, uint8_t h[32])
{
    pthread_once(&token_md_once, token_md_init);
    if (token_md == NULL || EVP_Digest(tok, n, h, NULL, token_md, NULL) != 1)
        SHA256((const unsigned char *)tok, n, h);
}

const kiln_tenant_t *kiln_config_tenant_for_token(const kiln_config_t *c, const char *authorization)
{
    const kiln_tenant_t *found = NULL;
    const char *tok;
    uint8_t h[32];
    size_t n;

    if (c == NULL || authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    n = strlen(tok);
    if (n == 0)
        return NULL;
    presented_hash(tok, n, h);
    /* Every token of every tenant is compared, with no early exit. */
    for (size_t i = 0; i < c->n_tenants; i++)
        for (size_t k = 0; k < c->tenants[i].n_tokens; k++)
            if (CRYPTO_memcmp(c->tenants[i].token_hashes[k], h, 32) == 0)
                found = &c->tenants[i];
    return found;
}

int kiln_tenant_check_outputs(const kiln_tenant_t *t, json_t *request, unsigned *status,
                              kiln_error_t *err)
{
    kiln_outconf_rules_t rules = {.tenant = t->name,
                                  .registry = t->registry_prefixes,
                                  .s3 = t->s3_prefixes,
                                  .notify = t->notify_targets};

    return kiln_outconf_check(request, &rules, status, err);
}

const kiln_tenant_t *kiln_config_tenant_named(const kiln_config_t *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < c->n_tenants; i++)
        if (strcmp(c->tenants[i].name, name) == 0)
            return &c->tenants[i];
    return NULL;
}
