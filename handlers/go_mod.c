/* kiln — go.mod lines (see go_mod.h). */
#include "handlers/go_mod.h"

#include <stdlib.h>
#include <string.h>

#include "handlers/go_release.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Longest module path accepted (Go's own limit is far below a line of this). */
#define MODULE_MAX 512
/* Longest token shown in a message. */
#define SHOW_MAX 48

void kiln_gomod_free(kiln_gomod_t *m)
{
    free(m->module);
    free(m->go);
    free(m->toolchain);
    memset(m, 0, sizeof(*m));
}

/* A token of a line, for messages: printable ASCII only, cut at SHOW_MAX. */
static void show(const char *s, size_t n, char out[SHOW_MAX + 4])
{
    size_t i;

    for (i = 0; i < n && i < SHOW_MAX; i++)
        out[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > SHOW_MAX) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* The words of one line (comments removed): at most 3 kept. */
typedef struct words {
    const char *w[3];
    size_t n[3];
    size_t count;
} words_t;

static void split(const char *s, size_t len, words_t *w)
{
    size_t i = 0;

    memset(w, 0, sizeof(*w));
    while (i < len) {
        size_t st;
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
            i++;
            continue;
        }
        if (s[i] == '/' && i + 1 < len && s[i + 1] == '/')
            break;
        st = i;
        if (s[i] == '"' || s[i] == '`') {
            char q = s[i++];
            while (i < len && s[i] != q)
                i++;
            i += i < len;
        } else {
            while (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
                i++;
        }
        if (w->count < 3) {
            w->w[w->count] = s + st;
            w->n[w->count] = i - st;
        }
        w->count++;
    }
}

static bool word_is(const words_t *w, size_t i, const char *s)
{
    /* only the first 3 words are kept */
    return i < w->count && i < 3 && w->n[i] == strlen(s) && memcmp(w->w[i], s, w->n[i]) == 0;
}

/* The module line's path: plain or quoted, of [A-Za-z0-9._~/+-]. */
static int module_path(const words_t *w, int line, char **out, kiln_error_t *err)
{
    const char *p = w->w[1];
    size_t n = w->count == 2 ? w->n[1] : 0;
    char shown[SHOW_MAX + 4];

    if (n >= 2 && (p[0] == '"' || p[0] == '`') && p[n - 1] == p[0]) {
        p++;
        n -= 2;
    }
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || strchr("._~/+-", p[i]) != NULL))
            n = 0;
    if (n == 0 || n > MODULE_MAX || p[0] == '/' || p[0] == '.') {
        show(w->count > 1 ? w->w[1] : "", w->count > 1 ? w->n[1] : 0, shown);
        return kiln_error_set(err, 0, "go.mod line %d: module \"%s\" is not a module path", line,
                              shown);
    }
    *out = kiln_xstrndup(p, n);
    return 0;
}

/* A go or toolchain line's version ("go1.24.2" for toolchain). */
static int version_word(const words_t *w, int line, bool toolchain, char **out, kiln_error_t *err)
{
    char shown[SHOW_MAX + 4];
    _cleanup_free_ char *v = NULL;
    const char *p = w->count == 2 ? w->w[1] : "";
    size_t n = w->count == 2 ? w->n[1] : 0;

    if (toolchain && n == 7 && memcmp(p, "default", 7) == 0)
        return 0;
    if (toolchain && n > 2 && memcmp(p, "go", 2) == 0) {
        p += 2;
        n -= 2;
    } else if (toolchain) {
        n = 0;
    }
    v = kiln_xstrndup(p, n);
    if (n == 0 || !kiln_go_version_valid(v)) {
        show(w->count > 1 ? w->w[1] : "", w->count > 1 ? w->n[1] : 0, shown);
        return kiln_error_set(err, 0,
                              toolchain ? "go.mod line %d: toolchain \"%s\" is not a Go release "
                                          "name (go1.N.P, go1.NrcK or default)"
                                        : "go.mod line %d: go \"%s\" is not a Go version "
                                          "(1.N or 1.N.P)",
                              line, shown);
    }
    *out = steal_pointer(&v);
    return 0;
}

int kiln_gomod_parse(const char *text, size_t len, kiln_gomod_t *out, kiln_error_t *err)
{
    kiln_gomod_t m = {0};
    const char *p = text, *end = text + len;
    bool in_block = false, seen_tc = false;
    int line = 0, module_line = 0;

    if (memchr(text, '\0', len) != NULL)
        return kiln_error_set(err, 0, "go.mod holds a NUL byte: not a go.mod file");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        words_t w;
        int r = 0;

        line++;
        split(p, n, &w);
        p += n + (nl != NULL);
        if (w.count == 0)
            continue;
        if (in_block) {
            in_block = !word_is(&w, 0, ")");
            continue;
        }
        if (w.count == 2 && word_is(&w, 1, "(")) {
            /* a block of one verb: require ( … ), replace ( … ), … */
            in_block = true;
            m.has_require |= word_is(&w, 0, "require");
            continue;
        }
        if (word_is(&w, 0, "module")) {
            if (m.module != NULL)
                r = kiln_error_set(err, 0,
                                   "go.mod line %d: a second module line (the first is "
                                   "line %d)",
                                   line, module_line);
            else
                r = module_path(&w, line, &m.module, err);
            module_line = line;
        } else if (word_is(&w, 0, "go")) {
            if (m.go != NULL)
                r = kiln_error_set(err, 0,
                                   "go.mod line %d: a second go line (the first is line %d)", line,
                                   m.go_line);
            else
                r = version_word(&w, line, false, &m.go, err);
            m.go_line = line;
        } else if (word_is(&w, 0, "toolchain")) {
            if (seen_tc)
                r = kiln_error_set(err, 0,
                                   "go.mod line %d: a second toolchain line (the first is line %d)",
                                   line, m.toolchain_line);
            else
                r = version_word(&w, line, true, &m.toolchain, err);
            seen_tc = true;
            m.toolchain_line = line;
        } else if (word_is(&w, 0, "require")) {
            m.has_require = true;
        }
        if (r < 0) {
            kiln_gomod_free(&m);
            return -1;
        }
    }
    if (m.module == NULL) {
        kiln_gomod_free(&m);
        return kiln_error_set(err, 0, "go.mod: no module line");
    }
    *out = m;
    return 0;
}
