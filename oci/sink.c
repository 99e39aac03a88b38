/* kiln — the plain-fd sink. */
#include "oci/sink.h"

#include "utils/fs.h"

int kiln_sink_fd_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    return kiln_fs_write_all(*(int *)ctx, buf, len, err);
}
