/* kiln — docker config.json credentials and credential helpers. */
#include "oci/docker_config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "utils/aws/ecr.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

extern char **environ;

#define MAX_PROVIDERS 8
#define DOCKER_HUB_KEY "https://index.docker.io/v1/"

static int docker_config_lookup(const char *registry, kiln_cred_t *out, kiln_error_t *err);

static struct {
    char name[64];
    kiln_cred_provider_fn fn;
    void *ud;
} providers[MAX_PROVIDERS];

void kiln_cred_clear(kiln_cred_t *c)
{
    if (c == NULL)
        return;
    if (c->password != NULL) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    if (c->identity_token != NULL) {
        explicit_bzero(c->identity_token, strlen(c->identity_token));
        free(c->identity_token);
    }
    free(c->username);
    c->username = c->password = c->identity_token = NULL;
}

int kiln_docker_config_set_provider(const char *name, kiln_cred_provider_fn fn, void *ud)
{
    int free_slot = -1;
    for (int i = 0; i < MAX_PROVIDERS; i++) {
        if (providers[i].fn != NULL && strcmp(providers[i].name, name) == 0) {
            providers[i].fn = fn;
            providers[i].ud = ud;
            return 0;
        }
        if (providers[i].fn == NULL && free_slot < 0)
            free_slot = i;
    }
    if (fn == NULL)
        return 0;
    if (free_slot < 0 || strlen(name) >= sizeof(providers[0].name))
        return -1;
    snprintf(providers[free_slot].name, sizeof(providers[free_slot].name), "%s", name);
    providers[free_slot].fn = fn;
    providers[free_slot].ud = ud;
    return 0;
}

char *kiln_docker_config_path(void)
{
    const char *d = getenv("DOCKER_CONFIG");
    const char *home = getenv("HOME");
    if (d != NULL && d[0] != '\0')
        return kiln_xasprintf("%s/config.json", d);
    if (home != NULL && home[0] != '\0')
        return kiln_xasprintf("%s/.docker/config.json", home);
    return NULL;
}

/* Loads config.json; *out = NULL (and 0) when the file does not exist. */
static int load_config(const char *path, json_t **out, kiln_error_t *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    json_t *j = NULL;

    *out = NULL;
    if (path == NULL)
        return 0;
    if (kiln_fs_read_file(path, KILN_DOCKER_CONFIG_MAX, &buf, &len, err) < 0) {
        if (err != NULL && err->code == ENOENT) {
            kiln_error_clear(err);
            return 0;
        }
        return -1;
    }
    if (kiln_json_loadb(buf, len, KILN_DOCKER_CONFIG_MAX, path, &j, err) < 0)
        return -1;
    if (!json_is_object(j)) {
        json_decref(j);
        return kiln_error_set(err, EINVAL, "%s: not a JSON object", path);
    }
    *out = j;
    return 0;
}

/* The keys an entry for `registry` may be stored under, most specific first. */
static void candidate_keys(const char *registry, char keys[4][300], int *n)
{
    *n = 0;
    if (strcmp(registry, "docker.io") == 0) {
        snprintf(keys[(*n)++], 300, "%s", DOCKER_HUB_KEY);
        snprintf(keys[(*n)++], 300, "index.docker.io");
        snprintf(keys[(*n)++], 300, "docker.io");
        snprintf(keys[(*n)++], 300, "registry-1.docker.io");
        return;
    }
    snprintf(keys[(*n)++], 300, "%s", registry);
    snprintf(keys[(*n)++], 300, "https://%s", registry);
    snprintf(keys[(*n)++], 300, "http://%s", registry);
}

/* Finds the auths entry whose key names `registry` (also "https://host/v2/" forms). */
static json_t *find_auth_entry(json_t *auths, const char *registry)
{
    char keys[4][300];
    int n;
    const char *k;
    json_t *v;

    if (!json_is_object(auths))
        return NULL;
    candidate_keys(registry, keys, &n);
    for (int i = 0; i < n; i++) {
        v = json_object_get(auths, keys[i]);
        if (json_is_object(v))
            return v;
    }
    /* "https://host/v1/" style keys: compare the host part */
    json_object_foreach(auths, k, v)
    {
        const char *h = k;
        size_t hl;
        if (strncmp(h, "https://", 8) == 0)
            h += 8;
        else if (strncmp(h, "http://", 7) == 0)
            h += 7;
        hl = strcspn(h, "/");
        if (hl == strlen(registry) && strncmp(h, registry, hl) == 0 && json_is_object(v))
            return v;
    }
    return NULL;
}

static int decode_auth(const char *b64, kiln_cred_t *out, const char *registry, kiln_error_t *err)
{
    size_t n = strlen(b64);
    _cleanup_free_ unsigned char *dec = NULL;
    int dl;
    char *colon;

    if (n == 0 || n > 16384)
        return kiln_error_set(err, EINVAL, "credentials for %s in config.json: bad \"auth\" value",
                              registry);
    dec = kiln_xzalloc(n + 4);
    dl = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
    if (dl < 0)
        return kiln_error_set(
            err, EINVAL, "credentials for %s in config.json: \"auth\" is not base64", registry);
    /* EVP_DecodeBlock counts padding bytes as output: drop them */
    while (n > 0 && b64[n - 1] == '=' && dl > 0) {
        n--;
        dl--;
    }
    dec[dl] = '\0';
    colon = strchr((char *)dec, ':');
    if (colon == NULL) {
        explicit_bzero(dec, (size_t)dl);
        return kiln_error_set(err, EINVAL,
                              "credentials for %s in config.json: \"auth\" is not user:password",
                              registry);
    }
    *colon = '\0';
    out->username = kiln_xstrdup((char *)dec);
    out->password = kiln_xstrdup(colon + 1);
    explicit_bzero(dec, (size_t)dl);
    return 0;
}

/* Runs `docker-credential-<helper> <verb>` with `input` on stdin; its stdout
 * (capped) in *out. Fails with the helper's exit status (its stderr is not
 * copied into the error: helpers may echo secrets). */
static int run_helper(const char *helper, const char *verb, const char *input, char **out,
                      kiln_error_t *err)
{
    _cleanup_free_ char *prog = kiln_xasprintf("docker-credential-%s", helper);
    int in_pipe[2], out_pipe[2];
    posix_spawn_file_actions_t fa;
    char *argv[] = {prog, (char *)verb, NULL};
    pid_t pid;
    int rc, status = 0;
    kiln_buf_t b;
    size_t off = 0, inlen = strlen(input);
    int in_open = 1, out_open = 1;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;

    for (size_t i = 0; helper[i]; i++)
        if (helper[i] == '/')
            return kiln_error_set(err, EINVAL, "credential helper name '%s' contains '/'", helper);
    if (pipe2(in_pipe, O_CLOEXEC) < 0)
        return kiln_error_set(err, errno, "pipe");
    if (pipe2(out_pipe, O_CLOEXEC) < 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        return kiln_error_set(err, errno, "pipe");
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in_pipe[0]);
    close(out_pipe[1]);
    if (rc != 0) {
        close(in_pipe[1]);
        close(out_pipe[0]);
        return kiln_error_set(err, rc, "credential helper %s", prog);
    }
    sigaction(SIGPIPE, &ign, &old);
    kiln_buf_init(&b, KILN_DOCKER_CONFIG_MAX);
    rc = 0;
    while (in_open || out_open) {
        struct pollfd p[2] = {{in_open ? in_pipe[1] : -1, POLLOUT, 0},
                              {out_open ? out_pipe[0] : -1, POLLIN, 0}};
        if (poll(p, 2, 30000) <= 0) {
            rc = kiln_error_set(err, ETIMEDOUT, "credential helper %s did not answer", prog);
            kill(pid, SIGKILL);
            break;
        }
        if (in_open && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in_pipe[1], input + off, inlen - off);
            if (w > 0)
                off += (size_t)w;
            if (w < 0 || off == inlen) {
                close(in_pipe[1]);
                in_open = 0;
            }
        }
        if (out_open && (p[1].revents & (POLLIN | POLLERR | POLLHUP))) {
            char tmp[4096];
            ssize_t r = read(out_pipe[0], tmp, sizeof(tmp));
            if (r <= 0) {
                close(out_pipe[0]);
                out_open = 0;
            } else if (kiln_buf_append(&b, tmp, (size_t)r, err) < 0) {
                rc = kiln_error_prefix(err, "credential helper %s output", prog);
                kill(pid, SIGKILL);
                break;
            }
        }
    }
    if (in_open)
        close(in_pipe[1]);
    if (out_open)
        close(out_pipe[0]);
    sigaction(SIGPIPE, &old, NULL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        rc = kiln_error_set(err, 0, "credential helper %s %s failed (exit status %d)", prog, verb,
                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (rc < 0) {
        if (b.data)
            explicit_bzero(b.data, b.len);
        kiln_buf_free(&b);
        return -1;
    }
    *out = b.data ? kiln_buf_steal(&b, NULL) : kiln_xstrdup("");
    return 0;
}

static int helper_get(const char *helper, const char *registry, kiln_cred_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *answer = NULL;
    _cleanup_json_ json_t *j = NULL;
    const char *user, *secret;
    const char *server = strcmp(registry, "docker.io") == 0 ? DOCKER_HUB_KEY : registry;

    for (int i = 0; i < MAX_PROVIDERS; i++)
        if (providers[i].fn != NULL && strcmp(providers[i].name, helper) == 0)
            return providers[i].fn(registry, out, providers[i].ud, err);
    if (run_helper(helper, "get", server, &answer, err) < 0) {
        /* helpers exit non-zero with "credentials not found": treat as none */
        kiln_error_clear(err);
        return 0;
    }
    if (kiln_json_loadb(answer, strlen(answer), KILN_DOCKER_CONFIG_MAX, "credential helper answer",
                        &j, err) < 0) {
        explicit_bzero(answer, strlen(answer));
        return kiln_error_set(err, EINVAL, "credential helper %s returned invalid JSON for %s",
                              helper, registry);
    }
    explicit_bzero(answer, strlen(answer));
    user = kiln_json_get_string(j, "Username");
    secret = kiln_json_get_string(j, "Secret");
    if (secret == NULL || secret[0] == '\0')
        return 0;
    if (user != NULL && strcmp(user, "<token>") == 0) {
        out->identity_token = kiln_xstrdup(secret);
    } else {
        out->username = kiln_xstrdup(user ? user : "");
        out->password = kiln_xstrdup(secret);
    }
    return 1;
}

/* ECR registries need no configuration, as with Amazon's credential helper:
 * the built-in "ecr-login" provider serves *.dkr.ecr.* hosts that config.json
 * says nothing about. Returns 1 with credentials, 0 when not ECR or no provider
 * is registered, -1 with err set when ECR refuses. */
static int ecr_default(const char *registry, kiln_cred_t *out, kiln_error_t *err)
{
    char *account = NULL, *region = NULL;
    int is_ecr = kiln_ecr_parse_host(registry, &account, &region);

    free(account);
    free(region);
    if (!is_ecr)
        return 0;
    for (int i = 0; i < MAX_PROVIDERS; i++)
        if (providers[i].fn != NULL && strcmp(providers[i].name, "ecr-login") == 0)
            return providers[i].fn(registry, out, providers[i].ud, err);
    return 0;
}

int kiln_docker_config_get(const char *registry, kiln_cred_t *out, kiln_error_t *err)
{
    int rc = docker_config_lookup(registry, out, err);

    if (rc != 0)
        return rc;
    return ecr_default(registry, out, err);
}

/* The lookup in config.json alone (helpers, credsStore, auths). */
static int docker_config_lookup(const char *registry, kiln_cred_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_docker_config_path();
    _cleanup_json_ json_t *cfg = NULL;
    kiln_cred_t c = {0};
    json_t *helpers, *entry;
    const char *helper = NULL, *s;
    char keys[4][300];
    int n, rc;

    if (load_config(path, &cfg, err) < 0)
        return -1;
    if (cfg == NULL)
        return 0;
    helpers = json_object_get(cfg, "credHelpers");
    if (json_is_object(helpers)) {
        candidate_keys(registry, keys, &n);
        for (int i = 0; i < n && helper == NULL; i++)
            helper = kiln_json_get_string(helpers, keys[i]);
    }
    if (helper == NULL)
        helper = kiln_json_get_string(cfg, "credsStore");
    if (helper != NULL && helper[0] != '\0') {
        rc = helper_get(helper, registry, &c, err);
        if (rc < 0)
            return kiln_error_prefix(err, "credentials for %s", registry);
        if (rc > 0) {
            *out = c;
            return 1;
        }
    }
    entry = find_auth_entry(json_object_get(cfg, "auths"), registry);
    if (entry == NULL)
        return 0;
    s = kiln_json_get_string(entry, "auth");
    if (s != NULL && s[0] != '\0') {
        if (decode_auth(s, &c, registry, err) < 0)
            return -1;
    } else if ((s = kiln_json_get_string(entry, "username")) != NULL) {
        c.username = kiln_xstrdup(s);
        s = kiln_json_get_string(entry, "password");
        c.password = kiln_xstrdup(s ? s : "");
    }
    s = kiln_json_get_string(entry, "identitytoken");
    if (s != NULL && s[0] != '\0')
        c.identity_token = kiln_xstrdup(s);
    if (c.password == NULL && c.identity_token == NULL) {
        kiln_cred_clear(&c);
        return 0;
    }
    *out = c;
    return 1;
}

/* The helper configured for registry, or NULL. Borrowed from cfg. */
static const char *helper_for(json_t *cfg, const char *registry)
{
    char keys[4][300];
    int n;
    const char *h = NULL;
    json_t *helpers = json_object_get(cfg, "credHelpers");
    if (json_is_object(helpers)) {
        candidate_keys(registry, keys, &n);
        for (int i = 0; i < n && h == NULL; i++)
            h = kiln_json_get_string(helpers, keys[i]);
    }
    if (h == NULL)
        h = kiln_json_get_string(cfg, "credsStore");
    return h != NULL && h[0] != '\0' ? h : NULL;
}

static int save_config(const char *path, json_t *cfg, kiln_error_t *err)
{
    _cleanup_free_ char *dir = kiln_xstrdup(path);
    _cleanup_free_ char *text = NULL;
    char *slash = strrchr(dir, '/');
    int rc;

    if (slash != NULL) {
        *slash = '\0';
        if (dir[0] != '\0' && kiln_fs_mkdir_p(dir, 0700, err) < 0)
            return -1;
    }
    text = json_dumps(cfg, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (text == NULL)
        return kiln_error_set(err, ENOMEM, "serialising %s", path);
    rc = kiln_fs_write_file_atomic(path, text, strlen(text), 0600, err);
    explicit_bzero(text, strlen(text));
    return rc;
}

int kiln_docker_config_store(const char *registry, const char *username, const char *password,
                             kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_docker_config_path();
    _cleanup_json_ json_t *cfg = NULL;
    const char *helper;
    const char *key = strcmp(registry, "docker.io") == 0 ? DOCKER_HUB_KEY : registry;
    json_t *auths, *entry;

    if (path == NULL)
        return kiln_error_set(err, 0, "cannot locate config.json: set DOCKER_CONFIG or HOME");
    if (load_config(path, &cfg, err) < 0)
        return -1;
    if (cfg == NULL)
        cfg = json_object();
    helper = helper_for(cfg, registry);
    if (helper != NULL) {
        _cleanup_json_ json_t *in =
            json_pack("{s:s,s:s,s:s}", "ServerURL", key, "Username", username, "Secret", password);
        _cleanup_free_ char *text = json_dumps(in, JSON_COMPACT);
        _cleanup_free_ char *answer = NULL;
        int rc = run_helper(helper, "store", text, &answer, err);
        explicit_bzero(text, strlen(text));
        return rc < 0 ? kiln_error_prefix(err, "storing credentials for %s", registry) : 0;
    }
    auths = json_object_get(cfg, "auths");
    if (!json_is_object(auths)) {
        auths = json_object();
        json_object_set_new(cfg, "auths", auths);
    }
    {
        size_t ul = strlen(username), pl = strlen(password);
        _cleanup_free_ char *plain = kiln_xmalloc(ul + pl + 2);
        _cleanup_free_ char *b64 = kiln_xmalloc(4 * ((ul + pl + 1 + 2) / 3) + 1);
        memcpy(plain, username, ul);
        plain[ul] = ':';
        memcpy(plain + ul + 1, password, pl);
        EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)plain, (int)(ul + pl + 1));
        explicit_bzero(plain, ul + pl + 1);
        entry = json_pack("{s:s}", "auth", b64);
        explicit_bzero(b64, strlen(b64));
    }
    json_object_set_new(auths, key, entry);
    return save_config(path, cfg, err);
}

int kiln_docker_config_erase(const char *registry, kiln_error_t *err)
{
    _cleanup_free_ char *path = kiln_docker_config_path();
    _cleanup_json_ json_t *cfg = NULL;
    const char *helper;
    char keys[4][300];
    int n, removed = 0;
    json_t *auths;

    if (load_config(path, &cfg, err) < 0)
        return -1;
    if (cfg == NULL)
        return 0;
    helper = helper_for(cfg, registry);
    if (helper != NULL) {
        _cleanup_free_ char *answer = NULL;
        const char *key = strcmp(registry, "docker.io") == 0 ? DOCKER_HUB_KEY : registry;
        if (run_helper(helper, "erase", key, &answer, err) < 0)
            return kiln_error_prefix(err, "erasing credentials for %s", registry);
        removed = 1;
    }
    auths = json_object_get(cfg, "auths");
    if (json_is_object(auths)) {
        candidate_keys(registry, keys, &n);
        for (int i = 0; i < n; i++)
            if (json_object_del(auths, keys[i]) == 0)
                removed = 1;
        if (save_config(path, cfg, err) < 0)
            return -1;
    }
    return removed;
}
