/* libFuzzer target: the registry settings of a lazy blob record (oci/registry_settings) must
 * never crash; what they accept must keep the fetch on the record's own registry: mirrors
 * of that registry only, to a plain host (no scheme, userinfo), plain HTTP only for it or its
 * mirrors, absolute paths. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry_settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SRC "docker.io"

static int has_host(const char *const *mirrors, const char *host)
{
    if (strcmp(host, SRC) == 0 || strcmp(host, "registry-1.docker.io") == 0)
        return 1;
    for (size_t i = 0; mirrors != NULL && mirrors[i] != NULL; i++) {
        const char *h = mirrors[i] + strlen(SRC "=");
        size_t n = strcspn(h, "/");
        if (strlen(host) == n && strncmp(h, host, n) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    kiln_registry_settings_t st = {0};
    kiln_registry_opts_t o;
    kiln_error_t err = {0};

    if (j == NULL)
        return 0;
    kiln_registry_opts_init(&o);
    if (kiln_registry_settings_opts(j, SRC, &o, &st, &err) == 0) {
        for (size_t i = 0; o.mirrors != NULL && o.mirrors[i] != NULL; i++)
            if (strncmp(o.mirrors[i], SRC "=", strlen(SRC "=")) != 0 ||
                strchr(o.mirrors[i], '@') != NULL || strstr(o.mirrors[i], "://") != NULL)
                abort();
        for (size_t i = 0; o.insecure != NULL && o.insecure[i] != NULL; i++)
            if (!has_host(o.mirrors, o.insecure[i]))
                abort();
        if ((o.ca_file != NULL && o.ca_file[0] != '/') || (st.certs != NULL && st.certs[0] != '/'))
            abort();
    }
    kiln_registry_settings_clear(&st);
    json_decref(j);
    return 0;
}
