/* libFuzzer target: an output spec (`-o type=T,k=v,...`, an S3 one through the S3 output
 * parser) must never crash the parser or the checks kiln build runs on it (the job spec's,
 * with each exporter's own), and what the parser accepts has a non-empty type and
 * non-empty, distinct keys whose values it hands back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"
#include "job/spec.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_export_opts_t o = {0};
    kiln_error_t err = {0};
    /* a spec is a C string (a command-line argument): it ends at the first NUL */
    char *s = kiln_xstrndup((const char *)data, size);

    if (kiln_export_parse(s, &o, &err) == 0) {
        if (o.type == NULL || o.type[0] == '\0')
            abort();
        for (size_t i = 0; i < o.n; i++) {
            if (o.kv[i].key[0] == '\0' || kiln_export_opts_get(&o, o.kv[i].key) != o.kv[i].value)
                abort();
        }
        kiln_export_opts_free(&o);
    } else if (err.msg[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    {
        kiln_job_spec_t spec = {.local = 1, .source_kind = KILN_JOB_SOURCE_DIR};
        spec.source = kiln_xstrdup(".");
        if (kiln_job_spec_add_output_text(&spec, s, &err) == 0)
            (void)kiln_job_spec_validate(&spec, &err);
        kiln_job_spec_clear(&spec);
    }
    free(s);
    return 0;
}
