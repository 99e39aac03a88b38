/* kiln — CLI helpers: the store root. */
#include "src/cli_output.h"

#include <stdlib.h>
#include <string.h>

#include "oci/store.h"
#include "utils/mem.h"

int kiln_cli_store_root(const char *opt_root, char **out, kiln_error_t *err)
{
    char *r = opt_root != NULL ? kiln_xstrdup(opt_root) : kiln_store_default_root();

    if (r == NULL)
        return kiln_error_set(err, 0,
                              "no store root: set HOME or XDG_DATA_HOME, or pass --root DIR");
    *out = r;
    return 0;
}
