/* kiln — Node.js release lines: the one table of majors, LTS codenames and
 * dates (start of LTS, end of life) that the Node provider's default and its
 * `lts/<codename>` aliases come from, and the AWS Lambda runtime of each line (a
 * function output's runtime). Update it when a line enters LTS or Lambda adds or
 * retires a nodejs<major>.x runtime. */
#ifndef KILN_HANDLERS_NODE_RELEASE_H
#define KILN_HANDLERS_NODE_RELEASE_H

#include <time.h>

typedef struct kiln_node_release {
    int major;
    const char *codename;  /* lower case, NULL for a line that never becomes LTS */
    const char *lts_start; /* "YYYY-MM-DD", NULL for an odd (never LTS) line */
    const char *eol;       /* "YYYY-MM-DD" end of life */
    /* AWS Lambda's nodejs<major>.x runtime: the day Lambda stops creating functions on it
     * ("block function create"), NULL when Lambda has no runtime for the line (an odd
     * line, one retired before this table, or one AWS has not added yet) */
    const char *lambda_until;
} kiln_node_release_t;

/* The table, terminated by a zero major. */
extern const kiln_node_release_t kiln_node_releases[];

/* The newest line in active or maintenance LTS at `now` (LTS started, not end of
 * life): the default Node major. */
int kiln_node_default_major(time_t now);
/* The line of `major`, or NULL when the table does not know it. */
const kiln_node_release_t *kiln_node_release(int major);
/* The major of an LTS codename ("iron" → 20, case-insensitive), or 0. */
int kiln_node_lts_major(const char *codename);
/* True when `major`'s end of life is before `now` (an unknown major is not). */
int kiln_node_is_eol(int major, time_t now);
/* The majors AWS Lambda creates functions on at `now` (a nodejs<major>.x runtime whose
 * lambda_until is later), ascending, at most `max` of them; returns how many. */
int kiln_node_lambda_majors(time_t now, int *out, int max);

#endif
