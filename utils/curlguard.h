/* kiln — the address policy on libcurl transfers.
 *
 * A guard makes every connection a curl handle opens pass a
 * kiln_netpolicy_t: the check runs in CURLOPT_OPENSOCKETFUNCTION, on the
 * exact address curl is about to connect to (after DNS, for every redirect
 * hop), so the address checked is the address connected to and a DNS answer
 * cannot change between the two. Guarded transfers speak http and https only
 * and ignore the environment's proxies (a proxy would make the connection to
 * the destination on our behalf, out of the policy's sight). */
#ifndef KILN_UTILS_CURLGUARD_H
#define KILN_UTILS_CURLGUARD_H

#include <curl/curl.h>

#include "utils/netpolicy.h"

#define KILN_CURLGUARD_MSG_MAX 256

typedef struct kiln_curlguard {
    const kiln_netpolicy_t *policy;   /* borrowed */
    int refused;                      /* a connection was refused by the policy */
    char msg[KILN_CURLGUARD_MSG_MAX]; /* the first refusal: address, class, what allows it */
} kiln_curlguard_t;

/* Arms the guard on h for its next transfer (after curl_easy_reset): the
 * policy check, http/https only (redirects too), no proxy. g must stay valid
 * until the transfer ends; its refusal state is cleared. A NULL policy
 * leaves h unguarded. */
void kiln_curlguard_apply(CURL *h, kiln_curlguard_t *g);

/* The curl result with a refusal made explicit: CURLE_COULDNT_CONNECT
 * becomes CURLE_REMOTE_ACCESS_DENIED when the guard refused the connection
 * (not worth retrying). */
CURLcode kiln_curlguard_result(const kiln_curlguard_t *g, CURLcode cc);

#endif
