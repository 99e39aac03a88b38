/* kiln — a job's source on disk (see source.h). */
#include "job/source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "job/context.h"
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
    kiln_auto_source_opts_t so = {.root = o->root,
                                  .subdir = s->subdir,
                                  .env = o->env,
                                  .git_policy = o->git_policy,
                                  .cache_namespace = s->cache_namespace,
                                  .stat_cache_max = o->stat_cache_max};
    int ret;

    if (cred_file && kiln_job_source_read_credential(cred_file, &cred, err) < 0)
        return kiln_error_prefix(err, "the git credential (secret '%s')", KILN_JOB_GIT_SECRET);
    so.credential = cred;
    url = ref ? kiln_xasprintf("%s#%s", s->source, ref) : kiln_xstrdup(s->source);
    ret = kiln_auto_source_prepare(url, &so, out, err);
    if (cred)
        explicit_bzero(cred, strlen(cred));
    return ret;
}

/* An uploaded context: the directory the operator unpacked it to, else its staged tarball
 * unpacked under the kiln root (removed with the source). */
static int fetch_context(const kiln_job_spec_t *s, const kiln_job_source_opts_t *o,
                         kiln_auto_source_t *out, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL, *tar = NULL, *root = NULL, *work = NULL, *tmp = NULL;
    kiln_auto_source_opts_t so = {.root = o->root, .subdir = s->subdir, .env = o->env};
    struct stat st;

    if (o->contexts_dir == NULL)
        return kiln_error_set(err, 0,
                              "field 'source.context': uploaded contexts are run by a server "
                              "(kiln job run --contexts-dir)");
    dir = kiln_xasprintf("%s/%s", o->contexts_dir, s->source);
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
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
        if (kiln_fs_mkdir_p(dir, 0755, err) < 0 || kiln_context_unpack(tar, dir, NULL, err) < 0) {
            kiln_fs_rm_rf(tmp, NULL);
            return kiln_error_prefix(err, "uploaded context '%s'", s->source);
        }
    }
    if (kiln_auto_source_prepare(dir, &so, out, err) < 0) {
        if (tmp)
            kiln_fs_rm_rf(tmp, NULL);
        return -1;
    }
    free(out->display);
    out->display = kiln_xstrdup(s->source);
    out->checkout = steal_pointer(&tmp);
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
