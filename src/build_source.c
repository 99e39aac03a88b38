/* kiln build — where its context comes from (see build_source.h). */
#include "src/build_source.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "oci/layer_read.h"
#include "src/build_report.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

extern char **environ;

int kiln_build_context_from_stdin(const char *root, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *parent = kiln_xasprintf("%s/build/tmp", root);
    _cleanup_free_ char *dir = NULL;
    kiln_unpack_opts_t uo;

    if (kiln_fs_mkdir_p(parent, 0711, err) < 0 || kiln_fs_mkdtemp(parent, "ctx-", &dir, err) < 0)
        return -1;
    kiln_unpack_opts_init(&uo);
    if (kiln_layer_unpack(STDIN_FILENO, dir, &uo, NULL, err) < 0) {
        kiln_fs_rm_rf(dir, NULL);
        return kiln_error_prefix(err, "reading the context tarball from stdin");
    }
    *out = steal_pointer(&dir);
    return 0;
}

void kiln_build_note_source(json_t *ev, const kiln_auto_source_t *src)
{
    if (src->commit == NULL)
        return;
    fprintf(stderr, "source %s at commit %s\n", src->display, src->commit);
    json_object_set_new(json_object_get(ev, "source"), "repo", json_string(src->display));
    json_object_set_new(json_object_get(ev, "source"), "commit", json_string(src->commit));
}

int kiln_build_git_context(const kiln_build_opts_t *o, const char *url,
                           const kiln_git_policy_t *gitpol, json_t *ev, kiln_auto_source_t *src,
                           char **dockerfile, kiln_error_t *err)
{
    kiln_auto_source_opts_t so = {.root = o->root,
                                  .subdir = o->subdir,
                                  .env = environ,
                                  .git_policy = gitpol,
                                  .cache_namespace = o->cache_namespace,
                                  .stat_cache_max = o->stat_cache_max};

    kiln_build_report_phase(o->events_fd, "checkout");
    if (kiln_auto_source_prepare(url, &so, src, err) < 0)
        return -1;
    kiln_build_note_source(ev, src);
    /* -f names a file of the repository (as buildx reads it for a git context), found
     * inside the checkout by the engine */
    *dockerfile = o->file && strcmp(o->file, "-") != 0 && o->file[0] != '/'
                      ? kiln_xasprintf("%s/%s", src->dir, o->file)
                      : NULL;
    return 0;
}
