/* kiln — the exporters of export/, one per output type (internal to export/; callers go
 * through kiln_exporter_find and kiln_export_run in export/export.h). */
#ifndef KILN_EXPORT_EXPORTERS_H
#define KILN_EXPORT_EXPORTERS_H

#include "export/export.h"
#include "oci/registry.h"
#include "utils/netpolicy.h"

extern const kiln_exporter_t kiln_exporter_local, kiln_exporter_tar;      /* files.c */
extern const kiln_exporter_t kiln_exporter_oci, kiln_exporter_docker;     /* image.c */
extern const kiln_exporter_t kiln_exporter_registry, kiln_exporter_image; /* registry.c */
extern const kiln_exporter_t kiln_exporter_s3;                            /* s3.c */
extern const kiln_exporter_t kiln_exporter_function;                      /* function.c */

/* Fails with the message of an output no exporter writes (a file type without dest=). */
int kiln_export_unsupported(const kiln_export_opts_t *o, kiln_error_t *err);

/* Reports one result through ctx->result (when set). */
void kiln_export_report(kiln_export_ctx_t *ctx, const kiln_export_result_t *r);

#endif
