/* bench/progress.sh's second figure: the CPU time of the tty progress view itself (src/progress)
 * for a build of STEPS steps, each printing LINES output lines, lasting SECONDS: every event
 * rendered and a frame drawn ten times a second, as kiln build's ticker does, into /dev/null.
 * The machine's load weighs on this far less than on a build's wall time.
 * Usage: progress_render STEPS LINES SECONDS  →  "render_cpu_s N frames N bytes N" */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "src/progress.h"

static double fake_clock;

static double now(void *ud)
{
    (void)ud;
    return fake_clock;
}

static unsigned long long written;
static int devnull = -1;

static void sink(void *ud, const char *data, size_t len)
{
    (void)ud;
    written += len;
    if (write(devnull, data, len) < 0)
        exit(1);
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 500, lines = argc > 2 ? atoi(argv[2]) : 10;
    double seconds = argc > 3 ? atof(argv[3]) : 45, per_step, next_frame = 0;
    unsigned long frames = 0;
    struct timespec a, b;
    kiln_progress_opts_t o = {.mode = KILN_PROGRESS_TTY,
                              .write = sink,
                              .width = 120,
                              .height = 40,
                              .now = now,
                              .dockerfile = "Dockerfile"};
    kiln_progress_t *p;
    kiln_progress_result_t res = {.ok = 1, .digest = "sha256:0", .size_compressed = 1};

    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    per_step = seconds / steps;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    p = kiln_progress_new(&o);
    for (int s = 1; s <= steps; s++) {
        char title[64], line[96];
        kiln_step_event_t ev = {.step = s, .kind = KILN_STEP_EVENT_START, .seconds = -1};
        snprintf(title, sizeof(title), "[stage-0 %d/%d] RUN seq 1 10 | while read n", s, steps);
        ev.text = title;
        ev.line = s;
        kiln_progress_step(p, &ev);
        for (int l = 0; l < lines; l++) {
            kiln_step_event_t lg = {.step = s, .kind = KILN_STEP_EVENT_LOG, .seconds = -1};
            snprintf(line, sizeof(line), "step %d line %d", s, l);
            lg.text = line;
            kiln_progress_step(p, &lg);
        }
        /* the frames the ticker draws while this step runs */
        for (fake_clock += per_step; next_frame <= fake_clock; next_frame += 0.1, frames++)
            kiln_progress_tick(p);
        ev.kind = KILN_STEP_EVENT_DONE;
        ev.text = NULL;
        ev.seconds = per_step;
        kiln_progress_step(p, &ev);
    }
    kiln_progress_finish(p, &res);
    kiln_progress_free(p);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    printf("render_cpu_s %.4f frames %lu bytes %llu\n",
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9, frames, written);
    return 0;
}
