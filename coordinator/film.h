/* coordinator/film.h - film files: `reelfarm render FILM.json` (spec 6).
 *
 * A film file is one UTF-8 JSON object whose snake_case keys are the settings of
 * coordinator/render_settings.h, plus an optional shot list:
 *
 *   {
 *     "model": "models/SkyReels-V2-DF-1.3B-540P", "output": "out/film.mp4",
 *     "resolution": "540p",            "540p" (960x544), "720p" (1280x720) or "WxH", multiples of 16
 *     "fps": 24, "steps": 30, "shift": 8.0, "guidance": 6.0, "seed": 42,
 *     "ar_step": 0, "causal_block_size": 1, "causal_attention": false, "addnoise_condition": 20,
 *     "base_frames": 97, "overlap": 17,   4k+1 video frames
 *     "overlap_mode": "pixel",            or "latent"
 *     "negative_prompt": "...", "image": "start.png", "end_image": "end.png", "extend": "clip.mp4",
 *     "codec": "h264", "crf": 18, "preset": "slow",   codec: h264, h265 or av1
 *     "shots": [
 *       {"prompt": "A dawn over the sea", "seconds": 4},
 *       {"prompt": "A gull takes off", "frames": 57, "negative_prompt": "...", "image": "gull.png"}
 *     ]
 *   }
 *
 * The length is given by exactly one of "frames", "seconds" or "shots" (each shot by exactly one of
 * "seconds" and "frames"); a film without shots uses "prompt". Every key is optional; unknown keys,
 * duplicate keys, JSON null and values of the wrong type are errors, never ignored.
 *
 * Merging with flags: a setting whose RS_BIT is already in s->set (the command line gave it) keeps
 * its value; the file's value is still checked. Every value the file applies sets its bit.
 * Relative paths ("model", "output", "image", "end_image", "extend", a shot's "image") are taken
 * relative to the folder of the film file, so a film runs the same from any working directory;
 * absolute paths are kept as they are. Paths given by flags are not touched.
 *
 * Not checked here: whether the files exist, and the combination of settings with each other beyond
 * the rules above (window sizes against the length, a flag's --prompt against the file's shots):
 * coordinator/plan.c and the render command do that on the merged settings.
 */
#ifndef REELFARM_COORDINATOR_FILM_H
#define REELFARM_COORDINATOR_FILM_H

#include <stdint.h>

#include "coordinator/render_settings.h"

#define FILM_FILE_MAX ((size_t)16 << 20) /* film_load refuses larger files */
#define FILM_SHOTS_MAX 10000

/* Read the film file at path into s (already holding defaults and flags). Returns 0, or a negative
 * enum err_code after one err_set() line naming the file and the JSON path of the culprit, what was
 * expected and what was found ("film.json: $.shots[1].seconds: expected a positive number of
 * seconds, found -2"):
 *   ERR_IO          the file cannot be read (fs_read_file's message);
 *   ERR_FORMAT      not valid JSON ("film.json: line 3, column 5: not valid JSON ..."), larger than
 *                   FILM_FILE_MAX, a value of the wrong JSON type, an unknown or duplicate key;
 *   ERR_MISSING     a shot without a prompt or without a duration;
 *   ERR_INVALID_ARG a value out of range (a fractional number where an integer is expected counts
 *                   as out of range), an unknown name ("codec": "vp9"), keys that exclude each
 *                   other, a duration shorter than one frame at the merged fps;
 *   ERR_NOMEM       an allocation failed.
 * On failure s is exactly as it was before the call. */
int film_load(const char *path, struct render_settings *s);

/* The same for film JSON held in memory (a checkpoint's settings): `name` stands for the file in
 * messages and relative paths stay as they are. */
int film_load_text(const char *name, const char *text, struct render_settings *s);

/* The settings as one line of canonical film JSON (fixed key order; every setting that changes the
 * result, resolved values rather than defaults where the caller resolved them). film_load_text of the
 * output gives the same settings back. *out is malloc'd. */
int film_to_json(const struct render_settings *s, char **out);

/* Length of a shot in video frames: shot->frames when it is set (> 0), else
 * llround(shot->seconds * fps), i.e. rounded to the nearest frame with halves away from zero
 * (1.5 s at 25 fps is 38 frames, 0.1 s at 24 fps is 2). film_load guarantees at least 1 frame at
 * the film's fps. */
int64_t film_shot_frames(const struct render_shot *shot, int fps);

#endif /* REELFARM_COORDINATOR_FILM_H */
