/* Test helpers: hand-made layer tars and tree listings (test_layer, test_unpack_merge). */
#ifndef KILN_TESTS_LAYER_TAR_H
#define KILN_TESTS_LAYER_TAR_H

#include <stddef.h>

#include <archive_entry.h>

struct tentry {
    const char *name;
    unsigned type;
    const char *link; /* symlink target, or hardlink target when hardlink is set */
    const char *data;
    int hardlink;
};

/* Entries of a tentry array. */
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define DIR_(p)                                                                                    \
    {                                                                                              \
        p, AE_IFDIR, NULL, NULL, 0                                                                 \
    }
#define REG(p, d)                                                                                  \
    {                                                                                              \
        p, AE_IFREG, NULL, d, 0                                                                    \
    }
#define SYM(p, t)                                                                                  \
    {                                                                                              \
        p, AE_IFLNK, t, NULL, 0                                                                    \
    }

/* Writes a plain tar with libarchive (names taken verbatim, even hostile ones). */
void make_tar(const char *path, const struct tentry *e, size_t n);

/* A listing of the tree under dir/rel (names sorted; type, permission bits, content or link
 * target), appended to *out. Links are not followed. */
void dump_tree(const char *dir, const char *rel, char **out);

#endif
