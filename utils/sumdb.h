/* kiln — the Go checksum database (sum.golang.org) reached through a Go module
 * proxy that proxies it (<proxy>/sumdb/sum.golang.org/…, the way the go
 * command reaches it when GOPROXY is set): the h1 a module version must hash
 * to, proven rather than trusted.
 *
 * A lookup answers the record (module version h1 lines) and a signed tree
 * head ("go.sum database tree", size, root hash). The head's Ed25519
 * signature must be sum.golang.org's (its public key is compiled in), and
 * the record must be in that tree: the root is recomputed from the record's
 * leaf hash and the hashes of the tiles (tile/8/L/N[.p/W]) the proxy serves,
 * RFC 6962 style. A proxy can therefore refuse or fail, but not make kiln
 * accept another hash. Every reply is capped; nothing is written to disk. */
#ifndef KILN_UTILS_SUMDB_H
#define KILN_UTILS_SUMDB_H

#include "utils/error.h"
#include "utils/http.h"

/* Looks up module@version (e.g. "golang.org/toolchain", "v0.0.1-go1.27.3.linux-amd64")
 * through the proxy base URL (no trailing slash) on h (its address policy applies)
 * and sets *h1 (malloc'ed, "h1:<base64>") once the record is proven. Fails naming
 * the URL and what did not hold (no checksum database behind the proxy, the version
 * is unknown, a bad signature, a record outside the signed tree). */
int kiln_sumdb_lookup(kiln_http_t *h, const char *proxy, const char *module, const char *version,
                      char **h1, kiln_error_t *err);

/* The tile path of level `level`, index n, width w (tlog's Tile.Path: "tile/8/L/x001/234.p/56"),
 * malloc'ed. Exposed for the unit tests. */
char *kiln_sumdb_tile_path(int level, long long n, int w);

#endif
