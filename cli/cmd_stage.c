/* cli/cmd_stage.c - `reelfarm dit-forward` and `reelfarm bench` (one rank, or the scaling benchmark under mpirun). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "core/error.h"
#include "worker/worker.h"

static const char dit_forward_help[] =
    "Usage: reelfarm dit-forward --model DIR --in IN.h5 --out OUT.h5 [options]\n"
    "\n"
    "One forward pass of the Wan DiT (spec section 3) in float32, on the CPU or on GPU 0.\n"
    "\n"
    "IN.h5 datasets:\n"
    "  latents        float32 [16, F, H, W]  noisy latents (H, W: latent size, even)\n"
    "  timesteps      float32 [F] (one per latent frame, diffusion forcing) or [1]\n"
    "  context        float32 [L, text_dim]  text-encoder output (padding rows included)\n"
    "  condition      float32 [Cin-16, F, H, W]  image-to-video models only\n"
    "  clip_features  float32 [N, image_dim]     image-to-video models only\n"
    "  fps            integer 0 (16 fps) or 1 (other rates); models with an fps embedding (default 1)\n"
    "OUT.h5 gets noise_pred float32 [16, F, H, W] (the flow prediction).\n"
    "\n"
    "Options:\n"
    "  --model DIR              model directory (Diffusers or original SkyReels layout)\n"
    "  --in IN.h5               input tensors\n"
    "  --out OUT.h5             output file (written atomically; never overwritten without --force)\n"
    "  --causal-block-size N    block-causal self-attention over blocks of N latent frames (default: full)\n"
    "  --threads N              CPU threads (default: all cores)\n"
    "  --backend cpu|cuda       where the forward runs (default cpu); cuda: the weights and activations\n"
    "                           on GPU 0 in float32\n"
    "  --dtype f32|bf16         storage of the weight matrices on the GPU (default f32); bf16: the\n"
    "                           attention, FFN and embedding matrices in bf16 (half the memory),\n"
    "                           activations f32, bf16 x bf16 products summed in f32 (--backend cuda)\n"
    "  --force                  replace OUT.h5 if it exists\n";

/* "cpu" | "cuda" (the core backend names, backend_name()). */
static int parse_backend(const char *value, enum backend *b) {
    if (!strcmp(value, backend_name(BACKEND_CPU)))
        *b = BACKEND_CPU;
    else if (!strcmp(value, backend_name(BACKEND_CUDA)))
        *b = BACKEND_CUDA;
    else
        return err_set(ERR_INVALID_ARG, "--backend: expected cpu or cuda, got '%s'", value);
    return ERR_OK;
}

/* --dtype: "f32" | "bf16" (the storage of the weight matrices on the GPU). */
static int parse_weight_dtype(const char *value, enum dtype *dt) {
    if (!strcmp(value, "f32"))
        *dt = DTYPE_F32;
    else if (!strcmp(value, "bf16"))
        *dt = DTYPE_BF16;
    else
        return err_set(ERR_INVALID_ARG, "--dtype: expected f32 or bf16, got '%s'", value);
    return ERR_OK;
}

int cmd_dit_forward(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},   {"causal-block-size", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'}, {"force", no_argument, 0, 'f'},
        {"backend", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'},
        {"dtype", required_argument, 0, 'd'},   {0, 0, 0, 0}};
    struct dit_forward_options o = {.backend = BACKEND_CPU, .weight_dtype = DTYPE_F32};
    static const char cmd[] = "dit-forward";
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': o.model_dir = optarg; break;
        case 'i': o.in_path = optarg; break;
        case 'o': o.out_path = optarg; break;
        case 'c':
            if (arg_int("--causal-block-size", optarg, 1, 1 << 20, &o.causal_block_size) < 0)
                return usage_error(cmd, "%s", err_message());
            break;
        case 't':
            if (arg_int("--threads", optarg, 1, 4096, &o.threads) < 0) return usage_error(cmd, "%s", err_message());
            break;
        case 'f': o.force = true; break;
        case 'b':
            if (parse_backend(optarg, &o.backend) < 0) return usage_error(cmd, "%s", err_message());
            break;
        case 'd':
            if (parse_weight_dtype(optarg, &o.weight_dtype) < 0) return usage_error(cmd, "%s", err_message());
            break;
        case 'h': fputs(dit_forward_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.model_dir || !o.in_path || !o.out_path) return usage_error(cmd, "--model, --in and --out are required");
    if (o.weight_dtype == DTYPE_BF16 && o.backend != BACKEND_CUDA)
        return usage_error(cmd, "--dtype bf16 needs --backend cuda (the CPU backend computes in f32)");
    return worker_dit_forward(&o) < 0 ? run_error() : 0;
}

static const char bench_help[] =
    "Usage: reelfarm bench [options]\n"
    "       mpirun -n N reelfarm bench [--sp N] [--tp N] [--ulysses N] [--cfg-parallel --guidance G] [--json FILE]\n"
    "       reelfarm bench --comm-model --model-size 14b --resolution 720p --frames 121 --guidance 6\n"
    "\n"
    "Times DiT forwards with random weights and random inputs (nothing is downloaded) and prints one\n"
    "key=value line: seconds per forward, GFLOP/s from the FLOP count of the spec shapes, memory.\n"
    "\n"
    "Scaling (docs/scaling.md): under mpirun, with --guidance > 1 or with --json, it times steps instead\n"
    "(a step = one forward, or with guidance > 1 the conditional and unconditional passes and their\n"
    "combination, as one denoising row) and prints `bench_step` (wall time = slowest rank, time in\n"
    "collectives, compute, bytes per step) and one `bench_comm` line per collective kind (calls, bytes\n"
    "sent and seconds per rank, max and mean over ranks, and the communication model's bytes, which\n"
    "must be equal: model_match=1).\n"
    "\n"
    "Options:\n"
    "  --model-size tiny|1.3b|14b   preset of spec section 1 (default 1.3b)\n"
    "  --layers N                   override the number of blocks (e.g. 2 for a quick run)\n"
    "  --heads N / --ffn N          override heads (width = heads x 128) and FFN width\n"
    "  --resolution 540p|720p|WxH   video size in pixels (default 540p = 960x544)\n"
    "  --frames N                   video frames, 4k+1 (default 5 = 2 latent frames)\n"
    "  --text-len N                 context rows (default 512)\n"
    "  --causal-block-size N        block-causal self-attention\n"
    "  --repeat N / --warmup N      timed and untimed forwards (default 3 / 1)\n"
    "  --threads N                  CPU threads (default: all cores)\n"
    "  --backend cpu|cuda           where the forwards run (default cpu); cuda: GPU 0, float32, one\n"
    "                               process (no --sp/--tp/--cfg-parallel, no mpirun yet)\n"
    "  --dtype f32|bf16             storage of the weight matrices on the GPU (default f32); bf16: the\n"
    "                               attention, FFN and embedding matrices in bf16 (--backend cuda)\n"
    "  --seed S                     weights and inputs seed (default 0)\n"
    "  --guidance G                 > 1: a step is two passes (CFG); default 1 (one forward)\n"
    "  --json FILE                  also write the run as one JSON object (machine, layout, shapes,\n"
    "                               timings, per-rank and per-collective figures; replaced if it exists)\n"
    "  --comm-model                 print the communication model instead of timing: bytes per rank per\n"
    "                               step of every layout on 1, 2, 4 and 8 ranks for this shape, and the\n"
    "                               time at NVLink and 100/200/400 Gb/s links next to the compute time\n"
    "  --comm-dtype bf16|f32        payload type of the model's activations (default bf16, as on GPUs)\n"
    "  --comm-ranks N,N,...         rank counts to tabulate (default 1,2,4,8; at most 7)\n"
    "  --gpu-tflops T               sustained rate per GPU for the compute time (default 355: what\n"
    "                               Wan2.1's own H100 table implies at one GPU)\n"
    "\n" ARG_PARALLEL_HELP;

/* "1,2,4,8" -> out[0..n) and a terminating 0; at most max entries. */
static int parse_rank_list(const char *value, int *out, int max) {
    char buf[128], *save = NULL;
    if (strlen(value) >= sizeof buf) return err_set(ERR_INVALID_ARG, "--comm-ranks: list too long");
    snprintf(buf, sizeof buf, "%s", value);
    int n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) return err_set(ERR_INVALID_ARG, "--comm-ranks: at most %d rank counts", max);
        TRY(arg_int("--comm-ranks", tok, 1, 4096, &out[n]));
        n++;
    }
    if (n == 0) return err_set(ERR_INVALID_ARG, "--comm-ranks: expected rank counts such as 1,2,4,8");
    out[n] = 0;
    return ERR_OK;
}

int cmd_bench(int argc, char **argv) {
    static const struct option longopts[] = {
        {"model-size", required_argument, 0, 'M'}, {"layers", required_argument, 0, 'L'},
        {"heads", required_argument, 0, 'H'},      {"ffn", required_argument, 0, 'F'},
        {"resolution", required_argument, 0, 'r'}, {"frames", required_argument, 0, 'n'},
        {"text-len", required_argument, 0, 'T'},   {"causal-block-size", required_argument, 0, 'c'},
        {"repeat", required_argument, 0, 'R'},     {"warmup", required_argument, 0, 'W'},
        {"threads", required_argument, 0, 't'},    {"backend", required_argument, 0, 'b'},
        {"seed", required_argument, 0, 's'},       {"help", no_argument, 0, 'h'},
        {"guidance", required_argument, 0, 'g'},   {"json", required_argument, 0, 'j'},
        {"comm-model", no_argument, 0, 'C'},       {"comm-dtype", required_argument, 0, 'D'},
        {"gpu-tflops", required_argument, 0, 'P'}, {"comm-ranks", required_argument, 0, 'K'},
        {"dtype", required_argument, 0, 'd'},
        ARG_PARALLEL_LONGOPTS,
        {0, 0, 0, 0}};
    static const char cmd[] = "bench";
    struct bench_options o = {.model_size = "1.3b", .pixel_frames = 5, .height = 544, .width = 960,
                              .text_len = 512, .repeat = 3, .warmup = 1, .backend = BACKEND_CPU,
                              .guidance = 1.0, .gpu_tflops = 355.0};
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (arg_parallel(ch, optarg, &o.par, &rc)) {
            if (rc < 0) return usage_error(cmd, "%s", err_message());
            continue;
        }
        switch (ch) {
        case 'M': o.model_size = optarg; break;
        case 'L': rc = arg_i64("--layers", optarg, 1, 1000, &o.layers); break;
        case 'H': rc = arg_i64("--heads", optarg, 1, 1000, &o.heads); break;
        case 'F': rc = arg_i64("--ffn", optarg, 1, 1 << 20, &o.ffn_dim); break;
        case 'r': rc = arg_resolution("--resolution", optarg, &o.width, &o.height); break;
        case 'n': rc = arg_i64("--frames", optarg, 1, 100000, &o.pixel_frames); break;
        case 'T': rc = arg_i64("--text-len", optarg, 1, 1 << 20, &o.text_len); break;
        case 'c': rc = arg_int("--causal-block-size", optarg, 1, 1 << 20, &o.causal_block_size); break;
        case 'R': rc = arg_int("--repeat", optarg, 1, 100000, &o.repeat); break;
        case 'W': rc = arg_int("--warmup", optarg, 0, 100000, &o.warmup); break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &o.threads); break;
        case 's': rc = arg_u64("--seed", optarg, &o.seed); break;
        case 'g': rc = arg_f64("--guidance", optarg, 0, 100, &o.guidance); break;
        case 'j': o.json_path = optarg; break;
        case 'C': o.comm_model = true; break;
        case 'P': rc = arg_f64("--gpu-tflops", optarg, 1e-3, 1e6, &o.gpu_tflops); break;
        case 'K': rc = parse_rank_list(optarg, o.comm_ranks, 7); break;
        case 'D':
            if (!strcmp(optarg, "bf16"))
                o.comm_model_f32 = false;
            else if (!strcmp(optarg, "f32"))
                o.comm_model_f32 = true;
            else
                return usage_error(cmd, "--comm-dtype: expected bf16 or f32, got '%s'", optarg);
            break;
        case 'b': rc = parse_backend(optarg, &o.backend); break;
        case 'd': rc = parse_weight_dtype(optarg, &o.weight_dtype); break;
        case 'h': fputs(bench_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (o.weight_dtype == DTYPE_BF16 && o.backend != BACKEND_CUDA && !o.comm_model)
        return usage_error(cmd, "--dtype bf16 needs --backend cuda (the CPU backend computes in f32)");
    return worker_bench(&o) < 0 ? run_error() : 0;
}
