/* kiln — a step's mounts, resolved inside its root, and pivot_root. */
#include "sandbox/mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "utils/cleanup.h"

#define KILN_PATH_MAX 4096

enum { TARGET_DIR, TARGET_FILE };

/* The /etc files kiln gives a step, in the order of kiln_mounts_overlay's
 * etc_texts. */
#define ETC_FILES 3
static const char *const etc_files[ETC_FILES] = {"resolv.conf", "hosts", "hostname"};

static int openat2_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how;

    memset(&how, 0, sizeof(how));
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* A directory fd (not O_PATH: it can create) of the O_PATH directory fd. */
static int reopen_dir(int opath_fd)
{
    char pp[64];
    snprintf(pp, sizeof(pp), "/proc/self/fd/%d", opath_fd);
    return open(pp, O_DIRECTORY | O_CLOEXEC);
}

/* Opens (O_PATH) the mount target `path` inside rootfd, creating it and any
 * missing parent (directories; the last one a dir or an empty file). Links
 * on the way are followed inside the root, as BuildKit does: a dangling one
 * gets its target made there (at most 40 of them). No allocation: this runs
 * in the step's init. Returns the fd or -1 with err set. */
static int open_target(int rootfd, const char *path, int kind, kiln_error_t *err)
{
    char buf[KILN_PATH_MAX], tmp[KILN_PATH_MAX], target[KILN_PATH_MAX];
    size_t len = strlen(path);
    int links = 0;

    if (len == 0 || len >= sizeof(buf) || path[0] != '/')
        return kiln_error_set(err, EINVAL, "mount target '%s' must be an absolute path", path);
    memcpy(buf, path, len + 1);
    for (;;) {
        /* each pass makes the first missing component (or follows a link) */
        int fd = openat2_in_root(rootfd, buf, O_PATH);
        char *p, *start;
        int last;
        _cleanup_close_ int parent = -1, pfd = -1;
        if (fd >= 0)
            return fd;
        if (errno != ENOENT)
            return kiln_error_set(err, errno, "resolving mount target %s", path);
        for (p = buf + 1;; p++) {
            char saved;
            if (*p != '/' && *p != '\0')
                continue;
            saved = *p;
            *p = '\0';
            fd = openat2_in_root(rootfd, buf, O_PATH);
            *p = saved;
            if (fd < 0)
                break;
            close(fd);
            if (saved == '\0')
                break;
        }
        last = *p == '\0';
        for (start = p; start > buf && start[-1] != '/'; start--)
            ;
        start[-1] = '\0';
        parent = openat2_in_root(rootfd, buf[0] ? buf : "/", O_PATH | O_DIRECTORY);
        start[-1] = '/';
        if (parent < 0)
            return kiln_error_set(err, errno, "resolving parent of mount target %s", path);
        pfd = reopen_dir(parent);
        if (pfd < 0)
            return kiln_error_set(err, errno, "opening parent of %s", path);
        {
            char saved = *p;
            int made;
            *p = '\0';
            if (last && kind == TARGET_FILE) {
                _cleanup_close_ int f =
                    openat(pfd, start, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                made = f >= 0 || errno == EEXIST ? 0 : -1;
                if (f < 0 && errno == ELOOP)
                    made = 1; /* a dangling link */
            } else {
                made = mkdirat(pfd, start, 0755) == 0 ? 0 : errno == EEXIST ? 1 : -1;
            }
            if (made < 0) {
                *p = saved;
                return kiln_error_set(err, errno, "creating mount target %s", path);
            }
            if (made == 1) {
                /* it exists yet does not resolve: a dangling link, whose
                 * target is made inside the root on the next pass */
                ssize_t tl = readlinkat(pfd, start, target, sizeof(target) - 1);
                int n;
                if (tl < 0 || ++links > 40) {
                    *p = saved;
                    return kiln_error_set(err, tl < 0 ? errno : ELOOP, "resolving mount target %s",
                                          path);
                }
                target[tl] = '\0';
                start[-1] = '\0';
                *p = saved;
                n = target[0] == '/' ? snprintf(tmp, sizeof(tmp), "%s%s", target, p)
                                     : snprintf(tmp, sizeof(tmp), "%s/%s%s", buf, target, p);
                if (n < 0 || (size_t)n >= sizeof(tmp))
                    return kiln_error_set(err, ENAMETOOLONG, "mount target %s", path);
                memcpy(buf, tmp, (size_t)n + 1);
                continue;
            }
            *p = saved;
        }
    }
}

/* A bind mount ignores MS_RDONLY until remounted; the remount must name the
 * new mount, so the path is resolved again. */
static int remount_ro(int rootfd, const char *dst, unsigned long flags, kiln_error_t *err)
{
    _cleanup_close_ int fd = openat2_in_root(rootfd, dst, O_PATH);
    unsigned long keep = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC);
    char p[64];

    if (fd < 0)
        return kiln_error_set(err, errno, "resolving %s again", dst);
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL) < 0)
        return kiln_error_set(err, errno, "making %s read-only", dst);
    return 0;
}

/* mount(2) onto a target resolved inside the root. */
static int mount_in_root(int rootfd, const char *src, const char *dst, const char *fstype,
                         unsigned long flags, const char *data, int kind, kiln_error_t *err)
{
    _cleanup_close_ int fd = open_target(rootfd, dst, kind, err);
    char p[64];

    if (fd < 0)
        return -1;
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    if (mount(src, p, fstype, flags, data) < 0)
        return kiln_error_set(err, errno, "mounting %s on %s", src ? src : fstype, dst);
    if ((flags & MS_BIND) && (flags & MS_RDONLY))
        return remount_ro(rootfd, dst, flags, err);
    return 0;
}

static int setup_dev(int rootfd, uint64_t shm_size, kiln_error_t *err)
{
    char shm_opts[64];
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    static const char *const links[][2] = {
        {"ptmx", "pts/ptmx"},          {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}, {"core", "/proc/kcore"},
    };
    _cleanup_close_ int dev = -1;
    char p[64];

    if (mount_in_root(rootfd, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
                      "mode=0755,size=65536k", TARGET_DIR, err) < 0)
        return -1;
    dev = openat2_in_root(rootfd, "/dev", O_DIRECTORY);
    if (dev < 0)
        return kiln_error_set(err, errno, "opening the step's /dev");
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        _cleanup_close_ int f = openat(dev, nodes[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        char src[32];
        if (f < 0)
            return kiln_error_set(err, errno, "creating /dev/%s", nodes[i]);
        snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
        snprintf(p, sizeof(p), "/proc/self/fd/%d", f);
        if (mount(src, p, NULL, MS_BIND, NULL) < 0)
            return kiln_error_set(err, errno, "binding %s", src);
    }
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        if (i == 5)
            continue; /* no /dev/core */
        if (symlinkat(links[i][1], dev, links[i][0]) < 0)
            return kiln_error_set(err, errno, "creating /dev/%s", links[i][0]);
    }
    if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0)
        return kiln_error_set(err, errno, "creating /dev/pts, /dev/shm");
    if (mount_in_root(rootfd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620", TARGET_DIR, err) < 0)
        return -1;
    /* docker's 64 MiB unless --shm-size says otherwise */
    snprintf(shm_opts, sizeof(shm_opts), "mode=1777,size=%llu",
             (unsigned long long)(shm_size ? shm_size : 64ull << 20));
    if (mount_in_root(rootfd, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      shm_opts, TARGET_DIR, err) < 0)
        return -1;
    return 0;
}

/* Hides the parts of /proc a step has no business writing or reading. */
static int mask_proc(int rootfd, kiln_error_t *err)
{
    static const char *const ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
                                     "/proc/fs"};
    static const char *const masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list",
                                         "/proc/kallsyms"};

    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        _cleanup_close_ int fd = openat2_in_root(rootfd, ro[i], O_PATH);
        char p[64];
        if (fd < 0)
            continue;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
            return kiln_error_set(err, errno, "binding %s", ro[i]);
        if (remount_ro(rootfd, ro[i], MS_NOSUID | MS_NODEV | MS_NOEXEC, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
        _cleanup_close_ int fd = openat2_in_root(rootfd, masked[i], O_PATH);
        char p[64];
        if (fd < 0)
            continue;
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0)
            return kiln_error_set(err, errno, "masking %s", masked[i]);
    }
    return 0;
}

/* Attaches a detached tree from kiln (fd) on dst inside the root. */
static int attach_in_root(int rootfd, int fd, const char *dst, int kind, kiln_error_t *err)
{
    _cleanup_close_ int t = open_target(rootfd, dst, kind, err);

    if (t < 0)
        return -1;
    if (move_mount(fd, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return kiln_error_set(err, errno, "attaching the mount on %s", dst);
    return 0;
}

/* tmpfs mounts made here; bind, cache and secret mounts arrive as detached
 * trees opened by kiln (fds, in mount order, see kiln_idmap_mounts). */
static int setup_user_mounts(int rootfd, const kiln_step_t *step, const int *fds, size_t n_fds,
                             kiln_error_t *err)
{
    size_t k = 0;

    for (size_t i = 0; i < step->n_mounts; i++) {
        const kiln_mount_t *m = &step->mounts[i];
        struct stat st;
        char data[64];

        if (m->type == KILN_MOUNT_TMPFS) {
            if (m->size)
                snprintf(data, sizeof(data), "mode=0755,size=%llu", (unsigned long long)m->size);
            else
                snprintf(data, sizeof(data), "mode=0755");
            if (mount_in_root(rootfd, "tmpfs", m->dst, "tmpfs", MS_NOSUID | MS_NODEV, data,
                              TARGET_DIR, err) < 0)
                return -1;
            continue;
        }
        if (k >= n_fds)
            return kiln_error_set(err, EPROTO, "no tree received for mount %s", m->dst);
        if (fstat(fds[k], &st) < 0)
            return kiln_error_set(err, errno, "mount source of %s", m->dst);
        if (attach_in_root(rootfd, fds[k], m->dst, S_ISDIR(st.st_mode) ? TARGET_DIR : TARGET_FILE,
                           err) < 0)
            return -1;
        k++;
    }
    return 0;
}

int kiln_mounts_setup(const kiln_step_t *step, const char *root, const char *etc_dir,
                      const int *mount_fds, size_t n_mount_fds, kiln_error_t *err)
{
    _cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int etcfd = -1;

    if (rootfd < 0)
        return kiln_error_set(err, errno, "opening the step root %s", root);
    if (mount_in_root(rootfd, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                      TARGET_DIR, err) < 0)
        return -1;
    if (mask_proc(rootfd, err) < 0 || setup_dev(rootfd, step->shm_size, err) < 0)
        return -1;
    /* /sys read-only where the kernel lets this namespace mount it, else
     * absent (an empty directory). */
    {
        kiln_error_t ignored = {0};
        mount_in_root(rootfd, "sysfs", "/sys", "sysfs",
                      MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, TARGET_DIR, &ignored);
    }
    etcfd = openat2_in_root(rootfd, "/etc", O_PATH | O_DIRECTORY);
    if (etcfd >= 0 && etc_dir != NULL) {
        for (size_t i = 0; i < ETC_FILES; i++) {
            char src[KILN_PATH_MAX], dst[64];
            snprintf(src, sizeof(src), "%s/%s", etc_dir, etc_files[i]);
            snprintf(dst, sizeof(dst), "/etc/%s", etc_files[i]);
            struct stat lst;
            if (access(src, F_OK) < 0)
                continue;
            /* A dangling symlink (e.g. to systemd-resolved's stub file) or a
             * non-file there: leave the image's own file alone. */
            if (fstatat(etcfd, etc_files[i], &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                !S_ISREG(lst.st_mode)) {
                _cleanup_close_ int t = openat2_in_root(rootfd, dst, O_PATH);
                struct stat tst;
                if (t < 0 || fstat(t, &tst) < 0 || !S_ISREG(tst.st_mode))
                    continue;
            }
            if (mount_in_root(rootfd, src, dst, NULL, MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                              NULL, TARGET_FILE, err) < 0)
                return -1;
        }
    }
    return setup_user_mounts(rootfd, step, mount_fds, n_mount_fds, err);
}

/* Writes the step's /etc files into etc/ of the current directory. No
 * allocation: this runs in the step's init (see init.c). */
static int write_etc(const char *const *texts, kiln_error_t *err)
{
    if (mkdir("etc", 0755) < 0)
        return kiln_error_set(err, errno, "creating the step's etc dir");
    for (size_t i = 0; i < ETC_FILES; i++) {
        char p[64];
        size_t len;
        int fd;
        if (texts[i] == NULL)
            continue;
        snprintf(p, sizeof(p), "etc/%s", etc_files[i]);
        len = strlen(texts[i]);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return kiln_error_set(err, errno, "creating the step's /%s", p);
        if (write(fd, texts[i], len) != (ssize_t)len) {
            int e = errno;
            close(fd);
            return kiln_error_set(err, e, "writing the step's /%s", p);
        }
        close(fd);
    }
    return 0;
}

/* The overlay's bottom lower, in the tmpfs of the step: the mount points kiln_mounts_setup
 * needs (/proc, /dev, /sys and the /etc files), empty, where no layer has them. The image's
 * own entries hide them; without it each step made them in its upper dir and removed them
 * after (clean_one), each a file made and deleted on the build's disk. No allocation. */
static int write_stub(kiln_error_t *err)
{
    static const char *const dirs[] = {"stub", "stub/etc", "stub/proc", "stub/dev", "stub/sys"};

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (mkdir(dirs[i], 0755) < 0)
            return kiln_error_set(err, errno, "creating the step's /%s", dirs[i]);
    for (size_t i = 0; i < ETC_FILES; i++) {
        char p[64];
        int fd;
        snprintf(p, sizeof(p), "stub/etc/%s", etc_files[i]);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return kiln_error_set(err, errno, "creating the step's /%s", p);
        close(fd);
    }
    return 0;
}

int kiln_mounts_overlay(const kiln_step_t *step, const char *rundir, const char *const *etc_texts,
                        const int *fds, int userxattr, kiln_error_t *err)
{
    char opts[4096], path[KILN_PATH_MAX];
    const char *upper = "upper", *work = "work";
    size_t len = 0;
    int n;

    /* A private tmpfs for the mount points (see kiln_sandbox_plan_t.rundir)
     * and the /etc files. */
    if (mount("tmpfs", rundir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0711,size=512k") <
        0)
        return kiln_error_set(err, errno, "mounting a tmpfs on %s", rundir);
    if (chdir(rundir) < 0)
        return kiln_error_set(err, errno, "chdir %s", rundir);
    if (etc_texts != NULL && write_etc(etc_texts, err) < 0)
        return -1;
    for (size_t i = 0; i <= (step->rw_root ? 0 : step->n_lowers); i++) {
        char mp[32];
        if (step->rw_root || i == step->n_lowers)
            snprintf(mp, sizeof(mp), "%s", step->rw_root ? "root" : "rw");
        else
            snprintf(mp, sizeof(mp), "l%zu", i);
        if (mkdir(mp, 0755) < 0)
            return kiln_error_set(err, errno, "creating %s/%s", rundir, mp);
    }
    if (!step->rw_root && mkdir("root", 0755) < 0)
        return kiln_error_set(err, errno, "creating %s/root", rundir);
    if (step->rw_root != NULL) {
        if (move_mount(fds[0], "", AT_FDCWD, "root", MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return kiln_error_set(err, errno, "attaching %s at %s/root", step->rw_root, rundir);
        return 0;
    }
    for (size_t i = 0; i < step->n_lowers + (step->upper ? 1 : 0); i++) {
        if (i < step->n_lowers)
            snprintf(path, sizeof(path), "l%zu", i);
        else
            snprintf(path, sizeof(path), "rw");
        if (move_mount(fds[i], "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            return kiln_error_set(err, errno, "attaching %s at %s/%s",
                                  i < step->n_lowers ? step->lowers[i] : step->upper, rundir, path);
    }
    if (step->upper != NULL) {
        upper = strrchr(step->upper, '/') + 1;
        work = strrchr(step->work, '/') + 1;
    } else {
        /* Changes nobody keeps: in memory (charged to the step's memory
         * cgroup), gone with the mount namespace. */
        if (mount("tmpfs", "rw", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
            return kiln_error_set(err, errno, "mounting a tmpfs for the step's changes");
        if (mkdir("rw/upper", 0755) < 0 || mkdir("rw/work", 0700) < 0)
            return kiln_error_set(err, errno, "creating the step's upper dir");
    }
    if (write_stub(err) < 0)
        return -1;
    n = snprintf(opts, sizeof(opts), "lowerdir=");
    len = (size_t)n;
    for (size_t i = 0; i < step->n_lowers && len < sizeof(opts); i++) {
        n = snprintf(opts + len, sizeof(opts) - len, "l%zu:", i);
        len += (size_t)n;
    }
    if (len < sizeof(opts))
        len += (size_t)snprintf(opts + len, sizeof(opts) - len, "stub");
    if (len < sizeof(opts))
        len += (size_t)snprintf(opts + len, sizeof(opts) - len, ",upperdir=rw/%s,workdir=rw/%s%s",
                                upper, work, userxattr ? ",userxattr,volatile" : ",volatile");
    if (len >= sizeof(opts) - 64)
        return kiln_error_set(err, E2BIG, "overlay options too long (%zu lowers)", step->n_lowers);
    /* Renamed lower directories must be copied (EXDEV), not redirected, and
     * files copied up whole: a layer can express neither a redirect nor a
     * metadata-only copy. */
    if (!userxattr) /* userxattr implies all three */
        snprintf(opts + len, sizeof(opts) - len, ",redirect_dir=off,metacopy=off,index=off");
    if (mount("overlay", "root", "overlay", MS_NODEV, opts) < 0)
        return kiln_error_set(err, errno, "mounting the overlay root (lower %s, upper %s)",
                              step->lowers[0], step->upper ? step->upper : "in memory");
    return 0;
}

int kiln_mounts_enter(const char *root, int use_chroot, kiln_error_t *err)
{
    if (chdir(root) < 0)
        return kiln_error_set(err, errno, "chdir %s", root);
    if (use_chroot) {
        if (chroot(".") < 0)
            return kiln_error_set(err, errno, "chroot %s", root);
    } else {
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            return kiln_error_set(err, errno, "pivot_root %s", root);
        if (umount2(".", MNT_DETACH) < 0)
            return kiln_error_set(err, errno, "detaching the old root");
    }
    if (chdir("/") < 0)
        return kiln_error_set(err, errno, "chdir /");
    return 0;
}

/* The top-most lower's entry for `rel`: 1 and *st filled when found. */
static int in_lowers(const kiln_step_t *step, const char *rel, struct stat *st)
{
    for (size_t i = 0; i < step->n_lowers; i++) {
        char p[KILN_PATH_MAX];
        snprintf(p, sizeof(p), "%s%s", step->lowers[i], rel);
        if (lstat(p, st) == 0)
            return 1;
    }
    return 0;
}

/* An upper dir that only overlay's copy-up put there (for a mount point
 * kiln made below it): empty, not opaque, same mode and owner as below. */
static int plain_copy_up(const char *upper_path, const struct stat *up, const struct stat *low)
{
    char v[8];
    DIR *d;
    struct dirent *e;
    int empty = 1;

    if (!S_ISDIR(up->st_mode) || !S_ISDIR(low->st_mode) || up->st_mode != low->st_mode ||
        up->st_uid != low->st_uid || up->st_gid != low->st_gid)
        return 0;
    if (lgetxattr(upper_path, "user.overlay.opaque", v, sizeof(v)) >= 0 ||
        lgetxattr(upper_path, "trusted.overlay.opaque", v, sizeof(v)) >= 0)
        return 0;
    d = opendir(upper_path);
    if (d == NULL)
        return 0;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Removes upper/rel and its parents while they are empty mount points kiln
 * made, or directories copied up only to hold one. */
static void clean_one(const kiln_step_t *step, const char *path)
{
    char rel[KILN_PATH_MAX];

    snprintf(rel, sizeof(rel), "%s", path);
    while (rel[0] == '/' && rel[1] != '\0') {
        char p[KILN_PATH_MAX];
        struct stat st, low;
        char *slash;
        snprintf(p, sizeof(p), "%s%s", step->upper, rel);
        if (lstat(p, &st) < 0)
            return;
        if (in_lowers(step, rel, &low)) {
            if (!plain_copy_up(p, &st, &low) || rmdir(p) < 0)
                return;
        } else if (S_ISDIR(st.st_mode)) {
            if (rmdir(p) < 0)
                return;
        } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
            if (unlink(p) < 0)
                return;
        } else {
            return;
        }
        slash = strrchr(rel, '/');
        *slash = '\0';
        if (step->rw_root != NULL) {
            /* A copy tree has no copy-up to undo, but the parent's mtime
             * changed: put the original's back for the walking differ. */
            const char *parent = slash == rel ? "/" : rel;
            char pp[KILN_PATH_MAX];
            if (in_lowers(step, parent, &low)) {
                struct timespec ts[2] = {low.st_atim, low.st_mtim};
                snprintf(pp, sizeof(pp), "%s%s", step->upper, slash == rel ? "" : rel);
                utimensat(AT_FDCWD, pp, ts, AT_SYMLINK_NOFOLLOW);
            }
        }
        if (slash == rel)
            return;
    }
}

void kiln_mounts_clean_upper(const kiln_step_t *step)
{
    kiln_step_t rw;

    if (step->rw_root != NULL) {
        /* The tree itself plays the upper; lowers[0] is its original. */
        rw = *step;
        rw.upper = step->rw_root;
        step = &rw;
    }
    static const char *const fixed[] = {"/proc",      "/dev",         "/sys", "/etc/resolv.conf",
                                        "/etc/hosts", "/etc/hostname"};

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        clean_one(step, fixed[i]);
    for (size_t i = 0; i < step->n_mounts; i++)
        clean_one(step, step->mounts[i].dst);
}
