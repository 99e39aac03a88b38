/* kiln — the built-in "ecr-login" credential helper (see ecr_login.h). */
#include "src/ecr_login.h"

#include <pthread.h>
#include <stddef.h>

#include "oci/docker_config.h"
#include "oci/registry.h"
#include "utils/aws/ecr.h"

static kiln_aws_t *ecr_aws;
static pthread_mutex_t ecr_aws_lock = PTHREAD_MUTEX_INITIALIZER;

/* Provider callback: 1 with Basic credentials from GetAuthorizationToken,
 * -1 with err set when ECR (or the credential chain) fails. */
static int ecr_provider(const char *host, kiln_cred_t *out, void *ud, kiln_error_t *err)
{
    char *user = NULL, *pass = NULL;
    kiln_aws_t *aws;

    pthread_mutex_lock(&ecr_aws_lock);
    if (ecr_aws == NULL)
        ecr_aws = kiln_aws_new(NULL);
    aws = ecr_aws;
    pthread_mutex_unlock(&ecr_aws_lock);
    if (kiln_ecr_login(aws, host, &user, &pass, NULL, err) < 0)
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
