/* kiln build — a context tarball on stdin (see build_source.h). */
#include "src/build_source.h"

#include <unistd.h>

#include "oci/unpack.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_build_context_from_stdin(const char *root, char **out, kiln_error_t *err)
{
    _cleanup_free_ char *parent = kiln_xasprintf("%s/build/tmp", root);
    _cleanup_free_ char *dir = NULL;
    kiln_unpack_opts_t uo;

    if (kiln_fs_mkdir_p(parent, 0711, err) < 0 || kiln_fs_mkdtemp(parent, "ctx-", &dir, err) < 0)
        return -1;
    kiln_unpack_opts_init(&uo);
    if (kiln_layer_unpack(STDIN_FILENO, dir, &uo, NULL, err) < 0) {
        kiln_fs_rm_rf(dir, NULL);
        return kiln_error_prefix(err, "reading the context tarball from stdin");
    }
    *out = steal_pointer(&dir);
    return 0;
}
