/* model/wan_config.h - the Wan DiT configuration as SkyReels-V2 uses it (spec sections 1, 2.2, 3).
 *
 * Read from either the Diffusers transformer config (class SkyReelsV2Transformer3DModel, keys
 * num_attention_heads, attention_head_dim, ...) or the original SkyReels WanModel config.json
 * (keys dim, num_heads, in_dim, ...). Absent optional keys take the defaults of the upstream
 * constructors. Only what released SkyReels-V2 models use is accepted: patch (1, 2, 2), q/k
 * RMSNorm across heads, global attention; anything else is refused with the key named.
 */
#ifndef REELFARM_MODEL_WAN_CONFIG_H
#define REELFARM_MODEL_WAN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

enum wan_config_kind { WAN_CONFIG_DIFFUSERS = 0, WAN_CONFIG_ORIGINAL = 1 };

struct wan_config {
    enum wan_config_kind kind;
    int64_t dim;          /* D = num_heads * head_dim */
    int64_t ffn_dim;      /* Fd */
    int64_t num_heads;    /* H */
    int64_t head_dim;     /* d (128 in every released model) */
    int64_t num_layers;
    int64_t in_channels;  /* Cin: 16 (t2v, DF) or 36 (i2v) */
    int64_t out_channels; /* 16 */
    int64_t text_dim;     /* 4096 (umT5-XXL width) */
    int64_t freq_dim;     /* 256 */
    int patch[3];         /* (1, 2, 2) */
    double eps;           /* 1e-6 */
    bool cross_attn_norm; /* LN3 with affine before cross-attention */
    bool inject_sample_info; /* fps embedding (DF-1.3B) */
    bool has_image;          /* i2v: image embedder + added k/v in cross-attention */
    int64_t image_dim;       /* CLIP width (1280) when has_image */
    int64_t pos_embed_seq_len; /* FLF2V image position embedding length, 0 if none */
    int64_t rope_max_seq_len;  /* RoPE table positions (1024) */
    int64_t text_len;          /* text tokens the pipelines use (512); informational */
};

/* Read and validate config.json at path; errors name the file and key. */
int wan_config_read(const char *path, struct wan_config *cfg);
/* Checks that also apply to configs built in code (tiny models, benchmarks). */
int wan_config_validate(const struct wan_config *cfg, const char *origin);
/* The presets of spec section 1 ("1.3b", "14b") and the built-in tiny model ("tiny"). */
int wan_config_preset(const char *name, struct wan_config *cfg);
/* Parameter count implied by the config (spec 2.3 shapes). */
int64_t wan_config_param_count(const struct wan_config *cfg);

#endif /* REELFARM_MODEL_WAN_CONFIG_H */
