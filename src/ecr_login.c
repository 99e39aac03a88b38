/* kiln — the built-in "ecr-login" credential helper and
 * --ecr-create-repository (see ecr_login.h). */
#include "src/ecr_login.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/docker_config.h"
#include "oci/reference.h"
#include "oci/registry.h"
#include "utils/aws/ecr.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/json.h"
#include "utils/mem.h"

static kiln_aws_t *ecr_aws;
static pthread_mutex_t ecr_aws_lock = PTHREAD_MUTEX_INITIALIZER;

/* The process-wide AWS context for ECR calls (created on first use). */
static kiln_aws_t *shared_aws(void)
{
    kiln_aws_t *aws;
    pthread_mutex_lock(&ecr_aws_lock);
    if (ecr_aws == NULL)
        ecr_aws = kiln_aws_new(NULL);
    aws = ecr_aws;
    pthread_mutex_unlock(&ecr_aws_lock);
    return aws;
}

/* Provider callback: 1 with Basic credentials from GetAuthorizationToken,
 * -1 with err set when ECR (or the credential chain) fails. */
static int ecr_provider(const char *host, kiln_cred_t *out, void *ud, kiln_error_t *err)
{
    char *user = NULL, *pass = NULL;

    (void)ud;
    if (kiln_ecr_login(shared_aws(), host, &user, &pass, NULL, err) < 0)
        return -1;
    out->username = user;
    out->password = pass;
    out->identity_token = NULL;
    return 1;
}

void kiln_cli_ecr_register(void)
{
    kiln_registry_set_cred_provider("ecr-login", ecr_provider, NULL);
}

/* The credential helper config.json names for host (credHelpers under the
 * keys docker accepts, else credsStore), malloc'ed, or NULL. */
static char *configured_helper(const char *host)
{
    _cleanup_free_ char *path = kiln_docker_config_path();
    _cleanup_free_ char *text = NULL;
    _cleanup_json_ json_t *cfg = NULL;
    const char *schemes[3] = {"", "https://", "http://"};
    const char *h = NULL;
    size_t len = 0;

    if (path == NULL || kiln_fs_read_file(path, KILN_DOCKER_CONFIG_MAX, &text, &len, NULL) < 0 ||
        kiln_json_loadb(text, len, KILN_DOCKER_CONFIG_MAX, path, &cfg, NULL) < 0 ||
        !json_is_object(cfg))
        return NULL;
    for (size_t i = 0; i < 3 && h == NULL; i++) {
        char key[300];
        snprintf(key, sizeof(key), "%s%s", schemes[i], host);
        h = kiln_json_get_string(json_object_get(cfg, "credHelpers"), key);
    }
    if (h == NULL)
        h = kiln_json_get_string(cfg, "credsStore");
    return h != NULL && h[0] != '\0' ? kiln_xstrdup(h) : NULL;
}

int kiln_cli_ecr_is_ecr(const char *host)
{
    _cleanup_free_ char *helper = NULL;

    if (kiln_ecr_parse_host(host, NULL, NULL))
        return 1;
    helper = configured_helper(host);
    return helper != NULL && strcmp(helper, "ecr-login") == 0;
}

/* A reference without its optional "docker://" transport. */
static const char *bare_ref(const char *s)
{
    return strncmp(s, "docker://", 9) == 0 ? s + 9 : s;
}

int kiln_cli_ecr_create_repositories(const char *const *refs, size_t n, kiln_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        kiln_reference_t ref = {0};
        int seen = 0, r;

        if (kiln_reference_parse(bare_ref(refs[i]), &ref, err) < 0)
            return -1;
        /* several tags of one repository: one call */
        for (size_t k = 0; k < i && !seen; k++) {
            kiln_reference_t other = {0};
            if (kiln_reference_parse(bare_ref(refs[k]), &other, NULL) == 0)
                seen = strcmp(other.registry, ref.registry) == 0 &&
                       strcmp(other.repository, ref.repository) == 0;
            kiln_reference_free(&other);
        }
        if (seen) {
            kiln_reference_free(&ref);
            continue;
        }
        if (!kiln_cli_ecr_is_ecr(ref.registry)) {
            fprintf(stderr, "%s is not an ECR registry: --ecr-create-repository leaves it alone\n",
                    ref.registry);
            kiln_reference_free(&ref);
            continue;
        }
        r = kiln_ecr_create_repository(shared_aws(), ref.registry, ref.repository, err);
        if (r > 0)
            fprintf(stderr, "created ECR repository %s on %s\n", ref.repository, ref.registry);
        kiln_reference_free(&ref);
        if (r < 0)
            return -1;
    }
    return 0;
}
