/* kiln — the instructions that only change the image config (WORKDIR, ARG, ENV, LABEL,
 * USER, CMD, …): one history entry each, no layer (WORKDIR may make its directory). */
#include "engine/step_meta.h"

#include "engine/cache.h"
#include "engine/expand.h"
#include "engine/snapshot.h"
#include "engine/step_copy.h"

void kiln_step_history(engine_t *e, stage_t *st, const char *created_by, int empty)
{
    /* "created" is filled in at the end (see finish_image) */
    kiln_image_config_add_history(st->config, 0, created_by, "buildkit.dockerfile.v0", empty, NULL);
}

/* WORKDIR: sets WorkingDir and creates the directory (a layer) when missing. */
int kiln_step_workdir(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    _cleanup_free_ char *w = NULL;
    _cleanup_free_ char *full = NULL;
    _cleanup_free_ char *hist = NULL;
    _cleanup_free_ char *staging = NULL;
    _cleanup_free_ char *canon = NULL;
    _cleanup_free_ char *dir = NULL;
    kiln_digest_t key = st->key;
    bool exists = false;
    int r;
    layer_t l;
    int ret = -1;

    if (n->n_args != 1)
        return kiln_df_error(n, err, "WORKDIR requires exactly one argument");
    if (kiln_expand_word(e, st, n->args[0], NULL, &w, err) < 0)
        return kiln_df_error(n, err, "%s", err->msg);
    full = kiln_df_workdir(st->config, w);
    kiln_image_config_set_string(st->config, "WorkingDir", full);
    hist = kiln_xasprintf("WORKDIR %s", full);
    kiln_cache_key_step(&key, hist, "mkdir");
    if (strcmp(full, "/") != 0) {
        /* whether the directory exists depends on the parent's tree only, which its key
         * names: a cached answer (the mkdir layer, or "it exists") spares unpacking the
         * parent's layers to look (a fresh root with a remote cache) */
        kiln_digest_t k_exists = st->key;
        kiln_cache_key_step(&k_exists, hist, NULL);
        if ((r = kiln_cache_lookup(e, st, &key, err)) != 0 ||
            (r = kiln_cache_lookup(e, st, &k_exists, err)) != 0)
            return r; /* a hit (1) or an error */
    }
    /* the directory as the image sees it (links followed inside its tree) */
    if (strcmp(full, "/") != 0 &&
        kiln_snapshot_resolve(e, st, full, KILN_PATHRES_MISSING_OK, &canon, &dir, err) < 0)
        return kiln_df_error(n, err, "WORKDIR %s: %s", full, err->msg);
    exists = dir != NULL;
    if (exists || strcmp(full, "/") == 0) {
        kiln_step_history(e, st, hist, 1);
        kiln_cache_key_step(&st->key, hist, NULL);
        /* "it exists", as an entry without a layer (see above) */
        return strcmp(full, "/") != 0 ? kiln_cache_store(e, st, &st->key, NULL, err) : 0;
    }
    if (kiln_fs_mkdtemp(e->work, "wd-", &staging, err) < 0)
        return -1;
    if (kiln_step_copy_mkdirs_in(staging, canon, NULL, err) < 0 ||
        kiln_snapshot_commit_layer(e, st, staging, 0, &l, err) < 0)
        goto out;
    kiln_step_history(e, st, hist, 0);
    st->key = key;
    ret = kiln_cache_store(e, st, &key, &l, err);
out:
    kiln_fs_rm_rf(staging, NULL);
    return ret;
}

/* ARG: declares build arguments in the stage's scope (with --build-arg
 * overrides and global ARG values carried over). */
static int do_arg(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_buf_t *hist,
                  kiln_error_t *err)
{
    kiln_buf_appendf(hist, NULL, "ARG");
    for (size_t i = 0; i < n->n_args; i++) {
        _cleanup_free_ char *w = kiln_xstrdup(n->args[i]);
        char *eq = strchr(w, '=');
        const char *ov;
        _cleanup_free_ char *val = NULL;
        if (eq) {
            *eq = '\0';
            if (kiln_expand_word(e, st, eq + 1, NULL, &val, err) < 0)
                return kiln_df_error(n, err, "%s", err->msg);
        }
        ov = kiln_expand_build_arg(e, w);
        if (ov == NULL && val == NULL) {
            /* declared without a value: a global ARG value carries over */
            const char *m = kv_get(&e->meta_args, w);
            if (m != NULL)
                val = kiln_xstrdup(m);
        }
        if (ov != NULL || val != NULL) {
            kv_set(&st->args, w, ov ? ov : val);
            kiln_buf_appendf(hist, NULL, " %s=%s", w, ov ? ov : val);
        } else {
            kiln_buf_appendf(hist, NULL, " %s", w);
        }
    }
    return 0;
}

/* Instructions that only change the config (one history entry, no layer). */
int kiln_step_meta(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    kiln_buf_t hist;
    _cleanup_free_ char *text = NULL;
    expand_ctx_t x = {e, st};

    if (strcmp(n->keyword, "arg") == 0) {
        kiln_buf_init(&hist, 0);
        if (do_arg(e, st, n, &hist, err) < 0) {
            kiln_buf_free(&hist);
            return -1;
        }
        text = kiln_buf_steal(&hist, NULL);
    } else if (kiln_df_apply_config(st->config, n, kiln_expand_cb, &x, &text, err) < 0) {
        return -1;
    }
    kiln_step_history(e, st, text, 1);
    {
        /* the config changed: chain the key so later steps see it */
        char *s = json_dumps(kiln_image_config_obj(st->config), JSON_COMPACT | JSON_SORT_KEYS);
        kiln_cache_key_step(&st->key, text, s);
        free(s);
    }
    return 0;
}
