/* A small hostile tree for the path resolver's unit tests and fuzz target:
 * links absolute and relative, in parents, escaping with "..", loops, a link
 * to a file outside the root (whose content must never be read). */
#ifndef KILN_TESTS_PATHRES_TREE_H
#define KILN_TESTS_PATHRES_TREE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATHRES_OUTSIDE_CONTENT "HOST-SECRET-MARKER"

/* Makes <base>/root (the tree) and <base>/outside (a file with
 * PATHRES_OUTSIDE_CONTENT and a directory <base>/outdir). Returns 0. */
static inline int pathres_make_tree(const char *base)
{
    static const char *dirs[] = {"root", "root/dir", "root/dir/sub", "root/etc", "outdir"};
    static const struct {
        const char *path, *content;
    } files[] = {
        {"root/file", "in-file"},
        {"root/dir/sub/f", "in-sub-f"},
        {"root/etc/passwd", "in-passwd"},
        {"outside", PATHRES_OUTSIDE_CONTENT},
        {"outdir/secret", PATHRES_OUTSIDE_CONTENT},
    };
    static const struct {
        const char *path, *target;
    } links[] = {
        {"root/abs", "/dir"},
        {"root/rel", "dir/sub"},
        {"root/up", "../../../../dir"},
        {"root/hostabs", "/etc/passwd"},
        {"root/uppasswd", "../../../../../etc/passwd"},
        {"root/loop1", "loop2"},
        {"root/loop2", "loop1"},
        {"root/self", "self"},
        {"root/filelink", "file"},
        {"root/dir/sub/back", "../../file"},
        {"root/dir/sub/rootlink", "/"},
        {"root/dangling", "/nowhere/new"},
        {"root/procself", "/proc/self/root"},
        {"root/outside", "../outside"},
        {"root/outdir", "../outdir"},
    };
    char p[4096];
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", base, dirs[i]);
        if (mkdir(p, 0755) < 0)
            return -1;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        int fd;
        snprintf(p, sizeof(p), "%s/%s", base, files[i].path);
        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, files[i].content, strlen(files[i].content)) < 0)
            return -1;
        close(fd);
    }
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", base, links[i].path);
        if (symlink(links[i].target, p) < 0)
            return -1;
    }
    /* absolute links naming the real outside paths (host paths) */
    {
        char t[4096];
        snprintf(p, sizeof(p), "%s/root/hostout", base);
        snprintf(t, sizeof(t), "%s/outside", base);
        if (symlink(t, p) < 0)
            return -1;
        snprintf(p, sizeof(p), "%s/root/hostoutdir", base);
        snprintf(t, sizeof(t), "%s/outdir", base);
        if (symlink(t, p) < 0)
            return -1;
    }
    /* a chain of 45 links: past the 40-link limit */
    for (int i = 0; i < 45; i++) {
        char t[32];
        snprintf(p, sizeof(p), "%s/root/chain%d", base, i);
        snprintf(t, sizeof(t), i == 44 ? "file" : "chain%d", i + 1);
        if (symlink(t, p) < 0)
            return -1;
    }
    snprintf(p, sizeof(p), "%s/root/fifo", base);
    if (mkfifo(p, 0644) < 0)
        return -1;
    return 0;
}

#endif
