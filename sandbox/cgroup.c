/* kiln — per-step cgroups (v2 and/or v1) for memory and pids limits. */
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

/* The leaf kiln moves itself into on pure v2 (see cgroup.h). */
#define SELF_LEAF "kiln-self"

static unsigned step_counter;

/* True when `tok` is one of the items of `list` separated by `sep`. */
static int has_token(const char *list, const char *tok, char sep)
{
    size_t n = strlen(tok);

    for (const char *p = list; p && *p; p = strchr(p, sep) ? strchr(p, sep) + 1 : NULL) {
        if (strncmp(p, tok, n) == 0 && (p[n] == sep || p[n] == '\0' || p[n] == '\n'))
            return 1;
    }
    return 0;
}

/* Finds the index-th mount of a cgroup hierarchy in /proc/self/mountinfo:
 * cgroup2 (controller NULL) or the v1 hierarchy holding `controller`. Fills
 * *mnt (mount point) and *root (the cgroup mounted there). Returns 0, or -1
 * when there is no such mount. */
/* /proc/self/cgroup and /proc/self/mountinfo, each read once per lookup (a
 * sweep asks for three hierarchies: it read them six times before each run). */
typedef struct proc_tables {
    char *cgroup, *mountinfo;
} proc_tables_t;

/* A private copy of the file at path, read into *slot the first time. */
static char *table_copy(char **slot, const char *path, size_t cap)
{
    size_t len;

    if (*slot == NULL && kiln_fs_read_file(path, cap, slot, &len, NULL) < 0)
        return NULL;
    return kiln_xstrdup(*slot);
}

static void proc_tables_free(proc_tables_t *t)
{
    free(t->cgroup);
    free(t->mountinfo);
}

static int find_mount(proc_tables_t *tabs, const char *controller, int index, char **mnt,
                      char **root)
{
    _cleanup_free_ char *data = table_copy(&tabs->mountinfo, "/proc/self/mountinfo", 1 << 20);
    char *save = NULL, *line;

    if (data == NULL)
        return -1;
    for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[5], *s2 = NULL, *dash = strstr(line, " - "), *fstype, *opts;
        int i = 0;
        if (dash == NULL || strchr(line, '\\') != NULL)
            continue; /* escaped names: not a cgroup mount kiln uses */
        *dash = '\0';
        for (char *t = strtok_r(line, " ", &s2); t && i < 5; t = strtok_r(NULL, " ", &s2))
            f[i++] = t;
        fstype = strtok_r(dash + 3, " ", &s2);
        if (i < 5 || fstype == NULL || strtok_r(NULL, " ", &s2) == NULL)
            continue;
        opts = strtok_r(NULL, " ", &s2);
        if (controller == NULL ? strcmp(fstype, "cgroup2") != 0
                               : strcmp(fstype, "cgroup") != 0 || opts == NULL ||
                                     !has_token(opts, controller, ','))
            continue;
        if (index-- > 0)
            continue;
        *mnt = kiln_xstrdup(f[4]);
        *root = kiln_xstrdup(f[3]);
        return 0;
    }
    return -1;
}

/* kiln's own cgroup path in the v2 hierarchy (controller NULL) or the v1
 * hierarchy of `controller`, from /proc/self/cgroup. Malloc'ed, or NULL. */
static char *own_path(proc_tables_t *t, const char *controller)
{
    _cleanup_free_ char *data = table_copy(&t->cgroup, "/proc/self/cgroup", 1 << 16);
    char *save = NULL, *line;

    if (data == NULL)
        return NULL;
    for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        if (controller == NULL ? strcmp(line, "0:") == 0 && c1[1] == '\0'
                               : has_token(c1 + 1, controller, ','))
            return kiln_xstrdup(c2 + 1);
    }
    return NULL;
}

/* The writable directory of kiln's own cgroup in a hierarchy (see
 * own_path); on v2, the parent of SELF_LEAF when kiln moved itself there.
 * A mount hidden under another one (listed, but not what the path shows)
 * is skipped for the next. Malloc'ed, or NULL. */
static char *own_dir_in(proc_tables_t *t, const char *controller)
{
    _cleanup_free_ char *own = own_path(t, controller);

    for (int i = 0; own != NULL && i < 16; i++) {
        _cleanup_free_ char *mnt = NULL, *root = NULL;
        const char *rel;
        size_t rlen;
        struct statfs sf;
        char *dir, *slash;

        if (find_mount(t, controller, i, &mnt, &root) < 0)
            return NULL;
        rlen = strlen(root);
        if (strcmp(root, "/") == 0)
            rel = own;
        else if (strncmp(own, root, rlen) == 0 && (own[rlen] == '/' || own[rlen] == '\0'))
            rel = own + rlen; /* the hierarchy is mounted from below its root */
        else
            continue; /* kiln's cgroup is not visible through that mount */
        if (statfs(mnt, &sf) < 0 ||
            sf.f_type != (controller ? CGROUP_SUPER_MAGIC : CGROUP2_SUPER_MAGIC))
            continue;
        dir = kiln_xasprintf("%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
        slash = strrchr(dir, '/');
        if (controller == NULL && slash && strcmp(slash + 1, SELF_LEAF) == 0 &&
            (size_t)(slash - dir) >= strlen(mnt))
            *slash = '\0';
        if (access(dir, W_OK) == 0)
            return dir;
        free(dir);
    }
    return NULL;
}

/* own_dir_in with the tables read for this one lookup. */
static char *own_dir(const char *controller)
{
    proc_tables_t t = {0};
    char *dir = own_dir_in(&t, controller);

    proc_tables_free(&t);
    return dir;
}

/* Writes val to dir/file. Returns 0 or -errno. */
static int write_str(const char *dir, const char *file, const char *val)
{
    char path[4096];
    _cleanup_close_ int fd = -1;
    ssize_t n = (ssize_t)strlen(val);

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, val, (size_t)n) != n)
        return -errno;
    return 0;
}

/* True when dir/file (a space-separated list) names ctrl. */
static int lists(const char *dir, const char *file, const char *ctrl)
{
    char path[4096];
    _cleanup_free_ char *data = NULL;
    size_t len;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (kiln_fs_read_file(path, 4096, &data, &len, NULL) < 0)
        return 0;
    return has_token(data, ctrl, ' ');
}

/* Makes dir/name; returns the malloc'ed path or NULL (errno set). */
static char *make_child(const char *parent, const char *name)
{
    char *p = kiln_xasprintf("%s/%s", parent, name);

    if (mkdir(p, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        free(p);
        errno = e;
        return NULL;
    }
    return p;
}

/* Makes the v2 controller ctrl available to the children of parent:
 * already in its cgroup.subtree_control, or enabled now. When parent holds
 * processes (EBUSY: the "no internal processes" rule), kiln moves itself
 * into parent/SELF_LEAF and tries again. Returns 0, or -1 with why filled. */
static int v2_enable(const char *parent, const char *ctrl, char *why, size_t size)
{
    char val[32];
    int r;

    if (lists(parent, "cgroup.subtree_control", ctrl))
        return 0;
    if (!lists(parent, "cgroup.controllers", ctrl)) {
        snprintf(why, size, "v2: %s is not available in %s", ctrl, parent);
        return -1;
    }
    snprintf(val, sizeof(val), "+%s", ctrl);
    r = write_str(parent, "cgroup.subtree_control", val);
    if (r == -EBUSY) {
        _cleanup_free_ char *leaf = make_child(parent, SELF_LEAF);
        if (leaf != NULL && write_str(leaf, "cgroup.procs", "0") == 0)
            r = write_str(parent, "cgroup.subtree_control", val);
        if (r == -EBUSY) {
            snprintf(why, size, "v2: cannot enable %s in %s: other processes live there", ctrl,
                     parent);
            return -1;
        }
    }
    if (r < 0) {
        snprintf(why, size, "v2: cannot enable %s in %s: %s", ctrl, parent, strerror(-r));
        return -1;
    }
    return 0;
}

/* Sets one limit file; on failure fills err naming the file and dir. */
static int set_limit(const char *dir, const char *file, uint64_t v, kiln_error_t *err)
{
    char val[32];
    int r;

    snprintf(val, sizeof(val), "%llu", (unsigned long long)v);
    r = write_str(dir, file, val);
    if (r < 0)
        return kiln_error_set(err, -r, "setting %s in %s", file, dir);
    return 0;
}

/* The step's cgroup in one v1 hierarchy: dir made and its limit set, or
 * nothing (why filled) when that hierarchy is absent or not writable. */
static int v1_child(const char *ctrl, const char *name, char **dir, char *why, size_t size)
{
    _cleanup_free_ char *parent = own_dir(ctrl);

    if (parent == NULL) {
        snprintf(why + strlen(why), size - strlen(why), "%sv1: no writable %s hierarchy",
                 why[0] ? "; " : "", ctrl);
        return -1;
    }
    *dir = make_child(parent, name);
    if (*dir == NULL) {
        snprintf(why + strlen(why), size - strlen(why), "%sv1: cannot create %s/%s: %s",
                 why[0] ? "; " : "", parent, name, strerror(errno));
        return -1;
    }
    return 0;
}

int kiln_cgroup_create(kiln_cgroup_t *cg, uint64_t memory, uint64_t pids, kiln_error_t *err)
{
    char name[64], why_mem[256] = "", why_pids[256] = "";
    _cleanup_free_ char *v2 = NULL;
    int v2_mem = 0, v2_pids = 0;

    memset(cg, 0, sizeof(*cg));
    if (memory == 0 && pids == 0)
        return 0;
    snprintf(name, sizeof(name), "kiln-%d-%u", (int)getpid(),
             __atomic_fetch_add(&step_counter, 1, __ATOMIC_RELAXED));
    v2 = own_dir(NULL);
    if (v2 != NULL) {
        v2_mem = memory && v2_enable(v2, "memory", why_mem, sizeof(why_mem)) == 0;
        v2_pids = pids && v2_enable(v2, "pids", why_pids, sizeof(why_pids)) == 0;
        /* Made even without controllers: the step's processes are then
         * found and killed through it (cgroup.kill). */
        cg->dirs[2] = make_child(v2, name);
        if (cg->dirs[2] == NULL)
            v2_mem = v2_pids = 0;
        cg->v2 = cg->dirs[2] != NULL;
    } else {
        snprintf(why_mem, sizeof(why_mem), "v2: no writable cgroup2 hierarchy");
        snprintf(why_pids, sizeof(why_pids), "v2: no writable cgroup2 hierarchy");
    }
    if (v2_mem) {
        if (set_limit(cg->dirs[2], "memory.max", memory, err) < 0)
            return -1;
        /* Absent without swap accounting: nothing to limit then. */
        write_str(cg->dirs[2], "memory.swap.max", "0");
        cg->memory_by = KILN_CGROUP_BY_V2;
    } else if (memory && v1_child("memory", name, &cg->dirs[0], why_mem, sizeof(why_mem)) == 0) {
        if (set_limit(cg->dirs[0], "memory.limit_in_bytes", memory, err) < 0)
            return -1;
        /* Without swap accounting this file is absent: nothing to do. */
        set_limit(cg->dirs[0], "memory.memsw.limit_in_bytes", memory, NULL);
        write_str(cg->dirs[0], "memory.swappiness", "0");
        cg->memory_by = KILN_CGROUP_BY_V1;
    }
    if (v2_pids) {
        if (set_limit(cg->dirs[2], "pids.max", pids, err) < 0)
            return -1;
        cg->pids_by = KILN_CGROUP_BY_V2;
    } else if (pids && v1_child("pids", name, &cg->dirs[1], why_pids, sizeof(why_pids)) == 0) {
        if (set_limit(cg->dirs[1], "pids.max", pids, err) < 0)
            return -1;
        cg->pids_by = KILN_CGROUP_BY_V1;
    }
    cg->has_memory = cg->memory_by != KILN_CGROUP_BY_NONE;
    cg->has_pids = cg->pids_by != KILN_CGROUP_BY_NONE;
    if (memory && !cg->has_memory)
        snprintf(cg->why_not, sizeof(cg->why_not), "memory: %s", why_mem);
    if (pids && !cg->has_pids)
        snprintf(cg->why_not + strlen(cg->why_not), sizeof(cg->why_not) - strlen(cg->why_not),
                 "%spids: %s", cg->why_not[0] ? "; " : "", why_pids);
    return 0;
}

const char *kiln_cgroup_mechanism(const kiln_cgroup_t *cg, int pids)
{
    kiln_cgroup_by_t by = pids ? cg->pids_by : cg->memory_by;

    if (by == KILN_CGROUP_BY_V2)
        return pids ? "cgroup v2 pids.max" : "cgroup v2 memory.max";
    if (by == KILN_CGROUP_BY_V1)
        return pids ? "cgroup v1 pids.max" : "cgroup v1 memory.limit_in_bytes";
    return NULL;
}

int kiln_cgroup_add(kiln_cgroup_t *cg, pid_t pid, kiln_error_t *err)
{
    char val[32];

    snprintf(val, sizeof(val), "%d", (int)pid);
    for (int i = 0; i < 3; i++) {
        int r;
        if (cg->dirs[i] == NULL)
            continue;
        r = write_str(cg->dirs[i], "cgroup.procs", val);
        if (r < 0)
            return kiln_error_set(err, -r, "adding pid %d to cgroup %s", (int)pid, cg->dirs[i]);
    }
    return 0;
}

/* Reads "key N" from a flat-keyed cgroup file; returns N or 0. */
static unsigned long long read_key(const char *dir, const char *file, const char *key)
{
    char path[4096];
    _cleanup_free_ char *data = NULL;
    size_t len, klen = strlen(key);

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (kiln_fs_read_file(path, 1 << 16, &data, &len, NULL) < 0)
        return 0;
    for (char *p = data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
            return strtoull(p + klen + 1, NULL, 10);
    }
    return 0;
}

int kiln_cgroup_oom_killed(const kiln_cgroup_t *cg)
{
    if (cg->memory_by == KILN_CGROUP_BY_V2)
        return read_key(cg->dirs[2], "memory.events", "oom_kill") > 0;
    if (cg->memory_by == KILN_CGROUP_BY_V1)
        return read_key(cg->dirs[0], "memory.oom_control", "oom_kill") > 0;
    return 0;
}

/* Kills every process listed in dir/cgroup.procs; returns how many were left. */
static int kill_procs(const char *dir)
{
    char path[4096];
    _cleanup_free_ char *data = NULL;
    size_t len;
    int n = 0;

    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    if (kiln_fs_read_file(path, 1 << 20, &data, &len, NULL) < 0)
        return 0;
    for (char *p = data; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0) {
            kill((pid_t)pid, SIGKILL);
            n++;
        }
        p = *end ? end + 1 : end;
    }
    return n;
}

/* Kills and removes one cgroup dir, retrying while its processes die
 * (rmdir fails with EBUSY until the last one has exited). cgroup.kill (v2,
 * Linux 5.14) kills them all at once, including ones forked meanwhile. */
static void remove_dir(const char *dir)
{
    if (write_str(dir, "cgroup.kill", "1") < 0)
        kill_procs(dir);
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        kill_procs(dir);
        usleep(5000);
    }
}

void kiln_cgroup_destroy(kiln_cgroup_t *cg)
{
    for (int i = 0; i < 3; i++) {
        if (cg->dirs[i] == NULL)
            continue;
        remove_dir(cg->dirs[i]);
        free(cg->dirs[i]);
        cg->dirs[i] = NULL;
    }
}

/* Sweeps kiln-* cgroups under one parent dir. */
static int sweep_parent(const char *parent)
{
    _cleanup_closedir_ DIR *d = opendir(parent);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        long pid;
        char *end, path[4096];
        if (strncmp(e->d_name, "kiln-", 5) != 0)
            continue;
        pid = strtol(e->d_name + 5, &end, 10);
        if (end == e->d_name + 5 || *end != '-')
            continue;
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
            continue; /* that kiln is still running */
        snprintf(path, sizeof(path), "%s/%s", parent, e->d_name);
        remove_dir(path);
        n++;
    }
    return n;
}

int kiln_cgroup_sweep(kiln_error_t *err)
{
    static const char *const ctrls[] = {NULL, "memory", "pids"};
    int n = 0;

    proc_tables_t t = {0};

    (void)err;
    for (size_t i = 0; i < 3; i++) {
        _cleanup_free_ char *p = own_dir_in(&t, ctrls[i]);
        if (p)
            n += sweep_parent(p);
    }
    proc_tables_free(&t);
    return n;
}
