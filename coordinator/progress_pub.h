/* coordinator/progress_pub.h - progress events over ZeroMQ PUB (issue 9, docs/protocol.md "Events").
 *
 * The render service publishes its jobs' events on its --pub socket; a batch `render --progress-endpoint EP`
 * publishes its own (one job) through a progress_pub, so `reelfarm watch --events EP` follows Slurm jobs as
 * well. Both send the same messages, built by progress_event_new: {"v":1,"event":E,"job":ID,"time":T, ...the
 * fields of the render's progress JSON (coordinator/progress.h)}. A progress_pub also sends
 * {"event":"heartbeat"} every PROGRESS_PUB_HEARTBEAT_S seconds from a thread, so a watcher tells a render that
 * is between rows (a 14B row takes minutes) from one that is gone.
 */
#ifndef REELFARM_COORDINATOR_PROGRESS_PUB_H
#define REELFARM_COORDINATOR_PROGRESS_PUB_H

#include <cJSON.h>

struct msock_curve;

#define PROGRESS_PUB_HEARTBEAT_S 1.0

/* An event object (the caller owns it): v, event, job, time; progress (NULL: none) adds its fields, all but
 * its own "event". */
cJSON *progress_event_new(const char *event, const char *job, const cJSON *progress);

struct progress_pub;
/* Bind a PUB socket on endpoint for the render job `job` (loopback or ipc:// unless curve is given, with
 * allow_dir its clients' keys, as `serve`) and start the heartbeat. */
int progress_pub_open(struct progress_pub **p, const char *endpoint, const char *job, const char *output,
                      const struct msock_curve *curve, const char *allow_dir);
/* A progress_hook_fn (coordinator/progress.h): "start" goes out as "started"; the render's own "done" and
 * "interrupted" are left to progress_pub_close, which knows the outcome. */
void progress_pub_hook(void *user, const char *event, const char *json);
/* Publish the outcome ("done", "failed" or "interrupted"; error: NULL or the reason), give subscribers a moment
 * to receive it, stop the heartbeat and close. */
void progress_pub_close(struct progress_pub **p, const char *state, const char *error);

#endif /* REELFARM_COORDINATOR_PROGRESS_PUB_H */
