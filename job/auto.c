/* kiln — the auto-detected build: source resolution, plan, toolchain, the rendered
 * Dockerfile ready for the engine (see auto.h); the function zip is export/function.c. */
#include "job/auto.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/build.h"
#include "handlers/detect.h"
#include "handlers/python_workspace.h"
#include "handlers/render.h"
#include "handlers/workspace.h"
#include "job/kept_tree.h"
#include "job/toolchain.h"
#include "oci/digest.h"
#include "utils/buf.h"
#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/env.h"
#include "utils/fs.h"
#include "utils/git.h"
#include "utils/mem.h"

#define DEFAULT_ROOT "/var/lib/kiln"

char *kiln_auto_root(const char *root, char *const *env)
{
    const char *r = root ? root : kiln_env_get(env, "KILN_ROOT");
    return kiln_xstrdup(r ? r : DEFAULT_ROOT);
}

char *kiln_auto_git_context_id(const char *url, const char *subdir)
{
    _cleanup_free_ char *red = kiln_git_redact(url);
    const char *s = subdir ? subdir : "";
    size_t n;

    while (s[0] == '/' || (s[0] == '.' && s[1] == '/'))
        s += s[0] == '/' ? 1 : 2;
    n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return kiln_xasprintf("git %s %.*s", red, (int)n, s);
}

/* utils/git on_file: notes one written file with its blob id, by its path below the
 * context's directory (files outside it are not the build's). */
static void note_file(void *ctx, const char *dir, const char *name, int fd,
                      const unsigned char *oid)
{
    kiln_auto_notes_t *n = ctx;
    _cleanup_free_ char *rel = NULL;
    struct stat st;

    if (strncmp(dir, n->prefix, n->plen) != 0 || (dir[n->plen] != '\0' && dir[n->plen] != '/'))
        return;
    rel = dir[n->plen] ? kiln_xasprintf("%s/%s", dir + n->plen + 1, name) : kiln_xstrdup(name);
    if (fstat(fd, &st) == 0)
        kiln_statcache_note(n->sc, rel, &st, oid);
}

int kiln_auto_notes_start(kiln_auto_notes_t *n, const char *root, const char *ns,
                          const char *context_id, int64_t max, const char *dest, const char *subdir,
                          kiln_git_opts_t *g, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL;
    const char *s = subdir ? subdir : "";
    size_t sl;

    memset(n, 0, sizeof(*n));
    if (kiln_cachens_path(root, ns, KILN_CACHENS_STATCACHE, &dir, err) < 0 ||
        kiln_statcache_open(dir, context_id, max, &n->sc, err) < 0)
        return -1;
    while (s[0] == '/' || (s[0] == '.' && s[1] == '/'))
        s += s[0] == '/' ? 1 : 2;
    sl = strlen(s);
    while (sl > 0 && s[sl - 1] == '/')
        sl--;
    n->prefix = sl ? kiln_xasprintf("%s/%.*s", dest, (int)sl, s) : kiln_xstrdup(dest);
    n->plen = strlen(n->prefix);
    g->on_file = note_file;
    g->on_file_ctx = n;
    return 0;
}

int kiln_auto_notes_finish(kiln_auto_notes_t *n, kiln_statcache_stats_t *st, kiln_error_t *err)
{
    int r;

    if (n->sc == NULL)
        return 0;
    if (!n->partial)
        kiln_statcache_scanned(n->sc, "");
    r = kiln_statcache_save(n->sc, err);
    if (st)
        kiln_statcache_stats(n->sc, st);
    kiln_auto_notes_free(n);
    return r;
}

void kiln_auto_notes_free(kiln_auto_notes_t *n)
{
    kiln_statcache_free(n->sc);
    free(n->prefix);
    memset(n, 0, sizeof(*n));
}

/* The kept work tree of a repository for a namespace: ROOT/build/worktrees/HEX, HEX the
 * sha256 of the namespace and the URL (userinfo redacted), so tenants never share one. */
static char *kept_dir(const char *root, const char *ns, const char *url)
{
    _cleanup_free_ char *red = kiln_git_redact(url);
    kiln_sha256_t h;
    kiln_digest_t d;

    if (kiln_sha256_init(&h, NULL) < 0)
        return NULL;
    kiln_sha256_update(&h, ns ? ns : "", strlen(ns ? ns : "") + 1);
    kiln_sha256_update(&h, red, strlen(red));
    kiln_sha256_final(&h, &d);
    return kiln_xasprintf("%s/" KILN_AUTO_WORKTREES "/%s", root, d.hex);
}

/* The checked-out commit's author and message, for the build's record: a commit that
 * cannot be read leaves them unknown (the build goes on). */
static void commit_info(kiln_auto_source_t *s, const char *url, const kiln_git_opts_t *g)
{
    if (s->commit && kiln_git_commit_info(url, g, s->commit, &s->author, &s->message, NULL) < 0) {
        s->author = NULL;
        s->message = NULL;
    }
}

/* Checks a git source out in place into its kept tree (DIR/tree, index DIR/index), holding
 * DIR/lock for the whole build (released by kiln_auto_source_release). 1 when the tree is
 * held by another build or the commit has submodules: the caller checks out afresh. -1
 * with err naming the source; a tree a failed checkout half-updated is removed. */
static int checkout_kept(const char *root, const char *ns, const char *url, const char *ref,
                         const char *subdir, int64_t max, const kiln_git_opts_t *g,
                         kiln_auto_source_t *s, kiln_error_t *err)
{
    kiln_git_opts_t gn = *g;
    kiln_auto_notes_t notes = {0};
    _cleanup_free_ char *dir = kept_dir(root, ns, url), *tree = NULL, *idx = NULL;
    _cleanup_close_ int fd = -1;
    int r;

    if (dir == NULL)
        return 1;
    tree = kiln_xasprintf("%s/tree", dir);
    idx = kiln_xasprintf("%s/index", dir);
    r = kiln_kept_tree_lock(dir, &fd, err);
    if (r != 0)
        return r;
    /* the files it writes are noted (a cache that cannot be used only costs hashing) */
    if (kiln_auto_notes_start(&notes, root, ns, s->context_id, max, tree, subdir, &gn, NULL) < 0)
        kiln_auto_notes_free(&notes);
    notes.partial = true;
    r = kiln_git_checkout_kept(url, ref, &gn, tree, idx, &s->commit, err);
    if (r == 0)
        kiln_auto_notes_finish(&notes, &s->notes, NULL);
    else
        kiln_auto_notes_free(&notes);
    if (r != 0) {
        /* a half-updated tree or index is not trusted by the next build */
        kiln_fs_rm_rf(tree, NULL);
        unlink(idx);
        return r;
    }
    s->top = steal_pointer(&tree);
    s->kept_lock = steal_fd(&fd) + 1;
    return 0;
}

/* Applies --subdir: a relative path without "..", naming a directory that
 * (after symlinks) is still inside the tree. */
static int apply_subdir(const char *top, const char *subdir, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *joined = NULL, *real_top = NULL, *real = NULL;
    size_t tl;

    if (subdir == NULL || subdir[0] == '\0' || strcmp(subdir, ".") == 0) {
        *out = kiln_xstrdup(top);
        return 0;
    }
    if (subdir[0] == '/' || strstr(subdir, "..") != NULL)
        return kiln_error_set(err, 0, "--subdir %s: must be a relative path without '..'", subdir);
    joined = kiln_xasprintf("%s/%s", top, subdir);
    real_top = realpath(top, NULL);
    real = realpath(joined, NULL);
    if (real_top == NULL || real == NULL)
        return kiln_error_set(err, errno, "--subdir %s", subdir);
    tl = strlen(real_top);
    if (strncmp(real, real_top, tl) != 0 || (real[tl] != '/' && real[tl] != '\0'))
        return kiln_error_set(err, 0, "--subdir %s: leaves the source tree", subdir);
    *out = steal_pointer(&joined);
    return 0;
}

int kiln_auto_source_prepare(const char *spec, const kiln_auto_source_opts_t *opts,
                             kiln_auto_source_t *src, kiln_error_t *err)
{
    kiln_auto_source_t s = {0};
    char *const *env = opts ? opts->env : NULL;
    const char *subdir = opts ? opts->subdir : NULL;
    struct stat st;

    if (!kiln_git_is_url(spec) || stat(spec, &st) == 0) {
        if (stat(spec, &st) < 0 || !S_ISDIR(st.st_mode))
            return kiln_error_set(err, stat(spec, &st) < 0 ? errno : ENOTDIR,
                                  "source %s (a directory or a git URL)", spec);
        if (apply_subdir(spec, subdir, &s.dir, err) < 0)
            return -1;
        s.top = kiln_xstrdup(spec);
        s.display = kiln_xstrdup(spec);
    } else {
        _cleanup_free_ char *root = kiln_auto_root(opts ? opts->root : NULL, env);
        _cleanup_free_ char *cache = NULL;
        _cleanup_free_ char *work = kiln_xasprintf("%s/work", root);
        _cleanup_free_ char *url = NULL, *ref = NULL, *creds = NULL, *tree = NULL;
        _cleanup_free_ char *url_subdir = NULL, *cred_host = NULL;
        kiln_git_opts_t g = {.env = env};
        kiln_auto_notes_t notes = {0};
        if (opts && opts->git_policy)
            g.policy = *opts->git_policy;
        if (opts)
            g.timeout_s = opts->checkout_timeout;
        const char *cf = kiln_env_get(env, "KILN_GIT_CREDENTIALS");

        if (kiln_cachens_path(root, opts ? opts->cache_namespace : NULL, KILN_CACHENS_GIT, &cache,
                              err) < 0)
            return -1;
        g.cache_dir = cache;

        creds = cf ? kiln_xstrdup(cf) : kiln_xasprintf("%s/git-credentials", root);
        g.credentials_file = creds;
        kiln_git_split_ref(spec, &url, &ref);
        if (opts && opts->credential) {
            cred_host = kiln_git_url_host(url);
            g.credential = opts->credential;
            g.credential_host = cred_host;
        }
        /* BuildKit's git context form: URL#REF:SUBDIR (REF may be empty) */
        if (ref != NULL && strchr(ref, ':') != NULL) {
            char *colon = strchr(ref, ':');
            url_subdir = kiln_xstrdup(colon + 1);
            *colon = '\0';
            if (ref[0] == '\0') {
                free(ref);
                ref = NULL;
            }
            if (url_subdir[0] != '\0' && subdir != NULL && subdir[0] != '\0') {
                kiln_error_set(err, 0, "%s names a subdirectory and --subdir %s is given too", spec,
                               subdir);
                goto fail;
            }
            if (url_subdir[0] != '\0')
                subdir = url_subdir;
        }
        s.display = kiln_git_redact(spec);
        s.context_id = kiln_auto_git_context_id(url, subdir);
        if (opts && opts->keep_tree) {
            int r = checkout_kept(root, opts->cache_namespace, url, ref, subdir,
                                  opts->stat_cache_max, &g, &s, err);
            if (r < 0)
                goto fail;
            if (r == 0) {
                /* the build's stat cache finds the unchanged files as they were */
                if (apply_subdir(s.top, subdir, &s.dir, err) < 0)
                    goto fail;
                if (subdir != NULL && subdir[0] != '\0')
                    s.subdir = kiln_xstrdup(subdir);
                commit_info(&s, url, &g);
                *src = s;
                return 0;
            }
        }
        if (kiln_fs_mkdir_p(work, 0700, err) < 0 ||
            kiln_fs_mkdtemp(work, "src-", &s.checkout, err) < 0)
            goto fail;
        tree = kiln_xasprintf("%s/tree", s.checkout);
        /* a cache that cannot be used only costs hashing every file */
        if (kiln_auto_notes_start(&notes, root, opts ? opts->cache_namespace : NULL, s.context_id,
                                  opts ? opts->stat_cache_max : 0, tree, subdir, &g, NULL) < 0)
            kiln_auto_notes_free(&notes);
        if (kiln_git_checkout(url, ref, &g, tree, &s.commit, err) < 0 ||
            apply_subdir(tree, subdir, &s.dir, err) < 0) {
            kiln_auto_notes_free(&notes);
            goto fail;
        }
        kiln_auto_notes_finish(&notes, &s.notes, NULL);
        commit_info(&s, url, &g);
        s.top = steal_pointer(&tree);
        /* url_subdir is freed with this block */
        if (subdir != NULL && subdir[0] != '\0')
            s.subdir = kiln_xstrdup(subdir);
    }
    if (s.subdir == NULL && subdir != NULL && subdir[0] != '\0')
        s.subdir = kiln_xstrdup(subdir);
    *src = s;
    return 0;
fail:
    kiln_auto_source_release(&s);
    return -1;
}

void kiln_auto_source_release(kiln_auto_source_t *src)
{
    if (src->checkout)
        kiln_fs_rm_rf(src->checkout, NULL);
    if (src->kept_lock > 0)
        close(src->kept_lock - 1); /* the kept tree stays for the next build */
    free(src->checkout);
    free(src->dir);
    free(src->top);
    free(src->subdir);
    free(src->commit);
    free(src->author);
    free(src->message);
    free(src->display);
    free(src->context_id);
    free(src->warning);
    memset(src, 0, sizeof(*src));
}

bool kiln_auto_wanted(const char *spec, const char *subdir, const char *plan_file)
{
    _cleanup_free_ char *df = NULL;
    struct stat st;

    if (plan_file != NULL || kiln_git_is_url(spec))
        return stat(spec, &st) < 0 || plan_file != NULL;
    df = subdir ? kiln_xasprintf("%s/%s/Dockerfile", spec, subdir)
                : kiln_xasprintf("%s/Dockerfile", spec);
    return stat(df, &st) < 0;
}

/* The output kind a --output spec asks for, given what the plan makes. */
kiln_plan_output_t kiln_auto_output_kind(const char *spec, unsigned natural)
{
    const char *t = strstr(spec, "type=");
    size_t n;

    if (t == NULL)
        return KILN_PLAN_OUT_IMAGE;
    t += 5;
    n = strcspn(t, ",");
    if (n == 8 && strncmp(t, "function", 8) == 0)
        return KILN_PLAN_OUT_FUNCTION;
    /* a site goes to a directory or to S3: both take the static files */
    if ((n == 5 && strncmp(t, "local", 5) == 0) || (n == 2 && strncmp(t, "s3", 2) == 0))
        return (natural & KILN_PLAN_OUT_STATIC) ? KILN_PLAN_OUT_STATIC : KILN_PLAN_OUT_IMAGE;
    return KILN_PLAN_OUT_IMAGE;
}

/* What an output kind is called in messages. */
static const char *kind_name(kiln_plan_output_t kind)
{
    return kind == KILN_PLAN_OUT_STATIC     ? "static site"
           : kind == KILN_PLAN_OUT_FUNCTION ? "function package"
                                            : "image";
}

/* The plan's own output kind when nothing was asked: static, function, image. */
static kiln_plan_output_t natural_kind(unsigned outputs)
{
    if (outputs & KILN_PLAN_OUT_STATIC)
        return KILN_PLAN_OUT_STATIC;
    if (outputs & KILN_PLAN_OUT_FUNCTION)
        return KILN_PLAN_OUT_FUNCTION;
    return KILN_PLAN_OUT_IMAGE;
}

int kiln_auto_detect(kiln_auto_source_t *src, const kiln_detect_opts_t *d, kiln_plan_t **plan,
                     kiln_error_t *err)
{
    kiln_plan_t *p = NULL;
    int r;

    if (kiln_plan_detect(src->dir, d, &p, err) < 0)
        return -1;
    r = src->subdir ? kiln_workspace_apply(src->top, src->subdir, d, p, err) : 0;
    if (r == 0 && src->subdir)
        r = kiln_python_workspace_apply(src->top, src->subdir, d, p, err);
    if (r < 0) {
        kiln_plan_free(p);
        return -1;
    }
    if (r > 0) {
        free(src->dir);
        src->dir = kiln_xstrdup(src->top);
    }
    *plan = p;
    return 0;
}

/* Loads the plan (file or detection). */
static int load_plan(const kiln_auto_build_opts_t *o, kiln_auto_source_t *src, kiln_plan_t **plan,
                     kiln_error_t *err)
{
    kiln_detect_opts_t d = {.env = o->env, .image_prefix = o->image_prefix};
    _cleanup_free_ char *text = NULL;
    size_t len = 0;

    if (o->plan_file == NULL)
        return kiln_auto_detect(src, &d, plan, err);
    if (kiln_fs_read_file(o->plan_file, 1024 * 1024, &text, &len, err) < 0)
        return kiln_error_prefix(err, "--plan %s", o->plan_file);
    if (kiln_plan_from_json(text, len, plan, err) < 0)
        return kiln_error_prefix(err, "--plan %s", o->plan_file);
    return 0;
}

/* Fails, naming the image and the command that makes it, when one of kiln's images (a name
 * under the image prefix) cannot be there: an OCI layout ("oci:DIR/NAME") that does not
 * exist. With no prefix configured the prefix is kiln's image directory
 * (oci:$KILN_IMAGES_DIR, default /var/cache/kiln/images), never a registry. Other names (a
 * kiln.json's "images") are the engine's to resolve and to hold to the policy: no host
 * path a source names is probed here. Returns 0 otherwise. */
static int check_image(const kiln_auto_build_opts_t *o, const char *what, const char *ref,
                       kiln_error_t *err)
{
    const char *set = o->image_prefix ? o->image_prefix : kiln_env_get(o->env, "KILN_IMAGE_PREFIX");
    bool unset = set == NULL || set[0] == '\0';
    _cleanup_free_ char *def = unset ? kiln_detect_default_image_prefix(o->env) : NULL;
    const char *prefix = unset ? def : set;
    size_t pl = strlen(prefix);
    const char *name = ref + pl + 1;

    if (strncmp(ref, prefix, pl) != 0 || ref[pl] != '/' || strchr(name, '/') != NULL)
        return 0;
    if (strncmp(prefix, "oci:", 4) == 0) {
        /* "oci:DIR/NAME[:TAG]" */
        size_t nl = strcspn(name, ":");
        _cleanup_free_ char *dir = kiln_xasprintf("%s/%.*s", prefix + 4, (int)nl, name);
        _cleanup_free_ char *layout = kiln_xasprintf("%s/oci-layout", dir);
        if (access(layout, F_OK) == 0)
            return 0;
        return kiln_error_set(
            err, 0,
            "the %s %s is missing (no OCI layout at %s): make kiln's images with "
            "scripts/setup.sh, or this one with KILN_IMAGES_DIR=%s images/build.sh %.*s%s",
            what, ref, dir, prefix + 4, (int)nl, name,
            unset ? "; or set KILN_IMAGE_PREFIX to the registry prefix that holds them" : "");
    }
    return 0;
}

int kiln_auto_build_prepare(const char *spec, const kiln_auto_build_opts_t *o,
                            kiln_auto_build_t *ab, kiln_error_t *err)
{
    kiln_auto_source_opts_t so = {.root = o->root,
                                  .subdir = o->subdir,
                                  .env = o->env,
                                  .git_policy = o->git_policy,
                                  .cache_namespace = o->cache_namespace,
                                  .stat_cache_max = o->stat_cache_max};
    const char *ids[KILN_PLAN_MAX_ITEMS];
    kiln_render_opts_t ro = {.secret_ids = ids};
    _cleanup_free_ char *idbuf[KILN_PLAN_MAX_ITEMS] = {0};
    kiln_plan_t *p;

    memset(ab, 0, sizeof(*ab));
    if (kiln_auto_source_prepare(spec, &so, &ab->src, err) < 0)
        return -1;
    if (load_plan(o, &ab->src, &ab->plan, err) < 0)
        goto fail;
    p = ab->plan;
    if (p->provider && strcmp(p->provider, "dockerfile") == 0) {
        ab->kind = KILN_PLAN_OUT_IMAGE;
        return 0;
    }
    ab->kind =
        o->n_outputs ? kiln_auto_output_kind(o->outputs[0], p->outputs) : natural_kind(p->outputs);
    /* One build makes one target: a function package of the run image's files (or a site
     * from an image) would be wrong, so kinds are not mixed. */
    for (size_t i = 1; i < o->n_outputs; i++) {
        kiln_plan_output_t k = kiln_auto_output_kind(o->outputs[i], p->outputs);
        if (k != ab->kind) {
            kiln_error_set(err, 0,
                           "--output %s and --output %s ask for different kinds (%s, %s): one "
                           "build makes one kind; run one build per kind",
                           o->outputs[0], o->outputs[i], kind_name(ab->kind), kind_name(k));
            goto fail;
        }
    }
    /* what the kind needs: a start command and port, a function's handler and runtime */
    if (kiln_plan_select_output(p, ab->kind, ab->src.display, err) < 0)
        goto fail;
    for (size_t i = 0; i < o->n_secrets && i < KILN_PLAN_MAX_ITEMS; i++) {
        const char *s = o->secrets[i] + (strncmp(o->secrets[i], "id=", 3) == 0 ? 3 : 0);
        idbuf[i] = kiln_xstrndup(s, strcspn(s, ","));
        ids[ro.n_secrets++] = idbuf[i];
    }
    if (p->toolchain.name != NULL) {
        _cleanup_free_ char *root = kiln_auto_root(o->root, o->env);
        _cleanup_free_ char *dir = NULL, *ver = NULL;
        /* a server build's toolchain download (at the URL the registry's reply
         * names) is held to the public policy too */
        const kiln_git_policy_t *gp = o->git_policy;
        kiln_netpolicy_t *np = NULL;
        int r;
        if (gp != NULL && gp->server_mode &&
            kiln_netpolicy_with(KILN_NETPOLICY_PUBLIC, gp->allow_addresses, gp->n_allow_addresses,
                                &np, err) < 0)
            goto fail;
        r = kiln_toolchain_fetch(&p->toolchain, root, o->env, np, &dir, &ver, err);
        kiln_netpolicy_free(np);
        if (r < 0)
            goto fail;
        ab->context = kiln_xasprintf("%s=%s", p->toolchain.name, dir);
        /* the plan now names the release the range resolved to, and a Node
         * function its Lambda runtime by that major */
        kiln_plan_set(&p->version, ver);
        if (ab->kind == KILN_PLAN_OUT_FUNCTION && strcmp(p->toolchain.name, "node") == 0 &&
            (p->runtime == NULL || strncmp(p->runtime, "nodejs", 6) == 0)) {
            free(p->runtime);
            p->runtime = kiln_xasprintf("nodejs%ld.x", strtol(ver, NULL, 10));
        }
    }
    if (check_image(o, "build image", p->build_image, err) < 0 ||
        (ab->kind == KILN_PLAN_OUT_IMAGE && check_image(o, "run image", p->run_image, err) < 0))
        goto fail;
    if (kiln_render_dockerfile(p, &ro, &ab->dockerfile, err) < 0)
        goto fail;
    ab->target = kiln_xstrdup(kiln_render_target(ab->kind));
    switch (ab->kind) {
    case KILN_PLAN_OUT_STATIC:
        ab->default_output = kiln_xstrdup("type=local,dest=kiln-out/site");
        break;
    case KILN_PLAN_OUT_FUNCTION:
        ab->default_output = kiln_xstrdup("type=function,dest=kiln-out/function.zip");
        break;
    default:
        ab->default_output = kiln_xstrdup("type=oci,dest=kiln-out/image");
    }
    return 0;
fail:
    kiln_auto_build_release(ab);
    return -1;
}

void kiln_auto_build_release(kiln_auto_build_t *ab)
{
    kiln_auto_source_release(&ab->src);
    kiln_plan_free(ab->plan);
    free(ab->dockerfile);
    free(ab->target);
    free(ab->context);
    free(ab->default_output);
    memset(ab, 0, sizeof(*ab));
}
