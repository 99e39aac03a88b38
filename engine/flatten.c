/* kiln — a RUN step's lower chain kept within what one overlay mount takes.
 *
 * Each layer of a stage is one lower directory of the step's overlay, and a
 * step can only be given so many: the sandbox passes every lower to the
 * step's init as an id-mapped mount fd (KILN_IDMAP_MAX_LOWERS, 128; one
 * SCM_RIGHTS message carries at most 253 fds) and overlayfs stacks at most
 * 500 lowers (its mount options, a page, would hold about 800 of the short
 * names the sandbox mounts them at). Past KILN_FLATTEN_MAX_LOWERS layers the
 * bottom of the chain is replaced by one flattened snapshot of it
 * (kiln_lowerview_flatten: the layers merged into a plain tree, files
 * hardlinked), so a step sees at most KILN_FLATTEN_CHUNK + 1 lowers.
 *
 * The bottom part flattened is a multiple of KILN_FLATTEN_CHUNK layers, so
 * the next CHUNK steps of a stage reuse one snapshot; it is cached under
 * <root>/build/lowers/flat-<hex of the chain's diff_ids> (shared like the
 * lowers it is made of, made in a temp dir and renamed into place; prune
 * removes every snapshot) and a new one is made from the one below it plus
 * the CHUNK layers above. The image's layers are unchanged: the snapshot is
 * only what RUN steps are mounted on. */
#include "engine/flatten.h"

#include "engine/snapshot.h"
#include "sandbox/idmap.h"

_Static_assert(KILN_FLATTEN_MAX_LOWERS <= KILN_IDMAP_MAX_LOWERS &&
                   KILN_FLATTEN_CHUNK < KILN_FLATTEN_MAX_LOWERS,
               "a step's lowers must fit the sandbox");

size_t kiln_flatten_split(size_t n)
{
    if (n <= KILN_FLATTEN_MAX_LOWERS)
        return 0;
    return (n - 1) / KILN_FLATTEN_CHUNK * KILN_FLATTEN_CHUNK;
}

/* The snapshot directory of the stage's bottom `count` layers. */
static char *flat_path(const engine_t *e, const stage_t *st, size_t count)
{
    kiln_sha256_t h;
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];

    kiln_sha256_init(&h, NULL);
    kiln_sha256_update(&h, "kiln-flat-v1\n", 13);
    for (size_t i = 0; i < count; i++) {
        kiln_digest_str(&st->layers[i].diff_id, ds);
        kiln_sha256_update(&h, ds, strlen(ds));
        kiln_sha256_update(&h, "\n", 1);
    }
    kiln_sha256_final(&h, &d);
    return kiln_xasprintf("%s/flat-%s", e->lowers_dir, d.hex);
}

/* The unpacked dirs of layers [from, to) of the stage, top-most first, into
 * v[0..to-from). -1 with err (the ones made are freed). */
static int layer_dirs(engine_t *e, stage_t *st, size_t from, size_t to, char **v, kiln_error_t *err)
{
    return kiln_snapshot_lower_dirs(e, st->layers, from, to, v, err);
}

/* The snapshot of the stage's bottom `count` layers (a multiple of CHUNK),
 * made when missing: from the snapshot CHUNK layers below (itself made when
 * missing) and the CHUNK layers above it, or from all the layers for the
 * first one. *out is its path. */
static int flat_dir(engine_t *e, stage_t *st, size_t count, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *dir = flat_path(e, st, count);
    _cleanup_free_ char *tmp = NULL;
    size_t below = count - KILN_FLATTEN_CHUNK, from = 0, n = 0;
    char **v = NULL;
    struct stat sb;
    int ret = -1;

    if (stat(dir, &sb) == 0) {
        *out = steal_pointer(&dir);
        return 0;
    }
    v = kiln_xzalloc((count + 2) * sizeof(char *));
    if (count > KILN_FLATTEN_CHUNK && below >= kiln_flatten_split(KILN_FLATTEN_MAX_LOWERS + 1)) {
        if (flat_dir(e, st, below, &v[KILN_FLATTEN_CHUNK], err) < 0)
            goto out;
        from = below;
        n = KILN_FLATTEN_CHUNK + 1;
    } else {
        n = count;
    }
    if (layer_dirs(e, st, from, count, v, err) < 0)
        goto out;
    kiln_engine_event(e, st->step, "log", "flattening the layers below into one lower directory",
                      -1);
    if (kiln_fs_mkdtemp(e->lowers_dir, ".tmp-", &tmp, err) < 0)
        goto out;
    if (kiln_lowerview_flatten((const char *const *)v, n, tmp, err) < 0) {
        kiln_error_prefix(err, "flattening the bottom %zu layers of the stage", count);
        goto out;
    }
    /* an existing snapshot of the same chain is the same tree */
    if (rename(tmp, dir) < 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) {
            kiln_error_set(err, errno, "rename %s", dir);
            goto out;
        }
    } else {
        free(steal_pointer(&tmp));
    }
    *out = steal_pointer(&dir);
    ret = 0;
out:
    if (tmp != NULL)
        kiln_fs_rm_rf(tmp, NULL);
    for (size_t i = 0; i <= count; i++)
        free(v[i]);
    free(v);
    return ret;
}

int kiln_flatten_lowers(engine_t *e, stage_t *st, char ***out, size_t *n_out, kiln_error_t *err)
{
    size_t flat = kiln_flatten_split(st->n_layers);
    size_t n = st->n_layers - flat + (flat ? 1 : 0);
    char **v = kiln_xzalloc((n + 1) * sizeof(char *));

    if (layer_dirs(e, st, flat, st->n_layers, v, err) < 0 ||
        (flat && flat_dir(e, st, flat, &v[n - 1], err) < 0)) {
        kiln_strv_free(v);
        return -1;
    }
    *out = v;
    *n_out = n;
    return 0;
}
