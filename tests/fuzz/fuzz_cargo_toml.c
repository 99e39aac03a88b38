/* libFuzzer target: the TOML reader through Cargo.toml and rust-toolchain
 * (handlers/cargo over utils/toml): the manifest, and the input as a
 * rust-toolchain.toml and as a legacy one-line rust-toolchain. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "handlers/cargo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_error_t err = {0};
    kiln_cargo_t c = {0};
    char *channel = NULL;
    char *text = malloc(size + 1);

    if (text == NULL)
        return 0;
    /* the providers read files NUL-terminated */
    for (size_t i = 0; i < size; i++)
        text[i] = (char)data[i];
    text[size] = '\0';
    if (kiln_cargo_parse(text, size, "Cargo.toml", &c, &err) == 0)
        kiln_cargo_clear(&c);
    if (kiln_cargo_toolchain(text, size, 1, "rust-toolchain.toml", &channel, &err) == 0)
        free(channel);
    channel = NULL;
    if (kiln_cargo_toolchain(text, size, 0, "rust-toolchain", &channel, &err) == 0)
        free(channel);
    free(text);
    return 0;
}
