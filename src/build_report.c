/* kiln build — a build job's events rendered (see build_report.h). */
#include "src/build_report.h"

#include <stdio.h>
#include <string.h>

#include "job/stream.h"
#include "src/ecr_login.h"
#include "src/progress.h"
#include "utils/cleanup.h"
#include "utils/fs.h"
#include "utils/mem.h"

extern char **environ;

/* Prints a plain progress line. A step's error is only marked where it happens
 * ("#N ERROR"): its message, with the step's last output lines, is printed once, at the end
 * (in the user's terms for an auto build). */
static void progress_line(const char *line)
{
    int n = 0;

    if (line[0] == '#' && sscanf(line, "#%*d%n", &n) >= 0 && n > 1 &&
        strncmp(line + n, " ERROR: ", 8) == 0) {
        fprintf(stderr, "%.*s ERROR\n", n, line);
        return;
    }
    fprintf(stderr, "%s\n", line);
}

/* kiln build's view (src/progress): every event drawn there, the typed ones also on
 * --events-fd; the failure kept for the view's end. */
static void render_progress(kiln_build_opts_t *o, const kiln_job_run_event_t *ev)
{
    switch (ev->kind) {
    case KILN_JOB_RUN_PHASE:
        kiln_build_report_phase(o->events_fd, ev->text);
        kiln_progress_phase(o->renderer, ev->text);
        break;
    case KILN_JOB_RUN_STEP:
        kiln_build_report_step(o->events_fd, ev->step);
        kiln_progress_step(o->renderer, ev->step);
        break;
    case KILN_JOB_RUN_LOG:
        kiln_progress_note(o->renderer, ev->text);
        break;
    case KILN_JOB_RUN_NOTE:
        /* the view's summary has the size (the job's result) */
        if (strncmp(ev->text, "image size: ", 12) != 0)
            kiln_progress_note(o->renderer, ev->text);
        break;
    case KILN_JOB_RUN_WARNING: {
        _cleanup_free_ char *w = kiln_xasprintf("kiln: warning: %s", ev->text);
        kiln_progress_note(o->renderer, w);
        break;
    }
    case KILN_JOB_RUN_FAILED:
        free(o->fail_text);
        o->fail_text = kiln_xstrdup(ev->explained ? ev->explained : ev->text);
        o->fail_in_build = ev->in_build;
        o->fail_user_terms = ev->explained != NULL;
        kiln_build_report_error(o->events_fd, ev->code, ev->text);
        break;
    }
}

void kiln_build_render(void *ud, const kiln_job_run_event_t *ev)
{
    kiln_build_opts_t *o = ud;

    if (o->renderer) {
        render_progress(o, ev);
        return;
    }
    switch (ev->kind) {
    case KILN_JOB_RUN_PHASE:
        kiln_build_report_phase(o->events_fd, ev->text);
        break;
    case KILN_JOB_RUN_STEP:
        kiln_build_report_step(o->events_fd, ev->step);
        break;
    case KILN_JOB_RUN_LOG:
        progress_line(ev->text);
        break;
    case KILN_JOB_RUN_NOTE:
        fprintf(stderr, "%s\n", ev->text);
        break;
    case KILN_JOB_RUN_WARNING:
        fprintf(stderr, "kiln: warning: %s\n", ev->text);
        break;
    case KILN_JOB_RUN_FAILED:
        if (ev->in_build)
            fprintf(stderr, "ERROR: %s\n", ev->explained ? ev->explained : ev->text);
        else
            fprintf(stderr, "kiln: %s\n", ev->text);
        kiln_build_report_error(o->events_fd, ev->code, ev->text);
        break;
    }
}

void kiln_build_run_opts(const kiln_build_opts_t *o, kiln_job_run_opts_t *ro)
{
    *ro = (kiln_job_run_opts_t){.root = o->root,
                                .env = environ,
                                .progress = o->progress,
                                .typed_steps = o->events_fd >= 0 || o->renderer != NULL,
                                .registry_config = o->registry_config,
                                .server_mode = o->server_mode,
                                .allow_http_git = o->allow_http_git,
                                .oci_dirs = o->n_oci_dirs ? o->oci_dirs : NULL,
                                .n_oci_dirs = o->n_oci_dirs,
                                .additional_stores =
                                    o->n_additional_stores ? o->additional_stores : NULL,
                                .n_additional_stores = o->n_additional_stores,
                                .allow_addresses = o->n_allow_addrs ? o->allow_addrs : NULL,
                                .n_allow_addresses = o->n_allow_addrs,
                                .stat_cache_max = o->stat_cache_max,
                                .ecr_create = o->ecr_create,
                                .ecr_create_fn = kiln_cli_ecr_create_repositories,
                                .metadata_file = o->metadata_file,
                                .event = kiln_build_render,
                                .ud = (void *)o};
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
