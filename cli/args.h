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

#include "parallel/mesh.h"

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

/* The parallel layout flags of every command that runs the DiT (issue "distributed"): put
 * ARG_PARALLEL_LONGOPTS in the getopt table, pass each option to arg_parallel first (returns true when
 * it was one of them, *rc set), and ARG_PARALLEL_HELP in the help text. */
enum { ARG_OPT_SP = 0x2000, ARG_OPT_TP, ARG_OPT_ULYSSES, ARG_OPT_CFG_PARALLEL, ARG_OPT_NO_CFG_PARALLEL };
#define ARG_PARALLEL_LONGOPTS                                                                                    \
    {"sp", required_argument, 0, ARG_OPT_SP}, {"tp", required_argument, 0, ARG_OPT_TP},                          \
        {"ulysses", required_argument, 0, ARG_OPT_ULYSSES}, {"cfg-parallel", no_argument, 0, ARG_OPT_CFG_PARALLEL}, \
        {"no-cfg-parallel", no_argument, 0, ARG_OPT_NO_CFG_PARALLEL}
#define ARG_PARALLEL_HELP                                                                                        \
    "Parallel layout (under mpirun/srun; every rank runs the same command, rank 0 writes):\n"                    \
    "  --sp N                    sequence parallel degree (default: the ranks left after --tp and CFG)\n"       \
    "  --ulysses N               of --sp, ranks exchanging heads by all-to-all (default: the largest that\n"    \
    "                            divides the heads); the rest of --sp runs ring attention\n"                    \
    "  --tp N                    tensor parallel degree: heads and FFN columns split (default 1)\n"              \
    "  --cfg-parallel            conditional and unconditional passes on the two halves of the ranks\n"       \
    "                            (default when guidance > 1 and the rank count is even)\n"                      \
    "  --no-cfg-parallel         never split by CFG\n"
bool arg_parallel(int ch, const char *value, struct par_request *req, int *rc);

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
int cmd_serve(int argc, char **argv);     /* cli/cmd_serve.c: the render service */
int cmd_submit_to(int argc, char **argv); /* cli/cmd_client.c: `submit --to` (cmd_submit hands over) */
int cmd_status(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
int cmd_keygen(int argc, char **argv); /* cli/cmd_client.c: CURVE key pairs for the service */

#endif /* REELFARM_CLI_ARGS_H */
