/* libFuzzer target: Node detection of a Next.js app whose next.config.js is
 * the input (the output: 'export' / 'standalone' scan, comments and strings), and the
 * literal option reader of every framework config over the same text. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/detect.h"
#include "handlers/node_framework.h"
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
    {
        static const char *const keys[] = {"output", "ssr", "out", "pages", "outDir", "mode"};
        char *text = malloc(size + 1);
        if (text == NULL)
            abort();
        memcpy(text, data, size);
        text[size] = '\0';
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            free(kiln_node_config_option(text, keys[i]));
        free(text);
    }
    return 0;
}
