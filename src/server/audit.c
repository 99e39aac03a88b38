/* kiln server — the audit trail of a build (see audit.h): who triggered it (token id, webhook
 * project, delivery, pusher) and the dedupe keys of webhook deliveries and Idempotency-Keys. */
#include "src/server/audit.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "utils/mem.h"

/* Names and identities copied from a payload are cut to this many bytes. */
#define AUDIT_STR_MAX 200

char *kiln_audit_token_id(const char *authorization)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char hex[13];
    const char *tok;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (*tok == '\0' || EVP_Digest(tok, strlen(tok), md, &len, EVP_sha256(), NULL) != 1)
        return NULL;
    for (size_t i = 0; i < 6; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return kiln_xasprintf("sha256:%s", hex);
}

/* Sets key to s (cut to AUDIT_STR_MAX bytes, at a character boundary) when s is a
 * non-empty string. */
static void set_str(json_t *o, const char *key, const char *s)
{
    size_t n = s ? strnlen(s, AUDIT_STR_MAX + 1) : 0;
    json_t *v;

    if (n > AUDIT_STR_MAX)
        for (n = AUDIT_STR_MAX; n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; n--)
            ;
    if (n > 0 && (v = json_stringn(s, n)) != NULL)
        json_object_set_new(o, key, v);
}

json_t *kiln_audit_api(const char *tenant, const char *authorization, const char *idem_key)
{
    json_t *o = json_pack("{s:s}", "via", "api");
    char *tid = kiln_audit_token_id(authorization);

    set_str(o, "tenant", tenant);
    set_str(o, "token", tid);
    set_str(o, "idempotency_key", idem_key);
    free(tid);
    return o;
}

static const char *get_path(json_t *o, const char *a, const char *b)
{
    return json_string_value(json_object_get(b ? json_object_get(o, a) : o, b ? b : a));
}

/* GitLab: the pushed commit (checkout_sha) among the payload's commits, else the last one
 * listed (NULL when none is). */
static json_t *gitlab_commit(json_t *payload)
{
    json_t *commits = json_object_get(payload, "commits"), *c, *last = NULL;
    const char *sha = json_string_value(json_object_get(payload, "checkout_sha"));
    size_t i;

    json_array_foreach(commits, i, c)
    {
        last = c;
        if (sha && strcmp(get_path(c, "id", NULL) ?: "", sha) == 0)
            break;
    }
    return last;
}

json_t *kiln_audit_webhook(const char *via, const char *tenant, const char *project,
                           const char *delivery, const char *event, json_t *payload)
{
    json_t *o = json_pack("{s:s}", "via", via);
    const char *pusher, *author, *message;

    if (strcmp(via, "github") == 0) {
        json_t *head = json_object_get(json_object_get(payload, "head_commit"), "author");
        pusher = get_path(payload, "pusher", "name") ?: get_path(payload, "sender", "login");
        author = get_path(head, "username", NULL) ?: get_path(head, "name", NULL);
        message = get_path(payload, "head_commit", "message");
    } else {
        json_t *c = gitlab_commit(payload);
        pusher = get_path(payload, "user_username", NULL) ?: get_path(payload, "user_name", NULL);
        author = get_path(json_object_get(c, "author"), "name", NULL);
        message = get_path(c, "message", NULL);
    }
    set_str(o, "tenant", tenant);
    set_str(o, "project", project);
    set_str(o, "delivery", delivery);
    set_str(o, "event", event);
    set_str(o, "pusher", pusher);
    set_str(o, "commit_author", author);
    /* the commit's message as the pusher wrote it (cut): the dashboard shows it as text */
    set_str(o, "commit_message", message);
    return o;
}

int kiln_audit_check_key(const char *name, const char *value, kiln_error_t *err)
{
    size_t n = value ? strlen(value) : 0;

    if (n == 0 || n > KILN_AUDIT_KEY_MAX)
        return kiln_error_set(err, 0, "header '%s': must be 1 to %d characters", name,
                              KILN_AUDIT_KEY_MAX);
    for (size_t i = 0; i < n; i++)
        if (value[i] <= ' ' || value[i] > '~')
            return kiln_error_set(
                err, 0, "header '%s': only printable ASCII without spaces is allowed", name);
    return 0;
}

char *kiln_audit_dedupe_key(const char *kind, const char *scope, const char *value)
{
    return value ? kiln_xasprintf("%s:%s:%s", kind, scope ? scope : "", value) : NULL;
}
