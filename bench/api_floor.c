/* The floor of bench/api.sh: libmicrohttpd in the threading mode kiln serve uses (a thread per
 * connection, poll), answering every request with the bytes of FILE (a GET /v1/builds/{id}
 * answer kiln gave) and no other work: no token check, no store, no JSON, no access log.
 * What wrk measures against it is what this machine, at its load, gives any server built like
 * kiln's; the difference to kiln's figures is kiln's own work.
 *   usage: api_floor PORT FILE   (listens on 127.0.0.1:PORT until SIGTERM or SIGINT) */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char body[1 << 16];
static size_t body_len;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    /* the answer goes on the second call, once the request is read, as kiln serve's does:
     * queued on the first, MHD would close the connection after it (no keep-alive) */
    if (*con_cls == NULL) {
        *con_cls = body;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    r = MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct MHD_Daemon *d;
    sigset_t set;
    FILE *f;
    int sig;

    if (argc != 3 || (f = fopen(argv[2], "rb")) == NULL) {
        fprintf(stderr, "usage: api_floor PORT FILE\n");
        return 2;
    }
    body_len = fread(body, 1, sizeof(body), f);
    fclose(f);
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT, 1024u,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(256 * 1024), MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "api_floor: cannot listen on 127.0.0.1:%s\n", argv[1]);
        return 1;
    }
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
