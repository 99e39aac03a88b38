/* kiln — the settings a registry client reaches one registry with (its mirrors, which of
 * those hosts take plain HTTP, the extra CA bundle, the per-host CA directory), kept as JSON
 * so that a later client reaches the same registry the same way: a lazy blob of a registry
 * base (oci/store_lazy) is fetched, maybe by another command, through the mirror and with the
 * CA of the build that recorded it. Never credentials: those are looked up per host when the
 * fetch needs them (docker config, credential helpers).
 *
 *   {"mirrors": ["SRC=HOST[:PORT][/PREFIX]", ...], "insecure": ["HOST[:PORT]", ...],
 *    "ca": "/abs/ca.pem", "certs": "/abs/certs.d"}   (each key optional) */
#ifndef KILN_OCI_REGISTRY_SETTINGS_H
#define KILN_OCI_REGISTRY_SETTINGS_H

#include <jansson.h>

#include "oci/registry.h"
#include "utils/error.h"

/* The settings r uses for source registry `registry` ("docker.io", "HOST[:PORT]"): its
 * mirrors (userinfo left out), the hosts among it and its mirrors that r allows plain HTTP,
 * r's extra CA and a per-host CA directory other than the default, as absolute paths. A new
 * reference, or NULL when r reaches it with the defaults only. */
json_t *kiln_registry_settings_for(kiln_registry_t *r, const char *registry);

/* What kiln_registry_settings_opts lends to the options it fills. */
typedef struct kiln_registry_settings {
    char **mirrors;
    char **insecure;
    char *ca;
    char *certs;
} kiln_registry_settings_t;

void kiln_registry_settings_clear(kiln_registry_settings_t *st);

/* Fills o's mirrors, insecure hosts, CA and CA directory from settings j (as made by
 * kiln_registry_settings_for) for source registry `registry`; the strings are st's. A mirror
 * of another source, a host with a scheme, userinfo or a path where none belongs, a relative
 * path or an unknown key is refused (the settings would send the fetch elsewhere than where
 * the recording build went): -1 with err naming the entry. */
int kiln_registry_settings_opts(const json_t *j, const char *registry, kiln_registry_opts_t *o,
                                kiln_registry_settings_t *st, kiln_error_t *err);

#endif
