/* libFuzzer target: handlers/go_mod (go.mod lines) and handlers/go_release (version
 * names, their order, the choice of a release from what go.mod asks for). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/go_mod.h"
#include "handlers/go_release.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_gomod_t m;
    kiln_error_t err = {0};
    char *version = NULL, *why = NULL, *src = NULL;

    if (kiln_gomod_parse((const char *)data, size, &m, &err) < 0)
        return 0;
    kiln_go_request_t rq = {.go = m.go,
                            .go_line = m.go_line,
                            .toolchain = m.toolchain,
                            .toolchain_line = m.toolchain_line};
    if (kiln_go_select(&rq, &version, &why, &src, &err) == 0) {
        /* what was chosen is a release name and satisfies both lines */
        if (!kiln_go_version_is_release(version) ||
            (m.go && kiln_go_version_cmp(version, m.go) < 0) ||
            (m.toolchain && kiln_go_version_cmp(version, m.toolchain) < 0))
            abort();
        free(version);
        free(why);
        free(src);
    }
    /* the toolchain line as an override too */
    if (m.toolchain) {
        rq.override = m.toolchain;
        rq.override_src = "KILN_GO_VERSION";
        version = why = src = NULL;
        if (kiln_go_select(&rq, &version, &why, &src, &err) == 0) {
            free(version);
            free(why);
            free(src);
        }
    }
    kiln_gomod_free(&m);
    return 0;
}
