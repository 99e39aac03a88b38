/* kiln — the parsed Dockerfile shown as BuildKit's Node.Dump() prints it (Go's %q quoting of
 * every value, heredocs, flags), for `kiln dockerfile` and the conformance corpus. */
#include "handlers/dockerfile/parser.h"

#include <stdio.h>
#include <string.h>

int kiln_df_go_quote(const char *s, kiln_buf_t *out, kiln_error_t *err)
{
    return kiln_df_go_quote_n(s, strlen(s), out, err);
}

int kiln_df_go_quote_n(const char *s, size_t n, kiln_buf_t *out, kiln_error_t *err)
{
    static const char hex[] = "0123456789abcdef";
    if (kiln_buf_append(out, "\"", 1, err) < 0)
        return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char esc[12];
        size_t el = 0;
        if (c >= 0x80) {
            size_t l = 1;
            unsigned cp = 0;
            if ((c >> 5) == 6)
                l = 2, cp = c & 0x1F;
            else if ((c >> 4) == 14)
                l = 3, cp = c & 0x0F;
            else if ((c >> 3) == 30)
                l = 4, cp = c & 0x07;
            for (size_t k = 1; k < l; k++) {
                if (i + k >= n || ((unsigned char)s[i + k] & 0xC0) != 0x80) {
                    l = 1;
                    break;
                }
                cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
            }
            if (l == 1 || (l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) ||
                (l == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
                esc[0] = '\\', esc[1] = 'x', esc[2] = hex[c >> 4], esc[3] = hex[c & 15];
                if (kiln_buf_append(out, esc, 4, err) < 0)
                    return -1;
                i++;
                continue;
            }
            /* Go escapes non-printable runes; the common ones are C1 controls,
             * NBSP, soft hyphen, line/paragraph separators and the BOM. */
            if ((cp >= 0x80 && cp <= 0xA0) || cp == 0xAD || cp == 0x2028 || cp == 0x2029 ||
                cp == 0xFEFF) {
                int w = snprintf(esc, sizeof(esc), "\\u%04x", cp);
                if (kiln_buf_append(out, esc, (size_t)w, err) < 0)
                    return -1;
            } else if (kiln_buf_append(out, s + i, l, err) < 0) {
                return -1;
            }
            i += l;
            continue;
        }
        {
            /* Go's short escapes, in the order of `shorts`. */
            static const char shorts[] = "\a\b\f\n\r\t\v\"\\";
            static const char letters[] = "abfnrtv\"\\";
            const char *hit = c ? strchr(shorts, (char)c) : NULL;
            if (hit != NULL) {
                esc[0] = '\\', esc[1] = letters[hit - shorts];
                el = 2;
            } else if (c < 0x20 || c == 0x7F) {
                esc[0] = '\\', esc[1] = 'x', esc[2] = hex[c >> 4], esc[3] = hex[c & 15];
                el = 4;
            } else {
                esc[0] = (char)c;
                el = 1;
            }
        }
        if (kiln_buf_append(out, esc, el, err) < 0)
            return -1;
        i++;
    }
    return kiln_buf_append(out, "\"", 1, err);
}

int kiln_df_node_dump(const kiln_df_node_t *node, kiln_buf_t *out, kiln_error_t *err)
{
    if (kiln_buf_append(out, node->keyword, strlen(node->keyword), err) < 0)
        return -1;
    if (node->n_flags > 0) {
        if (kiln_buf_append(out, " [", 2, err) < 0)
            return -1;
        for (size_t i = 0; i < node->n_flags; i++) {
            if ((i > 0 && kiln_buf_append(out, " ", 1, err) < 0) ||
                kiln_df_go_quote(node->flags[i], out, err) < 0)
                return -1;
        }
        if (kiln_buf_append(out, "]", 1, err) < 0)
            return -1;
    }
    if (node->sub != NULL) {
        if (kiln_buf_append(out, " (", 2, err) < 0 || kiln_df_node_dump(node->sub, out, err) < 0 ||
            kiln_buf_append(out, ")", 1, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < node->n_args; i++) {
        size_t l = node->arg_lens ? node->arg_lens[i] : strlen(node->args[i]);
        if (kiln_buf_append(out, " ", 1, err) < 0 ||
            kiln_df_go_quote_n(node->args[i], l, out, err) < 0)
            return -1;
    }
    return 0;
}

int kiln_dockerfile_dump(const kiln_dockerfile_t *df, kiln_buf_t *out, kiln_error_t *err)
{
    for (size_t i = 0; i < df->n_nodes; i++) {
        if (kiln_buf_append(out, "(", 1, err) < 0 ||
            kiln_df_node_dump(&df->nodes[i], out, err) < 0 ||
            kiln_buf_append(out, ")\n", 2, err) < 0)
            return -1;
    }
    return 0;
}
