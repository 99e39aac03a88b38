/* libFuzzer target: the Python provider's readers (handlers/pyproject over pyproject.toml,
 * Pipfile and requirements text; handlers/pyspec over the constraint read and over the
 * input's first line). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/pyproject.h"
#include "handlers/pyspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *nl;
    kiln_pyproject_t p = {0};
    kiln_error_t err = {0};

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (kiln_pyproject_read(&p, "pyproject.toml", text, size, &err) == 0 && p.requires_python)
        (void)kiln_pyspec_allows(p.requires_python, "3.11.2", &err);
    kiln_pyproject_free(&p);
    (void)kiln_pyproject_read_pipfile(&p, "Pipfile", text, size, &err);
    kiln_pyproject_free(&p);
    (void)kiln_pyproject_read_requirements(&p, "requirements/x.txt", text, &err);
    (void)kiln_pyproject_has(&p, "django");
    kiln_pyproject_free(&p);
    if ((nl = strchr(text, '\n')) != NULL)
        *nl = '\0';
    (void)kiln_pyspec_allows(text, "3.11.2", &err);
    free(text);
    return 0;
}
