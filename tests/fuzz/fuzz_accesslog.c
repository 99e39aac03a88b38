/* libFuzzer target: the access log line and the audit trail. The input, as raw bytes, is a
 * request's path, tenant and method: the line must stay one valid JSON line (exactly one
 * '\n', at its end) with the route cut at any '?'. As JSON, it is a GitHub and a GitLab push
 * payload the audit record is taken from; as a header value, a delivery id to check. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/server/accesslog.h"
#include "src/server/audit.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = kiln_xstrndup((const char *)data, size);
    kiln_access_entry_t e = {.time = 1764745200.25,
                             .request_id = "0123456789abcdef",
                             .remote = "127.0.0.1",
                             .tenant = s,
                             .method = s,
                             .path = s,
                             .status = 200,
                             .bytes = size};
    char *line = kiln_accesslog_format(&e);
    size_t n = strlen(line);
    json_t *o = json_loads(line, 0, NULL);
    const char *route = json_string_value(json_object_get(o, "route"));
    kiln_error_t err = {0};

    /* one line, valid JSON, no query in the route */
    if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n - 1) || o == NULL || route == NULL ||
        strchr(route, '?'))
        abort();
    json_decref(o);
    free(line);

    o = json_loadb((const char *)data, size, 0, NULL);
    if (o) {
        json_t *a = kiln_audit_webhook("github", "acme", "app", "d", "push", o);
        json_t *b = kiln_audit_webhook("gitlab", "acme", "app", "d", "Push Hook", o);
        char *text = json_dumps(a, JSON_COMPACT);
        if (text == NULL)
            abort();
        free(text);
        json_decref(a);
        json_decref(b);
        json_decref(o);
    }
    kiln_audit_check_key("X-GitHub-Delivery", s, &err);
    free(kiln_audit_token_id(s));
    free(s);
    return 0;
}
