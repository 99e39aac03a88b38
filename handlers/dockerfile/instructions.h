/* kiln — Dockerfile instruction semantics on the image config.
 *
 * The instructions that only change the image config (ENV, LABEL, USER,
 * STOPSIGNAL, EXPOSE, VOLUME, CMD, ENTRYPOINT, SHELL, MAINTAINER, ONBUILD,
 * HEALTHCHECK) are applied here, with the history text BuildKit writes for
 * them. Words are expanded through a callback, so the caller decides which
 * variables (ENV, ARG) are visible and can record which ones were used. The
 * build engine (engine/) handles FROM, ARG, RUN, COPY, ADD and WORKDIR's
 * directory, which need the filesystem or the build's argument scope. */
#ifndef KILN_HANDLERS_DOCKERFILE_INSTRUCTIONS_H
#define KILN_HANDLERS_DOCKERFILE_INSTRUCTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "handlers/dockerfile/parser.h"
#include "utils/error.h"

/* Expands one word (BuildKit ProcessWord); *out malloc'ed. */
typedef int (*kiln_df_expand_fn)(void *ctx, const char *word, char **out, kiln_error_t *err);

/* Sets err to "Dockerfile:LINE: message: INSTRUCTION TEXT" and returns -1. */
int kiln_df_error(const kiln_df_node_t *n, kiln_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True for the instructions kiln_df_apply_config handles. */
bool kiln_df_is_config_only(const kiln_df_node_t *n);

/* True for every instruction keyword of the Dockerfile reference. */
bool kiln_df_known_keyword(const char *kw);

/* The command of a shell- or exec-form instruction as a JSON array: the
 * exec form's arguments from index `from`, or the image's SHELL (default
 * ["/bin/sh","-c"]) followed by the shell-form command. */
json_t *kiln_df_command_argv(json_t *image_config, const kiln_df_node_t *n, size_t from);

/* Parses a Go duration ("30s", "1m30s", "500ms", "0") into nanoseconds. */
int kiln_df_parse_duration(const char *s, int64_t *ns);

/* The working directory WORKDIR `dir` (already expanded) gives from the
 * image's current one: absolute, no trailing slash. Malloc'ed. */
char *kiln_df_workdir(json_t *image_config, const char *dir);

/* Applies a config-only instruction to image_config (a whole image config:
 * {"config":{…},…}). *history gets the BuildKit created_by text (malloc'ed).
 * Fails with a Dockerfile:LINE message (bad arguments, bad port, bad flag). */
int kiln_df_apply_config(json_t *image_config, const kiln_df_node_t *n, kiln_df_expand_fn expand,
                         void *ctx, char **history, kiln_error_t *err);

#endif
