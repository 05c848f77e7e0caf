/* model/prompts.h - prompt constants of the upstream scripts.
 *
 * REELFARM_DEFAULT_NEGATIVE_PROMPT is the default negative prompt of SkyReels-V2's generate_video_df.py
 * (Wan's standard Chinese negative prompt, spec 6.1), reproduced byte for byte because it is an input that
 * changes results; reelfarm uses it whenever no negative prompt is given.
 */
#ifndef REELFARM_MODEL_PROMPTS_H
#define REELFARM_MODEL_PROMPTS_H

#define REELFARM_DEFAULT_NEGATIVE_PROMPT \
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"

#endif /* REELFARM_MODEL_PROMPTS_H */
