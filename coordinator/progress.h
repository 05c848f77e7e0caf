/* coordinator/progress.h - progress of a render for people (a bar on stderr) and machines (JSON lines).
 *
 * The bar shows chunk i/n, row j/m of the chunk, seconds per row, the ETA and frames done. On a terminal it
 * redraws one line; otherwise (a log file, a batch job) it prints a line at most every 10 seconds and at
 * every chunk end. JSON lines go to stdout, one object per event, flushed at once:
 *   {"event":"row","chunk":1,"chunks":4,"row":12,"rows":33,"rows_done":45,"rows_total":132,
 *    "s_per_row":1.23,"eta_s":106.1,"elapsed_s":55.4,"frames_done":97,"frames_total":257}
 * with events "start", "row", "decode" (frames of a chunk being written), "chunk" (a chunk finished),
 * "checkpoint", "interrupted" and "done". Seconds per row are measured over the rows this process ran, so a
 * resumed render's ETA is not skewed by the interruption.
 */
#ifndef REELFARM_COORDINATOR_PROGRESS_H
#define REELFARM_COORDINATOR_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Called with every event as one JSON object (the --progress-json line, without the newline). The render
 * service (coordinator/service.h) publishes these on its PUB socket. */
typedef void (*progress_hook_fn)(void *user, const char *event, const char *json);

struct progress {
    bool bar, json, tty;
    progress_hook_fn hook;
    void *hook_user;
    FILE *bar_out, *json_out;
    int64_t chunks, rows_total, frames_total;
    int64_t rows_done, frames_done;  /* so far, resumed work included */
    int64_t rows_run;                /* rows run by this process */
    double t_start, t_first_row, last_bar;
    bool bar_dirty;
};

/* quiet: no bar; json: JSON lines on stdout. rows_done / frames_done: work already done (a resume). */
void progress_init(struct progress *p, bool quiet, bool json, int64_t chunks, int64_t rows_total,
                   int64_t frames_total, int64_t rows_done, int64_t frames_done);
/* Also send every event to hook (NULL: none), whether or not JSON lines are printed. */
void progress_set_hook(struct progress *p, progress_hook_fn hook, void *user);
/* A row of chunk `chunk` (0-based) finished: `row` rows of `rows` are done in that chunk. */
void progress_row(struct progress *p, int64_t chunk, int64_t row, int64_t rows);
/* Frames written so far changed. */
void progress_frames(struct progress *p, int64_t frames_done);
/* Any other event ("start", "decode", "chunk", "checkpoint", "interrupted", "done"); detail may be NULL. */
void progress_event(struct progress *p, const char *event, int64_t chunk, const char *detail);
/* End the bar's line (before other stderr output and at the end). */
void progress_break(struct progress *p);

#endif /* REELFARM_COORDINATOR_PROGRESS_H */
