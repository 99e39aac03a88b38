/* kiln — RUN: the step's command in the sandbox over the stage's lower dirs with a fresh
 * upper dir, its mounts, network, limits and entitlements; its key, cache hit, and the
 * commit of its changes; the last lines of a failing step in its error. */
#include "engine/step_run.h"

#include <sys/statvfs.h>
#include <sys/xattr.h>

#include "engine/cache.h"
#include "engine/flatten.h"
#include "engine/mounts.h"
#include "engine/remote_mounts.h"
#include "engine/run_trash.h"
#include "engine/snapshot.h"
#include "engine/step_copy.h"
#include "engine/user.h"

/* Less free space than this on the filesystem of a failed step's writes: it failed for a
 * full disk (a write that does not fit fails whole, leaving up to its size free). */
#define FULL_MARGIN (4u << 20)

/* Whether the filesystem holding path is full for an unprivileged writer (a step's writes
 * stopped by the machine's disk, not by its own limit). */
static int fs_full(const char *path)
{
    struct statvfs sv;
    return statvfs(path, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < FULL_MARGIN;
}

/* Records what kind of failure a step's was (stages run in parallel threads). */
static void set_fail_code(engine_t *e, const char *code)
{
    pthread_mutex_lock(&e->lock);
    e->res->fail_code = code;
    pthread_mutex_unlock(&e->lock);
}

static void run_log(void *opaque, kiln_log_stream_t stream, const struct timespec *ts,
                    const char *line, size_t len)
{
    stage_t *st = opaque;
    /* of kiln's own notes, the egress filter's refusals go in the step's log
     * (they name the address and the --allow-address that opens it) */
    if (stream == KILN_LOG_SYSTEM && (len < 9 || memcmp(line, "network: ", 9) != 0))
        return;
    {
        _cleanup_free_ char *l = kiln_xstrndup(line, len);
        kiln_engine_event(st->e, st->step, "log", l, -1);
    }
    if (st->tail_n == LOG_TAIL) {
        free(st->tail[0]);
        memmove(st->tail, st->tail + 1, (LOG_TAIL - 1) * sizeof(char *));
        st->tail_n--;
    }
    st->tail[st->tail_n++] = kiln_xstrndup(line, len);
}

static char *join_argv(char *const *v, size_t n)
{
    kiln_buf_t b;
    kiln_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            kiln_buf_append(&b, " ", 1, NULL);
        kiln_buf_append(&b, v[i], strlen(v[i]), NULL);
    }
    return kiln_buf_steal(&b, NULL);
}

/* Why a failed RUN may have failed when the build limits its steps (a fork or an
 * allocation that hit the limit); "" when no limit is set. Static storage. */
static const char *limits_note(const kiln_build_request_t *req, const kiln_step_result_t *res)
{
    static __thread char note[200];
    char mem[32], pids[32], cpu[32], disk[32];

    if (!req->memory_limit && !req->pids_limit && !req->cpu_time_limit && !req->disk_limit)
        return "";
    kiln_size_format(req->memory_limit, mem, sizeof(mem));
    kiln_size_format(req->disk_limit, disk, sizeof(disk));
    snprintf(pids, sizeof(pids), "%llu", (unsigned long long)req->pids_limit);
    snprintf(cpu, sizeof(cpu), "%llus", (unsigned long long)req->cpu_time_limit);
    snprintf(note, sizeof(note), "\n  %s (step limits: memory %s, pids %s, cpu time %s, disk %s)",
             res->oom_killed ? "killed: out of memory" : "the step may have hit a limit",
             req->memory_limit ? mem : "none", req->pids_limit ? pids : "none",
             req->cpu_time_limit ? cpu : "none", req->disk_limit ? disk : "none");
    return note;
}

/* A step's upper or work dir: the stage's spare when the last RUN left one, else a new one. */
static int take_dir(engine_t *e, char **spare, const char *prefix, char **out, kiln_error_t *err)
{
    if (*spare != NULL) {
        *out = steal_pointer(spare);
        return 0;
    }
    return kiln_fs_mkdtemp(e->work, prefix, out, err);
}

/* Whether every extended attribute of path is overlay's own (e.g. overlay.uuid, which a
 * mount sets on its upper dir): 1 yes (or none), 0 another one or unreadable. */
static int only_overlay_xattrs(const char *path)
{
    char names[1024];
    ssize_t n = llistxattr(path, names, sizeof(names));

    if (n < 0)
        return 0;
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
        if (strncmp(names + i, "user.overlay.", 13) != 0 &&
            strncmp(names + i, "trusted.overlay.", 16) != 0)
            return 0;
    return 1;
}

/* Keeps the dirs of a step that succeeded for the stage's next RUN: each one made and removed
 * costs the build's disk a synchronous trip (a discard on such mounts). The work dir once
 * overlay's "volatile" marker (work/incompat/volatile/dirty) is gone: a mount refuses a work
 * dir that has it, and makes it again; the upper dir when the step left it as it was made:
 * empty, kiln's, 0755, no extended attribute but overlay's own. */
static void keep_dirs(engine_t *e, stage_t *st, char **upper, char **work)
{
    _cleanup_free_ char *spent = kiln_xasprintf("%s/work", *work);
    _cleanup_free_ char *trash = kiln_xasprintf(
        "%s/trash-%u", e->work, __atomic_fetch_add(&e->trash_seq, 1, __ATOMIC_RELAXED));
    _cleanup_free_ char *dirty = kiln_xasprintf("%s/incompat/volatile/dirty", spent);
    char *volatile_dir = kiln_xstrndup(dirty, strlen(dirty) - strlen("/dirty"));
    struct stat sb;
    DIR *d;
    struct dirent *de;
    int empty = 1;

    /* the spent work/work (and the marker in it) goes whole to engine/run_trash: the next
     * mount makes a new one without removing the old (each directory removed is a discard
     * on such disks); where it cannot be moved, the marker is removed here */
    if ((kiln_run_trash_move(e->trash, spent, trash) == 0 ||
         ((unlink(dirty) == 0 || errno == ENOENT) && (rmdir(volatile_dir) == 0 || errno == ENOENT ||
                                                      kiln_fs_rm_rf(volatile_dir, NULL) == 0))) &&
        st->spare_work == NULL)
        st->spare_work = steal_pointer(work);
    free(volatile_dir);
    if (*upper == NULL || st->spare_upper != NULL || lstat(*upper, &sb) < 0 ||
        !S_ISDIR(sb.st_mode) || (sb.st_mode & 07777) != 0755 || sb.st_uid != geteuid() ||
        sb.st_gid != getegid() || !only_overlay_xattrs(*upper) || (d = opendir(*upper)) == NULL)
        return;
    while (empty && (de = readdir(d)) != NULL)
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    if (empty)
        st->spare_upper = steal_pointer(upper);
}

int kiln_step_run(engine_t *e, stage_t *st, const kiln_df_node_t *n, kiln_error_t *err)
{
    strv_t argv = {0}, env = {0};
    used_args_t used = {.args = &st->args};
    kiln_mount_t mounts[16];
    char *owned[32] = {0};
    int locks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    bind_src_t binds[16] = {{0}};
    char *views[16] = {0};
    size_t n_mounts = 0;
    const char **lowers = NULL;
    size_t n_lowers = 0;
    _cleanup_free_ char *upper = NULL;
    _cleanup_free_ char *work = NULL;
    _cleanup_free_ char *created_by = NULL;
    _cleanup_free_ char *keytext = NULL;
    json_t *cfg = json_object_get(st->config, "config");
    kiln_step_t step;
    kiln_step_result_t res = {0};
    kiln_digest_t key = st->key;
    int ret = -1;
    const char *net = e->req->network;
    kiln_run_security_t sec = {0};

    /* command line */
    if (n->json) {
        for (size_t i = 0; i < n->n_args; i++)
            strv_add(&argv, kiln_xstrdup(n->args[i]));
    } else {
        json_t *sh = json_object_get(cfg, "Shell");
        size_t i;
        json_t *v;
        if (json_array_size(sh) > 0) {
            json_array_foreach(sh, i, v) strv_add(&argv, kiln_xstrdup(json_string_value(v)));
        } else {
            strv_add(&argv, kiln_xstrdup("/bin/sh"));
            strv_add(&argv, kiln_xstrdup("-c"));
        }
        if (n->n_heredocs == 1 && n->n_args > 0 && strncmp(n->args[0], "<<", 2) == 0 &&
            strpbrk(n->args[0], " \t") == NULL) {
            /* RUN <<EOF: the heredoc is the script */
            char *body = kiln_df_heredoc_content(&n->heredocs[0]);
            if (strncmp(body, "#!", 2) == 0 && n_mounts < 16) {
                /* a script with its own interpreter runs as a file, as in BuildKit
                 * (mounted read-only at /dev/pipes/NAME) */
                owned[2 * n_mounts] = kiln_xasprintf("%s/heredoc-%d", e->work, st->step);
                owned[2 * n_mounts + 1] = kiln_xasprintf("/dev/pipes/%s", n->heredocs[0].name);
                if (kiln_fs_write_file_atomic(owned[2 * n_mounts], body, strlen(body), 0755, err) <
                    0) {
                    free(body);
                    goto out;
                }
                mounts[n_mounts] = (kiln_mount_t){.type = KILN_MOUNT_BIND,
                                                  .src = owned[2 * n_mounts],
                                                  .dst = owned[2 * n_mounts + 1],
                                                  .readonly = 1};
                strv_clear(&argv);
                strv_add(&argv, kiln_xstrdup(owned[2 * n_mounts + 1]));
                n_mounts++;
                free(body);
            } else {
                strv_add(&argv, body);
            }
        } else if (n->n_heredocs > 0) {
            /* `RUN cmd <<EOF …`: the shell reads the heredocs itself */
            kiln_buf_t b;
            kiln_buf_init(&b, 0);
            kiln_buf_appendf(&b, NULL, "%s\n", n->n_args ? n->args[0] : "");
            for (size_t k = 0; k < n->n_heredocs; k++) {
                _cleanup_free_ char *body = kiln_df_heredoc_content(&n->heredocs[k]);
                kiln_buf_appendf(&b, NULL, "%s%s\n", body, n->heredocs[k].name);
            }
            strv_add(&argv, kiln_buf_steal(&b, NULL));
        } else {
            strv_add(&argv, kiln_xstrdup(n->n_args ? n->args[0] : ""));
        }
    }
    /* every ARG in scope reaches the command's environment (BuildKit does the same) */
    for (size_t i = 0; i < st->args.n; i++)
        strv_add(&used.used, kiln_xstrdup(st->args.v[i]));
    for (size_t i = 0; i < n->n_flags; i++) {
        if (strncmp(n->flags[i], "--mount=", 8) == 0) {
            if (n_mounts >= 16) {
                kiln_df_error(n, err, "too many mounts");
                goto out;
            }
            if (kiln_mounts_parse(e, st, n->flags[i] + 8, &mounts[n_mounts], owned + 2 * n_mounts,
                                  &locks[n_mounts], &binds[n_mounts], err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            n_mounts++;
        } else if (strncmp(n->flags[i], "--network=", 10) != 0 &&
                   strncmp(n->flags[i], "--security=", 11) != 0) {
            kiln_df_error(n, err, "unknown flag: %s", n->flags[i]);
            goto out;
        }
    }
    if (kiln_entitlement_check_run(n, e->req->entitlements, kiln_snapshot_is_chroot(e->req), &sec,
                                   err) < 0)
        goto out;
    if (sec.network)
        net = sec.network;
    {
        _cleanup_free_ char *cmd = join_argv(argv.v, argv.n);
        kiln_buf_t kb;
        kiln_buf_init(&kb, 0);
        if (used.used.n > 0) {
            kiln_buf_appendf(&kb, NULL, "|%zu", used.used.n);
            for (size_t i = 0; i < used.used.n; i++)
                kiln_buf_appendf(&kb, NULL, " %s", used.used.v[i]);
            kiln_buf_append(&kb, " ", 1, NULL);
        }
        kiln_buf_appendf(&kb, NULL, "%s", cmd);
        created_by = kiln_xasprintf("RUN %s # buildkit", kb.data);
        kiln_buf_free(&kb);
    }
    keytext = kiln_xasprintf("%s\nflags:%zu", created_by, n->n_flags);
    for (size_t i = 0; i < n->n_flags; i++) {
        char *k2 = kiln_xasprintf("%s %s", keytext, n->flags[i]);
        free(keytext);
        keytext = k2;
    }
    {
        json_t *envj = json_object_get(cfg, "Env");
        char *envs = json_dumps(envj ? envj : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        char *wd = (char *)json_string_value(json_object_get(cfg, "WorkingDir"));
        char *usr = (char *)json_string_value(json_object_get(cfg, "User"));
        char *k2 = kiln_xasprintf("%s\nenv:%s\nwd:%s\nuser:%s", keytext, envs, wd ? wd : "",
                                  usr ? usr : "");
        free(envs);
        free(keytext);
        keytext = k2;
    }
    for (size_t i = 0; i < n_mounts; i++) {
        /* bind mounts are inputs: a stage by its cache key, context files by content */
        char ds[KILN_DIGEST_STR_MAX];
        kiln_digest_t d;
        char *k2 = NULL;
        if (binds[i].dep != NULL) {
            k2 = kiln_xasprintf("%s\nbind%zu:stage:%s", keytext, i,
                                kiln_digest_str(&binds[i].dep->key, ds));
        } else if (binds[i].context) {
            /* owned[2i] is the context dir + the canonical path in it */
            const char *rel = owned[2 * i] + strlen(e->req->context_dir);
            if (kiln_step_copy_hash_context(e, rel[0] ? rel : "/", binds[i].as, &d, err) < 0) {
                kiln_df_error(n, err, "%s", err->msg);
                goto out;
            }
            k2 = kiln_xasprintf("%s\nbind%zu:context:%s", keytext, i, kiln_digest_str(&d, ds));
        } else {
            continue;
        }
        free(keytext);
        keytext = k2;
    }
    for (size_t i = 0; i < n->n_heredocs; i++) {
        /* a heredoc run as a file is not in the command line: key its content */
        char *k2 = kiln_xasprintf("%s\nheredoc:%s", keytext,
                                  n->heredocs[i].content ? n->heredocs[i].content : "");
        free(keytext);
        keytext = k2;
    }
    {
        /* the build's --add-host, --ulimit and --shm-size shape what the step sees: a step
         * run with other ones is another step (none set: the key is as before) */
        const kiln_build_request_t *q = e->req;
        kiln_buf_t kb;
        kiln_buf_init(&kb, 0);
        for (size_t i = 0; i < q->n_extra_hosts; i++)
            kiln_buf_appendf(&kb, NULL, "\nhost:%s", q->extra_hosts[i]);
        for (size_t i = 0; i < q->n_ulimits; i++)
            kiln_buf_appendf(&kb, NULL, "\nulimit:%d=%llu:%llu", q->ulimits[i].resource,
                             (unsigned long long)q->ulimits[i].soft,
                             (unsigned long long)q->ulimits[i].hard);
        if (q->shm_size)
            kiln_buf_appendf(&kb, NULL, "\nshm:%llu", (unsigned long long)q->shm_size);
        if (kb.data != NULL) {
            char *k2 = kiln_xasprintf("%s%s", keytext, kb.data);
            free(keytext);
            keytext = k2;
        }
        kiln_buf_free(&kb);
    }
    kiln_cache_key_step(&key, keytext, NULL);
    if ((ret = kiln_cache_lookup(e, st, &key, err)) != 0)
        goto out; /* a hit (1) or an error */
    ret = -1;
    for (size_t i = 0; i < n_mounts; i++) /* a miss: a remote cache mount is fetched now */
        if (mounts[i].type == KILN_MOUNT_CACHE)
            kiln_remote_mounts_restore(e, mounts[i].src);
    for (size_t i = 0; i < n_mounts; i++) {
        /* a miss: the bind-mounted paths of stages, merged from their layers */
        strv_t one = {0};
        const char *root = NULL;
        char *src;
        int r;
        if (binds[i].context) {
            /* the step sees the context as COPY does (no .git, nothing ignored), from a
             * private copy: the caller's own directory is never under it, even writable
             * by an insecure step */
            const char *rel = owned[2 * i] + strlen(e->req->context_dir);
            if (kiln_step_copy_context_view(e, rel[0] ? rel : "/", &owned[2 * i], &views[i], err) <
                0) {
                kiln_error_prefix(err, "Dockerfile:%d: RUN bind mount of the context",
                                  n->start_line);
                goto out;
            }
            mounts[i].src = owned[2 * i];
        }
        if (binds[i].dep == NULL)
            continue;
        _cleanup_close_ int rootfd = -1;
        _cleanup_free_ char *canon = NULL;
        strv_add(&one, kiln_xstrdup(owned[2 * i]));
        r = kiln_step_copy_stage_root(e, binds[i].dep, &one, &root, &views[i], err);
        strv_clear(&one);
        /* resolved inside the stage's tree: its links never reach the host */
        if (r == 0 && (kiln_pathres_open_root(root, &rootfd, err) < 0 ||
                       kiln_mounts_bind_source(rootfd, owned[2 * i], "the stage", &canon, err) < 0))
            r = -1;
        if (r < 0) {
            kiln_error_prefix(err, "Dockerfile:%d: RUN bind mount", n->start_line);
            goto out;
        }
        src = kiln_xasprintf("%s%s", root, strcmp(canon, "/") == 0 ? "" : canon);
        if (sec.insecure && kiln_mounts_insecure_copy(e, &src, &views[i], err) < 0) {
            free(src);
            kiln_error_prefix(err, "Dockerfile:%d: RUN bind mount", n->start_line);
            goto out;
        }
        free(owned[2 * i]);
        owned[2 * i] = src;
        mounts[i].src = src;
    }

    /* environment: image Env, then the build args (Env wins) */
    for (size_t i = 0; i < used.used.n; i++)
        strv_add(&env, kiln_xstrdup(used.used.v[i]));
    {
        json_t *envj = json_object_get(cfg, "Env");
        size_t i;
        json_t *v;
        json_array_foreach(envj, i, v)
        {
            const char *s = json_string_value(v);
            const char *eq = s ? strchr(s, '=') : NULL;
            if (eq) {
                _cleanup_free_ char *k = kiln_xstrndup(s, (size_t)(eq - s));
                kv_set(&env, k, eq + 1);
            }
        }
        if (kv_get(&env, "PATH") == NULL)
            kv_set(&env, "PATH", DEFAULT_PATH);
    }
    for (size_t i = 0; i < n->n_flags; i++)
        if (strncmp(n->flags[i], "--mount=", 8) == 0 && strstr(n->flags[i], "type=ssh") != NULL)
            for (size_t k = 0; k < n_mounts; k++)
                if (mounts[k].src && e->req->ssh_socket &&
                    strcmp(mounts[k].src, e->req->ssh_socket) == 0)
                    kv_set(&env, "SSH_AUTH_SOCK", mounts[k].dst);
    /* top-most first; a long chain's bottom flattened into one */
    if (kiln_flatten_lowers(e, st, (char ***)&lowers, &n_lowers, err) < 0) {
        kiln_error_prefix(err, "Dockerfile:%d: RUN", n->start_line);
        goto out;
    }
    if (take_dir(e, &st->spare_upper, "upper-", &upper, err) < 0 ||
        take_dir(e, &st->spare_work, "work-", &work, err) < 0)
        goto out;
    /* the upper dir is the root inode of the step: any user must traverse it */
    if (chmod(upper, 0755) < 0) {
        kiln_error_set(err, errno, "chmod %s", upper);
        goto out;
    }
    kiln_step_init(&step);
    step.lowers = lowers;
    /* two identical layers (e.g. RUN true twice) share one directory */
    step.n_lowers = kiln_lowerview_unique((char **)lowers, n_lowers);
    step.upper = upper;
    step.work = work;
    step.argv = (const char *const *)argv.v;
    step.env = (const char *const *)env.v;
    step.cwd = json_string_value(json_object_get(cfg, "WorkingDir"));
    if (step.cwd == NULL || step.cwd[0] == '\0')
        step.cwd = "/";
    if (kiln_user_resolve(e, st, json_string_value(json_object_get(cfg, "User")), &step.uid,
                          &step.gid, err) < 0) {
        kiln_df_error(n, err, "%s", err->msg);
        goto out;
    }
    step.mounts = mounts;
    step.n_mounts = n_mounts;
    if (net && strcmp(net, "none") == 0)
        step.network = KILN_NET_NONE;
    else if (net && strcmp(net, "host") == 0)
        step.network = KILN_NET_HOST;
    if (e->req->isolation && kiln_isolation_parse(e->req->isolation, &step.isolation) < 0) {
        kiln_error_set(err, 0, "unknown isolation %s", e->req->isolation);
        goto out;
    }
    step.allow_addresses = e->req->allow_addresses;
    step.n_allow_addresses = e->req->n_allow_addresses;
    if (sec.insecure) {
        /* BuildKit's insecure mode: still in the step's user namespace */
        step.caps = KILN_CAPS_ALL;
        step.seccomp = KILN_SECCOMP_UNCONFINED;
    }
    step.limits.memory = e->req->memory_limit;
    step.limits.pids = e->req->pids_limit;
    step.limits.cpu_secs = e->req->cpu_time_limit;
    step.limits.disk = e->req->disk_limit;
    step.ulimits = e->req->ulimits;
    step.n_ulimits = e->req->n_ulimits;
    step.extra_hosts = e->req->extra_hosts;
    step.n_extra_hosts = e->req->n_extra_hosts;
    step.shm_size = e->req->shm_size;
    step.log = run_log;
    step.log_opaque = st;
    step.netns_pool = e->netns;
    step.defer_reap = 1; /* the step's teardown overlaps its commit */
    for (size_t i = 0; i < st->tail_n; i++)
        free(st->tail[i]);
    st->tail_n = 0;
    if (kiln_sandbox_run(&step, &res, err) < 0) {
        kiln_error_prefix(err, "Dockerfile:%d: RUN", n->start_line);
        goto out;
    }
    if (res.disk_exceeded) {
        char lim[32];
        set_fail_code(e, KILN_BUILD_FAIL_DISK_LIMIT);
        kiln_size_format(e->req->disk_limit, lim, sizeof(lim));
        kiln_error_set(err, 0,
                       "Dockerfile:%d: process \"%s\" wrote more than the disk limit %s of a "
                       "step (its changes to the image's files)",
                       n->start_line, created_by, lim);
        goto out;
    }
    if (res.exit_code != 0) {
        kiln_buf_t b;
        /* a step that failed with the disk of its writes full failed for the machine's
         * lack of space, whatever its own message */
        if (fs_full(upper))
            set_fail_code(e, KILN_BUILD_FAIL_NO_SPACE);
        pthread_mutex_lock(&e->lock);
        if (e->res->fail_exit_status == 0)
            e->res->fail_exit_status = res.exit_code;
        pthread_mutex_unlock(&e->lock);
        kiln_buf_init(&b, 0);
        for (size_t i = 0; i < st->tail_n; i++)
            kiln_buf_appendf(&b, NULL, "\n  %s", st->tail[i]);
        kiln_error_set(err, 0,
                       "Dockerfile:%d: process \"%s\" did not complete successfully: exit code: "
                       "%d%s%s",
                       n->start_line, created_by, res.exit_code, b.data ? b.data : "",
                       limits_note(e->req, &res));
        kiln_buf_free(&b);
        goto out;
    }
    if (kiln_snapshot_commit_step(e, st, upper, 1, created_by, &key, err) < 0)
        goto out;
    /* the overlay is gone before its dirs are reused (a mount would find them in use) */
    kiln_sandbox_reap(res.reap);
    res.reap = NULL;
    if (access(upper, F_OK) != 0) /* renamed: the layer's lower dir now */
        upper = (free(upper), NULL);
    keep_dirs(e, st, &upper, &work);
    ret = 0;
out:
    kiln_sandbox_reap(res.reap);
    if (lowers) {
        for (size_t i = 0; i < n_lowers; i++)
            free((char *)lowers[i]);
        free(lowers);
    }
    if (upper)
        kiln_fs_rm_rf(upper, NULL);
    if (work)
        kiln_fs_rm_rf(work, NULL);
    for (size_t i = 0; i < 16; i++) {
        if (views[i])
            kiln_fs_rm_rf(views[i], NULL);
        free(views[i]);
        free(binds[i].as);
    }
    for (size_t i = 0; i < 32; i++)
        free(owned[i]);
    for (size_t i = 0; i < 16; i++)
        if (locks[i] >= 0)
            close(locks[i]);
    strv_clear(&argv);
    strv_clear(&env);
    strv_clear(&used.used);
    return ret;
}
