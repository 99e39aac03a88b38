/* kiln — Node.js release lines (see node_release.h). */
#include "handlers/node_release.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* From the Node.js release schedule (nodejs/Release). Dates are when a line
 * entered LTS and when it reaches end of life; the last column is when AWS Lambda
 * stops creating functions on its nodejs<major>.x runtime (AWS Lambda's runtime table:
 * "block function create"), NULL where Lambda has no runtime for the line: 16 and 18
 * are retired, odd lines never get one, and 26 had none when this table was updated. */
const kiln_node_release_t kiln_node_releases[] = {
    {16, "gallium", "2021-10-26", "2023-09-11", NULL},
    {18, "hydrogen", "2022-10-25", "2025-04-30", NULL},
    {19, NULL, NULL, "2023-06-01", NULL},
    {20, "iron", "2023-10-24", "2026-04-30", "2026-08-31"},
    {21, NULL, NULL, "2024-06-01", NULL},
    {22, "jod", "2024-10-29", "2027-04-30", "2027-06-01"},
    {23, NULL, NULL, "2025-06-01", NULL},
    {24, "krypton", "2025-10-28", "2028-04-30", "2028-06-01"},
    {25, NULL, NULL, "2026-06-01", NULL},
    {26, NULL, "2026-10-28", "2029-04-30", NULL}, /* its LTS codename is not in this table yet */
    {0, NULL, NULL, NULL, NULL},
};

/* "YYYY-MM-DD" of `now` in UTC: the table's dates compare as strings. */
static void day_of(time_t now, char out[16])
{
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

int kiln_node_default_major(time_t now)
{
    char today[16];
    int best = 0;

    day_of(now, today);
    for (const kiln_node_release_t *r = kiln_node_releases; r->major; r++)
        if (r->lts_start && strcmp(r->lts_start, today) <= 0 && strcmp(today, r->eol) < 0 &&
            r->major > best)
            best = r->major;
    /* past the table's last line: its newest LTS line (the table is stale, the
     * build still gets a current toolchain) */
    for (const kiln_node_release_t *r = kiln_node_releases; best == 0 && r->major; r++)
        if (r->lts_start)
            best = r->major > best ? r->major : best;
    return best;
}

const kiln_node_release_t *kiln_node_release(int major)
{
    for (const kiln_node_release_t *r = kiln_node_releases; r->major; r++)
        if (r->major == major)
            return r;
    return NULL;
}

int kiln_node_lts_major(const char *codename)
{
    for (const kiln_node_release_t *r = kiln_node_releases; r->major; r++)
        if (r->codename && strcasecmp(r->codename, codename) == 0)
            return r->major;
    return 0;
}

int kiln_node_is_eol(int major, time_t now)
{
    const kiln_node_release_t *r = kiln_node_release(major);
    char today[16];

    if (r == NULL)
        return 0;
    day_of(now, today);
    return strcmp(r->eol, today) <= 0;
}

int kiln_node_lambda_majors(time_t now, int *out, int max)
{
    char today[16];
    int n = 0;

    day_of(now, today);
    for (const kiln_node_release_t *r = kiln_node_releases; r->major && n < max; r++)
        if (r->lambda_until && strcmp(today, r->lambda_until) < 0)
            out[n++] = r->major;
    return n;
}
