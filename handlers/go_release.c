/* kiln — Go releases and versions (see go_release.h). */
#include "handlers/go_release.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utils/buf.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* golang.org/toolchain v0.0.1-go<version>.linux-amd64: the h1 dirhash of each
 * module zip, as the Go checksum database (sum.golang.org) records it. A
 * download is unpacked only when its dirhash is this one. */
const kiln_go_release_t kiln_go_releases[] = {
    {"1.27.4", "h1:8Tl0rBb7KdISSdPkZBjlpZxsUBb+004GI/SM2XbmSqI="},
    {"1.27.3", "h1:r0ub+FnqzZxoWm/dSUOI9DcIqYWn/mNYGFJcv7PyBzs="},
    {"1.26.11", "h1:KyINmJ/FQdKRmDYGuTAAXkumyeR2DyUlSNHZj7XaLFg="},
    {"1.25.14", "h1:XriDgll2yv4W2YeUo2X/WuUuy+iGJkXGH0CQloMBEXo="},
    {"1.24.13", "h1:5sgfUhn9QCgVl4UYj32GrIYFHI3bi2UX55tNfupXwxc="},
    {"1.23.12", "h1:CQZ55qhuGAYcgv4npnr3DsfZP3i8URMjkpv7TYHRIH4="},
    {"1.23.0", "h1:dJ4WHShePJ10jZAlYVrNhSlHddBaYNLcvYjmswtQYLg="},
    {"1.22.12", "h1:Hdh4VJAlDWzMnhKpqDwqJJr+sE7NgsJ86dyR4wrv2oY="},
    {"1.21.13", "h1:THKeCuuOK6mnQhbTbvvH9CKU3D4lwUERQax+yRXCVJk="},
    {NULL, NULL},
};

/* A parsed version: 1.minor[.patch] or 1.minor(beta|rc)N. stage orders a
 * language version (0) before its betas (1), rcs (2) and releases (3). */
typedef struct gover {
    long major, minor, patch, pre;
    int stage;
} gover_t;

/* Reads 1..4 digits at *p (no leading zero but "0"); -1 when there are none. */
static long number(const char **p)
{
    const char *s = *p;
    long v = 0;
    int n = 0;

    while (*s >= '0' && *s <= '9' && n < 5) {
        v = v * 10 + (*s - '0');
        s++;
        n++;
    }
    if (n == 0 || n > 4 || (n > 1 && (*p)[0] == '0'))
        return -1;
    *p = s;
    return v;
}

static bool parse(const char *s, gover_t *v)
{
    const char *p = s;

    memset(v, 0, sizeof(*v));
    if (s == NULL || (v->major = number(&p)) != 1 || *p++ != '.' || (v->minor = number(&p)) < 0)
        return false;
    if (*p == '\0') {
        /* before Go 1.21, "1.20" was the release itself */
        v->stage = v->minor < 21 ? 3 : 0;
        return true;
    }
    if (*p == '.') {
        p++;
        v->stage = 3;
        return (v->patch = number(&p)) >= 0 && *p == '\0';
    }
    if (strncmp(p, "rc", 2) == 0 || strncmp(p, "beta", 4) == 0) {
        v->stage = p[0] == 'r' ? 2 : 1;
        p += p[0] == 'r' ? 2 : 4;
        return (v->pre = number(&p)) >= 0 && *p == '\0';
    }
    return false;
}

bool kiln_go_version_valid(const char *s)
{
    gover_t v;
    return parse(s, &v);
}

bool kiln_go_version_is_release(const char *s)
{
    gover_t v;
    return parse(s, &v) && v.stage == 3;
}

static int cmp_long(long a, long b)
{
    return a < b ? -1 : a > b;
}

int kiln_go_version_cmp(const char *a, const char *b)
{
    gover_t x, y;
    int c;

    parse(a, &x);
    parse(b, &y);
    if ((c = cmp_long(x.major, y.major)) || (c = cmp_long(x.minor, y.minor)) ||
        (c = cmp_long(x.stage, y.stage)))
        return c;
    return x.stage == 3 ? cmp_long(x.patch, y.patch) : cmp_long(x.pre, y.pre);
}

const kiln_go_release_t *kiln_go_release_find(const char *version)
{
    for (const kiln_go_release_t *r = kiln_go_releases; r->version; r++)
        if (strcmp(r->version, version) == 0)
            return r;
    return NULL;
}

char *kiln_go_available(void)
{
    kiln_buf_t b;

    kiln_buf_init(&b, 0);
    for (const kiln_go_release_t *r = kiln_go_releases; r->version; r++)
        kiln_buf_appendf(&b, NULL, "%sgo%s", r == kiln_go_releases ? "" : ", ", r->version);
    return kiln_buf_steal(&b, NULL);
}

/* The override: an exact release of the table ("1.27.3" or "go1.27.3"). */
static int select_override(const kiln_go_request_t *rq, char **version, char **why, char **source,
                           kiln_error_t *err)
{
    const char *v = rq->override + (strncmp(rq->override, "go", 2) == 0 ? 2 : 0);
    _cleanup_free_ char *avail = NULL;

    if (!kiln_go_version_is_release(v)) {
        avail = kiln_go_available();
        return kiln_error_set(err, 0,
                              "%s asks for Go \"%.32s\", which is not a Go release (1.N.P); "
                              "kiln's release table has %s",
                              rq->override_src, rq->override, avail);
    }
    if (rq->go && kiln_go_version_cmp(v, rq->go) < 0)
        return kiln_error_set(err, 0,
                              "%s asks for go%s but go.mod line %d (go %s) needs Go %s or newer",
                              rq->override_src, v, rq->go_line, rq->go, rq->go);
    *version = kiln_xstrdup(v);
    *why = kiln_xasprintf("%s asks for go%s", rq->override_src, v);
    *source = kiln_xstrdup(rq->override_src);
    return 0;
}

int kiln_go_select(const kiln_go_request_t *rq, char **version, char **why, char **source,
                   kiln_error_t *err)
{
    const char *want = NULL, *pick = NULL;
    _cleanup_free_ char *asked = NULL, *avail = NULL;
    int line = 0;

    if (rq->override)
        return select_override(rq, version, why, source, err);
    /* the higher of the two lines is the minimum (Go requires toolchain >= go) */
    if (rq->go) {
        want = rq->go;
        line = rq->go_line;
        asked = kiln_xasprintf("go %s", rq->go);
    }
    if (rq->toolchain && (want == NULL || kiln_go_version_cmp(rq->toolchain, want) > 0)) {
        want = rq->toolchain;
        line = rq->toolchain_line;
        free(asked);
        asked = kiln_xasprintf("toolchain go%s", rq->toolchain);
    }
    if (want == NULL) {
        *version = kiln_xstrdup(KILN_GO_DEFAULT_RELEASE);
        *why = kiln_xstrdup("go.mod names no Go version: go" KILN_GO_DEFAULT_RELEASE
                            ", kiln's default Go release");
        *source = kiln_xstrdup("default");
        return 0;
    }
    if (kiln_go_version_cmp(want, KILN_GO_DEFAULT_RELEASE) <= 0) {
        *version = kiln_xstrdup(KILN_GO_DEFAULT_RELEASE);
        *why = kiln_xasprintf("go.mod line %d (%s) asks for Go %s or newer: go%s, kiln's "
                              "default Go release, satisfies it (a newer Go builds a module "
                              "with the language version its go line names)",
                              line, asked, want, KILN_GO_DEFAULT_RELEASE);
        *source = kiln_xasprintf("go.mod line %d", line);
        return 0;
    }
    /* newer than the default: that exact release (one outside the table is fetched when
     * the Go checksum database proves its checksum), else the oldest one above it */
    if (kiln_go_version_is_release(want))
        pick = want;
    for (const kiln_go_release_t *r = kiln_go_releases; r->version; r++)
        if (pick == NULL && kiln_go_version_cmp(r->version, want) >= 0 &&
            (r[1].version == NULL || kiln_go_version_cmp(r[1].version, want) < 0))
            pick = r->version;
    if (pick == NULL) {
        avail = kiln_go_available();
        return kiln_error_set(err, 0,
                              "go.mod line %d (%s) asks for Go %s or newer, and no Go release "
                              "kiln can fetch and verify is: available are %s; lower the %s "
                              "line or build with a Dockerfile",
                              line, asked, want, avail, asked[0] == 'g' ? "go" : "toolchain");
    }
    *version = kiln_xstrdup(pick);
    *why = kiln_xasprintf("go.mod line %d (%s) asks for Go %s or newer: go%s", line, asked, want,
                          pick);
    *source = kiln_xasprintf("go.mod line %d", line);
    return 0;
}
