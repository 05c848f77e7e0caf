/* cli/cmd_model.c - `reelfarm make-tiny-model`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "core/error.h"
#include "model/wan_tiny.h"

static const char help[] =
    "Usage: reelfarm make-tiny-model DIR [options]\n"
    "\n"
    "Writes a small random SkyReels-V2 DiT (2 blocks, 2 heads of 128, width 256, text width 64) in the\n"
    "real on-disk layout, plus examples/dit_input.h5 to try it with:\n"
    "  reelfarm dit-forward --model DIR --in DIR/examples/dit_input.h5 --out out.h5\n"
    "The weights depend only on the seed, so every layout, naming and dtype holds the same model.\n"
    "\n"
    "Options:\n"
    "  --seed S                 weights seed (default 42)\n"
    "  --fps-embedding          add the fps embedding (inject_sample_info), as DF-1.3B\n"
    "  --i2v                    image-to-video variant: 36 input channels, CLIP image branch\n"
    "  --dtype f32|bf16|f16     storage dtype (default f32)\n"
    "  --naming diffusers|original\n"
    "                           Diffusers layout (transformer/config.json, default) or the original\n"
    "                           SkyReels layout (config.json + model.safetensors, original names)\n"
    "  --shards N               split the weights into N files with an index (default 1)\n"
    "  --no-example             do not write examples/dit_input.h5\n"
    "  --force                  write into an existing non-empty directory\n";

int cmd_make_tiny_model(int argc, char **argv) {
    static const struct option longopts[] = {
        {"seed", required_argument, 0, 's'},   {"fps-embedding", no_argument, 0, 'p'},
        {"i2v", no_argument, 0, 'i'},          {"dtype", required_argument, 0, 'd'},
        {"naming", required_argument, 0, 'n'}, {"shards", required_argument, 0, 'S'},
        {"no-example", no_argument, 0, 'E'},   {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    static const char cmd[] = "make-tiny-model";
    struct wan_tiny_options o;
    wan_tiny_default_options(&o);
    optind = 0;
    opterr = 0;
    int ch, dt;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (arg_u64("--seed", optarg, &o.seed) < 0) return usage_error(cmd, "%s", err_message());
            break;
        case 'p': o.fps_embedding = true; break;
        case 'i': o.i2v = true; break;
        case 'd':
            dt = dtype_parse(optarg);
            if (dt != DTYPE_F32 && dt != DTYPE_BF16 && dt != DTYPE_F16)
                return usage_error(cmd, "--dtype: expected f32, bf16 or f16, got '%s'", optarg);
            o.dtype = (enum dtype)dt;
            break;
        case 'n':
            if (!strcmp(optarg, "diffusers"))
                o.naming = WAN_NAMING_DIFFUSERS;
            else if (!strcmp(optarg, "original"))
                o.naming = WAN_NAMING_ORIGINAL;
            else
                return usage_error(cmd, "--naming: expected diffusers or original, got '%s'", optarg);
            break;
        case 'S':
            if (arg_int("--shards", optarg, 1, 16, &o.shards) < 0) return usage_error(cmd, "%s", err_message());
            break;
        case 'E': o.example_input = false; break;
        case 'f': o.force = true; break;
        case 'h': fputs(help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return usage_error(cmd, "expected exactly one directory argument");
    const char *dir = argv[optind];
    if (wan_tiny_write(dir, &o) < 0) return run_error();
    printf("wrote tiny %s model (%s naming, %s, seed %llu) to %s\n", o.i2v ? "i2v" : "t2v",
           o.naming == WAN_NAMING_DIFFUSERS ? "Diffusers" : "original", dtype_name(o.dtype),
           (unsigned long long)o.seed, dir);
    if (o.example_input)
        printf("try: reelfarm dit-forward --model %s --in %s/examples/dit_input.h5 --out noise_pred.h5\n", dir, dir);
    return 0;
}
