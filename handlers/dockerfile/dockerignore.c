/* kiln — .dockerignore matching (Docker's patternmatcher semantics). */
#include "handlers/dockerfile/dockerignore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"
#include "utils/pathres.h"

#define DI_MAX_PATTERNS 10000
/* Bounds the backtracking of `*` / `**` on hostile patterns: the matching steps
 * of one path against all the patterns (and its parent directories). */
#define DI_MAX_STEPS 4000000

typedef struct di_pattern {
    char *pat; /* cleaned, without the '!' */
    bool exclusion;
} di_pattern_t;

struct kiln_dockerignore {
    di_pattern_t *p;
    size_t n;
    char **shown; /* "!x" / "x" as cleaned */
    bool overrun; /* a path took more than DI_MAX_STEPS (set atomically) */
};

/* Go's path.Clean: one slash between elements, no "." elements, ".."
 * resolved lexically, no trailing slash; "" → ".". Returns malloc'ed. */
static char *clean_path(const char *in)
{
    size_t n = strlen(in), w = 0, r = 0, dotdot = 0;
    bool rooted = n > 0 && in[0] == '/';
    char *out = kiln_xmalloc(n + 2);

    if (rooted) {
        out[w++] = '/';
        r = 1;
        dotdot = 1;
    }
    while (r < n) {
        if (in[r] == '/') {
            r++;
        } else if (in[r] == '.' && (r + 1 == n || in[r + 1] == '/')) {
            r++;
        } else if (in[r] == '.' && in[r + 1] == '.' && (r + 2 == n || in[r + 2] == '/')) {
            r += 2;
            if (w > dotdot) {
                w--;
                while (w > dotdot && out[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    out[w++] = '/';
                out[w++] = '.';
                out[w++] = '.';
                dotdot = w;
            }
        } else {
            if ((rooted && w != 1) || (!rooted && w != 0))
                out[w++] = '/';
            while (r < n && in[r] != '/')
                out[w++] = in[r++];
        }
    }
    if (w == 0)
        out[w++] = '.';
    out[w] = '\0';
    return out;
}

typedef struct match_ctx {
    long steps;
} match_ctx_t;

/* Matches a bracket class at pat (after '['); sets *plen to the class length
 * including ']' and returns whether c matches. A malformed class matches nothing. */
static bool match_class(const char *pat, size_t pl, char c, size_t *plen)
{
    size_t i = 0;
    bool neg = false, hit = false;
    if (i < pl && (pat[i] == '^' || pat[i] == '!')) {
        neg = pat[i] == '^';
        if (pat[i] == '!') /* regexp treats '!' as a literal member */
            hit = c == '!';
        i++;
    }
    for (bool first = true; i < pl; first = false) {
        char lo, hi;
        if (pat[i] == ']' && !first)
            break;
        lo = pat[i];
        if (lo == '\\' && i + 1 < pl)
            lo = pat[++i];
        i++;
        hi = lo;
        if (i + 1 < pl && pat[i] == '-' && pat[i + 1] != ']') {
            hi = pat[i + 1];
            if (hi == '\\' && i + 2 < pl)
                hi = pat[++i + 1];
            i += 2;
        }
        if (c >= lo && c <= hi)
            hit = true;
    }
    if (i >= pl) {
        *plen = 0;
        return false;
    }
    *plen = i + 1; /* through ']' */
    return neg ? !hit : hit;
}

/* Full match of a Docker ignore pattern against s[0..n). */
static bool glob(match_ctx_t *m, const char *pat, size_t pl, const char *s, size_t n)
{
    size_t i = 0, j = 0;
    while (i < pl) {
        if (++m->steps > DI_MAX_STEPS)
            return false;
        if (pat[i] == '*') {
            if (i + 1 < pl && pat[i + 1] == '*') {
                i += 2;
                if (i < pl && pat[i] == '/')
                    i++;
                if (i == pl)
                    return true; /* "**" at the end: everything */
                /* "(.*" "/)?": nothing, or anything ending with a slash */
                if (glob(m, pat + i, pl - i, s + j, n - j))
                    return true;
                for (size_t k = j; k < n; k++)
                    if (s[k] == '/' && glob(m, pat + i, pl - i, s + k + 1, n - k - 1))
                        return true;
                return false;
            }
            i++;
            for (size_t k = j;; k++) {
                if (glob(m, pat + i, pl - i, s + k, n - k))
                    return true;
                if (k >= n || s[k] == '/')
                    return false;
            }
        }
        if (j >= n)
            return false;
        if (pat[i] == '?') {
            if (s[j] == '/')
                return false;
            i++;
            j++;
            continue;
        }
        if (pat[i] == '[') {
            size_t cl;
            bool hit = match_class(pat + i + 1, pl - i - 1, s[j], &cl);
            if (cl == 0) { /* unterminated: a literal '[' */
                if (s[j] != '[')
                    return false;
                i++;
                j++;
                continue;
            }
            if (!hit)
                return false;
            i += 1 + cl;
            j++;
            continue;
        }
        if (pat[i] == '\\' && i + 1 < pl)
            i++;
        if (pat[i] != s[j])
            return false;
        i++;
        j++;
    }
    return j == n;
}

static bool pattern_match(match_ctx_t *m, const di_pattern_t *p, const char *path, size_t n)
{
    return glob(m, p->pat, strlen(p->pat), path, n);
}

/* Appends the patterns of text to di. -1 with err (di keeps what it had). */
static int parse_into(kiln_dockerignore_t *di, const char *text, size_t len, kiln_error_t *err)
{
    const char *p = text, *end = text + len;
    bool first = true;

    if (len > KILN_DOCKERIGNORE_MAX)
        return kiln_error_set(err, EFBIG, ".dockerignore: larger than %u bytes",
                              KILN_DOCKERIGNORE_MAX);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *s = p;
        bool inv = false;
        char *raw, *clean;

        p = nl ? nl + 1 : end;
        if (first && le - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
            s += 3;
        first = false;
        if (s < le && *s == '#')
            continue;
        while (s < le && (*s == ' ' || (*s >= '\t' && *s <= '\r')))
            s++;
        while (le > s && (le[-1] == ' ' || (le[-1] >= '\t' && le[-1] <= '\r')))
            le--;
        if (s == le)
            continue;
        if (*s == '!') {
            inv = true;
            s++;
            while (s < le && (*s == ' ' || (*s >= '\t' && *s <= '\r')))
                s++;
        }
        if (di->n >= DI_MAX_PATTERNS)
            return kiln_error_set(err, 0, ".dockerignore: more than %d patterns", DI_MAX_PATTERNS);
        raw = kiln_xstrndup(s, (size_t)(le - s));
        if (raw[0] != '\0') {
            clean = clean_path(raw);
            free(raw);
            if (strlen(clean) > 1 && clean[0] == '/')
                memmove(clean, clean + 1, strlen(clean));
        } else {
            clean = raw;
        }
        di->p = kiln_xrealloc(di->p, (di->n + 1) * sizeof(di_pattern_t));
        di->shown = kiln_xrealloc(di->shown, (di->n + 2) * sizeof(char *));
        di->p[di->n].pat = clean;
        di->p[di->n].exclusion = inv;
        di->shown[di->n] = kiln_xasprintf("%s%s", inv ? "!" : "", clean);
        di->shown[++di->n] = NULL;
    }
    return 0;
}

int kiln_dockerignore_parse(const char *text, size_t len, kiln_dockerignore_t **out,
                            kiln_error_t *err)
{
    kiln_dockerignore_t *di = kiln_xzalloc(sizeof(*di));

    if (parse_into(di, text, len, err) < 0) {
        kiln_dockerignore_free(di);
        return -1;
    }
    *out = di;
    return 0;
}

int kiln_dockerignore_add_file(kiln_dockerignore_t *di, int ctxfd, const char *name,
                               kiln_error_t *err)
{
    _cleanup_free_ char *text = NULL;
    kiln_error_t le = {0};
    size_t len = 0;

    if (kiln_pathres_read_file(ctxfd, name, KILN_DOCKERIGNORE_MAX, &text, &len, &le) < 0)
        return le.code == ENOENT ? 0 : kiln_error_set(err, 0, "%s", le.msg);
    if (parse_into(di, text, len, err) < 0)
        return kiln_error_prefix(err, "%s", name);
    return 0;
}

int kiln_dockerignore_load(int ctxfd, int dfdir, const char *dockerfile, kiln_dockerignore_t **out,
                           kiln_error_t *err)
{
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *text = NULL;
    kiln_error_t le = {0};
    size_t len = 0;
    int r = -1;

    if (dockerfile != NULL) {
        path = kiln_xasprintf("%s.dockerignore", dockerfile);
        r = kiln_pathres_read_file(dfdir >= 0 ? dfdir : ctxfd, path, KILN_DOCKERIGNORE_MAX, &text,
                                   &len, &le);
        if (r < 0 && le.code != ENOENT)
            return kiln_error_set(err, 0, "%s", le.msg);
    }
    if (r < 0) {
        free(path);
        path = kiln_xstrdup(".dockerignore");
        r = kiln_pathres_read_file(ctxfd, path, KILN_DOCKERIGNORE_MAX, &text, &len, &le);
        if (r < 0 && le.code == ENOENT)
            return kiln_dockerignore_parse("", 0, out, err);
        if (r < 0)
            return kiln_error_set(err, 0, "%s", le.msg);
    }
    if (kiln_dockerignore_parse(text, len, out, err) < 0)
        return kiln_error_prefix(err, "%s", path);
    return 0;
}

void kiln_dockerignore_free(kiln_dockerignore_t *di)
{
    if (di == NULL)
        return;
    for (size_t i = 0; i < di->n; i++)
        free(di->p[i].pat);
    free(di->p);
    kiln_strv_free(di->shown);
    free(di);
}

bool kiln_dockerignore_is_git(const char *path)
{
    for (const char *p = path; p != NULL; p = strchr(p, '/')) {
        p += *p == '/';
        if (strncmp(p, ".git", 4) == 0 && (p[4] == '\0' || p[4] == '/'))
            return true;
    }
    return false;
}

bool kiln_dockerignore_excluded(const kiln_dockerignore_t *di, const char *path)
{
    bool matched = false;
    size_t n = strlen(path);
    const char *slash = memrchr(path, '/', n);
    match_ctx_t mc = {0};

    /* a repository's history and config (remotes with tokens) never enter a
     * context, whatever the patterns say */
    if (di != NULL && kiln_dockerignore_is_git(path))
        return true;

    for (size_t i = 0; di && i < di->n; i++) {
        const di_pattern_t *p = &di->p[i];
        bool m;
        if (p->exclusion != matched)
            continue;
        m = pattern_match(&mc, p, path, n);
        /* A pattern matching any parent directory matches the path too. */
        for (size_t k = 0; !m && slash != NULL && k < (size_t)(slash - path); k++)
            if (path[k + 1] == '/' || k + 1 == (size_t)(slash - path))
                m = pattern_match(&mc, p, path, k + 1);
        if (m)
            matched = !p->exclusion;
        if (mc.steps > DI_MAX_STEPS) {
            /* undecided: left out, and the caller fails the build (kiln_dockerignore_overrun) */
            __atomic_store_n(&((kiln_dockerignore_t *)di)->overrun, true, __ATOMIC_RELAXED);
            return true;
        }
    }
    return matched;
}

bool kiln_dockerignore_may_reinclude(const kiln_dockerignore_t *di, const char *dir)
{
    size_t dl = strlen(dir);
    if (kiln_dockerignore_is_git(dir))
        return false;
    for (size_t i = 0; di && i < di->n; i++) {
        const char *pat = di->p[i].pat;
        size_t lit = strcspn(pat, "*?[\\");
        if (!di->p[i].exclusion)
            continue;
        /* The literal part before any wildcard must agree with dir + "/". */
        if (lit > dl) {
            if (strncmp(pat, dir, dl) == 0 && pat[dl] == '/')
                return true;
        } else if (strncmp(pat, dir, lit) == 0) {
            return true;
        }
    }
    return false;
}

bool kiln_dockerignore_overrun(const kiln_dockerignore_t *di)
{
    return di != NULL && __atomic_load_n(&di->overrun, __ATOMIC_RELAXED);
}

size_t kiln_dockerignore_count(const kiln_dockerignore_t *di)
{
    return di ? di->n : 0;
}

const char *kiln_dockerignore_pattern(const kiln_dockerignore_t *di, size_t i)
{
    return di && i < di->n ? di->shown[i] : NULL;
}
