/* kiln — the sources of a COPY/ADD: the words of the instruction expanded (ARG/ENV),
 * cleaned like BuildKit cleans them, globs matched inside the source root (never
 * following a link out of it), .dockerignore applied, and each source's canonical
 * in-root path; a source that is missing, matches nothing, is not a file or directory, is
 * .git or leaves the context is a Dockerfile error naming it. */
#include "engine/copy_sources.h"

#include "engine/expand.h"

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* Cleans a source path of a stage or image lexically, as BuildKit does:
 * "." and empty components dropped, ".." removes the previous one and stops
 * at the root (so no source leaves the stage's tree). In place. */
static void clean_stage_path(char *s)
{
    size_t out = 0, i = 0, len = strlen(s);

    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '/')
            j++;
        if (j - i == 2 && s[i] == '.' && s[i + 1] == '.') {
            while (out > 0 && s[out - 1] != '/')
                out--;
            if (out > 0)
                out--; /* the '/' before the dropped component */
        } else if (!(j - i == 0 || (j - i == 1 && s[i] == '.'))) {
            if (out > 0)
                s[out++] = '/';
            memmove(s + out, s + i, j - i);
            out += j - i;
        }
        i = j + 1;
    }
    s[out] = '\0';
}

/* Expands the sources of a COPY/ADD: URLs (ADD) to urls, paths (without
 * leading '/', cleaned for a stage or image) to paths; heredoc sources are
 * left out. */
int kiln_copy_sources_expand(engine_t *e, stage_t *st, const kiln_df_node_t *n, bool is_add,
                             bool from_context, strv_t *paths, strv_t *urls, kiln_error_t *err)
{
    for (size_t i = 0; i + 1 < n->n_args; i++) {
        _cleanup_free_ char *s = NULL;
        if (n->n_heredocs > 0 && strstr(n->args[i], "<<") != NULL)
            continue; /* a heredoc source */
        if (kiln_expand_word(e, st, n->args[i], NULL, &s, err) < 0)
            return kiln_df_error(n, err, "%s", err->msg);
        if (is_add && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)) {
            strv_add(urls, steal_pointer(&s));
            continue;
        }
        while (s[0] == '/')
            memmove(s, s + 1, strlen(s));
        if (from_context &&
            (strcmp(s, "..") == 0 || strncmp(s, "../", 3) == 0 || strstr(s, "/../") != NULL))
            return kiln_df_error(n, err, "source %s is outside the build context", s);
        if (!from_context)
            clean_stage_path(s);
        strv_add(paths, steal_pointer(&s));
    }
    return 0;
}

/* Expands the glob pattern pat (relative to the root) by reading the
 * directories under rootfd: each directory on the way resolved inside the
 * root, wildcards matched as glob(3) does (a leading '.' only by a '.').
 * Adds the matches, as paths under the root (links in them not resolved), to
 * out, sorted per directory. */
static int glob_in_root(int rootfd, const char *dir, const char *pat, strv_t *out,
                        kiln_error_t *err)
{
    const char *slash = strchr(pat, '/');
    _cleanup_free_ char *comp =
        slash ? kiln_xstrndup(pat, (size_t)(slash - pat)) : kiln_xstrdup(pat);
    const char *rest = slash ? slash + 1 : NULL;
    strv_t names = {0};
    _cleanup_close_ int dfd = -1;
    bool trail; /* a pattern ending in "/" matches only directories, as glob(3) */
    int ret = 0;

    while (rest && *rest == '/')
        rest++;
    trail = rest && *rest == '\0';
    if (trail)
        rest = NULL;
    if (comp[0] == '\0' || !has_glob(comp)) {
        _cleanup_free_ char *p = dir[0] ? kiln_xasprintf("%s/%s", dir, comp) : kiln_xstrdup(comp);
        _cleanup_free_ char *canon = NULL;
        if (kiln_pathres_resolve(rootfd, p, rest ? 0 : KILN_PATHRES_NOFOLLOW, &canon, NULL) < 0)
            return 0; /* no match */
        if (rest == NULL) {
            strv_add(out, steal_pointer(&p));
            return 0;
        }
        return glob_in_root(rootfd, p, rest, out, err);
    }
    if (kiln_pathres_open(rootfd, dir[0] ? dir : "/", O_RDONLY | O_DIRECTORY, 0, 0, &dfd, NULL) < 0)
        return 0; /* not a directory: no match */
    if (kiln_copytree_list_dir(dfd, dir, &names, err) < 0)
        return -1;
    for (size_t i = 0; i < names.n && ret == 0; i++) {
        _cleanup_free_ char *p = NULL;
        if (fnmatch(comp, names.v[i], FNM_PERIOD) != 0)
            continue;
        p = kiln_xasprintf("%s%s%s%s", dir, dir[0] ? "/" : "", names.v[i], trail ? "/" : "");
        if (rest == NULL) {
            _cleanup_free_ char *canon = NULL;
            if (!trail || kiln_pathres_resolve(rootfd, p, 0, &canon, NULL) == 0)
                strv_add(out, steal_pointer(&p));
        } else
            ret = glob_in_root(rootfd, p, rest, out, err);
    }
    strv_clear(&names);
    return ret;
}

/* Resolves the expanded source paths inside rootfd (the context, a named
 * context or a stage's tree): globs expanded by reading directories there,
 * each source's links followed inside the root (as BuildKit's
 * FollowSymlinks), checked to exist and not be excluded by ign. srcs gets
 * each source as written (or matched: the cache key and its name in the
 * destination), canon its canonical path in the root. A FIFO, socket or
 * device named as a source is refused. */
int kiln_copy_sources_resolve(const kiln_df_node_t *n, int rootfd, const kiln_dockerignore_t *ign,
                              const strv_t *paths, strv_t *srcs, strv_t *canon, kiln_error_t *err)
{
    for (size_t i = 0; i < paths->n; i++) {
        const char *s = paths->v[i];
        strv_t cands = {0};
        size_t before = srcs->n;
        if (has_glob(s)) {
            if (glob_in_root(rootfd, "", s, &cands, err) < 0)
                return -1;
        } else {
            strv_add(&cands, kiln_xstrdup(s[0] ? s : "."));
        }
        for (size_t k = 0; k < cands.n; k++) {
            const char *m = cands.v[k];
            _cleanup_free_ char *cp = NULL;
            _cleanup_close_ int dfd = -1;
            const char *name;
            struct stat sst;
            bool ok = kiln_pathres_resolve(rootfd, m, 0, &cp, NULL) == 0;
            size_t cl = ok ? strlen(cp) : 0;
            while (cl > 1 && cp[cl - 1] == '/')
                cp[--cl] = '\0'; /* "dir/": the directory */
            ok = ok && kiln_copytree_source_at(rootfd, cp, &dfd, &name, NULL) == 0 &&
                 fstatat(dfd, name, &sst, AT_SYMLINK_NOFOLLOW) == 0;
            const char *rel = ok ? cp + 1 : "";
            if (ok && ign && rel[0] && !S_ISDIR(sst.st_mode) &&
                (kiln_dockerignore_excluded(ign, rel) ||
                 (strcmp(m, ".") != 0 && kiln_dockerignore_excluded(ign, m))))
                ok = false;
            if (ok && ign && kiln_dockerignore_is_git(rel)) {
                if (has_glob(s))
                    continue;
                strv_clear(&cands);
                return kiln_error_set(err, 0,
                                      "Dockerfile:%d: \"/%s\": .git is never part of the build "
                                      "context (pass what the build needs from it as a build "
                                      "argument): %s",
                                      n->start_line, s, n->original);
            }
            if (!ok && has_glob(s))
                continue;
            if (!ok) {
                strv_clear(&cands);
                return kiln_error_set(
                    err, 0, "Dockerfile:%d: failed to compute cache key: \"/%s\": not found: %s",
                    n->start_line, s, n->original);
            }
            if (!S_ISDIR(sst.st_mode) && !S_ISREG(sst.st_mode)) {
                int r = kiln_error_set(err, EINVAL,
                                       "Dockerfile:%d: source %s is %s, not a regular file or "
                                       "directory: %s",
                                       n->start_line, m, kiln_copytree_special_kind(sst.st_mode),
                                       n->original);
                strv_clear(&cands);
                return r;
            }
            strv_add(srcs, kiln_xstrdup(m));
            strv_add(canon, steal_pointer(&cp));
        }
        strv_clear(&cands);
        if (has_glob(s) && srcs->n == before)
            return kiln_df_error(n, err, "no source files were specified");
    }
    return 0;
}
