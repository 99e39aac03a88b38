/* kiln — per-step cgroups (v1 or v2) for memory and pids limits. */
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

#define CG_ROOT "/sys/fs/cgroup"

static unsigned step_counter;

/* Finds kiln's own cgroup path for a v1 controller (or "" for v2) from
 * /proc/self/cgroup. Returns a malloc'ed path or NULL. */
static char *own_cgroup(const char *controller)
{
    _cleanup_free_ char *data = NULL;
    char *save = NULL, *line;
    size_t len;

    if (kiln_fs_read_file("/proc/self/cgroup", 1 << 16, &data, &len, NULL) < 0)
        return NULL;
    for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        if (controller == NULL ? strcmp(c1 + 1, "") == 0 && strncmp(line, "0", 1) == 0
                               : strcmp(c1 + 1, controller) == 0)
            return kiln_xstrdup(c2 + 1);
    }
    return NULL;
}

/* The directory under which kiln makes step cgroups for a controller. */
static char *parent_dir(const char *controller)
{
    _cleanup_free_ char *own = own_cgroup(controller);
    struct stat st;
    char *dir;

    if (own == NULL)
        return NULL;
    if (controller == NULL)
        dir = kiln_xasprintf(CG_ROOT "%s", strcmp(own, "/") == 0 ? "" : own);
    else
        dir = kiln_xasprintf(CG_ROOT "/%s%s", controller, strcmp(own, "/") == 0 ? "" : own);
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) < 0) {
        free(dir);
        return NULL;
    }
    return dir;
}

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

static int v2_has(const char *dir, const char *ctrl)
{
    char path[4096];
    _cleanup_free_ char *data = NULL;
    size_t len;

    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
    if (kiln_fs_read_file(path, 4096, &data, &len, NULL) < 0)
        return 0;
    return strstr(data, ctrl) != NULL;
}

/* Makes dir/name; returns the malloc'ed path or NULL. */
static char *make_child(const char *parent, const char *name)
{
    char *p = kiln_xasprintf("%s/%s", parent, name);

    if (mkdir(p, 0755) < 0 && errno != EEXIST) {
        free(p);
        return NULL;
    }
    return p;
}

int kiln_cgroup_create(kiln_cgroup_t *cg, uint64_t memory, uint64_t pids, kiln_error_t *err)
{
    char name[64], val[32];
    struct stat st;

    memset(cg, 0, sizeof(*cg));
    if (memory == 0 && pids == 0)
        return 0;
    snprintf(name, sizeof(name), "kiln-%d-%u", (int)getpid(),
             __atomic_fetch_add(&step_counter, 1, __ATOMIC_RELAXED));
    if (stat(CG_ROOT "/cgroup.controllers", &st) == 0) {
        /* Pure v2. */
        _cleanup_free_ char *parent = parent_dir(NULL);
        if (parent == NULL)
            return 0;
        cg->v2 = 1;
        if ((memory && !v2_has(parent, "memory")) || (pids && !v2_has(parent, "pids")))
            return 0;
        if ((cg->dirs[0] = make_child(parent, name)) == NULL)
            return kiln_error_set(err, errno, "creating cgroup %s/%s", parent, name);
        if (memory) {
            snprintf(val, sizeof(val), "%llu", (unsigned long long)memory);
            int r = write_str(cg->dirs[0], "memory.max", val);
            if (r < 0)
                return kiln_error_set(err, -r, "setting memory.max in %s", cg->dirs[0]);
            /* Absent without swap accounting: nothing to limit then. */
            write_str(cg->dirs[0], "memory.swap.max", "0");
            cg->has_memory = 1;
        }
        if (pids) {
            snprintf(val, sizeof(val), "%llu", (unsigned long long)pids);
            if (write_str(cg->dirs[0], "pids.max", val) < 0)
                return kiln_error_set(err, errno, "setting pids.max in %s", cg->dirs[0]);
            cg->has_pids = 1;
        }
        return 0;
    }
    if (memory) {
        _cleanup_free_ char *parent = parent_dir("memory");
        if (parent && (cg->dirs[0] = make_child(parent, name)) != NULL) {
            int r;
            snprintf(val, sizeof(val), "%llu", (unsigned long long)memory);
            r = write_str(cg->dirs[0], "memory.limit_in_bytes", val);
            if (r < 0)
                return kiln_error_set(err, -r, "setting memory.limit_in_bytes in %s", cg->dirs[0]);
            /* Without swap accounting this file is absent: nothing to do. */
            write_str(cg->dirs[0], "memory.memsw.limit_in_bytes", val);
            write_str(cg->dirs[0], "memory.swappiness", "0");
            cg->has_memory = 1;
        }
    }
    if (pids) {
        _cleanup_free_ char *parent = parent_dir("pids");
        if (parent && (cg->dirs[1] = make_child(parent, name)) != NULL) {
            int r;
            snprintf(val, sizeof(val), "%llu", (unsigned long long)pids);
            r = write_str(cg->dirs[1], "pids.max", val);
            if (r < 0)
                return kiln_error_set(err, -r, "setting pids.max in %s", cg->dirs[1]);
            cg->has_pids = 1;
        }
    }
    return 0;
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
    if (!cg->has_memory || cg->dirs[0] == NULL)
        return 0;
    if (cg->v2)
        return read_key(cg->dirs[0], "memory.events", "oom_kill") > 0;
    return read_key(cg->dirs[0], "memory.oom_control", "oom_kill") > 0;
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

/* Kills and removes one cgroup dir, retrying while its processes die. */
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
    static const char *const ctrls[] = {"memory", "pids"};
    int n = 0;
    struct stat st;

    (void)err;
    if (stat(CG_ROOT "/cgroup.controllers", &st) == 0) {
        _cleanup_free_ char *p = parent_dir(NULL);
        return p ? sweep_parent(p) : 0;
    }
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *p = parent_dir(ctrls[i]);
        if (p)
            n += sweep_parent(p);
    }
    return n;
}
