/* libFuzzer target: Node detection whose package.json is the input, beside a
 * yarn.lock and .yarnrc.yml (package manager, packageManager version, scripts,
 * engines). */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/detect.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *dir;
    static const char rc[] = "nodeLinker: node-modules\n";
    char *const env[] = {NULL};
    kiln_detect_opts_t opts = {.env = env};
    kiln_error_t err = {0};
    kiln_plan_t *p = NULL;

    if (dir == NULL) {
        dir = fuzz_scratch_dir("kiln-fuzz-pkg.");
        if (fuzz_put(dir, "yarn.lock", "", 0) < 0 ||
            fuzz_put(dir, ".yarnrc.yml", rc, strlen(rc)) < 0)
            abort();
    }
    if (fuzz_put(dir, "package.json", data, size) < 0)
        return 0;
    if (kiln_plan_detect(dir, &opts, &p, &err) == 0)
        kiln_plan_free(p);
    return 0;
}
