/* cli/args.h - option parsing helpers shared by the subcommands.
 *
 * Values are parsed strictly (the whole string must be a number in range); a bad value is a usage
 * error naming the flag and what was expected. Usage errors exit 2, input/run errors exit 1,
 * internal (fatal) errors exit 70.
 */
#ifndef REELFARM_CLI_ARGS_H
#define REELFARM_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>

enum { EXIT_USAGE = 2, EXIT_RUN_ERROR = 1 };

int arg_i64(const char *flag, const char *value, int64_t lo, int64_t hi, int64_t *out);
int arg_int(const char *flag, const char *value, int lo, int hi, int *out);
int arg_u64(const char *flag, const char *value, uint64_t *out);
int arg_f64(const char *flag, const char *value, double lo, double hi, double *out);
/* "540p" -> 960x544, "720p" -> 1280x720, "WxH" (e.g. 832x480, portrait 544x960) */
int arg_resolution(const char *flag, const char *value, int64_t *width, int64_t *height);

/* Read a whole UTF-8 text file given with `flag` (--prompt-file ...) into a malloc'd string; a NUL byte
 * inside is refused. */
int arg_read_text_file(const char *flag, const char *path, char **out);

/* Print one line "reelfarm <cmd>: <message> (see 'reelfarm <cmd> --help')" to stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "reelfarm: error: <err_message()>" to stderr; returns EXIT_RUN_ERROR. */
int run_error(void);

/* Subcommands (cli/cmd_*.c). */
int cmd_dit_forward(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_make_tiny_model(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_denoise(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_encode_text(int argc, char **argv);
int cmd_vae_decode(int argc, char **argv);
int cmd_vae_encode(int argc, char **argv);
int cmd_bench_vae(int argc, char **argv);
int cmd_render(int argc, char **argv);

#endif /* REELFARM_CLI_ARGS_H */
