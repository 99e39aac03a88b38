/* kiln — the tty form of the build's progress: finished steps as lines that scroll up, a live
 * region redrawn in place (header, running steps with their elapsed time and last output
 * lines), the summary and the failing step's output (once). See src/progress.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "src/progress_impl.h"
#include "utils/cleanup.h"
#include "utils/mem.h"

/* Bytes of the code point at s (len > 0) into *cp; 0 when s is not valid UTF-8 there. */
static size_t next_cp(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n;
    uint32_t c;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and past U+10FFFF are not text */
    if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* Columns of code point c: 2 for the East Asian wide ranges and emoji, else 1. */
static size_t cp_cols(uint32_t c)
{
    return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
                   (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
                   (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
                   (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) ||
                   (c >= 0x20000 && c <= 0x3fffd)
               ? 2
               : 1;
}

/* Bytes of the escape sequence at s (s[0] is ESC): CSI up to its final byte, OSC up to BEL
 * or ST, else ESC and the next byte. */
static size_t escape_len(const char *s, size_t len)
{
    size_t i = 2;
    if (len < 2)
        return len;
    if (s[1] == '[') {
        while (i < len && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e))
            i++;
        return i < len ? i + 1 : len;
    }
    if (s[1] == ']') {
        while (i < len && s[i] != '\a' && !(s[i] == '\033' && i + 1 < len && s[i + 1] == '\\'))
            i++;
        return i >= len ? len : s[i] == '\a' ? i + 1 : i + 2;
    }
    return 2;
}

/* Appends text as a terminal shows it safely; returns the columns appended. */
static size_t sanitize(kiln_buf_t *b, const char *text, size_t cols)
{
    const char *s = text, *cr;
    size_t len, used = 0;

    /* a carriage return overwrites the line (progress bars): what shows is the last part */
    while ((cr = strchr(s, '\r')) != NULL && cr[1] != '\0')
        s = cr + 1;
    len = strcspn(s, "\r");
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        size_t n, w;
        if (c == '\033') {
            i += escape_len(s + i, len - i);
            continue;
        }
        if (c == '\t')
            c = ' ';
        if (c < 0x20 || c == 0x7f) {
            i++;
            continue;
        }
        n = next_cp((const unsigned char *)s + i, len - i, &cp);
        if (n == 0) { /* not UTF-8: shown as '?', never as a raw byte */
            cp = '?';
            n = 1;
            c = '?';
        } else if (cp >= 0x80 && cp <= 0x9f) { /* C1 controls */
            i += n;
            continue;
        }
        w = cp_cols(cp);
        if (cols && used + w > cols)
            break;
        if (c == ' ' || n == 1)
            kiln_buf_append(b, (const char *)&c, 1, NULL);
        else
            kiln_buf_append(b, s + i, n, NULL);
        used += w;
        i += n;
    }
    return used;
}

void kiln_progress_sanitize(kiln_buf_t *b, const char *text, size_t cols)
{
    sanitize(b, text, cols);
}

size_t kiln_progress_cols(const char *text)
{
    kiln_buf_t b;
    size_t n;
    kiln_buf_init(&b, 0);
    n = sanitize(&b, text, 0);
    kiln_buf_free(&b);
    return n;
}

static void term_size(kiln_progress_t *p, size_t *w, size_t *h)
{
    struct winsize ws;
    *w = 80;
    *h = 24;
    if (p->o.width > 0) {
        *w = (size_t)p->o.width;
        *h = p->o.height > 0 ? (size_t)p->o.height : 24;
    } else if (p->o.write == NULL &&
               ioctl(p->o.fd >= 0 ? p->o.fd : STDERR_FILENO, TIOCGWINSZ, &ws) == 0 &&
               ws.ws_col > 0) {
        *w = ws.ws_col;
        *h = ws.ws_row > 0 ? ws.ws_row : 24;
    }
    if (*w < 20)
        *w = 20;
    if (*h < 5)
        *h = 5;
}

/* " => PREFIXTITLE    1.2s": the time at the right edge (width - 1: a full line would wrap
 * on some terminals, and the live region's height would be wrong). */
static void step_line(kiln_buf_t *b, size_t width, const char *prefix, const char *title,
                      double secs)
{
    char t[32];
    size_t lead = 4 + strlen(prefix), tl, avail, used;

    snprintf(t, sizeof(t), "%.1fs", secs < 0 ? 0 : secs);
    tl = strlen(t);
    avail = width - 1 > lead + tl + 1 ? width - 1 - lead - tl - 1 : 1;
    kiln_buf_appendf(b, NULL, " => %s", prefix);
    used = sanitize(b, title, avail);
    for (; used < avail + 1; used++)
        kiln_buf_append(b, " ", 1, NULL);
    kiln_buf_appendf(b, NULL, "%s\n", t);
}

static const char *state_prefix(int state)
{
    return state == PSTEP_CACHED ? "CACHED " : state == PSTEP_ERROR ? "ERROR " : "";
}

void kiln_progress_tty_finished_line(kiln_progress_t *p, const pstep_t *s)
{
    size_t w, h;
    term_size(p, &w, &h);
    step_line(&p->pending, w, state_prefix(s->state), s->title ? s->title : "", s->seconds);
}

void kiln_progress_tty_note(kiln_progress_t *p, const char *line)
{
    size_t w, h;
    term_size(p, &w, &h);
    sanitize(&p->pending, line, w - 1);
    kiln_buf_append(&p->pending, "\n", 1, NULL);
}

/* "Building" from "building". */
static void phase_word(const char *phase, char *buf, size_t len)
{
    snprintf(buf, len, "%s", phase && *phase ? phase : "building");
    if (buf[0] >= 'a' && buf[0] <= 'z')
        buf[0] = (char)(buf[0] - 'a' + 'A');
}

static void header(kiln_progress_t *p, kiln_buf_t *b, const char *end)
{
    char word[32];
    phase_word(p->phase, word, sizeof(word));
    kiln_buf_appendf(b, NULL, "[+] %.20s %.1fs (%zu/%zu)%s\n", word, kiln_progress_now(p) - p->t0,
                     p->n_finished, p->n_started, end);
}

/* Moves the cursor back to the live region's first line and clears from there. */
static void erase_live(kiln_progress_t *p, kiln_buf_t *b)
{
    if (p->live_lines > 0)
        kiln_buf_appendf(b, NULL, "\r\033[%zuA\033[J", p->live_lines);
    p->live_lines = 0;
}

void kiln_progress_tty_frame(kiln_progress_t *p)
{
    kiln_buf_t b;
    size_t w, h, budget, lines = 1, running = 0, shown = 0;
    double now = kiln_progress_now(p);

    for (size_t i = 1; i <= p->max_step; i++)
        running += p->steps[i].state == PSTEP_RUNNING;
    if (!p->dirty && running == 0 && p->live_lines > 0)
        return;
    term_size(p, &w, &h);
    /* the live region fits the screen with a line to spare, whatever runs */
    budget = h - 2;
    kiln_buf_init(&b, 0);
    erase_live(p, &b);
    kiln_buf_append(&b, p->pending.data ? p->pending.data : "", p->pending.len, NULL);
    p->pending.len = 0;
    header(p, &b, "");
    for (size_t i = 1; i <= p->max_step; i++) {
        const pstep_t *s = &p->steps[i];
        size_t k;
        if (s->state != PSTEP_RUNNING)
            continue;
        if (lines + 1 >= budget && shown + 1 < running) {
            kiln_buf_appendf(&b, NULL, " => ... %zu more running\n", running - shown);
            lines++;
            break;
        }
        step_line(&b, w, "", s->title ? s->title : "", now - s->started);
        lines++;
        shown++;
        /* its last lines, as many as leave one line for each running step after it */
        k = s->tail_n < KILN_PROGRESS_LIVE_LINES ? s->tail_n : KILN_PROGRESS_LIVE_LINES;
        while (k > 0 && lines + k + (running - shown) > budget)
            k--;
        for (size_t j = s->tail_n - k; j < s->tail_n; j++) {
            kiln_buf_append(&b, " => => # ", 9, NULL);
            sanitize(&b, kiln_progress_tail_line(s, j), w - 10);
            kiln_buf_append(&b, "\n", 1, NULL);
            lines++;
        }
    }
    kiln_progress_out(p, b.data, b.len);
    kiln_buf_free(&b);
    p->live_lines = lines;
    p->dirty = false;
}

/* Whether line is one of s's kept output lines indented by two spaces (how the engine's
 * error message carries them). */
static bool is_tail_line(const pstep_t *s, const char *line, size_t len)
{
    if (len < 2 || line[0] != ' ' || line[1] != ' ')
        return false;
    for (size_t i = 0; i < s->tail_n; i++) {
        const char *t = kiln_progress_tail_line(s, i);
        if (strlen(t) == len - 2 && memcmp(t, line + 2, len - 2) == 0)
            return true;
    }
    return false;
}

void kiln_progress_error_message(kiln_progress_t *p, kiln_buf_t *b, const pstep_t *s,
                                 const char *msg)
{
    const char *line = msg;
    bool first = true;

    kiln_buf_append(b, "ERROR: ", 7, NULL);
    if (s && p->o.dockerfile && strncmp(msg, "Dockerfile:", 11) == 0) {
        kiln_buf_appendf(b, NULL, "%s:", p->o.dockerfile);
        line += 11;
    }
    while (*line) {
        size_t len = strcspn(line, "\n");
        _cleanup_free_ char *one = kiln_xstrndup(line, len);
        if (s && strcmp(one, KILN_PROGRESS_TAIL_HEADING) == 0) {
            /* an auto build's message in the user's terms: its lines were printed above */
            kiln_buf_appendf(b, NULL, "\nits output is above (#%d)", p->failed_step);
        } else if (first || s == NULL || !is_tail_line(s, line, len)) {
            if (!first)
                kiln_buf_append(b, "\n", 1, NULL);
            sanitize(b, one, 0);
        }
        first = false;
        line += len;
        if (*line == '\n')
            line++;
    }
    kiln_buf_append(b, "\n", 1, NULL);
}

/* The slowest steps that ran (not cached), up to 3, slowest first. */
static void slowest(kiln_progress_t *p, kiln_buf_t *b, size_t w)
{
    size_t best[3] = {0, 0, 0}, n = 0;
    for (size_t i = 1; i <= p->max_step; i++) {
        if (p->steps[i].state != PSTEP_DONE)
            continue;
        if (n < 3)
            best[n++] = i;
        else if (p->steps[i].seconds > p->steps[best[2]].seconds)
            best[2] = i;
        else
            continue;
        for (size_t k = n - 1; k > 0 && p->steps[best[k]].seconds > p->steps[best[k - 1]].seconds;
             k--) {
            size_t t = best[k];
            best[k] = best[k - 1];
            best[k - 1] = t;
        }
    }
    for (size_t k = 0; k < n; k++) {
        const pstep_t *s = &p->steps[best[k]];
        kiln_buf_appendf(b, NULL, "%s%6.1fs  ", k == 0 ? " => slowest: " : "             ",
                         s->seconds);
        sanitize(b, s->title ? s->title : "", w > 30 ? w - 23 : 1);
        kiln_buf_append(b, "\n", 1, NULL);
    }
}

void kiln_progress_tty_finish(kiln_progress_t *p, const kiln_progress_result_t *res)
{
    kiln_buf_t b;
    size_t w, h;
    const pstep_t *s = NULL;

    term_size(p, &w, &h);
    kiln_buf_init(&b, 0);
    erase_live(p, &b);
    kiln_buf_append(&b, p->pending.data ? p->pending.data : "", p->pending.len, NULL);
    p->pending.len = 0;
    header(p, &b, res->ok ? " FINISHED" : " FAILED");
    if (res->ok) {
        kiln_buf_appendf(&b, NULL, " => %zu steps, %zu cached\n", p->n_finished, p->n_cached);
        slowest(p, &b, w);
        if (res->digest)
            kiln_buf_appendf(&b, NULL, " => image %s\n", res->digest);
        if (res->size_compressed || res->size_uncompressed) {
            char size[96];
            kiln_progress_size_text(res, size, sizeof(size));
            kiln_buf_appendf(&b, NULL, " => size %s\n", size);
        }
    } else {
        if (p->failed_step > 0 && !res->user_terms)
            s = &p->steps[p->failed_step];
        if (s) {
            /* the failing step: its instruction, FILE:LINE and its output, once */
            kiln_buf_append(&b, "------\n > ", 10, NULL);
            sanitize(&b, s->title ? s->title : "", 0);
            if (s->line > 0)
                kiln_buf_appendf(&b, NULL, " (%s:%d)",
                                 p->o.dockerfile ? p->o.dockerfile : "Dockerfile", s->line);
            kiln_buf_append(&b, ":\n", 2, NULL);
            if (s->n_out > s->tail_n)
                kiln_buf_appendf(&b, NULL, "(%zu earlier lines not shown)\n", s->n_out - s->tail_n);
            for (size_t i = 0; i < s->tail_n; i++) {
                sanitize(&b, kiln_progress_tail_line(s, i), 0);
                kiln_buf_append(&b, "\n", 1, NULL);
            }
            kiln_buf_append(&b, "------\n", 7, NULL);
        }
        kiln_progress_error_message(p, &b, s, res->error ? res->error : "the build failed");
    }
    kiln_progress_out(p, b.data, b.len);
    kiln_buf_free(&b);
}
