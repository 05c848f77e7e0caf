/* model/wan_weights.h - the DiT's tensors: one table, both checkpoint namings (spec 2.3).
 *
 * Each row of the X-macro lists holds: struct field, Diffusers name, original SkyReels/Wan name,
 * presence condition, rank and shape (expressions of the config `c`). The same rows generate the
 * weight structs, the strict loader (missing, unexpected and misshaped tensors are errors naming
 * the tensor, the file, the expected and the found shape) and the tiny-model writer, so there is
 * one source of truth and no renaming layer. Block rows are prefixed with "blocks.<i>.".
 */
#ifndef REELFARM_MODEL_WAN_WEIGHTS_H
#define REELFARM_MODEL_WAN_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "model/wan_config.h"
#include "model/weight_table.h"

/* Presence conditions. */
#define WAN_ALWAYS(c) true
#define WAN_FPS(c) ((c)->inject_sample_info)
#define WAN_IMG(c) ((c)->has_image)
#define WAN_POS(c) ((c)->has_image && (c)->pos_embed_seq_len > 0)
#define WAN_CAN(c) ((c)->cross_attn_norm)

#define WAN_PATCH_OUT(c) ((c)->out_channels * (c)->patch[0] * (c)->patch[1] * (c)->patch[2])

/* X(field, diffusers_name, original_name, present, ndim, d0, d1, d2, d3, d4) */
#define WAN_GLOBAL_TENSORS(X)                                                                                    \
    X(patch_w, "patch_embedding.weight", "patch_embedding.weight", WAN_ALWAYS, 5, c->dim, c->in_channels,       \
      c->patch[0], c->patch[1], c->patch[2])                                                                     \
    X(patch_b, "patch_embedding.bias", "patch_embedding.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)               \
    X(text1_w, "condition_embedder.text_embedder.linear_1.weight", "text_embedding.0.weight", WAN_ALWAYS, 2,      \
      c->dim, c->text_dim, 0, 0, 0)                                                                              \
    X(text1_b, "condition_embedder.text_embedder.linear_1.bias", "text_embedding.0.bias", WAN_ALWAYS, 1, c->dim,  \
      0, 0, 0, 0)                                                                                                \
    X(text2_w, "condition_embedder.text_embedder.linear_2.weight", "text_embedding.2.weight", WAN_ALWAYS, 2,      \
      c->dim, c->dim, 0, 0, 0)                                                                                   \
    X(text2_b, "condition_embedder.text_embedder.linear_2.bias", "text_embedding.2.bias", WAN_ALWAYS, 1, c->dim,  \
      0, 0, 0, 0)                                                                                                \
    X(time1_w, "condition_embedder.time_embedder.linear_1.weight", "time_embedding.0.weight", WAN_ALWAYS, 2,      \
      c->dim, c->freq_dim, 0, 0, 0)                                                                              \
    X(time1_b, "condition_embedder.time_embedder.linear_1.bias", "time_embedding.0.bias", WAN_ALWAYS, 1, c->dim,  \
      0, 0, 0, 0)                                                                                                \
    X(time2_w, "condition_embedder.time_embedder.linear_2.weight", "time_embedding.2.weight", WAN_ALWAYS, 2,      \
      c->dim, c->dim, 0, 0, 0)                                                                                   \
    X(time2_b, "condition_embedder.time_embedder.linear_2.bias", "time_embedding.2.bias", WAN_ALWAYS, 1, c->dim,  \
      0, 0, 0, 0)                                                                                                \
    X(tproj_w, "condition_embedder.time_proj.weight", "time_projection.1.weight", WAN_ALWAYS, 2, 6 * c->dim,      \
      c->dim, 0, 0, 0)                                                                                           \
    X(tproj_b, "condition_embedder.time_proj.bias", "time_projection.1.bias", WAN_ALWAYS, 1, 6 * c->dim, 0, 0, 0, \
      0)                                                                                                         \
    X(fps_emb, "fps_embedding.weight", "fps_embedding.weight", WAN_FPS, 2, 2, c->dim, 0, 0, 0)                   \
    X(fps1_w, "fps_projection.net.0.proj.weight", "fps_projection.0.weight", WAN_FPS, 2, c->dim, c->dim, 0, 0, 0) \
    X(fps1_b, "fps_projection.net.0.proj.bias", "fps_projection.0.bias", WAN_FPS, 1, c->dim, 0, 0, 0, 0)          \
    X(fps2_w, "fps_projection.net.2.weight", "fps_projection.2.weight", WAN_FPS, 2, 6 * c->dim, c->dim, 0, 0, 0)  \
    X(fps2_b, "fps_projection.net.2.bias", "fps_projection.2.bias", WAN_FPS, 1, 6 * c->dim, 0, 0, 0, 0)           \
    X(head_mod, "scale_shift_table", "head.modulation", WAN_ALWAYS, 3, 1, 2, c->dim, 0, 0)                       \
    X(head_w, "proj_out.weight", "head.head.weight", WAN_ALWAYS, 2, WAN_PATCH_OUT(c), c->dim, 0, 0, 0)            \
    X(head_b, "proj_out.bias", "head.head.bias", WAN_ALWAYS, 1, WAN_PATCH_OUT(c), 0, 0, 0, 0)                    \
    X(img_n1_w, "condition_embedder.image_embedder.norm1.weight", "img_emb.proj.0.weight", WAN_IMG, 1,           \
      c->image_dim, 0, 0, 0, 0)                                                                                  \
    X(img_n1_b, "condition_embedder.image_embedder.norm1.bias", "img_emb.proj.0.bias", WAN_IMG, 1, c->image_dim,  \
      0, 0, 0, 0)                                                                                                \
    X(img_ff1_w, "condition_embedder.image_embedder.ff.net.0.proj.weight", "img_emb.proj.1.weight", WAN_IMG, 2,  \
      c->image_dim, c->image_dim, 0, 0, 0)                                                                       \
    X(img_ff1_b, "condition_embedder.image_embedder.ff.net.0.proj.bias", "img_emb.proj.1.bias", WAN_IMG, 1,      \
      c->image_dim, 0, 0, 0, 0)                                                                                  \
    X(img_ff2_w, "condition_embedder.image_embedder.ff.net.2.weight", "img_emb.proj.3.weight", WAN_IMG, 2,       \
      c->dim, c->image_dim, 0, 0, 0)                                                                             \
    X(img_ff2_b, "condition_embedder.image_embedder.ff.net.2.bias", "img_emb.proj.3.bias", WAN_IMG, 1, c->dim, 0, \
      0, 0, 0)                                                                                                   \
    X(img_n2_w, "condition_embedder.image_embedder.norm2.weight", "img_emb.proj.4.weight", WAN_IMG, 1, c->dim, 0, \
      0, 0, 0)                                                                                                   \
    X(img_n2_b, "condition_embedder.image_embedder.norm2.bias", "img_emb.proj.4.bias", WAN_IMG, 1, c->dim, 0, 0,  \
      0, 0)                                                                                                      \
    X(img_pos, "condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos", WAN_POS, 3, 1,                  \
      c->pos_embed_seq_len, c->image_dim, 0, 0)

#define WAN_BLOCK_TENSORS(X)                                                                                     \
    X(modulation, "scale_shift_table", "modulation", WAN_ALWAYS, 3, 1, 6, c->dim, 0, 0)                          \
    X(sa_q_w, "attn1.to_q.weight", "self_attn.q.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)                 \
    X(sa_q_b, "attn1.to_q.bias", "self_attn.q.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                          \
    X(sa_k_w, "attn1.to_k.weight", "self_attn.k.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)                 \
    X(sa_k_b, "attn1.to_k.bias", "self_attn.k.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                          \
    X(sa_v_w, "attn1.to_v.weight", "self_attn.v.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)                 \
    X(sa_v_b, "attn1.to_v.bias", "self_attn.v.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                          \
    X(sa_o_w, "attn1.to_out.0.weight", "self_attn.o.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)             \
    X(sa_o_b, "attn1.to_out.0.bias", "self_attn.o.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                      \
    X(sa_norm_q, "attn1.norm_q.weight", "self_attn.norm_q.weight", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)            \
    X(sa_norm_k, "attn1.norm_k.weight", "self_attn.norm_k.weight", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)            \
    X(ca_norm_w, "norm2.weight", "norm3.weight", WAN_CAN, 1, c->dim, 0, 0, 0, 0)                                 \
    X(ca_norm_b, "norm2.bias", "norm3.bias", WAN_CAN, 1, c->dim, 0, 0, 0, 0)                                     \
    X(ca_q_w, "attn2.to_q.weight", "cross_attn.q.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)                \
    X(ca_q_b, "attn2.to_q.bias", "cross_attn.q.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                         \
    X(ca_k_w, "attn2.to_k.weight", "cross_attn.k.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)                \
    X(ca_k_b, "attn2.to_k.bias", "cross_attn.k.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                         \
    X(ca_v_w, "attn2.to_v.weight", "cross_attn.v.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)                \
    X(ca_v_b, "attn2.to_v.bias", "cross_attn.v.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                         \
    X(ca_o_w, "attn2.to_out.0.weight", "cross_attn.o.weight", WAN_ALWAYS, 2, c->dim, c->dim, 0, 0, 0)            \
    X(ca_o_b, "attn2.to_out.0.bias", "cross_attn.o.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)                     \
    X(ca_norm_q, "attn2.norm_q.weight", "cross_attn.norm_q.weight", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)           \
    X(ca_norm_k, "attn2.norm_k.weight", "cross_attn.norm_k.weight", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)           \
    X(ca_img_k_w, "attn2.add_k_proj.weight", "cross_attn.k_img.weight", WAN_IMG, 2, c->dim, c->dim, 0, 0, 0)     \
    X(ca_img_k_b, "attn2.add_k_proj.bias", "cross_attn.k_img.bias", WAN_IMG, 1, c->dim, 0, 0, 0, 0)              \
    X(ca_img_v_w, "attn2.add_v_proj.weight", "cross_attn.v_img.weight", WAN_IMG, 2, c->dim, c->dim, 0, 0, 0)     \
    X(ca_img_v_b, "attn2.add_v_proj.bias", "cross_attn.v_img.bias", WAN_IMG, 1, c->dim, 0, 0, 0, 0)              \
    X(ca_img_norm_k, "attn2.norm_added_k.weight", "cross_attn.norm_k_img.weight", WAN_IMG, 1, c->dim, 0, 0, 0, 0) \
    X(ffn1_w, "ffn.net.0.proj.weight", "ffn.0.weight", WAN_ALWAYS, 2, c->ffn_dim, c->dim, 0, 0, 0)               \
    X(ffn1_b, "ffn.net.0.proj.bias", "ffn.0.bias", WAN_ALWAYS, 1, c->ffn_dim, 0, 0, 0, 0)                        \
    X(ffn2_w, "ffn.net.2.weight", "ffn.2.weight", WAN_ALWAYS, 2, c->dim, c->ffn_dim, 0, 0, 0)                    \
    X(ffn2_b, "ffn.net.2.bias", "ffn.2.bias", WAN_ALWAYS, 1, c->dim, 0, 0, 0, 0)

#define WAN_FIELD(field, dname, oname, present, ndim, d0, d1, d2, d3, d4) struct tensor field;

/* Tensors of one transformer block (absent optional ones have data == NULL). */
struct wan_block_weights {
    WAN_BLOCK_TENSORS(WAN_FIELD)
};

struct wan_weights {
    WAN_GLOBAL_TENSORS(WAN_FIELD)
    struct wan_block_weights *blocks; /* [num_layers] */
};

#undef WAN_FIELD

/* Indices into weight_decl.name. */
enum wan_naming { WAN_NAMING_DIFFUSERS = 0, WAN_NAMING_ORIGINAL = 1 };

/* Every tensor the config declares (only those present for it), in table order; the slots point
 * into w (whose blocks array must have num_layers entries). Caller frees *decls. */
int wan_weights_declare(const struct wan_config *c, struct wan_weights *w, struct weight_decl **decls,
                        size_t *count);

#endif /* REELFARM_MODEL_WAN_WEIGHTS_H */
