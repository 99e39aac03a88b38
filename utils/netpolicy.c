/* kiln — the address policy (classes, allowlist, checks). */
#include "utils/netpolicy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

typedef struct rule {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order, 4 bytes used for AF_INET */
    unsigned prefix;  /* bits */
    unsigned port;    /* 0: any */
} rule_t;

struct kiln_netpolicy {
    kiln_netpolicy_mode_t mode;
    rule_t rules[KILN_NETPOLICY_MAX_RULES];
    size_t n_rules;
};

kiln_netpolicy_t *kiln_netpolicy_new(kiln_netpolicy_mode_t mode)
{
    kiln_netpolicy_t *p = kiln_xzalloc(sizeof(*p));
    p->mode = mode;
    return p;
}

int kiln_netpolicy_with(kiln_netpolicy_mode_t mode, const char *const *allow, size_t n,
                        kiln_netpolicy_t **out, kiln_error_t *err)
{
    kiln_netpolicy_t *p = kiln_netpolicy_new(mode);
    for (size_t i = 0; i < n; i++)
        if (kiln_netpolicy_allow(p, allow[i], err) < 0) {
            kiln_netpolicy_free(p);
            return -1;
        }
    *out = p;
    return 0;
}

kiln_netpolicy_t *kiln_netpolicy_dup(const kiln_netpolicy_t *p)
{
    kiln_netpolicy_t *q = kiln_xzalloc(sizeof(*q));
    *q = *p;
    return q;
}

void kiln_netpolicy_free(kiln_netpolicy_t *p)
{
    free(p);
}

kiln_netpolicy_mode_t kiln_netpolicy_mode(const kiln_netpolicy_t *p)
{
    return p->mode;
}

/* Whether the first `bits` bits of a and b agree. */
static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool v4_in(uint32_t a, uint32_t net, unsigned bits)
{
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (a & mask) == (net & mask);
}

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static kiln_netclass_t classify_v4(uint32_t a)
{
    /* metadata endpoints first: some sit inside other classes */
    static const uint32_t metadata[] = {
        V4(169, 254, 169, 254), /* AWS, GCP, Azure, OpenStack instance metadata */
        V4(169, 254, 170, 2),   /* ECS task metadata and credentials */
        V4(169, 254, 170, 23),  /* EKS pod identity agent */
        V4(169, 254, 169, 123), /* AWS time sync */
        V4(169, 254, 169, 253), /* AWS VPC DNS */
        V4(100, 100, 100, 200), /* Alibaba Cloud metadata */
        V4(192, 0, 0, 192),     /* Oracle Cloud metadata */
    };
    for (size_t i = 0; i < sizeof(metadata) / sizeof(metadata[0]); i++)
        if (a == metadata[i])
            return KILN_NETCLASS_METADATA;
    if (v4_in(a, V4(127, 0, 0, 0), 8) || v4_in(a, V4(0, 0, 0, 0), 8))
        return KILN_NETCLASS_LOOPBACK;
    if (v4_in(a, V4(169, 254, 0, 0), 16))
        return KILN_NETCLASS_LINK_LOCAL;
    if (v4_in(a, V4(10, 0, 0, 0), 8) || v4_in(a, V4(172, 16, 0, 0), 12) ||
        v4_in(a, V4(192, 168, 0, 0), 16))
        return KILN_NETCLASS_PRIVATE;
    if (v4_in(a, V4(100, 64, 0, 0), 10))
        return KILN_NETCLASS_CGNAT;
    if (v4_in(a, V4(224, 0, 0, 0), 4) || v4_in(a, V4(240, 0, 0, 0), 4))
        return KILN_NETCLASS_RESERVED; /* multicast; class E and broadcast */
    return KILN_NETCLASS_PUBLIC;
}

static uint32_t be32_at(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4,
 * Teredo), if any. */
static bool embedded_v4(const uint8_t *a, uint32_t *v4)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t zero[12] = {0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0) {
        *v4 = be32_at(a + 12);
        return true;
    }
    if (memcmp(a, zero, 12) == 0 && be32_at(a + 12) > 1) { /* ::a.b.c.d (not :: or ::1) */
        *v4 = be32_at(a + 12);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4 2002:AABB:CCDD::/48 */
        *v4 = be32_at(a + 2);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) { /* Teredo: client, inverted */
        *v4 = ~be32_at(a + 12);
        return true;
    }
    return false;
}

static kiln_netclass_t classify_v6(const uint8_t *a)
{
    static const uint8_t ec2_metadata[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0,    0,
                                             0,    0, 0,    0,    0, 0, 0x02, 0x54};
    static const uint8_t ec2_dns[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23};
    static const uint8_t ec2_ntp[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7b};
    static const uint8_t any[16] = {0};
    static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    uint32_t v4;

    if (memcmp(a, ec2_metadata, 16) == 0 || memcmp(a, ec2_dns, 16) == 0 ||
        memcmp(a, ec2_ntp, 16) == 0)
        return KILN_NETCLASS_METADATA;
    if (memcmp(a, any, 16) == 0 || memcmp(a, one, 16) == 0)
        return KILN_NETCLASS_LOOPBACK;
    if (embedded_v4(a, &v4))
        return classify_v4(v4);
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return KILN_NETCLASS_LINK_LOCAL;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return KILN_NETCLASS_PRIVATE; /* deprecated site-local fec0::/10 */
    if ((a[0] & 0xfe) == 0xfc)
        return KILN_NETCLASS_PRIVATE; /* ULA fc00::/7 */
    if (a[0] == 0xff)
        return KILN_NETCLASS_RESERVED;
    if (a[0] == 0x01 && a[1] == 0 && memcmp(a + 2, any, 6) == 0)
        return KILN_NETCLASS_RESERVED; /* discard-only 100::/64 */
    return KILN_NETCLASS_PUBLIC;
}

kiln_netclass_t kiln_netpolicy_classify(const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return classify_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        return classify_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return KILN_NETCLASS_RESERVED;
}

const char *kiln_netclass_name(kiln_netclass_t c)
{
    switch (c) {
    case KILN_NETCLASS_PUBLIC:
        return "public address";
    case KILN_NETCLASS_LOOPBACK:
        return "loopback address";
    case KILN_NETCLASS_LINK_LOCAL:
        return "link-local address";
    case KILN_NETCLASS_METADATA:
        return "instance metadata address";
    case KILN_NETCLASS_PRIVATE:
        return "private network address (RFC 1918 / ULA)";
    case KILN_NETCLASS_CGNAT:
        return "shared address space (CGNAT, RFC 6598)";
    case KILN_NETCLASS_RESERVED:
        return "multicast or reserved address";
    case KILN_NETCLASS_HOST:
        return "address of this host";
    }
    return "address";
}

/* Parses `ADDR` or `ADDR/LEN` (no brackets) into r. */
static bool parse_cidr(const char *s, rule_t *r)
{
    char buf[INET6_ADDRSTRLEN + 8];
    char *slash, *end;
    unsigned max;
    long len;

    if (strlen(s) >= sizeof(buf) || s[0] == '\0')
        return false;
    memcpy(buf, s, strlen(s) + 1); /* fits: checked above */
    slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(r->addr, 0, sizeof(r->addr));
    if (inet_pton(AF_INET, buf, r->addr) == 1) {
        r->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
        r->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    r->prefix = max;
    if (slash != NULL) {
        if (slash[1] < '0' || slash[1] > '9')
            return false;
        errno = 0;
        len = strtol(slash + 1, &end, 10);
        if (errno != 0 || *end != '\0' || len < 0 || (unsigned long)len > max)
            return false;
        r->prefix = (unsigned)len;
    }
    return true;
}

static bool parse_port(const char *s, unsigned *port)
{
    char *end;
    long v;
    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
        return false;
    *port = (unsigned)v;
    return true;
}

/* Parses an allowlist entry into r (see kiln_netpolicy_allow). */
static bool parse_spec(const char *spec, rule_t *r)
{
    char buf[INET6_ADDRSTRLEN + 16];
    const char *colon;

    memset(r, 0, sizeof(*r));
    if (strlen(spec) >= sizeof(buf))
        return false;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        const char *rest;
        if (close == NULL)
            return false;
        memcpy(buf, spec + 1, (size_t)(close - spec - 1));
        buf[close - spec - 1] = '\0';
        rest = close + 1;
        if (rest[0] == '/') { /* [ADDR]/LEN[:PORT] */
            const char *pc = strchr(rest, ':');
            size_t l = strlen(buf);
            size_t n = pc ? (size_t)(pc - rest) : strlen(rest);
            if (l + n + 1 > sizeof(buf))
                return false;
            memcpy(buf + l, rest, n);
            buf[l + n] = '\0';
            rest += n;
        }
        if (!parse_cidr(buf, r) || r->family != AF_INET6)
            return false;
        if (rest[0] == '\0')
            return true;
        return rest[0] == ':' && parse_port(rest + 1, &r->port);
    }
    colon = strchr(spec, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
        return parse_cidr(spec, r) && r->family == AF_INET6; /* bare IPv6, no port */
    if (colon == NULL)
        return parse_cidr(spec, r);
    memcpy(buf, spec, (size_t)(colon - spec));
    buf[colon - spec] = '\0';
    return parse_cidr(buf, r) && r->family == AF_INET && parse_port(colon + 1, &r->port);
}

int kiln_netpolicy_validate(const char *spec, kiln_error_t *err)
{
    rule_t r;
    if (!parse_spec(spec, &r))
        return kiln_error_set(err, 0,
                              "bad address allowlist entry \"%s\": expected CIDR or ADDR, "
                              "optionally :PORT (IPv6 in brackets when a port follows)",
                              spec);
    return 0;
}

int kiln_netpolicy_allow(kiln_netpolicy_t *p, const char *spec, kiln_error_t *err)
{
    rule_t r;
    if (kiln_netpolicy_validate(spec, err) < 0)
        return -1;
    parse_spec(spec, &r);
    if (p->n_rules >= KILN_NETPOLICY_MAX_RULES)
        return kiln_error_set(err, 0, "too many address allowlist entries (at most %d): %s",
                              KILN_NETPOLICY_MAX_RULES, spec);
    p->rules[p->n_rules++] = r;
    return 0;
}

int kiln_netpolicy_allow_resolvers(kiln_netpolicy_t *p, const char *resolv_conf, kiln_error_t *err)
{
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    char *save = NULL;

    if (kiln_fs_read_file(resolv_conf, 1 << 16, &data, &len, err) < 0) {
        if (err != NULL && err->code == ENOENT) {
            kiln_error_clear(err);
            return 0;
        }
        return -1;
    }
    for (char *line = strtok_r(data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char addr[INET6_ADDRSTRLEN + 1];
        rule_t r;
        char *pct;
        if (sscanf(line, " nameserver %46s", addr) != 1)
            continue;
        if ((pct = strchr(addr, '%')) != NULL)
            *pct = '\0'; /* a zone index */
        if (!parse_cidr(addr, &r) || p->n_rules >= KILN_NETPOLICY_MAX_RULES)
            continue;
        r.port = 53;
        p->rules[p->n_rules++] = r;
    }
    return 0;
}

/* The address bytes, family and port of sa (IPv4-mapped IPv6 as IPv4, so a
 * rule written in one form matches the other). */
static bool sa_parts(const struct sockaddr *sa, socklen_t len, int *family, uint8_t *addr,
                     unsigned *port)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        *family = AF_INET;
        memcpy(addr, &s->sin_addr, 4);
        *port = ntohs(s->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        *port = ntohs(s->sin6_port);
        if (memcmp(s->sin6_addr.s6_addr, mapped, 12) == 0) {
            *family = AF_INET;
            memcpy(addr, s->sin6_addr.s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(addr, s->sin6_addr.s6_addr, 16);
        }
        return true;
    }
    return false;
}

static bool allowlisted(const kiln_netpolicy_t *p, int family, const uint8_t *addr, unsigned port)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        const rule_t *r = &p->rules[i];
        if (r->family == family && (r->port == 0 || r->port == port) &&
            prefix_match(r->addr, addr, r->prefix))
            return true;
    }
    return false;
}

bool kiln_netpolicy_opens(const kiln_netpolicy_t *p, const char *cidr)
{
    rule_t range;
    if (!parse_cidr(cidr, &range))
        return false;
    for (size_t i = 0; i < p->n_rules; i++) {
        const rule_t *r = &p->rules[i];
        unsigned bits = r->prefix < range.prefix ? r->prefix : range.prefix;
        if (r->family == range.family && prefix_match(r->addr, range.addr, bits))
            return true;
    }
    return false;
}

/* Whether addr is one of this host's interface addresses. */
static bool is_host_address(int family, const uint8_t *addr)
{
    struct ifaddrs *ifa = NULL;
    bool found = false;

    if (getifaddrs(&ifa) < 0)
        return false;
    for (struct ifaddrs *i = ifa; i != NULL && !found; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != family)
            continue;
        if (family == AF_INET)
            found = memcmp(&((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr, 4) == 0;
        else
            found = memcmp(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, addr, 16) == 0;
    }
    freeifaddrs(ifa);
    return found;
}

void kiln_netpolicy_suggest(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    uint8_t addr[16];
    char txt[INET6_ADDRSTRLEN];
    unsigned port;
    int family;

    if (size == 0)
        return;
    out[0] = '\0';
    if (!sa_parts(sa, len, &family, addr, &port) ||
        inet_ntop(family, addr, txt, sizeof(txt)) == NULL)
        return;
    if (family == AF_INET)
        snprintf(out, size, "%s/32", txt);
    else
        snprintf(out, size, "[%s]/128", txt);
}

/* Fills err with a refusal (code EACCES, no strerror: the message says why). */
static int refuse(kiln_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(kiln_error_t *err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = EACCES;
    return -1;
}

int kiln_netpolicy_check(const kiln_netpolicy_t *p, const struct sockaddr *sa, socklen_t len,
                         kiln_error_t *err)
{
    uint8_t addr[16];
    char txt[INET6_ADDRSTRLEN], hint[INET6_ADDRSTRLEN + 8];
    unsigned port;
    int family;
    kiln_netclass_t c;

    if (!sa_parts(sa, len, &family, addr, &port))
        return refuse(err, "address family %d is not allowed", (int)sa->sa_family);
    c = kiln_netpolicy_classify(sa, len);
    inet_ntop(family, addr, txt, sizeof(txt));
    if (c == KILN_NETCLASS_METADATA)
        return refuse(err, "%s port %u: %s, never allowed", txt, port, kiln_netclass_name(c));
    if (c == KILN_NETCLASS_LINK_LOCAL && p->mode == KILN_NETPOLICY_NO_LINK_LOCAL)
        return refuse(err, "%s port %u: %s, never allowed", txt, port, kiln_netclass_name(c));
    if (p->mode == KILN_NETPOLICY_NO_LINK_LOCAL)
        return 0;
    if (allowlisted(p, family, addr, port))
        return 0;
    if (c == KILN_NETCLASS_PUBLIC && is_host_address(family, addr))
        c = KILN_NETCLASS_HOST;
    if (c == KILN_NETCLASS_PUBLIC)
        return 0;
    kiln_netpolicy_suggest(sa, len, hint, sizeof(hint));
    return refuse(err,
                  "%s port %u: %s, refused by the address policy (an operator can "
                  "allow it with --allow-address %s)",
                  txt, port, kiln_netclass_name(c), hint);
}
