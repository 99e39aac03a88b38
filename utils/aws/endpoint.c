/* kiln — AWS region and endpoint resolution (see endpoint.h). */
#include "utils/aws/endpoint.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utils/aws/credentials.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

char *kiln_aws_region_resolve(void)
{
    const char *r = getenv("AWS_REGION");
    char *cfg;
    if (r == NULL || r[0] == '\0')
        r = getenv("AWS_DEFAULT_REGION");
    if (r && r[0])
        return kiln_xstrdup(r);
    cfg = kiln_aws_config_get("region");
    if (cfg && cfg[0])
        return cfg;
    free(cfg);
    return kiln_xstrdup("us-east-1");
}

void kiln_aws_endpoint_clear(kiln_aws_endpoint_t *e)
{
    if (e == NULL)
        return;
    free(e->scheme);
    free(e->host);
    free(e->base_path);
    memset(e, 0, sizeof(*e));
}

int kiln_aws_endpoint_parse(const char *url, kiln_aws_endpoint_t *out, kiln_error_t *err)
{
    const char *p, *slash;
    size_t plen;
    kiln_aws_endpoint_t e = {0};

    if (strncmp(url, "https://", 8) == 0) {
        e.scheme = kiln_xstrdup("https");
        p = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        e.scheme = kiln_xstrdup("http");
        p = url + 7;
    } else {
        return kiln_error_set(err, EINVAL, "endpoint '%s' is not an http(s) URL", url);
    }
    slash = strchr(p, '/');
    e.host = slash ? kiln_xstrndup(p, (size_t)(slash - p)) : kiln_xstrdup(p);
    if (e.host[0] == '\0' || strchr(e.host, '@') || strchr(e.host, '?')) {
        kiln_aws_endpoint_clear(&e);
        return kiln_error_set(err, EINVAL, "endpoint '%s' has no usable host", url);
    }
    e.base_path = kiln_xstrdup(slash ? slash : "");
    plen = strlen(e.base_path);
    while (plen > 0 && e.base_path[plen - 1] == '/')
        e.base_path[--plen] = '\0';
    *out = e;
    return 0;
}

int kiln_aws_endpoint_resolve(const char *service, const char *region, kiln_aws_endpoint_t *out,
                              kiln_error_t *err)
{
    char var[64];
    size_t n = (size_t)snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_");
    const char *url;
    kiln_aws_endpoint_t e = {0};

    for (const char *s = service; *s && n + 1 < sizeof(var); s++)
        var[n++] = (char)toupper((unsigned char)*s);
    var[n] = '\0';
    url = getenv(var);
    if (url == NULL || url[0] == '\0')
        url = getenv("AWS_ENDPOINT_URL");
    if (url && url[0]) {
        if (kiln_aws_endpoint_parse(url, &e, err) < 0)
            return kiln_error_prefix(err, "%s", var);
        e.custom = 1;
        *out = e;
        return 0;
    }
    e.scheme = kiln_xstrdup("https");
    e.host = kiln_xasprintf("%s%s.%s.amazonaws.com%s", strcmp(service, "ecr") == 0 ? "api." : "",
                            service, region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    e.base_path = kiln_xstrdup("");
    *out = e;
    return 0;
}
