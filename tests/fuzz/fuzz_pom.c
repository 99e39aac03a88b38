/* libFuzzer target: the pom.xml reader (handlers/pom): parse, then expand and
 * look up what the JVM provider would. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "handlers/pom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    kiln_pom_t *pom = NULL;

    if (kiln_pom_parse((const char *)data, size, "pom.xml", &pom, &err) < 0)
        return 0;
    free(kiln_pom_expand(pom, pom->final_name));
    free(kiln_pom_expand(pom, pom->version));
    free(kiln_pom_expand(pom, pom->compiler_release));
    for (size_t i = 0; i < pom->n_props; i++)
        free(kiln_pom_expand(pom, pom->props[i].value));
    (void)kiln_pom_find(pom->plugins, pom->n_plugins, NULL, "spring-boot-maven-plugin");
    kiln_pom_free(pom);
    return 0;
}
