#!/usr/bin/env python3
# tests/reference/umt5_ref.py - independent reference of the SkyReels-V2 text encoder (umT5-XXL encoder).
#
# Test tooling only (never part of the product): writes golden tensors for the C tests. Written from
# shared/reference/skyreels-v2-spec.md, not from upstream code:
#   2.2  text_encoder/config.json keys and the Diffusers directory layout (text_encoder/, tokenizer/),
#   2.5  tensor names and shapes (transformers UMT5EncoderModel naming),
#   6.1  the default negative prompt (DEFAULT_NEGATIVE_PROMPT below, byte for byte),
#   8.1  configuration, 8.2 cleaning, tokenisation and text_len handling, 8.3 forward pass and relative
#        position buckets, 8.4 output handling (padding rows set to exactly 0).
# The maths is evaluated in float64 (default) or float32. Deliberately NOT reproduced: ftfy.fix_text (spec 8.2;
# ftfy is not available and the C side does not reproduce it either) and the bf16 rounding points of spec 8.5.
# Needs torch, numpy, h5py and sentencepiece; run with Debian's /usr/bin/python3.
#
# Subcommands: encode, tokenize, fingerprint, default-negative-prompt, make-model (tiny random encoder +
# tokenizer), selftest.
# See README-text.md next to this file.

import argparse
import glob
import hashlib
import html
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_dit_ref as wdr  # noqa: E402  (shared safetensors helpers)

GENERATOR = "tests/reference/umt5_ref.py"
GOLDEN_FORMAT = "reelfarm-golden-text"
GOLDEN_FORMAT_VERSION = 1
PAD_ID = 0                      # spec 8.2
EOS_ID = 1
UNBOUNDED_MAX_LENGTH = 1 << 30  # tokenizer_config model_max_length above this means "no bound"
DEFAULT_TEXT_LEN = 512          # spec 1 / 8.2: text_len of every released model
RESERVED_ATTRS = ("reelfarm_format", "reelfarm_format_version", "generator", "reference_dtype", "prompt",
                  "negative_prompt", "text_len", "truncated", "negative_truncated")

# spec 6.1: the default negative prompt of generate_video_df.py (Wan's standard Chinese negative prompt).
DEFAULT_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
# spec 6.1: the English equivalent used by generate_video.py (T2V/I2V).
DEFAULT_NEGATIVE_PROMPT_EN = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards")


RefError = wdr.RefError  # one error type across the reference scripts


def log(msg):
    print("umt5_ref: " + msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------
# safetensors (8-byte little-endian header length, JSON header, raw little-endian data)
# ----------------------------------------------------------------------------------------------------------

# safetensors reading and writing are shared with the DiT reference (one parser, not two)
SafeTensors = wdr.SafeTensorsFile
bf16_bits = wdr.bf16_round
write_safetensors = wdr.write_safetensors


# ----------------------------------------------------------------------------------------------------------
# Configuration (spec 2.2, 8.1) and parameter table (spec 2.5)
# ----------------------------------------------------------------------------------------------------------

def _req(c, key, where):
    if key not in c:
        raise RefError("%s: missing key '%s'" % (where, key))
    return c[key]


def parse_config(c, where="config.json"):
    ffp = c.get("feed_forward_proj", "gated-gelu")
    if ffp != "gated-gelu":
        raise RefError("%s: feed_forward_proj %r unsupported (only gated-gelu, spec 8.1)" % (where, ffp))
    act = c.get("dense_act_fn", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise RefError("%s: dense_act_fn %r unsupported (only the tanh GELU gelu_new)" % (where, act))
    if c.get("is_gated_act", True) is not True:
        raise RefError("%s: is_gated_act must be true" % where)
    cfg = {
        "d_model": int(_req(c, "d_model", where)),
        "d_ff": int(_req(c, "d_ff", where)),
        "d_kv": int(_req(c, "d_kv", where)),
        "heads": int(_req(c, "num_heads", where)),
        "layers": int(_req(c, "num_layers", where)),
        "vocab": int(_req(c, "vocab_size", where)),
        "num_buckets": int(c.get("relative_attention_num_buckets", 32)),
        "max_distance": int(c.get("relative_attention_max_distance", 128)),
        "eps": float(c.get("layer_norm_epsilon", 1e-6)),
        "pad_id": int(c.get("pad_token_id", PAD_ID)),
        "eos_id": int(c.get("eos_token_id", EOS_ID)),
    }
    if cfg["num_buckets"] < 4 or cfg["num_buckets"] % 4:
        raise RefError("%s: relative_attention_num_buckets must be a multiple of 4" % where)
    if cfg["max_distance"] <= cfg["num_buckets"] // 4:
        raise RefError("%s: relative_attention_max_distance too small" % where)
    if (cfg["pad_id"], cfg["eos_id"]) != (PAD_ID, EOS_ID):
        raise RefError("%s: pad/eos ids %d/%d, expected 0/1 (spec 8.2)" % (where, cfg["pad_id"], cfg["eos_id"]))
    for k in ("d_model", "d_ff", "d_kv", "heads", "layers", "vocab"):
        if cfg[k] < 1:
            raise RefError("%s: %s must be positive" % (where, k))
    return cfg


def config_json(cfg):
    """transformers UMT5Config keys for cfg (the tiny models written by make-model / selftest)."""
    return {
        "architectures": ["UMT5EncoderModel"], "model_type": "umt5",
        "d_model": cfg["d_model"], "d_ff": cfg["d_ff"], "d_kv": cfg["d_kv"], "num_heads": cfg["heads"],
        "num_layers": cfg["layers"], "num_decoder_layers": cfg["layers"], "vocab_size": cfg["vocab"],
        "relative_attention_num_buckets": cfg["num_buckets"],
        "relative_attention_max_distance": cfg["max_distance"], "layer_norm_epsilon": cfg["eps"],
        "feed_forward_proj": "gated-gelu", "dense_act_fn": "gelu_new", "is_gated_act": True,
        "dropout_rate": 0.1, "pad_token_id": PAD_ID, "eos_token_id": EOS_ID, "decoder_start_token_id": 0,
        "scalable_attention": True, "tie_word_embeddings": False,
    }


EMBED_NAMES = ("shared.weight", "encoder.embed_tokens.weight")


def param_table(cfg):
    """(internal name, transformers name, stored shape). The embedding is listed under shared.weight; a
    checkpoint may carry it as encoder.embed_tokens.weight instead (or both, which must then be equal)."""
    D, F, inner, H = cfg["d_model"], cfg["d_ff"], cfg["heads"] * cfg["d_kv"], cfg["heads"]
    rows = [("emb", "shared.weight", [cfg["vocab"], D])]
    for i in range(cfg["layers"]):
        a = "encoder.block.%d.layer.0." % i
        f = "encoder.block.%d.layer.1." % i
        n = "l%d." % i
        rows += [
            (n + "ln1", a + "layer_norm.weight", [D]),
            (n + "q", a + "SelfAttention.q.weight", [inner, D]),
            (n + "k", a + "SelfAttention.k.weight", [inner, D]),
            (n + "v", a + "SelfAttention.v.weight", [inner, D]),
            (n + "o", a + "SelfAttention.o.weight", [D, inner]),
            (n + "rel", a + "SelfAttention.relative_attention_bias.weight", [cfg["num_buckets"], H]),
            (n + "ln2", f + "layer_norm.weight", [D]),
            (n + "wi0", f + "DenseReluDense.wi_0.weight", [F, D]),
            (n + "wi1", f + "DenseReluDense.wi_1.weight", [F, D]),
            (n + "wo", f + "DenseReluDense.wo.weight", [D, F]),
        ]
    rows.append(("final_ln", "encoder.final_layer_norm.weight", [D]))
    return rows


def weight_files(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if not os.path.isfile(idx):
        cands = sorted(glob.glob(os.path.join(d, "*.safetensors.index.json")))
        if len(cands) > 1:
            raise RefError("%s: several *.safetensors.index.json files" % d)
        idx = cands[0] if cands else None
    if idx is not None:
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(d, s) for s in sorted(set(wm.values()))]
    single = os.path.join(d, "model.safetensors")
    if os.path.isfile(single):
        return [single]
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    if not files:
        raise RefError("%s: no *.safetensors files" % d)
    return files


def model_paths(model_dir):
    """(text_encoder dir, tokenizer dir) of a Diffusers-layout root DIR."""
    te, tok = os.path.join(model_dir, "text_encoder"), os.path.join(model_dir, "tokenizer")
    if not os.path.isfile(os.path.join(te, "config.json")):
        raise RefError("%s: text_encoder/config.json not found" % model_dir)
    if not os.path.isfile(os.path.join(tok, "spiece.model")):
        raise RefError("%s: tokenizer/spiece.model not found" % model_dir)
    return te, tok


def load_encoder(model_dir, dtype=torch.float64):
    """Returns (cfg, params {internal: tensor of dtype}). params values are the stored values exactly."""
    te, _ = model_paths(model_dir)
    where = os.path.join(te, "config.json")
    with open(where) as f:
        cfg = parse_config(json.load(f), where)
    index = {}
    for path in weight_files(te):
        st = SafeTensors(path)
        for name in st.entries:
            if name in index:
                raise RefError("tensor %s stored twice (%s, %s)" % (name, index[name].path, path))
            index[name] = st
    params, used, missing = {}, set(), []
    for internal, stored, shape in param_table(cfg):
        names = [stored] if internal != "emb" else [n for n in EMBED_NAMES if n in index]
        if not names:
            missing.append(stored)
            continue
        arrs = []
        for nm in names:
            got = index[nm].shape(nm)
            if got != shape:
                raise RefError("tensor %s has shape %s, expected %s" % (nm, got, shape))
            arrs.append(index[nm].load(nm))
            used.add(nm)
        if len(arrs) == 2 and not np.array_equal(arrs[0], arrs[1]):
            raise RefError("shared.weight and its tied alias encoder.embed_tokens.weight differ")
        params[internal] = torch.from_numpy(np.ascontiguousarray(arrs[0])).to(dtype)
    if missing:
        raise RefError("%d tensors missing from %s (first: %s)" % (len(missing), te, ", ".join(missing[:5])))
    unused = sorted(set(index) - used)
    if unused:
        log("warning: %d unused tensors in %s (first: %s)" % (len(unused), te, ", ".join(unused[:5])))
    return cfg, params


# ----------------------------------------------------------------------------------------------------------
# Cleaning and tokenisation (spec 8.2)
# ----------------------------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")  # on str: every Unicode whitespace character (the set str.isspace() accepts)


def clean(prompt):
    """Spec 8.2 without ftfy.fix_text: HTML-unescape twice, strip, collapse whitespace runs to one space,
    strip."""
    t = html.unescape(html.unescape(prompt)).strip()
    return _WS.sub(" ", t).strip()


_SP_CACHE = {}


def load_spm(spiece_path):
    sp = _SP_CACHE.get(spiece_path)
    if sp is None:
        sp = spm.SentencePieceProcessor()
        if not sp.Load(spiece_path):
            raise RefError("%s: cannot load the SentencePiece model" % spiece_path)
        for piece, want in (("<pad>", PAD_ID), ("</s>", EOS_ID)):
            if sp.piece_to_id(piece) != want:
                raise RefError("%s: piece %s has id %d, expected %d (spec 8.2)" % (
                    spiece_path, piece, sp.piece_to_id(piece), want))
        _SP_CACHE[spiece_path] = sp
    return sp


def tokenize(spiece_path, prompt, text_len):
    """Returns (ids int64 [text_len], mask uint8 [text_len], truncated bool, n_pieces): the SentencePiece ids
    of clean(prompt) (no BOS), cut to text_len - 1, then EOS (1), then padding (0) up to text_len."""
    if text_len < 1:
        raise RefError("text_len must be >= 1")
    sp = load_spm(spiece_path)
    pieces = list(sp.encode(clean(prompt), out_type=int))
    n_pieces = len(pieces)
    truncated = n_pieces > text_len - 1
    body = pieces[:text_len - 1] + [EOS_ID]
    ids = np.full(text_len, PAD_ID, dtype=np.int64)
    ids[:len(body)] = body
    mask = np.zeros(text_len, dtype=np.uint8)
    mask[:len(body)] = 1
    return ids, mask, truncated, n_pieces


def tokenizer_text_len(tok_dir):
    """text_len implied by tokenizer_config.json model_max_length (absent or huge: 512)."""
    p = os.path.join(tok_dir, "tokenizer_config.json")
    if not os.path.isfile(p):
        return DEFAULT_TEXT_LEN
    with open(p) as f:
        n = json.load(f).get("model_max_length")
    if n is None or n > UNBOUNDED_MAX_LENGTH:
        return DEFAULT_TEXT_LEN
    if int(n) < 1:
        raise RefError("%s: model_max_length must be positive" % p)
    return int(n)


# ----------------------------------------------------------------------------------------------------------
# Forward (spec 8.3, 8.4)
# ----------------------------------------------------------------------------------------------------------

def bucket(rel, num_buckets=32, max_distance=128):
    """Bidirectional relative-position bucket of rel = key_pos - query_pos (spec 8.3): half the buckets per
    direction (positive offsets +num_buckets/2), exact below max_exact = num_buckets/4, logarithmic above
    with the log term in float32, truncated toward zero, capped at num_buckets/2 - 1."""
    rel = np.asarray(rel, dtype=np.int64)
    half = num_buckets // 2
    max_exact = half // 2
    n = np.abs(rel)
    f32 = np.float32
    with np.errstate(divide="ignore"):
        lg = np.log(np.maximum(n, 1).astype(f32) / f32(max_exact)).astype(f32)
    t = (lg / f32(math.log(max_distance / max_exact))).astype(f32) * f32(half - max_exact)
    large = np.minimum(max_exact + np.trunc(t.astype(f32)).astype(np.int64), half - 1)
    return np.where(rel > 0, half, 0) + np.where(n < max_exact, n, large)


def rms_norm(x, gain, eps):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * gain


def gelu_tanh(z):
    return 0.5 * z * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z * z * z)))


def forward(P, cfg, ids, mask, dtype=torch.float64):
    """ids int [L], mask {0,1} [L] -> [L, d_model] tensor of dtype; padding rows exactly +0."""
    ids = np.asarray(ids, dtype=np.int64)
    mask = np.asarray(mask)
    L = ids.shape[0]
    if mask.shape != (L,) or not mask.any():
        raise RefError("mask must be [L] with at least one valid position")
    if ids.min() < 0 or ids.max() >= cfg["vocab"]:
        raise RefError("token id out of range [0, %d)" % cfg["vocab"])
    H, dk, eps = cfg["heads"], cfg["d_kv"], cfg["eps"]
    P = {k: v.to(dtype) for k, v in P.items()}
    pos = np.arange(L)
    bk = torch.from_numpy(bucket(pos[None, :] - pos[:, None], cfg["num_buckets"], cfg["max_distance"]))  # [i, j]
    key_pad = torch.from_numpy(mask == 0)[None, None, :]                          # [1, 1, Lk]
    x = P["emb"][torch.from_numpy(ids)]                                           # [L, D]
    for i in range(cfg["layers"]):
        n = "l%d." % i
        y = rms_norm(x, P[n + "ln1"], eps)
        q = (y @ P[n + "q"].T).reshape(L, H, dk).transpose(0, 1)                  # [H, L, dk]
        k = (y @ P[n + "k"].T).reshape(L, H, dk).transpose(0, 1)
        v = (y @ P[n + "v"].T).reshape(L, H, dk).transpose(0, 1)
        bias = P[n + "rel"][bk].permute(2, 0, 1)                                  # [H, i, j] = Rel[bucket(j-i), h]
        s = torch.matmul(q, k.transpose(1, 2)) + bias                             # no 1/sqrt(d_kv) scaling
        s = s.masked_fill(key_pad, float("-inf"))
        a = torch.softmax(s, dim=-1)
        o = torch.matmul(a, v).transpose(0, 1).reshape(L, H * dk)
        x = x + o @ P[n + "o"].T
        y = rms_norm(x, P[n + "ln2"], eps)
        x = x + (gelu_tanh(y @ P[n + "wi0"].T) * (y @ P[n + "wi1"].T)) @ P[n + "wo"].T
    x = rms_norm(x, P["final_ln"], eps)
    return x.masked_fill(torch.from_numpy(mask == 0)[:, None], 0.0)


def encode_prompt(model_dir, P, cfg, prompt, text_len, dtype):
    _, tok = model_paths(model_dir)
    ids, mask, truncated, n = tokenize(os.path.join(tok, "spiece.model"), prompt, text_len)
    with torch.no_grad():
        ctx = forward(P, cfg, ids, mask, dtype).to(torch.float64).numpy()
    return ctx, ids, mask, truncated, n


# ----------------------------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------------------------

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def read_text_arg(text, path, what):
    if text is not None:
        return text
    if path is None:
        return None
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise RefError("%s file %s is not UTF-8: %s" % (what, path, ex))


def cmd_encode(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    extra = wdr.parse_attrs(args.attr, RESERVED_ATTRS)
    prompt = read_text_arg(args.prompt, args.prompt_file, "prompt")
    neg = read_text_arg(args.negative_prompt, args.negative_prompt_file, "negative prompt")
    _, tok = model_paths(args.model)
    text_len = args.text_len if args.text_len is not None else tokenizer_text_len(tok)
    dtype = DTYPES[args.dtype]
    cfg, P = load_encoder(args.model, dtype)
    runs = [("", prompt)] + ([("negative_", neg)] if neg is not None else [])
    results = {}
    for prefix, text in runs:
        results[prefix] = encode_prompt(args.model, P, cfg, text, text_len, dtype)
    try:
        with h5py.File(args.out, "x") as f:
            for prefix, _ in runs:
                ctx, ids, mask, _, _ = results[prefix]
                f.create_dataset(prefix + "context", data=ctx.astype(np.float32))
                f.create_dataset(prefix + "input_ids", data=ids.astype(np.int64))
                f.create_dataset(prefix + "attention_mask", data=mask.astype(np.uint8))
            f.attrs["reelfarm_format"] = GOLDEN_FORMAT
            f.attrs["reelfarm_format_version"] = np.int64(GOLDEN_FORMAT_VERSION)
            f.attrs["generator"] = GENERATOR
            f.attrs["reference_dtype"] = args.dtype
            f.attrs["prompt"] = prompt
            f.attrs["text_len"] = np.int64(text_len)
            f.attrs["truncated"] = np.int64(results[""][3])
            if neg is not None:
                f.attrs["negative_prompt"] = neg
                f.attrs["negative_truncated"] = np.int64(results["negative_"][3])
            for k, v in extra:
                f.attrs[k] = v
    except BaseException:
        if os.path.exists(args.out):
            os.remove(args.out)
        raise
    for prefix, _ in runs:
        ctx, ids, mask, tr, n = results[prefix]
        print("encode: %s %s tokens=%d (pieces %d%s) text_len=%d d_model=%d rms_valid=%.6g -> %s" % (
            "negative" if prefix else "prompt", args.dtype, int(mask.sum()), n, ", truncated" if tr else "", text_len,
            cfg["d_model"], float(np.sqrt(np.mean(ctx[mask == 1] ** 2))), args.out))


def cmd_tokenize(args):
    prompt = read_text_arg(args.prompt, args.prompt_file, "prompt")
    _, tok = model_paths(args.model)
    text_len = args.text_len if args.text_len is not None else tokenizer_text_len(tok)
    sp_path = os.path.join(tok, "spiece.model")
    ids, mask, truncated, n = tokenize(sp_path, prompt, text_len)
    sp = load_spm(sp_path)
    print("cleaned: %r" % clean(prompt))
    print("pieces: %s" % " ".join(sp.id_to_piece(int(i)) for i in ids[:int(mask.sum())]))
    print("ids: %s" % " ".join(str(int(i)) for i in ids[:int(mask.sum())]))
    print("tokens=%d pieces=%d truncated=%d text_len=%d" % (int(mask.sum()), n, int(truncated), text_len))


def fingerprint(model_dir):
    """(sum, sum of squares, count) over every encoder parameter (the embedding once, even when both its
    names are stored), values taken as float32, accumulated in float64 in param_table order per tensor."""
    _, params = load_encoder(model_dir, dtype=torch.float64)
    return wdr.params_fingerprint(params)


def cmd_fingerprint(args):
    print("%.17g %.17g %d" % fingerprint(args.model))


def cmd_default_negative_prompt(args):
    """Writes the spec 6.1 default negative prompt (UTF-8, no trailing newline) to stdout."""
    text = DEFAULT_NEGATIVE_PROMPT_EN if args.english else DEFAULT_NEGATIVE_PROMPT
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------------------
# Tiny models for the selftest (make-model): random encoder weights + a trained SentencePiece unigram model
# ----------------------------------------------------------------------------------------------------------

_CORPUS = [
    "A slow cinematic shot of a red car driving through a rainy city at night.",
    "The camera pans over a quiet forest while birds sing in the morning light.",
    "A woman walks along the beach at sunset, waves rolling onto the sand.",
    "Close-up of a cat sleeping on a warm windowsill, soft focus background.",
    "An astronaut floats above the earth, the sun rising over the horizon.",
    "Children play football in a dusty street, golden hour, handheld camera.",
    "A busy market with colourful fruit, people talking and laughing.",
    "Snow falls on a mountain village; smoke rises from the chimneys.",
    "The old man reads a newspaper in the park, pigeons around his feet.",
    "Drone footage of a river winding through green hills and small farms.",
    "Bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality.",
    "JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands and faces.",
    "The quick brown fox jumps over the lazy dog. 0123456789 & < > \" ' ( ) [ ] , . ; : ! ?",
    "一只猫在城市的街道上奔跑，电影镜头。",
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止。",
]


def train_spm(out_dir, vocab_size=384, seed_text_repeat=20):
    """Trains a tiny unigram SentencePiece model with the umT5 conventions (pad 0, eos 1, unk 2, no bos,
    byte fallback, nmt_nfkc) and writes out_dir/spiece.model."""
    os.makedirs(out_dir, exist_ok=True)
    corpus = os.path.join(out_dir, "corpus.txt.tmp")
    with open(corpus, "w", encoding="utf-8") as f:
        for r in range(seed_text_repeat):
            for line in _CORPUS:
                f.write(line + "\n")
    try:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(out_dir, "spiece"), model_type="unigram",
            vocab_size=vocab_size, byte_fallback=True, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>", normalization_rule_name="nmt_nfkc",
            character_coverage=0.98, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    finally:
        os.remove(corpus)
        vocab = os.path.join(out_dir, "spiece.vocab")
        if os.path.exists(vocab):
            os.remove(vocab)
    return os.path.join(out_dir, "spiece.model")


def tiny_config(vocab, d_model=64, d_ff=128, d_kv=16, heads=4, layers=2, num_buckets=32, max_distance=128):
    return {"d_model": d_model, "d_ff": d_ff, "d_kv": d_kv, "heads": heads, "layers": layers, "vocab": vocab,
            "num_buckets": num_buckets, "max_distance": max_distance, "eps": 1e-6, "pad_id": PAD_ID,
            "eos_id": EOS_ID}


def random_params(cfg, seed):
    """Stored-name -> float32 array. Embedding N(0,1), linear weights N(0, 1/fan_in), norm gains 1 + 0.1 N,
    relative bias tables N(0, 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for internal, stored, shape in param_table(cfg):
        leaf = internal.split(".")[-1]
        if leaf.startswith("ln") or leaf == "final_ln":
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif leaf in ("emb", "rel"):
            a = rng.standard_normal(shape)
        else:
            a = rng.standard_normal(shape) / math.sqrt(shape[1])
        out[stored] = a.astype(np.float32)
    return out


def write_model(out, cfg, stored, spiece_src, weight_dtype="F32", shards=1, embed_names=("shared.weight",),
                model_max_length=64):
    """Writes OUT/text_encoder/{config.json, weights} and OUT/tokenizer/{spiece.model, tokenizer_config.json,
    special_tokens_map.json}. embed_names: under which name(s) the embedding is stored."""
    te, tok = os.path.join(out, "text_encoder"), os.path.join(out, "tokenizer")
    os.makedirs(te, exist_ok=True)
    os.makedirs(tok, exist_ok=True)
    with open(os.path.join(te, "config.json"), "w") as f:
        json.dump(config_json(cfg), f, indent=2)
    named = {k: v for k, v in stored.items() if k != "shared.weight"}
    for n in embed_names:
        named[n] = stored["shared.weight"]
    if shards <= 1:
        write_safetensors(os.path.join(te, "model.safetensors"), named, weight_dtype)
    else:
        names, wmap = sorted(named), {}
        for s in range(shards):
            fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
            part = {n: named[n] for n in names[s::shards]}
            write_safetensors(os.path.join(te, fn), part, weight_dtype)
            wmap.update({n: fn for n in part})
        with open(os.path.join(te, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wmap}, f, indent=2)
    shutil.copyfile(spiece_src, os.path.join(tok, "spiece.model"))
    with open(os.path.join(tok, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "T5Tokenizer", "model_max_length": model_max_length, "pad_token": "<pad>",
                   "eos_token": "</s>", "unk_token": "<unk>", "extra_ids": 0}, f, indent=2)
    with open(os.path.join(tok, "special_tokens_map.json"), "w") as f:
        json.dump({"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}, f, indent=2)


def cmd_make_model(args):
    if os.path.exists(args.out) and os.listdir(args.out):
        raise RefError("%s exists and is not empty" % args.out)
    tmp = tempfile.mkdtemp(prefix="umt5_ref_spm_")
    try:
        sp_path = train_spm(tmp, args.vocab_size)
        vocab = load_spm(sp_path).get_piece_size()
        cfg = tiny_config(vocab)
        write_model(args.out, cfg, random_params(cfg, args.seed), sp_path, args.weight_dtype, args.shards)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("make-model: vocab %d, d_model %d, %d layers, weights %s -> %s" % (
        vocab, cfg["d_model"], cfg["layers"], args.weight_dtype, args.out))


# ----------------------------------------------------------------------------------------------------------
# selftest
# ----------------------------------------------------------------------------------------------------------

# spec 8.3, the table of bucket ranges for 32 buckets / max distance 128: (lo, hi, bucket) for r = key - query
SPEC_BUCKET_RANGES = [
    (0, 0, 0), (-7, -1, None), (-11, -8, 8), (-15, -12, 9), (-22, -16, 10), (-31, -23, 11), (-45, -32, 12),
    (-63, -46, 13), (-90, -64, 14), (-10 ** 9, -91, 15),
    (1, 7, None), (8, 11, 24), (12, 15, 25), (16, 22, 26), (23, 31, 27), (32, 45, 28), (46, 63, 29),
    (64, 90, 30), (91, 10 ** 9, 31),
]


def spec_bucket(r):
    if -7 <= r <= -1:
        return -r          # r = -1..-7 -> 1..7
    if 1 <= r <= 7:
        return 16 + r      # r = +1..+7 -> 17..23
    for lo, hi, b in SPEC_BUCKET_RANGES:
        if lo <= r <= hi:
            return b
    raise AssertionError(r)


def torch_bucket(rel, num_buckets=32, max_distance=128):
    """The same rule stated with torch float32 tensor ops (a second evaluation of the float32 log term)."""
    rel = torch.as_tensor(rel, dtype=torch.long)
    half = num_buckets // 2
    max_exact = half // 2
    ret = (rel > 0).to(torch.long) * half
    n = rel.abs()
    lg = torch.log(n.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    large = torch.clamp(max_exact + lg.to(torch.long), max=half - 1)
    return (ret + torch.where(n < max_exact, n, large)).numpy()


def loop_forward(P, cfg, ids, mask):
    """A second, loop-by-loop float64 statement of spec 8.3/8.4 (slow; for short sequences)."""
    W = {k: v.to(torch.float64).numpy() for k, v in P.items()}
    L, H, dk, eps = len(ids), cfg["heads"], cfg["d_kv"], cfg["eps"]

    def rms(v, g):
        return v / math.sqrt(float(np.dot(v, v)) / v.shape[0] + eps) * g

    x = np.stack([W["emb"][t] for t in ids])
    for li in range(cfg["layers"]):
        n = "l%d." % li
        y = np.stack([rms(x[i], W[n + "ln1"]) for i in range(L)])
        q, k, v = y @ W[n + "q"].T, y @ W[n + "k"].T, y @ W[n + "v"].T
        o = np.zeros((L, H * dk))
        for h in range(H):
            sl = slice(h * dk, (h + 1) * dk)
            for i in range(L):
                sc = []
                for j in range(L):
                    if mask[j]:
                        sc.append(float(np.dot(q[i, sl], k[j, sl])) + W[n + "rel"][spec_bucket(j - i), h])
                    else:
                        sc.append(-math.inf)
                m = max(sc)
                e = [math.exp(s - m) for s in sc]
                z = sum(e)
                for j in range(L):
                    o[i, sl] += (e[j] / z) * v[j, sl]
        x = x + o @ W[n + "o"].T
        y = np.stack([rms(x[i], W[n + "ln2"]) for i in range(L)])
        g = y @ W[n + "wi0"].T
        g = np.array([[0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3))) for z in row]
                      for row in g])
        x = x + (g * (y @ W[n + "wi1"].T)) @ W[n + "wo"].T
    x = np.stack([rms(x[i], W["final_ln"]) if mask[i] else np.zeros(x.shape[1]) for i in range(L)])
    return x


def _rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _maxabs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _spec_negative_prompt():
    """The default negative prompts (Chinese, English) as printed in spec 6.1 (None when not found)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "shared", "reference", "skyreels-v2-spec.md"),
                 "/work/shared/reference/skyreels-v2-spec.md"):
        if os.path.isfile(cand):
            with open(cand, encoding="utf-8") as f:
                text = f.read()
            m = re.search(r"Default negative prompt.*?\n\s*`([^`]+)`", text, re.S)
            e = re.search(r'"(Bright tones[^"]+)"', text)
            return (m.group(1) if m else None, re.sub(r"\s+", " ", e.group(1)) if e else None)
    return None, None


def cmd_selftest(args):
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print("selftest %-58s %s  %s" % (name, "pass" if ok else "FAIL", detail))
        sys.stdout.flush()

    # ---------------- relative buckets (spec 8.3) ----------------
    r = np.arange(-200, 201)
    ours = bucket(r)
    want = np.array([spec_bucket(int(v)) for v in r])
    bad = int(np.sum(ours != want))
    check("bucket(r), r = -200..200, equals the spec 8.3 table", bad == 0,
          "mismatches=%d%s" % (bad, "" if not bad else " first r=%d" % int(r[np.argmax(ours != want)])))
    d = int(np.sum(torch_bucket(r) != ours))
    check("    numpy float32 log term == torch float32 log term", d == 0, "mismatches=%d" % d)
    rb = np.arange(-5000, 5001)
    ob = bucket(rb)
    check("    bucket 16 never used; range 0..31 (r = -5000..5000)",
          not np.any(ob == 16) and ob.min() == 0 and ob.max() == 31, "distinct=%d" % len(np.unique(ob)))
    edges = {rr: int(bucket(rr)) for rr in (-91, -90, -64, -16, -8, -7, 0, 1, 7, 8, 16, 32, 64, 90, 91)}
    print("selftest     bucket edges: %s" % " ".join("%d:%d" % kv for kv in edges.items()))

    # ---------------- parameter table vs spec 2.5 (umT5-XXL) ----------------
    xxl = tiny_config(256384, d_model=4096, d_ff=10240, d_kv=64, heads=64, layers=24)
    tab = {row[1]: row[2] for row in param_table(xxl)}
    ok = (len(tab) == 1 + 24 * 10 + 1 and tab["shared.weight"] == [256384, 4096]
          and tab["encoder.block.23.layer.0.SelfAttention.q.weight"] == [4096, 4096]
          and tab["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] == [32, 64]
          and tab["encoder.block.5.layer.1.DenseReluDense.wi_0.weight"] == [10240, 4096]
          and tab["encoder.block.5.layer.1.DenseReluDense.wo.weight"] == [4096, 10240]
          and tab["encoder.final_layer_norm.weight"] == [4096])
    check("param table for umT5-XXL: names and shapes as spec 2.5", ok,
          "tensors=%d params=%d" % (len(tab), sum(int(np.prod(s)) for s in tab.values())))

    # ---------------- cleaning (spec 8.2) ----------------
    cases = [
        ("  tabs\tand\n\nnewlines   &amp;amp; &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; \u3000 ideographic space ",
         "tabs and newlines & <b>bold</b> \"quoted\" ideographic space"),
        ("&amp;amp;amp;", "&amp;"),
        ("\u00a0a\u2028b\u2003\u2003c\x1fd\u0085", "a b c d"),
        ("", ""), ("   \t\n ", ""), ("x&#32;&#32;y", "x y"), ("a&nbsp;b", "a b"),
    ]
    bad = [(a, clean(a), b) for a, b in cases if clean(a) != b]
    check("clean(): html.unescape x2, strip, \\s+ -> ' ', strip", not bad, "bad=%r" % bad[:1] if bad else "")
    spec_neg, spec_neg_en = _spec_negative_prompt()
    check("DEFAULT_NEGATIVE_PROMPT_EN equals the spec 6.1 text (line breaks -> spaces)",
          spec_neg_en is None or spec_neg_en == DEFAULT_NEGATIVE_PROMPT_EN,
          "spec text %s" % ("not found" if spec_neg_en is None else "found"))
    check("DEFAULT_NEGATIVE_PROMPT equals the spec 6.1 text", spec_neg is None or spec_neg == DEFAULT_NEGATIVE_PROMPT,
          "spec text %s; utf8 bytes=%d sha256=%s" % (
              "not found" if spec_neg is None else "found",
              len(DEFAULT_NEGATIVE_PROMPT.encode("utf-8")),
              hashlib.sha256(DEFAULT_NEGATIVE_PROMPT.encode("utf-8")).hexdigest()[:16]))

    tmp = tempfile.mkdtemp(prefix="umt5_ref_selftest_")
    try:
        sp_path = train_spm(os.path.join(tmp, "spm"), 384)
        sp = load_spm(sp_path)
        V = sp.get_piece_size()
        ok = (sp.pad_id() == 0 and sp.eos_id() == 1 and sp.unk_id() == 2 and sp.bos_id() == -1
              and sp.id_to_piece(3) == "<0x00>")
        check("trained spiece.model: pad 0, eos 1, unk 2, no bos, bytes from 3", ok, "pieces=%d" % V)

        cfg = tiny_config(V)
        stored = random_params(cfg, seed=1)
        md = os.path.join(tmp, "m_f32")
        write_model(md, cfg, stored, sp_path)
        spiece = os.path.join(md, "tokenizer", "spiece.model")
        check("tokenizer_config model_max_length 64 -> text_len 64; absent/huge -> 512",
              tokenizer_text_len(os.path.join(md, "tokenizer")) == 64 and tokenizer_text_len(tmp) == 512)

        # ---- tokenisation ----
        ids, mask, tr, n = tokenize(spiece, "", 64)
        check("empty prompt -> [EOS] + padding", ids[0] == EOS_ID and not ids[1:].any() and mask[0] == 1
              and not mask[1:].any() and not tr and n == 0, "ids[:3]=%s" % ids[:3].tolist())
        ids, mask, tr, n = tokenize(spiece, "   \t \n ", 8)
        check("whitespace-only prompt -> [EOS]", ids[0] == EOS_ID and int(mask.sum()) == 1)
        long_prompt = " ".join(_CORPUS[:6])
        full = sp.encode(clean(long_prompt), out_type=int)
        ids, mask, tr, n = tokenize(spiece, long_prompt, 16)
        ok = (tr and n == len(full) and n > 15 and ids[15] == EOS_ID and ids[:15].tolist() == full[:15]
              and int(mask.sum()) == 16 and EOS_ID not in ids[:15].tolist())
        check("truncation: first text_len-1 pieces, EOS last, flag set", ok, "pieces=%d" % n)
        ids, mask, tr, n = tokenize(spiece, long_prompt, len(full) + 1)
        check("    exactly text_len-1 pieces: not truncated, no padding", not tr and ids[-1] == EOS_ID
              and int(mask.sum()) == len(full) + 1)
        ids, mask, tr, n = tokenize(spiece, "hello world", 64)
        ok = (ids[:n].tolist() == sp.encode("hello world", out_type=int) and ids[n] == EOS_ID
              and not ids[n + 1:].any() and mask.tolist() == [1] * (n + 1) + [0] * (63 - n))
        check("ids = spm pieces + EOS + zeros; mask 1 up to EOS", ok, "n=%d" % n)
        pieces = sp.encode("🌅", out_type=str)
        check("byte fallback: an unseen emoji becomes 4 byte pieces",
              pieces[-4:] == ["<0xF0>", "<0x9F>", "<0x8C>", "<0x85>"], "pieces=%s" % pieces)
        a = tokenize(spiece, "A\u3000cat ，  &amp; dog", 64)[0]
        b = tokenize(spiece, "A cat , & dog", 64)[0]
        check("clean + nmt_nfkc: U+3000, fullwidth comma, &amp;", np.array_equal(a, b))

        # ---- forward ----
        def enc(model_dir, prompt, text_len=64, dtype=torch.float64):
            c, P = load_encoder(model_dir, dtype)
            return encode_prompt(model_dir, P, c, prompt, text_len, dtype)

        prompt = "A slow cinematic shot of a red car driving through a rainy city at night."
        y64, ids, mask, _, _ = enc(md, prompt)
        nv = int(mask.sum())
        check("output [64, 64], finite, valid rows nonzero",
              y64.shape == (64, 64) and np.isfinite(y64).all() and np.abs(y64[:nv]).min(axis=1).max() > 0,
              "tokens=%d rms=%.4f" % (nv, float(np.sqrt(np.mean(y64[:nv] ** 2)))))
        padrows = y64[nv:]
        check("padding rows are exactly +0.0", np.all(padrows == 0) and not np.signbit(padrows).any(),
              "rows=%d" % padrows.shape[0])
        y32 = enc(md, prompt, dtype=torch.float32)[0]
        r32 = _rel_l2(y32, y64)
        check("float32 vs float64 rel_l2 < 1e-5", r32 < 1e-5, "rel_l2=%.3e max_abs=%.3e" % (r32, _maxabs(y32, y64)))
        y_long = enc(md, prompt, 100)[0]
        d = _maxabs(y_long[:nv], y64[:nv])
        check("more padding (text_len 64 -> 100): valid rows unchanged", d < 1e-12 and not y_long[nv:].any(),
              "max_abs=%.3e" % d)
        y_tight = enc(md, prompt, nv)[0]
        d = _maxabs(y_tight, y64[:nv])
        check("    no padding at all (text_len = tokens): same valid rows", d < 1e-12, "max_abs=%.3e" % d)
        c, P = load_encoder(md)
        P2 = dict(P)
        P2["emb"] = P["emb"].clone()
        P2["emb"][PAD_ID] += 3.0
        with torch.no_grad():
            yp = forward(P2, c, ids, mask).numpy()
        d = _maxabs(yp, y64)
        check("pad-token embedding does not reach the output", d == 0.0, "max_abs=%.3e" % d)
        mask_b = mask.copy()
        mask_b[nv:nv + 3] = 1
        with torch.no_grad():
            yb = forward(P, c, ids, mask_b).numpy()
        r = _rel_l2(yb[:nv], y64[:nv])
        check("    (unmasking 3 pad keys does change the valid rows)", r > 1e-4, "rel_l2=%.3e" % r)

        short_ids, short_mask = ids[:12].copy(), mask[:12].copy()
        short_ids[9:] = PAD_ID
        short_ids[8] = EOS_ID
        short_mask[9:] = 0
        with torch.no_grad():
            yv = forward(P, c, short_ids, short_mask).numpy()
        yl = loop_forward(P, c, short_ids.tolist(), short_mask.tolist())
        d = _maxabs(yv, yl)
        check("vectorised forward == loop statement of spec 8.3 (L=12)", d < 1e-12, "max_abs=%.3e" % d)
        # the relative bias direction matters: the transposed bias must give a different answer
        Pt = dict(P)
        for i in range(c["layers"]):
            Pt["l%d.rel" % i] = torch.cat([P["l%d.rel" % i][16:], P["l%d.rel" % i][:16]])
        with torch.no_grad():
            yt = forward(Pt, c, short_ids, short_mask).numpy()
        check("    (swapping bucket directions changes the output)", _rel_l2(yt, yv) > 1e-3,
              "rel_l2=%.3e" % _rel_l2(yt, yv))
        # a sequence longer than max_distance exercises the capped buckets
        ids_l = np.random.default_rng(3).integers(3, V, 200)
        ids_l[150] = EOS_ID
        ids_l[151:] = PAD_ID
        mask_l = (np.arange(200) <= 150).astype(np.uint8)
        with torch.no_grad():
            a64 = forward(P, c, ids_l, mask_l).numpy()
            a32 = forward(P, c, ids_l, mask_l, torch.float32).numpy()
        r = _rel_l2(a32, a64)
        check("long sequence (151 tokens > max_distance): f32 vs f64", np.isfinite(a64).all() and r < 1e-5,
              "rel_l2=%.3e" % r)

        # ---- storage variants ----
        for wdt in ("BF16", "F16"):
            if wdt == "BF16":
                rounded = {k: (bf16_bits(v).astype(np.uint32) << 16).view(np.float32) for k, v in stored.items()}
            else:
                rounded = {k: v.astype(np.float16).astype(np.float32) for k, v in stored.items()}
            dl, dr = os.path.join(tmp, "m_" + wdt), os.path.join(tmp, "m_" + wdt + "_as_f32")
            write_model(dl, cfg, stored, sp_path, weight_dtype=wdt)
            write_model(dr, cfg, rounded, sp_path)
            yl, yr = enc(dl, prompt)[0], enc(dr, prompt)[0]
            d, r = _maxabs(yl, yr), _rel_l2(yl, y64)
            check("%s weights load (= F32 file of the rounded values)" % wdt, d == 0.0 and 0 < r < 0.05,
                  "max_abs=%.3e rel_l2 vs f32 weights=%.3e" % (d, r))
        for label, kw in (("sharded (3 files + index.json)", dict(shards=3)),
                          ("embedding stored as encoder.embed_tokens.weight only",
                           dict(embed_names=("encoder.embed_tokens.weight",))),
                          ("embedding stored under both names", dict(embed_names=EMBED_NAMES))):
            dv = os.path.join(tmp, "m_" + re.sub(r"\W+", "_", label))
            write_model(dv, cfg, stored, sp_path, **kw)
            d = _maxabs(enc(dv, prompt)[0], y64)
            check(label + ": identical", d == 0.0, "max_abs=%.3e" % d)
        s1 = fingerprint(md)
        s2 = fingerprint(os.path.join(tmp, "m_embedding_stored_under_both_names"))
        n_expect = sum(int(np.prod(v.shape)) for v in stored.values())
        check("fingerprint: counts every parameter once", s1 == s2 and s1[2] == n_expect,
              "sum=%.6g sumsq=%.6g count=%d" % s1)

        # ---- command line ----
        me = os.path.abspath(__file__)
        fout = os.path.join(tmp, "out.h5")
        pfile = os.path.join(tmp, "prompt.txt")
        raw_prompt = "  " + prompt + " &amp; more\t"
        with open(pfile, "wb") as f:
            f.write(raw_prompt.encode("utf-8"))
        r1 = subprocess.run([sys.executable, me, "encode", "--model", md, "--prompt-file", pfile, "--out", fout,
                             "--negative-prompt", DEFAULT_NEGATIVE_PROMPT, "--attr", "case=selftest"],
                            capture_output=True, text=True)
        r2 = subprocess.run([sys.executable, me, "encode", "--model", md, "--prompt", "x", "--out", fout],
                            capture_output=True, text=True)
        r3 = subprocess.run([sys.executable, me, "fingerprint", "--model", md], capture_output=True, text=True)
        ok = r1.returncode == 0 and r2.returncode == 1 and r3.returncode == 0
        detail = "rc=%d,%d,%d" % (r1.returncode, r2.returncode, r3.returncode)
        if ok:
            ctx, ids, mask, tr, _ = enc(md, raw_prompt)
            nctx, nids, nmask, ntr, _ = enc(md, DEFAULT_NEGATIVE_PROMPT)
            with h5py.File(fout, "r") as f:
                a = f.attrs
                ok = (set(f.keys()) == {"context", "input_ids", "attention_mask", "negative_context",
                                        "negative_input_ids", "negative_attention_mask"}
                      and f["context"].dtype == np.float32 and f["input_ids"].dtype == np.int64
                      and f["attention_mask"].dtype == np.uint8 and f["context"].shape == (64, 64)
                      and a["prompt"] == raw_prompt and a["negative_prompt"] == DEFAULT_NEGATIVE_PROMPT
                      and int(a["text_len"]) == 64 and int(a["truncated"]) == int(tr)
                      and int(a["negative_truncated"]) == int(ntr)
                      and a["reelfarm_format"] == GOLDEN_FORMAT and int(a["reelfarm_format_version"]) == 1
                      and a["generator"] == GENERATOR and a["reference_dtype"] == "float64"
                      and a["case"] == "selftest"
                      and np.array_equal(f["context"][()], ctx.astype(np.float32))
                      and np.array_equal(f["input_ids"][()], ids) and np.array_equal(f["attention_mask"][()], mask)
                      and np.array_equal(f["negative_context"][()], nctx.astype(np.float32))
                      and np.array_equal(f["negative_input_ids"][()], nids))
            fp = r3.stdout.split()
            ok = ok and len(fp) == 3 and int(fp[2]) == s1[2] and float(fp[0]) == s1[0]
            detail += " negative tokens=%d truncated=%d" % (int(nmask.sum()), int(ntr))
        if not ok:
            detail += " | " + (r1.stderr + r2.stderr + r3.stderr).strip().replace("\n", " / ")[-400:]
        check("CLI encode (+negative, prompt file, attrs), no-overwrite, fingerprint", ok, detail)
    finally:
        if args.keep:
            print("selftest: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    nfail = results.count(False)
    print("selftest: %d checks, %d failed" % (len(results), nfail))
    return 1 if nfail else 0


# ----------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Independent reference of the SkyReels-V2 umT5 text encoder "
                                             "(spec sections 2.2, 2.5, 6.1, 8).")
    sub = ap.add_subparsers(dest="cmd")
    sub.required = True

    def prompt_args(p, required=True):
        g = p.add_mutually_exclusive_group(required=required)
        g.add_argument("--prompt")
        g.add_argument("--prompt-file", help="UTF-8 file, taken verbatim (no newline stripping)")

    p = sub.add_parser("encode", help="tokenise and encode a prompt (and a negative prompt); writes HDF5")
    p.add_argument("--model", required=True, help="model root with text_encoder/ and tokenizer/")
    prompt_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--negative-prompt")
    g.add_argument("--negative-prompt-file")
    p.add_argument("--out", required=True)
    p.add_argument("--text-len", type=int, default=None,
                   help="default: tokenizer_config.json model_max_length, or 512 when absent/unbounded")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    p.add_argument("--attr", action="append", metavar="KEY=VALUE")
    p.set_defaults(fn=cmd_encode)

    p = sub.add_parser("tokenize", help="print the cleaned text, pieces and ids")
    p.add_argument("--model", required=True)
    prompt_args(p)
    p.add_argument("--text-len", type=int, default=None)
    p.set_defaults(fn=cmd_tokenize)

    p = sub.add_parser("fingerprint", help="print sum, sum of squares and count of the encoder weights")
    p.add_argument("--model", required=True)
    p.set_defaults(fn=cmd_fingerprint)

    p = sub.add_parser("default-negative-prompt", help="print the spec 6.1 default negative prompt (no newline)")
    p.add_argument("--english", action="store_true", help="the English one of generate_video.py")
    p.set_defaults(fn=cmd_default_negative_prompt)

    p = sub.add_parser("make-model", help="write a tiny random text encoder + trained tokenizer (test helper)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vocab-size", type=int, default=384)
    p.add_argument("--weight-dtype", choices=["F32", "BF16", "F16"], default="F32")
    p.add_argument("--shards", type=int, default=1)
    p.set_defaults(fn=cmd_make_model)

    p = sub.add_parser("selftest", help="check the reference against the spec and itself (exit 1 on failure)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(fn=cmd_selftest)

    args = ap.parse_args(argv)
    try:
        rc = args.fn(args)
    except (RefError, OSError, ValueError, KeyError) as ex:
        log("error: %s" % ex)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
