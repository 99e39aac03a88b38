/* kiln — cache namespaces (see cachens.h): a namespace name checked, the paths of its caches
 * made 0700 one component at a time without following links. */
#include "utils/cachens.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_cachens_check(const char *name, kiln_error_t *err)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > KILN_CACHENS_NAME_MAX)
        return kiln_error_set(err, EINVAL, "cache namespace '%.80s': want 1 to %d characters",
                              name ? name : "", KILN_CACHENS_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return kiln_error_set(err, EINVAL,
                                  "cache namespace '%.80s': only letters, digits, '.', '_' and "
                                  "'-', starting with a letter or digit (one path component)",
                                  name);
    }
    return 0;
}

/* Opens (making it 0700 when missing) the directory name under the directory
 * fd at, never through a symlink, and checks it is kiln's own; shown is the
 * path for messages. Returns the fd or -1 with err set. */
static int own_dir(int at, const char *name, const char *shown, kiln_error_t *err)
{
    _cleanup_close_ int fd = -1;
    struct stat sb;

    if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
        return kiln_error_set(err, errno, "mkdir %s", shown);
    fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
            return kiln_error_set(err, 0, "%s is not a directory (a symbolic link or a file)",
                                  shown);
        return kiln_error_set(err, errno, "open %s", shown);
    }
    if (fstat(fd, &sb) < 0)
        return kiln_error_set(err, errno, "stat %s", shown);
    if (sb.st_uid != geteuid())
        return kiln_error_set(err, 0, "%s is owned by uid %u, not kiln's (uid %u)", shown,
                              (unsigned)sb.st_uid, (unsigned)geteuid());
    if ((sb.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0)
        return kiln_error_set(err, errno, "chmod %s", shown);
    return steal_fd(&fd);
}

int kiln_cachens_path(const char *root, const char *ns, kiln_cachens_kind_t kind, char **out,
                      kiln_error_t *err)
{
    static const char *const legacy[] = {"build/cache-mounts", "git", "build/statcache", NULL,
                                         NULL};
    static const char *const names[] = {"cache-mounts", "git", "statcache", "blobs", "lazy"};
    _cleanup_close_ int rootfd = -1, nsfd = -1, fd = -1;
    _cleanup_free_ char *shown = NULL;

    if ((unsigned)kind > KILN_CACHENS_LAZY)
        return kiln_error_set(err, EINVAL, "unknown cache kind %d", (int)kind);
    if (ns == NULL) {
        *out = legacy[kind] ? kiln_xasprintf("%s/%s", root, legacy[kind]) : NULL;
        return 0;
    }
    if (kiln_cachens_check(ns, err) < 0)
        return -1;
    /* the root is the operator's (a trusted path, made as the store makes it);
     * below it nothing is followed */
    if (kiln_fs_mkdir_p(root, 0700, err) < 0)
        return -1;
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return kiln_error_set(err, errno, "open the kiln root %s", root);
    shown = kiln_xasprintf("%s/ns", root);
    nsfd = own_dir(rootfd, "ns", shown, err);
    if (nsfd < 0)
        return -1;
    free(shown);
    shown = kiln_xasprintf("%s/ns/%s", root, ns);
    fd = own_dir(nsfd, ns, shown, err);
    if (fd < 0)
        return -1;
    if (kind != KILN_CACHENS_STATCACHE) {
        _cleanup_close_ int sub = -1;
        free(shown);
        shown = kiln_xasprintf("%s/ns/%s/%s", root, ns, names[kind]);
        sub = own_dir(fd, names[kind], shown, err);
        if (sub < 0)
            return -1;
    }
    *out = kiln_xasprintf("%s/ns/%s/%s", root, ns, names[kind]);
    return 0;
}

char *kiln_cachens_ref_prefix(const char *ns)
{
    return ns ? kiln_xasprintf("cache/ns/%s/", ns) : kiln_xstrdup("cache/");
}
