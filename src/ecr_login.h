/* kiln — the built-in "ecr-login" credential helper: hands ECR tokens
 * (utils/aws/ecr.h) to the registry client as Basic credentials. */
#ifndef KILN_SRC_ECR_LOGIN_H
#define KILN_SRC_ECR_LOGIN_H

/* Registers the helper under the name "ecr-login" (docker config.json
 * credHelpers / credsStore). Call once at start-up. */
void kiln_cli_ecr_register(void);

#endif
