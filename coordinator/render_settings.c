/* coordinator/render_settings.c - defaults and ownership of struct render_settings (spec 6.1).
 *
 * The defaults are the arguments of upstream's Diffusion Forcing script (generate_video_df.py in
 * SkyReels-V2: --resolution 540P, --fps 24, --inference_steps 30, --shift 8.0, --guidance_scale 6.0,
 * --ar_step 0, --causal_block_size 1, --addnoise_condition 0, --overlap_history 17 when long). It
 * does not validate settings (coordinator/film.c checks file values, coordinator/plan.c the
 * combination) and does not parse flags.
 */
#include "coordinator/render_settings.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void render_settings_defaults(struct render_settings *s) {
    memset(s, 0, sizeof *s);
    s->width = 960; /* 540P: upstream's 960x544 */
    s->height = 544;
    s->fps = 24;
    s->steps = 30;
    s->shift = 8.0;
    s->guidance = 6.0;
    s->seed = 0;
    s->ar_step = 0;
    s->causal_block_size = 1;
    s->causal_attention = false;
    s->addnoise_condition = 0;
    s->frames = 0;      /* from seconds, or from the shots */
    s->seconds = 0.0;
    s->base_frames = 0; /* the resolution's default */
    s->overlap = 0;     /* default 17 */
    s->overlap_mode = OVERLAP_PIXEL;
    s->crf = -1; /* the codec's default */
}

void render_settings_free(struct render_settings *s) {
    if (!s) return;
    free(s->model);
    free(s->output);
    free(s->prompt);
    free(s->negative_prompt);
    free(s->image);
    free(s->end_image);
    free(s->extend);
    free(s->codec);
    free(s->preset);
    for (int i = 0; i < s->n_shots && s->shots; i++) {
        free(s->shots[i].prompt);
        free(s->shots[i].negative_prompt);
        free(s->shots[i].image);
    }
    free(s->shots);
    memset(s, 0, sizeof *s);
}

int render_settings_set_str(char **dst, const char *src) {
    char *copy = NULL;
    if (src) {
        /* Copy before freeing: src may be *dst itself. */
        size_t n = strlen(src) + 1;
        copy = malloc(n);
        if (!copy) return err_set(ERR_NOMEM, "out of memory copying a %zu-byte setting", n);
        memcpy(copy, src, n);
    }
    free(*dst);
    *dst = copy;
    return ERR_OK;
}
