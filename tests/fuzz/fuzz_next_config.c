/* libFuzzer target: Node detection of a Next.js app whose next.config.js is
 * the input (the output: 'export' scan, comments and strings). */
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
    static const char pkg[] = "{\"name\":\"f\",\"dependencies\":{\"next\":\"14.2.3\"},"
                              "\"scripts\":{\"build\":\"next build\",\"start\":\"next start\"}}";
    char *const env[] = {NULL};
    kiln_detect_opts_t opts = {.env = env};
    kiln_error_t err = {0};
    kiln_plan_t *p = NULL;

    if (dir == NULL) {
        dir = fuzz_scratch_dir("kiln-fuzz-next.");
        if (fuzz_put(dir, "package.json", pkg, strlen(pkg)) < 0)
            abort();
    }
    if (fuzz_put(dir, "next.config.js", data, size) < 0)
        return 0;
    if (kiln_plan_detect(dir, &opts, &p, &err) == 0)
        kiln_plan_free(p);
    return 0;
}
