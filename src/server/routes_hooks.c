/* kiln server — webhooks: GitHub (X-Hub-Signature-256, HMAC-SHA256 over the raw body)
 * and GitLab (X-Gitlab-Token) pushes become builds of the configured project. */
#include <stdlib.h>
#include <string.h>

#include "src/server/audit.h"
#include "src/server/http.h"
#include "utils/cleanup.h"
#include "utils/hmac.h"
#include "utils/mem.h"

/* GitHub: one HMAC per project secret, fed as the body arrives, so a body no project signed
 * is refused without being parsed. GitLab: the token is checked from the headers. */
struct kiln_hook_body {
    kiln_hmac_stream_t **macs;
    size_t n;
    int finished; /* the signatures were compared (a stream is finished once) */
    int signed_ok;
};

void kiln_routes_hook_free(kiln_hook_body_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        kiln_hmac_stream_free(h->macs[i]);
    free(h->macs);
    free(h);
}

/* 1 when some project has gitlab_token equal to token (every one compared). */
static int gitlab_token_known(const kiln_config_t *c, const char *token)
{
    size_t i;
    json_t *p;
    int ok = 0;

    json_array_foreach(c->projects, i, p)
    {
        const char *want = json_string_value(json_object_get(p, "gitlab_token"));
        if (want && token)
            ok |= kiln_hmac_equal(want, strlen(want), token, strlen(token));
    }
    return ok;
}

kiln_hook_body_t *kiln_routes_hook_start(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    kiln_hook_body_t *h = kiln_xzalloc(sizeof(*h));
    size_t i;
    json_t *p;

    if (strcmp(r->path, "/v1/hooks/gitlab") == 0) {
        if (!gitlab_token_known(r->srv->config, kiln_http_header(r, "X-Gitlab-Token"))) {
            kiln_http_error(resp, 401, "invalid X-Gitlab-Token");
            goto fail;
        }
        return h;
    }
    if (strcmp(r->path, "/v1/hooks/github") != 0)
        return h;
    h->macs = kiln_xzalloc((json_array_size(r->srv->config->projects) + 1) * sizeof(*h->macs));
    json_array_foreach(r->srv->config->projects, i, p)
    {
        const char *secret = json_string_value(json_object_get(p, "secret"));
        if (secret && json_object_get(p, "github") &&
            (h->macs[h->n] = kiln_hmac_stream_new(secret)) != NULL)
            h->n++;
    }
    if (h->n == 0 || strncmp(kiln_http_header(r, "X-Hub-Signature-256") ?: "", "sha256=", 7)) {
        kiln_http_error(resp, 401, "invalid X-Hub-Signature-256");
        goto fail;
    }
    return h;
fail:
    kiln_routes_hook_free(h);
    return NULL;
}

void kiln_routes_hook_feed(kiln_hook_body_t *h, const void *data, size_t len)
{
    for (size_t i = 0; h && i < h->n; i++)
        kiln_hmac_stream_update(h->macs[i], data, len);
}

/* 1 when some project's secret signed the body (the streamed HMACs match sig). */
static int github_signed(const kiln_http_req_t *r, const char *sig)
{
    kiln_hook_body_t *h = r->hook;
    if (h == NULL)
        return 1; /* not streamed: the per-project check below decides */
    if (!h->finished) {
        h->finished = 1;
        for (size_t i = 0; i < h->n; i++)
            h->signed_ok |= kiln_hmac_stream_verify_hex(h->macs[i], sig);
    }
    return h->signed_ok;
}

/* The tenant project p's builds belong to (its "tenant": the config fills in "default" and
 * checks that the tenant exists). */
static const char *project_tenant(json_t *p)
{
    const char *t = json_string_value(json_object_get(p, "tenant"));
    return t ? t : "default";
}

/* The delivery id of a push (a redelivery repeats it) from header `name`, in *out (NULL when
 * absent); answers 400 and returns -1 when it is malformed. */
static int delivery_id(const kiln_http_req_t *r, kiln_http_resp_t *resp, const char *name,
                       const char **out)
{
    kiln_error_t err = {0};

    *out = kiln_http_header(r, name);
    if (*out && kiln_audit_check_key(name, *out, &err) < 0) {
        kiln_http_error(resp, 400, "%s", err.msg);
        return -1;
    }
    return 0;
}

/* Queues a build of url at commit for project p, recording who pushed (the payload o) and
 * the delivery (a delivery seen before answers the build it started); answers 202 with the
 * build. */
static void build_push(const kiln_http_req_t *r, kiln_http_resp_t *resp, json_t *p, const char *via,
                       const char *delivery, json_t *o, const char *url, const char *ref,
                       const char *commit)
{
    const char *project = json_string_value(json_object_get(p, "name"));
    const char *event =
        kiln_http_header(r, strcmp(via, "github") == 0 ? "X-GitHub-Event" : "X-Gitlab-Event");
    _cleanup_free_ char *key = kiln_audit_dedupe_key(
        via, project ? project : json_string_value(json_object_get(p, via)), delivery);
    json_t *build = json_object_get(p, "build");
    json_t *body = build ? json_deep_copy(build) : json_object();
    json_t *src = json_pack("{s:s}", "git", url ? url : "");

    if (ref) {
        /* Builds check out the pushed branch or tag by its short name. */
        if (strncmp(ref, "refs/heads/", 11) == 0)
            ref += 11;
        else if (strncmp(ref, "refs/tags/", 10) == 0)
            ref += 10;
        json_object_set_new(src, "ref", json_string(ref));
    }
    if (commit)
        json_object_set_new(src, "commit", json_string(commit));
    json_object_set_new(body, "source", src);
    kiln_routes_submit(r->srv, project_tenant(p), body,
                       kiln_audit_webhook(via, project_tenant(p), project, delivery, event, o), key,
                       resp);
}

static int zero_sha(const char *s)
{
    return s == NULL || strspn(s, "0") == strlen(s);
}

static json_t *parse_body(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    json_error_t je;
    json_t *o = json_loadb(r->body, r->body_len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        kiln_http_error(resp, 400, "malformed JSON payload at line %d: %s", je.line, je.text);
        return NULL;
    }
    return o;
}

static void github(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    const char *event = kiln_http_header(r, "X-GitHub-Event");
    const char *sig = kiln_http_header(r, "X-Hub-Signature-256");
    const char *name, *secret, *delivery;
    json_t *o, *p, *repo;

    if (event == NULL) {
        kiln_http_error(resp, 400, "missing X-GitHub-Event header");
        return;
    }
    if (!github_signed(r, sig)) {
        kiln_http_error(resp, 401, "invalid X-Hub-Signature-256");
        return;
    }
    if ((o = parse_body(r, resp)) == NULL)
        return;
    repo = json_object_get(o, "repository");
    name = json_string_value(json_object_get(repo, "full_name"));
    p = kiln_config_project(r->srv->config, "github", name);
    if (p == NULL) {
        kiln_http_error(resp, 404, "no project for repository '%.200s'", name ? name : "");
        goto out;
    }
    secret = json_string_value(json_object_get(p, "secret"));
    if (secret == NULL || !kiln_hmac_verify_sha256_hex(secret, r->body, r->body_len, sig)) {
        kiln_http_error(resp, 401, "invalid X-Hub-Signature-256");
        goto out;
    }
    resp->tenant = project_tenant(p);
    if (delivery_id(r, resp, "X-GitHub-Delivery", &delivery) < 0)
        goto out;
    if (strcmp(event, "ping") == 0) {
        kiln_http_json(resp, 200, json_pack("{s:b}", "ok", 1));
    } else if (strcmp(event, "push") != 0) {
        kiln_http_json(resp, 200, json_pack("{s:s}", "ignored", "only push events build"));
    } else if (json_is_true(json_object_get(o, "deleted")) ||
               zero_sha(json_string_value(json_object_get(o, "after")))) {
        kiln_http_json(resp, 200, json_pack("{s:s}", "ignored", "branch deleted"));
    } else {
        build_push(r, resp, p, "github", delivery, o,
                   json_string_value(json_object_get(repo, "clone_url")),
                   json_string_value(json_object_get(o, "ref")),
                   json_string_value(json_object_get(o, "after")));
    }
out:
    json_decref(o);
}

static void gitlab(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    const char *event = kiln_http_header(r, "X-Gitlab-Event");
    const char *token = kiln_http_header(r, "X-Gitlab-Token");
    const char *name, *want, *delivery;
    json_t *o, *p, *proj;

    if (event == NULL) {
        kiln_http_error(resp, 400, "missing X-Gitlab-Event header");
        return;
    }
    if ((o = parse_body(r, resp)) == NULL)
        return;
    proj = json_object_get(o, "project");
    name = json_string_value(json_object_get(proj, "path_with_namespace"));
    p = kiln_config_project(r->srv->config, "gitlab", name);
    if (p == NULL) {
        kiln_http_error(resp, 404, "no project for repository '%.200s'", name ? name : "");
        goto out;
    }
    want = json_string_value(json_object_get(p, "gitlab_token"));
    if (want == NULL || token == NULL ||
        !kiln_hmac_equal(want, strlen(want), token, strlen(token))) {
        kiln_http_error(resp, 401, "invalid X-Gitlab-Token");
        goto out;
    }
    resp->tenant = project_tenant(p);
    /* GitLab repeats Idempotency-Key on a retry; older versions only send the event's UUID */
    if (delivery_id(r, resp,
                    kiln_http_header(r, "Idempotency-Key") ? "Idempotency-Key"
                                                           : "X-Gitlab-Event-UUID",
                    &delivery) < 0)
        goto out;
    if (strcmp(event, "Push Hook") != 0 && strcmp(event, "Tag Push Hook") != 0) {
        kiln_http_json(resp, 200, json_pack("{s:s}", "ignored", "only push events build"));
    } else {
        const char *commit = json_string_value(json_object_get(o, "checkout_sha"));
        if (commit == NULL)
            commit = json_string_value(json_object_get(o, "after"));
        if (zero_sha(commit))
            kiln_http_json(resp, 200, json_pack("{s:s}", "ignored", "branch deleted"));
        else
            build_push(r, resp, p, "gitlab", delivery, o,
                       json_string_value(json_object_get(proj, "git_http_url")),
                       json_string_value(json_object_get(o, "ref")), commit);
    }
out:
    json_decref(o);
}

void kiln_routes_hooks(const kiln_http_req_t *r, kiln_http_resp_t *resp)
{
    if (strcmp(r->method, "POST") != 0) {
        kiln_http_error(resp, 405, "use POST");
        return;
    }
    if (strcmp(r->path, "/v1/hooks/github") == 0)
        github(r, resp);
    else if (strcmp(r->path, "/v1/hooks/gitlab") == 0)
        gitlab(r, resp);
}
