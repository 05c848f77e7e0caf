/* core/log.h - levelled logging.
 *
 * Lines look like "[12:04:05.123][rank 0/1 host gpu-][INFO] message" (DEBUG adds file:line) and go
 * to stderr, or to a sink installed with log_set_sink() (tests capture output that way). The level
 * comes from REELFARM_LOG_LEVEL (error, warn, info, debug; default info). Timing and throughput
 * lines use a fixed "key=value key=value" form so that scripts can parse them.
 */
#ifndef REELFARM_CORE_LOG_H
#define REELFARM_CORE_LOG_H

#include "core/cdefs.h"

RF_BEGIN_DECLS

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN = 1, LOG_LEVEL_INFO = 2, LOG_LEVEL_DEBUG = 3 };

typedef void (*log_sink_fn)(enum log_level level, const char *line, void *user);

/* Read REELFARM_LOG_LEVEL; an unknown value is reported and ignored. */
void log_init_from_env(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Replace the output (NULL restores stderr). The line has no trailing newline. */
void log_set_sink(log_sink_fn fn, void *user);

void log_printf(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Same, but only rank 0 prints. */
void log_printf0(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_ERROR(...) log_printf(LOG_LEVEL_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_WARN(...) log_printf(LOG_LEVEL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_INFO(...) log_printf(LOG_LEVEL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_DEBUG(...) log_printf(LOG_LEVEL_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_INFO0(...) log_printf0(LOG_LEVEL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_WARN0(...) log_printf0(LOG_LEVEL_WARN, __FILE__, __LINE__, __VA_ARGS__)

RF_END_DECLS

#endif /* REELFARM_CORE_LOG_H */
