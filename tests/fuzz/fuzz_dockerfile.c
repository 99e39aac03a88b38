/* libFuzzer target: the Dockerfile parser, its AST dump and word expansion
 * of every argument (as the instruction layer does). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "handlers/dockerfile/parser.h"
#include "handlers/dockerfile/shell.h"
#include "utils/cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kiln_dockerfile_t *df = NULL;
    kiln_error_t err = {0};
    char *vars[] = {"A=a b", "E="};
    kiln_shell_env_t env = {.vars = vars, .n_vars = 2};

    if (kiln_dockerfile_parse((const char *)data, size, NULL, &df, &err) < 0)
        return 0;
    kiln_buf_t b;
    kiln_buf_init(&b, 0);
    kiln_dockerfile_dump(df, &b, &err);
    kiln_buf_free(&b);
    for (size_t i = 0; i < df->n_nodes; i++) {
        for (size_t k = 0; k < df->nodes[i].n_args; k++) {
            char *out = NULL;
            char **words = NULL;
            if (kiln_shell_process_word(df->nodes[i].args[k], NULL, &env, &out, &err) == 0)
                free(out);
            if (kiln_shell_process_words(df->nodes[i].args[k], NULL, &env, &words, NULL, &err) == 0)
                kiln_strv_free(words);
        }
        for (size_t k = 0; k < df->nodes[i].n_heredocs; k++)
            free(kiln_df_heredoc_content(&df->nodes[i].heredocs[k]));
    }
    kiln_dockerfile_free(df);
    return 0;
}
