/* kiln — a build secret named on the command line or in a request: "id=ID,src=FILE" or
 * "id=ID,env=VAR" (keys in any order, "source" is src; without either the source is the
 * environment variable named ID). Only the reference is parsed here: the value is read when
 * a RUN step mounts it (engine/mounts), never logged. */
#ifndef KILN_ENGINE_SECRETS_H
#define KILN_ENGINE_SECRETS_H

typedef struct kiln_secret_spec {
    char *id;  /* NULL when the spec has none */
    char *src; /* a file, or NULL */
    char *env; /* an environment variable, or NULL */
} kiln_secret_spec_t;

/* Splits spec into *out (all fields malloc'ed or NULL; entries without '=' and unknown keys
 * are ignored, the last of a repeated key wins). */
void kiln_secret_spec_parse(const char *spec, kiln_secret_spec_t *out);

void kiln_secret_spec_clear(kiln_secret_spec_t *s);

#endif
