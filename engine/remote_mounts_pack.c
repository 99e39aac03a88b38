/* kiln — the pack writer of a cache-mount save (see remote_mounts_pack.h).
 *
 * Files are read under the cache directory through utils/pathres (never following a link out
 * of it) and hashed as they are copied: content that no longer matches the scan's hash is
 * left out rather than saved under the wrong digest. */
#include "engine/remote_mounts_pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utils/cleanup.h"
#include "utils/mem.h"
#include "utils/pathres.h"

static int pack_close(kiln_mount_packer_t *s, kiln_error_t *err)
{
    kiln_mount_pack_t *p = s->n_packs ? &s->packs[s->n_packs - 1] : NULL;
    if (p == NULL || p->fd < 0)
        return 0;
    kiln_sha256_final(&p->h, &s->now->blobs[p->blob].digest);
    s->now->blobs[p->blob].size = p->size;
    if (close(p->fd) < 0) {
        p->fd = -1;
        return kiln_error_set(err, errno, "write %s", p->path);
    }
    p->fd = -1;
    return 0;
}

/* The pack being filled, a new one when there is none or it is full. */
static kiln_mount_pack_t *pack_current(kiln_mount_packer_t *s, kiln_error_t *err)
{
    kiln_mount_pack_t *p = s->n_packs ? &s->packs[s->n_packs - 1] : NULL;
    kiln_digest_t pending = {{0}};
    if (p && p->fd >= 0 && p->size < KILN_CM_PACK_MAX)
        return p;
    if (pack_close(s, err) < 0)
        return NULL;
    s->packs = kiln_xrealloc(s->packs, (s->n_packs + 1) * sizeof(*s->packs));
    p = &s->packs[s->n_packs++];
    memset(p, 0, sizeof(*p));
    p->path = kiln_xasprintf("%s/pack-%zu", s->work, s->n_packs);
    p->fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (p->fd < 0) {
        kiln_error_set(err, errno, "create %s", p->path);
        return NULL;
    }
    if (kiln_sha256_init(&p->h, err) < 0)
        return NULL;
    /* a placeholder digest no blob has, unique per pack, replaced when the pack is closed */
    snprintf(pending.hex, sizeof(pending.hex), "%064zx", s->n_packs);
    pending.hex[0] = 'z';
    p->blob = kiln_cm_add_blob(s->now, &pending, 0);
    return p;
}

/* Appends file i's content to the packs: 1 done, 0 when it changed since the scan (it is
 * left out), -1 with err. */
static int pack_file(kiln_mount_packer_t *s, size_t i, kiln_error_t *err)
{
    kiln_cm_entry_t *x = &s->now->e[i];
    _cleanup_close_ int fd = kiln_pathres_openat(s->rootfd, x->path, O_RDONLY | O_NOFOLLOW);
    _cleanup_free_ char *buf = kiln_xmalloc(1u << 20);
    kiln_sha256_t h;
    kiln_digest_t got;
    uint64_t done = 0;
    if (fd < 0)
        return 0;
    if (kiln_sha256_init(&h, err) < 0)
        return -1;
    while (done < x->size) {
        kiln_mount_pack_t *p = pack_current(s, err);
        uint64_t room, want;
        ssize_t n;
        if (p == NULL) {
            kiln_sha256_dispose(&h);
            return -1;
        }
        room = KILN_CM_PACK_MAX - p->size;
        want = x->size - done < room ? x->size - done : room;
        if (want > (1u << 20))
            want = 1u << 20;
        n = read(fd, buf, (size_t)want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            kiln_sha256_dispose(&h);
            return 0; /* shorter than at the scan */
        }
        if (write(p->fd, buf, (size_t)n) != n) {
            kiln_sha256_dispose(&h);
            return kiln_error_set(err, errno ? errno : EIO, "write %s", p->path);
        }
        kiln_sha256_update(&h, buf, (size_t)n);
        kiln_sha256_update(&p->h, buf, (size_t)n);
        if (x->n_segs && x->segs[x->n_segs - 1].blob == p->blob)
            x->segs[x->n_segs - 1].len += (uint64_t)n;
        else
            kiln_cm_add_seg(s->now, i, p->blob, p->size, (uint64_t)n);
        p->size += (uint64_t)n;
        done += (uint64_t)n;
    }
    kiln_sha256_final(&h, &got);
    return kiln_digest_equal(&got, &x->hash) ? 1 : 0;
}

static int cmp_missing(const void *a, const void *b, void *ud)
{
    const kiln_cm_t *m = ud;
    return memcmp(m->e[*(const size_t *)a].hash.hex, m->e[*(const size_t *)b].hash.hex, 64);
}

int kiln_mount_packs_write(kiln_mount_packer_t *s, size_t *missing, size_t n, kiln_error_t *err)
{
    kiln_cm_t *m = s->now;
    qsort_r(missing, n, sizeof(*missing), cmp_missing, m);
    for (size_t k = 0; k < n; k++) {
        kiln_cm_entry_t *x = &m->e[missing[k]];
        int r;
        if (k > 0 && m->e[missing[k - 1]].type == 'f' &&
            memcmp(m->e[missing[k - 1]].hash.hex, x->hash.hex, 64) == 0) {
            const kiln_cm_entry_t *same = &m->e[missing[k - 1]];
            for (size_t j = 0; j < same->n_segs; j++)
                kiln_cm_add_seg(m, missing[k], same->segs[j].blob, same->segs[j].off,
                                same->segs[j].len);
            continue;
        }
        r = pack_file(s, missing[k], err);
        if (r < 0)
            return kiln_error_prefix(err, "%s", x->path);
        if (r == 0)
            x->type = 0; /* changed under us: left out */
    }
    return pack_close(s, err);
}

uint64_t kiln_mount_packs_bytes(const kiln_mount_packer_t *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->n_packs; i++)
        n += s->packs[i].size;
    return n;
}

void kiln_mount_packs_clear(kiln_mount_packer_t *s)
{
    for (size_t i = 0; i < s->n_packs; i++) {
        if (s->packs[i].fd >= 0) {
            close(s->packs[i].fd);
            kiln_sha256_dispose(&s->packs[i].h);
        }
        unlink(s->packs[i].path);
        free(s->packs[i].path);
    }
    free(s->packs);
    s->packs = NULL;
    s->n_packs = 0;
}

void kiln_mount_packs_compact(kiln_cm_t *m)
{
    size_t w = 0;
    uint32_t *remap = kiln_xmalloc((m->nb + 1) * sizeof(*remap));
    kiln_cm_t nb = {0};
    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].type == 0) {
            free(m->e[i].path);
            free(m->e[i].link);
            free(m->e[i].segs);
            continue;
        }
        m->e[w++] = m->e[i];
    }
    m->n = w;
    for (size_t b = 0; b < m->nb; b++)
        remap[b] = UINT32_MAX;
    for (size_t i = 0; i < m->n; i++)
        for (size_t k = 0; k < m->e[i].n_segs; k++) {
            uint32_t *b = &m->e[i].segs[k].blob;
            if (remap[*b] == UINT32_MAX)
                remap[*b] = kiln_cm_add_blob(&nb, &m->blobs[*b].digest, m->blobs[*b].size);
            *b = remap[*b];
        }
    free(m->blobs);
    m->blobs = nb.blobs;
    m->nb = nb.nb;
    m->capb = nb.capb;
    free(remap);
}
