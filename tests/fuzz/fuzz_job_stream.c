/* libFuzzer target: the job event stream's reading of `kiln build --progress=json` lines
 * (job/stream): any line is a step event, a log event or nothing, and the event always
 * carries the spec's ids and writes out as one line of JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/stream.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_job_spec_t s = {.build_id = "b1", .tenant = "acme", .trigger = "api"};
    _cleanup_free_ char *line = kiln_xstrndup((const char *)data, size);
    json_t *ev = kiln_job_event_from_progress(&s, line);
    _cleanup_free_ char *url = kiln_job_redact_url(line);

    if (strlen(url) > strlen(line))
        abort();
    if (ev != NULL) {
        char *out;
        if (strcmp(json_string_value(json_object_get(ev, "build_id")), "b1") != 0 ||
            !json_is_integer(json_object_get(ev, "step")))
            abort();
        out = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (out == NULL || strchr(out, '\n') != NULL)
            abort();
        free(out);
        json_decref(ev);
    }
    return 0;
}
