/* kiln — loading a shared library on first use (see lazylib.h). */
#include "utils/lazylib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int kiln_lazylib_load(const char *soname, const char *need, const char *const *names, void **fns,
                      size_t n, char *errbuf, size_t errlen)
{
    /* RTLD_LOCAL: its symbols never resolve anyone else's (kiln defines the same names). */
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(errbuf, errlen, "%s (needed %s) could not be loaded: %s", soname, need, dlerror());
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        fns[i] = dlsym(h, names[i]);
        if (fns[i] == NULL) {
            snprintf(errbuf, errlen, "%s (needed %s) has no %s", soname, need, names[i]);
            return -1;
        }
    }
    return 0;
}

void kiln_lazylib_fatal(const char *msg)
{
    /* write(2), not stdio: any thread, any state, as the loader itself reports */
    ssize_t r = write(STDERR_FILENO, "kiln: ", 6);
    r = write(STDERR_FILENO, msg, strlen(msg));
    r = write(STDERR_FILENO, "\n", 1);
    (void)r;
    _exit(127);
}

void kiln_lazylib_preload_all(void)
{
#define PRELOAD(name) (void)kiln_lazylib_preload_##name();
    KILN_LAZYLIB_ALL(PRELOAD)
#undef PRELOAD
}
