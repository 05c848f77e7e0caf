/* tests/model/test_vae_golden.c - the Wan VAE against the independent float64 reference
 * (tests/reference/wan_vae_ref.py, written from spec 7; goldens by scripts/make-goldens-vae.sh).
 *
 * For every vae_<case>.h5: rebuild the tiny model of model_args, check the VAE weights' fingerprint, push the
 * golden input through a stream frame by frame and compare the output with the reference's (computed with
 * upstream's chunked 1 + 4 + 4 ... encode / one-latent-at-a-time decode, which the reference's selftest shows
 * equal to its whole-sequence statement to ~1e-14). Acceptance rule of the VAE issue: rel L2 <= 1e-5 and
 * max |err| <= 1e-4 max |ref|. Cases with probes also compare every layer's output over the whole clip
 * (probe.<Diffusers module name>) with the same rule, so a wrong layer is named. The same model written in the
 * original names (Wan2.1_VAE.safetensors) gives bit-identical frames. Negative control: one input latent
 * perturbed by 0.01 must fail the tolerance.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fs.h"
#include "io/h5io.h"
#include "io/safetensors.h"
#include "model/wan_tiny.h"
#include "model/wan_vae.h"
#include "tests/common/compare.h"
#include "tests/common/golden_models.h"
#include "tests/common/test_util.h"

/* One recorded layer output assembled over time: [C, T, H, W]. */
struct probe_buf {
    char name[80];
    float *data;
    int64_t c, t, h, w;
    int64_t seen;
};

struct run {
    float *out;            /* [C, T, H, W] */
    int64_t c, t, h, w, n;
    struct probe_buf *probes;
    int n_probes;
};

static int sink(void *user, int64_t index, const struct tensor *f) {
    struct run *r = user;
    if (index < r->t) {
        const int64_t plane = r->h * r->w;
        for (int64_t c = 0; c < r->c; c++)
            memcpy(r->out + (c * r->t + index) * plane, (const float *)f->data + c * plane, (size_t)plane * sizeof(float));
    }
    r->n = index + 1;
    return 0;
}

static void probe(void *user, const char *layer, int64_t index, const struct tensor *f) {
    struct run *r = user;
    for (int i = 0; i < r->n_probes; i++) {
        struct probe_buf *p = &r->probes[i];
        if (strcmp(p->name, layer) != 0) continue;
        const int64_t plane = p->h * p->w;
        if (index < p->t && f->shape[0] == p->c && f->shape[1] == p->h && f->shape[2] == p->w)
            for (int64_t c = 0; c < p->c; c++)
                memcpy(p->data + (c * p->t + index) * plane, (const float *)f->data + c * plane,
                       (size_t)plane * sizeof(float));
        p->seen++;
    }
}

/* The VAE file's weights against the golden's fingerprint. */
static void fingerprint_matches(const char *model_dir, const struct h5_file *f, const char *what) {
    char path[1300];
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", model_dir);
    struct st_set *st = NULL;
    T_REQUIRE(st_open(&st, path) == ERR_OK, "%s", err_message());
    golden_st_matches(st, f, "model_weight", what, "scripts/make-goldens-vae.sh");
    st_close(&st);
}

/* Push input [C, T, H, W] frame by frame through a stream of v. */
static void run_stream(const struct wan_vae *v, bool decoder, const struct tensor *in, struct run *r) {
    struct exec_ctx ctx = exec_ctx_cpu(0);
    const int64_t c = in->shape[0], t = in->shape[1], h = in->shape[2], w = in->shape[3];
    const int sf = wan_vae_spatial_factor(&v->cfg);
    struct vae_stream *s = NULL;
    T_REQUIRE(wan_vae_stream_open(&s, v, &ctx, decoder, decoder ? h * sf : h, decoder ? w * sf : w, DTYPE_F32, sink,
                                  r) == ERR_OK,
              "%s", err_message());
    if (r->n_probes) wan_vae_stream_set_probe(s, probe, r);
    float *frame = malloc((size_t)(c * h * w) * sizeof(float));
    const float *d = in->data;
    for (int64_t ti = 0; ti < t; ti++) {
        for (int64_t ch = 0; ch < c; ch++) memcpy(frame + ch * h * w, d + (ch * t + ti) * h * w, (size_t)(h * w) * sizeof(float));
        struct tensor ft = tensor_f32_3d(frame, c, h, w);
        T_REQUIRE(wan_vae_stream_push(s, &ft) == 0, "push");
    }
    free(frame);
    wan_vae_stream_close(&s);
}

static struct cmp_tol acceptance(const float *ref, int64_t n) {
    double mx = 0;
    for (int64_t k = 0; k < n; k++) mx = fmax(mx, fabs(ref[k]));
    const struct cmp_tol tol = {.atol = 1e-4 * mx, .rtol = 0, .nmse_max = 1e-10}; /* rel L2 <= 1e-5 */
    return tol;
}

static bool compare(const char *what, const float *out, const float *ref, int64_t n) {
    struct cmp_result r = cmp_f32(out, ref, n, acceptance(ref, n));
    cmp_print(what, &r, out, ref);
    T_CHECK(r.pass, "%s: rel_l2 %.3g, max_abs %.3g", what, r.rel_l2, r.max_abs_err);
    return r.pass;
}

static int n_cases, n_probe_layers;
static bool did_controls;

static void check_case(const char *path, const char *tmp) {
    struct h5_file *f = NULL;
    T_REQUIRE(h5_open_read(&f, path) == ERR_OK, "%s", err_message());
    char name[128], args[256], op[32];
    T_REQUIRE(h5_attr_get_str(f, "case", name, sizeof name) == ERR_OK &&
                  h5_attr_get_str(f, "model_args", args, sizeof args) == ERR_OK &&
                  h5_attr_get_str(f, "operation", op, sizeof op) == ERR_OK,
              "%s: %s", path, err_message());
    const bool decoder = strcmp(op, "decode") == 0;
    struct tensor in, ref;
    T_REQUIRE(h5_read_f32(f, decoder ? "latents" : "video", &in) == ERR_OK &&
                  h5_read_f32(f, decoder ? "video" : "latents", &ref) == ERR_OK,
              "%s: %s", path, err_message());
    struct wan_tiny_options o;
    T_REQUIRE(golden_model_options(args, &o) == 0, "model_args '%s'", args);
    char mdir[1200];
    snprintf(mdir, sizeof mdir, "%s/%s", tmp, name);
    T_REQUIRE(wan_tiny_write(mdir, &o) == ERR_OK, "%s", err_message());
    fingerprint_matches(mdir, f, name);
    struct wan_vae *v = NULL;
    T_REQUIRE(wan_vae_load(&v, mdir) == ERR_OK, "%s", err_message());

    /* probes listed in the golden */
    struct h5_entry *entries = NULL;
    size_t ne = 0;
    T_REQUIRE(h5_list(f, &entries, &ne) == ERR_OK, "%s", err_message());
    struct run r = {.c = ref.shape[0], .t = ref.shape[1], .h = ref.shape[2], .w = ref.shape[3]};
    r.out = guard_alloc(tensor_numel(&ref));
    r.probes = calloc(ne ? ne : 1, sizeof *r.probes);
    for (size_t i = 0; i < ne; i++) {
        if (entries[i].is_attribute || strncmp(entries[i].name, "probe.", 6) != 0 || entries[i].ndim != 4) continue;
        struct probe_buf *p = &r.probes[r.n_probes++];
        snprintf(p->name, sizeof p->name, "%s", entries[i].name + 6);
        p->c = entries[i].shape[0], p->t = entries[i].shape[1], p->h = entries[i].shape[2], p->w = entries[i].shape[3];
        p->data = calloc((size_t)(p->c * p->t * p->h * p->w), sizeof(float));
    }
    run_stream(v, decoder, &in, &r);
    T_CHECK(r.n == r.t, "%s: produced %lld frames, the reference %lld", name, (long long)r.n, (long long)r.t);
    char what[256];
    snprintf(what, sizeof what, "vae %-18s %s [%lld, %lld, %lld, %lld]", name, op, (long long)r.c, (long long)r.t,
             (long long)r.h, (long long)r.w);
    compare(what, r.out, ref.data, tensor_numel(&ref));
    T_CHECK(guard_intact(r.out, tensor_numel(&ref)), "%s: guard band", name);
    for (int i = 0; i < r.n_probes; i++) {
        struct probe_buf *p = &r.probes[i];
        struct tensor pr;
        char dname[128];
        snprintf(dname, sizeof dname, "probe.%s", p->name);
        T_REQUIRE(h5_read_f32(f, dname, &pr) == ERR_OK, "%s", err_message());
        T_CHECK(p->seen == p->t, "%s: layer %s produced %lld frames, the reference %lld", name, p->name,
                (long long)p->seen, (long long)p->t);
        snprintf(what, sizeof what, "  layer %s", p->name);
        compare(what, p->data, pr.data, tensor_numel(&pr));
        n_probe_layers++;
        free(pr.data), free(p->data);
    }

    /* the original naming of the same weights: bit-identical frames */
    if (!strcmp(name, "decode_f3") || !strcmp(name, "encode_t9")) {
        struct wan_tiny_options oo = o;
        oo.naming = WAN_NAMING_ORIGINAL;
        char odir[1300];
        snprintf(odir, sizeof odir, "%s_original", mdir);
        T_REQUIRE(wan_tiny_write(odir, &oo) == ERR_OK, "%s", err_message());
        struct wan_vae *vo = NULL;
        T_REQUIRE(wan_vae_load(&vo, odir) == ERR_OK, "%s", err_message());
        T_CHECK(vo->original_naming && !v->original_naming, "%s: naming detection", name);
        struct run ro = r;
        ro.out = malloc((size_t)tensor_numel(&ref) * sizeof(float)), ro.n_probes = 0, ro.n = 0;
        run_stream(vo, decoder, &in, &ro);
        T_CHECK(memcmp(ro.out, r.out, (size_t)tensor_numel(&ref) * sizeof(float)) == 0,
                "%s: original naming (Wan2.1_VAE.safetensors) differs from the Diffusers layout", name);
        printf("%s: original naming gives bit-identical output\n", name);
        free(ro.out);
        wan_vae_free(&vo);
    }

    /* negative controls on a multi-frame decode */
    if (decoder && !did_controls && in.shape[1] >= 3) {
        struct run rb = r;
        rb.out = malloc((size_t)tensor_numel(&ref) * sizeof(float)), rb.n_probes = 0;
        float *d = in.data;
        const float keep = d[7];
        d[7] += 0.01f;
        run_stream(v, decoder, &in, &rb);
        d[7] = keep;
        struct cmp_result c1 = cmp_f32(rb.out, ref.data, tensor_numel(&ref), acceptance(ref.data, tensor_numel(&ref)));
        printf("negative control (one latent value +0.01): rel_l2 %.3g -> %s\n", c1.rel_l2, c1.pass ? "NOT caught" : "caught");
        T_CHECK(!c1.pass, "a perturbed latent still passes");
        free(rb.out);
        did_controls = true;
    }
    n_cases++;
    h5_close(&f);
    free(entries), free(r.probes), free(in.data), free(ref.data);
    guard_free(r.out);
    wan_vae_free(&v);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "tests/golden";
    char **names = NULL;
    size_t n = 0;
    T_REQUIRE(fs_list_dir(dir, ".h5", &names, &n) == ERR_OK, "%s: %s", dir, err_message());
    const char *tmp = t_tmpdir("vaegolden");
    for (size_t i = 0; i < n; i++) {
        if (strncmp(names[i], "vae_", 4) != 0) continue;
        char path[1300];
        fs_join(path, sizeof path, dir, names[i]);
        check_case(path, tmp);
    }
    T_CHECK(n_cases >= 9, "expected 9 VAE goldens in %s, found %d (scripts/make-goldens-vae.sh)", dir, n_cases);
    T_CHECK(n_probe_layers >= 38, "expected the 21 decoder and 17 encoder layer probes, compared %d", n_probe_layers);
    T_CHECK(did_controls, "no multi-frame decode case for the negative control");
    fs_free_list(&names, &n);
    t_rmtree(tmp);
    return t_summary(__FILE__);
}
