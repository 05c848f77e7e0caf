#!/usr/bin/env python3
"""scripts/bench-torch-dit.py - PyTorch reference benchmark for reelfarm's DiT forward (issue 8, item 4).

A benchmark reference only: Python is never part of the product. Builds a Wan2.1 / SkyReels-V2 DiT
(spec sections 1 and 3) with random weights and random inputs, times its forward with PyTorch
(scaled_dot_product_attention, flash backend requested by default), and prints key=value lines in
the style of `reelfarm bench`, with the FLOP count of model/wan_dit.c wan_dit_flops (reproduced
below, same terms, same order), so both tools give the same GFLOP for the same shape. Optional:
the measured GEMM peak of the device (--gemm-peak) and SDPA alone at the self-attention shape
(--attention / --attention-only). Needs only torch (any version >= 1.13; SDPA needs >= 2.0, the
forced-backend context >= 2.0, cuDNN attention >= 2.3); no weights, no network.

What the model is (spec 3, diffusion-forcing path, batch 1):
  patch embedding  Conv3d 16 -> D, kernel = stride = (1,2,2); tokens L = F * (H/16) * (W/16)
  text embedding   Linear(text_dim, D) - GELU(tanh) - Linear(D, D) over text_len (512) rows
  time embedding   sinusoid(256, cos first) of one timestep per latent frame - Linear - SiLU - Linear -> e [F, D];
                   SiLU - Linear(D, 6D) -> e0 [F, 6, D] (per frame, broadcast to the frame's tokens, never
                   materialised per token); 1.3b adds the fps embedding (Embedding(2, D) - MLP -> [6, D]) to e0
  block x layers   LN (no affine) * (1 + scale) + shift; q, k, v Linear(D, D); RMSNorm over the full width on q
                   and k; 3-axis RoPE (adjacent pairs, 22/21/21 pairs for frame/row/column, theta 10000); attention
                   over all L tokens; o Linear; gated residual. Cross-attention: affine LN; q from the video,
                   k, v from the text (RMSNorm on q and k, no RoPE), o Linear; plain residual. FFN: LN modulated,
                   Linear(D, ffn) - GELU(tanh) - Linear(ffn, D), gated residual. Modulation = table [1, 6, D] + e0.
  head             LN * (1 + scale) + shift with (table [1, 2, D] + e); Linear(D, 64); unpatchify -> [1, 16, F, h, w]
Precision: weights and activations in --dtype (bf16 default); LayerNorm statistics, the q/k RMSNorm and RoPE
in fp32 (cast back before attention, as SkyReels does); the residual stream stays in --dtype (as diffusers).
Cross-attention K/V are recomputed in every forward and every block, as upstream does and as wan_dit_flops
counts them. The parameter count equals the spec's (14b: 14,288,491,584; 1.3b: 1,435,525,696). With the weights
of tests/reference/wan_dit_ref.py copied in, this model in f32 gives that float64 reference's output to a relative
L2 error of 4e-7 at the tiny config, with and without the fps embedding (checked once, outside the repo).

FLOP count (multiply-add = 2; same formula as model/wan_dit.c wan_dit_flops, no causal mask, no image branch):
  per block: self q,k,v,o 8*L*D^2 + self attention 4*L^2*D + cross q,o 4*L*D^2 + cross k,v 4*Lc*D^2
             + cross attention 4*L*Lc*D + FFN 4*L*D*ffn;        times layers, plus
  patch embedding 2*L*D*16*4 + text embedding 2*Lc*D*text_dim + 2*Lc*D^2 + head 2*L*D*16*4.
  Not counted (as in reelfarm): time/fps embedding, norms, RoPE, modulation, softmax.
  SDPA alone (--attention): 4 * L^2 * D = 4 * tokens^2 * heads * head_dim (Q K^T and P V, 2 FLOP per MAC).

Output (stdout; diagnostics on stderr):
  bench_flops ...   the per-component FLOPs and the total (flops_total, gflop) of one forward
  bench impl=torch ... s_per_forward=<median s> s_per_forward_min=... gflop=... tflops=<from the median>
                    tflops_best=<from the min> peak_mem_mib=... sdpa_backend=... layers=... layers_mode=...
                    weights=distinct|shared  (with --cfg 2 also s_per_step: two forwards and the CFG combine)
  bench_gemm  ...   one line per GEMM shape (square sizes and the model's own GEMM shapes at this L)
  bench_gemm_peak   the best square-GEMM rate: the measured GEMM peak
  bench_attn  ...   SDPA alone at [1, heads, L, head_dim] (self-attention shape), its TFLOP/s
  bench_summary     forward, attention and GEMM-peak TFLOP/s side by side and their ratios
layers_mode=full: every block of the model was run. layers_mode=partial: --layers N below the preset's count;
then s_per_forward_full_est = (forward time - time in blocks) + preset_layers * median block time, and
tflops_full_est uses the full model's FLOPs. weights=shared: one block's weights are used by every block
(all blocks still run; same FLOPs and shapes) because distinct weights would not fit in device memory;
peak_mem_mib then excludes (layers - 1) blocks' weights (weights_mib_full says what the full set takes).

Usage (defaults mirror `reelfarm bench`: 1.3b, 540p, 5 frames, text 512, warmup 1, repeat 3, so the same
shape flags give the same shape in both tools):
  # the issue-8 side-by-side on one GPU: the 14B forward at 720P/121 frames, SDPA alone, the GEMM peak
  python3 scripts/bench-torch-dit.py --model-size 14b --resolution 720p --frames 121 \\
      --gemm-peak --attention --json /tmp/torch-14b-720p.json
  # shapes, parameter count and FLOPs only (allocates nothing; works on any machine)
  python3 scripts/bench-torch-dit.py --model-size 14b --resolution 720p --frames 121 --dry-run
  # a few blocks, extrapolated to 40
  python3 scripts/bench-torch-dit.py --model-size 14b --resolution 720p --frames 121 --layers 4
  # SDPA alone / GEMM peak alone
  python3 scripts/bench-torch-dit.py --model-size 14b --resolution 720p --frames 121 --attention-only
  python3 scripts/bench-torch-dit.py --gemm-peak --no-forward
  # CPU smoke test (torch 1.13 without SDPA: manual softmax attention)
  python3 scripts/bench-torch-dit.py --model-size tiny --dtype f32 --resolution 64x64 --frames 9
  # compare the FLOP count with reelfarm's (wan_dit_flops; --gpu-tflops 0.001 makes the 1-rank
  # "compute s" column equal to GFLOP per forward):
  build/reelfarm bench --comm-model --model-size 14b --resolution 720p --frames 121 --gpu-tflops 0.001 --comm-ranks 1

Options:
  --model-size tiny|1.3b|14b   preset (spec 1; tiny = reelfarm's built-in tiny: D 256, 2 heads, ffn 512,
                               2 layers, text_dim 64)
  --dim N / --heads N / --ffn N / --layers N / --text-len N / --text-dim N   overrides (--heads alone sets
                               D = heads * 128 as reelfarm; --dim alone sets heads = D / 128)
  --resolution 540p|720p|WxH   (540p = 960x544, 720p = 1280x720; multiples of 16)
  --frames N                   video frames, 4k+1 (121 -> 31 latent frames)
  --dtype bf16|f32             (default bf16; f32 matmuls do not use TF32 unless --allow-tf32)
  --device cuda|cpu            (default cuda when available)
  --attn sdpa|manual           (default sdpa when torch has it; manual = chunked softmax(QK^T)V)
  --sdpa-backend flash|efficient|cudnn|math|auto   (default flash; if the forced backend cannot run this
                               shape/dtype the run says so and falls back to auto)
  --cfg 1|2 / --guidance G     2 = a step is the conditional and the unconditional pass and their combination
                               (as reelfarm bench --guidance G > 1); --guidance > 1 implies --cfg 2
  --weights auto|distinct|shared   (auto: distinct if the estimate fits in free device memory)
  --warmup N / --repeat N      untimed / timed steps (default 1 / 3); timing by CUDA events, median reported;
                               the last timed step also records an event around every block (s_per_block)
  --time-budget S              after the warm-up, time fewer steps if repeat x warm-up step would pass S seconds
                               (for the device machine's 10-minute command limit; default 0 = off)
  --gemm-peak [--gemm-sizes 4096,8192,16384]   measured dense GEMM rate in --dtype, best of the square sizes;
                               the model's GEMM shapes at this L are timed too (--no-gemm-model-shapes to skip)
  --attention / --attention-only   SDPA alone at the self-attention shape (the latter skips the forward)
  --no-forward                 skip the DiT forward (e.g. with --gemm-peak)
  --dry-run                    print shapes, modules, parameter count, memory estimate and FLOPs; allocate nothing
  --json OUT                   write every figure with torch/CUDA versions, device name, date and command
  --seed S / --threads N
"""

import argparse
import contextlib
import datetime
import functools
import json
import math
import os
import platform
import resource
import shlex
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HEAD_DIM = 128
PATCH = (1, 2, 2)
LATENT_CHANNELS = 16
FREQ_DIM = 256
EPS = 1e-6

# spec section 1 (and model/wan_config.c wan_config_preset)
PRESETS = {
    "tiny": dict(dim=256, heads=2, ffn=8 * 64, layers=2, text_dim=64, fps=False),
    "1.3b": dict(dim=1536, heads=12, ffn=8960, layers=30, text_dim=4096, fps=True),
    "14b": dict(dim=5120, heads=40, ffn=13824, layers=40, text_dim=4096, fps=False),
}
# spec section 1, "Parameter counts (derived)"
SPEC_PARAMS = {("1.3b", 30, True): 1435525696, ("14b", 40, False): 14288491584}


def log(msg):
    print("bench-torch-dit: " + msg, file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(2)


# ------------------------------------------------------------------------------------------------
# FLOPs: model/wan_dit.c wan_dit_flops, term by term (same operation order, so the same double)
# ------------------------------------------------------------------------------------------------


def wan_dit_flops(dim, ffn, layers, in_channels, out_channels, text_dim, frames, height, width, context_len,
                  causal_block_size=0, image_len=0, has_image=False):
    """frames/height/width are the latent grid (F, H/8, W/8) as in struct wan_dit_shape."""
    d, fd = float(dim), float(ffn)
    hp, wp = float(height // PATCH[1]), float(width // PATCH[2])
    f = float(frames // PATCH[0])
    l, lc, ni = f * hp * wp, float(context_len), float(image_len)
    pp = float(PATCH[0] * PATCH[1] * PATCH[2])
    pairs = l * l
    if causal_block_size > 0:
        tpb, nb = hp * wp * causal_block_size, f / causal_block_size
        pairs, bi = 0.0, 0.0
        while bi < nb:
            pairs += tpb * tpb * (bi + 1)
            bi += 1
    per_block = (2 * l * d * d * 4 + 4 * pairs * d + 2 * l * d * d * 2 + 2 * lc * d * d * 2 + 4 * l * lc * d
                 + 2 * l * d * fd * 2)
    if has_image:
        per_block += 2 * ni * d * d * 2 + 4 * l * ni * d
    total = float(layers) * per_block
    total += 2 * l * d * in_channels * pp
    total += 2 * lc * d * float(text_dim) + 2 * lc * d * d
    total += 2 * l * d * out_channels * pp
    nl = float(layers)
    comps = {
        "self_qkvo": nl * (2 * l * d * d * 4),
        "self_attn": nl * (4 * pairs * d),
        "cross_qo": nl * (2 * l * d * d * 2),
        "cross_kv": nl * (2 * lc * d * d * 2),
        "cross_attn": nl * (4 * l * lc * d),
        "ffn": nl * (2 * l * d * fd * 2),
        "patch_embed": 2 * l * d * in_channels * pp,
        "text_embed": 2 * lc * d * float(text_dim) + 2 * lc * d * d,
        "head": 2 * l * d * out_channels * pp,
    }
    return total, comps


# ------------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------------

HAVE_SDPA = hasattr(F, "scaled_dot_product_attention")


def manual_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v for [B, H, Lq, d] x [B, H, Lk, d], query-chunked to bound memory."""
    b, h, lq, d = q.shape
    lk = k.shape[2]
    scale = 1.0 / math.sqrt(d)
    kt = k.transpose(-1, -2)
    if q.device.type == "meta":
        return torch.matmul(torch.softmax(torch.matmul(q, kt) * scale, dim=-1), v)
    out = torch.empty(b, h, lq, d, dtype=q.dtype, device=q.device)
    budget = (1 << 28) if q.device.type == "cuda" else (1 << 26)  # score elements per chunk
    chunk = max(1, budget // max(1, b * h * lk))
    for s in range(0, lq, chunk):
        sc = torch.matmul(q[:, :, s:s + chunk], kt)
        sc = sc.float().mul_(scale).softmax(dim=-1).to(v.dtype)
        out[:, :, s:s + chunk] = torch.matmul(sc, v)
    return out


def sdpa_context(backend):
    """A context that allows only `backend` for SDPA (None for auto)."""
    if backend == "auto":
        return contextlib.nullcontext()
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
        names = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "math": "MATH",
                 "cudnn": "CUDNN_ATTENTION"}
        if not hasattr(SDPBackend, names[backend]):
            raise RuntimeError("this torch has no SDPBackend.%s" % names[backend])
        return sdpa_kernel([getattr(SDPBackend, names[backend])])
    except ImportError:
        pass
    if backend == "cudnn":
        raise RuntimeError("cuDNN attention needs torch >= 2.3 (torch.nn.attention.sdpa_kernel)")
    return torch.backends.cuda.sdp_kernel(enable_flash=backend == "flash", enable_mem_efficient=backend == "efficient",
                                          enable_math=backend == "math")


def classify_kernels(names):
    low = " ".join(names).lower()
    if "flash" in low and "cudnn" not in low:
        return "flash"
    if "cudnn" in low:
        return "cudnn"
    if "fmha" in low or "efficient" in low or "mem_eff" in low:
        return "efficient"
    return "math"


def short_kernel(name):
    n = name
    for sep in ("<", "("):
        n = n.split(sep)[0]
    n = n.split("::")[-1].strip()
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in n)[:80] or "?"


def detect_sdpa_kernels(backend, heads, dtype, device, lk=None):
    """Run one small SDPA call under the backend's context with the profiler; the device kernels' names."""
    try:
        from torch.profiler import ProfilerActivity, profile
        q = torch.randn(1, heads, 512, HEAD_DIM, dtype=dtype, device=device)
        k = torch.randn(1, heads, lk or 512, HEAD_DIM, dtype=dtype, device=device)
        with sdpa_context(backend):
            F.scaled_dot_product_attention(q, k, k)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                F.scaled_dot_product_attention(q, k, k)
                torch.cuda.synchronize()
        names = []
        for e in prof.events():
            dt = getattr(e, "device_type", None)
            if dt is not None and str(dt).endswith("CUDA") and e.name not in names:
                names.append(e.name)
        if not names:
            names = [e.name for e in prof.events() if not e.name.startswith(("aten::", "cuda"))]
        return names
    except Exception as ex:  # profiler/CUPTI problems must not stop the benchmark
        return ["(profiler failed: %s)" % str(ex).splitlines()[0][:120]]


def probe_sdpa(backend, heads, dtype, device, lq, lk):
    """Can SDPA run under `backend` at [1, heads, lq/lk, 128]? (small lengths: same kernel selection rules)."""
    try:
        q = torch.randn(1, heads, min(lq, 256), HEAD_DIM, dtype=dtype, device=device)
        k = torch.randn(1, heads, min(lk, 256), HEAD_DIM, dtype=dtype, device=device)
        with sdpa_context(backend):
            F.scaled_dot_product_attention(q, k, k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return True, ""
    except Exception as ex:
        return False, str(ex).strip().splitlines()[0][:200] if str(ex).strip() else type(ex).__name__


# ------------------------------------------------------------------------------------------------
# The model (spec section 3)
# ------------------------------------------------------------------------------------------------


def rope_tables(head_dim, grid, device, theta=10000.0):
    """cos, sin [L, 1, head_dim/2] (fp32) for the 3-axis RoPE: pairs split frame/row/column as
    [c - 2*(c//3), c//3, c//3] (22/21/21 for d = 128); omega_j = theta^(-j/n) for an axis of n pairs."""
    c = head_dim // 2
    split = [c - 2 * (c // 3), c // 3, c // 3]
    f, hp, wp = grid
    angles = []
    for n, size, shape in zip(split, (f, hp, wp), ((f, 1, 1), (1, hp, 1), (1, 1, wp))):
        omega = 1.0 / theta ** (torch.arange(0, 2 * n, 2, dtype=torch.float64, device=device)[:n] / (2 * n))
        pos = torch.arange(size, dtype=torch.float64, device=device)
        ang = (pos[:, None] * omega[None, :]).view(*shape, n).expand(f, hp, wp, n)
        angles.append(ang)
    ang = torch.cat(angles, dim=-1).reshape(f * hp * wp, 1, c).float()
    return torch.cos(ang), torch.sin(ang)


def rms_norm_f32(y, weight):
    """RMSNorm over the last dim in fp32; returns fp32 (SkyReels keeps q/k fp32 until attention)."""
    y = y.float()
    ms = y.pow(2).mean(dim=-1, keepdim=True)
    return y.mul_(torch.rsqrt(ms.add_(EPS))).mul_(weight.float())


def rope_apply(y32, cos, sin, heads, out_dtype):
    """y32 [1, L, D] fp32 -> [1, L, H, d] out_dtype, adjacent pairs (x[2j], x[2j+1]) rotated."""
    b, l, dim = y32.shape
    y = y32.view(b, l, heads, dim // heads // 2, 2)
    a, bb = y[..., 0], y[..., 1]
    out = torch.empty(b, l, heads, dim // heads // 2, 2, dtype=out_dtype, device=y32.device)
    t = a * cos
    t.addcmul_(bb, sin, value=-1)
    out[..., 0] = t
    t = torch.mul(a, sin, out=t)
    t.addcmul_(bb, cos)
    out[..., 1] = t
    return out.view(b, l, heads, dim // heads)


class WanBlock(nn.Module):
    def __init__(self, dim, heads, ffn, **fk):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.modulation = nn.Parameter(torch.empty(1, 6, dim, **fk))
        # self-attention
        self.q, self.k = nn.Linear(dim, dim, **fk), nn.Linear(dim, dim, **fk)
        self.v, self.o = nn.Linear(dim, dim, **fk), nn.Linear(dim, dim, **fk)
        self.norm_q, self.norm_k = nn.Parameter(torch.empty(dim, **fk)), nn.Parameter(torch.empty(dim, **fk))
        # cross-attention (norm3 = affine LayerNorm on its input, spec 3.6 step 4)
        self.norm3 = nn.LayerNorm(dim, eps=EPS, elementwise_affine=True, **fk)
        self.cq, self.ck = nn.Linear(dim, dim, **fk), nn.Linear(dim, dim, **fk)
        self.cv, self.co = nn.Linear(dim, dim, **fk), nn.Linear(dim, dim, **fk)
        self.cnorm_q, self.cnorm_k = nn.Parameter(torch.empty(dim, **fk)), nn.Parameter(torch.empty(dim, **fk))
        # FFN
        self.ffn1, self.ffn2 = nn.Linear(dim, ffn, **fk), nn.Linear(ffn, dim, **fk)

    def reset_extra(self):
        with torch.no_grad():
            self.modulation.normal_(0, 1.0 / math.sqrt(self.dim))
            for p in (self.norm_q, self.norm_k, self.cnorm_q, self.cnorm_k):
                p.fill_(1.0)

    def forward(self, x, e0, ctx, rope, grid, attn):
        """x [1, L, D]; e0 [F, 6, D]; ctx [1, Lc, D] (embedded text)."""
        nf, s = grid[0], grid[1] * grid[2]
        l, d, h = x.shape[1], self.dim, self.heads
        dt = x.dtype
        m = (self.modulation + e0).to(dt)  # [F, 6, D]: shift, scale, gate (self), shift, scale, gate (FFN)
        sh1, sc1, g1, sh2, sc2, g2 = (m[:, i, None, :] for i in range(6))
        # self-attention
        u = F.layer_norm(x.view(nf, s, d), (d,), eps=EPS).mul_(1 + sc1).add_(sh1).view(1, l, d)
        cos, sin = rope
        q = rope_apply(rms_norm_f32(self.q(u), self.norm_q), cos, sin, h, dt)
        k = rope_apply(rms_norm_f32(self.k(u), self.norm_k), cos, sin, h, dt)
        v = self.v(u).view(1, l, h, d // h)
        del u
        a = attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        del q, k, v
        a = self.o(a.transpose(1, 2).reshape(1, l, d))
        x = x.add_(a.view(nf, s, d).mul_(g1).view(1, l, d))
        del a
        # cross-attention (no modulation, no RoPE, no mask: all text rows)
        lc = ctx.shape[1]
        c_in = self.norm3(x)
        q = rms_norm_f32(self.cq(c_in), self.cnorm_q).to(dt).view(1, l, h, d // h)
        del c_in
        k = rms_norm_f32(self.ck(ctx), self.cnorm_k).to(dt).view(1, lc, h, d // h)
        v = self.cv(ctx).view(1, lc, h, d // h)
        a = attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        del q, k, v
        a = self.co(a.transpose(1, 2).reshape(1, l, d))
        x = x.add_(a)
        del a
        # FFN
        u = F.layer_norm(x.view(nf, s, d), (d,), eps=EPS).mul_(1 + sc2).add_(sh2).view(1, l, d)
        y = self.ffn1(u)
        del u
        y = F.gelu(y, approximate="tanh")
        y = self.ffn2(y)
        x = x.add_(y.view(nf, s, d).mul_(g2).view(1, l, d))
        return x


class WanDiT(nn.Module):
    def __init__(self, dim, heads, ffn, layers, text_dim, fps, shared_blocks, **fk):
        super().__init__()
        self.dim, self.heads, self.layers_n, self.fps = dim, heads, layers, fps
        pprod = PATCH[0] * PATCH[1] * PATCH[2]
        self.patch_embedding = nn.Conv3d(LATENT_CHANNELS, dim, PATCH, stride=PATCH, **fk)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim, **fk), nn.GELU(approximate="tanh"),
                                            nn.Linear(dim, dim, **fk))
        self.time_embedding = nn.Sequential(nn.Linear(FREQ_DIM, dim, **fk), nn.SiLU(), nn.Linear(dim, dim, **fk))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, **fk))
        if fps:  # DF-1.3B: inject_sample_info (spec 3.4 step 5)
            self.fps_embedding = nn.Embedding(2, dim, **fk)
            self.fps_projection = nn.Sequential(nn.Linear(dim, dim, **fk), nn.SiLU(), nn.Linear(dim, 6 * dim, **fk))
        if shared_blocks:
            blk = WanBlock(dim, heads, ffn, **fk)
            self.blocks = nn.ModuleList([blk] * layers)
        else:
            self.blocks = nn.ModuleList([WanBlock(dim, heads, ffn, **fk) for _ in range(layers)])
        self.head_modulation = nn.Parameter(torch.empty(1, 2, dim, **fk))
        self.head = nn.Linear(dim, LATENT_CHANNELS * pprod, **fk)
        self.block_marks = None  # a callable recording a time mark around each block (timing)
        if fk.get("device") is None or torch.device(fk["device"]).type != "meta":
            with torch.no_grad():
                self.head_modulation.normal_(0, 1.0 / math.sqrt(dim))
                for b in set(self.blocks):
                    b.reset_extra()

    def time_embed(self, t):
        """t [F] -> e [F, D], e0 [F, 6, D]."""
        half = FREQ_DIM // 2
        omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
        ang = t.double()[:, None] * omega[None, :]
        sinus = torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).to(self.head.weight.dtype)
        e = self.time_embedding(sinus)
        e0 = self.time_projection(e).view(-1, 6, self.dim)
        if self.fps:
            idx = torch.ones(1, dtype=torch.long, device=t.device)  # fps 24 -> code 1
            e0 = e0 + self.fps_projection(self.fps_embedding(idx)).view(1, 6, self.dim)
        return e, e0

    def forward(self, latents, t, context, rope, attn):
        _, c, nf, h, w = latents.shape
        grid = (nf // PATCH[0], h // PATCH[1], w // PATCH[2])
        d = self.dim
        mark = self.block_marks
        if mark:
            mark()  # forward start
        x = self.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()  # [1, L, D], frame-major
        ctx = self.text_embedding(context)
        e, e0 = self.time_embed(t)
        if mark:
            mark()  # before block 0
        for blk in self.blocks:
            x = blk(x, e0, ctx, rope, grid, attn)
            if mark:
                mark()
        hm = (self.head_modulation + e[:, None, :]).to(x.dtype)  # [F, 2, D]: shift, scale
        s = grid[1] * grid[2]
        z = F.layer_norm(x.view(grid[0], s, d), (d,), eps=EPS) * (1 + hm[:, 1, None]) + hm[:, 0, None]
        out = self.head(z)  # [F, S, 64], k = ((pt*2 + ky)*2 + kx)*16 + c
        out = out.view(grid[0], grid[1], grid[2], PATCH[0], PATCH[1], PATCH[2], LATENT_CHANNELS)
        out = out.permute(6, 0, 3, 1, 4, 2, 5).reshape(1, LATENT_CHANNELS, nf, h, w).float()
        if mark:
            mark()  # forward end
        return out


def param_count_formula(dim, heads, ffn, layers, text_dim, fps):
    """model/wan_config.c wan_config_param_count (t2v)."""
    d, pp = dim, PATCH[0] * PATCH[1] * PATCH[2]
    n = d * LATENT_CHANNELS * pp + d + d * text_dim + d + d * d + d + d * FREQ_DIM + d + d * d + d + 6 * d * d + 6 * d
    n += 2 * d + LATENT_CHANNELS * pp * d + LATENT_CHANNELS * pp
    if fps:
        n += 2 * d + d * d + d + 6 * d * d + 6 * d
    blk = 6 * d + 2 * (4 * (d * d + d) + 2 * d) + 2 * d + ffn * d + ffn + d * ffn + d
    return n + layers * blk


# ------------------------------------------------------------------------------------------------
# Timing helpers
# ------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def seconds(self, a, b):
        return a.elapsed_time(b) / 1000.0 if self.cuda else b - a


def time_fn(fn, clock, warmup, repeat, iters=1):
    """Median/min seconds of fn() over `repeat` measurements of `iters` calls each (per call)."""
    for _ in range(warmup):
        fn()
    clock.sync()
    ts = []
    for _ in range(repeat):
        a = clock.mark()
        for _ in range(iters):
            fn()
        b = clock.mark()
        clock.sync()
        ts.append(clock.seconds(a, b) / iters)
    return ts


def calibrate_iters(fn, clock, target_s):
    fn()
    clock.sync()
    a = clock.mark()
    fn()
    b = clock.mark()
    clock.sync()
    t = max(clock.seconds(a, b), 1e-6)
    return max(1, min(1000, int(target_s / t)))


# ------------------------------------------------------------------------------------------------
# Memory estimate (for --weights auto and --dry-run)
# ------------------------------------------------------------------------------------------------


def activation_estimate(cfg, tokens, ctx_len, dtype_bytes, cfg_passes):
    """Bytes of live activations at the forward's peak (rough upper bound; see the block's forward)."""
    ld = tokens * cfg["dim"]
    attn_phase = ld * (7 * dtype_bytes + 8)  # x, u, q, k, v, a + the fp32 RMSNorm/RoPE temporaries
    ffn_phase = ld * 3 * dtype_bytes + 2 * tokens * cfg["ffn"] * dtype_bytes
    inputs = (LATENT_CHANNELS * tokens * 4 * (dtype_bytes + 4 + 4 * cfg_passes)  # latents, f32 outputs
              + cfg_passes * ctx_len * (cfg["text_dim"] + cfg["dim"]) * dtype_bytes
              + tokens * HEAD_DIM * 4)  # RoPE tables
    return max(attn_phase, ffn_phase) + inputs


def free_memory(device):
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return free, total
    try:
        with open("/proc/meminfo") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ":" in ln}
        return info.get("MemAvailable", 0), info.get("MemTotal", 0)
    except OSError:
        return 0, 0


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_resolution(v):
    s = v.lower()
    if s == "540p":
        return 960, 544
    if s == "720p":
        return 1280, 720
    try:
        w, h = s.split("x")
        w, h = int(w), int(h)
        if w > 0 and h > 0:
            return w, h
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("expected 540p, 720p or WIDTHxHEIGHT, got '%s'" % v)


def kv(d):
    out = []
    for k, v in d.items():
        if isinstance(v, float):
            v = ("%.6g" % v) if abs(v) < 1e6 else ("%.6e" % v)
        elif isinstance(v, bool):
            v = int(v)
        out.append("%s=%s" % (k, str(v).replace(" ", "_")))
    return " ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-size", default="1.3b", choices=sorted(PRESETS))
    ap.add_argument("--dim", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--ffn", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--text-len", type=int, default=512)
    ap.add_argument("--text-dim", type=int)
    ap.add_argument("--resolution", type=parse_resolution, default=(960, 544))
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--device", choices=["cuda", "cpu"])
    ap.add_argument("--attn", choices=["sdpa", "manual"])
    ap.add_argument("--sdpa-backend", default="flash", choices=["flash", "efficient", "cudnn", "math", "auto"])
    ap.add_argument("--cfg", type=int, choices=[1, 2])
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--weights", default="auto", choices=["auto", "distinct", "shared"])
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--time-budget", type=float, default=0.0)
    ap.add_argument("--gemm-peak", action="store_true")
    ap.add_argument("--gemm-sizes")
    ap.add_argument("--no-gemm-model-shapes", action="store_true")
    ap.add_argument("--attention", action="store_true")
    ap.add_argument("--attention-only", action="store_true")
    ap.add_argument("--no-forward", action="store_true")
    ap.add_argument("--allow-tf32", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int)
    a = ap.parse_args()

    # ---- configuration (reelfarm bench's rules)
    cfg = dict(PRESETS[a.model_size])
    preset_layers = cfg["layers"]
    if a.heads:
        cfg["heads"], cfg["dim"] = a.heads, a.heads * HEAD_DIM
    if a.dim:
        cfg["dim"] = a.dim
        if not a.heads:
            cfg["heads"] = max(1, a.dim // HEAD_DIM)
    if cfg["dim"] % cfg["heads"] or (cfg["dim"] // cfg["heads"]) % 2:
        die("--dim %d / --heads %d: the head dim must be an even integer" % (cfg["dim"], cfg["heads"]))
    head_dim = cfg["dim"] // cfg["heads"]
    if a.ffn:
        cfg["ffn"] = a.ffn
    if a.text_dim:
        cfg["text_dim"] = a.text_dim
    if a.layers is not None:
        if a.layers < 1:
            die("--layers must be >= 1")
        cfg["layers"] = a.layers
    width, height = a.resolution
    if a.frames < 1 or (a.frames - 1) % 4:
        die("--frames %d: expected 4k+1 video frames (1, 5, 9, ..., 97, 121)" % a.frames)
    if height < 16 or width < 16 or height % 16 or width % 16:
        die("resolution %dx%d: width and height must be positive multiples of 16" % (width, height))
    if a.repeat < 1 or a.warmup < 0:
        die("--repeat must be >= 1 and --warmup >= 0")
    cfg_passes = a.cfg or (2 if a.guidance > 1.0 else 1)
    guidance = a.guidance if a.guidance > 1.0 else 6.0
    lat_f, lat_h, lat_w = (a.frames - 1) // 4 + 1, height // 8, width // 8
    grid = (lat_f // PATCH[0], lat_h // PATCH[1], lat_w // PATCH[2])
    tokens = grid[0] * grid[1] * grid[2]
    do_forward = not (a.no_forward or a.attention_only)
    do_attn = a.attention or a.attention_only

    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    dbytes = 2 if a.dtype == "bf16" else 4
    dev_name = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dev_name == "cuda" and not torch.cuda.is_available():
        die("--device cuda: torch sees no CUDA device")
    device = torch.device(dev_name)
    if a.threads:
        torch.set_num_threads(a.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = a.allow_tf32
        torch.backends.cudnn.allow_tf32 = a.allow_tf32
    attn_impl = a.attn or ("sdpa" if HAVE_SDPA else "manual")
    if attn_impl == "sdpa" and not HAVE_SDPA:
        die("--attn sdpa: torch %s has no scaled_dot_product_attention (needs >= 2.0)" % torch.__version__)

    flops_fwd, comps = wan_dit_flops(cfg["dim"], cfg["ffn"], cfg["layers"], LATENT_CHANNELS, LATENT_CHANNELS,
                                     cfg["text_dim"], lat_f, lat_h, lat_w, a.text_len)
    flops_full, _ = wan_dit_flops(cfg["dim"], cfg["ffn"], preset_layers, LATENT_CHANNELS, LATENT_CHANNELS,
                                  cfg["text_dim"], lat_f, lat_h, lat_w, a.text_len)
    n_params = param_count_formula(cfg["dim"], cfg["heads"], cfg["ffn"], cfg["layers"], cfg["text_dim"], cfg["fps"])
    n_params_full = param_count_formula(cfg["dim"], cfg["heads"], cfg["ffn"], preset_layers, cfg["text_dim"],
                                        cfg["fps"])
    act_bytes = activation_estimate(cfg, tokens, a.text_len, dbytes, cfg_passes)

    report = {
        "tool": "scripts/bench-torch-dit.py", "impl": "torch",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv),
        "host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
        "cuda": getattr(torch.version, "cuda", None), "device": dev_name,
        "config": dict(model_size=a.model_size, dim=cfg["dim"], heads=cfg["heads"], head_dim=head_dim,
                       ffn_dim=cfg["ffn"], layers=cfg["layers"], preset_layers=preset_layers,
                       text_dim=cfg["text_dim"], text_len=a.text_len, fps_embedding=cfg["fps"], frames=a.frames,
                       latent_frames=lat_f, height=height, width=width, latent_grid=list(grid), tokens=tokens,
                       dtype=a.dtype, cfg=cfg_passes, guidance=guidance if cfg_passes == 2 else 1.0,
                       seed=a.seed, attn=attn_impl),
        "flops": dict(per_forward=flops_fwd, components=comps, full_model_per_forward=flops_full,
                      formula="model/wan_dit.c wan_dit_flops (multiply-add = 2)"),
        "params": n_params, "params_full_model": n_params_full,
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        report["gpu"] = dict(name=p.name, memory_mib=p.total_memory / 2**20, sm_count=p.multi_processor_count,
                             capability="%d.%d" % (p.major, p.minor))
        report["cudnn"] = torch.backends.cudnn.version()
    else:
        report["cpu_threads"] = torch.get_num_threads()

    tag = dict(impl="torch", model=a.model_size, dim=cfg["dim"], heads=cfg["heads"], ffn=cfg["ffn"],
               layers=cfg["layers"], frames=a.frames, latent_frames=lat_f, height=height, width=width,
               tokens=tokens, context=a.text_len)
    print("bench_flops " + kv(dict(model=a.model_size, tokens=tokens, layers=cfg["layers"], context=a.text_len,
                                   **{k: "%.6e" % v for k, v in comps.items()},
                                   flops_total="%.0f" % flops_fwd, gflop="%.2f" % (flops_fwd / 1e9),
                                   self_attn_share="%.3f" % (comps["self_attn"] / flops_fwd))), flush=True)

    # ---- dry run: shapes, modules, parameters, FLOPs; nothing allocated
    if a.dry_run:
        dry_run(a, cfg, preset_layers, grid, tokens, lat_f, lat_h, lat_w, head_dim, dtype, dbytes, n_params,
                n_params_full, act_bytes, flops_fwd, flops_full, attn_impl, report)
        return

    torch.manual_seed(a.seed)
    clock = Clock(device)
    attn_fn, sdpa_info = pick_attention(a, attn_impl, cfg["heads"], dtype, device, tokens)
    report["sdpa"] = sdpa_info
    if sdpa_info:
        log("attention: " + kv(sdpa_info))
    summary = {}

    # ---- the DiT forward
    if do_forward:
        free, total = free_memory(device)
        weights_full_bytes = n_params * dbytes
        need = weights_full_bytes + act_bytes
        shared = a.weights == "shared" or (a.weights == "auto" and free and need > 0.92 * free)
        if shared and a.weights == "auto":
            log("distinct weights need ~%.1f GiB (weights %.1f + activations %.1f) of %.1f GiB free: "
                "running all %d blocks on ONE block's weights (weights=shared)"
                % (need / 2**30, weights_full_bytes / 2**30, act_bytes / 2**30, free / 2**30, cfg["layers"]))
        t0 = time.perf_counter()
        with torch.inference_mode():
            model = WanDiT(cfg["dim"], cfg["heads"], cfg["ffn"], cfg["layers"], cfg["text_dim"], cfg["fps"],
                           shared, device=device, dtype=dtype)
            model.eval()
            gen_shape = (1, LATENT_CHANNELS, lat_f, lat_h, lat_w)
            latents = torch.randn(gen_shape, device=device, dtype=dtype)
            ctx_c = torch.randn(1, a.text_len, cfg["text_dim"], device=device, dtype=dtype)
            ctx_u = torch.randn(1, a.text_len, cfg["text_dim"], device=device, dtype=dtype) if cfg_passes == 2 \
                else None
            tsteps = torch.tensor([999 - (i * 997) // (lat_f - 1 if lat_f > 1 else 1) for i in range(lat_f)],
                                  device=device, dtype=torch.float32)
            rope = rope_tables(head_dim, grid, device)
        clock.sync()
        init_s = time.perf_counter() - t0
        n_alloc = sum(p.numel() for p in model.parameters())
        weights_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        if not shared:
            assert n_alloc == n_params, (n_alloc, n_params)
        spec_n = SPEC_PARAMS.get((a.model_size, cfg["layers"], cfg["fps"]))
        if spec_n and not (a.dim or a.heads or a.ffn or a.text_dim) and not shared and n_alloc != spec_n:
            log("WARNING: %d parameters, the spec says %d" % (n_alloc, spec_n))

        outs = {}

        def step():
            v = model(latents, tsteps, ctx_c, rope, attn_fn)
            if cfg_passes == 2:
                vu = model(latents, tsteps, ctx_u, rope, attn_fn)
                v = vu.add_(v.sub_(vu), alpha=guidance)  # v_u + g (v_c - v_u), spec 3.8
            outs["v"] = v

        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        base_alloc = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        marks = []
        model.block_marks = None
        ctxm = sdpa_ctx_for(attn_impl, sdpa_info)
        repeat, warm_s = a.repeat, None
        with torch.inference_mode(), ctxm:
            for i in range(a.warmup):
                w0 = clock.mark()
                step()
                w1 = clock.mark()
                clock.sync()
                warm_s = clock.seconds(w0, w1)
            if a.time_budget and warm_s and warm_s * repeat > a.time_budget:
                repeat = max(1, int(a.time_budget / warm_s))
                log("--time-budget %g s: a warm-up step took %.3g s, timing %d steps instead of %d"
                    % (a.time_budget, warm_s, repeat, a.repeat))
            times = []
            for i in range(repeat):
                if i == repeat - 1:  # the last timed step also marks its first forward's blocks
                    model.block_marks = lambda: marks.append(clock.mark())
                t0 = clock.mark()
                step()
                t1 = clock.mark()
                clock.sync()
                model.block_marks = None
                times.append(clock.seconds(t0, t1))
        marks = marks[:cfg["layers"] + 3]  # start, before block 0, after each block, end
        fwd_marked = clock.seconds(marks[0], marks[-1])
        blk_t = [clock.seconds(marks[i], marks[i + 1]) for i in range(1, cfg["layers"] + 1)]
        nonblock = max(0.0, fwd_marked - sum(blk_t))
        finite = bool(torch.isfinite(outs["v"]).all().item())
        if device.type == "cuda":
            peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
            act_peak_mib = peak_mib - base_alloc / 2**20
        else:
            peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            act_peak_mib = None
        med, mn = statistics.median(times), min(times)
        flops_step = cfg_passes * flops_fwd
        layers_mode = "full" if cfg["layers"] >= preset_layers else "partial"
        line = dict(tag)
        line.update(preset_layers=preset_layers, layers_mode=layers_mode, weights="shared" if shared else "distinct",
                    backend=device.type, device=report.get("gpu", {}).get("name", platform.processor() or "cpu"),
                    torch=torch.__version__, dtype=a.dtype, attn=attn_impl)
        if attn_impl == "sdpa":
            line.update(sdpa_requested=sdpa_info.get("requested"), sdpa_backend=sdpa_info.get("backend"),
                        sdpa_kernel=sdpa_info.get("kernel_class", "?"))
        line.update(cfg=cfg_passes, forwards_per_step=cfg_passes, warmup=a.warmup, repeat=repeat)
        if cfg_passes == 2:
            line.update(s_per_step=round(med, 4), s_per_step_min=round(mn, 4))
        line.update(s_per_forward="%.4f" % (med / cfg_passes), s_per_forward_min="%.4f" % (mn / cfg_passes),
                    gflop="%.1f" % (flops_step / 1e9), gflops="%.1f" % (flops_step / med / 1e9),
                    tflops="%.2f" % (flops_step / med / 1e12),
                    tflops_best="%.2f" % (flops_step / mn / 1e12),
                    s_per_block="%.4f" % statistics.median(blk_t), s_outside_blocks="%.4f" % nonblock)
        est_full = None
        if layers_mode == "partial":
            est_full = nonblock + preset_layers * statistics.median(blk_t)
            line.update(s_per_forward_full_est="%.4f" % est_full, gflop_full="%.1f" % (flops_full / 1e9),
                        tflops_full_est="%.2f" % (flops_full / est_full / 1e12))
        line.update(peak_mem_mib="%.0f" % peak_mib, weights_mib="%.0f" % weights_mib,
                    weights_mib_full="%.0f" % (n_params_full * dbytes / 2**20), params_m="%.1f" % (n_params / 1e6),
                    init_s="%.2f" % init_s, output_finite=finite)
        if device.type == "cpu":
            line["threads"] = torch.get_num_threads()
        print("bench " + kv(line), flush=True)
        report["forward"] = dict(
            step_s=times, step_s_median=med, step_s_min=mn, forwards_per_step=cfg_passes,
            s_per_forward_median=med / cfg_passes, s_per_forward_min=mn / cfg_passes,
            flops_per_step=flops_step, tflops_median=flops_step / med / 1e12, tflops_best=flops_step / mn / 1e12,
            block_s=blk_t, s_outside_blocks=nonblock, marked_forward_s=fwd_marked, layers_mode=layers_mode,
            s_per_forward_full_est=est_full, tflops_full_est=(flops_full / est_full / 1e12) if est_full else None,
            weights="shared" if shared else "distinct", peak_mem_mib=peak_mib,
            activation_peak_mib=act_peak_mib, weights_mib=weights_mib, init_s=init_s,
            memory_estimate_mib=dict(weights=n_params * dbytes / 2**20, activations=act_bytes / 2**20),
            output_finite=finite, params_allocated=n_alloc, warmup=a.warmup, repeat=repeat,
            repeat_requested=a.repeat, time_budget_s=a.time_budget)
        summary["forward_tflops"] = flops_step / med / 1e12
        del model, latents, ctx_c, ctx_u, rope, outs
        if device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- SDPA alone at the self-attention shape
    if do_attn:
        res = bench_attention(a, attn_impl, attn_fn, sdpa_info, cfg["heads"], head_dim, tokens, dtype, device, clock)
        report["attention"] = res
        summary["attn_tflops"] = res["tflops_median"]

    # ---- GEMM peak
    if a.gemm_peak:
        res = bench_gemm(a, cfg, tokens, dtype, device, clock)
        report["gemm"] = res
        summary["gemm_peak_tflops"] = res["peak_tflops"]

    if len(summary) > 1 or (summary and "gemm_peak_tflops" in summary):
        s = {k: "%.2f" % v for k, v in summary.items()}
        g = summary.get("gemm_peak_tflops")
        if g:
            for k in ("forward_tflops", "attn_tflops"):
                if k in summary:
                    s[k.replace("_tflops", "") + "_over_gemm_peak"] = "%.3f" % (summary[k] / g)
        print("bench_summary " + kv(dict(impl="torch", model=a.model_size, tokens=tokens, dtype=a.dtype, **s)),
              flush=True)
    report["summary"] = summary
    if a.json:
        write_json(a.json, report)


def sdpa_ctx_for(attn_impl, info):
    if attn_impl != "sdpa":
        return contextlib.nullcontext()
    return sdpa_context(info["backend"])


def pick_attention(a, attn_impl, heads, dtype, device, tokens):
    if attn_impl == "manual":
        return manual_attention, {"impl": "manual", "requested": "manual", "backend": "manual",
                                  "kernel_class": "manual", "kernel": "manual"}
    info = {"impl": "sdpa", "requested": a.sdpa_backend}
    backend = a.sdpa_backend
    if backend != "auto":
        ok_self, why_self = probe_sdpa(backend, heads, dtype, device, tokens, tokens)
        ok_cross, why_cross = probe_sdpa(backend, heads, dtype, device, tokens, 512)
        if not (ok_self and ok_cross):
            info["unavailable_reason"] = why_self or why_cross
            log("SDPA backend '%s' cannot run %s on %s here (%s): falling back to auto"
                % (backend, str(dtype).replace("torch.", ""), device.type, info["unavailable_reason"]))
            backend = "auto"
    info["backend"] = backend
    if device.type == "cuda":
        names = detect_sdpa_kernels(backend, heads, dtype, device)
        info["kernels"] = names
        info["kernel_class"] = classify_kernels(names)
        att = [n for n in names if any(s in n.lower() for s in ("flash", "fmha", "attention", "cudnn", "sdpa"))]
        info["kernel"] = short_kernel(att[0] if att else (names[0] if names else "?"))
    else:
        info["kernel_class"] = "math" if backend in ("auto", "math") else backend
    return F.scaled_dot_product_attention, info


def bench_attention(a, attn_impl, attn_fn, sdpa_info, heads, head_dim, tokens, dtype, device, clock):
    torch.manual_seed(a.seed + 1)
    with torch.inference_mode():
        q = torch.randn(1, heads, tokens, head_dim, device=device, dtype=dtype)
        k = torch.randn(1, heads, tokens, head_dim, device=device, dtype=dtype)
        v = torch.randn(1, heads, tokens, head_dim, device=device, dtype=dtype)
        flops = 4.0 * tokens * tokens * heads * head_dim
        with sdpa_ctx_for(attn_impl, sdpa_info):
            fn = functools.partial(attn_fn, q, k, v)
            iters = calibrate_iters(fn, clock, 0.5)
            ts = time_fn(fn, clock, max(1, a.warmup), max(3, a.repeat), iters)
    med, mn = statistics.median(ts), min(ts)
    line = dict(impl="torch", attn=attn_impl, sdpa_requested=sdpa_info.get("requested"),
                sdpa_backend=sdpa_info.get("backend"), sdpa_kernel=sdpa_info.get("kernel_class", "?"),
                kernel=sdpa_info.get("kernel", "-"), dtype=a.dtype, batch=1, heads=heads, tokens=tokens,
                head_dim=head_dim, causal=0, flops_formula="4*tokens^2*heads*head_dim",
                gflop="%.1f" % (flops / 1e9), iters=iters, s="%.5f" % med, s_min="%.5f" % mn,
                tflops="%.2f" % (flops / med / 1e12), tflops_best="%.2f" % (flops / mn / 1e12))
    print("bench_attn " + kv(line), flush=True)
    del q, k, v
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return dict(shape=[1, heads, tokens, head_dim], flops=flops, flops_formula="4 * tokens^2 * heads * head_dim",
                iters=iters, s=ts, s_median=med, s_min=mn, tflops_median=flops / med / 1e12,
                tflops_best=flops / mn / 1e12, backend=sdpa_info)


def bench_gemm(a, cfg, tokens, dtype, device, clock):
    if a.gemm_sizes:
        sizes = [int(x) for x in a.gemm_sizes.split(",") if x]
    else:
        sizes = [4096, 8192, 16384] if device.type == "cuda" else [256, 512, 1024]
    shapes = [("square", n, n, n) for n in sizes]
    if not a.no_gemm_model_shapes:  # y[M, N] = x[M, K] W[N, K]^T as nn.Linear does
        d, fd = cfg["dim"], cfg["ffn"]
        shapes += [("qkvo", tokens, d, d), ("ffn1", tokens, fd, d), ("ffn2", tokens, d, fd)]
    results, peak, peak_n = [], 0.0, None
    torch.manual_seed(a.seed + 2)
    with torch.inference_mode():
        for kind, m, n, k in shapes:
            x = torch.randn(m, k, device=device, dtype=dtype)
            w = torch.randn(n, k, device=device, dtype=dtype)
            out = torch.empty(m, n, device=device, dtype=dtype)
            fn = functools.partial(torch.matmul, x, w.t(), out=out)
            iters = calibrate_iters(fn, clock, 0.25 if device.type == "cuda" else 0.5)
            ts = time_fn(fn, clock, 2, 5, iters)
            flops = 2.0 * m * n * k
            best, med = min(ts), statistics.median(ts)
            r = dict(kind=kind, m=m, n=n, k=k, iters=iters, s_best=best, s_median=med,
                     tflops_best=flops / best / 1e12, tflops_median=flops / med / 1e12)
            results.append(r)
            print("bench_gemm " + kv(dict(impl="torch", dtype=a.dtype, kind=kind, m=m, n=n, k=k, iters=iters,
                                          s_best="%.6f" % best, tflops_best="%.2f" % r["tflops_best"],
                                          tflops_median="%.2f" % r["tflops_median"])), flush=True)
            if kind == "square" and r["tflops_best"] > peak:
                peak, peak_n = r["tflops_best"], n
            del x, w, out
    if device.type == "cuda":
        torch.cuda.empty_cache()
    line = dict(impl="torch", dtype=a.dtype, tflops=("%.2f" % peak), best_size=peak_n,
                definition="best_of_square_sizes_%s" % "_".join(str(n) for n in sizes))
    if device.type == "cuda" and a.dtype == "f32":
        line["tf32"] = int(a.allow_tf32)
    print("bench_gemm_peak " + kv(line), flush=True)
    return dict(shapes=results, peak_tflops=peak, peak_size=peak_n, sizes=sizes,
                allow_tf32=a.allow_tf32 if a.dtype == "f32" else None)


def dry_run(a, cfg, preset_layers, grid, tokens, lat_f, lat_h, lat_w, head_dim, dtype, dbytes, n_params,
            n_params_full, act_bytes, flops_fwd, flops_full, attn_impl, report):
    d, h, L, lc = cfg["dim"], cfg["heads"], tokens, a.text_len
    print("dry-run: model=%s dim=%d heads=%d head_dim=%d ffn=%d layers=%d (preset %d) text_dim=%d text_len=%d "
          "fps_embedding=%d dtype=%s attn=%s" % (a.model_size, d, h, head_dim, cfg["ffn"], cfg["layers"],
                                                  preset_layers, cfg["text_dim"], lc, cfg["fps"], a.dtype, attn_impl))
    print("dry-run: video %dx%d x %d frames -> latent [1, 16, %d, %d, %d] -> grid %s -> L = %d tokens"
          % (a.resolution[0], a.resolution[1], a.frames, lat_f, lat_h, lat_w, "x".join(map(str, grid)), L))
    shapes = [
        ("latents", [1, LATENT_CHANNELS, lat_f, lat_h, lat_w]), ("patch_embedding out", [1, d] + list(grid)),
        ("tokens x", [1, L, d]), ("context in", [1, lc, cfg["text_dim"]]), ("context embedded", [1, lc, d]),
        ("timesteps (per latent frame)", [lat_f]), ("e", [lat_f, d]), ("e0", [lat_f, 6, d]),
        ("RoPE cos/sin (fp32)", [L, 1, head_dim // 2]),
        ("self q/k/v (SDPA layout)", [1, h, L, head_dim]), ("cross q", [1, h, L, head_dim]),
        ("cross k/v", [1, h, lc, head_dim]), ("FFN hidden", [1, L, cfg["ffn"]]),
        ("head out", [lat_f, grid[1] * grid[2], LATENT_CHANNELS * 4]),
        ("output (unpatchified, fp32)", [1, LATENT_CHANNELS, lat_f, lat_h, lat_w]),
    ]
    for name, s in shapes:
        print("dry-run: shape %-30s %s" % (name, s))
    # module list on the meta device (no memory)
    model = WanDiT(d, h, cfg["ffn"], cfg["layers"], cfg["text_dim"], cfg["fps"], False, device="meta", dtype=dtype)
    n_meta = sum(p.numel() for p in model.parameters())
    n_tensors = sum(1 for _ in model.parameters())
    for name, p in model.named_parameters():
        if name.startswith("blocks.") and not name.startswith("blocks.0."):
            continue
        print("dry-run: param %-34s %s" % (name, list(p.shape)))
    if cfg["layers"] > 1:
        print("dry-run: param blocks.1 .. blocks.%d: as blocks.0" % (cfg["layers"] - 1))
    spec_n = SPEC_PARAMS.get((a.model_size, cfg["layers"], cfg["fps"]))
    print("dry-run: parameters %d in %d tensors (formula %d%s)" % (
        n_meta, n_tensors, n_params,
        "; spec %d: %s" % (spec_n, "equal" if spec_n == n_meta else "DIFFERENT") if spec_n else ""))
    # forward on the meta device: shapes only
    try:
        with torch.inference_mode():
            lat = torch.empty(1, LATENT_CHANNELS, lat_f, lat_h, lat_w, device="meta", dtype=dtype)
            ctx = torch.empty(1, lc, cfg["text_dim"], device="meta", dtype=dtype)
            t = torch.empty(lat_f, device="meta", dtype=torch.float32)
            cos = torch.empty(L, 1, head_dim // 2, device="meta")
            fn = F.scaled_dot_product_attention if attn_impl == "sdpa" else manual_attention
            out = model(lat, t, ctx, (cos, cos), fn)
        print("dry-run: meta-device forward ok: output %s %s" % (list(out.shape), str(out.dtype).replace("torch.", "")))
        meta_ok = list(out.shape)
    except Exception as ex:
        print("dry-run: meta-device forward not supported by torch %s (%s); shapes above are computed"
              % (torch.__version__, str(ex).splitlines()[0][:160] if str(ex) else type(ex).__name__))
        meta_ok = None
    free, total = free_memory(torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    w_gib, act_gib = n_params * dbytes / 2**30, act_bytes / 2**30
    print("dry-run: memory estimate: weights %.2f GiB (%s) + activations ~%.2f GiB = %.2f GiB; %s"
          % (w_gib, a.dtype, act_gib, w_gib + act_gib,
             "free on this machine %.1f GiB of %.1f" % (free / 2**30, total / 2**30) if total else "free unknown"))
    print("dry-run: the forward would run %s (%d of %d blocks), weights %s" % (
        "full" if cfg["layers"] >= preset_layers else "partial", cfg["layers"], preset_layers,
        "distinct" if (not free or (n_params * dbytes + act_bytes) <= 0.92 * free) or a.weights == "distinct"
        else "shared (auto: distinct would not fit here)" if a.weights == "auto" else a.weights))
    print("dry-run: flops per forward %.0f = %.4e (%.2f GFLOP); full %d-layer model %.4e" % (
        flops_fwd, flops_fwd, flops_fwd / 1e9, preset_layers, flops_full))
    report["dry_run"] = dict(params_meta=n_meta, tensors=n_tensors, params_spec=spec_n, meta_forward_output=meta_ok,
                             memory_estimate_gib=dict(weights=w_gib, activations=act_gib),
                             shapes={k: v for k, v in shapes})
    if a.json:
        write_json(a.json, report)


def write_json(path, report):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)
    log("wrote " + path)


if __name__ == "__main__":
    main()
