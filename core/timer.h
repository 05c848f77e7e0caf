/* core/timer.h - monotonic wall clock and process memory readings for benchmarks and logs. */
#ifndef REELFARM_CORE_TIMER_H
#define REELFARM_CORE_TIMER_H

#include <stddef.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

/* Seconds from an arbitrary fixed point (CLOCK_MONOTONIC). */
double time_now(void);
/* Peak resident set size of this process in bytes (getrusage), 0 if unknown. */
size_t mem_peak_rss(void);
/* Current resident set size in bytes (/proc/self/statm), 0 if unknown. */
size_t mem_current_rss(void);

RF_END_DECLS

#endif /* REELFARM_CORE_TIMER_H */
