/* libFuzzer target: a monorepo's workspace (handlers/workspace) whose root package.json
 * and pnpm-workspace.yaml are the input (split at the first NUL byte), over a fixed tree:
 * apps/web depending on packages/lib, a nested packages/deep/x/y, a symlinked package
 * dir pointing out of the tree, turbo.json. Patterns, globs, names and the walk's bounds
 * meet hostile text here. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "handlers/detect.h"
#include "handlers/workspace.h"
#include "tests/fuzz/fuzz_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Makes the fixed tree once. */
static void setup(const char *dir)
{
    static const char *const dirs[] = {
        "apps",          "apps/web",        "packages",         "packages/lib",
        "packages/deep", "packages/deep/x", "packages/deep/x/y"};
    static const char web[] = "{\"name\":\"@m/web\",\"scripts\":{\"build\":\"true\",\"start\":"
                              "\"node .\"},\"dependencies\":{\"@m/lib\":\"*\"}}";
    static const char lib[] = "{\"name\":\"@m/lib\",\"scripts\":{\"build\":\"true\"}}";
    char path[512];

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
        if (mkdir(path, 0755) < 0)
            abort();
    }
    snprintf(path, sizeof(path), "%s/apps/out", dir);
    if (symlink("/etc", path) < 0 || fuzz_put(dir, "apps/web/package.json", web, strlen(web)) < 0 ||
        fuzz_put(dir, "packages/lib/package.json", lib, strlen(lib)) < 0 ||
        fuzz_put(dir, "packages/deep/x/y/package.json", lib, strlen(lib)) < 0 ||
        fuzz_put(dir, "package-lock.json", "{}", 2) < 0 || fuzz_put(dir, "turbo.json", "{}", 2) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *dir;
    static char app[600];
    char *const env[] = {NULL};
    kiln_detect_opts_t opts = {.env = env};
    kiln_error_t err = {0};
    kiln_plan_t *p = NULL;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t n1 = nul ? (size_t)(nul - data) : size;

    if (dir == NULL) {
        dir = fuzz_scratch_dir("kiln-fuzz-ws.");
        setup(dir);
        snprintf(app, sizeof(app), "%s/apps/web", dir);
    }
    if (fuzz_put(dir, "package.json", data, n1) < 0 ||
        fuzz_put(dir, "pnpm-workspace.yaml", nul ? nul + 1 : data, nul ? size - n1 - 1 : 0) < 0)
        return 0;
    if (kiln_plan_detect(app, &opts, &p, &err) == 0) {
        kiln_error_t werr = {0};
        (void)kiln_workspace_apply(dir, "apps/web", &opts, p, &werr);
        kiln_plan_free(p);
    }
    return 0;
}
