/* libFuzzer target: the build server's request validation (POST /v1/builds bodies), its
 * limits against a policy (the request's limits also taken as a tenant's), and the job spec
 * `kiln job run` gets for it (read back as the job reads it). */
#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>
#include <string.h>

#include "job/codec.h"
#include "src/server/limits.h"
#include "src/server/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_request_t r = {0};
    kiln_error_t err = {0};

    if (kiln_request_parse((const char *)data, size, &r, &err) == 0) {
        char *spec = NULL;
        kiln_request_ids_t ids = {.build_id = "b-0123456789abcdef", .trigger = "api"};
        json_t *files = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(r.secrets, k, v) json_object_set_new(files, k, json_string("/s"));
        kiln_request_check_allow(r.stored, 1, &err);
        {
            kiln_limits_policy_t server = {0}, tenant;
            kiln_limits_policy_builtin(&server, 3600);
            kiln_limits_policy_finish(&server, &err);
            if (kiln_limits_policy_tenant(&server, json_object_get(r.stored, "limits"), &tenant,
                                          &err) == 0)
                kiln_limits_apply(r.stored, &tenant, &err);
            kiln_limits_wall_time(r.stored, 3600);
        }
        if (kiln_request_job_spec(r.stored, files, &ids, &spec, &err) == 0) {
            kiln_job_spec_t s = {0};
            kiln_job_parse(spec, strlen(spec), KILN_JOB_JSON_LOCAL, &s, NULL, &err);
            kiln_job_spec_clear(&s);
            free(spec);
        }
        json_decref(files);
        kiln_request_free(&r);
    }
    return 0;
}
