/* libFuzzer target: the job spec's JSON codec (job/codec). Every input is read as an API
 * request, a spec and a local spec; whatever is accepted must write out to JSON that reads
 * back to the same JSON (the round trip the server and the builder rely on), and each secret
 * value taken out of the input is named in that JSON, not carried. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/codec.h"
#include "job/codec_write.h"
#include "utils/cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The JSON of a spec read from text with flags, or NULL. */
static json_t *read_spec(const char *text, size_t len, unsigned flags, json_t **secrets)
{
    kiln_job_spec_t s = {0};
    kiln_error_t err = {0};
    json_t *j;

    if (kiln_job_parse(text, len, flags, &s, secrets, &err) < 0)
        return NULL;
    j = kiln_job_to_json(&s);
    kiln_job_spec_clear(&s);
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned modes[] = {KILN_JOB_JSON_REQUEST, 0, KILN_JOB_JSON_LOCAL};

    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        json_t *secrets = NULL, *again,
               *j = read_spec((const char *)data, size, modes[m], &secrets);
        _cleanup_free_ char *text = NULL;
        const char *k;
        json_t *v;

        if (j == NULL)
            continue;
        text = json_dumps(j, JSON_COMPACT);
        if (text == NULL)
            abort();
        /* secrets are named, never valued: each taken-out value is listed by name only */
        json_object_foreach(secrets, k, v)
        {
            size_t i;
            json_t *x;
            int listed = 0;
            json_array_foreach(json_object_get(j, "secrets"), i, x)
            {
                if (json_is_string(x) && strcmp(json_string_value(x), k) == 0)
                    listed = 1;
            }
            if (!listed)
                abort();
        }
        again = read_spec(text, strlen(text), modes[m] & KILN_JOB_JSON_LOCAL, NULL);
        if (again == NULL || !json_equal(again, j))
            abort();
        json_decref(again);
        json_decref(j);
        json_decref(secrets);
    }
    return 0;
}
