/* libFuzzer target: output confinement. The input is a request's JSON checked against a
 * tenant's rules, and also, as raw bytes, an image reference, an s3:// URL and a file
 * output's dest; each checker must answer without crashing and refuse what it cannot read. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job/spec.h"
#include "src/server/outconf.h"
#include "utils/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *registry, *s3, *notify;
    kiln_error_t err = {0};
    unsigned status;
    char *s;
    json_t *req;

    if (registry == NULL) {
        registry = json_pack("[s,s,s]", "123.dkr.ecr.eu-west-1.amazonaws.com/acme/", "acme/",
                             "localhost:5000/acme/app");
        s3 = json_pack("[s,s]", "s3://sites/acme/", "s3://fn-bucket");
        notify = json_pack("[s]", "sqs://https://sqs.eu-west-1.amazonaws.com/1/acme");
    }
    {
        kiln_outconf_rules_t rules = {
            .tenant = "acme", .registry = registry, .s3 = s3, .notify = notify};
        req = json_loadb((const char *)data, size, 0, NULL);
        if (req) {
            kiln_outconf_check(req, &rules, &status, &err);
            json_decref(req);
        }
    }
    s = kiln_xstrndup((const char *)data, size);
    kiln_outconf_registry_allowed(s, registry, &err);
    kiln_outconf_s3_allowed(s, s3, &err);
    kiln_job_file_dest_check(s, &err);
    {
        json_t *one = json_pack("[s?]", s);
        if (one && json_array_size(one) == 1) {
            kiln_outconf_rules_t rules = {.tenant = "x", .registry = one, .s3 = one};
            kiln_outconf_rules_check(&rules, &err);
        }
        json_decref(one);
    }
    free(s);
    return 0;
}
