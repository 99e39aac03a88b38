/* kiln — docker build's per-step options that reach the sandbox: --ulimit NAME=SOFT[:HARD]
 * (setrlimit in the step's init, after kiln's own limits) and --add-host HOST:IP (lines of the
 * step's /etc/hosts), parsed and checked here before any step runs. */
#ifndef KILN_SANDBOX_STEPOPTS_H
#define KILN_SANDBOX_STEPOPTS_H

#include <stddef.h>
#include <stdint.h>

#include "utils/error.h"

#define KILN_ULIMIT_UNLIMITED UINT64_MAX

typedef struct kiln_ulimit {
    int resource; /* RLIMIT_* */
    uint64_t soft, hard;
} kiln_ulimit_t;

/* Parses docker's --ulimit NAME=SOFT[:HARD] (names: core, cpu, data, fsize, locks, memlock,
 * msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack, as; a value is a
 * number or -1 / unlimited; HARD defaults to SOFT). Fails naming what is wrong: an unknown
 * name, a soft limit above the hard one, a hard limit above this process's own (a step in a
 * user namespace cannot raise it). */
int kiln_ulimit_parse(const char *spec, kiln_ulimit_t *out, kiln_error_t *err);

/* The RLIMIT_ name of a resource ("nofile"), for messages. */
const char *kiln_ulimit_name(int resource);

/* Checks docker's --add-host HOST:IP (an IPv4 or IPv6 address, which may be in brackets) and
 * returns the /etc/hosts line "IP\tHOST\n" (malloc'ed). */
int kiln_add_host_parse(const char *spec, char **line, kiln_error_t *err);

#endif
