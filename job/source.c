/* kiln — a job's source on disk (see source.h). */
#include "job/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/statcache.h"
#include "job/context.h"
#include "job/context_notes.h"
#include "oci/digest.h"
#include "utils/cachens.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define CREDENTIAL_MAX (64 * 1024)

int kiln_job_source_read_credential(const char *path, char **cred, kiln_error_t *err)
{
    char *c = NULL;

    if (kiln_fs_read_file(path, CREDENTIAL_MAX, &c, NULL, err) < 0)
        return -1;
    c[strcspn(c, "\r\n")] = '\0';
    *cred = c;
    return 0;
}

/* The file holding the spec's git credential, or NULL when it names none. */
static char *credential_file(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o)
{
    for (size_t i = 0; i < s->n_secrets; i++) {
        const kiln_job_secret_t *x = &s->secrets[i];
        if (strcmp(x->id, KILN_JOB_GIT_SECRET) != 0)
            continue;
        if (x->src)
            return kiln_xstrdup(x->src);
        if (o->secrets_dir)
            return kiln_xasprintf("%s/%s", o->secrets_dir, KILN_JOB_GIT_SECRET);
    }
    return NULL;
}

static int fetch_git(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o,
                     kiln_auto_source_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *cred_file = credential_file(s, o), *cred = NULL, *url = NULL;
    const char *ref = s->source_commit ? s->source_commit : s->ref;
    kiln_auto_source_opts_t so = {
        .root = o->root,
        .subdir = s->subdir,
        .env = o->env,
        .git_policy = o->git_policy,
        .cache_namespace = s->cache_namespace,
        .stat_cache_max = o->stat_cache_max,
        .keep_tree = true,
        .checkout_timeout =
            (unsigned)(s->source_timeout ? s->source_timeout : KILN_JOB_CHECKOUT_TIMEOUT)};
    int ret;

    if (cred_file && kiln_job_source_read_credential(cred_file, &cred, err) < 0)
        return kiln_error_prefix(err, "the git credential (secret '%s')", KILN_JOB_GIT_SECRET);
    so.credential = cred;
    url = ref ? kiln_xasprintf("%s#%s", s->source, ref) : kiln_xstrdup(s->source);
    ret = kiln_auto_source_prepare(url, &so, out, err);
    if (cred)
        explicit_bzero(cred, strlen(cred));
    if (ret < 0 && strstr(err->msg, "the checkout's timeout") != NULL) {
        /* say which setting bounds it */
        char msg[KILN_ERROR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s; the job's source.timeout_seconds is %u", err->msg,
                 so.checkout_timeout);
        kiln_error_set(err, ETIMEDOUT, "%s", msg);
    }
    return ret;
}

/* The stat cache identity of an uploaded tree: "upload " + the sha256 of the paths of its
 * files (in the tarball's order) + its subdirectory. Re-uploads of the same project share
 * it while only contents change (one file edited), so each keeps the digests of the files
 * whose content is the same; a project whose file list changed starts a new cache. The
 * entries stay valid across uploads because each unpack notes every file it wrote with its
 * new stat (new inodes, new ctimes) and the content id of what it wrote: a digest is kept
 * only where that content id is unchanged. */
static char *upload_context_id(const kiln_context_notes_t *u, const char *subdir)
{
    kiln_sha256_t h;
    kiln_digest_t d;

    if (kiln_sha256_init(&h, NULL) < 0)
        return NULL;
    for (size_t i = 0; i < u->n; i++)
        kiln_sha256_update(&h, u->v[i].member, strlen(u->v[i].member) + 1);
    kiln_sha256_final(&h, &d);
    return kiln_xasprintf("upload %s %s", d.hex, subdir ? subdir : "");
}

/* Notes the unpacked files under the context's directory (out->dir, inside out->top) in
 * the stat cache of the upload's identity, which becomes out->context_id. A cache that
 * cannot be used is skipped: the build then hashes every file. */
static void note_upload(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o, const char *root,
                        const kiln_context_notes_t *u, kiln_auto_source_t *out)
{
    _cleanup_free_ char *scdir = NULL, *id = NULL;
    const char *pre = "";
    size_t plen = 0;
    kiln_statcache_t *sc = NULL;

    if (u->n == 0 || (id = upload_context_id(u, out->subdir)) == NULL ||
        kiln_cachens_path(root, s->cache_namespace, KILN_CACHENS_STATCACHE, &scdir, NULL) < 0 ||
        kiln_statcache_open(scdir, id, o->stat_cache_max, &sc, NULL) < 0)
        return;
    if (strcmp(out->dir, out->top) != 0) {
        plen = strlen(out->top);
        if (strncmp(out->dir, out->top, plen) != 0 || out->dir[plen] != '/') {
            kiln_statcache_free(sc);
            return;
        }
        pre = out->dir + plen + 1;
        plen = strlen(pre);
    }
    for (size_t i = 0; i < u->n; i++) {
        const char *m = u->v[i].member;
        if (plen && (strncmp(m, pre, plen) != 0 || m[plen] != '/'))
            continue; /* outside the build's context */
        kiln_statcache_note(sc, plen ? m + plen + 1 : m, &u->v[i].st, u->v[i].oid);
    }
    kiln_statcache_scanned(sc, "");
    if (kiln_statcache_save(sc, NULL) == 0) {
        kiln_statcache_stats(sc, &out->notes);
        out->context_id = steal_pointer(&id);
    }
    kiln_statcache_free(sc);
}

/* An uploaded context: the directory the operator unpacked it to (with the notes of what
 * its unpack wrote beside it, DIR/ID.notes, when the server kept them), else its staged
 * tarball unpacked under the kiln root (removed with the source). */
static int fetch_context(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o,
                         kiln_auto_source_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL, *tar = NULL, *root = NULL, *work = NULL, *tmp = NULL;
    _cleanup_free_ char *warning = NULL;
    kiln_auto_source_opts_t so = {.root = o->root, .subdir = s->subdir, .env = o->env};
    kiln_context_notes_t notes = {0};
    struct stat st;

    if (o->contexts_dir == NULL)
        return kiln_error_set(err, 0,
                              "field 'source.context': uploaded contexts are run by a server "
                              "(kiln job run --contexts-dir)");
    dir = kiln_xasprintf("%s/%s", o->contexts_dir, s->source);
    if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* notes that cannot be read only cost hashing every file (said in the log) */
        _cleanup_free_ char *kept = kiln_xasprintf("%s/%s.notes", o->contexts_dir, s->source);
        kiln_error_t nerr = {0};
        root = kiln_auto_root(o->root, o->env);
        if (kiln_context_notes_load(kept, 0, &notes, &nerr) < 0) {
            kiln_context_notes_clear(&notes);
            warning = kiln_xasprintf("stat cache: the upload's notes refused (%s): every "
                                     "file is hashed",
                                     nerr.msg);
        }
    } else {
        tar = kiln_xasprintf("%s/%s.tar", o->contexts_dir, s->source);
        if (lstat(tar, &st) < 0 || !S_ISREG(st.st_mode))
            return kiln_error_set(err, ENOENT, "field 'source.context': no uploaded context '%s'",
                                  s->source);
        root = kiln_auto_root(o->root, o->env);
        work = kiln_xasprintf("%s/work", root);
        if (kiln_fs_mkdir_p(work, 0700, err) < 0 || kiln_fs_mkdtemp(work, "ctx-", &tmp, err) < 0)
            return -1;
        free(dir);
        dir = kiln_xasprintf("%s/tree", tmp);
        if (kiln_fs_mkdir_p(dir, 0755, err) < 0 ||
            kiln_context_unpack(tar, dir, NULL, kiln_context_notes_add, &notes, err) < 0) {
            kiln_fs_rm_rf(tmp, NULL);
            kiln_context_notes_clear(&notes);
            return kiln_error_prefix(err, "uploaded context '%s'", s->source);
        }
    }
    if (kiln_auto_source_prepare(dir, &so, out, err) < 0) {
        if (tmp)
            kiln_fs_rm_rf(tmp, NULL);
        kiln_context_notes_clear(&notes);
        return -1;
    }
    note_upload(s, o, root, &notes, out);
    kiln_context_notes_clear(&notes);
    free(out->display);
    out->display = kiln_xstrdup(s->source);
    out->checkout = steal_pointer(&tmp);
    out->warning = steal_pointer(&warning);
    return 0;
}

int kiln_job_source_fetch(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o,
                          kiln_auto_source_t *out, kiln_error_t *err)
{
    kiln_auto_source_opts_t so = {.root = o->root, .subdir = s->subdir, .env = o->env};

    memset(out, 0, sizeof(*out));
    switch (s->source_kind) {
    case KILN_JOB_SOURCE_GIT:
        return fetch_git(s, o, out, err);
    case KILN_JOB_SOURCE_CONTEXT:
        return fetch_context(s, o, out, err);
    case KILN_JOB_SOURCE_DIR:
        if (strcmp(s->source, "-") == 0)
            return kiln_error_set(err, 0, "field 'source.dir': stdin is read by the build itself");
        return kiln_auto_source_prepare(s->source, &so, out, err);
    default:
        return kiln_error_set(err, 0, "field 'source': is required");
    }
}

void kiln_job_source_drop_credential(kiln_job_spec_t *s)
{
    size_t k = 0;

    for (size_t i = 0; i < s->n_secrets; i++) {
        kiln_job_secret_t *x = &s->secrets[i];
        if (strcmp(x->id, KILN_JOB_GIT_SECRET) == 0) {
            free(x->id);
            free(x->src);
            free(x->env);
            continue;
        }
        s->secrets[k++] = *x;
    }
    s->n_secrets = k;
}
