/* kiln — solving a Dockerfile: stages, the stages a target needs, their order, running them (see
 * solve.c). Internal to the engine: what engine/solve.c offers the other engine files. */
#ifndef KILN_ENGINE_SOLVE_H
#define KILN_ENGINE_SOLVE_H

#include "engine/engine.h"

/* The dependency graph of a build: deps[i][k] when stage i reads stage k (FROM, COPY/ADD
 * --from, RUN --mount from=), needed[i] when the target needs stage i (directly or not). */
typedef struct kiln_solve_graph {
    size_t n, target;
    bool **deps;
    bool *needed;
} kiln_solve_graph_t;
stage_t *kiln_solve_find(engine_t *e, const char *name, size_t before);
void kiln_solve_graph(engine_t *e, const stage_t *target, kiln_solve_graph_t *g);
void kiln_solve_graph_free(kiln_solve_graph_t *g);
/* The next wave: needed stages other than the target, not started (state 0), whose
 * dependencies are built (state 2), at most MAX_PARALLEL, into wave[]; their count. */
size_t kiln_solve_wave(const kiln_solve_graph_t *g, const int *state, size_t *wave);
/* The order the stages run in when every one succeeds: wave after wave, then the
 * target; order[] has room for g->n; returns how many stages run. */
size_t kiln_solve_order(const kiln_solve_graph_t *g, size_t *order);
int kiln_solve_run_stage(engine_t *e, stage_t *st, kiln_error_t *err);
int kiln_solve_run(engine_t *e, stage_t *target, kiln_error_t *err);
int kiln_solve_split(engine_t *e, kiln_error_t *err);
void kiln_solve_stage_clear(stage_t *st);

#endif
