/* kiln — FROM: scratch, an earlier stage, a named context, an oci:DIR[:TAG] layout
 * (in server mode only beneath an allowed dir) or a registry image. */
#include "engine/step_from.h"

#include "engine/expand.h"
#include "engine/remote_base.h"
#include "engine/remote_cache.h"
#include "engine/solve.h"
#include "oci/reference.h"
#include "utils/suggest.h"

static void stage_take_layers_of(stage_t *st, const kiln_descriptor_t *layers, size_t n,
                                 json_t *config)
{
    json_t *diffs = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
    st->layers = kiln_xzalloc((n + 1) * sizeof(layer_t));
    for (size_t i = 0; i < n; i++) {
        kiln_descriptor_copy(&st->layers[i].desc, &layers[i]);
        kiln_digest_parse(json_string_value(json_array_get(diffs, i)), &st->layers[i].diff_id,
                          NULL);
    }
    st->n_layers = n;
}

/* Whether real (a canonical path) is dir or lies beneath it. */
static bool path_beneath(const char *real, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strncmp(real, dir, n) == 0 && (real[n] == '\0' || real[n] == '/' || n == 1);
}

/* The layout directory a FROM oci:DIR reads. In server mode DIR is a
 * tenant's: it must resolve, links followed, to a directory beneath one of
 * the operator's oci_dirs (each resolved the same way), so neither `..` nor
 * a link leads out of them; the resolved path is what is read. Sets *out
 * (malloc'ed); -1 naming the path and the setting otherwise. */
static int oci_source_dir(engine_t *e, const char *dir, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *real = NULL;
    kiln_buf_t allowed;

    if (!e->req->server_mode) {
        *out = kiln_xstrdup(dir);
        return 0;
    }
    real = dir[0] == '/' ? realpath(dir, NULL) : NULL;
    for (size_t i = 0; real != NULL && i < e->req->n_oci_dirs; i++) {
        _cleanup_free_ char *root = realpath(e->req->oci_dirs[i], NULL);
        if (root != NULL && path_beneath(real, root)) {
            *out = steal_pointer(&real);
            return 0;
        }
    }
    kiln_buf_init(&allowed, 0);
    for (size_t i = 0; i < e->req->n_oci_dirs; i++)
        kiln_buf_appendf(&allowed, NULL, "%s%s", i ? ", " : "", e->req->oci_dirs[i]);
    kiln_error_set(err, 0,
                   "%s is not in a directory server builds may read OCI layouts from "
                   "(\"policy\": {\"oci_dirs\": [...]} in the server config; now: %s)",
                   dir, allowed.len ? allowed.data : "none");
    kiln_buf_free(&allowed);
    return -1;
}

/* A bare name (no registry, path, tag or digest) one or two edits away from a stage of the
 * Dockerfile is most likely a typo of that stage, not an image on Docker Hub: -1 naming the
 * stage it resembles (and how to ask for the image anyway) before any registry is asked. */
static int stage_typo(engine_t *e, const char *ref, kiln_error_t *err)
{
    const char *names[MAX_STAGES];
    long i;

    if (ref[strcspn(ref, "/:@.")] != '\0')
        return 0;
    for (size_t k = 0; k < e->n_stages; k++)
        /* the Dockerfile's own stages: not the throwaway ones of COPY --from=IMAGE */
        names[k] = e->stages[k].end > e->stages[k].first ? e->stages[k].name : NULL;
    i = kiln_suggest_closest(ref, names, e->n_stages);
    if (i < 0)
        return 0;
    return kiln_error_set(err, 0,
                          "no stage named %s; did you mean %s? (for the image, write "
                          "docker.io/library/%s)",
                          ref, names[i], ref);
}

/* A failed pull of a name without a registry (first path component with no '.' or ':' and
 * not localhost): says that it was expanded to Docker Hub, whose host the error names, so a
 * user who meant another registry sees why docker.io was asked. Returns -1. */
static int expanded_note(const char *ref, kiln_error_t *err)
{
    const char *slash = strchr(ref, '/');
    size_t n = slash ? (size_t)(slash - ref) : 0;
    kiln_reference_t r = {0};
    _cleanup_free_ char *full = NULL;
    char msg[KILN_ERROR_MSG_MAX];

    if (err == NULL || (slash && (memchr(ref, '.', n) || memchr(ref, ':', n) ||
                                  (n == 9 && strncmp(ref, "localhost", 9) == 0))))
        return -1;
    if (kiln_reference_parse(ref, &r, NULL) < 0)
        return -1;
    full = kiln_reference_format(&r);
    kiln_reference_free(&r);
    snprintf(msg, sizeof(msg), "%s", err->msg);
    return kiln_error_set(err, err->code,
                          "%s (%s names no registry, so it was expanded to %s; write "
                          "HOST[:PORT]/%s for another registry)",
                          msg, ref, full, ref);
}

/* Records what ref resolved to (digest) in the build's result, once per (ref, digest); the
 * step's progress says it too. Stages resolve in parallel: under the engine's lock. */
static void note_base(engine_t *e, stage_t *st, const char *ref, const kiln_digest_t *d)
{
    kiln_build_result_t *res = e->res;
    char ds[KILN_DIGEST_STR_MAX];
    _cleanup_free_ char *name = NULL, *msg = NULL;
    kiln_reference_t r = {0};

    kiln_digest_str(d, ds);
    if (strncmp(ref, "oci:", 4) != 0 && kiln_reference_parse(ref, &r, NULL) == 0) {
        /* the name as pulled, without a digest it was given (ds says it) */
        name = kiln_xasprintf("%s/%s%s%s", r.registry, r.repository, r.tag ? ":" : "",
                              r.tag ? r.tag : "");
        kiln_reference_free(&r);
    } else {
        name = kiln_xstrdup(ref);
    }
    msg = kiln_xasprintf("resolved %s to %s", name, ds);
    if (st->step > 0) /* a COPY --from image's throwaway stage has no step of its own */
        kiln_engine_event(e, st->step, "log", msg, -1);
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < res->n_bases; i++)
        if (strcmp(res->bases[i].ref, name) == 0 && strcmp(res->bases[i].digest, ds) == 0)
            goto out;
    if (res->n_bases < KILN_BUILD_BASES_MAX) {
        res->bases = kiln_xrealloc(res->bases, (res->n_bases + 1) * sizeof(*res->bases));
        res->bases[res->n_bases].ref = steal_pointer(&name);
        res->bases[res->n_bases++].digest = kiln_xstrdup(ds);
    }
out:
    pthread_mutex_unlock(&e->lock);
}

int kiln_step_from_image(engine_t *e, stage_t *st, const char *ref, kiln_error_t *err)
{
    _cleanup_free_ char *body = NULL;
    size_t len;
    kiln_digest_t top;
    json_t *cfg = NULL;

    if (strncmp(ref, "oci:", 4) == 0) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ char *tag = NULL;
        _cleanup_free_ char *src = NULL;
        kiln_layout_image_t *img = NULL;
        if (kiln_layout_parse_ref(ref, &dir, &tag, err) < 0 ||
            oci_source_dir(e, dir, &src, err) < 0 || kiln_layout_resolve(src, tag, &img, err) < 0)
            return -1;
        if (kiln_layout_import(e->store, img, err) < 0) {
            kiln_layout_image_free(img);
            return -1;
        }
        cfg = json_deep_copy(img->config);
        top = img->manifest_desc.digest;
        note_base(e, st, ref, &top);
        stage_take_layers_of(st, img->manifest->layers, img->manifest->n_layers, cfg);
        kiln_layout_image_free(img);
    } else {
        kiln_registry_image_t ri = {0};
        if (stage_typo(e, ref, err) < 0 || kiln_remote_cache_registry(e, err) < 0)
            return -1;
        {
            _cleanup_free_ char *msg = kiln_xasprintf("resolve image %s", ref);
            kiln_engine_event(e, st->step, "log", msg, -1);
        }
        /* the layers download while the build goes on (engine/remote_base) */
        if (kiln_remote_base_start(e, ref, &ri, &body, &len, err) < 0)
            return expanded_note(ref, err);
        if (kiln_image_parse_config(body, len, &cfg, err) < 0) {
            kiln_registry_image_clear(&ri);
            return -1;
        }
        top = ri.manifest.digest;
        note_base(e, st, ref, &ri.top.digest);
        stage_take_layers_of(st, ri.parsed->layers, ri.parsed->n_layers, cfg);
        kiln_registry_image_clear(&ri);
    }
    st->config = cfg;
    st->key = top;
    return 0;
}

int kiln_step_from(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    _cleanup_free_ char *base = NULL;
    stage_t meta = {0};
    stage_t *dep;

    for (size_t i = 0; i < n->n_flags; i++)
        if (strncmp(n->flags[i], "--platform=", 11) != 0)
            return kiln_df_error(n, err, "unknown flag: %s", n->flags[i]);
    if (n->n_args == 0)
        return kiln_df_error(n, err, "FROM requires either one or three arguments");
    if (n->n_args != 1 && !(n->n_args == 3 && strcasecmp(n->args[1], "as") == 0))
        return kiln_df_error(n, err, "FROM requires either one or three arguments");
    meta.args = e->meta_args;
    meta.config = json_object();
    if (kiln_expand_word(e, &meta, n->args[0], NULL, &base, err) < 0) {
        json_decref(meta.config);
        return kiln_df_error(n, err, "%s", err->msg);
    }
    json_decref(meta.config);
    if (base[0] == '\0')
        return kiln_df_error(n, err, "base name (%s) should not be blank", n->args[0]);
    dep = kiln_solve_find(e, base, (size_t)st->index);
    if (dep != NULL) {
        if (kiln_solve_run_stage(e, dep, err) < 0)
            return -1;
        st->config = json_deep_copy(dep->config);
        st->layers = kiln_xzalloc((dep->n_layers + 1) * sizeof(layer_t));
        for (size_t i = 0; i < dep->n_layers; i++) {
            kiln_descriptor_copy(&st->layers[i].desc, &dep->layers[i].desc);
            st->layers[i].diff_id = dep->layers[i].diff_id;
        }
        st->n_layers = dep->n_layers;
        st->key = dep->key;
    } else if (strcmp(base, "scratch") == 0) {
        st->config = kiln_image_config_new("amd64", "linux");
        kiln_digest_bytes("scratch", 7, &st->key);
    } else {
        const char *c = NULL;
        for (size_t i = 0; i < e->req->n_contexts; i++) {
            size_t l = strlen(base);
            if (strncmp(e->req->contexts[i], base, l) == 0 && e->req->contexts[i][l] == '=')
                c = e->req->contexts[i] + l + 1;
        }
        if (c != NULL && strncmp(c, "docker-image://", 15) == 0)
            base = (free(base), kiln_xstrdup(c + 15));
        if (kiln_step_from_image(e, st, base, err) < 0)
            return kiln_error_prefix(err, "Dockerfile:%d: FROM %s", n->start_line, base);
    }
    /* Like BuildKit, every stage has a PATH (images from scratch get the default). */
    {
        json_t *env = json_object_get(kiln_image_config_obj(st->config), "Env");
        bool has_path = false;
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v)
        {
            if (json_is_string(v) && strncmp(json_string_value(v), "PATH=", 5) == 0)
                has_path = true;
        }
        if (!has_path)
            kiln_image_config_set_env(st->config, "PATH=" DEFAULT_PATH, NULL);
    }
    /* The stage's history starts from the base; created is ours. */
    if (json_object_get(st->config, "history") == NULL)
        json_object_set_new(st->config, "history", json_array());
    return 0;
}
