/* core/process.c - process identity and the abort hooks run by the fatal path. */
#include "core/process.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { ABORT_HOOKS_MAX = 8 };

static int proc_rank_v = 0;
static int proc_world_v = 1;
static int proc_gpu_v = -1;
static char proc_host_v[64];

static struct {
    proc_abort_hook_fn fn;
    void *user;
} abort_hooks[ABORT_HOOKS_MAX];
static int abort_hook_count = 0;
static volatile int aborting = 0;

void proc_set_rank(int rank, int world) {
    proc_rank_v = rank;
    proc_world_v = world;
}

void proc_set_gpu(int gpu) { proc_gpu_v = gpu; }
int proc_rank(void) { return proc_rank_v; }
int proc_world(void) { return proc_world_v; }
int proc_gpu(void) { return proc_gpu_v; }

const char *proc_host(void) {
    if (proc_host_v[0] == '\0') {
        if (gethostname(proc_host_v, sizeof proc_host_v - 1) != 0) snprintf(proc_host_v, sizeof proc_host_v, "?");
        proc_host_v[sizeof proc_host_v - 1] = '\0';
        char *dot = strchr(proc_host_v, '.');
        if (dot) *dot = '\0';
    }
    return proc_host_v;
}

const char *proc_describe(char *buf, size_t len) {
    if (proc_gpu_v >= 0)
        snprintf(buf, len, "rank %d/%d %s gpu%d", proc_rank_v, proc_world_v, proc_host(), proc_gpu_v);
    else
        snprintf(buf, len, "rank %d/%d %s gpu-", proc_rank_v, proc_world_v, proc_host());
    return buf;
}

void proc_add_abort_hook(proc_abort_hook_fn fn, void *user) {
    if (abort_hook_count < ABORT_HOOKS_MAX) {
        abort_hooks[abort_hook_count].fn = fn;
        abort_hooks[abort_hook_count].user = user;
        abort_hook_count++;
    }
}

void proc_remove_abort_hook(proc_abort_hook_fn fn, void *user) {
    for (int i = 0; i < abort_hook_count; i++) {
        if (abort_hooks[i].fn == fn && abort_hooks[i].user == user) {
            memmove(&abort_hooks[i], &abort_hooks[i + 1], (size_t)(abort_hook_count - i - 1) * sizeof abort_hooks[0]);
            abort_hook_count--;
            return;
        }
    }
}

RF_NORETURN void proc_abort(int exit_code) {
    /* A hook that itself fails fatally must not recurse. */
    if (!aborting) {
        aborting = 1;
        for (int i = abort_hook_count - 1; i >= 0; i--) abort_hooks[i].fn(exit_code, abort_hooks[i].user);
    }
    fflush(stderr);
    fflush(stdout);
    _Exit(exit_code);
}
