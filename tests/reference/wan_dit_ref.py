#!/usr/bin/env python3
# tests/reference/wan_dit_ref.py - independent PyTorch reference of the SkyReels-V2 / Wan2.1 DiT forward pass.
#
# Test tooling only (never part of the product): writes golden tensors for the C tests and times a PyTorch
# CPU forward for the benchmark. Written from shared/reference/skyreels-v2-spec.md: section 1 (model
# configurations), 2.2 and 2.3 (on-disk layouts and tensor names; both namings map to one internal set
# of parameters below) and 3 (forward pass, block-causal mask of 3.9). The maths is evaluated in float64
# (default) or float32; the bf16 rounding points of the upstream code (spec 3.10) are deliberately NOT
# reproduced. Needs only torch, numpy and h5py; run with Debian's /usr/bin/python3.
#
# Subcommands: forward, make-input, bench, make-model (tiny random models), selftest. See README.md here.

import argparse
import glob
import json
import math
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as tnf

GENERATOR = "tests/reference/wan_dit_ref.py"
GOLDEN_FORMAT = "reelfarm-golden"
GOLDEN_FORMAT_VERSION = 1
INPUT_DATASETS = ("latents", "condition", "timesteps", "context", "clip_features", "fps")
LATENT_CHANNELS = 16          # channels of `latents` (the rest of in_channels come from `condition`)
IMAGE_LN_EPS = 1e-5           # LayerNorms of the image embedder (spec 3.5)
ROPE_THETA = 10000.0
ATTN_SCORE_BYTES = 1 << 30    # attention computed in query chunks when [H, Lq, Lk] would exceed this


class RefError(Exception):
    pass


def log(msg):
    print("wan_dit_ref: " + msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------
# safetensors (8-byte little-endian header length, JSON header, raw little-endian data)
# ----------------------------------------------------------------------------------------------------------

_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


class SafeTensorsFile:
    def __init__(self, path):
        self.path = path
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise RefError("%s: too short for a safetensors file" % path)
            (hlen,) = struct.unpack("<Q", raw)
            if hlen > size - 8:
                raise RefError("%s: header length %d exceeds the file" % (path, hlen))
            header = json.loads(f.read(hlen).decode("utf-8"))
        self.data_start = 8 + hlen
        self.entries = {k: v for k, v in header.items() if k != "__metadata__"}
        for name, e in self.entries.items():
            if e["dtype"] not in _ST_ITEMSIZE:
                raise RefError("%s: tensor %s has unsupported dtype %s" % (path, name, e["dtype"]))
            b0, b1 = e["data_offsets"]
            n = int(np.prod(e["shape"], dtype=np.int64))
            if b1 - b0 != n * _ST_ITEMSIZE[e["dtype"]] or self.data_start + b1 > size:
                raise RefError("%s: tensor %s has inconsistent data_offsets" % (path, name))
        self._mm = None

    def shape(self, name):
        return list(self.entries[name]["shape"])

    def load(self, name):
        """Returns the tensor as a float64 numpy array."""
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        e = self.entries[name]
        b0, b1 = e["data_offsets"]
        raw = self._mm[self.data_start + b0:self.data_start + b1]
        dt = e["dtype"]
        if dt == "F64":
            a = raw.view("<f8")
        elif dt == "F32":
            a = raw.view("<f4")
        elif dt == "F16":
            a = raw.view("<f2")
        else:  # BF16: the upper 16 bits of a float32
            a = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        return a.astype(np.float64).reshape(e["shape"])


def bf16_round(a):
    """float32 -> bf16 bit patterns (uint16), round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors, dtype="F32"):
    """Test helper: tensors = {name: numpy array}; stored as F32, F16 or BF16."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            b = bf16_round(a).astype("<u2").tobytes()
        else:
            raise RefError("write_safetensors: unsupported dtype " + dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------------------------------------
# Configuration (spec 1, 2.1, 2.2) -> one internal config dict
# ----------------------------------------------------------------------------------------------------------

def _req(c, key, where):
    if key not in c:
        raise RefError("%s: missing key '%s'" % (where, key))
    return c[key]


def _config_from_diffusers(c, where):
    heads = int(_req(c, "num_attention_heads", where))
    hd = int(_req(c, "attention_head_dim", where))
    qk = c.get("qk_norm", "rms_norm_across_heads")
    if qk in ("rms_norm_across_heads", True):
        qk_norm = True
    elif qk in (None, False):
        qk_norm = False
    else:
        raise RefError("%s: unsupported qk_norm %r (only rms_norm_across_heads)" % (where, qk))
    image_dim = c.get("image_dim")
    added = c.get("added_kv_proj_dim")
    if (image_dim is None) != (added is None):
        raise RefError("%s: image_dim and added_kv_proj_dim must be both null or both set" % where)
    if added is not None and int(added) != heads * hd:
        raise RefError("%s: added_kv_proj_dim %s != model width %d" % (where, added, heads * hd))
    return {
        "layout": "diffusers",
        "dim": heads * hd, "heads": heads, "head_dim": hd,
        "in_channels": int(_req(c, "in_channels", where)),
        "out_channels": int(c.get("out_channels", 16)),
        "text_dim": int(_req(c, "text_dim", where)),
        "freq_dim": int(_req(c, "freq_dim", where)),
        "ffn_dim": int(_req(c, "ffn_dim", where)),
        "layers": int(_req(c, "num_layers", where)),
        "eps": float(c.get("eps", 1e-6)),
        "qk_norm": qk_norm,
        "cross_attn_norm": bool(c.get("cross_attn_norm", True)),
        "image_dim": None if image_dim is None else int(image_dim),
        "pos_embed_len": None if c.get("pos_embed_seq_len") is None else int(c["pos_embed_seq_len"]),
        "inject_sample_info": bool(c.get("inject_sample_info", False)),
        "patch": tuple(int(p) for p in c.get("patch_size", [1, 2, 2])),
        "rope_max": int(c.get("rope_max_seq_len", 1024)),
    }


def _config_from_original(c, where):
    dim = int(_req(c, "dim", where))
    heads = int(_req(c, "num_heads", where))
    if dim % heads:
        raise RefError("%s: dim %d not divisible by num_heads %d" % (where, dim, heads))
    mt = c.get("model_type", "t2v")
    if mt not in ("t2v", "i2v", "flf2v"):
        raise RefError("%s: unsupported model_type %r" % (where, mt))
    has_img = mt in ("i2v", "flf2v")
    pos = c.get("pos_embed_seq_len")
    if pos is None and mt == "flf2v":
        pos = 514
    return {
        "layout": "original",
        "dim": dim, "heads": heads, "head_dim": dim // heads,
        "in_channels": int(_req(c, "in_dim", where)),
        "out_channels": int(c.get("out_dim", 16)),
        "text_dim": int(c.get("text_dim", 4096)),
        "freq_dim": int(c.get("freq_dim", 256)),
        "ffn_dim": int(_req(c, "ffn_dim", where)),
        "layers": int(_req(c, "num_layers", where)),
        "eps": float(c.get("eps", 1e-6)),
        "qk_norm": bool(c.get("qk_norm", True)),
        "cross_attn_norm": bool(c.get("cross_attn_norm", True)),
        "image_dim": int(c.get("image_dim", 1280)) if has_img else None,
        "pos_embed_len": None if (pos is None or not has_img) else int(pos),
        "inject_sample_info": bool(c.get("inject_sample_info", False)),
        "patch": tuple(int(p) for p in c.get("patch_size", [1, 2, 2])),
        "rope_max": 1024,
    }


def _weight_files(d, index_name):
    """(list of safetensors paths) for directory d: the index file's shards, or every *.safetensors."""
    idx = os.path.join(d, index_name) if index_name else None
    if idx is None:
        cands = sorted(glob.glob(os.path.join(d, "*.safetensors.index.json")))
        if len(cands) > 1:
            raise RefError("%s: several *.safetensors.index.json files" % d)
        idx = cands[0] if cands else None
    if idx is not None and os.path.isfile(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(d, s) for s in sorted(set(wm.values()))]
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    if not files:
        raise RefError("%s: no *.safetensors files" % d)
    return files


def read_model_config(model_dir):
    """Returns (cfg, list of weight files). Accepts DIR (Diffusers root with transformer/, or original
    layout with config.json + *.safetensors) or DIR/transformer directly."""
    tdir = os.path.join(model_dir, "transformer")
    if os.path.isfile(os.path.join(tdir, "config.json")):
        d = tdir
    elif os.path.isfile(os.path.join(model_dir, "config.json")):
        d = model_dir
    else:
        raise RefError("%s: neither transformer/config.json nor config.json found" % model_dir)
    where = os.path.join(d, "config.json")
    with open(where) as f:
        c = json.load(f)
    if "num_attention_heads" in c:
        cfg = _config_from_diffusers(c, where)
        single = os.path.join(d, "diffusion_pytorch_model.safetensors")
        if os.path.isfile(os.path.join(d, "diffusion_pytorch_model.safetensors.index.json")):
            files = _weight_files(d, "diffusion_pytorch_model.safetensors.index.json")
        elif os.path.isfile(single):
            files = [single]
        else:
            files = _weight_files(d, None)
    elif "dim" in c:
        cfg = _config_from_original(c, where)
        files = _weight_files(d, None)
    else:
        raise RefError("%s: not a SkyReels-V2/Wan DiT config" % where)
    if cfg["dim"] % cfg["heads"] or cfg["head_dim"] % 2:
        raise RefError("%s: head dim must be even" % where)
    if len(cfg["patch"]) != 3:
        raise RefError("%s: patch_size must have 3 entries" % where)
    return cfg, files


# ----------------------------------------------------------------------------------------------------------
# Parameter table (spec 2.3): internal name, original (SR) name, Diffusers name, shape as stored
# ----------------------------------------------------------------------------------------------------------

def param_table(cfg):
    D, Fd, Q, Td = cfg["dim"], cfg["ffn_dim"], cfg["freq_dim"], cfg["text_dim"]
    Cin, Cout = cfg["in_channels"], cfg["out_channels"]
    pt, py, px = cfg["patch"]
    rows = []

    def lin(internal, orig, diff, n_out, n_in):
        rows.append((internal + ".w", orig + ".weight", diff + ".weight", [n_out, n_in]))
        rows.append((internal + ".b", orig + ".bias", diff + ".bias", [n_out]))

    def ln(internal, orig, diff, n):  # affine LayerNorm: weight and bias [n]
        rows.append((internal + ".w", orig + ".weight", diff + ".weight", [n]))
        rows.append((internal + ".b", orig + ".bias", diff + ".bias", [n]))

    def vec(internal, orig, diff, shape):
        rows.append((internal, orig, diff, shape))

    vec("patch.w", "patch_embedding.weight", "patch_embedding.weight", [D, Cin, pt, py, px])
    vec("patch.b", "patch_embedding.bias", "patch_embedding.bias", [D])
    lin("text.fc1", "text_embedding.0", "condition_embedder.text_embedder.linear_1", D, Td)
    lin("text.fc2", "text_embedding.2", "condition_embedder.text_embedder.linear_2", D, D)
    lin("time.fc1", "time_embedding.0", "condition_embedder.time_embedder.linear_1", D, Q)
    lin("time.fc2", "time_embedding.2", "condition_embedder.time_embedder.linear_2", D, D)
    lin("time.proj", "time_projection.1", "condition_embedder.time_proj", 6 * D, D)
    if cfg["inject_sample_info"]:
        vec("fps.emb", "fps_embedding.weight", "fps_embedding.weight", [2, D])
        lin("fps.fc1", "fps_projection.0", "fps_projection.net.0.proj", D, D)
        lin("fps.fc2", "fps_projection.2", "fps_projection.net.2", 6 * D, D)
    if cfg["image_dim"] is not None:
        Ci = cfg["image_dim"]
        ie = "condition_embedder.image_embedder."
        ln("img.ln1", "img_emb.proj.0", ie + "norm1", Ci)
        lin("img.fc1", "img_emb.proj.1", ie + "ff.net.0.proj", Ci, Ci)
        lin("img.fc2", "img_emb.proj.3", ie + "ff.net.2", D, Ci)
        ln("img.ln2", "img_emb.proj.4", ie + "norm2", D)
        if cfg["pos_embed_len"] is not None:
            vec("img.pos", "img_emb.emb_pos", ie + "pos_embed", [1, cfg["pos_embed_len"], Ci])
    for i in range(cfg["layers"]):
        o, d, n = "blocks.%d." % i, "blocks.%d." % i, "blk%d." % i
        vec(n + "mod", o + "modulation", d + "scale_shift_table", [1, 6, D])
        for a in ("q", "k", "v"):
            lin(n + "sa." + a, o + "self_attn." + a, d + "attn1.to_" + a, D, D)
        lin(n + "sa.o", o + "self_attn.o", d + "attn1.to_out.0", D, D)
        if cfg["qk_norm"]:
            vec(n + "sa.norm_q", o + "self_attn.norm_q.weight", d + "attn1.norm_q.weight", [D])
            vec(n + "sa.norm_k", o + "self_attn.norm_k.weight", d + "attn1.norm_k.weight", [D])
        if cfg["cross_attn_norm"]:
            # the affine cross-attention LayerNorm: SR `norm3` is Diffusers `norm2` (names swapped)
            ln(n + "ca.ln", o + "norm3", d + "norm2", D)
        for a in ("q", "k", "v"):
            lin(n + "ca." + a, o + "cross_attn." + a, d + "attn2.to_" + a, D, D)
        lin(n + "ca.o", o + "cross_attn.o", d + "attn2.to_out.0", D, D)
        if cfg["qk_norm"]:
            vec(n + "ca.norm_q", o + "cross_attn.norm_q.weight", d + "attn2.norm_q.weight", [D])
            vec(n + "ca.norm_k", o + "cross_attn.norm_k.weight", d + "attn2.norm_k.weight", [D])
        if cfg["image_dim"] is not None:
            lin(n + "ca.k_img", o + "cross_attn.k_img", d + "attn2.add_k_proj", D, D)
            lin(n + "ca.v_img", o + "cross_attn.v_img", d + "attn2.add_v_proj", D, D)
            if cfg["qk_norm"]:
                vec(n + "ca.norm_k_img", o + "cross_attn.norm_k_img.weight", d + "attn2.norm_added_k.weight", [D])
        lin(n + "ffn.fc1", o + "ffn.0", d + "ffn.net.0.proj", Fd, D)
        lin(n + "ffn.fc2", o + "ffn.2", d + "ffn.net.2", D, Fd)
    vec("head.mod", "head.modulation", "scale_shift_table", [1, 2, D])
    lin("head.out", "head.head", "proj_out", pt * py * px * Cout, D)
    return rows


def _to_internal(name, arr):
    """Stored layout -> internal layout (patch weight flattened to [D, Cin*pt*py*px] in (c, kt, ky, kx)
    order; modulation tables and pos embedding lose their leading 1)."""
    if name == "patch.w":
        return arr.reshape(arr.shape[0], -1)
    if name.endswith(".mod") or name == "img.pos":
        return arr.reshape(arr.shape[1:])
    return arr


def load_model(model_dir, dtype=torch.float64):
    cfg, files = read_model_config(model_dir)
    index = {}
    for path in files:
        st = SafeTensorsFile(path)
        for name in st.entries:
            if name in index:
                raise RefError("tensor %s stored twice (%s, %s)" % (name, index[name].path, path))
            index[name] = st
    col = 1 if cfg["layout"] == "original" else 2
    if cfg["image_dim"] is not None and cfg["pos_embed_len"] is None:
        pos_name = "img_emb.emb_pos" if col == 1 else "condition_embedder.image_embedder.pos_embed"
        if pos_name in index:  # original layout: the FLF2V position table is recognised by its presence
            cfg["pos_embed_len"] = index[pos_name].shape(pos_name)[1]
    params, used, missing = {}, set(), []
    for row in param_table(cfg):
        internal, stored, shape = row[0], row[col], row[3]
        if stored not in index:
            missing.append(stored)
            continue
        got = index[stored].shape(stored)
        if got != shape:
            raise RefError("tensor %s has shape %s, expected %s" % (stored, got, shape))
        arr = _to_internal(internal, index[stored].load(stored))
        params[internal] = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
        used.add(stored)
    if missing:
        raise RefError("%d tensors missing from %s (first: %s)" % (len(missing), model_dir, ", ".join(missing[:5])))
    unused = sorted(set(index) - used)
    if unused:
        log("warning: %d unused tensors in %s (first: %s)" % (len(unused), model_dir, ", ".join(unused[:5])))
    return cfg, params


# ----------------------------------------------------------------------------------------------------------
# Forward pass (spec 3)
# ----------------------------------------------------------------------------------------------------------

def linear(x, P, name):
    return tnf.linear(x, P[name + ".w"], P[name + ".b"])


def gelu_tanh(z):
    return 0.5 * z * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z * z * z)))


def gelu_erf(z):
    return 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))


def layer_norm(x, eps, weight=None, bias=None):
    """LayerNorm over the last axis: (x - mean) / sqrt(biased var + eps) [* weight + bias]."""
    return tnf.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def rms_norm(y, gain, eps):
    """RMSNorm over the full last axis (the whole width D, before the head split)."""
    if gain is None:  # qk_norm disabled
        return y
    return y * torch.rsqrt(y.pow(2).mean(dim=-1, keepdim=True) + eps) * gain


def sinusoid(tvals, freq_dim):
    """tvals: float64 tensor [T]. Returns [T, freq_dim] float64: [cos(t w_j), sin(t w_j)], w_j = 10000^(-j/half)."""
    half = freq_dim // 2
    w = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                  -torch.arange(half, dtype=torch.float64) / half)
    a = tvals.to(torch.float64)[:, None] * w[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


def rope_tables(head_dim, grid):
    """cos, sin [L, head_dim/2] (float64) for the token grid (F, hp, wp), frame-major token order.
    Pairs 0..c0-1 rotate with the frame index, the next c1 with the row, the last c1 with the column."""
    c = head_dim // 2
    c1 = c // 3
    c0 = c - 2 * c1
    d0 = head_dim - 4 * (head_dim // 6)
    d1 = 2 * (head_dim // 6)
    assert d0 == 2 * c0 and d1 == 2 * c1
    w0 = 1.0 / torch.pow(torch.tensor(ROPE_THETA, dtype=torch.float64),
                         2.0 * torch.arange(c0, dtype=torch.float64) / d0)
    w1 = 1.0 / torch.pow(torch.tensor(ROPE_THETA, dtype=torch.float64),
                         2.0 * torch.arange(c1, dtype=torch.float64) / d1)
    nf, nh, nw = grid
    f = torch.arange(nf, dtype=torch.float64)[:, None, None].expand(nf, nh, nw).reshape(-1)
    y = torch.arange(nh, dtype=torch.float64)[None, :, None].expand(nf, nh, nw).reshape(-1)
    x = torch.arange(nw, dtype=torch.float64)[None, None, :].expand(nf, nh, nw).reshape(-1)
    ang = torch.cat([f[:, None] * w0[None], y[:, None] * w1[None], x[:, None] * w1[None]], dim=1)
    return torch.cos(ang), torch.sin(ang)


def rope_apply(t, cos, sin):
    """t [L, H, d]; pairs (t[2j], t[2j+1]) = (re, im) multiplied by cos + i sin; cos/sin [L, d/2]."""
    L, H, d = t.shape
    p = t.reshape(L, H, d // 2, 2)
    a, b = p[..., 0], p[..., 1]
    cs, sn = cos[:, None, :], sin[:, None, :]
    return torch.stack([a * cs - b * sn, a * sn + b * cs], dim=-1).reshape(L, H, d)


def attention(q, k, v, allow=None):
    """q [H, Lq, d], k/v [H, Lk, d]; softmax(q k^T / sqrt(d)) v per head. allow: bool [Lq, Lk] or None."""
    H, Lq, d = q.shape
    Lk = k.shape[1]
    scale = 1.0 / math.sqrt(d)
    kt = k.transpose(1, 2)
    rows = max(1, ATTN_SCORE_BYTES // max(1, H * Lk * q.element_size()))
    outs = []
    for r0 in range(0, Lq, rows):
        s = torch.matmul(q[:, r0:r0 + rows], kt) * scale
        if allow is not None:
            s = s.masked_fill(~allow[None, r0:r0 + rows], float("-inf"))
        outs.append(torch.matmul(torch.softmax(s, dim=-1), v))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


def heads_split(t, H):  # [L, D] -> [H, L, d]
    L, D = t.shape
    return t.reshape(L, H, D // H).transpose(0, 1)


def heads_merge(t):  # [H, L, d] -> [L, D]
    H, L, d = t.shape
    return t.transpose(0, 1).reshape(L, H * d)


def per_frame(x, rows):
    """View tokens [L, D] as [T, L/T, D] so that a [T, D] table broadcasts per frame (T = F) or to all (T = 1)."""
    return x.reshape(rows.shape[0], -1, x.shape[-1])


def modulate(xn, shift, scale):
    return (per_frame(xn, shift) * (1.0 + scale[:, None, :]) + shift[:, None, :]).reshape(xn.shape)


def gated(y, gate):
    return (per_frame(y, gate) * gate[:, None, :]).reshape(y.shape)


def causal_allow(nf, tokens_per_frame, block):
    """Block-causal mask (spec 3.9): query frame fq may attend key frame fk iff fk//block <= fq//block."""
    b = torch.arange(nf).repeat_interleave(tokens_per_frame) // block
    return b[None, :] <= b[:, None]


def patchify(x, patch):
    """x [Cin, F, h, w] -> tokens [L, Cin*pt*py*px], entries ordered (c, kt, ky, kx); tokens frame-major."""
    C, nF, h, w = x.shape
    pt, py, px = patch
    g = (nF // pt, h // py, w // px)
    t = x.reshape(C, g[0], pt, g[1], py, g[2], px).permute(1, 3, 5, 0, 2, 4, 6)
    return t.reshape(g[0] * g[1] * g[2], C * pt * py * px), g


def unpatchify(out, grid, patch, cout):
    """out [L, pt*py*px*Cout], entries ordered (kt, ky, kx, c) (channel last) -> [Cout, F, h, w]."""
    pt, py, px = patch
    nf, nh, nw = grid
    t = out.reshape(nf, nh, nw, pt, py, px, cout).permute(6, 0, 3, 1, 4, 2, 5)
    return t.reshape(cout, nf * pt, nh * py, nw * px)


def check_inputs(cfg, inp):
    lat = inp["latents"]
    if lat.ndim != 4:
        raise RefError("latents must be [C, F, H, W]")
    C, nF, h, w = lat.shape
    cond = inp.get("condition")
    cc = 0 if cond is None else cond.shape[0]
    if cond is not None and (cond.ndim != 4 or tuple(cond.shape[1:]) != (nF, h, w)):
        raise RefError("condition must be [C, %d, %d, %d]" % (nF, h, w))
    if C + cc != cfg["in_channels"]:
        raise RefError("latents (%d ch) + condition (%d ch) != model in_channels %d" % (C, cc, cfg["in_channels"]))
    pt, py, px = cfg["patch"]
    if nF % pt or h % py or w % px:
        raise RefError("latent shape %s not divisible by patch %s" % ((nF, h, w), cfg["patch"]))
    grid = (nF // pt, h // py, w // px)
    if max(grid) > cfg["rope_max"]:
        raise RefError("token grid %s exceeds rope_max_seq_len %d" % (grid, cfg["rope_max"]))
    ts = np.asarray(inp["timesteps"]).reshape(-1)
    if ts.size not in (1, grid[0]):
        raise RefError("timesteps must have 1 or %d entries, got %d" % (grid[0], ts.size))
    ctx = inp["context"]
    if ctx.ndim != 2 or ctx.shape[1] != cfg["text_dim"] or ctx.shape[0] < 1:
        raise RefError("context must be [Lc >= 1, %d]" % cfg["text_dim"])
    clip = inp.get("clip_features")
    if cfg["image_dim"] is not None:
        if clip is None:
            raise RefError("this model has an image branch: clip_features required")
        if clip.ndim != 2 or clip.shape[1] != cfg["image_dim"] or clip.shape[0] < 1:
            raise RefError("clip_features must be [Ni, %d]" % cfg["image_dim"])
        if cfg["pos_embed_len"] is not None and clip.shape[0] != cfg["pos_embed_len"]:
            raise RefError("clip_features must have pos_embed_seq_len = %d rows" % cfg["pos_embed_len"])
    elif clip is not None:
        raise RefError("clip_features given but the model has no image branch")
    if cfg["inject_sample_info"]:
        fps = inp.get("fps", 1)
        if int(fps) not in (0, 1):
            raise RefError("fps must be 0 or 1")
    return grid


def forward(P, cfg, inp, causal_block_size=0, dtype=torch.float64):
    """One DiT call, batch 1. inp: numpy arrays (latents, [condition], timesteps, context, [clip_features],
    [fps]). Returns the flow prediction [Cout, F, H, W] as a tensor of `dtype`."""
    grid = check_inputs(cfg, inp)
    D, H, eps = cfg["dim"], cfg["heads"], cfg["eps"]
    nf, nh, nw = grid
    L = nf * nh * nw
    T = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(dtype)

    # 3.2 patch embedding (a GEMM on (c, kt, ky, kx)-ordered patches)
    xin = T(inp["latents"])
    if inp.get("condition") is not None:
        xin = torch.cat([xin, T(inp["condition"])], dim=0)
    tok, _ = patchify(xin, cfg["patch"])
    x = tnf.linear(tok, P["patch.w"], P["patch.b"])

    # 3.4 time embedding: e [Tn, D], e0 [Tn, 6, D]; Tn = 1 (scalar path) or F (per-frame path)
    tvals = torch.from_numpy(np.asarray(inp["timesteps"], dtype=np.float64).reshape(-1))
    s = sinusoid(tvals, cfg["freq_dim"]).to(dtype)
    e = linear(tnf.silu(linear(s, P, "time.fc1")), P, "time.fc2")
    e0 = linear(tnf.silu(e), P, "time.proj").reshape(-1, 6, D)
    if cfg["inject_sample_info"]:
        g = P["fps.emb"][int(inp.get("fps", 1))]
        e0 = e0 + linear(tnf.silu(linear(g, P, "fps.fc1")), P, "fps.fc2").reshape(1, 6, D)

    # 3.5 text (and image) context
    ctx = linear(gelu_tanh(linear(T(inp["context"]), P, "text.fc1")), P, "text.fc2")
    img = None
    if cfg["image_dim"] is not None:
        c = T(inp["clip_features"])
        if cfg["pos_embed_len"] is not None:
            c = c + P["img.pos"]
        c = layer_norm(c, IMAGE_LN_EPS, P["img.ln1.w"], P["img.ln1.b"])
        c = linear(gelu_erf(linear(c, P, "img.fc1")), P, "img.fc2")
        img = layer_norm(c, IMAGE_LN_EPS, P["img.ln2.w"], P["img.ln2.b"])

    cos, sin = rope_tables(cfg["head_dim"], grid)
    cos, sin = cos.to(dtype), sin.to(dtype)
    allow = causal_allow(nf, nh * nw, causal_block_size) if causal_block_size else None

    # 3.6 transformer blocks
    for i in range(cfg["layers"]):
        n = "blk%d." % i
        m = P[n + "mod"][None] + e0                     # [Tn, 6, D]
        shift_sa, scale_sa, gate_sa = m[:, 0], m[:, 1], m[:, 2]
        shift_ff, scale_ff, gate_ff = m[:, 3], m[:, 4], m[:, 5]

        u = modulate(layer_norm(x, eps), shift_sa, scale_sa)
        q = rms_norm(linear(u, P, n + "sa.q"), P.get(n + "sa.norm_q"), eps)
        k = rms_norm(linear(u, P, n + "sa.k"), P.get(n + "sa.norm_k"), eps)
        v = linear(u, P, n + "sa.v")
        q = rope_apply(q.reshape(L, H, -1), cos, sin).transpose(0, 1)
        k = rope_apply(k.reshape(L, H, -1), cos, sin).transpose(0, 1)
        a = attention(q, k, heads_split(v, H), allow)
        x = x + gated(linear(heads_merge(a), P, n + "sa.o"), gate_sa)

        cin = layer_norm(x, eps, P[n + "ca.ln.w"], P[n + "ca.ln.b"]) if cfg["cross_attn_norm"] else x
        q = heads_split(rms_norm(linear(cin, P, n + "ca.q"), P.get(n + "ca.norm_q"), eps), H)
        k = heads_split(rms_norm(linear(ctx, P, n + "ca.k"), P.get(n + "ca.norm_k"), eps), H)
        a = attention(q, k, heads_split(linear(ctx, P, n + "ca.v"), H))
        if img is not None:
            ki = heads_split(rms_norm(linear(img, P, n + "ca.k_img"), P.get(n + "ca.norm_k_img"), eps), H)
            a = a + attention(q, ki, heads_split(linear(img, P, n + "ca.v_img"), H))
        x = x + linear(heads_merge(a), P, n + "ca.o")

        u = modulate(layer_norm(x, eps), shift_ff, scale_ff)
        y = linear(gelu_tanh(linear(u, P, n + "ffn.fc1")), P, n + "ffn.fc2")
        x = x + gated(y, gate_ff)

    # 3.7 head (modulated by e, the time embedding before time_projection) and unpatchify
    hm = P["head.mod"][None] + e[:, None, :]             # [Tn, 2, D]
    z = modulate(layer_norm(x, eps), hm[:, 0], hm[:, 1])
    out = linear(z, P, "head.out")
    return unpatchify(out, grid, cfg["patch"], cfg["out_channels"])


# ----------------------------------------------------------------------------------------------------------
# HDF5 inputs / outputs
# ----------------------------------------------------------------------------------------------------------

def read_inputs(path):
    inp = {}
    with h5py.File(path, "r") as f:
        for name in INPUT_DATASETS:
            if name in f:
                a = np.asarray(f[name][()])
                if name == "fps":
                    if a.size != 1:
                        raise RefError("%s: fps must be a scalar or 1-element dataset" % path)
                    a = int(a.reshape(-1)[0])
                inp[name] = a
    for name in ("latents", "timesteps", "context"):
        if name not in inp:
            raise RefError("%s: dataset '%s' missing" % (path, name))
    return inp


def write_root_attrs(f, extra, dtype_name, cbs):
    f.attrs["reelfarm_format"] = GOLDEN_FORMAT
    f.attrs["reelfarm_format_version"] = np.int64(GOLDEN_FORMAT_VERSION)
    f.attrs["generator"] = GENERATOR
    f.attrs["reference_dtype"] = dtype_name
    f.attrs["causal_block_size"] = np.int64(cbs)
    for key, val in extra:
        f.attrs[key] = val


RESERVED_ATTRS = ("reelfarm_format", "reelfarm_format_version", "generator", "reference_dtype", "causal_block_size")


def parse_attrs(items, reserved=RESERVED_ATTRS):
    """--attr KEY=VALUE pairs for the golden file; keys the script writes itself are refused."""
    out = []
    for it in items or []:
        if "=" not in it or it.startswith("="):
            raise RefError("--attr expects KEY=VALUE, got %r" % it)
        k, v = it.split("=", 1)
        if k in reserved:
            raise RefError("--attr may not override the reserved attribute %s" % k)
        out.append((k, v))
    return out


# ----------------------------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------------------------

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def cmd_forward(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    extra = parse_attrs(args.attr)
    cbs = args.causal_block_size or 0
    if args.causal_block_size is not None and args.causal_block_size < 1:
        raise RefError("--causal-block-size must be >= 1")
    dtype = DTYPES[args.dtype]
    cfg, P = load_model(args.model, dtype)
    inp = read_inputs(args.inp)
    if cbs:
        nf = inp["latents"].shape[1] // cfg["patch"][0]
        if nf % cbs:
            raise RefError("frames %d not divisible by --causal-block-size %d" % (nf, cbs))
    t0 = time.perf_counter()
    with torch.no_grad():
        y = forward(P, cfg, inp, cbs, dtype)
    dt = time.perf_counter() - t0
    y = y.to(torch.float64).numpy()
    try:
        with h5py.File(args.out, "x") as f:
            f.create_dataset("noise_pred", data=y.astype(np.float32))
            if args.copy_inputs:
                with h5py.File(args.inp, "r") as src:
                    for name in src.keys():
                        if name == "noise_pred":
                            raise RefError("input already contains noise_pred")
                        src.copy(src[name], f, name=name)
            write_root_attrs(f, extra, args.dtype, cbs)
    except BaseException:
        if os.path.exists(args.out):
            os.remove(args.out)
        raise
    print("forward: %s layout=%s shape=%s rms=%.6g time_s=%.3f -> %s" % (
        args.dtype, cfg["layout"], list(y.shape), float(np.sqrt(np.mean(y * y))), dt, args.out))


def make_timesteps(rng, nf, mode, scalar_value):
    if mode == "scalar":
        return np.array([scalar_value], dtype=np.float32)
    if nf == 1:
        return np.array([999.0], dtype=np.float32)
    if nf > 1000:
        raise RefError("per-frame timesteps need frames <= 1000 to be distinct")
    ts = np.round(np.linspace(0.0, 999.0, nf))
    rng.shuffle(ts)
    return ts.astype(np.float32)


def make_input_arrays(cfg, frames, height, width, context_len, zero_rows=0, timesteps="perframe",
                      fps=None, clip_len=None, seed=0, scalar_value=500.0):
    """Random inputs; draws in this order: latents, condition, timesteps shuffle, context, clip_features."""
    if zero_rows < 0 or zero_rows > context_len:
        raise RefError("--zero-rows must be in [0, context-len]")
    rng = np.random.default_rng(seed)
    inp = {}
    inp["latents"] = rng.standard_normal((LATENT_CHANNELS, frames, height, width)).astype(np.float32)
    if cfg["in_channels"] > LATENT_CHANNELS:
        cc = cfg["in_channels"] - LATENT_CHANNELS
        inp["condition"] = rng.standard_normal((cc, frames, height, width)).astype(np.float32)
    inp["timesteps"] = make_timesteps(rng, frames // cfg["patch"][0], timesteps, scalar_value)
    ctx = rng.standard_normal((context_len, cfg["text_dim"])).astype(np.float32)
    if zero_rows:
        ctx[context_len - zero_rows:] = 0.0
    inp["context"] = ctx
    if cfg["image_dim"] is not None:
        ni = clip_len or cfg["pos_embed_len"] or 257
        inp["clip_features"] = rng.standard_normal((ni, cfg["image_dim"])).astype(np.float32)
    if fps is not None:
        inp["fps"] = np.int64(fps)
    return inp


def write_inputs(path, inp):
    with h5py.File(path, "x") as f:
        for name in INPUT_DATASETS:
            if name in inp:
                f.create_dataset(name, data=inp[name])


def cmd_make_input(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    cfg, _ = read_model_config(args.model)
    if args.model and cfg["image_dim"] is None and args.clip_len:
        raise RefError("--clip-len given but the model has no image branch")
    inp = make_input_arrays(cfg, args.frames, args.height, args.width, args.context_len, args.zero_rows,
                            args.timesteps, args.fps, args.clip_len, args.seed, args.scalar_timestep)
    check_inputs(cfg, inp)
    write_inputs(args.out, inp)
    print("make-input: %s" % ", ".join("%s%s" % (k, list(np.shape(v))) for k, v in inp.items()))


def random_params(cfg, seed, std=None):
    """Random weights for every tensor of param_table(cfg). std=None: linear weights ~ N(0, 1/fan_in)
    (keeps activations O(1) in tiny test models); else N(0, std^2). Norm gains around 1."""
    rng = np.random.default_rng(seed)
    stored = {}
    for internal, orig, diff, shape in param_table(cfg):
        leaf = internal.split(".")[-1]
        is_norm = ("norm" in internal) or (".ln" in internal)
        if is_norm and leaf != "b":
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif is_norm:
            a = 0.1 * rng.standard_normal(shape)
        elif leaf == "w" and std is None:
            fan_in = int(np.prod(shape[1:]))
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
        elif leaf == "mod":
            a = 0.1 * rng.standard_normal(shape)
        else:
            a = (std if std is not None else 0.1) * rng.standard_normal(shape)
        stored[internal] = a.astype(np.float32)
    return stored


def internal_params(cfg, stored, dtype):
    return {k: torch.from_numpy(np.ascontiguousarray(_to_internal(k, v.astype(np.float64)))).to(dtype)
            for k, v in stored.items()}


def tiny_config(kind="t2v", dim=256, heads=2, layers=2, ffn=512, text_dim=64, freq_dim=256, image_dim=64,
                inject_sample_info=None, pos_embed_len=None, eps=1e-6):
    if inject_sample_info is None:
        inject_sample_info = kind == "t2v"
    return {
        "layout": None, "dim": dim, "heads": heads, "head_dim": dim // heads,
        "in_channels": 36 if kind == "i2v" else 16, "out_channels": 16, "text_dim": text_dim,
        "freq_dim": freq_dim, "ffn_dim": ffn, "layers": layers, "eps": eps, "qk_norm": True,
        "cross_attn_norm": True, "image_dim": image_dim if kind == "i2v" else None,
        "pos_embed_len": pos_embed_len if kind == "i2v" else None,
        "inject_sample_info": bool(inject_sample_info), "patch": (1, 2, 2), "rope_max": 1024,
    }


def write_model_dir(out, cfg, stored, layout, weight_dtype="F32", shards=1):
    """Writes a model directory (Diffusers or original layout) from stored-layout arrays keyed by internal name."""
    if os.path.exists(out) and os.listdir(out):
        raise RefError("%s exists and is not empty" % out)
    col = 1 if layout == "original" else 2
    named = {row[col]: stored[row[0]] for row in param_table(cfg)}
    if layout == "diffusers":
        d = os.path.join(out, "transformer")
        conf = {
            "_class_name": "SkyReelsV2Transformer3DModel", "patch_size": list(cfg["patch"]),
            "num_attention_heads": cfg["heads"], "attention_head_dim": cfg["head_dim"],
            "in_channels": cfg["in_channels"], "out_channels": cfg["out_channels"],
            "text_dim": cfg["text_dim"], "freq_dim": cfg["freq_dim"], "ffn_dim": cfg["ffn_dim"],
            "num_layers": cfg["layers"], "cross_attn_norm": cfg["cross_attn_norm"],
            "qk_norm": "rms_norm_across_heads", "eps": cfg["eps"], "image_dim": cfg["image_dim"],
            "added_kv_proj_dim": cfg["dim"] if cfg["image_dim"] is not None else None,
            "rope_max_seq_len": cfg["rope_max"], "pos_embed_seq_len": cfg["pos_embed_len"],
            "inject_sample_info": cfg["inject_sample_info"], "num_frame_per_block": 1,
        }
        base = "diffusion_pytorch_model"
    elif layout == "original":
        d = out
        conf = {
            "model_type": "i2v" if cfg["image_dim"] is not None else "t2v", "in_dim": cfg["in_channels"],
            "dim": cfg["dim"], "ffn_dim": cfg["ffn_dim"], "freq_dim": cfg["freq_dim"],
            "out_dim": cfg["out_channels"], "num_heads": cfg["heads"], "num_layers": cfg["layers"],
            "eps": cfg["eps"], "inject_sample_info": cfg["inject_sample_info"], "text_len": 512,
            "text_dim": cfg["text_dim"],
        }
        if cfg["image_dim"] is not None:
            conf["image_dim"] = cfg["image_dim"]
        base = "model"
    else:
        raise RefError("layout must be diffusers or original")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    if shards <= 1:
        write_safetensors(os.path.join(d, base + ".safetensors"), named, weight_dtype)
        return
    names = sorted(named)
    wmap = {}
    for s in range(shards):
        fn = "%s-%05d-of-%05d.safetensors" % (base, s + 1, shards)
        part = {n: named[n] for n in names[s::shards]}
        write_safetensors(os.path.join(d, fn), part, weight_dtype)
        wmap.update({n: fn for n in part})
    with open(os.path.join(d, base + ".safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wmap}, f, indent=2)


def cmd_make_model(args):
    cfg = tiny_config(args.kind, args.dim, args.heads, args.layers, args.ffn, args.text_dim, args.freq_dim,
                      args.image_dim, args.inject_sample_info, args.pos_embed_len)
    stored = random_params(cfg, args.seed)
    write_model_dir(args.out, cfg, stored, args.layout, args.weight_dtype, args.shards)
    print("make-model: %s %s layout, %d tensors, weights %s -> %s" % (
        args.kind, args.layout, len(stored), args.weight_dtype, args.out))


def cmd_bench(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dim % args.heads:
        raise RefError("--dim must be divisible by --heads")
    cfg = tiny_config("t2v", args.dim, args.heads, args.layers, args.ffn, args.text_dim, 256,
                      inject_sample_info=False)
    stored = random_params(cfg, args.seed, std=0.02)
    P = internal_params(cfg, stored, torch.float32)
    del stored
    inp = make_input_arrays(cfg, args.frames, args.height, args.width, args.text_len, seed=args.seed + 1)
    nf, nh, nw = check_inputs(cfg, inp)
    times = []
    with torch.no_grad():
        for it in range(args.warmup + args.repeat):
            t0 = time.perf_counter()
            y = forward(P, cfg, inp, 0, torch.float32)
            dt = time.perf_counter() - t0
            if not torch.isfinite(y).all():
                raise RefError("bench: non-finite output")
            if it >= args.warmup:
                times.append(dt)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("bench impl=pytorch-cpu torch=%s threads=%d dim=%d heads=%d ffn=%d layers=%d tokens=%d "
          "forward_s_min=%.4f forward_s_median=%.4f peak_rss_mb=%.1f" % (
              torch.__version__, torch.get_num_threads(), args.dim, args.heads, args.ffn, args.layers,
              nf * nh * nw, min(times), float(np.median(times)), rss_mb))


# ----------------------------------------------------------------------------------------------------------
# selftest: the reference checked against itself (and a few independent element-wise statements)
# ----------------------------------------------------------------------------------------------------------

def _rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _maxabs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def params_fingerprint(params):
    """(sum, sum of squares, count) of every parameter value taken as float32, accumulated in float64 per
    tensor in sorted name order: the golden files record them so the C tests can tell a changed tiny-model
    generator from a numerical regression. Shared by the DiT, text-encoder and VAE references."""
    total = sumsq = 0.0
    count = 0
    for name in sorted(params):
        a = params[name].to(torch.float32).to(torch.float64)
        total += float(a.sum())
        sumsq += float((a * a).sum())
        count += a.numel()
    return total, sumsq, count


def cmd_fingerprint(args):
    _, params = load_model(args.model, dtype=torch.float64)
    print("%.17g %.17g %d" % params_fingerprint(params))


def cmd_selftest(args):
    results = []

    def check(name, ok, detail):
        results.append(ok)
        print("selftest %-52s %s  %s" % (name, "pass" if ok else "FAIL", detail))
        sys.stdout.flush()

    def run(model_dir, inp, cbs=0, dtype=torch.float64):
        cfg, P = load_model(model_dir, dtype)
        with torch.no_grad():
            return forward(P, cfg, inp, cbs, dtype).to(torch.float64).numpy()

    # parameter table vs the released models' tensor and parameter counts (spec 1, 2.3)
    for name, kw, want_t, want_n in [
            ("DF-1.3B", dict(kind="t2v", dim=1536, heads=12, layers=30, ffn=8960, inject_sample_info=1), 830, 1435525696),
            ("DF-14B", dict(kind="t2v", dim=5120, heads=40, layers=40, ffn=13824, inject_sample_info=0), 1095, 14288491584),
            ("I2V-1.3B", dict(kind="i2v", dim=1536, heads=12, layers=30, ffn=8960, image_dim=1280), None, 1564428608),
            ("I2V-14B", dict(kind="i2v", dim=5120, heads=40, layers=40, ffn=13824, image_dim=1280), None, 16394878784)]:
        tab = param_table(tiny_config(text_dim=4096, **kw))
        n = sum(int(np.prod(row[3])) for row in tab)
        check("    param table %s: counts as spec 1/2.3" % name, n == want_n and want_t in (None, len(tab)),
              "tensors=%d params=%d" % (len(tab), n))

    tmp = tempfile.mkdtemp(prefix="wan_dit_ref_selftest_")
    try:
        nF, h, w = 4, 8, 12  # grid 4 x 4 x 6, L = 96
        # ---------------- T2V tiny model (fps injection on) ----------------
        cfg = tiny_config("t2v")
        stored = random_params(cfg, seed=1)
        dd, do = os.path.join(tmp, "t2v_diff"), os.path.join(tmp, "t2v_orig")
        write_model_dir(dd, cfg, stored, "diffusers")
        write_model_dir(do, cfg, stored, "original")
        inp = make_input_arrays(cfg, nF, h, w, 7, zero_rows=2, seed=2, fps=1)

        y64 = run(dd, inp)
        check("t2v output finite, nonzero", bool(np.isfinite(y64).all() and np.abs(y64).max() > 0),
              "shape=%s rms=%.4f" % (list(y64.shape), float(np.sqrt(np.mean(y64 ** 2)))))
        y32 = run(dd, inp, dtype=torch.float32)
        r = _rel_l2(y32, y64)
        check("(a) t2v float32 vs float64 rel_l2 < 1e-5", r < 1e-5, "rel_l2=%.3e" % r)
        yo = run(do, inp)
        d = _maxabs(yo, y64)
        check("(b) t2v original vs diffusers naming identical", d == 0.0, "max_abs=%.3e" % d)

        ds = os.path.join(tmp, "t2v_diff_sharded")
        write_model_dir(ds, cfg, stored, "diffusers", shards=3)
        d = _maxabs(run(ds, inp), y64)
        check("    t2v sharded diffusers (index.json) identical", d == 0.0, "max_abs=%.3e" % d)
        dos = os.path.join(tmp, "t2v_orig_sharded")
        write_model_dir(dos, cfg, stored, "original", shards=2)
        d = _maxabs(run(dos, inp), y64)
        check("    t2v sharded original (index.json) identical", d == 0.0, "max_abs=%.3e" % d)

        yc = run(dd, inp, cbs=nF)
        d = _maxabs(yc, y64)
        check("(c) causal block = F equals full attention", d < 1e-13, "max_abs=%.3e" % d)
        yc1 = run(dd, inp, cbs=1)
        r = _rel_l2(yc1, y64)
        check("    causal block = 1 differs from full", r > 1e-3, "rel_l2=%.3e" % r)
        yc2 = run(dd, inp, cbs=2)
        r2 = _rel_l2(yc2, y64)
        check("    causal block = 2 differs from full", r2 > 1e-3, "rel_l2=%.3e" % r2)
        # frames of block b must not depend on later frames: perturb the last frame's latents
        inp_p = dict(inp)
        lat = inp["latents"].copy()
        lat[:, nF - 1] += 1.0
        inp_p["latents"] = lat
        yp = run(dd, inp_p, cbs=2)
        d_early = _maxabs(yp[:, :2], yc2[:, :2])
        d_late = _maxabs(yp[:, 2:], yc2[:, 2:])
        check("    causal 2: frames 0-1 ignore a change in frame 3", d_early < 1e-13 and d_late > 1e-3,
              "early max_abs=%.3e late max_abs=%.3e" % (d_early, d_late))
        yfull_p = run(dd, inp_p)
        d_full = _maxabs(yfull_p[:, :2], y64[:, :2])
        check("    full attention: frames 0-1 do see frame 3", d_full > 1e-3, "max_abs=%.3e" % d_full)

        inp_s = dict(inp, timesteps=np.array([613.0], dtype=np.float32))
        inp_v = dict(inp, timesteps=np.full(nF, 613.0, dtype=np.float32))
        ys, yv = run(dd, inp_s), run(dd, inp_v)
        d = _maxabs(ys, yv)
        check("(d) scalar timestep [v] equals per-frame all v", d < 1e-12, "max_abs=%.3e" % d)
        r = _rel_l2(ys, y64)
        check("    ... and differs from distinct per-frame values", r > 1e-3, "rel_l2=%.3e" % r)

        # (e) bf16 / f16 stored weights: compare with F32 files holding the same rounded values
        for wdt in ("BF16", "F16"):
            if wdt == "BF16":
                rounded = {k: (bf16_round(v).astype(np.uint32) << 16).view(np.float32) for k, v in stored.items()}
            else:
                rounded = {k: v.astype(np.float16).astype(np.float32) for k, v in stored.items()}
            dl, dr = os.path.join(tmp, "t2v_" + wdt), os.path.join(tmp, "t2v_" + wdt + "_as_f32")
            write_model_dir(dl, cfg, stored, "diffusers", weight_dtype=wdt)
            write_model_dir(dr, cfg, rounded, "original")
            yl, yr = run(dl, inp), run(dr, inp)
            d = _maxabs(yl, yr)
            r = _rel_l2(yl, y64)
            check("(e) %s weights load (= F32 of rounded values)" % wdt, d == 0.0 and 0 < r < 0.05,
                  "max_abs=%.3e rel_l2 vs f32 weights=%.3e" % (d, r))

        y0 = run(dd, dict(inp, fps=0))
        r = _rel_l2(y0, y64)
        check("    fps 0 vs fps 1 differ (fps path live)", r > 1e-3, "rel_l2=%.3e" % r)
        inp_nofps = {k: v for k, v in inp.items() if k != "fps"}
        d = _maxabs(run(dd, inp_nofps), y64)
        check("    fps absent defaults to 1", d == 0.0, "max_abs=%.3e" % d)
        inp_ctx = dict(inp)
        c2 = inp["context"].copy()
        c2[0] += 1.0
        inp_ctx["context"] = c2
        r = _rel_l2(run(dd, inp_ctx), y64)
        check("    context change reaches the output", r > 1e-4, "rel_l2=%.3e" % r)

        # model without fps embedding ignores fps
        cfg_nf = tiny_config("t2v", inject_sample_info=False)
        dn = os.path.join(tmp, "t2v_nofps")
        write_model_dir(dn, cfg_nf, random_params(cfg_nf, seed=3), "original")
        d = _maxabs(run(dn, dict(inp, fps=0)), run(dn, dict(inp, fps=1)))
        check("    model without fps embedding ignores fps", d == 0.0, "max_abs=%.3e" % d)

        # ---------------- independent element-wise statements of 3.2, 3.3, 3.7 ----------------
        x = torch.from_numpy(np.random.default_rng(4).standard_normal((16, nF, h, w)))
        Wp = torch.from_numpy(np.random.default_rng(5).standard_normal((256, 16, 1, 2, 2)))
        tok, grid = patchify(x, (1, 2, 2))
        conv = tnf.conv3d(x[None], Wp, stride=(1, 2, 2))[0]            # [D, F, hp, wp]
        d = _maxabs(tok @ Wp.reshape(256, -1).T, conv.reshape(256, -1).T)
        check("    patch GEMM (c,ky,kx) order equals Conv3d", d < 1e-10, "max_abs=%.3e" % d)
        o = torch.from_numpy(np.random.default_rng(6).standard_normal((grid[0] * grid[1] * grid[2], 64)))
        img = unpatchify(o, grid, (1, 2, 2), 16).numpy()
        bad = 0
        for (f, yy, xx, ky, kx, c) in [(0, 0, 0, 0, 0, 0), (3, 2, 5, 1, 0, 7), (1, 3, 1, 0, 1, 15), (2, 1, 4, 1, 1, 9)]:
            n = (f * grid[1] + yy) * grid[2] + xx
            bad += img[c, f, 2 * yy + ky, 2 * xx + kx] != o[n, (ky * 2 + kx) * 16 + c].item()
        check("    unpatchify channel-last index formula", bad == 0, "mismatches=%d" % bad)
        dh = 128
        cos, sin = rope_tables(dh, grid)
        qv = torch.from_numpy(np.random.default_rng(7).standard_normal((grid[0] * grid[1] * grid[2], 1, dh)))
        rq = rope_apply(qv, cos, sin)
        worst = 0.0
        for (f, yy, xx) in [(0, 0, 0), (3, 2, 5), (1, 3, 1)]:
            n = (f * grid[1] + yy) * grid[2] + xx
            for j in range(64):
                if j < 22:
                    ang = f / 10000.0 ** (2.0 * j / 44.0)
                elif j < 43:
                    ang = yy / 10000.0 ** (2.0 * (j - 22) / 42.0)
                else:
                    ang = xx / 10000.0 ** (2.0 * (j - 43) / 42.0)
                a, b = qv[n, 0, 2 * j].item(), qv[n, 0, 2 * j + 1].item()
                worst = max(worst, abs(rq[n, 0, 2 * j].item() - (a * math.cos(ang) - b * math.sin(ang))),
                            abs(rq[n, 0, 2 * j + 1].item() - (a * math.sin(ang) + b * math.cos(ang))))
        check("    RoPE d=128 split 22/21/21, adjacent pairs", worst < 1e-12, "max_abs=%.3e" % worst)
        s = sinusoid(torch.tensor([0.0, 999.0], dtype=torch.float64), 256).numpy()
        ref = [math.cos(999.0 * 10000.0 ** (-5 / 128.0)), math.sin(999.0 * 10000.0 ** (-5 / 128.0))]
        ok = s[0, 0] == 1.0 and s[0, 128] == 0.0 and abs(s[1, 5] - ref[0]) < 1e-12 and abs(s[1, 133] - ref[1]) < 1e-12
        check("    sinusoid cos-first, w_j = 10000^(-j/128)", bool(ok), "s[999][5]=%.12f" % s[1, 5])

        # ---------------- I2V tiny model (image branch, added k/v) ----------------
        cfg_i = tiny_config("i2v")
        st_i = random_params(cfg_i, seed=8)
        di, dio = os.path.join(tmp, "i2v_diff"), os.path.join(tmp, "i2v_orig")
        write_model_dir(di, cfg_i, st_i, "diffusers")
        write_model_dir(dio, cfg_i, st_i, "original")
        inp_i = make_input_arrays(read_model_config(di)[0], nF, h, w, 5, zero_rows=1, seed=9, clip_len=9)
        yi = run(di, inp_i)
        check("i2v output finite, nonzero", bool(np.isfinite(yi).all() and np.abs(yi).max() > 0),
              "rms=%.4f" % float(np.sqrt(np.mean(yi ** 2))))
        r = _rel_l2(run(di, inp_i, dtype=torch.float32), yi)
        check("(a) i2v float32 vs float64 rel_l2 < 1e-5", r < 1e-5, "rel_l2=%.3e" % r)
        d = _maxabs(run(dio, inp_i), yi)
        check("(b) i2v original vs diffusers naming identical", d == 0.0, "max_abs=%.3e" % d)
        dib = os.path.join(tmp, "i2v_bf16")
        write_model_dir(dib, cfg_i, st_i, "original", weight_dtype="BF16")
        r = _rel_l2(run(dib, inp_i), yi)
        check("(e) i2v BF16 weights load", 0 < r < 0.05, "rel_l2 vs f32 weights=%.3e" % r)
        c2 = inp_i["clip_features"].copy()
        c2[3] += np.random.default_rng(12).standard_normal(c2.shape[1]).astype(np.float32)  # (a constant
        # shift of a row would be removed by the image embedder's first LayerNorm)
        r = _rel_l2(run(di, dict(inp_i, clip_features=c2)), yi)
        check("    i2v clip_features change reaches the output", r > 1e-4, "rel_l2=%.3e" % r)
        c2 = inp_i["condition"].copy()
        c2[0] += 1.0
        r = _rel_l2(run(di, dict(inp_i, condition=c2)), yi)
        check("    i2v condition change reaches the output", r > 1e-4, "rel_l2=%.3e" % r)

        cfg_p = tiny_config("i2v", pos_embed_len=6)
        st_p = random_params(cfg_p, seed=10)
        dp, dpo = os.path.join(tmp, "i2v_pos_diff"), os.path.join(tmp, "i2v_pos_orig")
        write_model_dir(dp, cfg_p, st_p, "diffusers")
        write_model_dir(dpo, cfg_p, st_p, "original")
        inp_p = make_input_arrays(read_model_config(dp)[0], nF, h, w, 5, seed=11)
        yp = run(dp, inp_p)
        d = _maxabs(run(dpo, inp_p), yp)
        check("(b) i2v+pos_embed original (by tensor) vs diffusers", d == 0.0 and inp_p["clip_features"].shape[0] == 6,
              "max_abs=%.3e Ni=%d" % (d, inp_p["clip_features"].shape[0]))

        # ---------------- command line round trip ----------------
        me = os.path.abspath(__file__)
        fin, fout = os.path.join(tmp, "in.h5"), os.path.join(tmp, "out.h5")
        r1 = subprocess.run([sys.executable, me, "make-input", "--model", dd, "--out", fin, "--frames", "4",
                             "--height", "8", "--width", "12", "--context-len", "7", "--zero-rows", "2",
                             "--fps", "1", "--seed", "2"], capture_output=True, text=True)
        r2 = subprocess.run([sys.executable, me, "forward", "--model", do, "--in", fin, "--out", fout,
                             "--causal-block-size", "2", "--copy-inputs", "--attr", "case=t2v_tiny"],
                            capture_output=True, text=True)
        r3 = subprocess.run([sys.executable, me, "forward", "--model", do, "--in", fin, "--out", fout],
                            capture_output=True, text=True)
        ok, detail = r1.returncode == 0 and r2.returncode == 0 and r3.returncode == 1, \
            "rc=%d,%d,%d" % (r1.returncode, r2.returncode, r3.returncode)
        if ok:
            with h5py.File(fout, "r") as f:
                a = f.attrs
                np_ = f["noise_pred"][()]
                ok = (a["reelfarm_format"] == GOLDEN_FORMAT and int(a["reelfarm_format_version"]) == 1
                      and a["generator"] == GENERATOR and a["reference_dtype"] == "float64"
                      and int(a["causal_block_size"]) == 2 and a["case"] == "t2v_tiny"
                      and np_.dtype == np.float32 and set(f.keys()) == {"noise_pred", "latents", "timesteps",
                                                                         "context", "fps"})
                ok = ok and np.array_equal(f["latents"][()], inp["latents"]) and int(f["fps"][()]) == 1
                d = _maxabs(np_, yc2.astype(np.float32))
                ok = ok and d == 0.0
                detail += " keys=%s noise_pred vs in-process max_abs=%.3e" % (sorted(f.keys()), d)
        if not ok:
            detail += " | " + (r1.stderr + r2.stderr + r3.stderr).strip().replace("\n", " / ")[-400:]
        check("CLI make-input/forward, attrs, copy-inputs, no-overwrite", bool(ok), detail)
    finally:
        if args.keep:
            print("selftest: kept %s" % tmp)
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    nfail = results.count(False)
    print("selftest: %d checks, %d failed" % (len(results), nfail))
    return 1 if nfail else 0


# ----------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Independent PyTorch reference of the SkyReels-V2 / Wan2.1 DiT "
                                             "forward (spec sections 1, 2.2, 2.3, 3).")
    sub = ap.add_subparsers(dest="cmd")
    sub.required = True

    p = sub.add_parser("forward", help="one DiT forward on an HDF5 input; writes noise_pred")
    p.add_argument("--model", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--causal-block-size", type=int, default=None)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    p.add_argument("--copy-inputs", action="store_true")
    p.add_argument("--attr", action="append", metavar="KEY=VALUE")
    p.set_defaults(fn=cmd_forward)

    p = sub.add_parser("fingerprint", help="print sum, sum of squares and count of the stored weights")
    p.add_argument("--model", required=True)
    p.set_defaults(fn=cmd_fingerprint)

    p = sub.add_parser("make-input", help="random HDF5 inputs for a model")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--context-len", type=int, required=True)
    p.add_argument("--zero-rows", type=int, default=0)
    p.add_argument("--timesteps", choices=["perframe", "scalar"], default="perframe")
    p.add_argument("--scalar-timestep", type=float, default=500.0, help="value for --timesteps scalar")
    p.add_argument("--fps", type=int, choices=[0, 1], default=None)
    p.add_argument("--clip-len", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_input)

    p = sub.add_parser("bench", help="time the float32 forward with random weights")
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--heads", type=int, required=True)
    p.add_argument("--ffn", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--text-len", type=int, required=True)
    p.add_argument("--text-dim", type=int, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("make-model", help="write a tiny random model directory (test helper)")
    p.add_argument("--out", required=True)
    p.add_argument("--kind", choices=["t2v", "i2v"], default="t2v")
    p.add_argument("--layout", choices=["diffusers", "original"], default="diffusers")
    p.add_argument("--weight-dtype", choices=["F32", "BF16", "F16"], default="F32")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ffn", type=int, default=512)
    p.add_argument("--text-dim", type=int, default=64)
    p.add_argument("--freq-dim", type=int, default=256)
    p.add_argument("--image-dim", type=int, default=64)
    p.add_argument("--inject-sample-info", type=int, choices=[0, 1], default=None,
                   help="fps embedding (default: 1 for t2v, 0 for i2v)")
    p.add_argument("--pos-embed-len", type=int, default=None, help="i2v: image position table length")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_model)

    p = sub.add_parser("selftest", help="check the reference against itself (exit 1 on failure)")
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
