/* tests/coordinator/test_film.c - film files (coordinator/film.h) and render settings defaults.
 *
 * Every film is written byte by byte into a temp folder. Valid films must give every field, with
 * relative paths resolved against the film's folder and the right RS_ bits; flags (bits set before
 * the load) must win. Every malformed film must give its own error code and a message naming the
 * file, the JSON path, what was expected and what was found, and must leave the settings exactly as
 * they were (byte for byte, pointers included). Plain C, one summary line, exit 0/1.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/film.h"
#include "coordinator/render_settings.h"
#include "core/error.h"
#include "io/fs.h"
#include "tests/common/test_util.h"

static const char *g_dir;

static const char *tpath(const char *name) { return t_path(g_dir, name); }
static void put_text(const char *path, const char *text) { t_write_file(path, text, strlen(text)); }
static bool str_eq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* rc must be code and the current message must contain every non-NULL word. */
#define EXPECT_ERR(rc, code, w1, w2)                                                                                   \
    do {                                                                                                               \
        int rc_ = (rc);                                                                                                \
        const char *w1_ = (w1), *w2_ = (w2);                                                                           \
        T_CHECK(rc_ == (code), "got %d (%s), want %d (%s); message: %s", rc_, err_code_name(rc_), (int)(code),         \
                err_code_name(code), err_message());                                                                   \
        T_CHECK(!w1_ || strstr(err_message(), w1_), "message lacks \"%s\": %s", w1_ ? w1_ : "", err_message());        \
        T_CHECK(!w2_ || strstr(err_message(), w2_), "message lacks \"%s\": %s", w2_ ? w2_ : "", err_message());        \
    } while (0)

static void test_defaults(void) {
    struct render_settings s;
    memset(&s, 0xab, sizeof s); /* garbage: defaults must not read it */
    render_settings_defaults(&s);
    T_CHECK(s.width == 960 && s.height == 544, "540P is 960x544, got %lldx%lld", (long long)s.width,
            (long long)s.height);
    T_CHECK(s.fps == 24 && s.steps == 30, "fps %d steps %d", s.fps, s.steps);
    T_CHECK(s.shift == 8.0 && s.guidance == 6.0, "shift %g guidance %g", s.shift, s.guidance);
    T_CHECK(s.seed == 0 && s.ar_step == 0 && s.causal_block_size == 1 && !s.causal_attention, "DF defaults");
    T_CHECK(s.addnoise_condition == 0 && s.frames == 0 && s.seconds == 0.0, "no length by default");
    T_CHECK(s.base_frames == 0 && s.overlap == 0 && s.overlap_mode == OVERLAP_PIXEL, "window defaults");
    T_CHECK(s.crf == -1 && s.set == 0, "crf %d set %llx", s.crf, (unsigned long long)s.set);
    T_CHECK(!s.model && !s.output && !s.prompt && !s.negative_prompt && !s.image && !s.end_image && !s.extend &&
                !s.codec && !s.preset && !s.shots && s.n_shots == 0,
            "no strings, no shots");

    T_CHECK(render_settings_set_str(&s.prompt, "a cat") == 0 && str_eq(s.prompt, "a cat"), "set_str copies");
    T_CHECK(render_settings_set_str(&s.prompt, s.prompt) == 0 && str_eq(s.prompt, "a cat"),
            "set_str from itself keeps the text");
    T_CHECK(render_settings_set_str(&s.prompt, NULL) == 0 && s.prompt == NULL, "set_str(NULL) clears");
    T_CHECK(render_settings_set_str(&s.preset, "slow") == 0, "preset");
    render_settings_free(&s);
    T_CHECK(s.preset == NULL && s.width == 0 && s.set == 0, "free leaves the struct zeroed");
    render_settings_free(&s); /* twice is fine */
}

static void test_full_film(void) {
    char films[4096];
    snprintf(films, sizeof films, "%s", tpath("films"));
    T_REQUIRE_OK(fs_mkdir_p(films));
    const char *path = tpath("films/full.json");
    put_text(path, "{\n"
                   "  \"model\": \"models/df-1.3b\",\n"
                   "  \"output\": \"out/film.mp4\",\n"
                   "  \"resolution\": \"544x960\",\n"
                   "  \"fps\": 30,\n"
                   "  \"steps\": 50,\n"
                   "  \"shift\": 5.5,\n"
                   "  \"guidance\": 0,\n"
                   "  \"seed\": 9007199254740992,\n"
                   "  \"ar_step\": 5,\n"
                   "  \"causal_block_size\": 5,\n"
                   "  \"causal_attention\": true,\n"
                   "  \"addnoise_condition\": 20,\n"
                   "  \"base_frames\": 121,\n"
                   "  \"overlap\": 17,\n"
                   "  \"overlap_mode\": \"latent\",\n"
                   "  \"negative_prompt\": \"\",\n"
                   "  \"image\": \"start.png\",\n"
                   "  \"end_image\": \"/abs/end.png\",\n"
                   "  \"extend\": \"../clips/prev.mp4\",\n"
                   "  \"codec\": \"h265\",\n"
                   "  \"crf\": 18,\n"
                   "  \"preset\": \"slow\",\n"
                   "  \"shots\": [\n"
                   "    {\"prompt\": \"A dawn over the sea\", \"seconds\": 2.5},\n"
                   "    {\"frames\": 57, \"prompt\": \"A gull takes off\", \"negative_prompt\": \"blur\",\n"
                   "     \"image\": \"gull.png\"},\n"
                   "    {\"prompt\": \"Caf\\u00e9 at night \\u2014 \\\"neon\\\"\", \"seconds\": 0.05, \"image\": "
                   "\"/abs/cafe.png\"}\n"
                   "  ]\n"
                   "}\n");
    struct render_settings s;
    render_settings_defaults(&s);
    T_REQUIRE_OK(film_load(path, &s));

    char want[4200];
    snprintf(want, sizeof want, "%s/models/df-1.3b", films);
    T_CHECK(str_eq(s.model, want), "model %s, want %s", s.model, want);
    snprintf(want, sizeof want, "%s/out/film.mp4", films);
    T_CHECK(str_eq(s.output, want), "output %s, want %s", s.output, want);
    snprintf(want, sizeof want, "%s/start.png", films);
    T_CHECK(str_eq(s.image, want), "image %s, want %s", s.image, want);
    T_CHECK(str_eq(s.end_image, "/abs/end.png"), "absolute end_image kept: %s", s.end_image);
    snprintf(want, sizeof want, "%s/../clips/prev.mp4", films);
    T_CHECK(str_eq(s.extend, want), "extend %s, want %s", s.extend, want);

    T_CHECK(s.width == 544 && s.height == 960, "WxH is width x height: %lldx%lld", (long long)s.width,
            (long long)s.height);
    T_CHECK(s.fps == 30 && s.steps == 50, "fps %d steps %d", s.fps, s.steps);
    T_CHECK(s.shift == 5.5 && s.guidance == 0.0, "shift %g guidance %g", s.shift, s.guidance);
    T_CHECK(s.seed == UINT64_C(9007199254740992), "seed 2^53 is exact: %llu", (unsigned long long)s.seed);
    T_CHECK(s.ar_step == 5 && s.causal_block_size == 5 && s.causal_attention, "async settings");
    T_CHECK(s.addnoise_condition == 20, "addnoise_condition %d", s.addnoise_condition);
    T_CHECK(s.base_frames == 121 && s.overlap == 17 && s.overlap_mode == OVERLAP_LATENT, "window settings");
    T_CHECK(s.frames == 0 && s.seconds == 0.0 && s.prompt == NULL, "shots give the length and prompts");
    T_CHECK(s.negative_prompt && s.negative_prompt[0] == '\0', "an empty negative prompt is kept as \"\"");
    T_CHECK(str_eq(s.codec, "h265") && s.crf == 18 && str_eq(s.preset, "slow"), "encoder settings");

    T_REQUIRE(s.n_shots == 3 && s.shots, "3 shots, got %d", s.n_shots);
    T_CHECK(str_eq(s.shots[0].prompt, "A dawn over the sea") && s.shots[0].seconds == 2.5 &&
                s.shots[0].frames == 0 && !s.shots[0].negative_prompt && !s.shots[0].image,
            "shot 0");
    snprintf(want, sizeof want, "%s/gull.png", films);
    T_CHECK(str_eq(s.shots[1].prompt, "A gull takes off") && s.shots[1].frames == 57 && s.shots[1].seconds == 0.0 &&
                str_eq(s.shots[1].negative_prompt, "blur") && str_eq(s.shots[1].image, want),
            "shot 1 (image %s, want %s)", s.shots[1].image, want);
    T_CHECK(str_eq(s.shots[2].prompt, "Caf\xc3\xa9 at night \xe2\x80\x94 \"neon\""), "escapes decode to UTF-8: %s",
            s.shots[2].prompt);
    T_CHECK(str_eq(s.shots[2].image, "/abs/cafe.png"), "absolute shot image kept");
    /* 0.05 s at 30 fps is 1.5 frames: possible (>= 1) and rounds to 2. */
    T_CHECK(film_shot_frames(&s.shots[0], s.fps) == 75, "2.5 s at 30 fps");
    T_CHECK(film_shot_frames(&s.shots[1], s.fps) == 57, "frames win");
    T_CHECK(film_shot_frames(&s.shots[2], s.fps) == 2, "1.5 frames round up");

    const uint64_t all = RS_BIT(RS_COUNT) - 1;
    const uint64_t want_set = all & ~(RS_BIT(RS_PROMPT) | RS_BIT(RS_FRAMES) | RS_BIT(RS_SECONDS));
    T_CHECK(s.set == want_set, "set %llx, want %llx", (unsigned long long)s.set, (unsigned long long)want_set);
    render_settings_free(&s);
}

/* A film without shots, loaded by a bare file name from its own folder: paths stay relative. */
static void test_single_prompt_film(void) {
    put_text(tpath("single.json"), "{\"prompt\": \"A cat\", \"seconds\": 4.5, \"resolution\": \"720P\",\n"
                                   " \"image\": \"img.png\", \"codec\": \"av1\", \"frames_per\": 1}");
    put_text(tpath("single_ok.json"), "{\"prompt\": \"A cat\", \"seconds\": 4.5, \"resolution\": \"720p\",\n"
                                      " \"image\": \"img.png\", \"codec\": \"av1\", \"overlap_mode\": \"pixel\"}");
    char cwd[PATH_MAX];
    T_REQUIRE(getcwd(cwd, sizeof cwd) != NULL, "getcwd");
    T_REQUIRE(chdir(g_dir) == 0, "chdir %s", g_dir);

    struct render_settings s;
    render_settings_defaults(&s);
    EXPECT_ERR(film_load("single.json", &s), ERR_FORMAT, "single.json: $.frames_per: unknown key (expected one of "
                                                         "model, output, resolution, fps,",
               "shots)");
    T_REQUIRE_OK(film_load("single_ok.json", &s));
    T_CHECK(str_eq(s.prompt, "A cat") && s.seconds == 4.5 && s.frames == 0 && s.n_shots == 0, "prompt and seconds");
    T_CHECK(s.width == 1280 && s.height == 720, "720p is 1280x720");
    T_CHECK(str_eq(s.image, "img.png"), "no folder in the film path: the path stays as written, got %s", s.image);
    T_CHECK(str_eq(s.codec, "av1") && s.overlap_mode == OVERLAP_PIXEL, "codec and overlap mode");
    const uint64_t want = RS_BIT(RS_PROMPT) | RS_BIT(RS_SECONDS) | RS_BIT(RS_RESOLUTION) | RS_BIT(RS_IMAGE) |
                          RS_BIT(RS_CODEC) | RS_BIT(RS_OVERLAP_MODE);
    T_CHECK(s.set == want, "set %llx, want %llx", (unsigned long long)s.set, (unsigned long long)want);
    T_CHECK(s.fps == 24 && s.steps == 30 && s.crf == -1, "keys not in the file keep their defaults");
    render_settings_free(&s);

    /* "WxH" with an upper-case X, and frames alone. */
    put_text(tpath("frames.json"), "{\"prompt\": \"x\", \"frames\": 97, \"resolution\": \"1280X704\"}");
    render_settings_defaults(&s);
    T_REQUIRE_OK(film_load("frames.json", &s));
    T_CHECK(s.frames == 97 && s.width == 1280 && s.height == 704, "frames %lld, %lldx%lld", (long long)s.frames,
            (long long)s.width, (long long)s.height);
    render_settings_free(&s);
    T_REQUIRE(chdir(cwd) == 0, "chdir back");
}

static void test_flags_override(void) {
    const char *path = tpath("override.json");
    put_text(path, "{\"fps\": 30, \"steps\": 10, \"output\": \"file.mp4\", \"seed\": 7, \"prompt\": \"from file\",\n"
                   " \"frames\": 121}");
    struct render_settings s;
    render_settings_defaults(&s);
    /* What the command line would have done for --fps 16 --output cli.mp4 --prompt "from flag". */
    s.fps = 16;
    T_REQUIRE_OK(render_settings_set_str(&s.output, "cli.mp4"));
    T_REQUIRE_OK(render_settings_set_str(&s.prompt, "from flag"));
    s.set = RS_BIT(RS_FPS) | RS_BIT(RS_OUTPUT) | RS_BIT(RS_PROMPT);
    T_REQUIRE_OK(film_load(path, &s));
    T_CHECK(s.fps == 16, "a flag's fps must win over the file, got %d", s.fps);
    T_CHECK(str_eq(s.output, "cli.mp4"), "a flag's output must win (and not be re-resolved), got %s", s.output);
    T_CHECK(str_eq(s.prompt, "from flag"), "a flag's prompt must win, got %s", s.prompt);
    T_CHECK(s.steps == 10 && s.seed == 7 && s.frames == 121, "the file fills what no flag gave");
    const uint64_t want = RS_BIT(RS_FPS) | RS_BIT(RS_OUTPUT) | RS_BIT(RS_PROMPT) | RS_BIT(RS_STEPS) |
                          RS_BIT(RS_SEED) | RS_BIT(RS_FRAMES);
    T_CHECK(s.set == want, "set %llx, want %llx", (unsigned long long)s.set, (unsigned long long)want);

    /* A value hidden by a flag is still checked. */
    put_text(path, "{\"fps\": \"24\"}");
    EXPECT_ERR(film_load(path, &s), ERR_FORMAT, "$.fps: expected an integer from 1 to 240, found \"24\"", NULL);
    T_CHECK(s.fps == 16, "still the flag's fps");
    render_settings_free(&s);

    /* Shot durations use the merged fps: a flag's --fps 16 makes 0.05 s too short (0.8 frames); at the
     * file's 24 fps it would be 1.2 frames. */
    put_text(path, "{\"fps\": 24, \"shots\": [{\"prompt\": \"p\", \"seconds\": 0.05}]}");
    render_settings_defaults(&s);
    T_CHECK(film_load(path, &s) == 0 && s.n_shots == 1, "1.2 frames at the file's fps: %s", err_message());
    render_settings_free(&s);
    render_settings_defaults(&s);
    s.fps = 16;
    s.set = RS_BIT(RS_FPS);
    EXPECT_ERR(film_load(path, &s), ERR_INVALID_ARG, "$.shots[0].seconds: impossible duration", "16 fps");
    render_settings_free(&s);
    /* ... and an "fps" after the shots counts too. */
    put_text(path, "{\"shots\": [{\"prompt\": \"p\", \"seconds\": 0.05}], \"fps\": 10}");
    render_settings_defaults(&s);
    EXPECT_ERR(film_load(path, &s), ERR_INVALID_ARG, "$.shots[0].seconds: impossible duration", "10 fps");
    render_settings_free(&s);
}

/* The state every failing load starts from: some strings, some shots, some bits. */
static void base_settings(struct render_settings *s) {
    const char *path = tpath("base.json");
    put_text(path, "{\"output\": \"/o/base.mp4\", \"negative_prompt\": \"ugly\", \"fps\": 16,\n"
                   " \"shots\": [{\"prompt\": \"one\", \"frames\": 17}, {\"prompt\": \"two\", \"seconds\": 1}]}");
    render_settings_defaults(s);
    T_REQUIRE_OK(render_settings_set_str(&s->model, "/m"));
    s->set = RS_BIT(RS_MODEL);
    T_REQUIRE_OK(film_load(path, s));
}

/* Load `text` as film `name` into the base settings: it must fail with code and both words, and leave
 * the settings byte for byte as they were. */
static void expect_fail(const char *name, const char *text, int code, const char *w1, const char *w2) {
    struct render_settings s, before;
    base_settings(&s);
    memcpy(&before, &s, sizeof s);
    const char *p = tpath(name);
    if (text) put_text(p, text);
    err_clear();
    EXPECT_ERR(film_load(p, &s), code, w1, w2);
    T_CHECK(strncmp(err_message(), p, strlen(p)) == 0, "%s: the message must start with the file: %s", name,
            err_message());
    T_CHECK(strchr(err_message(), '\n') == NULL, "%s: one line: %s", name, err_message());
    T_CHECK(memcmp(&before, &s, sizeof s) == 0, "%s: a failed load must not change the settings", name);
    T_CHECK(s.fps == 16 && s.n_shots == 2 && str_eq(s.shots[1].prompt, "two") && str_eq(s.output, "/o/base.mp4"),
            "%s: settings intact", name);
    render_settings_free(&s);
}

static void test_errors_from_brief(void) {
    /* The examples of the spec, one by one. */
    expect_fail("film.json",
                "{\"fps\": 30, \"shots\": [{\"prompt\": \"a\", \"seconds\": 1}, {\"prompt\": \"b\", \"seconds\": -2}]}",
                ERR_INVALID_ARG, "film.json: $.shots[1].seconds: expected a positive number of seconds, found -2",
                NULL);
    expect_fail("promt.json", "{\"shots\": [{\"promt\": \"a\", \"seconds\": 1}]}", ERR_FORMAT,
                "promt.json: $.shots[0].promt: unknown key (expected one of prompt, negative_prompt, seconds, frames, "
                "image)",
                NULL);
    expect_fail("fps_str.json", "{\"fps\": \"24\"}", ERR_FORMAT,
                "fps_str.json: $.fps: expected an integer from 1 to 240, found \"24\"", NULL);
    /* cJSON stops at the 1 where a ':' is missing: line 3, column 5. */
    expect_fail("syntax.json", "{\n\"fps\": 24,\n\"a\" 1\n}\n", ERR_FORMAT,
                "syntax.json: line 3, column 5: not valid JSON", NULL);
    expect_fail("array.json", "[{\"fps\": 24}]", ERR_FORMAT, "array.json: $: expected an object, found array", NULL);
    expect_fail("both.json",
                "{\"shots\": [{\"prompt\": \"a\", \"seconds\": 1}, {\"prompt\": \"b\", \"seconds\": 1}, "
                "{\"prompt\": \"c\", \"frames\": 1}, {\"prompt\": \"d\", \"seconds\": 1, \"frames\": 24}]}",
                ERR_INVALID_ARG, "both.json: $.shots[3]: give either seconds or frames, not both", NULL);
    expect_fail("none.json",
                "{\"shots\": [{\"prompt\": \"a\", \"seconds\": 1}, {\"prompt\": \"b\", \"seconds\": 1}, "
                "{\"prompt\": \"c\", \"frames\": 1}, {\"prompt\": \"d\"}]}",
                ERR_MISSING, "none.json: $.shots[3]: a shot needs a duration (seconds or frames)", NULL);
    expect_fail("frames_shots.json", "{\"frames\": 97, \"shots\": [{\"prompt\": \"a\", \"seconds\": 1}]}",
                ERR_INVALID_ARG,
                "frames_shots.json: $.frames: give the length either with frames or with shots, not both", NULL);
}

static void test_type_errors(void) {
    expect_fail("t_steps.json", "{\"steps\": true}", ERR_FORMAT,
                "$.steps: expected an integer from 1 to 1000, found boolean", NULL);
    expect_fail("t_shift.json", "{\"shift\": \"8\"}", ERR_FORMAT,
                "$.shift: expected a number greater than 0 and at most 1000, found \"8\"", NULL);
    expect_fail("t_causal.json", "{\"causal_attention\": 1}", ERR_FORMAT,
                "$.causal_attention: expected true or false, found 1", NULL);
    expect_fail("t_prompt.json", "{\"prompt\": 5}", ERR_FORMAT, "$.prompt: expected a non-empty string, found 5", NULL);
    expect_fail("t_model.json", "{\"model\": null}", ERR_FORMAT, "$.model: expected a non-empty string, found null",
                NULL);
    expect_fail("t_shots.json", "{\"shots\": {\"prompt\": \"a\"}}", ERR_FORMAT,
                "$.shots: expected a non-empty array of shots, found object", NULL);
    expect_fail("t_shot.json", "{\"shots\": [{\"prompt\": \"a\", \"frames\": 2}, \"b\"]}", ERR_FORMAT,
                "$.shots[1]: expected an object (a shot), found \"b\"", NULL);
    expect_fail("t_res.json", "{\"resolution\": 720}", ERR_FORMAT, "$.resolution: expected \"540p\", \"720p\" or",
                "found 720");
    expect_fail("t_codec.json", "{\"codec\": [\"h264\"]}", ERR_FORMAT,
                "$.codec: expected \"h264\", \"h265\" or \"av1\", found array", NULL);
    expect_fail("t_neg.json", "{\"shots\": [{\"prompt\": \"a\", \"frames\": 2, \"negative_prompt\": false}]}",
                ERR_FORMAT, "$.shots[0].negative_prompt: expected a string, found boolean", NULL);
    expect_fail("t_secs.json", "{\"shots\": [{\"prompt\": \"a\", \"seconds\": \"2\"}]}", ERR_FORMAT,
                "$.shots[0].seconds: expected a positive number of seconds, found \"2\"", NULL);
    /* Long strings are cut in the message. */
    expect_fail("t_long.json",
                "{\"fps\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                ERR_FORMAT, "found \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"", NULL);
}

static void test_value_errors(void) {
    expect_fail("v_fps0.json", "{\"fps\": 0}", ERR_INVALID_ARG, "$.fps: expected an integer from 1 to 240, found 0",
                NULL);
    expect_fail("v_fps_frac.json", "{\"fps\": 24.5}", ERR_INVALID_ARG, "$.fps: expected an integer", "found 24.5");
    expect_fail("v_fps_inf.json", "{\"fps\": 1e999}", ERR_INVALID_ARG, "$.fps:", "found a number too large");
    expect_fail("v_seed_neg.json", "{\"seed\": -1}", ERR_INVALID_ARG,
                "$.seed: expected an integer from 0 to 9007199254740992, found -1", NULL);
    expect_fail("v_seed_big.json", "{\"seed\": 9007199254740994}", ERR_INVALID_ARG, "$.seed: expected an integer",
                "found 9007199254740994");
    expect_fail("v_shift0.json", "{\"shift\": 0}", ERR_INVALID_ARG, "$.shift: expected a number greater than 0",
                "found 0");
    expect_fail("v_guid.json", "{\"guidance\": 100.5}", ERR_INVALID_ARG,
                "$.guidance: expected a number from 0 to 100, found 100.5", NULL);
    expect_fail("v_crf.json", "{\"crf\": 64}", ERR_INVALID_ARG, "$.crf: expected an integer from 0 to 63, found 64",
                NULL);
    expect_fail("v_addnoise.json", "{\"addnoise_condition\": 1000}", ERR_INVALID_ARG,
                "$.addnoise_condition: expected an integer from 0 to 999", NULL);
    expect_fail("v_cbs.json", "{\"causal_block_size\": 0}", ERR_INVALID_ARG, "$.causal_block_size: expected",
                "found 0");
    expect_fail("v_base.json", "{\"base_frames\": 96}", ERR_INVALID_ARG,
                "$.base_frames: expected an integer of the form 4k+1", "found 96");
    expect_fail("v_overlap.json", "{\"overlap\": 16}", ERR_INVALID_ARG,
                "$.overlap: expected an integer of the form 4k+1", "found 16");
    expect_fail("v_res.json", "{\"resolution\": \"960x540\"}", ERR_INVALID_ARG,
                "$.resolution: expected \"540p\", \"720p\" or \"WxH\" with W and H positive multiples of 16",
                "found \"960x540\"");
    expect_fail("v_res2.json", "{\"resolution\": \"1080p\"}", ERR_INVALID_ARG, "$.resolution:", "found \"1080p\"");
    expect_fail("v_res3.json", "{\"resolution\": \"99999999999999999999x16\"}", ERR_INVALID_ARG, "$.resolution:", NULL);
    expect_fail("v_res4.json", "{\"resolution\": \"-16x16\"}", ERR_INVALID_ARG, "$.resolution:", NULL);
    expect_fail("v_codec.json", "{\"codec\": \"vp9\"}", ERR_INVALID_ARG, "$.codec: expected", "found \"vp9\"");
    expect_fail("v_mode.json", "{\"overlap_mode\": \"Pixel\"}", ERR_INVALID_ARG,
                "$.overlap_mode: expected \"pixel\" or \"latent\", found \"Pixel\"", NULL);
    expect_fail("v_frames.json", "{\"frames\": 0}", ERR_INVALID_ARG, "$.frames: expected an integer from 1 to 1000000",
                NULL);
    expect_fail("v_seconds.json", "{\"seconds\": 100001}", ERR_INVALID_ARG,
                "$.seconds: expected at most 100000 seconds", "found 100001");
    expect_fail("v_prompt.json", "{\"prompt\": \"\"}", ERR_INVALID_ARG,
                "$.prompt: expected a non-empty string, found \"\"", NULL);
    expect_fail("v_image.json", "{\"image\": \"\"}", ERR_INVALID_ARG, "$.image: expected a non-empty string", NULL);
    expect_fail("v_shot_prompt.json", "{\"shots\": [{\"prompt\": \"\", \"frames\": 3}]}", ERR_INVALID_ARG,
                "$.shots[0].prompt: expected a non-empty string, found \"\"", NULL);
    expect_fail("v_shot_noprompt.json", "{\"shots\": [{\"frames\": 3}]}", ERR_MISSING,
                "$.shots[0]: a shot needs a prompt", NULL);
    expect_fail("v_shot_frames.json", "{\"shots\": [{\"prompt\": \"a\", \"frames\": 0}]}", ERR_INVALID_ARG,
                "$.shots[0].frames: expected an integer from 1 to 1000000, found 0", NULL);
}

static void test_structure_errors(void) {
    expect_fail("unknown.json", "{\"fps\": 24, \"lenght\": 3}", ERR_FORMAT,
                "unknown.json: $.lenght: unknown key (expected one of model, output,", "preset, shots)");
    expect_fail("empty_shots.json", "{\"shots\": []}", ERR_INVALID_ARG,
                "$.shots: expected a non-empty array of shots, found an empty array", NULL);
    expect_fail("prompt_shots.json", "{\"prompt\": \"x\", \"shots\": [{\"prompt\": \"a\", \"frames\": 5}]}",
                ERR_INVALID_ARG, "$.prompt: give either one prompt or shots", "not both");
    expect_fail("seconds_shots.json", "{\"shots\": [{\"prompt\": \"a\", \"frames\": 5}], \"seconds\": 3}",
                ERR_INVALID_ARG, "$.seconds: give the length either with seconds or with shots, not both", NULL);
    expect_fail("frames_seconds.json", "{\"prompt\": \"x\", \"frames\": 97, \"seconds\": 3}", ERR_INVALID_ARG,
                "$.seconds: give the length either with frames or with seconds, not both", NULL);
    expect_fail("dup.json", "{\"fps\": 24, \"steps\": 3, \"fps\": 30}", ERR_FORMAT, "dup.json: $.fps: duplicate key",
                NULL);
    expect_fail("dup_shot.json", "{\"shots\": [{\"prompt\": \"a\", \"seconds\": 1, \"seconds\": 2}]}", ERR_FORMAT,
                "$.shots[0].seconds: duplicate key", NULL);
    /* The base settings already hold shots and fps 16 (as if from flags): the file's shots are still
     * checked, at the merged fps. */
    expect_fail("tiny.json", "{\"fps\": 24, \"shots\": [{\"prompt\": \"a\", \"seconds\": 0.01}]}", ERR_INVALID_ARG,
                "tiny.json: $.shots[0].seconds: impossible duration: 0.01 seconds at 16 fps", NULL);
    expect_fail("tiny_top.json", "{\"prompt\": \"a\", \"seconds\": 0.01}", ERR_INVALID_ARG,
                "$.seconds: impossible duration: 0.01 seconds at 16 fps", NULL); /* base settings: 16 fps */

    /* 0.01 s at 24 fps is 0.24 frames; 1/24 s is exactly one frame. */
    struct render_settings s;
    render_settings_defaults(&s);
    const char *p = tpath("tiny24.json");
    put_text(p, "{\"shots\": [{\"prompt\": \"a\", \"seconds\": 2}, {\"prompt\": \"b\", \"seconds\": 0.01}]}");
    EXPECT_ERR(film_load(p, &s), ERR_INVALID_ARG,
               "tiny24.json: $.shots[1].seconds: impossible duration: 0.01 seconds at 24 fps", "less than one frame");
    T_CHECK(s.n_shots == 0 && s.set == 0, "nothing applied");
    put_text(p, "{\"shots\": [{\"prompt\": \"a\", \"seconds\": 0.041666666666666667}]}");
    T_CHECK(film_load(p, &s) == 0 && film_shot_frames(&s.shots[0], s.fps) == 1, "1/24 s is one frame: %s",
            err_message());
    render_settings_free(&s);

    /* More than 10000 shots. */
    size_t cap = 16 + 10001 * 3, k = 0;
    char *many = malloc(cap);
    T_REQUIRE(many != NULL, "malloc");
    k += (size_t)snprintf(many + k, cap - k, "{\"shots\":[");
    for (int i = 0; i < 10001; i++) k += (size_t)snprintf(many + k, cap - k, "%s{}", i ? "," : "");
    snprintf(many + k, cap - k, "]}");
    expect_fail("many.json", many, ERR_INVALID_ARG, "$.shots: expected at most 10000 shots", NULL);
    free(many);

    /* Files that are not JSON at all. */
    expect_fail("trailing.json", "{\"fps\": 24} x", ERR_FORMAT, "trailing.json: line 1, column 13: not valid JSON",
                "more content");
    expect_fail("empty.json", " \n", ERR_FORMAT, "empty.json: line 2, column 1: not valid JSON (the file is empty)",
                NULL);
    expect_fail("ctl.json", "{\"prompt\": \"two\nlines\", \"frames\": 5}", ERR_FORMAT,
                "ctl.json: line 1, column 16: not valid JSON (raw control character 0x0a", NULL);
    expect_fail("unterminated.json", "{\"fps\": 24,\n\"steps\": 3", ERR_FORMAT, "unterminated.json: line 2",
                "not valid JSON");
    expect_fail("scalar.json", "42", ERR_FORMAT, "scalar.json: $: expected an object, found 42", NULL);
    expect_fail("missing.json", NULL, ERR_IO, "missing.json", "No such file or directory");

    /* A failure after many applied keys: nothing of it may stick (expect_fail compares bytes). */
    expect_fail("late.json",
                "{\"model\": \"m2\", \"output\": \"o2.mp4\", \"fps\": 30, \"steps\": 9, \"prompt\": \"late\",\n"
                " \"image\": \"i.png\", \"codec\": \"av1\", \"negative_prompt\": \"n2\", \"crf\": 77}",
                ERR_INVALID_ARG, "late.json: $.crf: expected an integer from 0 to 63, found 77", NULL);
    expect_fail("late_shots.json",
                "{\"output\": \"o2.mp4\", \"shots\": [{\"prompt\": \"new\", \"frames\": 5}], \"fps\": 30, "
                "\"bogus\": 1}",
                ERR_FORMAT, "late_shots.json: $.bogus: unknown key", NULL);
}

static void test_shot_frames(void) {
    struct render_shot sh;
    memset(&sh, 0, sizeof sh);
    sh.seconds = 1.5;
    T_CHECK(film_shot_frames(&sh, 25) == 38, "37.5 frames round half away from zero: %lld",
            (long long)film_shot_frames(&sh, 25));
    sh.seconds = 0.1;
    T_CHECK(film_shot_frames(&sh, 24) == 2, "2.4 frames -> 2: %lld", (long long)film_shot_frames(&sh, 24));
    sh.seconds = 2.02;
    T_CHECK(film_shot_frames(&sh, 24) == 48, "48.48 frames -> 48");
    sh.seconds = 0.0625;
    T_CHECK(film_shot_frames(&sh, 24) == 2, "1.5 frames -> 2");
    sh.seconds = 4.0;
    T_CHECK(film_shot_frames(&sh, 24) == 96, "4 s at 24 fps");
    T_CHECK(film_shot_frames(&sh, 16) == 64, "4 s at 16 fps");
    sh.seconds = 0.0;
    sh.frames = 57;
    T_CHECK(film_shot_frames(&sh, 24) == 57 && film_shot_frames(&sh, 16) == 57, "frames do not depend on fps");
}

int main(void) {
    g_dir = t_tmpdir("film");
    test_defaults();
    test_full_film();
    test_single_prompt_film();
    test_flags_override();
    test_errors_from_brief();
    test_type_errors();
    test_value_errors();
    test_structure_errors();
    test_shot_frames();
    int rc = t_summary(__FILE__);
    if (rc == 0) t_rmtree(g_dir);
    return rc;
}
