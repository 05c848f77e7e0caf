/* core/process.h - who this process is (rank, world size, host, GPU) and how it is taken down.
 *
 * core/ knows nothing of MPI or NCCL. The parallel layer fills in the identity after MPI_Init and
 * registers abort hooks (ncclCommAbort on live communicators, then MPI_Abort); die_at() runs the
 * hooks newest first. A process without hooks ends with _Exit(PROC_EXIT_FATAL) after flushing.
 */
#ifndef REELFARM_CORE_PROCESS_H
#define REELFARM_CORE_PROCESS_H

#include <stddef.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum { PROC_EXIT_FATAL = 70 }; /* EX_SOFTWARE: an internal error, not bad input */

typedef void (*proc_abort_hook_fn)(int exit_code, void *user);

void proc_set_rank(int rank, int world);
void proc_set_gpu(int gpu); /* -1: no GPU */
int proc_rank(void);
int proc_world(void);
int proc_gpu(void);
const char *proc_host(void);
/* "rank 0/4 node07 gpu3" (or "gpu-"); returns buf. */
const char *proc_describe(char *buf, size_t len);

/* Hooks run by die_at() before the process ends; at most 8, newest first. */
void proc_add_abort_hook(proc_abort_hook_fn fn, void *user);
void proc_remove_abort_hook(proc_abort_hook_fn fn, void *user);
/* Run the hooks and end the process. Used by die_at(). */
RF_NORETURN void proc_abort(int exit_code);

RF_END_DECLS

#endif /* REELFARM_CORE_PROCESS_H */
