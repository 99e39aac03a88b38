/* fetch IP PORT PATH: one HTTP/1.0 GET, response printed to stdout (IP is
 * IPv4 or IPv6, ::ffff:a.b.c.d included, through an AF_INET6 socket). Exits 0
 * when a response came back, 3 when the connection failed (a step reaching
 * for instance metadata or the host's loopback must get 3). Busybox's static
 * wget is not usable for this: it crashes in getaddrinfo. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6};
    struct sockaddr *to = (struct sockaddr *)&sa;
    socklen_t tolen = sizeof(sa);
    struct timeval tv = {.tv_sec = 5};
    char req[512], buf[4096];
    ssize_t n, total = 0;
    int s;

    if (argc < 4)
        return 2;
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        if (inet_pton(AF_INET6, argv[1], &sa6.sin6_addr) != 1)
            return 2;
        to = (struct sockaddr *)&sa6;
        tolen = sizeof(sa6);
    }
    sa.sin_port = sa6.sin6_port = htons((unsigned short)strtol(argv[2], NULL, 10));
    s = socket(to->sa_family, SOCK_STREAM, 0);
    if (s < 0)
        return 2;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, to, tolen) < 0) {
        printf("connect %s:%s: %s\n", argv[1], argv[2], strerror(errno));
        return 3;
    }
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[3], argv[1]);
    if (write(s, req, (size_t)n) != n)
        return 3;
    while ((n = read(s, buf, sizeof(buf))) > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        total += n;
    }
    if (total == 0) {
        printf("no response from %s:%s\n", argv[1], argv[2]);
        return 3;
    }
    return 0;
}
