/* kiln — RUN --mount: cache (shared or private instances, per namespace), secret (a
 * private 0400 copy of the caller's file or value), ssh, tmpfs, and bind (from the
 * context or a stage, resolved in its root; private copies for an insecure step). */
#include "engine/mounts.h"

#include "engine/expand.h"
#include "engine/remote_mounts.h"
#include "engine/secrets.h"

#include "engine/solve.h"

/* Finds --secret id=ID's source: src=/source=FILE, or env=VAR (keys in any
 * order; without either, the environment variable named ID). */
static int secret_source(engine_t *e, const char *sid, char **file, char **envname)
{
    for (size_t i = 0; i < e->req->n_secrets; i++) {
        kiln_secret_spec_t sp;
        kiln_secret_spec_parse(e->req->secrets[i], &sp);
        if (sp.id == NULL || strcmp(sp.id, sid) != 0) {
            kiln_secret_spec_clear(&sp);
            continue;
        }
        if (sp.src != NULL)
            *file = steal_pointer(&sp.src);
        else
            *envname = sp.env ? steal_pointer(&sp.env) : steal_pointer(&sp.id);
        kiln_secret_spec_clear(&sp);
        return 0;
    }
    return -1;
}

/* dir/<prefix><32 hex digits of the id's sha256>: a file or directory named by an id that
 * is never used as a path itself. */
static char *id_path(const char *dir, const char *prefix, const char *id)
{
    kiln_digest_t d;
    char ds[KILN_DIGEST_STR_MAX];

    kiln_digest_bytes(id, strlen(id), &d);
    kiln_digest_str(&d, ds);
    return kiln_xasprintf("%s/%s%.32s", dir, prefix, strchr(ds, ':') + 1);
}

/* Parses "--mount=k=v,k=v" into a sandbox mount. */

/* sharing=private (BuildKit): a writer that finds the cache in use gets an
 * instance of its own. The first instance not locked by another step
 * (<dir>, <dir>.p1, <dir>.p2, …) is locked and used; *dir is replaced by it.
 * Instances persist like the cache itself. Returns -1 with err set. */
static int private_cache_instance(char **dir, const char *uid, const char *gid, const char *mode,
                                  int *lock_fd, kiln_error_t *err)
{
    for (int i = 0; i < 64; i++) {
        _cleanup_free_ char *p = i == 0 ? kiln_xstrdup(*dir) : kiln_xasprintf("%s.p%d", *dir, i);
        int fd;
        if (i > 0 && access(p, F_OK) != 0) {
            if (kiln_fs_mkdir_p(p, 0755, err) < 0)
                return -1;
            if ((uid || gid) && chown(p, uid ? (uid_t)strtoul(uid, NULL, 10) : 0,
                                      gid ? (gid_t)strtoul(gid, NULL, 10) : 0) < 0)
                return kiln_error_set(err, errno, "chown %s", p);
            if (mode && chmod(p, (mode_t)strtoul(mode, NULL, 8) & 07777) < 0)
                return kiln_error_set(err, errno, "chmod %s", p);
        }
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return kiln_error_set(err, errno, "open %s", p);
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *lock_fd = fd;
            free(*dir);
            *dir = steal_pointer(&p);
            return 0;
        }
        close(fd);
    }
    return kiln_error_set(err, EBUSY, "64 private instances are all in use");
}

/* A mount target as BuildKit takes it: relative to WORKDIR. */
static char *mount_target(const stage_t *st, const char *target)
{
    const char *wd =
        json_string_value(json_object_get(json_object_get(st->config, "config"), "WorkingDir"));
    if (target[0] == '/')
        return kiln_xstrdup(target);
    return kiln_xasprintf("%s/%s", wd && *wd && strcmp(wd, "/") != 0 ? wd : "", target);
}

/* Whether a mount target names the step's root once joined to WORKDIR and cleaned ("",
 * "/", "a/..", "$UNSET"): BuildKit refuses it (a mount there would hide the rootfs). */
static bool target_is_root(const stage_t *st, const char *target)
{
    _cleanup_free_ char *t = mount_target(st, target);
    size_t depth = 0;
    for (const char *p = t; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            depth -= depth > 0; /* ".." stops at the root */
        else if (n > 0 && !(n == 1 && p[0] == '.'))
            depth++;
        p += n + (p[n] == '/');
    }
    return depth == 0;
}

/* The canonical path of a bind mount's source src inside rootfd (links
 * followed inside it, ".." stopping at it), which must be a directory or a
 * regular file; what names the root in messages. -1 with err. */
int kiln_mounts_bind_source(int rootfd, const char *src, const char *what, char **out,
                            kiln_error_t *err)
{
    _cleanup_free_ char *canon = NULL;
    _cleanup_close_ int fd = -1;
    struct stat sb;
    size_t n;
    if (kiln_pathres_resolve(rootfd, src, 0, &canon, err) < 0 ||
        kiln_pathres_open(rootfd, canon, O_PATH, 0, 0, &fd, err) < 0 || fstat(fd, &sb) < 0)
        return kiln_error_set(err, 0, "bind mount source %s: not found in %s", src, what);
    for (n = strlen(canon); n > 1 && canon[n - 1] == '/';)
        canon[--n] = '\0'; /* "dir/": the directory */
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
        return kiln_error_set(err, 0, "bind mount source %s is %s, not a regular file or directory",
                              src, kiln_copytree_special_kind(sb.st_mode));
    *out = steal_pointer(&canon);
    return 0;
}

/* A stage's files reach a bind mount hardlinked from the shared unpacked
 * layer dirs, read-only. A RUN --security=insecure step holds CAP_SYS_ADMIN in
 * its user namespace and could remount that rw and write through the links
 * into trees other builds (other tenants) use, or into the build context (the
 * caller's directory) for a context bind: it gets a private copy instead.
 * *src is replaced by the copy, which lives in *view (the view the copy was
 * made from, when there is one, goes at once; *view is removed after the step). */
int kiln_mounts_insecure_copy(engine_t *e, char **src, char **view, kiln_error_t *err)
{
    _cleanup_free_ char *dir = NULL;
    char *copy;

    if (kiln_fs_mkdtemp(e->work, "bindcopy-", &dir, err) < 0)
        return -1;
    copy = kiln_xasprintf("%s/t", dir);
    if (kiln_diff_copy_tree(*src, copy, err) < 0) {
        free(copy);
        kiln_fs_rm_rf(dir, NULL);
        return -1;
    }
    free(copy);
    kiln_mounts_use_copy(src, view, steal_pointer(&dir));
    return 0;
}

void kiln_mounts_use_copy(char **src, char **view, char *dir)
{
    free(*src);
    *src = kiln_xasprintf("%s/t", dir);
    if (*view != NULL) {
        kiln_fs_rm_rf(*view, NULL);
        free(*view);
    }
    *view = dir;
}

/* An option's value with the stage's ARG and ENV variables expanded, as BuildKit expands
 * every --mount value (an unset variable is empty); the expansion then meets exactly the
 * checks a literal value does. from= names a stage before any variable is known: BuildKit
 * refuses a variable there, so does this. *v is replaced by the expansion (held in keep).
 * -1 with err naming the option. */
static int expand_value(engine_t *e, const stage_t *st, const char *key, char **v, strv_t *keep,
                        kiln_error_t *err)
{
    char *x = NULL;
    if (strcmp(key, "from") == 0) {
        const char *d = strchr(*v, '$');
        if (d != NULL && d[1] != '\0')
            return kiln_error_set(err, 0,
                                  "mount from=%s: from= does not expand variables; name the "
                                  "stage, or define an alias stage (FROM ... AS NAME)",
                                  *v);
        return 0;
    }
    if (kiln_expand_word(e, st, *v, NULL, &x, err) < 0)
        return kiln_error_prefix(err, "mount option %s=%s", key, *v);
    strv_add(keep, x);
    *v = x;
    return 0;
}

int kiln_mounts_parse(engine_t *e, stage_t *st, const char *spec, kiln_mount_t *m, char **owned,
                      int *lock_fd, bind_src_t *bs, kiln_error_t *err)
{
    _cleanup_free_ char *s = kiln_xstrdup(spec);
    _cleanup_(strv_clear) strv_t expanded = {0};
    char *save = NULL, *type = "bind", *target = NULL, *id = NULL, *src = NULL, *from = NULL;
    char *sharing = NULL, *uid = NULL, *gid = NULL, *mode = NULL;
    bool ro = false;
    for (char *kv = strtok_r(s, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *v = strchr(kv, '=');
        if (v)
            *v++ = '\0';
        if (v != NULL && expand_value(e, st, kv, &v, &expanded, err) < 0)
            return -1;
        if (strcmp(kv, "type") == 0)
            type = v;
        else if (strcmp(kv, "target") == 0 || strcmp(kv, "dst") == 0 ||
                 strcmp(kv, "destination") == 0)
            target = v;
        else if (strcmp(kv, "id") == 0)
            id = v;
        else if (strcmp(kv, "source") == 0 || strcmp(kv, "src") == 0)
            src = v;
        else if (strcmp(kv, "from") == 0)
            from = v;
        else if (strcmp(kv, "ro") == 0 || strcmp(kv, "readonly") == 0)
            ro = v == NULL || strcmp(v, "true") == 0;
        else if (strcmp(kv, "sharing") == 0)
            sharing = v;
        else if (strcmp(kv, "uid") == 0)
            uid = v;
        else if (strcmp(kv, "gid") == 0)
            gid = v;
        else if (strcmp(kv, "mode") == 0)
            mode = v;
    }
    if (type == NULL)
        return kiln_error_set(err, 0, "mount type missing in %s", spec);
    if (target != NULL && target_is_root(st, target))
        return kiln_error_set(err, 0, "invalid mount target \"%s\" (the root /) in %s", target,
                              spec);
    memset(m, 0, sizeof(*m));
    if (strcmp(type, "cache") == 0) {
        const char *cid = id && *id ? id : target; /* id=$UNSET: the target's cache */
        _cleanup_free_ char *base = NULL;          /* the id's directory (not a private instance) */
        if (target == NULL)
            return kiln_error_set(err, 0, "cache mount needs a target: %s", spec);
        owned[0] = id_path(e->mounts_dir, "", cid);
        base = kiln_xstrdup(owned[0]);
        if (access(owned[0], F_OK) != 0) {
            /* a new cache dir gets the uid/gid/mode asked for (BuildKit: 0:0 0755) */
            if (kiln_fs_mkdir_p(owned[0], 0755, err) < 0)
                return -1;
            if ((uid || gid) && chown(owned[0], uid ? (uid_t)strtoul(uid, NULL, 10) : 0,
                                      gid ? (gid_t)strtoul(gid, NULL, 10) : 0) < 0)
                return kiln_error_set(err, errno, "chown cache mount %s", cid);
            if (mode && chmod(owned[0], (mode_t)strtoul(mode, NULL, 8) & 07777) < 0)
                return kiln_error_set(err, errno, "chmod cache mount %s", cid);
        }
        if (sharing && strcmp(sharing, "shared") != 0 && strcmp(sharing, "locked") != 0 &&
            strcmp(sharing, "private") != 0)
            return kiln_error_set(err, 0, "cache mount sharing=%s: want shared, private or locked",
                                  sharing);
        if (sharing && strcmp(sharing, "locked") == 0) {
            /* one step at a time uses a locked cache (others wait) */
            *lock_fd = open(owned[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX) < 0)
                return kiln_error_set(err, errno, "locking cache mount %s", cid);
        } else if (sharing && strcmp(sharing, "private") == 0 &&
                   private_cache_instance(&owned[0], uid, gid, mode, lock_fd, err) < 0) {
            return kiln_error_prefix(err, "cache mount %s", cid);
        }
        m->type = KILN_MOUNT_CACHE;
        m->src = owned[0];
        kiln_remote_mounts_note(e, cid, base);
        owned[1] = mount_target(st, target);
        m->dst = owned[1];
        return 0;
    }
    if (strcmp(type, "secret") == 0) {
        const char *slash = target ? strrchr(target, '/') : NULL;
        const char *sid = id && *id ? id : (slash ? slash + 1 : target);
        _cleanup_free_ char *file = NULL;
        _cleanup_free_ char *envname = NULL;
        if (sid == NULL || secret_source(e, sid, &file, &envname) < 0)
            return kiln_error_set(err, 0,
                                  "secret %s not provided (--secret id=%s,src=FILE or env=VAR)",
                                  sid ? sid : "?", sid ? sid : "ID");
        m->type = KILN_MOUNT_SECRET;
        /* a private 0400 copy in the work dir (removed after the build), so the
         * caller's file is never exposed or changed */
        {
            _cleanup_free_ char *text = NULL;
            size_t len = 0;
            /* named by the id's digest: an id is an opaque name (BuildKit's map key), never
             * a path ("../x", "a/b" stay in the work dir) */
            owned[0] = id_path(e->work, "secret-", sid);
            if (file != NULL) {
                if (kiln_fs_read_file(file, 1u << 20, &text, &len, err) < 0)
                    return kiln_error_prefix(err, "secret %s", sid);
            } else {
                const char *v = kiln_env_lookup(e->req->env, envname);
                if (v == NULL)
                    return kiln_error_set(err, 0, "secret %s: environment variable %s is not set",
                                          sid, envname);
                text = kiln_xstrdup(v);
                len = strlen(v);
            }
            if (kiln_fs_write_file_atomic(owned[0], text, len, 0400, err) < 0) {
                explicit_bzero(text, len);
                return kiln_error_prefix(err, "secret %s", sid);
            }
            explicit_bzero(text, len);
        }
        owned[1] = target ? mount_target(st, target) : kiln_xasprintf("/run/secrets/%s", sid);
        m->src = owned[0];
        m->dst = owned[1];
        m->readonly = 1;
        return 0;
    }
    if (strcmp(type, "ssh") == 0) {
        /* the caller's SSH agent, as BuildKit's default ssh mount */
        if (e->req->ssh_socket == NULL)
            return kiln_error_set(err, 0,
                                  "RUN --mount=type=ssh needs an SSH agent (--ssh default)");
        m->type = KILN_MOUNT_BIND;
        owned[0] = kiln_xstrdup(e->req->ssh_socket);
        owned[1] = mount_target(st, target ? target : "/run/buildkit/ssh_agent.0");
        m->src = owned[0];
        m->dst = owned[1];
        m->readonly = 0;
        return 0;
    }
    if (strcmp(type, "tmpfs") == 0) {
        if (target == NULL)
            return kiln_error_set(err, 0, "tmpfs mount needs a target: %s", spec);
        m->type = KILN_MOUNT_TMPFS;
        owned[1] = mount_target(st, target);
        m->dst = owned[1];
        return 0;
    }
    if (strcmp(type, "bind") == 0) {
        char *root = NULL;
        if (target == NULL)
            return kiln_error_set(err, 0, "bind mount needs a target: %s", spec);
        if (from != NULL) {
            stage_t *dep = kiln_solve_find(e, from, (size_t)st->index);
            if (dep == NULL)
                return kiln_error_set(err, 0, "bind mount from unknown stage %s", from);
            if (kiln_solve_run_stage(e, dep, err) < 0)
                return -1;
            bs->dep = dep;
            /* the stage's files are only materialized when the step runs */
            owned[0] = kiln_xstrdup(src ? src : ".");
        } else {
            /* resolved inside the context: the host path of what is inside */
            _cleanup_close_ int rootfd = -1;
            _cleanup_free_ char *canon = NULL;
            root = (char *)e->req->context_dir;
            bs->context = true;
            if (kiln_pathres_open_root(root, &rootfd, err) < 0 ||
                kiln_mounts_bind_source(rootfd, src ? src : ".", "the build context", &canon, err) <
                    0)
                return -1;
            owned[0] = kiln_xasprintf("%s%s", root, strcmp(canon, "/") == 0 ? "" : canon);
            bs->as = kiln_xstrdup(src ? src : ".");
        }
        owned[1] = mount_target(st, target);
        m->type = KILN_MOUNT_BIND;
        m->src = owned[0];
        m->dst = owned[1];
        m->readonly = ro || true;
        return 0;
    }
    return kiln_error_set(err, 0, "unsupported mount type %s", type);
}
