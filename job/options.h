/* kiln — a job spec's build options: how the image is made rather than what is built or
 * where it goes (labels, compression and its level, SOURCE_DATE_EPOCH, the network of RUN
 * steps, isolation, the SSH agent, named build contexts, registry mirrors and insecure
 * registries). Checked here for every spec (CLI flags and JSON alike), each error naming its
 * field; the JSON codec (job/codec.h) reads and writes them:
 *   "labels": {K: V}, "compression": "gzip" | "zstd" | "none", "compression_level": N,
 *   "source_date_epoch": N, "network": "default" | "none" | "host" (host needs "allow":
 *   ["network.host"] unless local), and beyond a request: "build_contexts": {NAME: DIR |
 *   "docker-image://REF"} (a directory: local only), "registry": {"mirrors":
 *   ["SRC=HOST[/PREFIX]"], "insecure": ["HOST[:PORT]"]}, "isolation": "auto" | "sandbox" |
 *   "chroot" (local only), "ssh": SOCKET (local only). */
#ifndef KILN_JOB_OPTIONS_H
#define KILN_JOB_OPTIONS_H

#include "job/spec.h"
#include "utils/error.h"

/* Checks the build options of s; fails with "field 'NAME': what is wrong". */
int kiln_job_options_validate(const kiln_job_spec_t *s, kiln_error_t *err);

/* Releases the build options of s (kiln_job_spec_clear calls it). */
void kiln_job_options_clear(kiln_job_spec_t *s);

/* "K=V" of each entry (a value NULL: "K"), NULL-terminated (kiln_strv_free). */
char **kiln_job_kv_strv(const kiln_job_kv_t *kv, size_t n);

#endif
