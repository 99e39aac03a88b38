/* kiln — the subcommands of the `kiln` binary. Each returns the process exit
 * status: 0 ok, 1 operation failed, 2 usage error. */
#ifndef KILN_SRC_COMMANDS_H
#define KILN_SRC_COMMANDS_H

#include "utils/error.h"

#define KILN_EXIT_OK 0
#define KILN_EXIT_FAIL 1
#define KILN_EXIT_USAGE 2

typedef struct kiln_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} kiln_command_t;

int kiln_cmd_version(int argc, char **argv);
int kiln_cmd_import(int argc, char **argv);
int kiln_cmd_pull(int argc, char **argv);
int kiln_cmd_push(int argc, char **argv);
int kiln_cmd_soci(int argc, char **argv);
int kiln_cmd_copy(int argc, char **argv);
int kiln_cmd_login(int argc, char **argv);
int kiln_cmd_logout(int argc, char **argv);
int kiln_cmd_inspect(int argc, char **argv);
int kiln_cmd_prune(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);
int kiln_cmd_serve(int argc, char **argv);
int kiln_cmd_gc(int argc, char **argv);
int kiln_cmd_cache(int argc, char **argv);
int kiln_cmd_worker(int argc, char **argv);
int kiln_cmd_upload(int argc, char **argv);
int kiln_cmd_notify(int argc, char **argv);
int kiln_cmd_aws_sign(int argc, char **argv);
int kiln_cmd_ecr(int argc, char **argv);
int kiln_cmd_dockerfile(int argc, char **argv);
int kiln_cmd_build(int argc, char **argv);
int kiln_cmd_job(int argc, char **argv);
int kiln_cmd_plan(int argc, char **argv);
int kiln_cmd_store(int argc, char **argv);

/* The operator's additional image stores (src/cmd_store.c): `kiln --additional-store DIR`
 * appends DIR (absolute, without ':') to $KILN_ADDITIONAL_STORES, which the builds of the
 * command and of the jobs it starts read; -1 when DIR is not such a path. */
int kiln_cli_additional_store_push(const char *dir);
/* Appends the entries of $KILN_ADDITIONAL_STORES (DIR[:DIR...]) to list (*n of max); -1 when
 * one is not absolute or there are too many. */
int kiln_cli_additional_stores_env(const char **list, size_t *n, size_t max);
struct kiln_store;
/* Opens the store at root with the operator's additional stores ($KILN_ADDITIONAL_STORES)
 * attached, so that an image a build made from one can be pushed, saved, run or inspected:
 * one that cannot be used is warned about on stderr and left out. */
int kiln_cli_store_open(const char *root, struct kiln_store **out, kiln_error_t *err);
int kiln_cmd_checkout(int argc, char **argv);
int kiln_cmd_images(int argc, char **argv);
int kiln_cmd_tag(int argc, char **argv);
int kiln_cmd_rmi(int argc, char **argv);
int kiln_cmd_save(int argc, char **argv);
int kiln_cmd_load(int argc, char **argv);

/* Reports an error to stderr as "kiln: <message>" and returns KILN_EXIT_FAIL. */
int kiln_cli_fail(const kiln_error_t *err);
/* Reports a usage error for `cmd` and returns KILN_EXIT_USAGE. */
int kiln_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct option;
/* Reports what getopt_long (called with opterr = 0 and an optstring starting with ':')
 * returned c ('?' or ':') for: an unknown flag, with the closest of lopts ("did you mean
 * --tag?"), or a flag missing its value. Returns KILN_EXIT_USAGE. */
int kiln_cli_bad_option(const char *cmd, int c, char **argv, const struct option *lopts);
/* The same, never suggesting (nor listing as ambiguous) the flags named in hidden
 * (NULL-terminated): those only kiln itself passes. */
int kiln_cli_bad_option_hidden(const char *cmd, int c, char **argv, const struct option *lopts,
                               const char *const *hidden);

#endif
