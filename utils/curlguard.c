/* kiln — the address policy on libcurl transfers (see curlguard.h). */
#include "utils/curlguard.h"

#include <stdio.h>
#include <sys/socket.h>

/* CURLOPT_OPENSOCKETFUNCTION: the socket for a checked address, or
 * CURL_SOCKET_BAD (curl then tries the next address of the name, or fails
 * with CURLE_COULDNT_CONNECT). */
static curl_socket_t open_checked(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    kiln_curlguard_t *g = ud;
    kiln_error_t e = {0};

    if (purpose != CURLSOCKTYPE_IPCXN ||
        kiln_netpolicy_check(g->policy, &a->addr, (socklen_t)a->addrlen, &e) < 0) {
        if (!g->refused)
            snprintf(g->msg, sizeof(g->msg), "%s",
                     e.msg[0] ? e.msg : "connection refused by the address policy");
        g->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

void kiln_curlguard_apply(CURL *h, kiln_curlguard_t *g)
{
    g->refused = 0;
    g->msg[0] = '\0';
    if (g->policy == NULL)
        return;
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_checked);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, g);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
}

CURLcode kiln_curlguard_result(const kiln_curlguard_t *g, CURLcode cc)
{
    if (g->refused && cc == CURLE_COULDNT_CONNECT)
        return CURLE_REMOTE_ACCESS_DENIED;
    return cc;
}
