/* kiln build — what a build reports besides its terminal lines (see build_report.h). */
#include "src/build_report.h"

#include <stdio.h>
#include <string.h>

#include "engine/events.h"
#include "job/event.h"
#include "job/stream.h"
#include "oci/digest.h"
#include "oci/imagesize.h"
#include "oci/imagestore.h"
#include "src/ecr_login.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

int kiln_build_write_metadata(const kiln_build_opts_t *o, const kiln_build_result_t *res,
                              json_t *ev, json_t *notified, uint64_t pushed, kiln_error_t *err)
{
    char ds[KILN_DIGEST_STR_MAX], cs[KILN_DIGEST_STR_MAX];
    json_t *j = json_object(), *tags = json_array(), *steps = json_array();
    char *s;
    int r;

    json_object_set(j, "kiln.event", ev);
    json_object_set_new(j, "kiln.bytes_pushed", json_integer((json_int_t)pushed));
    if (o->limits.memory || o->limits.pids || o->limits.cpu_time || o->limits.disk)
        json_object_set_new(j, "kiln.limits", kiln_job_limits_to_json(&o->limits));
    if (notified != NULL)
        json_object_set(j, "kiln.notify", notified);
    if (res == NULL) {
        json_decref(tags);
        json_decref(steps);
        goto write;
    }

    kiln_digest_str(&res->manifest.digest, ds);
    kiln_digest_str(&res->config_digest, cs);
    for (size_t i = 0; i < o->n_tags; i++)
        json_array_append_new(tags, json_string(o->tags[i]));
    for (size_t i = 0; i < res->n_steps; i++)
        json_array_append_new(steps,
                              json_pack("{s:s,s:f,s:b}", "name", res->steps[i].name, "seconds",
                                        res->steps[i].seconds, "cached", res->steps[i].cached));
    json_object_set_new(j, "containerimage.digest", json_string(ds));
    json_object_set_new(j, "containerimage.config.digest", json_string(cs));
    json_object_set_new(j, "image.name", json_string(o->n_tags ? o->tags[0] : ""));
    json_object_set_new(j, "tags", tags);
    json_object_set_new(j, "steps", steps);
write:
    s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    r = kiln_fs_write_file_atomic(o->metadata_file, s, strlen(s), 0644, err);
    free(s);
    return r;
}

/* Turns what an exporter wrote into the completion event's outputs (and, for S3, a line on
 * the terminal), as kiln build has always reported them. */
static void output_done(void *ud, const kiln_export_result_t *r)
{
    json_t *ev = ud;

    if (strcmp(r->type, "s3") == 0) {
        fprintf(stderr, "s3 %s: %zu files, %zu uploaded, %zu unchanged, %llu bytes\n", r->location,
                r->files, r->uploaded, r->unchanged, (unsigned long long)r->bytes);
        if (!r->failed)
            kiln_event_add_output(ev, "s3",
                                  json_pack("{s:s, s:I, s:I, s:I}", "url", r->location, "files",
                                            (json_int_t)r->files, "uploaded",
                                            (json_int_t)r->uploaded, "unchanged",
                                            (json_int_t)r->unchanged));
    } else if (strcmp(r->type, "oci") == 0 || strcmp(r->type, "docker") == 0) {
        kiln_event_add_output(ev, "images",
                              json_pack("{s:s, s:s, s:s}", "type", r->type, "dest", r->location,
                                        "digest", r->digest));
    } else if (strcmp(r->type, "registry") == 0) {
        kiln_event_add_output(ev, "images",
                              json_pack("{s:s, s:s, s:s}", "type", "registry", "ref", r->location,
                                        "digest", r->digest));
    } else if (strcmp(r->type, "local") == 0 || strcmp(r->type, "tar") == 0) {
        kiln_event_add_output(ev, "local", json_pack("{s:s}", "dest", r->location));
    }
    /* a function zip is named by the function.json beside it, not in the event */
}

/* An exporter starts: its phase (pushing, uploading, exporting) on the events fd. */
static void output_phase(void *ud, const char *phase)
{
    const kiln_build_opts_t *o = ud;
    kiln_build_report_phase(o->events_fd, phase);
}

/* 1 when spec is a type=function output. */
static int is_function(const char *spec)
{
    return strncmp(spec, "type=function", 13) == 0 && (spec[13] == ',' || spec[13] == '\0');
}

int kiln_build_do_outputs(const kiln_build_opts_t *o, const kiln_build_request_t *req,
                          const char *root, kiln_store_t *store, const kiln_build_result_t *res,
                          const kiln_auto_build_t *ab, json_t *ev, uint64_t *pushed,
                          kiln_error_t *err)
{
    _cleanup_free_ char *tmp = kiln_xasprintf("%s/build/tmp", root);
    kiln_export_image_t img = {.store = store,
                               .manifest = &res->manifest,
                               .layers = res->layers,
                               .n_layers = res->n_layers,
                               .tags = o->n_tags ? (const char *const *)o->tags : NULL,
                               .n_tags = o->n_tags};
    kiln_export_ctx_t ctx = {.tmp_dir = tmp,
                             .insecure = o->n_insecure ? o->insecure : NULL,
                             .registry_config = o->registry_config,
                             .ecr_create = o->ecr_create,
                             .tags_with_name = o->server_mode,
                             .ecr_create_fn = kiln_cli_ecr_create_repositories,
                             .function = ab->dockerfile != NULL,
                             .function_handler = ab->plan ? ab->plan->handler : NULL,
                             .function_runtime = ab->plan ? ab->plan->runtime : NULL,
                             .result = output_done,
                             .phase = output_phase,
                             .phase_ud = (void *)o,
                             .result_ud = ev};
    kiln_netpolicy_t *policy = NULL; /* a tenant's push names any registry: as for FROM */
    int ret = 0;

    if (kiln_build_netpolicy(req, KILN_BUILD_FETCH_REGISTRY, &policy, err) < 0)
        return -1;
    ctx.policy = policy;
    for (int pass = ctx.function ? 0 : 1; pass < 2; pass++)
        for (size_t i = 0; i < o->n_outputs && ret == 0; i++)
            if (is_function(o->outputs[i]) == (pass == 0))
                ret = kiln_export_run(&ctx, &img, o->outputs[i], err);
    /* -t names the image in kiln's store, as docker build -t does (a tenant's server build
     * names nothing on the machine: its names are its pushes') */
    if (ret == 0 && o->n_tags && !o->server_mode)
        ret = kiln_imagestore_tag(store, o->tags, o->n_tags, &res->manifest.digest, err);
    *pushed += ctx.pushed;
    kiln_export_ctx_clear(&ctx);
    kiln_netpolicy_free(policy);
    return ret;
}

void kiln_build_report_phase(int fd, const char *phase)
{
    json_t *ev;

    if (fd < 0)
        return;
    ev = kiln_job_event_new(NULL, "phase");
    json_object_set_new(ev, "phase", json_string(phase));
    kiln_job_event_write(fd, ev, NULL);
    json_decref(ev);
}

void kiln_build_report_step(int fd, const kiln_step_event_t *ev)
{
    _cleanup_free_ char *line = kiln_step_event_json(ev), *nl = NULL;

    if (fd < 0 || line == NULL)
        return;
    nl = kiln_xasprintf("%s\n", line);
    kiln_fs_write_all(fd, nl, strlen(nl), NULL);
}

void kiln_build_report_error(int fd, const char *code, const char *message)
{
    json_t *ev;

    if (fd < 0)
        return;
    ev = kiln_job_event_new(NULL, "error");
    json_object_set_new(ev, "code", json_string(code));
    json_object_set_new(ev, "message", json_string(message));
    kiln_job_event_write(fd, ev, NULL);
    json_decref(ev);
}

void kiln_build_report_size(const kiln_build_opts_t *o, kiln_store_t *store,
                            const kiln_build_result_t *res, json_t *ev)
{
    kiln_image_size_t sz;
    kiln_error_t e = {0};
    char text[96];

    if (kiln_image_size(store, &res->manifest, &res->config_digest, res->layers, res->n_layers, &sz,
                        &e) < 0) {
        fprintf(stderr, "kiln: warning: image size: %s\n", e.msg);
        return;
    }
    kiln_event_set_image_size(ev, sz.compressed, sz.uncompressed, text, sizeof(text));
    if (o->progress != KILN_PROGRESS_QUIET)
        fprintf(stderr, "image size: %s\n", text);
}
