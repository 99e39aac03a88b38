/* kiln dockerfile — debugging views of the Dockerfile front end: the AST
 * dump in BuildKit's format, line numbers, heredocs, word expansion and
 * .dockerignore matching. Used by the conformance tests. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers/dockerfile/dockerignore.h"
#include "handlers/dockerfile/parser.h"
#include "handlers/dockerfile/shell.h"
#include "src/commands.h"
#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: kiln dockerfile parse FILE|-        print the AST (BuildKit Node.Dump format)\n"
            "       kiln dockerfile lines FILE|-        print start/end lines of the file and "
            "each instruction\n"
            "       kiln dockerfile heredocs FILE|-     print the heredocs as JSON\n"
            "       kiln dockerfile word [--words] [--escape C] [--env K=V]... WORD\n"
            "                                           expand a word (--words: split, JSON "
            "array)\n"
            "       kiln dockerfile ignore IGNOREFILE PATH...\n"
            "                                           print 'excluded PATH' or 'included "
            "PATH'\n");
}

static int load(const char *path, kiln_dockerfile_t **df, kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r;

    if (strcmp(path, "-") == 0)
        r = kiln_fs_read_fd(STDIN_FILENO, KILN_DOCKERFILE_MAX, &text, &len, err);
    else
        r = kiln_fs_read_file(path, KILN_DOCKERFILE_MAX, &text, &len, err);
    if (r < 0)
        return -1;
    return kiln_dockerfile_parse(text, len, "Dockerfile", df, err);
}

static int cmd_parse(const char *path, const char *what)
{
    kiln_error_t err = {0};
    kiln_dockerfile_t *df = NULL;
    kiln_buf_t out;

    if (load(path, &df, &err) < 0)
        return kiln_cli_fail(&err);
    kiln_buf_init(&out, 0);
    if (strcmp(what, "parse") == 0) {
        kiln_dockerfile_dump(df, &out, &err);
    } else if (strcmp(what, "lines") == 0) {
        kiln_buf_appendf(&out, &err, "%d %d\n", df->start_line, df->end_line);
        for (size_t i = 0; i < df->n_nodes; i++)
            kiln_buf_appendf(&out, &err, "%d %d\n", df->nodes[i].start_line, df->nodes[i].end_line);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < df->n_nodes; i++) {
            const kiln_df_node_t *n = df->nodes[i].sub ? df->nodes[i].sub : &df->nodes[i];
            json_t *docs = json_array();
            for (size_t k = 0; k < n->n_heredocs; k++) {
                _cleanup_free_ char *c = kiln_df_heredoc_content(&n->heredocs[k]);
                json_array_append_new(
                    docs, json_pack("{s:s,s:i,s:b,s:b,s:s}", "name", n->heredocs[k].name, "fd",
                                    (int)n->heredocs[k].fd, "expand", n->heredocs[k].expand,
                                    "chomp", n->heredocs[k].chomp, "content", c));
            }
            json_array_append_new(arr, docs);
        }
        char *s = json_dumps(arr, JSON_COMPACT);
        kiln_buf_appendf(&out, &err, "%s\n", s);
        free(s);
        json_decref(arr);
    }
    fwrite(out.data ? out.data : "", 1, out.len, stdout);
    kiln_buf_free(&out);
    for (size_t i = 0; df->warnings[i]; i++)
        fprintf(stderr, "%s\n", df->warnings[i]);
    kiln_dockerfile_free(df);
    return KILN_EXIT_OK;
}

static int cmd_word(int argc, char **argv)
{
    static const struct option opts[] = {{"words", no_argument, NULL, 'w'},
                                         {"escape", required_argument, NULL, 'e'},
                                         {"env", required_argument, NULL, 'E'},
                                         {"skip-unset", no_argument, NULL, 's'},
                                         {"raw-quotes", no_argument, NULL, 'q'},
                                         {"raw-escapes", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    kiln_shell_opts_t o = {.escape = '\\'};
    kiln_shell_env_t env = {0};
    _cleanup_free_ char **vars = kiln_xzalloc((size_t)argc * sizeof(char *));
    bool words = false;
    kiln_error_t err = {0};
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            words = true;
            break;
        case 'e':
            o.escape = optarg[0];
            break;
        case 'E':
            vars[env.n_vars++] = optarg;
            break;
        case 's':
            o.skip_unset = true;
            break;
        case 'q':
            o.raw_quotes = true;
            break;
        case 'r':
            o.raw_escapes = true;
            break;
        default:
            return KILN_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc)
        return kiln_cli_usage_error("dockerfile", "word takes exactly one WORD");
    env.vars = vars;
    if (words) {
        _cleanup_strv_ char **w = NULL;
        size_t n = 0;
        json_t *arr;
        char *s;
        if (kiln_shell_process_words(argv[optind], &o, &env, &w, &n, &err) < 0)
            return kiln_cli_fail(&err);
        arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_string(w[i]));
        s = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(arr);
    } else {
        _cleanup_free_ char *out = NULL;
        if (kiln_shell_process_word(argv[optind], &o, &env, &out, &err) < 0)
            return kiln_cli_fail(&err);
        printf("%s\n", out);
    }
    return KILN_EXIT_OK;
}

static int cmd_ignore(int argc, char **argv)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    kiln_dockerignore_t *di = NULL;
    kiln_error_t err = {0};

    if (argc < 2)
        return kiln_cli_usage_error("dockerfile", "ignore needs IGNOREFILE and PATH...");
    if (kiln_fs_read_file(argv[1], KILN_DOCKERIGNORE_MAX, &text, &len, &err) < 0 ||
        kiln_dockerignore_parse(text, len, &di, &err) < 0)
        return kiln_cli_fail(&err);
    for (int i = 2; i < argc; i++)
        printf("%s %s\n", kiln_dockerignore_excluded(di, argv[i]) ? "excluded" : "included",
               argv[i]);
    kiln_dockerignore_free(di);
    return KILN_EXIT_OK;
}

int kiln_cmd_dockerfile(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KILN_EXIT_USAGE : KILN_EXIT_OK;
    }
    if (strcmp(argv[1], "parse") == 0 || strcmp(argv[1], "lines") == 0 ||
        strcmp(argv[1], "heredocs") == 0) {
        if (argc != 3)
            return kiln_cli_usage_error("dockerfile", "%s takes one FILE", argv[1]);
        return cmd_parse(argv[2], argv[1]);
    }
    if (strcmp(argv[1], "word") == 0)
        return cmd_word(argc - 1, argv + 1);
    if (strcmp(argv[1], "ignore") == 0)
        return cmd_ignore(argc - 1, argv + 1);
    return kiln_cli_usage_error("dockerfile", "unknown action '%s'", argv[1]);
}
