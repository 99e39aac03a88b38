/* kiln server — the access log: one JSON line per HTTP request (time, request id, remote
 * address, tenant, method, route, status, bytes, duration), written to a file
 * (--access-log FILE: appended, 0640, reopened on SIGHUP) or to the server's log stream
 * (stderr, the default). A line never holds a token, an Authorization header, a webhook
 * signature or a query string: only the fields below are written, the route is the URL path
 * cut at any '?', and every byte outside printable ASCII is escaped. */
#ifndef KILN_SERVER_ACCESSLOG_H
#define KILN_SERVER_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

#include "utils/error.h"

/* The longest route written; a longer path is cut and marked "...". */
#define KILN_ACCESSLOG_ROUTE_MAX 512

/* One request as logged. Strings may be NULL (written as null). */
typedef struct kiln_access_entry {
    double time;            /* epoch seconds when the request's headers were in */
    const char *request_id; /* also sent as X-Request-Id */
    const char *remote;     /* the client's address */
    const char *tenant;     /* authenticated tenant (or a webhook project's); NULL: none */
    const char *method;
    const char *path; /* the URL path as received */
    unsigned status;  /* 0: no answer went out (the connection was closed) */
    uint64_t bytes;   /* response body bytes */
    double duration;  /* seconds from the headers to the end of the answer */
    int aborted;      /* the request ended before its answer was fully sent */
} kiln_access_entry_t;

typedef struct kiln_accesslog kiln_accesslog_t;

/* Formats e as one JSON line ending in '\n' (malloc'ed). Never fails. */
char *kiln_accesslog_format(const kiln_access_entry_t *e);

/* A fresh request id (16 hex digits: a per-process random part and a counter) in out. */
void kiln_accesslog_request_id(char out[17]);

/* Opens the log: path "-" or NULL is stderr; a file is opened for appending (created
 * 0640; an existing one loses any bits for others). Fails naming the file. */
int kiln_accesslog_open(const char *path, kiln_accesslog_t **out, kiln_error_t *err);

/* Reopens the file by its name (after a rotation); the old one is kept when the new one
 * cannot be opened (err names it). A no-op for stderr. */
int kiln_accesslog_reopen(kiln_accesslog_t *l, kiln_error_t *err);

/* The retention of a log file (a no-op for stderr or max_age_s <= 0): when the file's first
 * line is older than half of max_age_s (at most a day), the file is renamed PATH.<UTC stamp
 * YYYYmmddTHHMMSSZ> and PATH opened afresh; then the rotated files of that name whose last line
 * is older than max_age_s are removed (*removed counts them; no other file is touched). Run
 * by the server's periodic sweep (src/server/gc.c). Fails naming the file. */
int kiln_accesslog_sweep(kiln_accesslog_t *l, double now, double max_age_s, unsigned *removed,
                         kiln_error_t *err);

/* Writes e's line in one write (lines from threads never interleave). l may be NULL
 * (logging off). A failed write is dropped (counted in kiln_accesslog_dropped). */
void kiln_accesslog_write(kiln_accesslog_t *l, const kiln_access_entry_t *e);

/* Lines that could not be written so far. */
uint64_t kiln_accesslog_dropped(const kiln_accesslog_t *l);

void kiln_accesslog_close(kiln_accesslog_t *l);

#endif
