/* coordinator/render_settings.h - everything `reelfarm render` is asked to do (spec 6).
 *
 * One struct gathers the settings of a render, whether they come from flags or from a film file
 * (coordinator/film.h). Every setting has a bit in `set`: the command line parses flags first and marks
 * them, then the film file fills only the settings no flag gave, so flags override the file. Strings are
 * owned (malloc'd) and released by render_settings_free(). render_settings_defaults() gives upstream's
 * defaults (spec 6.1, the DF script's arguments).
 */
#ifndef REELFARM_COORDINATOR_RENDER_SETTINGS_H
#define REELFARM_COORDINATOR_RENDER_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

enum overlap_mode {
    OVERLAP_PIXEL = 0,  /* upstream SkyReels: decode each chunk, re-encode the last `overlap` frames (spec 6.3) */
    OVERLAP_LATENT = 1, /* diffusers: carry the last latents, one continuous decode (spec 6.10) */
};

/* One shot of a film: its prompt covers the chunks whose first new frame falls inside it. */
struct render_shot {
    char *prompt;          /* required, UTF-8 */
    char *negative_prompt; /* NULL: the film's negative prompt */
    double seconds;        /* duration; exactly one of seconds (> 0) and frames (> 0) is set */
    int64_t frames;
    char *image;           /* NULL, or a start image: the shot starts with a cut to this picture */
};

/* Bits of render_settings.set, one per setting. */
enum render_setting_bit {
    RS_MODEL, RS_OUTPUT, RS_RESOLUTION, RS_FPS, RS_STEPS, RS_SHIFT, RS_GUIDANCE, RS_SEED, RS_AR_STEP,
    RS_CAUSAL_BLOCK_SIZE, RS_CAUSAL_ATTENTION, RS_ADDNOISE_CONDITION, RS_FRAMES, RS_SECONDS, RS_BASE_FRAMES,
    RS_OVERLAP, RS_OVERLAP_MODE, RS_PROMPT, RS_NEGATIVE_PROMPT, RS_IMAGE, RS_END_IMAGE, RS_EXTEND, RS_CODEC, RS_CRF,
    RS_PRESET, RS_SHOTS, RS_COUNT
};
#define RS_BIT(b) (UINT64_C(1) << (b))

struct render_settings {
    uint64_t set;              /* RS_BIT(...) of every setting given explicitly */
    char *model;               /* model directory; NULL: the built-in tiny model */
    char *output;              /* .mp4/.mkv/.webm (encoded) or .h5 (video_uint8) */
    int64_t width, height;     /* pixels, multiples of 16 */
    int fps;                   /* frames per second of the film and the model's fps code (16 -> 0, else 1) */
    int steps;                 /* denoising steps N */
    double shift;              /* sigma shift */
    double guidance;           /* classifier-free guidance scale; <= 1: conditional pass only */
    uint64_t seed;
    int ar_step;               /* 0: synchronous */
    int causal_block_size;
    bool causal_attention;
    int addnoise_condition;    /* 0: off */
    int64_t frames;            /* video frames; 0: from seconds, or from the shots */
    double seconds;            /* used when frames == 0 and there are no shots */
    int64_t base_frames;       /* model window in video frames; 0: the resolution's default (97 / 121) */
    int64_t overlap;           /* frames shared by consecutive chunks; 0: default 17 */
    enum overlap_mode overlap_mode;
    char *prompt;              /* the one prompt when there are no shots */
    char *negative_prompt;     /* NULL: upstream's default (model/prompts.h) */
    char *image;               /* start frame */
    char *end_image;           /* end frame */
    char *extend;              /* video to extend */
    char *codec;               /* NULL: h264 */
    int crf;                   /* < 0: the codec's default */
    char *preset;              /* NULL: the encoder's default */
    struct render_shot *shots; /* film files: the shot list (n_shots == 0: one prompt for the whole video) */
    int n_shots;
};

void render_settings_defaults(struct render_settings *s);
void render_settings_free(struct render_settings *s);
/* Replace *dst with a copy of src (NULL allowed); returns ERR_NOMEM on failure. */
int render_settings_set_str(char **dst, const char *src);

#endif /* REELFARM_COORDINATOR_RENDER_SETTINGS_H */
