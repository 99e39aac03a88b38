/* kiln — a job spec's build options, checked (see options.h). Pure: no I/O. */
#include "job/options.h"
#include "job/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/compress.h"
#include "oci/reference.h"
#include "sandbox/stepopts.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

#define field_err kiln_job_field_err
#define check_plain kiln_job_check_plain

static int check_labels(const kiln_job_spec_t *s, kiln_error_t *err)
{
    char f[200];

    if (s->n_labels > KILN_JOB_MAP_MAX)
        return field_err(err, "labels", "has too many entries");
    for (size_t i = 0; i < s->n_labels; i++) {
        snprintf(f, sizeof(f), "labels.%.128s", s->labels[i].key);
        if (check_plain(s->labels[i].key, f, 256, err) < 0)
            return -1;
        if (strchr(s->labels[i].key, '='))
            return field_err(err, f, "a label's name has no '='");
        if (s->labels[i].value == NULL)
            return field_err(err, f, "needs a value (K=V)");
        if (strlen(s->labels[i].value) > KILN_JOB_STR_MAX)
            return field_err(err, f, "is too long");
    }
    return 0;
}

/* A named context: NAME=DIR (local) or NAME=docker-image://REF. */
static int check_contexts(const kiln_job_spec_t *s, kiln_error_t *err)
{
    char f[200];

    if (s->n_contexts > KILN_JOB_LIST_MAX)
        return field_err(err, "build_contexts", "has too many entries");
    for (size_t i = 0; i < s->n_contexts; i++) {
        const char *v = s->contexts[i].value;
        snprintf(f, sizeof(f), "build_contexts.%.128s", s->contexts[i].key);
        if (check_plain(s->contexts[i].key, f, 512, err) < 0)
            return -1;
        if (strchr(s->contexts[i].key, '='))
            return field_err(err, f, "a context's name has no '='");
        if (v == NULL || check_plain(v, f, KILN_JOB_STR_MAX, err) < 0)
            return v == NULL ? field_err(err, f, "needs a directory or docker-image://REF") : -1;
        if (s->local)
            continue; /* a directory, docker-image://REF or docker-image://oci:DIR[:TAG] */
        if (strncmp(v, "docker-image://", 15) == 0) {
            kiln_reference_t ref = {0};
            kiln_error_t e = {0};
            if (kiln_reference_parse(v + 15, &ref, &e) < 0)
                return field_err(err, f, "%s", e.msg);
            kiln_reference_free(&ref);
        } else {
            return field_err(err, f, "a directory is only for local builds (docker-image://REF)");
        }
    }
    return 0;
}

/* A mirror: SRC=HOST[/PREFIX]. */
static int mirror_ok(const char *m)
{
    const char *eq = strchr(m, '=');
    return eq != NULL && eq != m && eq[1] != '\0';
}

/* An insecure registry: HOST[:PORT]. */
static int host_ok(const char *h)
{
    return strpbrk(h, "/@ ,=") == NULL;
}

/* Each entry of a registry list (field, entries v[0..n)) plain text that ok() takes. */
static int check_registry_list(char *const *v, size_t n, const char *field, int (*ok)(const char *),
                               const char *want, kiln_error_t *err)
{
    char f[64];

    if (n > KILN_JOB_LIST_MAX)
        return field_err(err, field, "has too many entries");
    for (size_t i = 0; i < n; i++) {
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (check_plain(v[i], f, 1024, err) < 0)
            return -1;
        if (!ok(v[i]))
            return field_err(err, f, "wants %s, not '%.128s'", want, v[i]);
    }
    return 0;
}

static int check_registries(const kiln_job_spec_t *s, kiln_error_t *err)
{
    if (check_registry_list(s->registry_mirrors, s->n_registry_mirrors, "registry.mirrors",
                            mirror_ok, "SRC=HOST[/PREFIX]", err) < 0)
        return -1;
    return check_registry_list(s->insecure_registries, s->n_insecure_registries,
                               "registry.insecure", host_ok, "HOST[:PORT]", err);
}

/* --add-host (a local build's only: it would point a tenant's steps at any address),
 * --ulimit and --shm-size, each checked as the sandbox takes it. */
static int check_step_flags(const kiln_job_spec_t *s, kiln_error_t *err)
{
    kiln_error_t e = {0};
    char f[48];

    if (s->n_add_hosts && !s->local)
        return field_err(err, "add_hosts",
                         "is refused for a build that is not local (a tenant's): it would point "
                         "the steps' names at any address");
    for (size_t i = 0; i < s->n_add_hosts; i++) {
        _cleanup_free_ char *line = NULL;
        snprintf(f, sizeof(f), "add_hosts[%zu]", i);
        if (kiln_job_add_host_line(s->add_hosts[i], s->network, &line, &e) < 0)
            return field_err(err, f, "%s", e.msg);
    }
    for (size_t i = 0; i < s->n_ulimits; i++) {
        kiln_ulimit_t u;
        snprintf(f, sizeof(f), "ulimits[%zu]", i);
        if (kiln_ulimit_parse(s->ulimits[i], &u, &e) < 0)
            return field_err(err, f, "%s", e.msg);
    }
    if (s->shm_size < 0)
        return field_err(err, "shm_size", "must be a size in bytes above 0");
    return 0;
}

/* 1 when the spec grants entitlement name. */
static int allows(const kiln_job_spec_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_allow; i++)
        if (strcmp(s->allow[i], name) == 0)
            return 1;
    return 0;
}

int kiln_job_options_validate(const kiln_job_spec_t *s, kiln_error_t *err)
{
    kiln_compression_t c = KILN_COMPRESSION_GZIP;
    kiln_error_t e = {0};

    if (check_labels(s, err) < 0 || check_contexts(s, err) < 0 || check_registries(s, err) < 0)
        return -1;
    if (s->compression && kiln_compression_parse(s->compression, &c, &e) < 0)
        return field_err(err, "compression", "%s", e.msg);
    if (s->has_compression_level && kiln_compression_check_level(c, s->compression_level, &e) < 0)
        return field_err(err, "compression_level", "%s", e.msg);
    if ((s->soci || s->has_soci_min_layer_size) && !kiln_job_spec_pushes(s))
        return field_err(err, s->soci ? "soci" : "soci_min_layer_size",
                         "indexes the image a push writes: needs an output of type registry");
    if (s->has_soci_min_layer_size &&
        (s->soci_min_layer_size < 0 || s->soci_min_layer_size > 1LL << 40))
        return field_err(err, "soci_min_layer_size", "must be a size in bytes (0 to 1 TiB)");
    if (s->has_source_date_epoch &&
        (s->source_date_epoch < 0 || s->source_date_epoch > 253402300799LL))
        return field_err(err, "source_date_epoch",
                         "must be seconds since 1970 (0 to 253402300799)");
    if (s->network && strcmp(s->network, "default") && strcmp(s->network, "none") &&
        strcmp(s->network, "host"))
        return field_err(err, "network", "must be default, none or host, not '%.64s'", s->network);
    if (s->network && strcmp(s->network, "host") == 0 && !s->local && !allows(s, "network.host"))
        return field_err(err, "network", "host needs the network.host entitlement (allow)");
    if (s->isolation && !s->local)
        return field_err(err, "isolation", "is the operator's choice (a local build's only)");
    if (s->isolation && strcmp(s->isolation, "auto") && strcmp(s->isolation, "sandbox") &&
        strcmp(s->isolation, "chroot") && strcmp(s->isolation, "none"))
        return field_err(err, "isolation", "must be auto, sandbox, chroot or none, not '%.64s'",
                         s->isolation);
    if (s->ssh && !s->local)
        return field_err(err, "ssh", "an SSH agent is only for local builds");
    if (s->ssh && check_plain(s->ssh, "ssh", KILN_JOB_STR_MAX, err) < 0)
        return -1;
    return check_step_flags(s, err);
}

void kiln_job_options_clear(kiln_job_spec_t *s)
{
    kiln_job_kv_free(s->labels, s->n_labels);
    kiln_job_kv_free(s->contexts, s->n_contexts);
    free(s->compression);
    free(s->network);
    free(s->isolation);
    free(s->ssh);
    kiln_strv_free(s->add_hosts);
    kiln_strv_free(s->ulimits);
    kiln_strv_free(s->registry_mirrors);
    kiln_strv_free(s->insecure_registries);
}

char **kiln_job_kv_strv(const kiln_job_kv_t *kv, size_t n)
{
    char **v = kiln_xzalloc((n + 1) * sizeof(char *));

    for (size_t i = 0; i < n; i++)
        v[i] =
            kv[i].value ? kiln_xasprintf("%s=%s", kv[i].key, kv[i].value) : kiln_xstrdup(kv[i].key);
    return v;
}
