/* tests/common/golden_models.h - rebuilding the tiny model a golden file was computed with.
 *
 * Golden files name their model by the make-tiny-model flags (attribute model_args) and record a
 * fingerprint of its weights (model_weight_sum / _sumsq / _count as strings). These helpers write that
 * model into a temporary directory, load it, and check the fingerprint, so a changed tiny-model
 * generator is reported as such (with the command that regenerates the goldens) and not as a
 * numerical failure.
 */
#ifndef REELFARM_TESTS_GOLDEN_MODELS_H
#define REELFARM_TESTS_GOLDEN_MODELS_H

#include <stdbool.h>

#include "io/h5io.h"
#include "model/wan_dit.h"
#include "model/wan_tiny.h"

/* Parse "--seed 7 --fps-embedding --i2v --dtype bf16" into options (example input off). */
int golden_model_options(const char *args, struct wan_tiny_options *o);
/* Write the model of args into a fresh directory under tmp and load it (fatal test failure if impossible).
 * variant: NULL, "original" (original naming in 3 shards) or "sharded" (Diffusers naming in 2 shards). */
struct wan_model *golden_model_load(const char *tmp, const char *args, const char *variant);
/* Compare the loaded weights with the fingerprint attributes of golden file f; prints a hint on mismatch. */
bool golden_model_matches(struct wan_model *m, const struct h5_file *f, const char *what);

/* A DiT golden file (tests/golden/<case>.h5, written by scripts/make-goldens.sh): the forward's inputs and
 * PyTorch's noise_pred. */
struct dit_golden {
    char path[1300];
    char name[128];       /* attribute case */
    char model_args[256]; /* make-tiny-model flags of its model */
    struct wan_dit_input in;
    struct tensor ref;    /* noise_pred */
};
/* Read path (format and version checked); dit_golden_free releases it (also after an error). */
int dit_golden_read(const char *path, struct dit_golden *g);
void dit_golden_free(struct dit_golden *g);

struct st_set;
/* Compare the weights of st (all tensors, as f32) with the golden's <attr_prefix>_sum / _sumsq / _count
 * attributes; on mismatch the failure names regen_script. */
bool golden_st_matches(const struct st_set *st, const struct h5_file *f, const char *attr_prefix, const char *what,
                       const char *regen_script);
#endif /* REELFARM_TESTS_GOLDEN_MODELS_H */
