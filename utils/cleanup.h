/* kiln — scope-bound cleanup helpers (systemd / crun style).
 *
 *   _cleanup_free_ char *p = NULL;    freed when p leaves scope
 *   _cleanup_close_ int fd = -1;      closed when fd leaves scope
 *   return steal_pointer(&p);         hands ownership to the caller
 */
#ifndef KILN_UTILS_CLEANUP_H
#define KILN_UTILS_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void kiln_freep(void *p)
{
    free(*(void **)p);
}

static inline void kiln_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void kiln_fclosep(FILE **f)
{
    if (*f != NULL)
        fclose(*f);
}

static inline void kiln_closedirp(DIR **d)
{
    if (*d != NULL)
        closedir(*d);
}

/* Frees a NULL-terminated array of strings and the array. */
static inline void kiln_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **i = v; *i != NULL; i++)
        free(*i);
    free(v);
}

static inline void kiln_strv_freep(char ***v)
{
    kiln_strv_free(*v);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(kiln_freep)
#define _cleanup_close_ _cleanup_(kiln_closep)
#define _cleanup_fclose_ _cleanup_(kiln_fclosep)
#define _cleanup_closedir_ _cleanup_(kiln_closedirp)
#define _cleanup_strv_ _cleanup_(kiln_strv_freep)

/* Returns *pp and sets *pp to NULL: ownership moves to the caller. */
#define steal_pointer(pp)                                                                          \
    ({                                                                                             \
        __typeof__(*(pp)) _tmp_ = *(pp);                                                           \
        *(pp) = NULL;                                                                              \
        _tmp_;                                                                                     \
    })

/* Returns *fdp and sets it to -1. */
static inline int steal_fd(int *fdp)
{
    int fd = *fdp;
    *fdp = -1;
    return fd;
}

#endif
