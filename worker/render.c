/* worker/render.c - `reelfarm render`: prompt or film file to a finished film (spec 6), with checkpoints
 * and bit-identical resume.
 *
 * The film is a list of segments: a new segment starts wherever a shot has a start image (a cut); each
 * segment is one diffusion-forcing video planned by coordinator/plan.c (spec 6.2 short, 6.3 long, 6.7
 * extension). Chunks run in order, each conditioned on the prompt of the shot its first new frame falls in:
 *   noise (Philox, addressed by seed and chunk; or --noise for the first chunk)
 *   + prefix (the start image's latent, the re-encoded last `overlap` frames of the film so far (spec 6.3),
 *     or with --overlap-mode latent the last latents themselves (spec 6.10))
 *   -> the rows of the timestep matrix (model/df_sampler.h)
 *   -> VAE decode (a fresh stream per chunk; one stream per segment in latent mode) -> frames appended to
 *      the output as they come, the overlap's re-rendered frames dropped.
 * Every finished frame also goes to an append-only spool next to the checkpoint, and every chunk's new
 * latents to a second one, so the checkpoint (worker/render_checkpoint.h) stays small and a resume can
 * rewrite the encoded output from frame 0 and get the same bytes.
 *
 * Where upstream misbehaves this does the sensible thing (spec 13.16): an image prefix with a causal block
 * size > 1 keeps the image frame clean (model/df_schedule.h); the end image's latent is dropped before
 * decoding in long mode too; add-noise draws are seeded (spec 13.10).
 */
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/film.h"
#include "coordinator/plan.h"
#include "coordinator/progress.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "io/tokenizer.h"
#include "io/video.h"
#include "model/df_sampler.h"
#include "model/prompts.h"
#include "model/umt5.h"
#include "model/wan_dit.h"
#include "model/wan_tiny.h"
#include "model/wan_vae.h"
#include "parallel/par_runtime.h"
#include "worker/par_setup.h"
#include "worker/render_checkpoint.h"
#include "worker/worker.h"

/* ---- signals and test interruption points ---- */

static volatile sig_atomic_t g_stop_signal;

/* The handlers a render replaced (a process that renders many jobs, `reelfarm serve`, has its own). */
static struct sigaction g_outer_handler[2];

static void on_stop_signal(int sig) {
    g_stop_signal = sig;
    const struct sigaction *outer = &g_outer_handler[sig == SIGINT ? 0 : 1];
    if (!(outer->sa_flags & SA_SIGINFO) && outer->sa_handler != SIG_DFL && outer->sa_handler != SIG_IGN)
        outer->sa_handler(sig); /* pass it on: the server also stops after this job's checkpoint */
}

/* REELFARM_TEST_INTERRUPT=point:n[:TERM|INT] stops the process at the n-th time it reaches `point`
 * ("mid-row", "row", "decode", "chunk"): SIGKILL by default (no chance to save anything), or the named
 * signal (handled like a user's Ctrl-C). The tests use it to interrupt a render at exact places. */
struct test_interrupt {
    char point[32];
    long at, hits;
    int sig;
};
static struct test_interrupt g_test_interrupt;

static void test_interrupt_init(void) {
    memset(&g_test_interrupt, 0, sizeof g_test_interrupt);
    const char *e = getenv("REELFARM_TEST_INTERRUPT");
    if (!e || !*e) return;
    char sig[16] = "KILL";
    if (sscanf(e, "%31[^:]:%ld:%15s", g_test_interrupt.point, &g_test_interrupt.at, sig) < 2) return;
    g_test_interrupt.sig = !strcmp(sig, "TERM") ? SIGTERM : !strcmp(sig, "INT") ? SIGINT : SIGKILL;
}

static void test_point(const char *point) {
    struct test_interrupt *t = &g_test_interrupt;
    if (!t->point[0] || strcmp(t->point, point) != 0) return;
    if (++t->hits == t->at) {
        LOG_DEBUG("test interruption at %s #%ld", point, t->hits);
        raise(t->sig);
    }
}

static void sampler_hook(void *user, const char *point) {
    (void)user;
    test_point(point);
}

/* ---- the job ---- */

struct shot_text {
    const char *prompt, *negative; /* borrowed from the settings */
    float *ctx, *neg;              /* [text_len, d_model]; shared with an earlier shot when the text is equal */
    bool owns;
};

struct segment {
    const char *image;       /* start image (NULL: none) */
    int first_shot, n_shots;
    int64_t frames;          /* requested video frames */
    int64_t out_first;       /* first output frame of the segment in the film */
    int64_t first_chunk;
    struct plan plan;
    float *image_latent;     /* [16, 1, h, w] */
};

struct rchunk {
    const struct plan_chunk *pc;
    int seg, shot;
    bool seg_first;          /* the first chunk of its segment */
    bool from_overlap;       /* its prefix is the film's overlap (not an image, not nothing) */
    int64_t skip_frames;     /* decoded frames to drop (they re-render the prefix) */
    int64_t film_latents;    /* latents it adds to the film's latent sequence */
    int64_t latents_before;  /* film latents before it */
    int64_t seg_latent_start;/* film latent index where its segment starts */
    int64_t frames_before;   /* film frames before its first new frame */
};

/* The resident part of a render (worker.h): loaded once, then borrowed by every job. */
struct render_models {
    char model_dir[PATH_MAX];
    char fingerprint[17];
    struct exec_ctx ctx;
    struct worker_par par;
    bool par_open, lead, encoder, frames_here;
    int encoder_rank;
    struct wan_config dit_cfg;
    struct wan_model *dit;   /* this rank's slice; NULL on the encoder rank */
    struct wan_vae *vae;
    struct tokenizer *tok;   /* NULL on the encoder rank */
    struct umt5_model *te;
};

struct render {
    const struct render_options *o;
    struct render_settings *s;
    char model_dir[PATH_MAX], out[PATH_MAX], ckpt[PATH_MAX], frames_path[PATH_MAX + 16], latents_path[PATH_MAX + 16];
    char partial[PATH_MAX + 16];
    bool to_h5;
    /* borrowed from the job's struct render_models */
    struct exec_ctx ctx;
    struct wan_model *dit;
    struct wan_vae *vae;
    struct tokenizer *tok;
    struct umt5_model *te;
    int64_t W, H, h, w, z, text_len, text_dim;
    struct segment *seg;
    int n_seg;
    struct rchunk *ch;
    int64_t n_ch, total_frames, total_rows, total_latents;
    struct shot_text *texts;
    int n_texts;
    float *end_latent;       /* [16, 1, h, w] */
    float *noise0;           /* --noise: the first chunk's starting latents */
    float *ext;              /* extension input frames, frame-major [T][3][H][W] */
    int64_t ext_t;
    struct video_writer *writer;
    struct render_spool frames, latents;
    struct progress prog;
    char *settings_json, *inputs_json;
    char fingerprint[17];
    uint8_t *rgb;            /* [H, W, 3] */
    float *ring;             /* the film's last `overlap` frames [overlap][3][H][W] (pixel frames, float) */
    int64_t overlap, ring_count, ring_head;
    float *prefix;           /* the current chunk's prefix [16, P, h, w] */
    int64_t prefix_frames;
    struct vae_stream *dec;  /* latent mode: the segment's decoder */
    int64_t dec_skip;        /* frames still to drop from the decoder */
    bool replaying;          /* latent-mode resume: decoding only to rebuild the decoder's state */
    int64_t lat_plane;       /* h * w */
    double t_text, t_dit, t_vae, t_io;
    /* Under MPI (issue "distributed", docs/parallel.md): the lead (world rank 0) encodes text and
     * images, writes the checkpoint and the latent spool and prints progress; every computing rank
     * computes its share of each DiT forward. The frames (VAE decode, the frame spool, the encoded
     * output) belong to the lead, or with --encoder-rank to the last world rank, which decodes chunk c
     * while the computing ranks denoise chunk c + 1. */
    struct worker_par *par;  /* the models' mesh */
    bool par_open, lead;
    bool encoder;            /* this rank is the encoder rank */
    int encoder_rank;        /* world rank of the encoder rank, -1: the lead decodes */
    bool frames_here;        /* this rank owns the frames */
    int64_t enc_frames;      /* lead: frames the encoder rank has finished (its last flush) */
    uint64_t enc_hash;
    struct wan_config dit_cfg; /* the DiT's config (the encoder rank loads no DiT weights) */
};

static struct comm *compute(const struct render *r) { return r->par_open ? r->par->mesh.compute : NULL; }

/* The lead's n floats to every computing rank. */
static void share(const struct render *r, float *buf, int64_t n) {
    if (comm_size(compute(r)) > 1) comm_bcast(compute(r), buf, (size_t)n * sizeof(float), 0);
}

/* The lead's decision to stop (a signal it received), the same on every rank. */
static bool stop_requested(const struct render *r) {
    if (!g_stop_signal && r->lead && r->o->stop && r->o->stop(r->o->stop_user)) g_stop_signal = SIGTERM;
    float stop = g_stop_signal ? (float)g_stop_signal : 0.0f;
    share(r, &stop, 1);
    if (stop != 0.0f && !g_stop_signal) g_stop_signal = (sig_atomic_t)stop;
    return stop != 0.0f;
}

static int64_t frame_floats(const struct render *r) { return 3 * r->H * r->W; }

/* ---- settings ---- */

static int resolve_settings(struct render *r) {
    struct render_settings *s = r->s;
    if (s->width % 16 || s->height % 16 || s->width < 16 || s->height < 16)
        return err_set(ERR_INVALID_ARG, "--resolution %lldx%lld: width and height must be positive multiples of 16",
                       (long long)s->width, (long long)s->height);
    if (!s->base_frames) s->base_frames = s->width * s->height >= 1280 * 720 ? 121 : 97;
    if (!s->overlap) s->overlap = 17;
    if (s->n_shots == 0 && !s->prompt) return err_set(ERR_INVALID_ARG, "no prompt: give --prompt TEXT or a film file with shots");
    if (s->n_shots > 0 && s->prompt)
        return err_set(ERR_INVALID_ARG, "give either a prompt or shots, not both");
    if (s->n_shots > 0 && (s->frames || s->seconds))
        return err_set(ERR_INVALID_ARG, "--frames/--seconds: the film's shots give its length; drop the flag or the shots");
    if (s->n_shots == 0 && !s->frames && !s->seconds) s->frames = s->base_frames;
    if (s->extend && (s->image || s->end_image))
        return err_set(ERR_INVALID_ARG, "--extend cannot be combined with --image or --end-image");
    if (s->extend && s->n_shots > 0)
        for (int i = 1; i < s->n_shots; i++)
            if (s->shots[i].image)
                return err_set(ERR_INVALID_ARG, "--extend: shot %d has a start image (a cut); extension needs one "
                                                "continuous video", i);
    if (s->image && s->n_shots > 0 && s->shots[0].image)
        return err_set(ERR_INVALID_ARG, "give the first start image either with --image or as the first shot's image");
    if (s->end_image && s->causal_attention)
        return err_set(ERR_INVALID_ARG, "--end-image with --causal-attention: no generated frame could attend to the "
                                        "end frame (it sits in the last causal block); drop --causal-attention");
    return ERR_OK;
}

static int check_output_paths(struct render *r) {
    const char *out = r->s->output;
    if (!out) return err_set(ERR_INVALID_ARG, "no output: give --out FILE (.mp4, .mkv, .webm or .h5)");
    r->to_h5 = fs_has_suffix(out, ".h5");
    if (!r->to_h5 && !fs_has_suffix(out, ".mp4") && !fs_has_suffix(out, ".mkv") && !fs_has_suffix(out, ".webm"))
        return err_set(ERR_INVALID_ARG, "--out %s: expected a .mp4, .mkv, .webm or .h5 file", out);
    if (strlen(out) >= PATH_MAX - 32) return err_set(ERR_INVALID_ARG, "--out: path too long");
    snprintf(r->out, sizeof r->out, "%s", out);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (dir[0] && !fs_is_dir(dir)) return err_set(ERR_IO, "--out %s: the folder %s does not exist", out, dir);
    }
    const bool writes = par_rank() == 0; /* the one rank that writes files (see struct render) */
    if (writes && fs_exists(out) && !r->o->overwrite)
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --overwrite)", out);
    if (r->o->resume)
        snprintf(r->ckpt, sizeof r->ckpt, "%s", r->o->resume);
    else if (r->o->checkpoint)
        snprintf(r->ckpt, sizeof r->ckpt, "%s", r->o->checkpoint);
    else
        snprintf(r->ckpt, sizeof r->ckpt, "%s.ckpt.h5", out);
    snprintf(r->frames_path, sizeof r->frames_path, "%s.frames", r->ckpt);
    snprintf(r->latents_path, sizeof r->latents_path, "%s.latents", r->ckpt);
    /* the growing output: the same name on every run of one render, so a resume writes where it was */
    const char *ext = strrchr(out, '.');
    snprintf(r->partial, sizeof r->partial, "%.*s.partial%s", (int)(ext - out), out, ext);
    if (writes && !r->o->resume && !r->o->no_checkpoint && fs_exists(r->ckpt) && !r->o->overwrite)
        return err_set(ERR_EXISTS, "%s: a checkpoint of an earlier render of %s exists; continue it with "
                                   "'reelfarm render --resume %s', or pass --overwrite to start again",
                       r->ckpt, out, r->ckpt);
    return ERR_OK;
}

/* ---- the plan: segments, chunks, shots ---- */

static int build_plan(struct render *r) {
    struct render_settings *s = r->s;
    /* shots (a film without shots is one shot) */
    struct render_shot single = {.prompt = s->prompt, .negative_prompt = NULL, .frames = s->frames, .seconds = s->seconds};
    const struct render_shot *shots = s->n_shots ? s->shots : &single;
    const int n_shots = s->n_shots ? s->n_shots : 1;
    r->seg = calloc((size_t)n_shots, sizeof *r->seg);
    if (!r->seg) return err_set(ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_shots; i++) {
        const char *image = i == 0 ? (s->image ? s->image : shots[0].image) : shots[i].image;
        if (i == 0 || image) {
            struct segment *g = &r->seg[r->n_seg++];
            g->image = image;
            g->first_shot = i;
        }
        r->seg[r->n_seg - 1].n_shots++;
    }
    int64_t out_frames = r->ext_t, chunks = 0;
    for (int k = 0; k < r->n_seg; k++) {
        struct segment *g = &r->seg[k];
        struct plan_request q = {.fps = s->fps, .base_frames = s->base_frames, .overlap = s->overlap, .steps = s->steps,
                                 .ar_step = s->ar_step, .causal_block_size = s->causal_block_size,
                                 .guidance = s->guidance, .start_image = g->image != NULL,
                                 .end_image = s->end_image && k == r->n_seg - 1,
                                 .extend_frames = k == 0 ? r->ext_t : 0};
        if (s->n_shots) {
            for (int i = g->first_shot; i < g->first_shot + g->n_shots; i++) g->frames += film_shot_frames(&shots[i], s->fps);
            q.frames = g->frames;
        } else {
            q.frames = s->frames, q.seconds = s->seconds;
        }
        int rc = plan_build(&q, &g->plan);
        if (rc < 0) return r->n_seg > 1 ? err_wrap("segment %d (from shot %d): ", k, g->first_shot) : rc;
        g->frames = g->plan.frames;
        g->out_first = out_frames;
        g->first_chunk = chunks;
        out_frames += g->plan.output_frames;
        chunks += g->plan.n_chunks;
    }
    r->total_frames = out_frames;
    r->n_ch = chunks;
    r->ch = calloc((size_t)chunks, sizeof *r->ch);
    if (!r->ch) return err_set(ERR_NOMEM, "out of memory");
    int64_t latents = 0;
    for (int k = 0; k < r->n_seg; k++) {
        const struct segment *g = &r->seg[k];
        /* shot starts relative to the segment's first new frame (shots are laid end to end) */
        for (int64_t i = 0; i < g->plan.n_chunks; i++) {
            struct rchunk *c = &r->ch[g->first_chunk + i];
            c->pc = &g->plan.chunks[i];
            c->seg = k;
            c->seg_first = i == 0;
            c->from_overlap = i > 0 || (k == 0 && r->ext_t > 0);
            c->skip_frames = c->from_overlap ? s->overlap : 0;
            c->film_latents = c->seg_first ? c->pc->latent_frames : c->pc->new_latents;
            c->latents_before = latents;
            c->seg_latent_start = c->seg_first ? latents : r->ch[g->first_chunk].seg_latent_start;
            c->frames_before = g->out_first + c->pc->first_frame;
            latents += c->film_latents;
            int shot = g->first_shot;
            int64_t start = 0;
            for (int j = g->first_shot; j < g->first_shot + g->n_shots; j++) {
                if (c->pc->first_frame >= start) shot = j;
                start += s->n_shots ? film_shot_frames(&shots[j], s->fps) : 0;
            }
            c->shot = shot;
            r->total_rows += c->pc->rows;
        }
    }
    r->total_latents = latents;
    return ERR_OK;
}

/* Refuse, before any work, a sequence-parallel degree larger than a chunk's token count. */
static int check_layout_fits(const struct render *r) {
    const int sp = r->par_open ? r->par->mesh.layout.sp : 1;
    const struct wan_config *c = &r->dit_cfg;
    for (int64_t k = 0; k < r->n_ch; k++) {
        const int64_t tokens = r->ch[k].pc->latent_frames / c->patch[0] * (r->h / c->patch[1]) * (r->w / c->patch[2]);
        if (sp > tokens)
            return err_set(ERR_INVALID_ARG, "sequence parallel degree %d exceeds the %lld tokens of chunk %lld (%lld "
                           "latent frames of %lldx%lld); use at most %lld ranks for --sp", sp, (long long)tokens,
                           (long long)k, (long long)r->ch[k].pc->latent_frames, (long long)r->h, (long long)r->w,
                           (long long)tokens);
    }
    return ERR_OK;
}

/* ---- models and inputs ---- */

int render_models_load(struct render_models **out, const struct render_models_options *opt) {
    *out = NULL;
    double t0 = time_now();
    struct render_models *m = calloc(1, sizeof *m);
    if (!m) return err_set(ERR_NOMEM, "out of memory");
    const int helpers = opt->encoder_rank ? 1 : 0;
    snprintf(m->model_dir, sizeof m->model_dir, "%s", opt->model_dir);
    m->ctx = exec_ctx_cpu(opt->threads);
    int rc = render_model_fingerprint(m->model_dir, m->fingerprint);
    if (rc == ERR_OK) rc = worker_par_open(&m->par, &opt->par, m->model_dir, opt->guidance, helpers, &m->dit);
    if (rc < 0) goto end;
    m->par_open = true;
    m->lead = worker_par_writer(&m->par);
    m->encoder_rank = helpers ? m->par.mesh.world_size - 1 : -1;
    m->encoder = helpers && m->par.mesh.world_rank == m->encoder_rank;
    m->frames_here = helpers ? m->encoder : m->lead;
    struct wan_model_files files;
    rc = wan_model_locate(m->model_dir, &files);
    if (rc == ERR_OK) {
        rc = wan_config_read(files.config_path, &m->dit_cfg);
        wan_model_files_free(&files);
    }
    const struct wan_config *dc = &m->dit_cfg;
    if (rc == ERR_OK && dc->in_channels != dc->out_channels)
        rc = err_set(ERR_UNSUPPORTED, "%s: an image-to-video model (in_channels %lld); render needs a DF or T2V model",
                     m->model_dir, (long long)dc->in_channels);
    if (rc == ERR_OK) rc = wan_vae_load(&m->vae, m->model_dir);
    if (rc == ERR_OK && !m->encoder) rc = tokenizer_open(&m->tok, m->model_dir, 0);
    if (rc == ERR_OK && !m->encoder) rc = umt5_load(&m->te, m->model_dir);
    if (rc == ERR_OK && m->te && m->te->cfg.d_model != dc->text_dim)
        rc = err_set(ERR_FORMAT, "%s: the text encoder's d_model %lld does not match the DiT's text_dim %lld",
                     m->model_dir, (long long)m->te->cfg.d_model, (long long)dc->text_dim);
    if (rc == ERR_OK && m->vae->cfg.z_dim != dc->out_channels)
        rc = err_set(ERR_FORMAT, "%s: the VAE has %lld latent channels, the DiT %lld", m->model_dir,
                     (long long)m->vae->cfg.z_dim, (long long)dc->out_channels);
end:
    if (rc < 0) {
        render_models_free(&m);
        return rc;
    }
    if (m->lead) LOG_INFO("render: model %s loaded in %.1f s", m->model_dir, time_now() - t0);
    *out = m;
    return ERR_OK;
}

void render_models_free(struct render_models **mp) {
    struct render_models *m = *mp;
    if (!m) return;
    wan_model_free(&m->dit);
    wan_vae_free(&m->vae);
    umt5_free(&m->te);
    tokenizer_close(&m->tok);
    if (m->par_open) worker_par_close(&m->par);
    free(m);
    *mp = NULL;
}

struct comm *render_models_world(const struct render_models *m) { return m->par.mesh.world; }

const char *render_models_dir(const struct render_models *m) { return m->model_dir; }

/* A job on resident models: borrow them and size the job's grids. */
static int bind_models(struct render *r, struct render_models *m) {
    if (strcmp(r->model_dir, m->model_dir) != 0)
        return err_set(ERR_INVALID_ARG, "model %s: the loaded model is %s", r->model_dir, m->model_dir);
    if (m->par.mesh.layout.cfg > 1 && r->s->guidance <= 1.0)
        return err_set(ERR_INVALID_ARG, "--guidance %g: the loaded layout (%s) splits the two guidance passes; it "
                                        "needs guidance > 1", r->s->guidance, m->par.layout);
    r->ctx = m->ctx;
    r->par = &m->par;
    r->par_open = m->par_open, r->lead = m->lead, r->encoder = m->encoder, r->frames_here = m->frames_here;
    r->encoder_rank = m->encoder_rank;
    r->dit_cfg = m->dit_cfg;
    r->dit = m->dit, r->vae = m->vae, r->tok = m->tok, r->te = m->te;
    memcpy(r->fingerprint, m->fingerprint, sizeof r->fingerprint);
    const struct wan_config *dc = &r->dit_cfg;
    const int sf = wan_vae_spatial_factor(&r->vae->cfg);
    r->W = r->s->width, r->H = r->s->height, r->h = r->H / sf, r->w = r->W / sf, r->z = r->vae->cfg.z_dim;
    r->lat_plane = r->h * r->w;
    if (r->h % 2 || r->w % 2)
        return err_set(ERR_INVALID_ARG, "--resolution %lldx%lld: the latent grid %lldx%lld must be even (the DiT's 2x2 "
                                        "patches); use multiples of 16",
                       (long long)r->W, (long long)r->H, (long long)r->w, (long long)r->h);
    r->text_len = r->tok ? r->tok->text_len : 0;
    r->text_dim = dc->text_dim;
    return ERR_OK;
}

static int encode_text(struct render *r, const char *text, const char *what, float **out) {
    const int64_t l = r->text_len;
    int64_t *ids = malloc((size_t)l * sizeof *ids);
    uint8_t *mask = malloc((size_t)l);
    *out = malloc((size_t)(l * r->text_dim) * sizeof(float));
    int64_t n = 0;
    bool truncated = false;
    int rc = ids && mask && *out ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    if (rc == ERR_OK && r->lead) rc = tokenizer_encode(r->tok, text, what, ids, mask, &n, &truncated);
    if (rc == ERR_OK && truncated) LOG_WARN("%s: longer than %lld tokens; truncated", what, (long long)l);
    if (rc == ERR_OK && r->lead) rc = umt5_encode(r->te, &r->ctx, ids, l, n, *out);
    free(ids), free(mask);
    if (rc == ERR_OK) share(r, *out, l * r->text_dim);
    return rc;
}

static int encode_texts(struct render *r) {
    const double t0 = time_now();
    const struct render_settings *s = r->s;
    r->n_texts = s->n_shots ? s->n_shots : 1;
    r->texts = calloc((size_t)r->n_texts, sizeof *r->texts);
    if (!r->texts) return err_set(ERR_NOMEM, "out of memory");
    const char *film_negative = s->negative_prompt ? s->negative_prompt : REELFARM_DEFAULT_NEGATIVE_PROMPT;
    for (int i = 0; i < r->n_texts; i++) {
        struct shot_text *t = &r->texts[i];
        t->prompt = s->n_shots ? s->shots[i].prompt : s->prompt;
        t->negative = s->n_shots && s->shots[i].negative_prompt ? s->shots[i].negative_prompt : film_negative;
        for (int j = 0; j < i && !t->ctx; j++)
            if (!strcmp(r->texts[j].prompt, t->prompt) && !strcmp(r->texts[j].negative, t->negative))
                t->ctx = r->texts[j].ctx, t->neg = r->texts[j].neg;
        if (t->ctx) continue;
        t->owns = true;
        char what[64];
        snprintf(what, sizeof what, s->n_shots ? "shot %d prompt" : "prompt", i);
        par_heartbeat(); /* the other ranks wait for the lead's text encoding */
        TRY(encode_text(r, t->prompt, what, &t->ctx));
        if (s->guidance > 1.0) {
            snprintf(what, sizeof what, s->n_shots ? "shot %d negative prompt" : "negative prompt", i);
            par_heartbeat();
            TRY(encode_text(r, t->negative, what, &t->neg));
        }
    }
    r->t_text += time_now() - t0;
    return ERR_OK;
}

/* VAE-encode n pixel frames (frame-major [n][3][H][W]) with a fresh stream -> [16, lat(n), h, w]. */
struct enc_sink {
    float *out;
    int64_t frames, plane, z;
};

static int enc_sink_frame(void *user, int64_t index, const struct tensor *frame) {
    struct enc_sink *e = user;
    par_heartbeat();
    if (index >= e->frames) return ERR_OK;
    const float *src = frame->data;
    for (int64_t c = 0; c < e->z; c++)
        memcpy(e->out + (c * e->frames + index) * e->plane, src + c * e->plane, (size_t)e->plane * sizeof(float));
    return ERR_OK;
}

static int vae_encode_frames(struct render *r, const float *const *frames, int64_t n, float *out) {
    const double t0 = time_now();
    struct enc_sink e = {.out = out, .frames = wan_vae_encoded_frames(&r->vae->cfg, n), .plane = r->lat_plane, .z = r->z};
    struct vae_stream *st = NULL;
    int rc = wan_vae_stream_open(&st, r->vae, &r->ctx, false, r->H, r->W, DTYPE_F32, enc_sink_frame, &e);
    for (int64_t i = 0; rc == ERR_OK && i < n; i++) {
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, (void *)frames[i], 3, (int64_t[]){3, r->H, r->W});
        rc = wan_vae_stream_push(st, &t);
    }
    if (rc == ERR_OK && wan_vae_stream_produced(st) != e.frames)
        rc = err_set(ERR_FORMAT, "VAE encode produced %lld latent frames, expected %lld",
                     (long long)wan_vae_stream_produced(st), (long long)e.frames);
    wan_vae_stream_close(&st);
    r->t_vae += time_now() - t0;
    return rc;
}

struct read_one {
    float *dst;
    int64_t floats;
};

static int read_one_frame(void *user, int64_t index, const float *chw) {
    struct read_one *o = user;
    (void)index;
    memcpy(o->dst, chw, (size_t)o->floats * sizeof(float));
    return ERR_OK;
}

static int encode_image(struct render *r, const char *path, const char *what, float **latent) {
    float *px = malloc((size_t)frame_floats(r) * sizeof(float));
    *latent = malloc((size_t)(r->z * r->lat_plane) * sizeof(float));
    if (!px || !*latent) {
        free(px);
        return err_set(ERR_NOMEM, "out of memory");
    }
    struct read_one one = {.dst = px, .floats = frame_floats(r)};
    int rc = ERR_OK;
    if (r->lead) {
        rc = video_read(path, (int)r->W, (int)r->H, 0, 1, read_one_frame, &one, NULL);
        if (rc < 0) err_wrap("%s: ", what);
        const float *frames[1] = {px};
        if (rc == ERR_OK) rc = vae_encode_frames(r, frames, 1, *latent);
    }
    free(px);
    if (rc == ERR_OK) share(r, *latent, r->z * r->lat_plane);
    return rc;
}

struct read_all {
    float *buf;
    int64_t n, cap, floats;
};

static int read_all_frame(void *user, int64_t index, const float *chw) {
    struct read_all *a = user;
    (void)index;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        float *g = realloc(a->buf, (size_t)(a->cap * a->floats) * sizeof(float));
        if (!g) return err_set(ERR_NOMEM, "out of memory reading the video to extend");
        a->buf = g;
    }
    memcpy(a->buf + a->n * a->floats, chw, (size_t)a->floats * sizeof(float));
    a->n++;
    return ERR_OK;
}

static int load_conditioning(struct render *r) {
    const struct render_settings *s = r->s;
    if (s->extend) {
        struct read_all a = {.floats = frame_floats(r)};
        int rc = video_read(s->extend, (int)r->W, (int)r->H, 0, 0, read_all_frame, &a, NULL);
        if (rc < 0) {
            free(a.buf);
            return err_wrap("--extend: ");
        }
        r->ext = a.buf, r->ext_t = a.n;
    }
    return ERR_OK;
}

static int encode_images(struct render *r) {
    for (int k = 0; k < r->n_seg; k++) {
        struct segment *g = &r->seg[k];
        if (!g->image) continue;
        char what[64];
        snprintf(what, sizeof what, k == 0 && r->s->image ? "--image" : "shot %d image", g->first_shot);
        TRY(encode_image(r, g->image, what, &g->image_latent));
    }
    if (r->s->end_image) TRY(encode_image(r, r->s->end_image, "--end-image", &r->end_latent));
    return ERR_OK;
}

static int load_noise(struct render *r) {
    if (!r->o->noise_path) return ERR_OK;
    struct h5_file *nf = NULL;
    struct tensor t = {0};
    const int64_t want[4] = {r->z, r->ch[0].pc->latent_frames, r->h, r->w};
    char a[96], b[96];
    int rc = h5_open_read(&nf, r->o->noise_path);
    if (rc == ERR_OK) rc = h5_read_f32(nf, "noise", &t);
    h5_close(&nf);
    if (rc == ERR_OK && !tensor_has_shape(&t, 4, want))
        rc = err_set(ERR_SHAPE, "--noise %s: dataset 'noise' is %s; the first chunk needs %s", r->o->noise_path,
                     tensor_shape_str(a, sizeof a, &t), shape_str(b, sizeof b, 4, want));
    if (rc == ERR_OK) r->noise0 = t.data, t.data = NULL;
    free(t.data);
    return rc < 0 && !strstr(err_message(), "--noise") ? err_wrap("--noise: ") : rc;
}

/* Hashes of every input file, so a resume with a changed image or video is refused. */
static int hash_inputs(struct render *r) {
    const struct render_settings *s = r->s;
    char buf[16384];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{");
    const char *names[] = {"image", "end_image", "extend", "noise"};
    const char *paths[] = {s->image, s->end_image, s->extend, r->o->noise_path};
    bool first = true;
    for (int i = 0; i < 4; i++) {
        if (!paths[i]) continue;
        char hx[17];
        if (render_hash_file(paths[i], hx) < 0) return err_wrap("--%s: ", names[i]);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"%s\":\"%s\"", first ? "" : ",", names[i], hx);
        first = false;
    }
    for (int i = 0; i < s->n_shots; i++) {
        if (!s->shots[i].image || n > sizeof buf - 64) continue;
        char hx[17];
        if (render_hash_file(s->shots[i].image, hx) < 0) return err_wrap("shot %d image: ", i);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"shot%d\":\"%s\"", first ? "" : ",", i, hx);
        first = false;
    }
    snprintf(buf + n, sizeof buf - n, "}");
    r->inputs_json = strdup(buf);
    return r->inputs_json ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
}

/* ---- output ---- */

static void ring_push(struct render *r, const float *chw) {
    if (r->overlap <= 0) return;
    memcpy(r->ring + r->ring_head * frame_floats(r), chw, (size_t)frame_floats(r) * sizeof(float));
    r->ring_head = (r->ring_head + 1) % r->overlap;
    if (r->ring_count < r->overlap) r->ring_count++;
}

/* Append one finished frame to the spool and the encoded output. */
static int emit_frame(struct render *r, const float *chw) {
    const double t0 = time_now();
    ring_push(r, chw);
    video_planar_to_rgb24(chw, (int)r->W, (int)r->H, r->rgb);
    TRY(render_spool_append(&r->frames, r->rgb));
    if (r->writer) TRY(video_writer_add_rgb24(r->writer, r->rgb));
    r->t_io += time_now() - t0;
    progress_frames(&r->prog, r->frames.items);
    return ERR_OK;
}

static int decode_sink(void *user, int64_t index, const struct tensor *frame) {
    struct render *r = user;
    (void)index;
    par_heartbeat(); /* lone work (decoding, replaying) while the other ranks wait: restart their deadline */
    if (r->replaying) return ERR_OK;
    if (r->dec_skip > 0) { /* the overlap's frames, already in the film */
        r->dec_skip--;
        return ERR_OK;
    }
    TRY(emit_frame(r, frame->data));
    test_point("decode");
    /* alone, stop at once; under MPI every rank stops at the same row boundary (stop_requested), and the
     * encoder rank when the lead says so */
    if (g_stop_signal && par_world() == 1) return err_set(ERR_INTERRUPTED, "interrupted while decoding");
    return ERR_OK;
}

/* Frame j of a [16, F, h, w] window, gathered into zf [16, h, w]. */
static void gather_latent(const struct render *r, const float *lat, int64_t f, int64_t j, float *zf) {
    for (int64_t c = 0; c < r->z; c++)
        memcpy(zf + c * r->lat_plane, lat + (c * f + j) * r->lat_plane, (size_t)r->lat_plane * sizeof(float));
}

/* Frames [f0, f1) of a [16, F, h, w] window into a decoder stream (st) or, with st NULL, onto the film's
 * latent spool. */
static int take_latents(struct render *r, struct vae_stream *st, const float *lat, int64_t f, int64_t f0, int64_t f1) {
    float *zf = malloc((size_t)(r->z * r->lat_plane) * sizeof(float));
    if (!zf) return err_set(ERR_NOMEM, "out of memory");
    int rc = ERR_OK;
    for (int64_t j = f0; rc == ERR_OK && j < f1; j++) {
        gather_latent(r, lat, f, j, zf);
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, zf, 3, (int64_t[]){r->z, r->h, r->w});
        rc = st ? wan_vae_stream_push(st, &t) : render_spool_append(&r->latents, zf);
    }
    free(zf);
    return rc;
}

/* Decode chunk c's final latents [16, F, h, w] and append its new frames. */
static int decode_chunk(struct render *r, int64_t c, const float *lat) {
    const struct rchunk *k = &r->ch[c];
    const int64_t f = k->pc->latent_frames;
    const double t0 = time_now();
    int rc = ERR_OK;
    progress_event(&r->prog, "decode", c, NULL);
    if (r->s->overlap_mode == OVERLAP_PIXEL) {
        struct vae_stream *st = NULL;
        r->dec_skip = k->skip_frames;
        rc = wan_vae_stream_open(&st, r->vae, &r->ctx, true, r->H, r->W, DTYPE_F32, decode_sink, r);
        if (rc == ERR_OK) rc = take_latents(r, st, lat, f, 0, f);
        wan_vae_stream_close(&st);
    } else {
        if (k->seg_first) {
            wan_vae_stream_close(&r->dec);
            rc = wan_vae_stream_open(&r->dec, r->vae, &r->ctx, true, r->H, r->W, DTYPE_F32, decode_sink, r);
            r->dec_skip = k->skip_frames;
        }
        if (rc == ERR_OK) rc = take_latents(r, r->dec, lat, f, k->seg_first ? 0 : f - k->film_latents, f);
    }
    r->t_vae += time_now() - t0;
    return rc;
}

/* The prefix of chunk c (its first frames, clean): none, the start image, or the film's overlap. */
static int make_prefix(struct render *r, int64_t c) {
    const struct rchunk *k = &r->ch[c];
    free(r->prefix);
    r->prefix = NULL;
    r->prefix_frames = k->pc->prefix_frames;
    if (!r->prefix_frames) return ERR_OK;
    const size_t lat_bytes = (size_t)(r->z * r->lat_plane) * sizeof(float);
    r->prefix = malloc((size_t)r->prefix_frames * lat_bytes);
    if (!r->prefix) return err_set(ERR_NOMEM, "out of memory");
    if (!k->from_overlap) { /* the segment's start image */
        memcpy(r->prefix, r->seg[k->seg].image_latent, lat_bytes);
        return ERR_OK;
    }
    const int64_t o = plan_latents(r->s->overlap);
    if (r->s->overlap_mode == OVERLAP_LATENT && !(k->seg_first && r->ext_t > 0)) {
        /* spec 6.10: the film's last O latents, cut to whole blocks */
        float *zf = malloc(lat_bytes);
        if (!zf) return err_set(ERR_NOMEM, "out of memory");
        int rc = ERR_OK;
        for (int64_t j = 0; rc == ERR_OK && j < r->prefix_frames; j++) {
            rc = render_spool_read(&r->latents, r->latents.items - o + j, zf);
            for (int64_t ch = 0; rc == ERR_OK && ch < r->z; ch++)
                memcpy(r->prefix + (ch * r->prefix_frames + j) * r->lat_plane, zf + ch * r->lat_plane,
                       (size_t)r->lat_plane * sizeof(float));
        }
        free(zf);
        return rc;
    }
    /* spec 6.3 step 1: re-encode the film's last `overlap` pixel frames with a fresh cache */
    if (r->ring_count < r->overlap)
        return err_set(ERR_INVALID_ARG, "the film has %lld frames, fewer than --overlap %lld", (long long)r->ring_count,
                       (long long)r->overlap);
    const float **frames = malloc((size_t)r->overlap * sizeof *frames);
    float *enc = malloc((size_t)o * lat_bytes);
    int rc = frames && enc ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    for (int64_t i = 0; rc == ERR_OK && i < r->overlap; i++)
        frames[i] = r->ring + ((r->ring_head + i) % r->overlap) * frame_floats(r);
    if (rc == ERR_OK) rc = vae_encode_frames(r, frames, r->overlap, enc);
    for (int64_t ch = 0; rc == ERR_OK && ch < r->z; ch++) /* keep the first prefix_frames of the O latents */
        memcpy(r->prefix + ch * r->prefix_frames * r->lat_plane, enc + ch * o * r->lat_plane,
               (size_t)(r->prefix_frames * r->lat_plane) * sizeof(float));
    free(frames), free(enc);
    return rc;
}

/* Chunk c's prefix on every rank: made by the lead (which holds the film's frames and latents). */
static int share_prefix(struct render *r, int64_t c) {
    if (r->lead) TRY(make_prefix(r, c));
    if (comm_size(compute(r)) == 1) return ERR_OK;
    if (!r->lead) {
        free(r->prefix);
        r->prefix_frames = r->ch[c].pc->prefix_frames;
        r->prefix = r->prefix_frames ? malloc((size_t)(r->z * r->prefix_frames * r->lat_plane) * sizeof(float)) : NULL;
        if (r->prefix_frames && !r->prefix) return err_set(ERR_NOMEM, "out of memory");
    }
    if (r->prefix_frames) share(r, r->prefix, r->z * r->prefix_frames * r->lat_plane);
    return ERR_OK;
}

/* ---- the encoder rank: the lead sends it each denoised chunk (docs/parallel.md, "timeline") ---- */

enum enc_msg { ENC_CHUNK = 1, ENC_REPLAY, ENC_FLUSH, ENC_FINISH, ENC_STOP };
enum { TAG_ENC_HEADER = 71, TAG_ENC_DATA = 72, TAG_ENC_REPLY = 73 };

struct enc_header {
    int64_t type, chunk, floats;
};

static void enc_send(const struct render *r, int64_t type, int64_t chunk, const float *data, int64_t floats) {
    const struct enc_header h = {type, chunk, floats};
    comm_send(r->par->mesh.world, &h, sizeof h, r->encoder_rank, TAG_ENC_HEADER);
    if (floats) comm_send(r->par->mesh.world, data, (size_t)floats * sizeof(float), r->encoder_rank, TAG_ENC_DATA);
}

/* Lead: wait until the encoder rank has written every frame sent so far; its count and hash. */
static int enc_flush(struct render *r) {
    enc_send(r, ENC_FLUSH, 0, NULL, 0);
    int64_t reply[3];
    comm_recv(r->par->mesh.world, reply, sizeof reply, r->encoder_rank, TAG_ENC_REPLY);
    if (reply[2] < 0) return err_set((int)reply[2], "the encoder rank failed (see its error)");
    r->enc_frames = reply[0];
    r->enc_hash = (uint64_t)reply[1];
    progress_frames(&r->prog, r->enc_frames);
    return ERR_OK;
}

/* Lead, resuming in latent mode: the latents the encoder rank's decoder must see again (not shown). */
static int enc_replay(struct render *r, int64_t from, int64_t to) {
    const int64_t per = r->z * r->lat_plane;
    float *buf = malloc((size_t)((to - from) * per) * sizeof(float));
    int rc = buf ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    for (int64_t j = from; rc == ERR_OK && j < to; j++) rc = render_spool_read(&r->latents, j, buf + (j - from) * per);
    if (rc == ERR_OK && to > from) enc_send(r, ENC_REPLAY, 0, buf, (to - from) * per);
    free(buf);
    return rc;
}

static int finish_frames(struct render *r);

/* The encoder rank's life after setup: decode what the lead sends until it finishes or stops. */
static int enc_serve(struct render *r) {
    float *buf = NULL;
    int64_t cap = 0;
    int rc = ERR_OK;
    for (;;) {
        struct enc_header h;
        comm_recv(r->par->mesh.world, &h, sizeof h, 0, TAG_ENC_HEADER);
        if (h.floats > cap) {
            free(buf);
            cap = h.floats;
            buf = malloc((size_t)cap * sizeof(float));
            CHECK(buf, "out of memory for %lld floats from the lead", (long long)cap);
        }
        if (h.floats) comm_recv(r->par->mesh.world, buf, (size_t)h.floats * sizeof(float), 0, TAG_ENC_DATA);
        if (h.type == ENC_CHUNK) {
            const double t0 = time_now();
            if (rc == ERR_OK) rc = decode_chunk(r, h.chunk, buf);
            LOG_DEBUG("encoder rank: chunk %lld decoded in %.2f s (t=%.2f)", (long long)h.chunk, time_now() - t0,
                      time_now() - r->prog.t_start);
        } else if (h.type == ENC_REPLAY) { /* latent-mode resume: rebuild the decoder's caches */
            const double t0 = time_now();
            const int64_t n = h.floats / (r->z * r->lat_plane);
            if (rc == ERR_OK && !r->dec)
                rc = wan_vae_stream_open(&r->dec, r->vae, &r->ctx, true, r->H, r->W, DTYPE_F32, decode_sink, r);
            r->replaying = true;
            for (int64_t j = 0; rc == ERR_OK && j < n; j++) {
                struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, buf + j * r->z * r->lat_plane, 3,
                                              (int64_t[]){r->z, r->h, r->w});
                rc = wan_vae_stream_push(r->dec, &t);
            }
            r->replaying = false;
            r->t_vae += time_now() - t0;
        } else if (h.type == ENC_FLUSH) {
            if (rc == ERR_OK) rc = render_spool_sync(&r->frames);
            const int64_t reply[3] = {r->frames.items, (int64_t)r->frames.hash, rc};
            comm_send(r->par->mesh.world, reply, sizeof reply, 0, TAG_ENC_REPLY);
        } else if (h.type == ENC_FINISH) {
            if (rc == ERR_OK) rc = finish_frames(r);
            const int64_t reply[3] = {r->frames.items, (int64_t)r->frames.hash, rc};
            comm_send(r->par->mesh.world, reply, sizeof reply, 0, TAG_ENC_REPLY);
            break;
        } else { /* ENC_STOP: the lead saved a checkpoint and stops */
            if (rc == ERR_OK) rc = render_spool_sync(&r->frames);
            if (rc == ERR_OK) rc = err_set(ERR_INTERRUPTED, "interrupted: the lead stopped the render");
            break;
        }
    }
    free(buf);
    LOG_INFO("render: encoder rank wrote %lld frames (VAE %.1f s, I/O %.1f s)", (long long)r->frames.items, r->t_vae,
             r->t_io);
    return rc;
}

/* ---- checkpoints ---- */

static int save_checkpoint(struct render *r, int64_t chunk, const struct df_run *run) {
    if (r->o->no_checkpoint) return ERR_OK;
    const double t0 = time_now();
    /* every computing rank writes the file (collectively, render_ckpt_write_collective): the lead first makes
     * sure the spools hold what the checkpoint counts and copies the ring frames that this chunk's decode will
     * not replace (only its ring holds the film's frames), then shares the counts, hashes and its outcome */
    int rc = ERR_OK;
    int64_t carry = 0;
    float *ring = NULL;
    if (r->lead) {
        if (r->encoder_rank >= 0) {
            rc = enc_flush(r); /* a checkpoint counts only frames on disk */
        } else {
            rc = render_spool_sync(&r->frames);
            r->enc_frames = r->frames.items, r->enc_hash = r->frames.hash;
        }
        if (rc == ERR_OK) rc = render_spool_sync(&r->latents);
        if (chunk < r->n_ch && r->s->overlap_mode == OVERLAP_PIXEL) {
            carry = r->overlap - r->ch[chunk].pc->new_frames;
            carry = carry < 0 ? 0 : (carry > r->ring_count ? r->ring_count : carry);
        }
        if (rc == ERR_OK && carry > 0 && !(ring = malloc((size_t)(carry * frame_floats(r)) * sizeof(float))))
            rc = err_set(ERR_NOMEM, "out of memory");
        for (int64_t i = 0; rc == ERR_OK && i < carry; i++) {
            const int64_t slot = (r->ring_head + r->ring_count - carry + i) % r->overlap;
            memcpy(ring + i * frame_floats(r), r->ring + slot * frame_floats(r), (size_t)frame_floats(r) * sizeof(float));
        }
    }
    int64_t lead[6] = {rc, r->enc_frames, r->latents.items, (int64_t)r->enc_hash, (int64_t)r->latents.hash, carry};
    if (comm_size(compute(r)) > 1) comm_bcast(compute(r), lead, sizeof lead, 0);
    if (lead[0] < 0) {
        free(ring);
        return r->lead ? (int)lead[0]
                       : err_set((enum err_code)lead[0], "%s: the lead could not save the checkpoint", r->ckpt);
    }
    struct render_ckpt c = {.settings_json = r->settings_json, .inputs_json = r->inputs_json, .n_chunks = r->n_ch,
                            .chunk = chunk, .frames_done = lead[1], .latents_done = lead[2],
                            .frames_hash = (uint64_t)lead[3], .latents_hash = (uint64_t)lead[4], .ring = ring};
    snprintf(c.fingerprint, sizeof c.fingerprint, "%s", r->fingerprint);
    c.noise_path = (char *)r->o->noise_path, c.latents_out = (char *)r->o->latents_out;
    if (lead[5] > 0) c.ring_frames = lead[5], c.ring_height = r->H, c.ring_width = r->W; /* ring: the lead's only */
    if (run && df_run_next_row(run) > 0) { /* the sampler state: the same on every computing rank */
        struct df_run_state_shape sh;
        df_run_state_shape(run, &sh);
        rc = render_ckpt_alloc_state(&c, &sh);
        if (rc == ERR_OK) df_run_export(run, &c.state);
        c.next_row = df_run_next_row(run);
    } else if (chunk < r->n_ch && r->prefix) {
        c.prefix = r->prefix;
        c.prefix_frames = r->prefix_frames;
        c.shape.height = r->h, c.shape.width = r->w;
    }
    /* a rank that could not allocate the state still joins: the writer refuses the file on every rank */
    rc = render_ckpt_write_collective(compute(r), r->ckpt, &c);
    c.settings_json = c.inputs_json = c.noise_path = c.latents_out = NULL, c.prefix = NULL;
    render_ckpt_free(&c);
    r->t_io += time_now() - t0;
    if (rc == ERR_OK) progress_event(&r->prog, "checkpoint", chunk, r->ckpt);
    return rc;
}

/* ---- one chunk ---- */

static int run_chunk(struct render *r, int64_t c, const struct render_ckpt *resume) {
    const struct rchunk *k = &r->ch[c];
    const struct render_settings *s = r->s;
    const int64_t f = k->pc->latent_frames;
    float *noise = malloc((size_t)(r->z * f * r->lat_plane) * sizeof(float));
    float *lat = malloc((size_t)(r->z * f * r->lat_plane) * sizeof(float));
    struct tensor tn = tensor_make(DTYPE_F32, DEVICE_CPU, noise, 4, (int64_t[]){r->z, f, r->h, r->w});
    struct df_run *run = NULL;
    int rc = noise && lat ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    if (rc == ERR_OK && c == 0 && r->noise0) {
        memcpy(noise, r->noise0, (size_t)tensor_numel(&tn) * sizeof(float));
    } else if (rc == ERR_OK) {
        op_randn(&r->ctx, &tn, s->seed, rng_stream_id(RNG_PURPOSE_NOISE, (uint64_t)c, 0, 0), 0);
    }
    struct tensor tp = tensor_make(DTYPE_F32, DEVICE_CPU, r->prefix, 4, (int64_t[]){r->z, r->prefix_frames, r->h, r->w});
    struct tensor te = tensor_make(DTYPE_F32, DEVICE_CPU, r->end_latent, 4, (int64_t[]){r->z, 1, r->h, r->w});
    const struct shot_text *t = &r->texts[k->shot];
    struct tensor tc = tensor_make(DTYPE_F32, DEVICE_CPU, t->ctx, 2, (int64_t[]){r->text_len, r->text_dim});
    struct tensor tu = tensor_make(DTYPE_F32, DEVICE_CPU, t->neg, 2, (int64_t[]){r->text_len, r->text_dim});
    const struct df_window w = {.noise = &tn, .prefix = r->prefix_frames ? &tp : NULL,
                                .end = k->pc->end_frame ? &te : NULL, .context = &tc,
                                .negative_context = t->neg ? &tu : NULL};
    const struct df_sampling sp = {.steps = s->steps, .shift = s->shift, .guidance = s->guidance, .ar_step = s->ar_step,
                                   .causal_block_size = s->causal_block_size, .causal_attention = s->causal_attention,
                                   .addnoise_condition = s->addnoise_condition, .seed = s->seed, .chunk = c,
                                   .fps = s->fps, .variant = UNIPC_UPSTREAM, .par = &r->par->dit,
                                   .cfg = r->par->mesh.cfg};
    if (rc == ERR_OK) rc = df_run_open(&run, r->dit, &r->ctx, &sp, &w);
    if (rc < 0) err_wrap("chunk %lld: ", (long long)c);
    if (rc == ERR_OK && resume && resume->next_row > 0) {
        struct df_run_state_shape sh;
        df_run_state_shape(run, &sh);
        const struct df_run_state_shape *rs = &resume->shape;
        if (sh.channels != rs->channels || sh.frames != rs->frames || sh.columns != rs->columns ||
            sh.height != rs->height || sh.width != rs->width)
            rc = err_set(ERR_FORMAT, "%s: the saved window does not match chunk %lld of the plan", r->ckpt, (long long)c);
        if (rc == ERR_OK) rc = df_run_import(run, &resume->state);
        if (rc < 0) err_wrap("%s: ", r->ckpt);
    }
    if (rc == ERR_OK) df_run_set_hook(run, sampler_hook, r);
    const int64_t rows = run ? df_run_schedule(run)->rows : 0;
    int64_t since = 0, ran = 0;
    while (rc == ERR_OK && !df_run_done(run)) {
        if (stop_requested(r)) {
            rc = save_checkpoint(r, c, run);
            if (rc == ERR_OK) rc = err_set(ERR_INTERRUPTED, "interrupted at chunk %lld row %lld", (long long)c,
                                           (long long)df_run_next_row(run));
            break;
        }
        const double t0 = time_now();
        df_run_row(run);
        r->t_dit += time_now() - t0;
        par_heartbeat(); /* an encoder rank waits for the lead through whole chunks */
        progress_row(&r->prog, c, df_run_next_row(run), rows);
        test_point("row");
        since++, ran++;
        if (r->o->checkpoint_every > 0 && since >= r->o->checkpoint_every && !df_run_done(run)) {
            rc = save_checkpoint(r, c, run);
            since = 0;
        }
    }
    /* chunk end: the denoised window is saved before decoding (a kill while decoding redoes only that) */
    if (rc == ERR_OK && ran > 0) rc = save_checkpoint(r, c, run);
    if (rc == ERR_OK) df_run_latents(run, lat);
    df_run_close(&run);
    if (rc == ERR_OK && r->lead) rc = take_latents(r, NULL, lat, f, k->seg_first ? 0 : f - k->film_latents, f);
    if (rc == ERR_OK && r->lead && r->encoder_rank >= 0)
        enc_send(r, ENC_CHUNK, c, lat, r->z * f * r->lat_plane); /* decoded beside the next chunk's rows */
    else if (rc == ERR_OK && r->lead)
        rc = decode_chunk(r, c, lat);
    if (rc == ERR_OK && stop_requested(r))
        rc = err_set(ERR_INTERRUPTED, "interrupted after decoding chunk %lld", (long long)c);
    free(noise), free(lat);
    return rc;
}

/* ---- resume ---- */

/* The first top-level key whose value differs between two canonical settings JSON texts. */
static void first_difference(const char *a, const char *b, char *key, size_t cap) {
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    key[0] = '\0';
    for (const cJSON *it = ja ? ja->child : NULL; it && !key[0]; it = it->next) {
        const cJSON *other = cJSON_GetObjectItemCaseSensitive(jb, it->string);
        if (!other || !cJSON_Compare(it, other, true)) snprintf(key, cap, "%s", it->string);
    }
    for (const cJSON *it = jb ? jb->child : NULL; it && !key[0]; it = it->next)
        if (!cJSON_GetObjectItemCaseSensitive(ja, it->string)) snprintf(key, cap, "%s", it->string);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
}

static int check_resume(struct render *r, const struct render_ckpt *c) {
    if (strcmp(c->settings_json, r->settings_json) != 0) {
        char key[64] = "";
        first_difference(c->settings_json, r->settings_json, key, sizeof key);
        return err_set(ERR_INVALID_ARG, "%s: the settings differ from the interrupted render's%s%s%s; resume without "
                                        "changing settings (flags that change the result are refused)",
                       r->ckpt, key[0] ? " (first difference: " : "", key, key[0] ? ")" : "");
    }
    if (strcmp(c->fingerprint, r->fingerprint) != 0)
        return err_set(ERR_INVALID_ARG, "%s: the model files in %s differ from the ones the render started with "
                                        "(fingerprint %s, checkpoint %s)",
                       r->ckpt, r->model_dir, r->fingerprint, c->fingerprint);
    if (strcmp(c->inputs_json, r->inputs_json) != 0)
        return err_set(ERR_INVALID_ARG, "%s: an input file (image, end image, video or noise) changed since the render "
                                        "started (%s, now %s)",
                       r->ckpt, c->inputs_json, r->inputs_json);
    if (c->n_chunks != r->n_ch)
        return err_set(ERR_FORMAT, "%s: the checkpoint's plan has %lld chunks, this one %lld", r->ckpt,
                       (long long)c->n_chunks, (long long)r->n_ch);
    if (c->chunk < r->n_ch) {
        const struct rchunk *k = &r->ch[c->chunk];
        if (c->next_row > k->pc->rows || (c->next_row == 0 && c->prefix_frames != k->pc->prefix_frames) ||
            c->latents_done != k->latents_before || c->frames_done != k->frames_before)
            return err_set(ERR_FORMAT, "%s: the saved position (chunk %lld, row %lld, %lld frames, %lld latents) does "
                                       "not fit the plan",
                           r->ckpt, (long long)c->chunk, (long long)c->next_row, (long long)c->frames_done,
                           (long long)c->latents_done);
    } else if (c->latents_done != r->total_latents || c->frames_done != r->total_frames) {
        return err_set(ERR_FORMAT, "%s: a finished render with %lld frames; the plan makes %lld", r->ckpt,
                       (long long)c->frames_done, (long long)r->total_frames);
    }
    return ERR_OK;
}

/* Rebuild the encoded output and the decoder state from the spools. */
static int restore_frames(struct render *r, const struct render_ckpt *c) {
    const double t0 = time_now();
    /* The ring of the film's last float frames is not restored: the current chunk's decode refills it before
     * the next prefix is made (every chunk that has a successor adds more than `overlap` frames), and the
     * current chunk's own prefix comes from the checkpoint. */
    int rc = ERR_OK;
    for (int64_t i = 0; rc == ERR_OK && i < c->frames_done; i++) {
        par_heartbeat(); /* re-encoding a long film can outlast the others' deadline */
        rc = render_spool_read(&r->frames, i, r->rgb);
        if (rc == ERR_OK && r->writer) rc = video_writer_add_rgb24(r->writer, r->rgb);
    }
    r->t_io += time_now() - t0;
    return rc;
}

/* Latent mode: replay the current segment's latents through a fresh decoder, discarding the frames (the lead
 * sends them to the encoder rank when there is one). */
static int restore_decoder(struct render *r, const struct render_ckpt *c) {
    if (r->s->overlap_mode != OVERLAP_LATENT || c->chunk >= r->n_ch) return ERR_OK;
    const struct rchunk *k = &r->ch[c->chunk];
    if (k->seg_first) return ERR_OK;
    if (r->encoder_rank >= 0) return enc_replay(r, k->seg_latent_start, c->latents_done);
    int rc = ERR_OK;
    const double t1 = time_now();
    rc = wan_vae_stream_open(&r->dec, r->vae, &r->ctx, true, r->H, r->W, DTYPE_F32, decode_sink, r);
    float *zf = malloc((size_t)(r->z * r->lat_plane) * sizeof(float));
    if (rc == ERR_OK && !zf) rc = err_set(ERR_NOMEM, "out of memory");
    r->replaying = true;
    for (int64_t j = k->seg_latent_start; rc == ERR_OK && j < c->latents_done; j++) {
        rc = render_spool_read(&r->latents, j, zf);
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, zf, 3, (int64_t[]){r->z, r->h, r->w});
        if (rc == ERR_OK) rc = wan_vae_stream_push(r->dec, &t);
    }
    r->replaying = false;
    free(zf);
    LOG_INFO("render: rebuilt the decoder from %lld latents in %.1f s", (long long)(c->latents_done - k->seg_latent_start),
             time_now() - t1);
    r->t_vae += time_now() - t1;
    return rc;
}

/* ---- finish ---- */

/* The frames' owner: finalise the encoded output, or write the .h5 frames. */
static int finish_frames(struct render *r) {
    const double t0 = time_now();
    int rc = ERR_OK;
    if (r->writer) {
        rc = video_writer_close(&r->writer, true);
    } else {
        const size_t fb = (size_t)(r->H * r->W * 3);
        uint8_t *all = malloc((size_t)r->frames.items * fb);
        struct h5_file *f = NULL;
        rc = all ? ERR_OK : err_set(ERR_NOMEM, "out of memory for %lld frames", (long long)r->frames.items);
        for (int64_t i = 0; rc == ERR_OK && i < r->frames.items; i++) rc = render_spool_read(&r->frames, i, all + (size_t)i * fb);
        if (rc == ERR_OK) rc = h5_create(&f, r->out, r->o->overwrite);
        if (rc == ERR_OK)
            rc = h5_write_u8(f, "video_uint8", all, 4, (int64_t[]){r->frames.items, r->H, r->W, 3});
        if (rc == ERR_OK) rc = h5_attr_set_str(f, "reelfarm_format", "reelfarm-render-frames");
        if (rc == ERR_OK) rc = h5_attr_set_i64(f, "fps", r->s->fps);
        if (rc == ERR_OK) rc = h5_commit(&f);
        h5_close(&f);
        free(all);
    }
    r->t_io += time_now() - t0;
    return rc;
}

/* The lead: --save-latents from the latent spool. */
static int finish_latents(struct render *r) {
    const double t0 = time_now();
    int rc = ERR_OK;
    if (r->o->latents_out) {
        const int64_t n = r->latents.items, plane = r->lat_plane;
        float *all = malloc((size_t)(r->z * n * plane) * sizeof(float));
        float *zf = malloc((size_t)(r->z * plane) * sizeof(float));
        struct h5_file *f = NULL;
        rc = all && zf ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
        for (int64_t j = 0; rc == ERR_OK && j < n; j++) {
            rc = render_spool_read(&r->latents, j, zf);
            for (int64_t c = 0; rc == ERR_OK && c < r->z; c++)
                memcpy(all + (c * n + j) * plane, zf + c * plane, (size_t)plane * sizeof(float));
        }
        if (rc == ERR_OK) rc = h5_create(&f, r->o->latents_out, r->o->overwrite);
        if (rc == ERR_OK) rc = h5_write_f32(f, "latents", all, 4, (int64_t[]){r->z, n, r->h, r->w});
        if (rc == ERR_OK) rc = h5_attr_set_str(f, "reelfarm_format", "reelfarm-render-latents");
        if (rc == ERR_OK) rc = h5_commit(&f);
        h5_close(&f);
        free(all), free(zf);
        if (rc < 0) err_wrap("--save-latents: ");
    }
    r->t_io += time_now() - t0;
    return rc;
}

/* ---- settings JSON and the whole render ---- */

static void render_free(struct render *r) {
    wan_vae_stream_close(&r->dec);
    if (r->writer) video_writer_close(&r->writer, false);
    render_spool_close(&r->frames, false);
    render_spool_close(&r->latents, false);
    for (int k = 0; k < r->n_seg; k++) {
        plan_free(&r->seg[k].plan);
        free(r->seg[k].image_latent);
    }
    free(r->seg), free(r->ch);
    for (int i = 0; i < r->n_texts; i++)
        if (r->texts[i].owns) free(r->texts[i].ctx), free(r->texts[i].neg);
    free(r->texts);
    free(r->end_latent), free(r->noise0), free(r->ext), free(r->rgb), free(r->ring), free(r->prefix);
    free(r->settings_json), free(r->inputs_json);
}

static int start_outputs(struct render *r, bool resume, const struct render_ckpt *c) {
    r->rgb = malloc((size_t)(r->H * r->W * 3));
    r->overlap = r->s->overlap;
    r->ring = malloc((size_t)(r->overlap * frame_floats(r)) * sizeof(float));
    if (!r->rgb || !r->ring) return err_set(ERR_NOMEM, "out of memory");
    if (r->lead)
        TRY(render_spool_open(&r->latents, r->latents_path, (size_t)(r->z * r->lat_plane) * sizeof(float), resume,
                              c ? c->latents_done : 0, c ? c->latents_hash : 0));
    if (!r->frames_here) return ERR_OK;
    TRY(render_spool_open(&r->frames, r->frames_path, (size_t)(r->H * r->W * 3), resume, c ? c->frames_done : 0,
                          c ? c->frames_hash : 0));
    if (!r->to_h5) {
        struct video_writer_options wo;
        video_writer_default_options(&wo);
        wo.width = (int)r->W, wo.height = (int)r->H, wo.fps_num = r->s->fps, wo.fps_den = 1;
        wo.codec = r->s->codec, wo.crf = r->s->crf, wo.preset = r->s->preset, wo.overwrite = r->o->overwrite;
        wo.temp_path = r->partial;
        wo.fragmented = true;
        wo.threads = 1; /* byte-identical re-encoding on resume, whatever the load */
        TRY(video_writer_open(&r->writer, r->out, &wo));
    }
    return ERR_OK;
}

static void install_signals(struct sigaction old[2]) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
    g_outer_handler[0] = old[0];
    g_outer_handler[1] = old[1];
}

static void restore_signals(const struct sigaction old[2]) {
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
}

/* One render: on the models m, or (m NULL) on models loaded here with `load` and freed at the end. */
static int render_job(const struct render_options *o, struct render_models *m, const struct render_models_options *load,
                      int *exit_signal) {
    struct render_models *owned = NULL;
    struct render R;
    memset(&R, 0, sizeof R);
    struct render *r = &R;
    r->o = o;
    r->s = o->settings;
    r->frames.fd = r->latents.fd = -1;
    *exit_signal = 0;
    test_interrupt_init();
    struct render_ckpt ck = {0};
    const bool resume = o->resume != NULL;

    int rc = resolve_settings(r);
    if (rc == ERR_OK) rc = check_output_paths(r);
    if (rc == ERR_OK && resume) rc = render_ckpt_read(o->resume, &ck);
    if (rc == ERR_OK) {
        snprintf(r->model_dir, sizeof r->model_dir, "%s", r->s->model);
        rc = film_to_json(r->s, &r->settings_json);
    }
    if (rc == ERR_OK) rc = hash_inputs(r);
    const bool encoder_rank = m ? m->encoder_rank >= 0 : load->encoder_rank;
    if (rc == ERR_OK && encoder_rank && r->s->overlap_mode != OVERLAP_LATENT)
        rc = err_set(ERR_INVALID_ARG, "--encoder-rank needs --overlap-mode latent: with pixel overlap the next chunk "
                                      "starts from the decoded frames, so decoding cannot run beside the DiT");
    if (rc == ERR_OK && !m) rc = render_models_load(&owned, load);
    if (rc == ERR_OK) rc = bind_models(r, m ? m : owned);
    if (rc == ERR_OK) rc = load_conditioning(r);
    if (rc == ERR_OK) rc = build_plan(r);
    if (rc == ERR_OK) rc = check_layout_fits(r);
    if (rc == ERR_OK && resume) rc = check_resume(r, &ck);
    if (rc == ERR_OK && !r->encoder) rc = load_noise(r);
    if (rc < 0) goto end;
    if (r->lead)
        LOG_INFO("render: %lld frames %lldx%lld at %d fps in %lld chunk%s (%lld rows, %d segment%s, %s overlap) -> %s",
             (long long)r->total_frames, (long long)r->W, (long long)r->H, r->s->fps, (long long)r->n_ch,
             r->n_ch == 1 ? "" : "s", (long long)r->total_rows, r->n_seg, r->n_seg == 1 ? "" : "s",
             r->s->overlap_mode == OVERLAP_LATENT ? "latent" : "pixel", r->out);
    if (!r->encoder && ((rc = encode_texts(r)) < 0 || (rc = encode_images(r)) < 0)) goto end;
    if ((rc = start_outputs(r, resume, resume ? &ck : NULL)) < 0) goto end;

    struct sigaction old[2];
    install_signals(old);
    int64_t rows_before = 0, start = resume ? ck.chunk : 0;
    for (int64_t c = 0; c < start; c++) rows_before += r->ch[c].pc->rows;
    progress_init(&r->prog, o->quiet || !r->lead, o->progress_json && r->lead, r->n_ch, r->total_rows, r->total_frames,
                  rows_before + (resume ? ck.next_row : 0), resume ? ck.frames_done : 0);
    if (o->progress_hook) progress_set_hook(&r->prog, o->progress_hook, o->progress_user);
    progress_event(&r->prog, "start", start, resume ? "resume" : "new");
    if (r->encoder) { /* the encoder rank: the film's frames, from what the lead sends */
        rc = resume ? restore_frames(r, &ck) : ERR_OK;
        for (int64_t i = 0; !resume && rc == ERR_OK && i < r->ext_t; i++) rc = emit_frame(r, r->ext + i * frame_floats(r));
        if (rc == ERR_OK) rc = enc_serve(r);
        if (rc == ERR_OK) render_spool_close(&r->frames, !o->keep_checkpoint);
        if (rc == ERR_INTERRUPTED) *exit_signal = SIGTERM;
        restore_signals(old);
        goto end;
    }
    if (resume) {
        rc = r->frames_here ? restore_frames(r, &ck) : ERR_OK;
        if (rc == ERR_OK && r->lead) rc = restore_decoder(r, &ck);
        if (rc == ERR_OK && ck.ring_frames > 0 && (ck.ring_height != r->H || ck.ring_width != r->W || ck.ring_frames > r->overlap))
            rc = err_set(ERR_FORMAT, "%s: the saved overlap frames do not fit the film", r->ckpt);
        for (int64_t i = 0; rc == ERR_OK && i < ck.ring_frames; i++) ring_push(r, ck.ring + i * frame_floats(r));
        if (rc == ERR_OK && ck.chunk < r->n_ch && ck.next_row == 0 && ck.prefix_frames) {
            r->prefix = ck.prefix, ck.prefix = NULL;
            r->prefix_frames = ck.prefix_frames;
        }
        if (rc == ERR_OK && ck.chunk < r->n_ch && ck.next_row > 0) { /* the prefix rides in the saved window */
            r->prefix_frames = r->ch[ck.chunk].pc->prefix_frames;
            r->prefix = r->prefix_frames ? calloc((size_t)(r->z * r->prefix_frames * r->lat_plane), sizeof(float)) : NULL;
            if (r->prefix_frames && !r->prefix) rc = err_set(ERR_NOMEM, "out of memory");
        }
        if (r->lead)
            LOG_INFO("render: resuming %s at chunk %lld/%lld row %lld (%lld frames done)", r->ckpt,
                 (long long)(ck.chunk + 1), (long long)r->n_ch, (long long)ck.next_row, (long long)ck.frames_done);
    } else {
        for (int64_t i = 0; r->frames_here && rc == ERR_OK && i < r->ext_t; i++)
            rc = emit_frame(r, r->ext + i * frame_floats(r));
        if (rc == ERR_OK) rc = share_prefix(r, 0);
        if (rc == ERR_OK) rc = save_checkpoint(r, 0, NULL);
    }
    for (int64_t c = start; rc == ERR_OK && c < r->n_ch; c++) {
        const bool resuming_here = resume && c == ck.chunk;
        rc = run_chunk(r, c, resuming_here ? &ck : NULL);
        if (rc == ERR_OK && c + 1 < r->n_ch) rc = share_prefix(r, c + 1);
        /* with an encoder rank the chunk-start checkpoint would wait for this chunk's decode: the chunk-end
         * one (its denoised window) already lets a resume redo only the decode */
        if (rc == ERR_OK && (r->encoder_rank < 0 || c + 1 == r->n_ch)) rc = save_checkpoint(r, c + 1, NULL);
        if (rc == ERR_OK) {
            progress_event(&r->prog, "chunk", c, NULL);
            test_point("chunk");
        }
        if (rc == ERR_OK && c + 1 < r->n_ch && stop_requested(r))
            rc = err_set(ERR_INTERRUPTED, "interrupted after chunk %lld", (long long)c);
    }
    if (rc == ERR_OK && r->lead && r->encoder_rank >= 0 && o->no_checkpoint) rc = enc_flush(r);
    if (rc == ERR_OK && r->lead) {
        const int64_t written = r->encoder_rank >= 0 ? r->enc_frames : r->frames.items;
        if (written != r->total_frames)
            rc = err_set(ERR_FORMAT, "internal: %lld frames written, the plan makes %lld", (long long)written,
                         (long long)r->total_frames);
    }
    if (rc == ERR_OK && r->lead) rc = finish_latents(r);
    if (rc == ERR_OK && r->lead && r->encoder_rank < 0) rc = finish_frames(r);
    if (rc == ERR_OK && r->lead && r->encoder_rank >= 0) {
        enc_send(r, ENC_FINISH, 0, NULL, 0);
        int64_t reply[3];
        comm_recv(r->par->mesh.world, reply, sizeof reply, r->encoder_rank, TAG_ENC_REPLY);
        if (reply[2] < 0) rc = err_set((int)reply[2], "the encoder rank could not finish %s (see its error)", r->out);
    }
    if (rc == ERR_INTERRUPTED && r->lead && r->encoder_rank >= 0) enc_send(r, ENC_STOP, 0, NULL, 0);
    progress_break(&r->prog);
    if (rc == ERR_INTERRUPTED) {
        *exit_signal = (int)g_stop_signal;
        progress_event(&r->prog, "interrupted", 0, r->ckpt);
        if (o->no_checkpoint)
            err_set(ERR_INTERRUPTED, "interrupted (%s); no checkpoint was kept (--no-checkpoint)",
                    strsignal((int)g_stop_signal));
        else
            err_set(ERR_INTERRUPTED, "interrupted (%s); progress saved in %s - continue with: reelfarm render --resume %s",
                    strsignal((int)g_stop_signal), r->ckpt, r->ckpt);
    }
    restore_signals(old);
    if (rc == ERR_OK && r->lead) {
        render_spool_close(&r->frames, !o->keep_checkpoint);
        render_spool_close(&r->latents, !o->keep_checkpoint);
        if (!o->keep_checkpoint) fs_remove_quiet(r->ckpt);
        const double total = r->t_text + r->t_dit + r->t_vae + r->t_io;
        LOG_INFO("render: wrote %s: %lld frames %lldx%lld in %.1f s (DiT %.1f s %.0f%%, VAE %.1f s %.0f%%, text %.1f s "
                 "%.0f%%, I/O %.1f s %.0f%%)",
                 r->out, (long long)r->total_frames, (long long)r->W, (long long)r->H, time_now() - r->prog.t_start,
                 r->t_dit, 100 * r->t_dit / (total > 0 ? total : 1), r->t_vae, 100 * r->t_vae / (total > 0 ? total : 1),
                 r->t_text, 100 * r->t_text / (total > 0 ? total : 1), r->t_io, 100 * r->t_io / (total > 0 ? total : 1));
        progress_event(&r->prog, "done", r->n_ch - 1, r->out);
    }
end:
    if (rc < 0 && rc != ERR_INTERRUPTED && r->writer) {
        /* keep the growing partial file for a resume; never put a half video at the output's name */
        video_writer_close(&r->writer, false);
    }
    if (rc < 0 && o->no_checkpoint) {
        render_spool_close(&r->frames, true);
        render_spool_close(&r->latents, true);
    }
    render_ckpt_free(&ck);
    render_free(r);
    render_models_free(&owned);
    return rc;
}

int worker_render(const struct render_options *o, int *exit_signal) {
    const struct render_models_options load = {.model_dir = o->settings->model, .threads = o->threads, .par = o->par,
                                               .guidance = o->settings->guidance > 1.0,
                                               .encoder_rank = o->encoder_rank};
    return render_job(o, NULL, &load, exit_signal);
}

int worker_render_with(struct render_models *m, const struct render_options *o, int *exit_signal) {
    return render_job(o, m, NULL, exit_signal);
}

int worker_render_checkpoint_settings(const char *checkpoint, struct render_settings *s, char **noise_path,
                                      char **latents_out) {
    struct render_ckpt c;
    TRY(render_ckpt_read(checkpoint, &c));
    char name[PATH_MAX + 32];
    snprintf(name, sizeof name, "%s (saved settings)", checkpoint);
    int rc = film_load_text(name, c.settings_json, s);
    if (rc == ERR_OK && !*noise_path && c.noise_path[0] && !(*noise_path = strdup(c.noise_path)))
        rc = err_set(ERR_NOMEM, "out of memory");
    if (rc == ERR_OK && !*latents_out && c.latents_out[0] && !(*latents_out = strdup(c.latents_out)))
        rc = err_set(ERR_NOMEM, "out of memory");
    render_ckpt_free(&c);
    return rc;
}

int worker_builtin_model(char *out, size_t cap) {
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[PATH_MAX];
    if (cache && *cache)
        snprintf(base, sizeof base, "%s/reelfarm", cache);
    else if (home && *home)
        snprintf(base, sizeof base, "%s/.cache/reelfarm", home);
    else
        snprintf(base, sizeof base, "/tmp/reelfarm-cache");
    if ((size_t)snprintf(out, cap, "%s/tiny-model-%s", base, REELFARM_VERSION) >= cap)
        return err_set(ERR_INVALID_ARG, "cache path too long: %s", base);
    char marker[PATH_MAX + 32];
    snprintf(marker, sizeof marker, "%s/.complete", out);
    if (fs_exists(marker)) return ERR_OK;
    /* build it in a private folder and rename it into place: two first uses at once both succeed */
    TRY(fs_mkdir_p(base));
    char tmp[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
    fs_remove_tree_quiet(tmp);
    struct wan_tiny_options opt;
    wan_tiny_default_options(&opt);
    opt.fps_embedding = true;
    int rc = wan_tiny_write(tmp, &opt);
    char tmp_marker[PATH_MAX + 96];
    snprintf(tmp_marker, sizeof tmp_marker, "%s/.complete", tmp);
    static const char note[] = "reelfarm built-in tiny model (random weights)\n";
    if (rc == ERR_OK) rc = fs_write_file(tmp_marker, note, sizeof note - 1, true);
    if (rc == ERR_OK && rename(tmp, out) != 0 && !fs_exists(marker))
        rc = err_set(ERR_IO, "%s: cannot create the built-in model: %s", out, strerror(errno));
    fs_remove_tree_quiet(tmp);
    if (rc == ERR_OK) LOG_INFO("render: created the built-in tiny model in %s", out);
    return rc;
}
