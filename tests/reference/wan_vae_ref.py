#!/usr/bin/env python3
# tests/reference/wan_vae_ref.py - independent PyTorch reference of the Wan 2.1 VAE (AutoencoderKLWan).
#
# Test tooling only (never part of the product): writes golden tensors for the C tests and times a PyTorch
# CPU encode/decode for the memory benchmark. Written from shared/reference/skyreels-v2-spec.md, not from
# upstream code:
#   2.2  vae/config.json keys (Diffusers layout),
#   2.4  tensor names and shapes (Diffusers names; the original names through --naming original),
#   7.1  primitive layers, 7.2 architecture, 7.3 chunked encode, 7.4 chunked decode and the whole-sequence
#        equivalences, 7.5 scale factors, 7.6 latent normalisation constants, 7.7 output clamp.
# Two computations are implemented and checked against each other by the selftest:
#   * "chunked": the upstream scheme - encode chunks of 1, 4, 4, ... frames, decode one latent frame at a
#     time, a feature cache per causal conv ("Rep" marker rule for upsample3d). Outputs use this path.
#   * "whole": the whole-sequence re-statement of spec 7.4 (2 zero frames in front of every cached conv,
#     downsample3d = [q0] ++ strided windows, upsample3d = [x0] ++ interleave(time_conv over [0,0,x1..])).
# The maths runs in float64 (default) or float32; the bf16 autocast of spec 7.8 is deliberately NOT reproduced.
# Needs torch, numpy, h5py; run with Debian's /usr/bin/python3. Shared helpers (safetensors reading/writing,
# RefError, --attr parsing) are imported from wan_dit_ref.py.
#
# Subcommands: decode, encode, make-input, make-model, fingerprint, bench, selftest. See README-vae.md here.

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as tnf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_dit_ref as wdr  # noqa: E402  (shared safetensors / attribute helpers)

GENERATOR = "tests/reference/wan_vae_ref.py"
GOLDEN_FORMAT = "reelfarm-golden-vae"
GOLDEN_FORMAT_VERSION = 1
RESERVED_ATTRS = ("reelfarm_format", "reelfarm_format_version", "generator", "reference_dtype", "operation",
                  "reference_path", "frames_in", "frames_used", "frames_out", "latents_mean", "latents_std")
ENCODE_CHUNK = 4          # spec 7.3: the encoder runs on 1 frame, then chunks of 4 (hard-coded upstream)
NORM_EPS = 1e-12          # spec 7.1: RMS_norm divides by max(||x||_2, 1e-12)
DTYPES = {"float64": torch.float64, "float32": torch.float32}

# spec 7.6 (channel order 0..15)
SPEC_LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
SPEC_LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]

RefError = wdr.RefError  # one error type across the reference scripts
SafeTensorsFile = wdr.SafeTensorsFile
write_safetensors = wdr.write_safetensors
bf16_round = wdr.bf16_round
parse_attrs = wdr.parse_attrs


def log(msg):
    print("wan_vae_ref: " + msg, file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------
# Configuration (spec 2.2) -> one internal config dict
# ----------------------------------------------------------------------------------------------------------

def make_config(base_dim=96, z_dim=16, dim_mult=(1, 2, 4, 4), num_res_blocks=2,
                temperal_downsample=(False, True, True), latents_mean=None, latents_std=None,
                in_channels=3, out_channels=3, decoder_base_dim=None, where="config"):
    dim_mult = [int(m) for m in dim_mult]
    td = [bool(t) for t in temperal_downsample]
    if base_dim < 1 or z_dim < 1 or num_res_blocks < 1 or not dim_mult or min(dim_mult) < 1:
        raise RefError("%s: base_dim, z_dim, num_res_blocks and dim_mult entries must be >= 1" % where)
    if len(dim_mult) < 2:
        raise RefError("%s: dim_mult needs at least 2 entries" % where)
    if len(td) != len(dim_mult) - 1:
        raise RefError("%s: temperal_downsample must have len(dim_mult) - 1 = %d entries" % (where, len(dim_mult) - 1))
    ntime = sum(td)
    if (1 << ntime) > ENCODE_CHUNK:
        raise RefError("%s: %d temporal downsamples; the 4-frame encode chunks allow at most 2" % (where, ntime))
    if latents_mean is None:
        latents_mean = SPEC_LATENTS_MEAN if z_dim == 16 else [0.0] * z_dim
    if latents_std is None:
        latents_std = SPEC_LATENTS_STD if z_dim == 16 else [1.0] * z_dim
    if len(latents_mean) != z_dim or len(latents_std) != z_dim:
        raise RefError("%s: latents_mean / latents_std must have z_dim = %d entries" % (where, z_dim))
    if min(float(s) for s in latents_std) <= 0:
        raise RefError("%s: latents_std entries must be > 0" % where)
    dec_base = int(decoder_base_dim) if decoder_base_dim is not None else int(base_dim)
    if any((dec_base * m) % 2 for m in dim_mult[1:]):
        raise RefError("%s: decoder stage widths must be even (upsamplers halve them)" % where)
    return {
        "base_dim": int(base_dim), "decoder_base_dim": dec_base, "z_dim": int(z_dim), "dim_mult": dim_mult,
        "num_res_blocks": int(num_res_blocks), "temperal_downsample": td,
        "latents_mean": [float(v) for v in latents_mean], "latents_std": [float(v) for v in latents_std],
        "in_channels": int(in_channels), "out_channels": int(out_channels),
        "scale_spatial": 1 << (len(dim_mult) - 1), "scale_temporal": 1 << ntime,
    }


def parse_config(c, where="config.json"):
    """vae/config.json (AutoencoderKLWan keys, spec 2.2) -> internal config."""
    for key in ("base_dim", "z_dim", "dim_mult", "num_res_blocks", "temperal_downsample"):
        if key not in c:
            raise RefError("%s: missing key '%s'" % (where, key))
    if c.get("attn_scales") not in (None, []):
        raise RefError("%s: attn_scales %r not supported (only [])" % (where, c.get("attn_scales")))
    if c.get("is_residual"):
        raise RefError("%s: is_residual (Wan 2.2 VAE) not supported" % where)
    if c.get("patch_size") is not None:
        raise RefError("%s: patch_size %r not supported (only null)" % (where, c.get("patch_size")))
    if c.get("dropout", 0.0) not in (0, 0.0):
        log("note: %s: dropout %r ignored (inference)" % (where, c.get("dropout")))
    return make_config(int(c["base_dim"]), int(c["z_dim"]), c["dim_mult"], int(c["num_res_blocks"]),
                       c["temperal_downsample"], c.get("latents_mean"), c.get("latents_std"),
                       int(c.get("in_channels", 3)), int(c.get("out_channels", 3)), c.get("decoder_base_dim"),
                       where)


def config_json(cfg):
    c = {
        "_class_name": "AutoencoderKLWan", "base_dim": cfg["base_dim"], "z_dim": cfg["z_dim"],
        "dim_mult": cfg["dim_mult"], "num_res_blocks": cfg["num_res_blocks"], "attn_scales": [],
        "temperal_downsample": cfg["temperal_downsample"], "dropout": 0.0,
        "latents_mean": cfg["latents_mean"], "latents_std": cfg["latents_std"],
    }
    if cfg["decoder_base_dim"] != cfg["base_dim"]:
        c["decoder_base_dim"] = cfg["decoder_base_dim"]
    if cfg["in_channels"] != 3 or cfg["out_channels"] != 3:
        c["in_channels"], c["out_channels"] = cfg["in_channels"], cfg["out_channels"]
    return c


def vae_dir(model_dir):
    """DIR/vae (Diffusers root) or DIR itself when it holds the VAE files."""
    sub = os.path.join(model_dir, "vae")
    if os.path.isdir(sub) and (os.path.isfile(os.path.join(sub, "config.json")) or
                               any(n.endswith(".safetensors") for n in os.listdir(sub))):
        return sub
    if os.path.isfile(os.path.join(model_dir, "config.json")) or (
            os.path.isdir(model_dir) and any(n.endswith(".safetensors") for n in os.listdir(model_dir))):
        return model_dir
    raise RefError("%s: neither vae/config.json nor config.json found" % model_dir)


ORIGINAL_FILES = ("Wan2.1_VAE.safetensors", "wan_2.1_vae.safetensors")


def _is_vae_config(path):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        c = json.load(f)
    return c if ("base_dim" in c or "dim_mult" in c) else None


def _infer_original_config(files):
    """Config-less original file: the released structure (spec 7.2) with the widths read from the tensors."""
    shapes = {}
    for path in files:
        st = SafeTensorsFile(path)
        shapes.update({n: st.shape(n) for n in st.entries})
    for n in ("encoder.conv1.weight", "conv2.weight", "decoder.head.2.weight"):
        if n not in shapes:
            raise RefError("%s: tensor %s missing (not an original-named Wan VAE)" % (files[0], n))
    return make_config(base_dim=shapes["encoder.conv1.weight"][0], z_dim=shapes["conv2.weight"][0],
                       in_channels=shapes["encoder.conv1.weight"][1], out_channels=shapes["decoder.head.2.weight"][0],
                       decoder_base_dim=shapes["decoder.head.2.weight"][1], where=files[0])


def read_vae_config(model_dir, naming="diffusers"):
    """Returns (cfg, weight files).
    diffusers: DIR/vae/config.json (or DIR/config.json) + diffusion_pytorch_model.safetensors (or its index, or
    every *.safetensors there).
    original: a .safetensors file given directly, DIR/Wan2.1_VAE.safetensors (the original SkyReels layout), or
    DIR[/vae] holding original-named *.safetensors; an AutoencoderKLWan config.json next to the weights is used
    when present, otherwise the released structure with the widths read from the tensors."""
    if naming == "original":
        if os.path.isfile(model_dir) and model_dir.endswith(".safetensors"):
            files = [model_dir]
            cfgpath = os.path.join(os.path.dirname(model_dir) or ".", "config.json")
        else:
            cand = [os.path.join(model_dir, n) for n in ORIGINAL_FILES if os.path.isfile(os.path.join(model_dir, n))]
            if cand:
                files, cfgpath = cand[:1], None  # DIR/config.json there is the DiT's
            else:
                d = vae_dir(model_dir)
                files, cfgpath = wdr._weight_files(d, None), os.path.join(d, "config.json")
        c = _is_vae_config(cfgpath) if cfgpath else None
        cfg = parse_config(c, cfgpath) if c is not None else _infer_original_config(files)
        return cfg, files
    d = vae_dir(model_dir)
    where = os.path.join(d, "config.json")
    if not os.path.isfile(where):
        raise RefError("%s: missing (for an original-named file pass --naming original)" % where)
    c = _is_vae_config(where)
    if c is None:
        raise RefError("%s: not an AutoencoderKLWan config" % where)
    cfg = parse_config(c, where)
    single = os.path.join(d, "diffusion_pytorch_model.safetensors")
    if os.path.isfile(os.path.join(d, "diffusion_pytorch_model.safetensors.index.json")):
        files = wdr._weight_files(d, "diffusion_pytorch_model.safetensors.index.json")
    elif os.path.isfile(single):
        files = [single]
    else:
        files = wdr._weight_files(d, None)
    return cfg, files


# ----------------------------------------------------------------------------------------------------------
# Architecture (spec 7.2) and parameter table (spec 2.4)
# ----------------------------------------------------------------------------------------------------------

def architecture(cfg):
    """enc: flat list of ('res', k, cin, cout) | ('down2d'|'down3d', k, C) (encoder.down_blocks.k);
    dec: list of stages {'i', 'resnets': [(cin, cout)], 'up': None|'up2d'|'up3d', 'up_dim'}."""
    b, mult, R = cfg["base_dim"], cfg["dim_mult"], cfg["num_res_blocks"]
    dims = [b * m for m in [1] + mult]
    enc, k = [], 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(R):
            enc.append(("res", k, cin, cout))
            cin = cout
            k += 1
        if i != len(mult) - 1:
            enc.append(("down3d" if cfg["temperal_downsample"][i] else "down2d", k, cout))
            k += 1
    db = cfg["decoder_base_dim"]
    ddims = [db * m for m in [mult[-1]] + mult[::-1]]
    tup = cfg["temperal_downsample"][::-1]
    dec = []
    for i, (cin, cout) in enumerate(zip(ddims[:-1], ddims[1:])):
        if i > 0:
            cin //= 2  # the previous stage's upsampler halved its channels
        res = []
        for _ in range(R + 1):
            res.append((cin, cout))
            cin = cout
        up = None if i == len(mult) - 1 else ("up3d" if tup[i] else "up2d")
        dec.append({"i": i, "resnets": res, "up": up, "up_dim": cout})
    return {"enc": enc, "enc_out": dims[-1], "dec": dec, "dec_in": ddims[0], "dec_out": ddims[-1]}


def param_table(cfg):
    """Rows (diffusers name, original name, shape), spec 2.4."""
    A = architecture(cfg)
    z, cin, cout = cfg["z_dim"], cfg["in_channels"], cfg["out_channels"]
    rows = []

    def conv(dn, on, shape):
        rows.append((dn + ".weight", on + ".weight", list(shape)))
        rows.append((dn + ".bias", on + ".bias", [shape[0]]))

    def res(dn, on, a, b):
        rows.append((dn + ".norm1.gamma", on + ".residual.0.gamma", [a, 1, 1, 1]))
        conv(dn + ".conv1", on + ".residual.2", [b, a, 3, 3, 3])
        rows.append((dn + ".norm2.gamma", on + ".residual.3.gamma", [b, 1, 1, 1]))
        conv(dn + ".conv2", on + ".residual.6", [b, b, 3, 3, 3])
        if a != b:
            conv(dn + ".conv_shortcut", on + ".shortcut", [b, a, 1, 1, 1])

    def attn(dn, on, c):
        rows.append((dn + ".norm.gamma", on + ".norm.gamma", [c, 1, 1]))
        conv(dn + ".to_qkv", on + ".to_qkv", [3 * c, c, 1, 1])
        conv(dn + ".proj", on + ".proj", [c, c, 1, 1])

    def mid(side, c):
        res(side + ".mid_block.resnets.0", side + ".middle.0", c, c)
        attn(side + ".mid_block.attentions.0", side + ".middle.1", c)
        res(side + ".mid_block.resnets.1", side + ".middle.2", c, c)

    b0 = cfg["base_dim"]
    conv("encoder.conv_in", "encoder.conv1", [b0, cin, 3, 3, 3])
    for item in A["enc"]:
        dn, on = "encoder.down_blocks.%d" % item[1], "encoder.downsamples.%d" % item[1]
        if item[0] == "res":
            res(dn, on, item[2], item[3])
        else:
            c = item[2]
            conv(dn + ".resample.1", on + ".resample.1", [c, c, 3, 3])
            if item[0] == "down3d":
                conv(dn + ".time_conv", on + ".time_conv", [c, c, 3, 1, 1])
    E = A["enc_out"]
    mid("encoder", E)
    rows.append(("encoder.norm_out.gamma", "encoder.head.0.gamma", [E, 1, 1, 1]))
    conv("encoder.conv_out", "encoder.head.2", [2 * z, E, 3, 3, 3])
    conv("quant_conv", "conv1", [2 * z, 2 * z, 1, 1, 1])
    conv("post_quant_conv", "conv2", [z, z, 1, 1, 1])
    D = A["dec_in"]
    conv("decoder.conv_in", "decoder.conv1", [D, z, 3, 3, 3])
    mid("decoder", D)
    flat = 0
    for st in A["dec"]:
        for j, (a, b) in enumerate(st["resnets"]):
            res("decoder.up_blocks.%d.resnets.%d" % (st["i"], j), "decoder.upsamples.%d" % flat, a, b)
            flat += 1
        if st["up"] is not None:
            c = st["up_dim"]
            dn, on = "decoder.up_blocks.%d.upsamplers.0" % st["i"], "decoder.upsamples.%d" % flat
            conv(dn + ".resample.1", on + ".resample.1", [c // 2, c, 3, 3])
            if st["up"] == "up3d":
                conv(dn + ".time_conv", on + ".time_conv", [2 * c, c, 3, 1, 1])
            flat += 1
    O = A["dec_out"]
    rows.append(("decoder.norm_out.gamma", "decoder.head.0.gamma", [O, 1, 1, 1]))
    conv("decoder.conv_out", "decoder.head.2", [cout, O, 3, 3, 3])
    return rows


def causal_conv_count(cfg, side):
    """Number of CausalConv3d modules (5-D conv weights) inside encoder or decoder (spec 7.2: 26 / 33)."""
    return sum(1 for dn, _, shape in param_table(cfg)
               if dn.startswith(side + ".") and dn.endswith(".weight") and len(shape) == 5)


def load_vae(model_dir, dtype=torch.float64, naming="diffusers"):
    """Returns (cfg, P) with P keyed by Diffusers names, tensors of `dtype`."""
    if naming not in ("diffusers", "original"):
        raise RefError("--naming must be diffusers or original")
    cfg, files = read_vae_config(model_dir, naming)
    index = {}
    for path in files:
        st = SafeTensorsFile(path)
        for name in st.entries:
            if name in index:
                raise RefError("tensor %s stored twice (%s, %s)" % (name, index[name].path, path))
            index[name] = st
    col = 0 if naming == "diffusers" else 1
    P, used, missing = {}, set(), []
    for row in param_table(cfg):
        stored, shape = row[col], row[2]
        if stored not in index:
            missing.append(stored)
            continue
        got = index[stored].shape(stored)
        if got != shape:
            raise RefError("tensor %s has shape %s, expected %s" % (stored, got, shape))
        P[row[0]] = torch.from_numpy(np.ascontiguousarray(index[stored].load(stored))).to(dtype)
        used.add(stored)
    if missing:
        raise RefError("%d VAE tensors missing from %s (first: %s)" % (len(missing), model_dir, ", ".join(missing[:5])))
    unused = sorted(set(index) - used)
    if unused:
        log("warning: %d unused tensors in %s (first: %s)" % (len(unused), model_dir, ", ".join(unused[:5])))
    return cfg, P


# ----------------------------------------------------------------------------------------------------------
# Primitive layers (spec 7.1). Tensors are [C, T, H, W] (batch 1 without the batch axis).
# ----------------------------------------------------------------------------------------------------------

def rms_norm(x, gamma):
    """x / max(||x||_2 over channels, 1e-12) * sqrt(C) * gamma (channel-first; gamma [C,1,1,1] or [C,1,1])."""
    C = x.shape[0]
    n = torch.linalg.vector_norm(x, dim=0, keepdim=True).clamp_min(NORM_EPS)
    return x / n * math.sqrt(C) * gamma.reshape((C,) + (1,) * (x.dim() - 1))


def conv3d_front(x, w, b, front, pad_s, stride_t=1):
    """Conv3d with `front` zero frames before, none after, and pad_s zero pixels on each spatial side."""
    xp = tnf.pad(x[None], (pad_s, pad_s, pad_s, pad_s, front, 0))
    return tnf.conv3d(xp, w, b, stride=(stride_t, 1, 1))[0]


def pointwise3d(x, P, name):
    """1x1x1 CausalConv3d (no padding, never cached)."""
    return tnf.conv3d(x[None], P[name + ".weight"], P[name + ".bias"])[0]


def conv2d_frames(x, w, b, pad=0, stride=1):
    """A Conv2d applied to every frame: x [C, T, H, W] -> [C', T, H', W']."""
    return tnf.conv2d(x.transpose(0, 1), w, b, stride=stride, padding=pad).transpose(0, 1)


def interleave_pairs(y):
    """time_conv output [2C, t, H, W] -> [C, 2t, H, W]: channels [0,C) -> frame 2τ, [C,2C) -> frame 2τ+1."""
    C2, t, H, W = y.shape
    C = C2 // 2
    return torch.stack([y[:C], y[C:]], dim=2).reshape(C, 2 * t, H, W)


def upsample_nearest2(x):
    """Nearest-neighbour x2 in H and W (per frame)."""
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


class WholeSeq:
    """Spec 7.4 whole-sequence statements of the temporal operations."""
    chunked = False

    def __init__(self, P):
        self.P = P

    def cconv(self, name, x):
        """Cached 3x3x3 causal conv = the conv over the whole sequence with 2 zero frames in front."""
        w = self.P[name + ".weight"]
        return conv3d_front(x, w, self.P[name + ".bias"], w.shape[2] - 1, (w.shape[3] - 1) // 2)

    def down_time(self, name, x):
        """[q0, q1, ..., q2m] -> [q0] ++ [time_conv(q2j, q2j+1, q2j+2) for j < m] (stride 2, no padding)."""
        T = x.shape[1]
        if T % 2 == 0:
            raise RefError("%s: whole-sequence downsample3d needs an odd frame count, got %d" % (name, T))
        if T == 1:
            return x
        y = conv3d_front(x, self.P[name + ".weight"], self.P[name + ".bias"], 0, 0, stride_t=2)
        return torch.cat([x[:, :1], y], dim=1)

    def up_time(self, name, x):
        """[x0, x1, ..., xn] -> [x0] ++ interleave(time_conv over [0, 0, x1, ..., xn])."""
        if x.shape[1] == 1:
            return x
        y = conv3d_front(x[:, 1:], self.P[name + ".weight"], self.P[name + ".bias"], 2, 0)
        return torch.cat([x[:, :1], interleave_pairs(y)], dim=1)


class Chunked:
    """Spec 7.3 / 7.4 chunked computation: one cache slot per causal conv, persisting across chunks."""
    chunked = True

    def __init__(self, P):
        self.P = P
        self.cache = {}

    def _conv_with_cache(self, name, x, old):
        w = self.P[name + ".weight"]
        front = w.shape[2] - 1
        if old is not None:
            x = torch.cat([old, x], dim=1)
            front -= old.shape[1]
        return conv3d_front(x, w, self.P[name + ".bias"], front, (w.shape[3] - 1) // 2)

    def cconv(self, name, x):
        old = self.cache.get(name)
        new = x[:, -2:]
        if new.shape[1] < 2 and old is not None:
            new = torch.cat([old[:, -1:], new], dim=1)
        y = self._conv_with_cache(name, x, old)
        self.cache[name] = new
        return y

    def down_time(self, name, x):
        old = self.cache.get(name)
        if old is None:  # first chunk: keep the frame, skip time_conv
            self.cache[name] = x
            return x
        y = conv3d_front(torch.cat([old[:, -1:], x], dim=1), self.P[name + ".weight"], self.P[name + ".bias"],
                         0, 0, stride_t=2)
        self.cache[name] = x[:, -1:]
        return y

    def up_time(self, name, x):
        if name not in self.cache:  # first chunk: mark "Rep", skip time_conv
            self.cache[name] = "Rep"
            return x
        old = self.cache[name]
        new = x[:, -2:]
        if isinstance(old, str):  # "Rep": second chunk, time_conv without cache (2 zero frames in front)
            if new.shape[1] < 2:
                new = torch.cat([torch.zeros_like(new), new], dim=1)
            y = self._conv_with_cache(name, x, None)
        else:
            if new.shape[1] < 2:
                new = torch.cat([old[:, -1:], new], dim=1)
            y = self._conv_with_cache(name, x, old)
        self.cache[name] = new
        return interleave_pairs(y)


class Probes:
    """Module outputs by name; chunk outputs are concatenated along time."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.parts = {}
        self.order = []

    def rec(self, name, x):
        if not self.enabled:
            return
        if name not in self.parts:
            self.parts[name] = []
            self.order.append(name)
        self.parts[name].append(x)

    def result(self):
        return {n: torch.cat(self.parts[n], dim=1) for n in self.order}


def residual_block(ctx, P, pre, x):
    h = pointwise3d(x, P, pre + ".conv_shortcut") if (pre + ".conv_shortcut.weight") in P else x
    r = ctx.cconv(pre + ".conv1", tnf.silu(rms_norm(x, P[pre + ".norm1.gamma"])))
    r = ctx.cconv(pre + ".conv2", tnf.silu(rms_norm(r, P[pre + ".norm2.gamma"])))
    return r + h


def attention_block(P, pre, x):
    """Single-head self-attention over the H*W positions of each frame, scale 1/sqrt(C)."""
    C, T, H, W = x.shape
    xn = rms_norm(x, P[pre + ".norm.gamma"])
    wq = P[pre + ".to_qkv.weight"].reshape(3 * C, C)
    qkv = torch.einsum("oc,cthw->othw", wq, xn) + P[pre + ".to_qkv.bias"][:, None, None, None]
    qkv = qkv.reshape(3, C, T, H * W).permute(0, 2, 3, 1)      # [3, T, HW, C]
    q, k, v = qkv[0], qkv[1], qkv[2]
    s = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(C)
    a = torch.matmul(torch.softmax(s, dim=-1), v)              # [T, HW, C]
    a = a.permute(2, 0, 1).reshape(C, T, H, W)
    wp = P[pre + ".proj.weight"].reshape(C, C)
    return torch.einsum("oc,cthw->othw", wp, a) + P[pre + ".proj.bias"][:, None, None, None] + x


def mid_block(ctx, P, side, x, pr):
    x = residual_block(ctx, P, side + ".mid_block.resnets.0", x)
    pr.rec(side + ".mid_block.resnets.0", x)
    x = attention_block(P, side + ".mid_block.attentions.0", x)
    pr.rec(side + ".mid_block.attentions.0", x)
    x = residual_block(ctx, P, side + ".mid_block.resnets.1", x)
    pr.rec(side + ".mid_block.resnets.1", x)
    return x


def encoder(ctx, P, A, x, pr):
    x = ctx.cconv("encoder.conv_in", x)
    pr.rec("encoder.conv_in", x)
    for item in A["enc"]:
        pre = "encoder.down_blocks.%d" % item[1]
        if item[0] == "res":
            x = residual_block(ctx, P, pre, x)
        else:  # zero-pad right and bottom by 1, conv 3x3 stride 2; downsample3d: then time_conv
            x = conv2d_frames(tnf.pad(x, (0, 1, 0, 1)), P[pre + ".resample.1.weight"], P[pre + ".resample.1.bias"],
                              stride=2)
            if item[0] == "down3d":
                x = ctx.down_time(pre + ".time_conv", x)
        pr.rec(pre, x)
    x = mid_block(ctx, P, "encoder", x, pr)
    x = ctx.cconv("encoder.conv_out", tnf.silu(rms_norm(x, P["encoder.norm_out.gamma"])))
    pr.rec("encoder.conv_out", x)
    return x


def decoder(ctx, P, A, x, pr):
    x = ctx.cconv("decoder.conv_in", x)
    pr.rec("decoder.conv_in", x)
    x = mid_block(ctx, P, "decoder", x, pr)
    for st in A["dec"]:
        for j in range(len(st["resnets"])):
            pre = "decoder.up_blocks.%d.resnets.%d" % (st["i"], j)
            x = residual_block(ctx, P, pre, x)
            pr.rec(pre, x)
        if st["up"] is not None:
            pre = "decoder.up_blocks.%d.upsamplers.0" % st["i"]
            if st["up"] == "up3d":
                x = ctx.up_time(pre + ".time_conv", x)
            x = conv2d_frames(upsample_nearest2(x), P[pre + ".resample.1.weight"], P[pre + ".resample.1.bias"],
                              pad=1)
            pr.rec(pre, x)
    x = ctx.cconv("decoder.conv_out", tnf.silu(rms_norm(x, P["decoder.norm_out.gamma"])))
    pr.rec("decoder.conv_out", x)
    return x


def _bcast(vals, ref):
    return torch.tensor(vals, dtype=ref.dtype)[:, None, None, None]


def encode_frames(cfg, T):
    """(frames used, latent frames) for a T-frame clip (spec 7.3)."""
    k = (T - 1) // ENCODE_CHUNK
    return 1 + ENCODE_CHUNK * k, 1 + k * (ENCODE_CHUNK // cfg["scale_temporal"])


def decode_frames(cfg, F):
    return 1 + cfg["scale_temporal"] * (F - 1)


def encode(cfg, P, video, path="chunked", probes=False):
    """video [Cin, T, H, W] tensor in [-1, 1] -> (normalised latents [z, F, H/s, W/s], probes dict)."""
    if video.dim() != 4 or video.shape[0] != cfg["in_channels"]:
        raise RefError("video must be [%d, T, H, W], got %s" % (cfg["in_channels"], list(video.shape)))
    C, T, H, W = video.shape
    s = cfg["scale_spatial"]
    if T < 1 or H < s or W < s or H % s or W % s:
        raise RefError("video frames %dx%d must be positive multiples of %d (T=%d)" % (H, W, s, T))
    A = architecture(cfg)
    used, _ = encode_frames(cfg, T)
    x = video[:, :used]
    pr = Probes(probes)
    if path == "chunked":
        ctx = Chunked(P)
        chunks = [x[:, :1]] + [x[:, 1 + ENCODE_CHUNK * i:1 + ENCODE_CHUNK * (i + 1)]
                               for i in range((used - 1) // ENCODE_CHUNK)]
        h = torch.cat([encoder(ctx, P, A, c, pr) for c in chunks], dim=1)
    elif path == "whole":
        h = encoder(WholeSeq(P), P, A, x, pr)
    else:
        raise RefError("path must be chunked or whole")
    q = pointwise3d(h, P, "quant_conv")
    pr.rec("quant_conv", q)
    mu = q[:cfg["z_dim"]]
    inv_std = 1.0 / _bcast(cfg["latents_std"], mu)
    return (mu - _bcast(cfg["latents_mean"], mu)) * inv_std, pr.result()


def decode(cfg, P, z, path="chunked", probes=False, clamp=True):
    """normalised latents [z, F, h, w] -> (video [Cout, 1 + st(F-1), s h, s w] clamped to [-1, 1], probes)."""
    if z.dim() != 4 or z.shape[0] != cfg["z_dim"] or min(z.shape) < 1:
        raise RefError("latents must be [%d, F >= 1, h >= 1, w >= 1], got %s" % (cfg["z_dim"], list(z.shape)))
    A = architecture(cfg)
    pr = Probes(probes)
    inv_std = 1.0 / _bcast(cfg["latents_std"], z)
    x = z / inv_std + _bcast(cfg["latents_mean"], z)   # spec 7.4: SR literally divides by the reciprocal
    x = pointwise3d(x, P, "post_quant_conv")
    pr.rec("post_quant_conv", x)
    if path == "chunked":
        ctx = Chunked(P)
        out = torch.cat([decoder(ctx, P, A, x[:, i:i + 1], pr) for i in range(x.shape[1])], dim=1)
    elif path == "whole":
        out = decoder(WholeSeq(P), P, A, x, pr)
    else:
        raise RefError("path must be chunked or whole")
    if clamp:
        out = out.clamp(-1.0, 1.0)
    return out, pr.result()


# ----------------------------------------------------------------------------------------------------------
# HDF5 inputs / outputs
# ----------------------------------------------------------------------------------------------------------

def read_dataset(path, name):
    with h5py.File(path, "r") as f:
        if name not in f:
            raise RefError("%s: dataset '%s' missing" % (path, name))
        return np.asarray(f[name][()])


def write_result(args, cfg, op, main_name, main, probes, info):
    """Writes the output file (refuses to overwrite; no partial file on failure)."""
    extra = parse_attrs(args.attr, RESERVED_ATTRS)
    try:
        with h5py.File(args.out, "x") as f:
            f.create_dataset(main_name, data=main.astype(np.float32))
            for name, t in probes.items():
                f.create_dataset("probe." + name, data=t.to(torch.float64).numpy().astype(np.float32))
            if args.copy_inputs:
                with h5py.File(args.inp, "r") as src:
                    for name in src.keys():
                        if name in f:
                            raise RefError("input already contains %s" % name)
                        src.copy(src[name], f, name=name)
            f.attrs["reelfarm_format"] = GOLDEN_FORMAT
            f.attrs["reelfarm_format_version"] = np.int64(GOLDEN_FORMAT_VERSION)
            f.attrs["generator"] = GENERATOR
            f.attrs["reference_dtype"] = args.dtype
            f.attrs["operation"] = op
            f.attrs["reference_path"] = args.path
            for k, v in info.items():
                f.attrs[k] = np.int64(v)
            f.attrs["latents_mean"] = np.asarray(cfg["latents_mean"], dtype=np.float64)
            f.attrs["latents_std"] = np.asarray(cfg["latents_std"], dtype=np.float64)
            for k, v in extra:
                f.attrs[k] = v
    except BaseException:
        if os.path.exists(args.out):
            os.remove(args.out)
        raise


def cmd_decode(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    parse_attrs(args.attr, RESERVED_ATTRS)
    dtype = DTYPES[args.dtype]
    cfg, P = load_vae(args.model, dtype, args.naming)
    lat = read_dataset(args.inp, "latents")
    t0 = time.perf_counter()
    with torch.no_grad():
        y, pr = decode(cfg, P, torch.from_numpy(lat.astype(np.float64)).to(dtype), args.path, args.probes)
    dt = time.perf_counter() - t0
    y = y.to(torch.float64).numpy()
    F = lat.shape[1]
    write_result(args, cfg, "decode", "video", y, pr, {"frames_in": F, "frames_used": F, "frames_out": y.shape[1]})
    print("decode: %s path=%s latents=%s -> video=%s probes=%d clipped=%.4f time_s=%.3f -> %s" % (
        args.dtype, args.path, list(lat.shape), list(y.shape), len(pr), float(np.mean(np.abs(y) >= 1.0)), dt,
        args.out))


def cmd_encode(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    parse_attrs(args.attr, RESERVED_ATTRS)
    dtype = DTYPES[args.dtype]
    cfg, P = load_vae(args.model, dtype, args.naming)
    vid = read_dataset(args.inp, "video")
    t0 = time.perf_counter()
    with torch.no_grad():
        z, pr = encode(cfg, P, torch.from_numpy(vid.astype(np.float64)).to(dtype), args.path, args.probes)
    dt = time.perf_counter() - t0
    z = z.to(torch.float64).numpy()
    used, _ = encode_frames(cfg, vid.shape[1])
    write_result(args, cfg, "encode", "latents", z, pr,
                 {"frames_in": vid.shape[1], "frames_used": used, "frames_out": z.shape[1]})
    print("encode: %s path=%s video=%s (frames used %d) -> latents=%s probes=%d time_s=%.3f -> %s" % (
        args.dtype, args.path, list(vid.shape), used, list(z.shape), len(pr), dt, args.out))


def make_video(channels, frames, height, width, seed=0):
    """Smooth random video in (-1, 1): per channel the sum of 4 plane waves (draws per wave: ft, fy, fx,
    phase, amplitude) plus 0.1 N(0,1) noise (drawn last, all channels at once), through tanh."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    y = np.arange(height, dtype=np.float64)[None, :, None]
    x = np.arange(width, dtype=np.float64)[None, None, :]
    v = np.zeros((channels, frames, height, width))
    for c in range(channels):
        for _ in range(4):
            ft, fy, fx = rng.uniform(-0.4, 0.4), rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6)
            ph, amp = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(0.3, 0.8)
            v[c] += amp * np.sin(ft * t + fy * y + fx * x + ph)
    v += 0.1 * rng.standard_normal(v.shape)
    return np.tanh(v).astype(np.float32)


def make_latents(z_dim, frames, height, width, seed=0):
    return np.random.default_rng(seed).standard_normal((z_dim, frames, height, width)).astype(np.float32)


def cmd_make_input(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    if min(args.frames, args.height, args.width) < 1:
        raise RefError("--frames, --height and --width must be >= 1")
    z_dim, cin = args.z_dim, 3
    if args.model:
        cfg, _ = read_vae_config(args.model, args.naming)
        z_dim, cin = cfg["z_dim"], cfg["in_channels"]
    if args.kind == "video":
        name, a = "video", make_video(cin, args.frames, args.height, args.width, args.seed)
    else:
        name, a = "latents", make_latents(z_dim, args.frames, args.height, args.width, args.seed)
    with h5py.File(args.out, "x") as f:
        f.create_dataset(name, data=a)
    print("make-input: %s%s -> %s" % (name, list(a.shape), args.out))


# ----------------------------------------------------------------------------------------------------------
# Random models (selftest, experiments, bench)
# ----------------------------------------------------------------------------------------------------------

def random_params(cfg, seed):
    """Stored-layout float32 arrays keyed by Diffusers name. Conv weights ~ N(0, 1/fan_in) (the decoder's
    conv_out N(0, 0.25/fan_in), so that most decoded values stay inside the [-1, 1] clamp), biases
    N(0, 0.05^2), gammas 1 + 0.1 N(0,1). Draw order: param_table order."""
    rng = np.random.default_rng(seed)
    out = {}
    for dn, _, shape in param_table(cfg):
        if dn.endswith(".gamma"):
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        elif dn.endswith(".bias"):
            a = 0.05 * rng.standard_normal(shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
            if dn == "decoder.conv_out.weight":
                a *= 0.5
        out[dn] = a.astype(np.float32)
    return out


def write_model_dir(out, cfg, stored, weight_dtype="F32", naming="diffusers"):
    """diffusers: DIR/vae/config.json + DIR/vae/diffusion_pytorch_model.safetensors. original: the original
    SkyReels layout's DIR/Wan2.1_VAE.safetensors in the original names, no config (released structure only)."""
    if naming == "original":
        ref = make_config(cfg["base_dim"], cfg["z_dim"], decoder_base_dim=cfg["decoder_base_dim"],
                          in_channels=cfg["in_channels"], out_channels=cfg["out_channels"])
        if ref != cfg:
            raise RefError("original naming has no config file: only the released structure (dim_mult 1,2,4,4, "
                           "2 residual blocks, temperal_downsample 0,1,1, default latent statistics)")
        path = os.path.join(out, ORIGINAL_FILES[0])
        if os.path.exists(path):
            raise RefError("%s exists" % path)
        os.makedirs(out, exist_ok=True)
        write_safetensors(path, {on: stored[dn] for dn, on, _ in param_table(cfg)}, weight_dtype)
        return
    d = os.path.join(out, "vae")
    if os.path.exists(d) and os.listdir(d):
        raise RefError("%s exists and is not empty" % d)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config_json(cfg), f, indent=2)
    write_safetensors(os.path.join(d, "diffusion_pytorch_model.safetensors"), stored, weight_dtype)


def _int_list(s, what):
    try:
        return [int(v) for v in s.split(",") if v.strip() != ""]
    except ValueError:
        raise RefError("%s: expected comma-separated integers, got %r" % (what, s))


def cmd_make_model(args):
    cfg = make_config(args.base_dim, args.z_dim, _int_list(args.dim_mult, "--dim-mult"), args.num_res_blocks,
                      [bool(v) for v in _int_list(args.temperal_downsample, "--temperal-downsample")])
    stored = random_params(cfg, args.seed)
    write_model_dir(args.out, cfg, stored, args.weight_dtype, args.naming)
    n = sum(int(np.prod(a.shape)) for a in stored.values())
    print("make-model: base_dim %d, dim_mult %s, z_dim %d, %d tensors, %d parameters, weights %s (%s names) -> %s" % (
        cfg["base_dim"], cfg["dim_mult"], cfg["z_dim"], len(stored), n, args.weight_dtype, args.naming,
        os.path.join(args.out, "vae" if args.naming == "diffusers" else ORIGINAL_FILES[0])))


def fingerprint(model_dir, naming="diffusers"):
    """(sum, sum of squares, count) over every VAE weight, values taken as float32, accumulated in float64
    per tensor in sorted Diffusers-name order (the semantics of wan_dit_ref.py fingerprint)."""
    _, P = load_vae(model_dir, torch.float64, naming)
    return wdr.params_fingerprint(P)


def cmd_fingerprint(args):
    print("%.17g %.17g %d" % fingerprint(args.model, args.naming))


def cmd_bench(args):
    """The real-size VAE with random weights made directly in the bench dtype (no float64 copies), chunked
    decode (or encode) on the CPU under no_grad; one JSON line."""
    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    cfg = make_config(base_dim=args.base_dim)
    side = "encoder" if args.encode else "decoder"
    keep = ("encoder.", "quant_conv.") if args.encode else ("decoder.", "post_quant_conv.")
    g = torch.Generator().manual_seed(args.seed)
    P = {}
    for dn, _, shape in param_table(cfg):
        if not dn.startswith(keep):
            continue
        if dn.endswith(".gamma"):
            P[dn] = torch.ones(shape, dtype=dtype)
        elif dn.endswith(".bias"):
            P[dn] = torch.zeros(shape, dtype=dtype)
        else:
            P[dn] = torch.empty(shape, dtype=dtype).normal_(0.0, 1.0 / math.sqrt(int(np.prod(shape[1:]))),
                                                            generator=g)  # in place: no temporaries
    weight_bytes = sum(t.numel() * t.element_size() for t in P.values())
    rss_weights = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    A = architecture(cfg)
    s = cfg["scale_spatial"]
    times = []
    with torch.no_grad():
        if args.encode:
            T = 1 + ENCODE_CHUNK * (args.frames - 1)
            x = (torch.rand((3, T, s * args.height, s * args.width), generator=g, dtype=dtype) * 2 - 1)
            ctx, pr, outs = Chunked(P), Probes(False), []
            chunks = [x[:, :1]] + [x[:, 1 + 4 * i:5 + 4 * i] for i in range(args.frames - 1)]
            for c in chunks:
                t0 = time.perf_counter()
                outs.append(encoder(ctx, P, A, c, pr))
                times.append(time.perf_counter() - t0)
            y = pointwise3d(torch.cat(outs, dim=1), P, "quant_conv")
            shape_in, shape_out = list(x.shape), list(y.shape)
        else:
            z = torch.randn((cfg["z_dim"], args.frames, args.height, args.width), generator=g, dtype=dtype)
            x = pointwise3d(z, P, "post_quant_conv")
            ctx, pr, outs = Chunked(P), Probes(False), []
            for i in range(args.frames):
                t0 = time.perf_counter()
                outs.append(decoder(ctx, P, A, x[:, i:i + 1], pr))
                times.append(time.perf_counter() - t0)
            y = torch.cat(outs, dim=1).clamp(-1.0, 1.0)
            shape_in, shape_out = list(z.shape), list(y.shape)
        if not torch.isfinite(y).all():
            raise RefError("bench: non-finite output")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rec = {
        "bench": "vae-" + ("encode" if args.encode else "decode"), "impl": "pytorch-cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": args.dtype,
        "base_dim": args.base_dim, "latent_frames": args.frames, "latent_h": args.height, "latent_w": args.width,
        "input_shape": shape_in, "output_shape": shape_out, "weights_mb": round(weight_bytes / 2 ** 20, 1),
        "causal_convs": causal_conv_count(cfg, side),
        "seconds_total": round(sum(times), 4), "seconds_per_latent_frame": round(sum(times) / args.frames, 4),
        "seconds_first_chunk": round(times[0], 4),
        "seconds_later_chunk_mean": round(float(np.mean(times[1:])), 4) if len(times) > 1 else None,
        "peak_rss_mb": round(rss, 1), "rss_after_import_mb": round(rss_base, 1),
        "rss_after_weights_mb": round(rss_weights, 1),
    }
    print(json.dumps(rec))


# ----------------------------------------------------------------------------------------------------------
# selftest
# ----------------------------------------------------------------------------------------------------------

def _maxabs(a, b):
    a = a.to(torch.float64) if torch.is_tensor(a) else torch.as_tensor(np.asarray(a, np.float64))
    b = b.to(torch.float64) if torch.is_tensor(b) else torch.as_tensor(np.asarray(b, np.float64))
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def _rel_l2(a, b):
    a, b = a.to(torch.float64), b.to(torch.float64)
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def _probe_diff(pa, pb):
    """(max abs diff over all probes, worst name, same name set)."""
    worst, wn = 0.0, ""
    for n in pa:
        if n not in pb:
            return float("inf"), n, False
        d = _maxabs(pa[n], pb[n])
        if d > worst:
            worst, wn = d, n
    return worst, wn, list(pa) == list(pb)


def expected_probe_names(cfg, op):
    A = architecture(cfg)
    if op == "encode":
        names = ["encoder.conv_in"] + ["encoder.down_blocks.%d" % it[1] for it in A["enc"]]
        names += ["encoder.mid_block.resnets.0", "encoder.mid_block.attentions.0", "encoder.mid_block.resnets.1",
                  "encoder.conv_out", "quant_conv"]
        return names
    names = ["post_quant_conv", "decoder.conv_in", "decoder.mid_block.resnets.0", "decoder.mid_block.attentions.0",
             "decoder.mid_block.resnets.1"]
    for st in A["dec"]:
        names += ["decoder.up_blocks.%d.resnets.%d" % (st["i"], j) for j in range(len(st["resnets"]))]
        if st["up"] is not None:
            names.append("decoder.up_blocks.%d.upsamplers.0" % st["i"])
    return names + ["decoder.conv_out"]


def cmd_selftest(args):
    results = []
    t_start = time.perf_counter()

    def check(name, ok, detail):
        results.append(bool(ok))
        print("selftest %-60s %s  %s" % (name, "pass" if ok else "FAIL", detail))
        sys.stdout.flush()

    def T64(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))

    torch.manual_seed(0)
    # ---------------- parameter table vs spec 2.4 / 7.2 (released config) ----------------
    real = make_config()
    tab = param_table(real)
    n = sum(int(np.prod(r[2])) for r in tab)
    check("param table (base 96): 194 tensors, 126,892,531 params", len(tab) == 194 and n == 126892531,
          "tensors=%d params=%d" % (len(tab), n))
    ce, cd = causal_conv_count(real, "encoder"), causal_conv_count(real, "decoder")
    check("causal conv counts encoder 26, decoder 33 (spec 7.2)", ce == 26 and cd == 33,
          "encoder=%d decoder=%d" % (ce, cd))
    shapes = {r[0]: r[2] for r in tab}
    orig = {r[1]: r[2] for r in tab}
    spot = [("decoder.up_blocks.1.resnets.0.conv_shortcut.weight", [384, 192, 1, 1, 1]),
            ("decoder.up_blocks.0.upsamplers.0.time_conv.weight", [768, 384, 3, 1, 1]),
            ("decoder.up_blocks.2.upsamplers.0.resample.1.weight", [96, 192, 3, 3]),
            ("encoder.down_blocks.8.time_conv.weight", [384, 384, 3, 1, 1]),
            ("encoder.mid_block.attentions.0.to_qkv.weight", [1152, 384, 1, 1]),
            ("encoder.conv_out.weight", [32, 384, 3, 3, 3]), ("quant_conv.weight", [32, 32, 1, 1, 1])]
    spot_o = [("decoder.upsamples.4.shortcut.weight", [384, 192, 1, 1, 1]),
              ("decoder.upsamples.11.resample.1.weight", [96, 192, 3, 3]),
              ("decoder.upsamples.14.residual.6.weight", [96, 96, 3, 3, 3]),
              ("encoder.downsamples.5.time_conv.weight", [192, 192, 3, 1, 1]),
              ("decoder.head.0.gamma", [96, 1, 1, 1]), ("conv2.weight", [16, 16, 1, 1, 1]),
              ("decoder.middle.1.norm.gamma", [384, 1, 1])]
    bad = [k for k, s in spot if shapes.get(k) != s] + [k for k, s in spot_o if orig.get(k) != s]
    check("spec 2.4 spot names/shapes (Diffusers and original)", not bad, "bad=%s" % bad)

    tmp = tempfile.mkdtemp(prefix="wan_vae_ref_selftest_")
    try:
        # ---------------- tiny model (real structure, base 8) ----------------
        cfg = make_config(base_dim=8)
        stored = random_params(cfg, seed=1)
        dd = os.path.join(tmp, "tiny")
        write_model_dir(dd, cfg, stored)
        cfg_l, P = load_vae(dd)
        check("tiny model round trip (config.json + safetensors)", cfg_l == cfg and len(P) == len(stored),
              "tensors=%d" % len(P))

        with torch.no_grad():
            vid = T64(make_video(3, 13, 16, 24, seed=2))
            zc, pc = encode(cfg, P, vid, "chunked", probes=True)
            zw, pw = encode(cfg, P, vid, "whole", probes=True)
            d = _maxabs(zc, zw)
            check("(a) encode 13 frames 16x24: chunked vs whole latents", d < 1e-12 and list(zc.shape) == [16, 4, 2, 3],
                  "shape=%s max_abs=%.3e rms=%.3f" % (list(zc.shape), d, float(zc.pow(2).mean().sqrt())))
            dp, wn, same = _probe_diff(pc, pw)
            check("    encode probes: chunked vs whole (all modules)",
                  dp < 1e-12 and same and list(pc) == expected_probe_names(cfg, "encode"),
                  "probes=%d max_abs=%.3e (worst %s)" % (len(pc), dp, wn))
            norm = (pc["quant_conv"][:16] - _bcast(cfg["latents_mean"], zc)) / _bcast(cfg["latents_std"], zc)
            check("    encode probe quant_conv[:z] normalised = latents", _maxabs(norm, zc) < 1e-12,
                  "channels=%d" % pc["quant_conv"].shape[0])

            lat = T64(make_latents(16, 4, 2, 3, seed=3))
            yc, qc = decode(cfg, P, lat, "chunked", probes=True)
            yw, qw = decode(cfg, P, lat, "whole", probes=True)
            d = _maxabs(yc, yw)
            clip = float((yc.abs() >= 1.0).double().mean())
            check("(a) decode 4 latents 2x3: chunked vs whole video", d < 1e-12 and list(yc.shape) == [3, 13, 16, 24],
                  "shape=%s max_abs=%.3e clipped=%.3f" % (list(yc.shape), d, clip))
            dp, wn, same = _probe_diff(qc, qw)
            check("    decode probes: chunked vs whole (all modules)",
                  dp < 1e-12 and same and list(qc) == expected_probe_names(cfg, "decode"),
                  "probes=%d max_abs=%.3e (worst %s)" % (len(qc), dp, wn))
            d = _maxabs(qc["decoder.conv_out"].clamp(-1, 1), yc)
            check("    decode: video = clamp(probe conv_out, -1, 1), some clipped", d == 0.0 and 0.0 < clip < 0.5,
                  "max_abs=%.3e clipped=%.3f range=[%.3f, %.3f]" % (d, clip, float(qc["decoder.conv_out"].min()),
                                                                      float(qc["decoder.conv_out"].max())))
            sh = {n: list(t.shape) for n, t in qc.items()}
            ok = (sh["post_quant_conv"] == [16, 4, 2, 3] and sh["decoder.up_blocks.0.resnets.2"] == [32, 4, 2, 3]
                  and sh["decoder.up_blocks.0.upsamplers.0"] == [16, 7, 4, 6]
                  and sh["decoder.up_blocks.1.upsamplers.0"] == [16, 13, 8, 12]
                  and sh["decoder.up_blocks.2.upsamplers.0"] == [8, 13, 16, 24]
                  and sh["decoder.up_blocks.1.resnets.0"] == [32, 7, 4, 6]
                  and sh["decoder.conv_out"] == [3, 13, 16, 24])
            check("    decode probe shapes (frames 4 -> 7 -> 13, channels halved)", ok,
                  "up0.ups=%s up1.ups=%s" % (sh["decoder.up_blocks.0.upsamplers.0"],
                                             sh["decoder.up_blocks.1.upsamplers.0"]))
            she = {n: list(t.shape) for n, t in pc.items()}
            ok = (she["encoder.down_blocks.2"] == [8, 13, 8, 12] and she["encoder.down_blocks.5"] == [16, 7, 4, 6]
                  and she["encoder.down_blocks.8"] == [32, 4, 2, 3] and she["encoder.conv_out"] == [32, 4, 2, 3])
            check("    encode probe shapes (frames 13 -> 7 -> 4)", ok,
                  "blk2=%s blk5=%s blk8=%s" % (she["encoder.down_blocks.2"], she["encoder.down_blocks.5"],
                                              she["encoder.down_blocks.8"]))

            # ---------------- frame counts (spec 7.3 / 7.4) ----------------
            rows = []
            ok = True
            for Tn, want in [(1, 1), (2, 1), (4, 1), (5, 2), (9, 3), (11, 3), (13, 4), (17, 5)]:
                z1, _ = encode(cfg, P, T64(make_video(3, Tn, 8, 8, seed=Tn)))
                ok = ok and z1.shape[1] == want
                rows.append("%d->%d" % (Tn, z1.shape[1]))
            check("frame counts encode 1->1 5->2 9->3 17->5 (2,4->1, 11->3)", ok, " ".join(rows))
            rows = []
            ok = True
            for Fn, want in [(1, 1), (2, 5), (3, 9), (5, 17)]:
                lt = T64(make_latents(16, Fn, 1, 1, seed=Fn))
                y1, _ = decode(cfg, P, lt)
                y2, _ = decode(cfg, P, lt, "whole")
                ok = ok and y1.shape[1] == want and _maxabs(y1, y2) < 1e-12
                rows.append("%d->%d" % (Fn, y1.shape[1]))
            check("frame counts decode 1->1 2->5 3->9 5->17 (= whole path)", ok, " ".join(rows))

            # trailing frames ignored; causality
            v11 = T64(make_video(3, 11, 16, 16, seed=4))
            d = _maxabs(encode(cfg, P, v11)[0], encode(cfg, P, v11[:, :9])[0])
            check("encode T=11 == encode of its first 9 frames", d == 0.0, "max_abs=%.3e" % d)
            v2 = v11[:, :9].clone()
            v2[:, 5:] += 0.5
            za, zb = encode(cfg, P, v11[:, :9])[0], encode(cfg, P, v2)[0]
            check("encode causal: frames 5-8 change only latent 2", _maxabs(za[:, :2], zb[:, :2]) == 0.0
                  and _maxabs(za[:, 2:], zb[:, 2:]) > 1e-3, "late max_abs=%.3e" % _maxabs(za[:, 2:], zb[:, 2:]))
            l2 = lat.clone()
            l2[:, 2] += 1.0
            ya, yb = decode(cfg, P, lat)[0], decode(cfg, P, l2)[0]
            check("decode causal: latent 2 changes only frames >= 5", _maxabs(ya[:, :5], yb[:, :5]) == 0.0
                  and _maxabs(ya[:, 5:], yb[:, 5:]) > 1e-3, "late max_abs=%.3e" % _maxabs(ya[:, 5:], yb[:, 5:]))
            l3 = lat.clone()
            l3[:, 0] += 1.0
            yc3 = decode(cfg, P, l3)[0]
            check("    decode: latent 0 reaches later frames (through caches)", _maxabs(ya[:, 5:], yc3[:, 5:]) > 1e-3,
                  "max_abs=%.3e" % _maxabs(ya[:, 5:], yc3[:, 5:]))

            # (b) float32 vs float64
            _, P32 = load_vae(dd, torch.float32)
            z32 = encode(cfg, P32, vid.float())[0]
            y32 = decode(cfg, P32, lat.float())[0]
            r1, r2 = _rel_l2(z32, zc), _rel_l2(y32, yc)
            check("(b) float32 vs float64: encode / decode rel_l2 < 1e-5", r1 < 1e-5 and r2 < 1e-5,
                  "encode=%.3e decode=%.3e" % (r1, r2))

            # normalisation round trip: decode's denormalisation inverts encode's normalisation
            m, s = _bcast(cfg["latents_mean"], zc), _bcast(cfg["latents_std"], zc)
            raw = pc["quant_conv"][:16]
            d = _maxabs(((raw - m) * (1.0 / s)) / (1.0 / s) + m, raw)
            check("    (mu - mean)*(1/std) then z/(1/std) + mean round trip", d < 1e-13, "max_abs=%.3e" % d)

            # ---------------- a second architecture: generic dims / flags ----------------
            cfg2 = make_config(base_dim=4, z_dim=4, dim_mult=(1, 2, 2), num_res_blocks=1,
                               temperal_downsample=(True, False))
            P2 = {k: T64(v) for k, v in random_params(cfg2, seed=5).items()}
            v9 = T64(make_video(3, 9, 8, 12, seed=6))
            a, _ = encode(cfg2, P2, v9)
            b, _ = encode(cfg2, P2, v9, "whole")
            l5 = T64(make_latents(4, 3, 2, 3, seed=7))
            c, _ = decode(cfg2, P2, l5)
            e, _ = decode(cfg2, P2, l5, "whole")
            ok = list(a.shape) == [4, 5, 2, 3] and list(c.shape) == [3, 5, 8, 12]
            check("generic (base 4, mult 1,2,2, R 1, td T,F, z 4): chunked = whole",
                  ok and _maxabs(a, b) < 1e-12 and _maxabs(c, e) < 1e-12,
                  "enc %s->%s max_abs=%.3e; dec %s->%s max_abs=%.3e" % (
                      list(v9.shape), list(a.shape), _maxabs(a, b), list(l5.shape), list(c.shape), _maxabs(c, e)))

            # ---------------- independent element-wise statements of spec 7.1 ----------------
            rng = np.random.default_rng(11)
            C = 3
            x = rng.standard_normal((C, 4, 2, 3))
            wt = rng.standard_normal((2 * C, C, 3, 1, 1))
            bt = rng.standard_normal(2 * C)
            out = WholeSeq({"t.weight": T64(wt), "t.bias": T64(bt)}).up_time("t", T64(x)).numpy()
            xin = np.concatenate([np.zeros((C, 2, 2, 3)), x[:, 1:]], axis=1)   # [0, 0, x1, x2, x3]
            worst = np.abs(out[:, 0] - x[:, 0]).max()
            for tau in range(3):
                tc = bt[:, None, None] + np.einsum("ock,ckhw->ohw", wt[:, :, :, 0, 0], xin[:, tau:tau + 3])
                worst = max(worst, np.abs(out[:, 1 + 2 * tau] - tc[:C]).max(),
                            np.abs(out[:, 2 + 2 * tau] - tc[C:]).max())
            check("upsample3d: [x0] ++ frames 2τ<-ch[0,C), 2τ+1<-ch[C,2C) over [0,0,x1..]",
                  worst < 1e-12 and out.shape[1] == 7, "frames=%d max_abs=%.3e" % (out.shape[1], worst))
            x = rng.standard_normal((C, 5, 2, 2))
            wt = rng.standard_normal((C, C, 3, 1, 1))
            out = WholeSeq({"t.weight": T64(wt), "t.bias": T64(bt[:C])}).down_time("t", T64(x)).numpy()
            worst = np.abs(out[:, 0] - x[:, 0]).max()
            for j in range(2):
                tc = bt[:C, None, None] + np.einsum("ock,ckhw->ohw", wt[:, :, :, 0, 0], x[:, 2 * j:2 * j + 3])
                worst = max(worst, np.abs(out[:, 1 + j] - tc).max())
            check("downsample3d time: [q0] ++ time_conv(q2j, q2j+1, q2j+2)", worst < 1e-12 and out.shape[1] == 3,
                  "frames=%d max_abs=%.3e" % (out.shape[1], worst))
            # 3x3x3 causal conv: output frame t, pixel (y, x) from input frames t-2..t, pixels y-1..y+1
            x = rng.standard_normal((2, 3, 3, 4))
            wc = rng.standard_normal((2, 2, 3, 3, 3))
            bc = rng.standard_normal(2)
            out = WholeSeq({"c.weight": T64(wc), "c.bias": T64(bc)}).cconv("c", T64(x)).numpy()
            worst = 0.0
            for (t, yy, xx) in [(0, 0, 0), (1, 2, 3), (2, 1, 2), (2, 0, 3)]:
                acc = bc.copy()
                for kt in range(3):
                    for ky in range(3):
                        for kx in range(3):
                            ti, yi, xi = t - 2 + kt, yy - 1 + ky, xx - 1 + kx
                            if ti >= 0 and 0 <= yi < 3 and 0 <= xi < 4:
                                acc += wc[:, :, kt, ky, kx] @ x[:, ti, yi, xi]
                worst = max(worst, np.abs(out[:, t, yy, xx] - acc).max())
            check("causal conv: 2 zero frames in front, 1 px each side", worst < 1e-12, "max_abs=%.3e" % worst)
            # downsample2d: zero pad right/bottom, stride 2
            x = rng.standard_normal((2, 1, 4, 6))
            w2 = rng.standard_normal((2, 2, 3, 3))
            b2 = rng.standard_normal(2)
            out = conv2d_frames(tnf.pad(T64(x), (0, 1, 0, 1)), T64(w2), T64(b2), stride=2).numpy()
            worst = 0.0
            for (yy, xx) in [(0, 0), (1, 2), (1, 1)]:
                acc = b2.copy()
                for ky in range(3):
                    for kx in range(3):
                        yi, xi = 2 * yy + ky, 2 * xx + kx
                        if yi < 4 and xi < 6:
                            acc += w2[:, :, ky, kx] @ x[:, 0, yi, xi]
                worst = max(worst, np.abs(out[:, 0, yy, xx] - acc).max())
            check("downsample2d: pad right/bottom 1, 3x3 stride 2", worst < 1e-12 and out.shape[2:] == (2, 3),
                  "out=%s max_abs=%.3e" % (list(out.shape), worst))
            x = rng.standard_normal((2, 2, 3, 4))
            up = upsample_nearest2(T64(x)).numpy()
            ref = tnf.interpolate(T64(x).transpose(0, 1), scale_factor=2.0, mode="nearest").transpose(0, 1).numpy()
            check("nearest x2 (y = x[i//2, j//2]) = F.interpolate nearest",
                  np.array_equal(up, ref) and up[1, 1, 5, 7] == x[1, 1, 2, 3], "shape=%s" % list(up.shape))
            x = rng.standard_normal((5, 2, 2, 3))
            gm = rng.standard_normal((5, 1, 1, 1))
            out = rms_norm(T64(x), T64(gm)).numpy()
            v = x[:, 1, 0, 2]
            ref = v / max(np.sqrt((v * v).sum()), 1e-12) * math.sqrt(5) * gm[:, 0, 0, 0]
            z0 = rms_norm(torch.zeros(5, 1, 1, 1, dtype=torch.float64), T64(gm)).numpy()
            check("RMS_norm x/max(||x||,1e-12)*sqrt(C)*gamma (zero stays zero)",
                  np.abs(out[:, 1, 0, 2] - ref).max() < 1e-12 and np.all(z0 == 0),
                  "max_abs=%.3e" % np.abs(out[:, 1, 0, 2] - ref).max())
            C, Hh, Ww = 4, 2, 3
            x = rng.standard_normal((C, 2, Hh, Ww))
            Pa = {"a.norm.gamma": T64(rng.standard_normal((C, 1, 1))),
                  "a.to_qkv.weight": T64(rng.standard_normal((3 * C, C, 1, 1))),
                  "a.to_qkv.bias": T64(rng.standard_normal(3 * C)),
                  "a.proj.weight": T64(rng.standard_normal((C, C, 1, 1))), "a.proj.bias": T64(rng.standard_normal(C))}
            out = attention_block(Pa, "a", T64(x)).numpy()
            worst = 0.0
            for t in range(2):
                xt = x[:, t].reshape(C, -1)                                   # [C, HW]
                nrm = np.sqrt((xt * xt).sum(0, keepdims=True))
                xn = xt / nrm * math.sqrt(C) * Pa["a.norm.gamma"].numpy().reshape(C, 1)
                qkv = Pa["a.to_qkv.weight"].numpy().reshape(3 * C, C) @ xn + Pa["a.to_qkv.bias"].numpy()[:, None]
                q, k, vv = qkv[:C], qkv[C:2 * C], qkv[2 * C:]
                sc = q.T @ k / math.sqrt(C)
                pm = np.exp(sc - sc.max(1, keepdims=True))
                pm /= pm.sum(1, keepdims=True)
                o = (pm @ vv.T).T
                o = Pa["a.proj.weight"].numpy().reshape(C, C) @ o + Pa["a.proj.bias"].numpy()[:, None] + xt
                worst = max(worst, np.abs(out[:, t].reshape(C, -1) - o).max())
            check("attention: per frame, one head, q/k/v = channel thirds, 1/sqrt(C)", worst < 1e-12,
                  "max_abs=%.3e" % worst)

        # ---------------- storage dtypes, naming, errors ----------------
        with torch.no_grad():
            for wdt in ("BF16", "F16"):
                if wdt == "BF16":
                    rounded = {k: (bf16_round(v).astype(np.uint32) << 16).view(np.float32) for k, v in stored.items()}
                else:
                    rounded = {k: v.astype(np.float16).astype(np.float32) for k, v in stored.items()}
                dl, dr = os.path.join(tmp, "tiny_" + wdt), os.path.join(tmp, "tiny_" + wdt + "_as_f32")
                write_model_dir(dl, cfg, stored, wdt)
                write_model_dir(dr, cfg, rounded)
                ya = decode(cfg, load_vae(dl)[1], lat)[0]
                yb = decode(cfg, load_vae(dr)[1], lat)[0]
                r = _rel_l2(ya, yc)
                check("(e) %s weights load (= F32 of rounded values)" % wdt, _maxabs(ya, yb) == 0.0 and 0 < r < 0.05,
                      "max_abs=%.3e rel_l2 vs f32 weights=%.3e" % (_maxabs(ya, yb), r))
            do = os.path.join(tmp, "tiny_orig")
            write_model_dir(do, cfg, stored, naming="original")
            with open(os.path.join(do, "config.json"), "w") as f:  # the original layout's DiT config
                json.dump({"model_type": "t2v", "dim": 256}, f)
            cfg_o, _ = read_vae_config(do, "original")
            check("original layout DIR/Wan2.1_VAE.safetensors: config inferred", cfg_o == cfg,
                  "base_dim=%d z_dim=%d" % (cfg_o["base_dim"], cfg_o["z_dim"]))
            _, Po = load_vae(do, naming="original")
            d1 = _maxabs(decode(cfg, Po, lat)[0], yc)
            d2 = _maxabs(encode(cfg, Po, vid)[0], zc)
            check("original naming (--naming original) identical", d1 == 0.0 and d2 == 0.0,
                  "max_abs=%.3e / %.3e" % (d1, d2))
            fp1, fp2 = fingerprint(dd), fingerprint(do, "original")
            cnt = sum(v.size for v in stored.values())
            check("fingerprint: naming-independent, count = parameters", fp1 == fp2 and fp1[2] == cnt,
                  "sum=%.6g sumsq=%.6g count=%d" % fp1)

        def expect_error(label, fn, needle):
            try:
                fn()
            except RefError as ex:
                check(label, needle in str(ex), "error: %s" % ex)
                return
            check(label, False, "no error")

        dm = os.path.join(tmp, "missing")
        gone = "decoder.up_blocks.1.resnets.0.conv_shortcut.bias"
        write_model_dir(dm, cfg, {k: v for k, v in stored.items() if k != gone})
        expect_error("error: missing tensor names it", lambda: load_vae(dm),
                     "decoder.up_blocks.1.resnets.0.conv_shortcut.bias")
        dw = os.path.join(tmp, "wrongshape")
        bad_st = dict(stored)
        bad_st["encoder.down_blocks.5.time_conv.weight"] = np.zeros((16, 16, 3, 1, 2), np.float32)
        write_model_dir(dw, cfg, bad_st)
        expect_error("error: wrong shape names the tensor", lambda: load_vae(dw),
                     "encoder.down_blocks.5.time_conv.weight")
        dv = os.path.join(tmp, "orig_in_vae")
        write_model_dir(dv, cfg, stored)
        os.rename(os.path.join(dv, "vae", "diffusion_pytorch_model.safetensors"), os.path.join(tmp, "x.safetensors"))
        write_safetensors(os.path.join(dv, "vae", "model.safetensors"),
                          {on: stored[dn] for dn, on, _ in param_table(cfg)})
        expect_error("error: original names without --naming original", lambda: load_vae(dv),
                     "encoder.conv_in.weight")
        d = _maxabs(decode(cfg, load_vae(dv, naming="original")[1], lat)[0], yc)
        check("original names in vae/ (+ its config.json) with --naming original", d == 0.0, "max_abs=%.3e" % d)
        da = os.path.join(tmp, "attn")
        os.makedirs(os.path.join(da, "vae"))
        with open(os.path.join(da, "vae", "config.json"), "w") as f:
            json.dump(dict(config_json(cfg), attn_scales=[0.5]), f)
        expect_error("error: attn_scales not [] refused", lambda: read_vae_config(da), "attn_scales")
        expect_error("error: video height not a multiple of 8",
                     lambda: encode(cfg, P, torch.zeros(3, 1, 12, 16, dtype=torch.float64)), "multiples of 8")
        expect_error("error: latents with wrong channel count",
                     lambda: decode(cfg, P, torch.zeros(4, 1, 2, 2, dtype=torch.float64)), "latents must be [16")
        expect_error("error: 3 temporal downsamples refused",
                     lambda: make_config(temperal_downsample=(True, True, True)), "at most 2")

        # ---------------- command line round trip ----------------
        me = os.path.abspath(__file__)
        py = sys.executable

        def run(*a):
            return subprocess.run([py, me] + list(a), capture_output=True, text=True)

        dcli = os.path.join(tmp, "cli_model")
        fl, fv = os.path.join(tmp, "lat.h5"), os.path.join(tmp, "vid.h5")
        fo, fe = os.path.join(tmp, "dec.h5"), os.path.join(tmp, "enc.h5")
        rs = [run("make-model", "--out", dcli, "--base-dim", "8", "--seed", "1"),
              run("make-input", "--kind", "latents", "--model", dcli, "--out", fl, "--frames", "3", "--height", "2",
                  "--width", "3", "--seed", "3"),
              run("make-input", "--kind", "video", "--out", fv, "--frames", "5", "--height", "16", "--width", "8",
                  "--seed", "2"),
              run("decode", "--model", dcli, "--in", fl, "--out", fo, "--probes", "--copy-inputs", "--attr",
                  "case=cli"),
              run("encode", "--model", dcli, "--in", fv, "--out", fe, "--probes", "--attr", "case=cli_enc"),
              run("decode", "--model", dcli, "--in", fl, "--out", fo),
              run("decode", "--model", dcli, "--in", fl, "--out", fo + "2", "--attr", "operation=x"),
              run("fingerprint", "--model", dcli)]
        rcs = [r.returncode for r in rs]
        ok = rcs == [0, 0, 0, 0, 0, 1, 1, 0] and not os.path.exists(fo + "2")
        detail = "rc=%s" % rcs
        if ok:
            with h5py.File(fo, "r") as f:
                a = f.attrs
                lat_in = f["latents"][()]
                ok = (a["reelfarm_format"] == GOLDEN_FORMAT and int(a["reelfarm_format_version"]) == 1
                      and a["generator"] == GENERATOR and a["reference_dtype"] == "float64"
                      and a["operation"] == "decode" and a["reference_path"] == "chunked" and a["case"] == "cli"
                      and int(a["frames_in"]) == 3 and int(a["frames_out"]) == 9
                      and list(a["latents_mean"]) == cfg["latents_mean"]
                      and list(a["latents_std"]) == cfg["latents_std"]
                      and f["video"].dtype == np.float32 and f["video"].shape == (3, 9, 16, 24)
                      and set(f.keys()) == ({"video", "latents"} |
                                            {"probe." + n for n in expected_probe_names(cfg, "decode")}))
                with torch.no_grad():
                    yref, pref = decode(cfg, P, T64(lat_in), probes=True)
                dv = _maxabs(f["video"][()], yref.numpy().astype(np.float32))
                dq = max(_maxabs(f["probe." + n][()], t.numpy().astype(np.float32)) for n, t in pref.items())
                ok = ok and dv == 0.0 and dq == 0.0
                detail += " dec keys=%d video vs in-process max_abs=%.1e probes %.1e" % (len(f.keys()), dv, dq)
            with h5py.File(fe, "r") as f:
                a = f.attrs
                ok = ok and (a["operation"] == "encode" and int(a["frames_in"]) == 5 and int(a["frames_used"]) == 5
                             and int(a["frames_out"]) == 2 and f["latents"].shape == (16, 2, 2, 1)
                             and "video" not in f and f["probe.quant_conv"].shape == (32, 2, 2, 1)
                             and f["probe.encoder.conv_in"].shape == (8, 5, 16, 8))
            fpv = rs[7].stdout.split()
            ok = ok and len(fpv) == 3 and int(fpv[2]) == cnt and float(fpv[0]) == fp1[0]
            detail += " fingerprint=%s" % " ".join(fpv)
        if not ok:
            detail += " | " + " / ".join(r.stderr.strip().replace("\n", " / ")[-300:] for r in rs if r.stderr)
        check("CLI make-model/make-input/decode/encode/fingerprint, attrs, no-overwrite", ok, detail)
    finally:
        if args.keep:
            print("selftest: kept %s" % tmp)
        else:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    nfail = results.count(False)
    print("selftest: %d checks, %d passed, %d failed (%.1f s)" % (len(results), len(results) - nfail, nfail,
                                                                  time.perf_counter() - t_start))
    return 1 if nfail else 0


# ----------------------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description="Independent PyTorch reference of the Wan 2.1 VAE "
                                             "(spec sections 2.2, 2.4, 7).")
    sub = ap.add_subparsers(dest="cmd")
    sub.required = True

    def run_args(p):
        p.add_argument("--model", required=True, help="model root with vae/, or the vae directory itself")
        p.add_argument("--in", dest="inp", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--probes", action="store_true", help="also write every module's output (probe.<name>)")
        p.add_argument("--copy-inputs", action="store_true")
        p.add_argument("--attr", action="append", metavar="KEY=VALUE")
        p.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
        p.add_argument("--path", choices=["chunked", "whole"], default="chunked",
                       help="chunked (upstream feature-cache scheme, default) or whole-sequence (spec 7.4)")
        p.add_argument("--naming", choices=["diffusers", "original"], default="diffusers")

    p = sub.add_parser("decode", help="decode normalised latents (dataset latents) -> video")
    run_args(p)
    p.set_defaults(fn=cmd_decode)

    p = sub.add_parser("encode", help="encode a video (dataset video, [-1, 1]) -> normalised latents (the mean)")
    run_args(p)
    p.set_defaults(fn=cmd_encode)

    p = sub.add_parser("make-input", help="random HDF5 input: video [3,T,H,W] or latents [z,F,h,w]")
    p.add_argument("--kind", choices=["video", "latents"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--z-dim", type=int, default=16)
    p.add_argument("--model", default=None, help="take z_dim (and video channels) from this model's config")
    p.add_argument("--naming", choices=["diffusers", "original"], default="diffusers")
    p.set_defaults(fn=cmd_make_input)

    p = sub.add_parser("make-model", help="write a random VAE (DIR/vae/config.json + safetensors)")
    p.add_argument("--out", required=True)
    p.add_argument("--base-dim", type=int, default=8)
    p.add_argument("--dim-mult", default="1,2,4,4")
    p.add_argument("--num-res-blocks", type=int, default=2)
    p.add_argument("--temperal-downsample", default="0,1,1")
    p.add_argument("--z-dim", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-dtype", choices=["F32", "BF16", "F16"], default="F32")
    p.add_argument("--naming", choices=["diffusers", "original"], default="diffusers")
    p.set_defaults(fn=cmd_make_model)

    p = sub.add_parser("fingerprint", help="print sum, sum of squares and count of the VAE weights")
    p.add_argument("--model", required=True)
    p.add_argument("--naming", choices=["diffusers", "original"], default="diffusers")
    p.set_defaults(fn=cmd_fingerprint)

    p = sub.add_parser("bench", help="time a chunked decode (or --encode) of the real-size VAE, random weights")
    p.add_argument("--frames", type=int, required=True, help="latent frames F")
    p.add_argument("--height", type=int, required=True, help="latent height h (pixels 8h)")
    p.add_argument("--width", type=int, required=True, help="latent width w (pixels 8w)")
    p.add_argument("--base-dim", type=int, default=96)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--encode", action="store_true", help="encode 1 + 4(F-1) frames of 8h x 8w instead")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("selftest", help="check the reference against itself and the spec (exit 1 on failure)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(fn=cmd_selftest)

    args = ap.parse_args(argv)
    if getattr(args, "frames", 1) is not None and args.cmd == "bench" and min(args.frames, args.height, args.width) < 1:
        log("error: --frames, --height and --width must be >= 1")
        return 1
    try:
        rc = args.fn(args)
    except (RefError, OSError, ValueError, KeyError) as ex:
        log("error: %s" % ex)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
