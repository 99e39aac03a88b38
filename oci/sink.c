/* kiln — the plain-fd sink. */
#include "oci/sink.h"

#include <errno.h>
#include <unistd.h>

#include "utils/fs.h"

int kiln_sink_fd_write(void *ctx, const void *buf, size_t len, kiln_error_t *err)
{
    return kiln_fs_write_all(*(int *)ctx, buf, len, err);
}

int kiln_sink_copy_fd(const kiln_sink_t *s, int fd, kiln_error_t *err)
{
    char buf[65536];
    ssize_t n;

    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kiln_error_set(err, errno, "read");
        if (n == 0)
            return 0;
        if (kiln_sink_write(s, buf, (size_t)n, err) < 0)
            return -1;
    }
}
