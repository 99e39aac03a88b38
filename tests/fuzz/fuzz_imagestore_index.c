/* libFuzzer target: oci/imagestore's index codec (parse; a parsed index dumps to text that
 * parses again to the same text). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/imagestore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_imagestore_index_t ix = {0}, again = {0};
    kiln_error_t err = {0};
    char *dump, *dump2;

    if (kiln_imagestore_index_parse((const char *)data, size, &ix, &err) < 0)
        return 0;
    dump = kiln_imagestore_index_dump(&ix);
    if (kiln_imagestore_index_parse(dump, strlen(dump), &again, &err) < 0)
        abort();
    dump2 = kiln_imagestore_index_dump(&again);
    if (strcmp(dump, dump2) != 0)
        abort();
    free(dump);
    free(dump2);
    kiln_imagestore_index_clear(&ix);
    kiln_imagestore_index_clear(&again);
    return 0;
}
