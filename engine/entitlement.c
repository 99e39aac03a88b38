/* kiln — build entitlements (see entitlement.h). */
#include "engine/entitlement.h"

#include <string.h>

#include "utils/cleanup.h"
#include "utils/mem.h"

static const char *const names[KILN_ENTITLEMENT_COUNT] = {"network.host", "security.insecure"};

const char *kiln_entitlement_name(unsigned bit)
{
    for (unsigned i = 0; i < KILN_ENTITLEMENT_COUNT; i++)
        if (bit == 1u << i)
            return names[i];
    return NULL;
}

int kiln_entitlement_parse(const char *list, unsigned *set, kiln_error_t *err)
{
    _cleanup_free_ char *copy = kiln_xstrdup(list);
    unsigned add = 0;
    char *save = NULL;

    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned i = 0;
        while (i < KILN_ENTITLEMENT_COUNT && strcmp(t, names[i]) != 0)
            i++;
        if (i == KILN_ENTITLEMENT_COUNT)
            return kiln_error_set(err, 0,
                                  "unknown entitlement '%s' (known: network.host, "
                                  "security.insecure)",
                                  t);
        add |= 1u << i;
    }
    if (add == 0)
        return kiln_error_set(err, 0, "no entitlement named in '%s'", list);
    *set |= add;
    return 0;
}

/* The refusal of a RUN flag needing entitlement `bit`. */
static int needs(const kiln_df_node_t *n, const char *flag, unsigned bit, kiln_error_t *err)
{
    const char *name = kiln_entitlement_name(bit);
    return kiln_error_set(err, 0,
                          "Dockerfile:%d: RUN %s needs the %s entitlement: start the build "
                          "with --allow %s",
                          n->start_line, flag, name, name);
}

int kiln_entitlement_check_run(const kiln_df_node_t *n, unsigned granted, bool chroot,
                               kiln_run_security_t *out, kiln_error_t *err)
{
    kiln_run_security_t r = {0};

    for (size_t i = 0; i < n->n_flags; i++) {
        const char *f = n->flags[i];
        if (strncmp(f, "--network=", 10) == 0) {
            r.network = f + 10;
            if (strcmp(r.network, "host") == 0 && !(granted & KILN_ENTITLEMENT_NETWORK_HOST))
                return needs(n, f, KILN_ENTITLEMENT_NETWORK_HOST, err);
            if (strcmp(r.network, "host") != 0 && strcmp(r.network, "none") != 0 &&
                strcmp(r.network, "default") != 0)
                return kiln_error_set(err, 0,
                                      "Dockerfile:%d: RUN %s: unknown network mode (default, "
                                      "none or host)",
                                      n->start_line, f);
        } else if (strncmp(f, "--security=", 11) == 0) {
            r.insecure = strcmp(f + 11, "insecure") == 0;
            if (!r.insecure && strcmp(f + 11, "sandbox") != 0)
                return kiln_error_set(err, 0,
                                      "Dockerfile:%d: RUN %s: unknown security mode (sandbox or "
                                      "insecure)",
                                      n->start_line, f);
            if (r.insecure && !(granted & KILN_ENTITLEMENT_SECURITY_INSECURE))
                return needs(n, f, KILN_ENTITLEMENT_SECURITY_INSECURE, err);
            if (r.insecure && chroot)
                return kiln_error_set(err, 0,
                                      "Dockerfile:%d: RUN %s needs user namespaces: with "
                                      "--isolation chroot it would run as host root with every "
                                      "capability",
                                      n->start_line, f);
        }
    }
    if (out)
        *out = r;
    return 0;
}

int kiln_entitlement_check_dockerfile(const kiln_dockerfile_t *df, unsigned granted, bool chroot,
                                      kiln_error_t *err)
{
    for (size_t i = 0; i < df->n_nodes; i++) {
        const kiln_df_node_t *n = &df->nodes[i];
        /* ONBUILD RUN runs in the builds FROM this image: checked there */
        if (strcmp(n->keyword, "run") == 0 &&
            kiln_entitlement_check_run(n, granted, chroot, NULL, err) < 0)
            return -1;
    }
    return 0;
}
