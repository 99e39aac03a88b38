/* kiln worker — max_concurrent across the workers of a queue (see qlease.h): a tenant's
 * lease objects in the context store counted, written, renewed and deleted. */
#include "src/server/qlease.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/server/qfair.h"
#include "src/server/s3_context.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define LEASE_CAP 4096 /* bytes of one lease body */
#define LIST_CAP 256   /* keys looked at under one prefix */

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int kiln_qlease_count(kiln_aws_t *aws, const char *prefix, const char *own_id, int cap,
                      kiln_error_t *err)
{
    _cleanup_free_ char *bucket_url = NULL, *after = NULL;
    const char *slash = strchr(prefix + strlen("s3://"), '/');
    int live = 0;

    if (strncmp(prefix, "s3://", 5) != 0 || slash == NULL)
        return kiln_error_set(err, 0, "lease prefix '%s' is not s3://BUCKET/PREFIX", prefix);
    bucket_url = kiln_xasprintf("%.*s", (int)(slash - prefix), prefix);
    for (int i = 0; i < LIST_CAP && live < cap; i++) {
        _cleanup_free_ char *key = NULL, *url = NULL, *text = NULL;
        const char *id;
        int got = kiln_s3_context_next_key(aws, prefix, after, &key, err);
        if (got < 0)
            return -1;
        if (got == 0)
            break;
        id = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
        url = kiln_xasprintf("%s/%s", bucket_url, key);
        free(after);
        after = kiln_xstrdup(key);
        if (own_id && strcmp(id, own_id) == 0)
            continue;
        got = kiln_s3_context_read(aws, url, LEASE_CAP, &text, err);
        if (got < 0)
            return -1;
        if (got == 1 && kiln_qfair_lease_live(text, wall_now()))
            live++;
        else if (got == 1)
            kiln_s3_context_delete(aws, url, NULL); /* its worker died: tidy up */
    }
    return live;
}

int kiln_qlease_write(kiln_aws_t *aws, const char *url, int ttl_s, const char *worker,
                      kiln_error_t *err)
{
    _cleanup_free_ char *text = kiln_qfair_lease_text(wall_now() + ttl_s, worker);
    return kiln_s3_context_mark(aws, url, text, err);
}
