/* kiln — additional (read-only) image stores: what containers/storage calls
 * `additionalimagestores`. An operator unpacks images into a directory once (`kiln store add
 * DIR IMAGE...`, e.g. while building a worker image) and every kiln root that names the
 * directory (`--additional-store DIR`, $KILN_ADDITIONAL_STORES, the server config) uses those
 * images' blobs and unpacked trees instead of downloading and unpacking them. Builds only read
 * it: the trees are overlay lower dirs (never written), the blobs are read through the store.
 *
 * Layout of DIR (version 1):
 *
 *   DIR/kiln-additional-store     "kiln additional store v1\n": what marks the directory
 *   DIR/blobs/sha256/<hex>        every blob of the images added (manifests, configs, layers)
 *   DIR/chains/<hex>/             the merged tree of an image's layers (plain: whiteouts
 *                                 applied, no overlay markers), named by the OCI ChainID of
 *                                 its diff_ids; it stands for the whole chain as the bottom
 *                                 lower dir of an overlay
 *   DIR/chains/<hex>.json         {"chain_id", "layers": [{"digest", "diff_id", "size",
 *                                 "media_type"}, ...]}: what the tree was unpacked from (each
 *                                 diff_id checked while unpacking)
 *   DIR/images.json               {"images": [{"name", "manifest", "chain_id"}]}: listing only
 *   DIR/empty/                    an empty directory, the lower dir of the layers below a
 *                                 chain's top (the chain's tree stands for them all)
 *   DIR/lock, DIR/tmp/            `kiln store add`'s lock and its temp trees (renamed in)
 *
 * Trust: the store is the operator's (as oci_dirs are), so its content is not hashed again
 * at each use; what is checked is that nobody else could have changed it: the directory, the
 * directories above it and each entry used are owned by root or by kiln's user and not
 * writable by group or others (an ancestor may be a sticky directory such as /tmp), and a
 * chain is used only when its metadata names exactly the layers (blob digest and diff_id,
 * bottom up) the image asks for. Lookups go by digest (ChainID, blob digest), never by a name a
 * build gives. */
#ifndef KILN_OCI_ADDITIONAL_STORE_H
#define KILN_OCI_ADDITIONAL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "oci/image.h"
#include "oci/store.h"
#include "utils/error.h"

#define KILN_ASTORE_MARKER "kiln-additional-store"
#define KILN_ASTORE_VERSION "kiln additional store v1\n"
/* The most additional stores a root takes (as containers/storage, a short list). */
#define KILN_ASTORE_MAX 16

typedef struct kiln_astore kiln_astore_t;

/* One layer of a chain as an image names it (blob digest and diff_id, bottom up). */
typedef struct kiln_astore_layer {
    kiln_digest_t digest;
    kiln_digest_t diff_id;
} kiln_astore_layer_t;

/* Opens the store at dir (an absolute path) after checking that it is a store of this
 * version and that neither it, its fixed subdirectories nor a directory above it can be
 * changed by anyone but root or kiln's user. -1 with err naming the path and what would
 * allow it (e.g. "chmod go-w DIR"). */
int kiln_astore_open(const char *dir, kiln_astore_t **out, kiln_error_t *err);
void kiln_astore_free(kiln_astore_t *a);
/* The store's canonical path. */
const char *kiln_astore_dir(const kiln_astore_t *a);

/* Opens blob d read-only when the store has it as a regular file owned by root or kiln's
 * user and not writable by others: 1 with *fd (O_CLOEXEC) and *size, 0 when absent or not
 * usable (a warning's text in err when present but refused), -1 never. */
int kiln_astore_open_blob(const kiln_astore_t *a, const kiln_digest_t *d, int *fd, uint64_t *size,
                          kiln_error_t *err);

/* The OCI ChainID of layers[0..n) (n >= 1). */
void kiln_astore_chain_id(const kiln_astore_layer_t *layers, size_t n, kiln_digest_t *out);

/* The tree standing for layers[0..n) as one lower dir: 1 with *path (malloc'ed) when the
 * store holds that chain and its metadata names exactly these layers; 0 when it does not
 * hold it (err untouched); -1 when it holds an entry that cannot be used (its metadata
 * unreadable or naming other layers, the tree or the metadata writable by others or not
 * kiln's): err says why, for a warning; the caller pulls as without the store. */
int kiln_astore_chain(const kiln_astore_t *a, const kiln_astore_layer_t *layers, size_t n,
                      char **path, kiln_error_t *err);

/* Checks a chain's metadata (buf, len: the JSON of DIR/chains/<hex>.json, at most 1 MiB) names
 * exactly layers[0..n) (n >= 1) as the chain of their ChainID: 0, or -1 with err naming `what`
 * and the first difference. */
int kiln_astore_meta_check(const char *buf, size_t len, const kiln_astore_layer_t *layers, size_t n,
                           const char *what, kiln_error_t *err);

/* "DIR/empty": the lower dir of the layers a chain's tree stands for below its top. */
const char *kiln_astore_empty_dir(const kiln_astore_t *a);

/* Adds the image whose manifest (digest md, platform manifest, not an index) is in store s
 * to the additional store at dir (created when missing, mode 0755): its blobs copied (each
 * checked against its digest), its layers unpacked bottom up into one tree (each diff_id
 * checked), metadata written, all in temp files and directories renamed into place under
 * DIR/lock, so a reader never sees a half-written entry and a failed add leaves nothing.
 * name (may be NULL) is listed in images.json. An image whose chain is there already is
 * only listed. *chain (may be NULL) gets its ChainID. -1 with err naming the image.
 * With KILN_ASTORE_NO_BLOBS the layer blobs are left out (the manifest and config are kept):
 * a store half the size, whose builds still download the layer blobs (in the background, for
 * the image they write) but never unpack them. */
#define KILN_ASTORE_NO_BLOBS 1u
int kiln_astore_add_image(const char *dir, kiln_store_t *s, const kiln_digest_t *md,
                          const char *name, unsigned flags, kiln_digest_t *chain,
                          kiln_error_t *err);

#endif
