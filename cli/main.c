/* cli/main.c - the `reelfarm` command: subcommand dispatch.
 *
 * Exit status: 0 success, 1 bad input or a failed run (one "reelfarm: error: ..." line),
 * 2 usage error, 70 internal error (FATAL line with rank and location).
 */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "core/error.h"
#include "core/log.h"
#include "kernels/ops.h"
#include "parallel/par_runtime.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

int cmd_submit(int argc, char **argv); /* cli/cmd_submit.c */

static const struct subcommand subcommands[] = {
    {"render", cmd_render, "prompt or film file -> finished film (MP4/MKV/WebM/HDF5), with checkpoints and resume"},
    {"submit", cmd_submit, "a film file -> a Slurm batch job on N nodes, or with --to a render service; prints the job id"},
    {"serve", cmd_serve, "the render service: model loaded once, a queue of films over ZeroMQ (docs/protocol.md)"},
    {"status", cmd_status, "a render service's jobs, or one job's state and progress"},
    {"watch", cmd_watch, "follow a job of a render service with a progress bar until it ends"},
    {"cancel", cmd_cancel, "cancel a job of a render service (the running one keeps its checkpoint)"},
    {"keygen", cmd_keygen, "a CURVE key pair (NAME.key, NAME.pub) for a render service and its clients"},
    {"dit-forward", cmd_dit_forward, "one DiT forward: latents, timesteps, context (HDF5) -> noise_pred (HDF5)"},
    {"encode-text", cmd_encode_text, "umT5 encoding of a prompt (and negative prompt) -> context (HDF5)"},
    {"vae-encode", cmd_vae_encode, "Wan VAE encoding: image, video or HDF5 pixels -> latents (HDF5)"},
    {"vae-decode", cmd_vae_decode, "Wan VAE decoding: latents (HDF5) -> video (HDF5, MP4, MKV or WebM)"},
    {"denoise", cmd_denoise, "the diffusion-forcing loop of one window: noise + contexts (HDF5) -> latents (HDF5)"},
    {"plan", cmd_plan, "the chunk plan of a long video: chunks, rows, DiT forwards, FLOPs"},
    {"make-tiny-model", cmd_make_tiny_model, "write the built-in tiny random model (Diffusers or original layout)"},
    {"inspect", cmd_inspect, "describe a model directory, safetensors file or HDF5 file"},
    {"bench", cmd_bench, "time DiT forwards with random weights at a given model size and resolution"},
    {"bench-vae", cmd_bench_vae, "time and memory of the VAE decoder or encoder with random weights"},
};

static void print_help(FILE *out) {
    fprintf(out,
            "reelfarm %s - distributed renderer for SkyReels-V2 diffusion-forcing video models\n\n"
            "Usage: reelfarm <command> [options]     (reelfarm <command> --help for details)\n\nCommands:\n",
            REELFARM_VERSION);
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-16s %s\n", subcommands[i].name, subcommands[i].summary);
    fprintf(out,
            "\nEnvironment: REELFARM_LOG_LEVEL=error|warn|info|debug (default info); OMP_NUM_THREADS.\n"
            "CUDA backend compiled in: %s.\n",
            backend_cuda_compiled() ? "yes" : "no");
}

int main(int argc, char **argv) {
    log_init_from_env();
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        print_help(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("reelfarm %s (cuda backend: %s)\n", REELFARM_VERSION, backend_cuda_compiled() ? "compiled" : "absent");
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(name, subcommands[i].name) != 0) continue;
        par_init(&argc, &argv, PAR_AUTO);
        int rc = subcommands[i].run(argc - 1, argv + 1);
        /* Under MPI the same failure on every rank (a refused layout, a bad flag, an agreed stop on a signal)
         * was reported by rank 0 alone and ends normally; a failure on some ranks only ends the whole job (the
         * others may wait on the failed one forever), each failed rank saying why. */
        if (rc != 0 && par_world() > 1 && !par_all_exited_alike(rc, 3.0)) {
            if (par_rank() != 0 && err_message()[0]) fprintf(stderr, "reelfarm: error: %s\n", err_message());
            par_abort_job(rc);
        }
        par_finalize();
        return rc;
    }
    fprintf(stderr, "reelfarm: unknown command '%s' (see 'reelfarm --help')\n", name);
    return EXIT_USAGE;
}
