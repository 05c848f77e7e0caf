/* coordinator/progress_pub.c - a batch render's progress events on a ZeroMQ PUB socket, and the event messages
 * the render service sends too (issue 9, docs/protocol.md "Events"; see progress_pub.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/progress_pub.h"
#include "coordinator/service.h"
#include "core/error.h"
#include "core/log.h"
#include "io/msg_socket.h"

cJSON *progress_event_new(const char *event, const char *job, const cJSON *progress) {
    cJSON *ev = cJSON_CreateObject();
    if (!ev) return NULL;
    cJSON_AddNumberToObject(ev, "v", SERVICE_PROTOCOL_VERSION);
    cJSON_AddStringToObject(ev, "event", event);
    cJSON_AddStringToObject(ev, "job", job);
    cJSON_AddNumberToObject(ev, "time", (double)time(NULL));
    for (const cJSON *it = progress ? progress->child : NULL; it; it = it->next)
        if (it->string && strcmp(it->string, "event") != 0)
            cJSON_AddItemToObject(ev, it->string, cJSON_Duplicate(it, true));
    return ev;
}

struct progress_pub {
    struct msock *pub;
    struct msock_auth *auth;
    char job[128];
    char *output;
    pthread_mutex_t lock; /* the socket: the render thread and the heartbeat thread */
    pthread_t beat;
    bool beating;
    atomic_bool stop;
};

/* Send an event object (consumed). */
static void pub_send(struct progress_pub *p, cJSON *ev) {
    char *text = ev ? cJSON_PrintUnformatted(ev) : NULL;
    cJSON_Delete(ev);
    if (!text) return;
    pthread_mutex_lock(&p->lock);
    if (msock_send(p->pub, text, strlen(text), 100) < 0) LOG_WARN("progress events: %s", err_message());
    pthread_mutex_unlock(&p->lock);
    free(text);
}

static void *heartbeat_main(void *arg) {
    struct progress_pub *p = arg;
    while (!atomic_load(&p->stop)) {
        pub_send(p, progress_event_new("heartbeat", p->job, NULL));
        for (int i = 0; i < 10 && !atomic_load(&p->stop); i++) usleep((useconds_t)(PROGRESS_PUB_HEARTBEAT_S * 1e5));
    }
    return NULL;
}

int progress_pub_open(struct progress_pub **out, const char *endpoint, const char *job, const char *output,
                      const struct msock_curve *curve, const char *allow_dir) {
    *out = NULL;
    TRY(service_check_endpoint("--progress-endpoint", endpoint, curve != NULL));
    if (curve && !allow_dir) return err_set(ERR_INVALID_ARG, "CURVE needs --allow-dir DIR (the watchers' .pub keys)");
    struct progress_pub *p = calloc(1, sizeof *p);
    if (!p || !(p->output = strdup(output ? output : ""))) {
        free(p);
        return err_set(ERR_NOMEM, "out of memory");
    }
    snprintf(p->job, sizeof p->job, "%s", job);
    pthread_mutex_init(&p->lock, NULL);
    int rc = curve ? msock_auth_start(&p->auth, allow_dir) : ERR_OK;
    if (rc == ERR_OK) rc = msock_bind(&p->pub, MSOCK_PUB, endpoint, 0, curve);
    if (rc == ERR_OK && pthread_create(&p->beat, NULL, heartbeat_main, p) != 0)
        rc = err_set(ERR_IO, "cannot start the progress heartbeat thread");
    if (rc < 0) {
        msock_close(&p->pub);
        msock_auth_stop(&p->auth);
        pthread_mutex_destroy(&p->lock);
        free(p->output), free(p);
        return rc;
    }
    p->beating = true;
    LOG_INFO("progress events of job %s on %s (reelfarm watch --events %s)", p->job, endpoint, endpoint);
    *out = p;
    return ERR_OK;
}

void progress_pub_hook(void *user, const char *event, const char *json) {
    struct progress_pub *p = user;
    if (!strcmp(event, "done") || !strcmp(event, "interrupted")) return;
    cJSON *progress = cJSON_Parse(json);
    if (!progress) return;
    cJSON *ev = progress_event_new(!strcmp(event, "start") ? "started" : event, p->job, progress);
    cJSON_Delete(progress);
    if (ev && !strcmp(event, "start")) cJSON_AddStringToObject(ev, "output", p->output);
    pub_send(p, ev);
}

void progress_pub_close(struct progress_pub **pp, const char *state, const char *error) {
    struct progress_pub *p = *pp;
    if (!p) return;
    atomic_store(&p->stop, true);
    if (p->beating) pthread_join(p->beat, NULL);
    /* PUB queues and drops nothing for connected subscribers, but closing the socket drops what is still queued:
     * send the outcome twice, a moment apart, before closing (a watcher takes the first it sees) */
    for (int i = 0; i < 2; i++) {
        cJSON *ev = progress_event_new(state, p->job, NULL);
        if (ev) cJSON_AddStringToObject(ev, "output", p->output);
        if (ev && error) cJSON_AddStringToObject(ev, "error", error);
        pub_send(p, ev);
        usleep(200000);
    }
    msock_close(&p->pub);
    msock_auth_stop(&p->auth);
    pthread_mutex_destroy(&p->lock);
    free(p->output);
    free(p);
    *pp = NULL;
}
