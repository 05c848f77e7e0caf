#!/usr/bin/env python3
# tests/reference/df_sampling_ref.py - independent reference of SkyReels-V2 diffusion-forcing SAMPLING.
#
# Test tooling only (never part of the product): writes golden files for the C tests of the denoising loop.
# Written from shared/reference/skyreels-v2-spec.md, not from upstream code:
#   * 4.1-4.4  diffusion-forcing timestep matrix (generate_timestep_matrix), in block units, base == F;
#   * 5.1-5.2  flow-UniPC set_timesteps: sigmas, truncated integer timesteps;
#   * 5.3-5.4  one UniPC bh2 predictor-corrector step per latent frame (order 2, lower_order_final,
#              x0 prediction), the final step (sigma = 0) special-cased to x_next = x0;
#   * 5.6      the last_sample aliasing quirk (default on; --textbook-step turns it off);
#   * 6.2, 6.4 one window: prefix latents, add-noise conditioning, CFG (3.8), per-row updates;
#   * 6.5      fps code (0 iff fps == 16).
# Deliberate differences from upstream (see README-sampling.md):
#   * latents / x0 history are float64 (default) or float32 (--dtype float32); never bf16 (spec 5.5 not copied);
#     every scheduler scalar is a float64 computed from the float32 sigmas;
#   * add-noise conditioning draws eps from reelfarm's addressed Philox RNG (core/rng.c, reproduced bit-exactly
#     below), not torch's default CUDA generator;
#   * an end latent is appended as one extra column (t = 0, never updated) after building the matrix for the F
#     generated frames, so it works for any causal_block_size (upstream needs cbs = 1; results equal for cbs = 1).
# The DiT forward is tests/reference/wan_dit_ref.py (spec 3). Needs torch, numpy, h5py: /usr/bin/python3.
#
# Subcommands: denoise, make-input, schedule, selftest. See README-sampling.md.

import argparse
import hashlib
import math
import os
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wan_dit_ref as wdr  # noqa: E402  (the DiT forward; imported, not modified)

GENERATOR = "tests/reference/df_sampling_ref.py"
GOLDEN_FORMAT = "reelfarm-golden-denoise"
GOLDEN_FORMAT_VERSION = 1
LATENT_CHANNELS = 16
ADDNOISE_PURPOSE = 0x61646E73      # "adns": rng_stream_id purpose tag of the add-noise draws
INPUT_DATASETS = ("noise", "context", "negative_context", "prefix_latents", "end_latents")
DTYPES = {"float64": (torch.float64, np.float64), "float32": (torch.float32, np.float32)}


RefError = wdr.RefError  # one error type across the reference scripts


def log(msg):
    print("df_sampling_ref: " + msg, file=sys.stderr)


# ==========================================================================================================
# RNG: Philox4x32-10 and the fills of core/rng.c, bit-exact, in numpy uint32 / uint64 arithmetic
# ==========================================================================================================
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint32(0x9E3779B9)
PHILOX_W1 = np.uint32(0xBB67AE85)
U32 = np.uint64(0xFFFFFFFF)
S32 = np.uint64(32)


def philox4x32_10(ctr, key):
    """ctr: 4 uint32 arrays (broadcastable), key: 2 uint32 arrays. Returns 4 uint32 arrays."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in ctr)
    k0, k1 = (np.array(k, dtype=np.uint32).reshape(1) for k in key)   # 1-d: wrap-around without warnings
    for _ in range(10):
        p0 = PHILOX_M0 * c0.astype(np.uint64)          # < 2^64: exact
        p1 = PHILOX_M1 * c2.astype(np.uint64)
        n0 = (p1 >> S32).astype(np.uint32) ^ c1 ^ k0
        n1 = (p1 & U32).astype(np.uint32)
        n2 = (p0 >> S32).astype(np.uint32) ^ c3 ^ k1
        n3 = (p0 & U32).astype(np.uint32)
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + PHILOX_W0).astype(np.uint32)        # array arithmetic wraps mod 2^32
        k1 = (k1 + PHILOX_W1).astype(np.uint32)
    return c0, c1, c2, c3


def _split64(x):
    x = np.asarray(x, dtype=np.uint64)
    return (x & U32).astype(np.uint32), (x >> S32).astype(np.uint32)


def rng_blocks(seed, stream, blocks):
    """Philox blocks for counter = (block lo32, block hi32, stream lo32, stream hi32), key = (seed lo32, hi32).
    Returns uint32 [len(blocks), 4]."""
    blo, bhi = _split64(np.asarray(blocks, dtype=np.uint64))
    slo, shi = _split64(np.uint64(stream))
    klo, khi = _split64(np.uint64(seed))
    ones = np.ones_like(blo)
    out = philox4x32_10((blo, bhi, slo * ones, shi * ones), (klo, khi))
    return np.stack(out, axis=-1)


def _element_blocks(n, first):
    if n < 0 or first < 0:
        raise RefError("rng: n and first must be >= 0")
    b0 = first // 4
    b1 = (first + n + 3) // 4
    return b0, np.arange(b0, b1, dtype=np.uint64)


def rng_uniform_f32(n, seed, stream, first=0):
    """Elements [first, first + n) of a stream: (float)(x >> 8) * 2^-24 (core/rng.c u32_to_unit)."""
    b0, blocks = _element_blocks(n, first)
    r = rng_blocks(seed, stream, blocks).reshape(-1)
    u = (r >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    off = first - 4 * b0
    return u[off:off + n].copy()


def rng_normal_f32(n, seed, stream, first=0):
    """Box-Muller exactly as core/rng.c: per block, lanes (0,1) and (2,3) are pairs; u1 in (0, 1],
    u2 in [0, 1); rad = sqrt(-2 ln u1); z = (rad cos(2 pi u2), rad sin(2 pi u2)) in double, then float32.
    log/cos/sin go through Python's math module (the C library's libm, as the C code uses)."""
    b0, blocks = _element_blocks(n, first)
    r = rng_blocks(seed, stream, blocks)
    z = np.empty((len(blocks), 4), dtype=np.float64)
    for p in range(2):
        u1 = ((r[:, 2 * p] >> np.uint32(8)).astype(np.float64) + 1.0) / 16777216.0
        u2 = (r[:, 2 * p + 1] >> np.uint32(8)).astype(np.float64) / 16777216.0
        lg = np.fromiter(map(math.log, u1.tolist()), dtype=np.float64, count=len(u1))
        rad = np.sqrt(-2.0 * lg)                       # sqrt is correctly rounded in both
        th = 6.283185307179586 * u2
        z[:, 2 * p] = rad * np.fromiter(map(math.cos, th.tolist()), dtype=np.float64, count=len(th))
        z[:, 2 * p + 1] = rad * np.fromiter(map(math.sin, th.tolist()), dtype=np.float64, count=len(th))
    z = z.reshape(-1).astype(np.float32)
    off = first - 4 * b0
    return z[off:off + n].copy()


def mix64(x):
    x = np.asarray(x, dtype=np.uint64).reshape(-1)   # 1-d: array arithmetic wraps mod 2^64 silently
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)              # uint64 array multiply wraps mod 2^64
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return x


def rng_stream_id(purpose, a, b, c):
    """core/rng.c rng_stream_id (a fixed hash of a purpose tag and three coordinates). Returns a Python int."""
    u = lambda v: np.array(v & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
    h = mix64(u(0x7265656C6661726D) ^ u(purpose & 0xFFFFFFFF))
    h = mix64(h ^ u(a))
    h = mix64(h ^ (u(b) + u(0x9E3779B97F4A7C15)))
    h = mix64(h ^ (u(c) + u(0x632BE59BD9B4E019)))
    return int(h[0])


# ==========================================================================================================
# Scheduler: flow-UniPC set_timesteps (spec 5.2) and one bh2 step per frame (5.3, 5.4, 5.6)
# ==========================================================================================================

def sigmas_timesteps(N, shift):
    """Returns (timesteps int64 [N], solver sigmas float32 [N+1], the float64 sigmas [N])."""
    if N < 1:
        raise RefError("steps must be >= 1")
    if not shift > 0:
        raise RefError("shift must be > 0")
    sigma_max = float(np.float32(0.999))
    u = np.linspace(sigma_max, 0.0, N + 1)[:N]        # numpy's own linspace, float64
    sig = shift * u / (1.0 + (shift - 1.0) * u)
    timesteps = (sig * 1000.0).astype(np.int64)       # truncation toward zero
    sigmas = np.concatenate([sig, [0.0]]).astype(np.float32)
    return timesteps, sigmas, sig


def _lam(s):
    """lambda(sigma) = ln(1 - sigma) - ln(sigma) (alpha = 1 - sigma), float64; sigma in (0, 1)."""
    return math.log(1.0 - s) - math.log(s)


class FrameScheduler:
    """UniPC bh2 (solver order 2, lower_order_final, x0 prediction) for ONE latent frame; spec 5.3.
    State tensors (x0 history, last_sample) are numpy arrays of `np_dtype`; every scalar is a Python float
    (float64) computed from the float32 sigmas. The step index is the frame's own counter.
    alias=True reproduces spec 5.6: at step index 1 the corrector uses the current input sample as
    last_sample; alias=False is textbook UniPC."""

    def __init__(self, sigmas, alias=True, np_dtype=np.float64):
        self.s = [float(x) for x in np.asarray(sigmas, dtype=np.float32)]   # float32 values, as doubles
        self.N = len(self.s) - 1
        self.alias = alias
        self.dt = np_dtype
        self.k = 0
        self.hist = []              # x0 of the last two steps, oldest first
        self.last = None            # last_sample
        self.lower = 0              # lower_order_nums
        self.this_order = None      # predictor order of the previous call (= corrector order of this call)
        self.trace = []             # (k, corrector order or 0, predictor order) per call, for tests

    def corrector_coeffs(self, k, order):
        """Scalars of the UniC update at step k (from sigma_{k-1} to sigma_k). Returns a dict."""
        s = self.s
        h = _lam(s[k]) - _lam(s[k - 1])
        hh = -h
        phi1 = math.expm1(hh)
        B = phi1                                                   # bh2
        c = {"h": h, "ratio": s[k] / s[k - 1], "alpha": 1.0 - s[k], "phi1": phi1, "B": B}
        if order == 1:
            c["rho"] = (0.5,)
        else:
            r = (_lam(s[k - 2]) - _lam(s[k - 1])) / h
            g1 = phi1 / hh - 1.0
            g2 = g1 / hh - 0.5
            b = (g1 * 1.0 / B, g2 * 2.0 / B)
            rho = np.linalg.solve(np.array([[1.0, 1.0], [r, 1.0]]), np.array(b))
            c.update(r=r, b=b, rho=(float(rho[0]), float(rho[1])))
        return c

    def predictor_coeffs(self, k, order):
        """Scalars of the UniP update at step k (from sigma_k to sigma_{k+1} > 0)."""
        s = self.s
        h = _lam(s[k + 1]) - _lam(s[k])
        hh = -h
        phi1 = math.expm1(hh)
        c = {"h": h, "ratio": s[k + 1] / s[k], "alpha": 1.0 - s[k + 1], "phi1": phi1, "B": phi1}
        if order == 2:
            c["r"] = (_lam(s[k - 1]) - _lam(s[k])) / h
        return c

    def step(self, v, x):
        k, N, s = self.k, self.N, self.s
        if k >= N:
            raise RefError("scheduler stepped more than %d times" % N)
        x = np.array(x, dtype=self.dt)                 # copy: the caller's storage is never aliased here
        v = np.asarray(v, dtype=self.dt)
        x0 = x - s[k] * v                              # flow prediction -> x0
        corr = 0
        if k > 0:                                      # corrector (UniC), order of the previous predictor
            p = self.this_order
            corr = p
            c = self.corrector_coeffs(k, p)
            x_prev = x if (self.alias and k == 1) else self.last
            m0 = self.hist[-1]
            base = c["ratio"] * x_prev - (c["alpha"] * c["phi1"]) * m0
            if p == 1:
                x = base - (c["alpha"] * c["B"] * 0.5) * (x0 - m0)
            else:
                d1 = (self.hist[-2] - m0) / c["r"]
                x = base - (c["alpha"] * c["B"]) * (c["rho"][0] * d1 + c["rho"][1] * (x0 - m0))
        self.hist = (self.hist + [x0])[-2:]
        p = min(2, N - k, self.lower + 1)              # lower_order_final, then warm-up
        self.this_order = p
        self.last = x
        if s[k + 1] == 0.0:                            # final step: lambda = +inf, phi1 = B = -1 -> x0 exactly
            x_next = x0.copy()
        else:                                          # predictor (UniP)
            c = self.predictor_coeffs(k, p)
            x_next = c["ratio"] * x - (c["alpha"] * c["phi1"]) * x0
            if p == 2:
                d1 = (self.hist[-2] - x0) / c["r"]
                x_next = x_next - (c["alpha"] * c["B"] * 0.5) * d1
        self.trace.append((k, corr, p))
        self.lower = min(self.lower + 1, 2)
        self.k = k + 1
        return x_next.astype(self.dt, copy=False)


# ==========================================================================================================
# Timestep matrix (spec 4.2), base_num_frames == num_frames
# ==========================================================================================================

def timestep_matrix(F, step_template, ar_step, num_pre_ready, cbs):
    """Returns (step_matrix int64 [rows, F], step_index int64 [rows, F], update_mask bool [rows, F],
    valid_interval int64 [rows, 2])."""
    tmpl = [int(t) for t in step_template]
    N = len(tmpl)
    if cbs < 1 or F < 1 or ar_step < 0 or num_pre_ready < 0 or N < 1:
        raise RefError("timestep_matrix: bad arguments")
    if F % cbs:
        raise RefError("frames %d not divisible by causal_block_size %d" % (F, cbs))
    NB = F // cbs
    NBbase = NB                                  # base_num_frames == num_frames: the window is inert
    R = N + 1
    padded = [999] + tmpl + [0]
    prev = [0] * NB
    for b in range(min(num_pre_ready // cbs, NB)):
        prev[b] = R
    idx_rows, upd_rows = [], []
    while not all(p >= N for p in prev):
        new = []
        for b in range(NB):
            if b == 0 or prev[b - 1] >= N:
                new.append(prev[b] + 1)
            else:
                new.append(new[b - 1] - ar_step)
        new = [min(max(v, 0), R) for v in new]
        idx_rows.append(new)
        upd_rows.append([(n != p) and (n != R) for n, p in zip(new, prev)])
        prev = new
    intervals = []
    tf = NBbase
    for upd in upd_rows:
        if tf < NB and upd[tf]:
            tf += 1
        intervals.append((max(tf - NBbase, 0) * cbs, tf * cbs))
    rows = len(idx_rows)
    step_index = np.repeat(np.array(idx_rows, dtype=np.int64).reshape(rows, NB), cbs, axis=1)
    update = np.repeat(np.array(upd_rows, dtype=bool).reshape(rows, NB), cbs, axis=1)
    step_matrix = np.asarray(padded, dtype=np.int64)[step_index]
    return step_matrix, step_index, update, np.array(intervals, dtype=np.int64).reshape(rows, 2)


def append_end_column(step_matrix, step_index, update, valid_interval, N):
    """The end latent: one more column with timestep 0, step index N+1, never updated; the window (and so
    the valid interval) grows by one frame."""
    rows = step_matrix.shape[0]
    sm = np.concatenate([step_matrix, np.zeros((rows, 1), np.int64)], axis=1)
    si = np.concatenate([step_index, np.full((rows, 1), N + 1, np.int64)], axis=1)
    up = np.concatenate([update, np.zeros((rows, 1), bool)], axis=1)
    vi = valid_interval.copy()
    vi[:, 1] += 1
    return sm, si, up, vi


def expected_rows(N, NB, ar_step, pre_blocks):
    """Row count of spec 4.2 (derived there): sync N; async N + (NB - 1 - P) ar_step (P pre-ready blocks).
    The spec's formula assumes ar_step <= N: a block also starts as soon as the previous one reaches its last
    step, so the effective lag is min(ar_step, N)."""
    if pre_blocks >= NB:
        return 0
    return N + (NB - 1 - pre_blocks) * min(ar_step, N)


# ==========================================================================================================
# One window (spec 6.2, 6.4)
# ==========================================================================================================

def fps_code(fps):
    return 0 if int(fps) == 16 else 1


def addnoise_eps(seed, chunk, row, shape):
    """Fresh N(0,1) for the prefix slice of one row: stream rng_stream_id('adns', chunk, row, 0), from
    element 0, C order."""
    n = int(np.prod(shape))
    return rng_normal_f32(n, seed, rng_stream_id(ADDNOISE_PURPOSE, chunk, row, 0), 0).reshape(shape)


def denoise(P, cfg, noise, context, negative_context=None, prefix=None, end=None, *, steps, shift=8.0,
            guidance=6.0, ar_step=0, cbs=1, causal_attention=False, addnoise_condition=0, seed=0, fps=24,
            chunk=0, alias=True, dtype=torch.float64, forward_fn=None, verbose=False):
    """Denoises one window. noise [16, F, H, W]; prefix [16, Pn, H, W] (Pn < F, Pn % cbs == 0) overwrites
    the first Pn frames; end [16, 1, H, W] is appended as frame F (t = 0, never updated).
    forward_fn(P, cfg, inp, causal_block_size, dtype) -> [16, F', H, W] (default wan_dit_ref.forward).
    Returns a dict: latents [16, F, H, W] (state dtype, end excluded), timesteps [N], step_matrix,
    step_index, update_mask, valid_interval ([rows, F'] / [rows, 2]), forwards (DiT calls), sigmas."""
    tdt = dtype
    ndt = np.float64 if dtype == torch.float64 else np.float32
    fwd = forward_fn or wdr.forward
    noise = np.asarray(noise)
    if noise.ndim != 4 or noise.shape[0] != LATENT_CHANNELS:
        raise RefError("noise must be [16, F, H, W]")
    _, F, H, W = noise.shape
    if cbs < 1:
        raise RefError("causal_block_size must be >= 1")
    if F % cbs:
        raise RefError("frames %d not divisible by causal_block_size %d" % (F, cbs))
    if ar_step < 0 or addnoise_condition < 0 or chunk < 0 or seed < 0:
        raise RefError("ar_step, addnoise_condition, chunk and seed must be >= 0")
    if guidance > 1.0 and negative_context is None:
        raise RefError("guidance > 1 needs negative_context")
    lat = noise.astype(ndt)                              # latents of the window, state dtype
    Pn = 0
    if prefix is not None:
        prefix = np.asarray(prefix)
        if prefix.ndim != 4 or prefix.shape[0] != LATENT_CHANNELS or tuple(prefix.shape[2:]) != (H, W):
            raise RefError("prefix must be [16, P, %d, %d]" % (H, W))
        Pn = prefix.shape[1]
        if Pn % cbs:
            raise RefError("prefix frames %d not a multiple of causal_block_size %d" % (Pn, cbs))
        if Pn >= F:
            raise RefError("prefix frames %d leave nothing to generate in %d frames" % (Pn, F))
        lat[:, :Pn] = prefix.astype(ndt)
    if end is not None:
        end = np.asarray(end)
        if end.shape != (LATENT_CHANNELS, 1, H, W):
            raise RefError("end latents must be [16, 1, %d, %d]" % (H, W))

    timesteps, sigmas, _ = sigmas_timesteps(steps, shift)
    sm, si, up, vi = timestep_matrix(F, timesteps, ar_step, Pn, cbs)
    if end is not None:
        sm, si, up, vi = append_end_column(sm, si, up, vi, steps)
        lat = np.concatenate([lat, end.astype(ndt)], axis=1)
    Fw = lat.shape[1]
    scheds = [FrameScheduler(sigmas, alias=alias, np_dtype=ndt) for _ in range(F)]
    attn_cbs = cbs if causal_attention else 0
    code = fps_code(fps)
    nf = 0.001 * addnoise_condition
    forwards = 0
    t_start = time.perf_counter()
    for r in range(sm.shape[0]):
        s, e = int(vi[r, 0]), int(vi[r, 1])
        if (s, e) != (0, Fw):
            raise RefError("internal: valid interval (%d, %d) is not the whole window" % (s, e))
        x_in = lat.copy()
        t_in = sm[r].astype(np.float64)
        if addnoise_condition > 0 and Pn > 0:
            eps = addnoise_eps(seed, chunk, r, (LATENT_CHANNELS, Pn, H, W)).astype(ndt)
            x_in[:, :Pn] = x_in[:, :Pn] * (1.0 - nf) + eps * nf
            t_in[:Pn] = addnoise_condition
        inp = {"latents": x_in, "timesteps": t_in, "context": context, "fps": code}
        with torch.no_grad():
            v = fwd(P, cfg, inp, attn_cbs, tdt).to(torch.float64).numpy().astype(ndt)
            forwards += 1
            if guidance > 1.0:
                inp_u = dict(inp, context=negative_context)
                v_u = fwd(P, cfg, inp_u, attn_cbs, tdt).to(torch.float64).numpy().astype(ndt)
                forwards += 1
                v = v_u + guidance * (v - v_u)
        for j in range(F):
            if up[r, j]:
                lat[:, j] = scheds[j].step(v[:, j], lat[:, j])
        if verbose:
            log("row %d/%d t=%s updated=%s (%.2fs)" % (r + 1, sm.shape[0], sm[r].tolist(),
                                                        np.nonzero(up[r])[0].tolist(),
                                                        time.perf_counter() - t_start))
    for j in range(Pn, F):
        if scheds[j].k != steps:
            raise RefError("internal: frame %d got %d updates, expected %d" % (j, scheds[j].k, steps))
    return {"latents": lat[:, :F], "timesteps": timesteps, "sigmas": sigmas, "step_matrix": sm,
            "step_index": si, "update_mask": up, "valid_interval": vi, "forwards": forwards,
            "schedulers": scheds}


# ==========================================================================================================
# HDF5 and subcommands
# ==========================================================================================================

PARAM_ATTRS = ("steps", "shift", "guidance", "ar_step", "causal_block_size", "causal_attention",
               "addnoise_condition", "seed", "fps", "chunk", "textbook_step")
RESERVED_ATTRS = PARAM_ATTRS + ("reelfarm_format", "reelfarm_format_version", "generator", "reference_dtype",
                                "dit_forwards", "rows")


def read_denoise_inputs(path):
    d = {}
    with h5py.File(path, "r") as f:
        for name in INPUT_DATASETS:
            if name in f:
                d[name] = np.asarray(f[name][()], dtype=np.float32)
    for name in ("noise", "context"):
        if name not in d:
            raise RefError("%s: dataset '%s' missing" % (path, name))
    return d


def cmd_denoise(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    extra = wdr.parse_attrs(args.attr, RESERVED_ATTRS)
    tdt, _ = DTYPES[args.dtype]
    cfg, P = wdr.load_model(args.model, tdt)
    d = read_denoise_inputs(args.inp)
    t0 = time.perf_counter()
    res = denoise(P, cfg, d["noise"], d["context"], d.get("negative_context"), d.get("prefix_latents"),
                  d.get("end_latents"), steps=args.steps, shift=args.shift, guidance=args.guidance,
                  ar_step=args.ar_step, cbs=args.causal_block_size, causal_attention=args.causal_attention,
                  addnoise_condition=args.addnoise_condition, seed=args.seed, fps=args.fps, chunk=args.chunk,
                  alias=not args.textbook_step, dtype=tdt, verbose=args.verbose)
    dt = time.perf_counter() - t0
    lat = res["latents"].astype(np.float64)
    try:
        with h5py.File(args.out, "x") as f:
            f.create_dataset("latents", data=lat.astype(np.float32))
            f.create_dataset("timesteps", data=res["timesteps"].astype(np.int64))
            f.create_dataset("timestep_matrix", data=res["step_matrix"].astype(np.int64))
            f.create_dataset("update_mask", data=res["update_mask"].astype(np.uint8))
            f.create_dataset("valid_interval", data=res["valid_interval"].astype(np.int64))
            if args.copy_inputs:
                with h5py.File(args.inp, "r") as src:
                    for name in src.keys():
                        if name in f:
                            raise RefError("input dataset %s clashes with an output" % name)
                        src.copy(src[name], f, name=name)
            a = f.attrs
            a["reelfarm_format"] = GOLDEN_FORMAT
            a["reelfarm_format_version"] = np.int64(GOLDEN_FORMAT_VERSION)
            a["generator"] = GENERATOR
            a["reference_dtype"] = args.dtype
            for k in ("steps", "ar_step", "causal_block_size", "addnoise_condition", "seed", "fps", "chunk"):
                a[k] = np.int64(getattr(args, k))
            a["shift"] = np.float64(args.shift)
            a["guidance"] = np.float64(args.guidance)
            a["causal_attention"] = np.int64(1 if args.causal_attention else 0)
            a["textbook_step"] = np.int64(1 if args.textbook_step else 0)
            a["rows"] = np.int64(res["step_matrix"].shape[0])
            a["dit_forwards"] = np.int64(res["forwards"])
            for k, v in extra:
                a[k] = v
    except BaseException:
        if os.path.exists(args.out):
            os.remove(args.out)
        raise
    print("denoise: %s rows=%d forwards=%d latents=%s rms=%.6g time_s=%.2f -> %s" % (
        args.dtype, res["step_matrix"].shape[0], res["forwards"], list(lat.shape),
        float(np.sqrt(np.mean(lat * lat))), dt, args.out))
    return 0


def make_denoise_inputs(text_dim, frames, height, width, context_len, zero_rows=0, prefix=0, end=False, seed=0):
    """numpy default_rng(seed), N(0,1), draw order: noise, context, negative_context, prefix, end."""
    if zero_rows < 0 or zero_rows > context_len:
        raise RefError("--zero-rows must be in [0, context-len]")
    if prefix < 0 or prefix >= frames:
        raise RefError("--prefix must be in [0, frames)")
    rng = np.random.default_rng(seed)
    d = {"noise": rng.standard_normal((LATENT_CHANNELS, frames, height, width)).astype(np.float32)}
    for name in ("context", "negative_context"):
        c = rng.standard_normal((context_len, text_dim)).astype(np.float32)
        if zero_rows:
            c[context_len - zero_rows:] = 0.0
        d[name] = c
    if prefix:
        d["prefix_latents"] = rng.standard_normal((LATENT_CHANNELS, prefix, height, width)).astype(np.float32)
    if end:
        d["end_latents"] = rng.standard_normal((LATENT_CHANNELS, 1, height, width)).astype(np.float32)
    return d


def cmd_make_input(args):
    if os.path.exists(args.out):
        raise RefError("%s exists; refusing to overwrite" % args.out)
    cfg, _ = wdr.read_model_config(args.model)
    d = make_denoise_inputs(cfg["text_dim"], args.frames, args.height, args.width, args.context_len,
                            args.zero_rows, args.prefix, args.end, args.seed)
    with h5py.File(args.out, "x") as f:
        for name in INPUT_DATASETS:
            if name in d:
                f.create_dataset(name, data=d[name])
    print("make-input: %s -> %s" % (", ".join("%s %s" % (k, list(v.shape)) for k, v in d.items()), args.out))
    return 0


def format_matrix(sm, si, up):
    lines = []
    for r in range(sm.shape[0]):
        lines.append("r%-3d idx [%s]  t [%s]  %s" % (
            r, " ".join("%d" % v for v in si[r]), " ".join("%3d" % v for v in sm[r]),
            "".join("U" if u else "." for u in up[r])))
    return "\n".join(lines)


def cmd_schedule(args):
    ts, sg, _ = sigmas_timesteps(args.steps, args.shift)
    print("timesteps:", " ".join(str(int(t)) for t in ts))
    print("sigmas:", " ".join("%.8f" % s for s in sg))
    if args.frames:
        sm, si, up, vi = timestep_matrix(args.frames, ts, args.ar_step, args.prefix, args.causal_block_size)
        if args.end:
            sm, si, up, vi = append_end_column(sm, si, up, vi, args.steps)
        print("rows: %d" % sm.shape[0])
        print(format_matrix(sm, si, up))
    return 0


# ==========================================================================================================
# selftest
# ==========================================================================================================

# Values printed by a small C program linked against core/rng.c (gcc -std=c11, x86-64, glibc libm).
C_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
C_STREAM_IDS = [
    ((0x61646E73, 0, 0, 0), 0xACDAF139CBEFA54E),
    ((0x61646E73, 0, 1, 0), 0x236809685E229D04),
    ((0x61646E73, 3, 7, 0), 0x2A5ACA50D49D4213),
    ((1, 2, 3, 4), 0x0AC87F02FEF52B66),
    ((1, 2, 4, 3), 0x390587D826162743),
    ((0xFFFFFFFF, 2**64 - 1, 2**64 - 1, 2**64 - 1), 0x42ABC6E1200672B4),
]
# (seed, stream, first, normal float32 bits, uniform float32 bits)
C_DRAWS = [
    (0, 0, 0,
     "3f7dbb30 bf6cb6b3 bf1e1ba1 bef6d1aa be1d534f 3e392a6b 3f54ec98 3e4a2d9b bf97da8a 4022d27b be8a0f79 "
     "3ffb065c bf186c95 3eb4029e bf661975 3ee40c4c",
     "3ecc4fd0 3f6169c5 3f3c57ac 3f1b00db 3f78e4cc 3eb96400 3f31a574 3d17eff0 3c9f5460 3ea38e64 3e10544c "
     "3e8b226a 3f4990ef 3ed488e8 3f1ac913 3eda827c"),
    (0xDEADBEEFCAFEF00D, 0x0123456789ABCDEF, 3,
     "bebc2929 3e859a9f 3f03d2ba bf334e8c 3f13e531 3fd98a24 3e0235b6 3f374fe9 3f0477ba 3f1daf32 bf776db3",
     "3f1c98b2 3f58b558 3e338f14 3f2986b3 3ec7cc86 3e6fa6f8 3c42bc80 3f2d4871 3dcbf6f8 3f04bdac 3f571e18"),
    (42, 9, (1 << 34) + 2,
     "3f803d7d 3fe26b7d bfad6ebc 3e67a633 3f02e89a bfa0a263 bfcf3dd4 c04ec6c8 beb14e36",
     "3e01ae6c 3e2c0380 3ec74c62 3ef284f0 3ecc68ac 3f4fc3db 3abf3a00 3f2d129a 3f6dccdb"),
    (2**64 - 1, 2**64 - 1, 1,
     "3f17be18 3e93eb67 3fa05848 befcb0eb 3f6dd209 be2d1143 bf193653",
     "3ee2d306 3ee01296 3e5b0f3c 3f133684 3ea7cb40 3f52fd02 3f34c93c"),
]
# sha256 of the float32 bytes (little endian) of C rng_normal_f32 fills
C_SHA = [
    ((1234, 7, 0, 65536), "a63f3f4f105015650ca3790f77f805358b4befd688dc09c4723dd6e082980658"),
    ((5, ("adns", 3, 4), 0, 2048), "01cf0922cb24791d507ab98ff1dd7d7f481492af1235bf35cfdd8feb5d0f13fd"),
    ((1234, ("adns", 3, 5), 0, 2048), "ba1f113acc1049db945e6f944caa7d916e6004911d1b889c46f96c865a4376d7"),
]

# spec 5.2 lists
SPEC_TS = {
    (50, 8.0): "999 997 994 991 989 986 983 979 976 973 969 965 961 957 953 948 944 939 934 928 922 916 910 903 "
               "896 888 880 871 862 852 841 830 817 804 789 773 756 737 716 692 666 636 603 565 521 470 409 337 "
               "249 140",
    (30, 8.0): "999 995 991 986 980 975 969 963 956 948 941 932 922 912 901 888 874 859 841 822 799 773 743 708 "
               "666 615 551 470 363 216",
    (50, 5.0): "999 995 991 987 982 978 973 968 963 957 952 946 940 934 927 920 913 906 898 890 882 873 863 854 "
               "843 833 821 809 796 783 768 753 737 720 701 681 660 636 611 584 555 522 487 448 405 356 302 241 "
               "172 92",
    (4, 8.0): "999 959 888 727",
}

# spec 4.3 examples: (name, ar_step, cbs, num_pre_ready, rows "idx | t | mask")
SPEC_EXAMPLES = [
    ("A", 0, 1, 0, """
1 1 1 1 1 1|999 999 999 999 999 999|UUUUUU
2 2 2 2 2 2|959 959 959 959 959 959|UUUUUU
3 3 3 3 3 3|888 888 888 888 888 888|UUUUUU
4 4 4 4 4 4|727 727 727 727 727 727|UUUUUU"""),
    ("B", 2, 1, 0, """
1 0 0 0 0 0|999 999 999 999 999 999|U.....
2 0 0 0 0 0|959 999 999 999 999 999|U.....
3 1 0 0 0 0|888 999 999 999 999 999|UU....
4 2 0 0 0 0|727 959 999 999 999 999|UU....
5 3 1 0 0 0|0 888 999 999 999 999|.UU...
5 4 2 0 0 0|0 727 959 999 999 999|.UU...
5 5 3 1 0 0|0 0 888 999 999 999|..UU..
5 5 4 2 0 0|0 0 727 959 999 999|..UU..
5 5 5 3 1 0|0 0 0 888 999 999|...UU.
5 5 5 4 2 0|0 0 0 727 959 999|...UU.
5 5 5 5 3 1|0 0 0 0 888 999|....UU
5 5 5 5 4 2|0 0 0 0 727 959|....UU
5 5 5 5 5 3|0 0 0 0 0 888|.....U
5 5 5 5 5 4|0 0 0 0 0 727|.....U"""),
    ("C", 0, 2, 0, """
1 1 1 1 1 1|999 999 999 999 999 999|UUUUUU
2 2 2 2 2 2|959 959 959 959 959 959|UUUUUU
3 3 3 3 3 3|888 888 888 888 888 888|UUUUUU
4 4 4 4 4 4|727 727 727 727 727 727|UUUUUU"""),
    ("D", 2, 2, 0, """
1 1 0 0 0 0|999 999 999 999 999 999|UU....
2 2 0 0 0 0|959 959 999 999 999 999|UU....
3 3 1 1 0 0|888 888 999 999 999 999|UUUU..
4 4 2 2 0 0|727 727 959 959 999 999|UUUU..
5 5 3 3 1 1|0 0 888 888 999 999|..UUUU
5 5 4 4 2 2|0 0 727 727 959 959|..UUUU
5 5 5 5 3 3|0 0 0 0 888 888|....UU
5 5 5 5 4 4|0 0 0 0 727 727|....UU"""),
    ("E", 2, 1, 2, """
5 5 1 0 0 0|0 0 999 999 999 999|..U...
5 5 2 0 0 0|0 0 959 999 999 999|..U...
5 5 3 1 0 0|0 0 888 999 999 999|..UU..
5 5 4 2 0 0|0 0 727 959 999 999|..UU..
5 5 5 3 1 0|0 0 0 888 999 999|...UU.
5 5 5 4 2 0|0 0 0 727 959 999|...UU.
5 5 5 5 3 1|0 0 0 0 888 999|....UU
5 5 5 5 4 2|0 0 0 0 727 959|....UU
5 5 5 5 5 3|0 0 0 0 0 888|.....U
5 5 5 5 5 4|0 0 0 0 0 727|.....U"""),
    ("F", 0, 1, 2, """
5 5 1 1 1 1|0 0 999 999 999 999|..UUUU
5 5 2 2 2 2|0 0 959 959 959 959|..UUUU
5 5 3 3 3 3|0 0 888 888 888 888|..UUUU
5 5 4 4 4 4|0 0 727 727 727 727|..UUUU"""),
    ("G", 1, 1, 0, """
1 0 0 0 0 0|999 999 999 999 999 999|U.....
2 1 0 0 0 0|959 999 999 999 999 999|UU....
3 2 1 0 0 0|888 959 999 999 999 999|UUU...
4 3 2 1 0 0|727 888 959 999 999 999|UUUU..
5 4 3 2 1 0|0 727 888 959 999 999|.UUUU.
5 5 4 3 2 1|0 0 727 888 959 999|..UUUU
5 5 5 4 3 2|0 0 0 727 888 959|...UUU
5 5 5 5 4 3|0 0 0 0 727 888|....UU
5 5 5 5 5 4|0 0 0 0 0 727|.....U"""),
]

# spec 4.2 row counts: (F, N, ar_step, cbs, num_pre_ready (frames), rows)
SPEC_ROW_COUNTS = [(25, 30, 5, 5, 0, 50), (25, 30, 5, 5, 5, 45), (20, 30, 5, 5, 5, 40), (25, 30, 0, 5, 0, 30),
                   (25, 50, 5, 5, 0, 70), (25, 30, 5, 1, 0, 150)]


def _bits(a):
    return " ".join("%08x" % int(u) for u in np.asarray(a, np.float32).view(np.uint32))


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _gauss_flow(mu, s2):
    """Exact flow model for data ~ N(mu, s2) per element, x_sigma = (1 - sigma) x_data + sigma eps:
    v(x, sigma) = (x - E[x_data | x]) / sigma, and the exact ODE solution started from eps = z."""
    def x0hat(x, sig):
        var = (1 - sig) ** 2 * s2 + sig ** 2
        return mu + (1 - sig) * s2 / var * (x - (1 - sig) * mu)

    def v(x, sig):
        return (x - x0hat(x, sig)) / sig

    def exact(z, sig):
        return (1 - sig) * mu + math.sqrt((1 - sig) ** 2 * s2 + sig ** 2) * z
    return v, exact


def _tiny_model(seed, inject_sample_info, dtype):
    cfg = wdr.tiny_config("t2v", inject_sample_info=inject_sample_info)
    cfg["layout"] = "memory"
    stored = wdr.random_params(cfg, seed)
    return cfg, wdr.internal_params(cfg, stored, dtype), stored


def cmd_selftest(args):
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print("selftest %-58s %s  %s" % (name, "pass" if ok else "FAIL", detail))
        sys.stdout.flush()

    # ---------------------------------------------------------------- RNG vs core/rng.c
    for i, (ctr, key, want) in enumerate(C_KAT):
        got = tuple(int(np.asarray(o).reshape(-1)[0]) for o in
                    philox4x32_10([np.uint32(c) for c in ctr], [np.uint32(k) for k in key]))
        check("rng: Philox4x32-10 Random123 KAT %d" % i, got == want, " ".join("%08x" % g for g in got))
    bad = [(a, "%016x" % rng_stream_id(*a)) for a, w in C_STREAM_IDS if rng_stream_id(*a) != w]
    check("rng: rng_stream_id = C (%d ids)" % len(C_STREAM_IDS), not bad, str(bad[:2]))
    for seed, stream, first, nbits, ubits in C_DRAWS:
        n = len(nbits.split())
        gn = _bits(rng_normal_f32(n, seed, stream, first))
        gu = _bits(rng_uniform_f32(n, seed, stream, first))
        check("rng: normal+uniform = C (seed %x stream %x first %d)" % (seed, stream, first),
              gn == nbits and gu == ubits, "normal %s" % gn[:35])
    for (seed, stream, first, n), want in C_SHA:
        if isinstance(stream, tuple):
            stream = rng_stream_id(ADDNOISE_PURPOSE, stream[1], stream[2], 0)
        a = rng_normal_f32(n, seed, stream, first)
        got = hashlib.sha256(a.astype("<f4").tobytes()).hexdigest()
        check("rng: sha256 of %d normals = C (seed %d)" % (n, seed), got == want, got[:16])
    a = rng_normal_f32(4096, 1234, 7, 0)
    b = np.concatenate([rng_normal_f32(1001, 1234, 7, 0), rng_normal_f32(4096 - 1001, 1234, 7, 1001)])
    check("rng: addressed (split fill == one fill)", np.array_equal(a, b))
    eps = addnoise_eps(5, 3, 4, (16, 2, 8, 8))
    check("rng: addnoise_eps = rng_normal_f32(stream adns/3/4/0) C-order",
          hashlib.sha256(eps.reshape(-1).astype("<f4").tobytes()).hexdigest() == C_SHA[1][1])

    # ---------------------------------------------------------------- scheduler (spec 5.2)
    for (N, sh), want in SPEC_TS.items():
        ts, sg, _ = sigmas_timesteps(N, sh)
        check("sched: timesteps N=%d shift %g = spec 5.2/4.3" % (N, sh),
              " ".join(str(int(t)) for t in ts) == want and sg.dtype == np.float32 and sg[-1] == 0.0
              and len(sg) == N + 1, "")
    _, sg, _ = sigmas_timesteps(50, 8.0)
    want = [0.99987489, 0.99732846, 0.99468970, 0.99195343, 0.98911422]
    want_last = [0.33779004, 0.24980465, 0.14022775, 0.0]
    err = max(abs(float(a) - b) for a, b in zip(list(sg[:5]) + list(sg[-4:]), want + want_last))
    check("sched: float32 sigmas N=50 shift 8 = spec 5.2", err < 6e-9, "max err %.2e" % err)

    # spec 5.3 worked scalars (spec values were computed in float32; ours in float64 -> rel tol 1e-5)
    fs = FrameScheduler(sg)
    p0 = fs.predictor_coeffs(0, 1)
    p1 = fs.predictor_coeffs(1, 2)
    p2 = fs.predictor_coeffs(2, 2)
    c2 = fs.corrector_coeffs(2, 2)
    p48 = fs.predictor_coeffs(48, 2)
    pairs = [("lambda0", _lam(fs.s[0]), -8.986191), ("h(k=0)", p0["h"], 3.063766),
             ("s1/s0", p0["ratio"], 0.99745327), ("-a1*phi1", -p0["alpha"] * p0["phi1"], 0.00254675),
             ("B(k=0)", p0["B"], -0.9532886), ("h(k=1)", p1["h"], 0.689642), ("h(k=2)", p2["h"], 0.4183526),
             ("r(k=2)", c2["r"], -4.442545), ("b0", c2["b"][0], 0.55701977), ("b1", c2["b"][1], 0.39165920),
             ("rho0", c2["rho"][0], 0.03038293), ("rho1", c2["rho"][1], 0.52663684),
             ("h(k=48)", p48["h"], 0.7137451), ("s49/s48", p48["ratio"], 0.56134963)]
    worst = max(abs(g - w) / abs(w) for _, g, w in pairs)
    check("sched: spec 5.3 worked scalars (N=50, shift 8)", worst < 1e-5,
          "worst rel %.1e; rho=[%.8f %.8f]" % (worst, c2["rho"][0], c2["rho"][1]))
    rho_closed = ((c2["b"][0] - c2["b"][1]) / (1 - c2["r"]))
    check("sched: 2x2 solve = closed form", abs(rho_closed - c2["rho"][0]) < 1e-15, "")

    # orders; final step; exact linear flow; aliasing
    N = 10
    ts, sg, _ = sigmas_timesteps(N, 8.0)
    rng = np.random.default_rng(0)
    xd = rng.standard_normal((16, 8, 8))
    z = rng.standard_normal((16, 8, 8))
    for alias in (False, True):
        fs = FrameScheduler(sg, alias=alias)
        x = (1 - fs.s[0]) * xd + fs.s[0] * z
        devs = []
        for k in range(N):
            x0_last = x - fs.s[k] * (z - xd)
            x = fs.step(z - xd, x)                          # exact velocity of the straight path
            devs.append(float(np.max(np.abs(x - ((1 - fs.s[k + 1]) * xd + fs.s[k + 1] * z)))))
        orders = [(c, p) for _, c, p in fs.trace]
        if not alias:
            check("sched: orders corrector [0,1,2..2], predictor [1,2..2,1] (N=10)",
                  orders == [(0, 1)] + [(1, 2)] + [(2, 2)] * (N - 3) + [(2, 1)], str(orders))
            check("sched: textbook step keeps an exact straight flow on its path", max(devs) < 1e-12,
                  "max dev %.1e" % max(devs))
            check("sched: final step (sigma 0) returns x0 bit-exactly, finite",
                  np.array_equal(x, x0_last) and bool(np.all(np.isfinite(x))), "")
        else:
            check("sched: aliased step leaves the straight path (quirk active)", devs[1] > 1e-6,
                  "dev after k=1: %.3e, final %.3e" % (devs[1], devs[-1]))
    # k = 1 corrector by hand, aliased and textbook
    fs_a, fs_t = FrameScheduler(sg, alias=True), FrameScheduler(sg, alias=False)
    x_in0 = rng.standard_normal((4, 4))
    v0, v1 = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    x1a, x1t = fs_a.step(v0, x_in0), fs_t.step(v0, x_in0)
    check("sched: k=0 step identical with and without aliasing", np.array_equal(x1a, x1t), "")
    s = fs_a.s
    m0 = x_in0 - s[0] * v0
    cc = fs_a.corrector_coeffs(1, 1)
    x0_1 = x1a - s[1] * v1
    for name, fsx, xprev in (("aliased (last_sample = x1)", fs_a, x1a), ("textbook (last_sample = x0 input)",
                                                                         fs_t, x_in0)):
        xc = cc["ratio"] * xprev - cc["alpha"] * cc["phi1"] * m0 - cc["alpha"] * cc["B"] * 0.5 * (x0_1 - m0)
        pc = fsx.predictor_coeffs(1, 2)
        want = pc["ratio"] * xc - pc["alpha"] * pc["phi1"] * x0_1 - pc["alpha"] * pc["B"] * 0.5 * \
            (m0 - x0_1) / pc["r"]
        got = fsx.step(v1, x1a)
        check("sched: k=1 step by hand, %s" % name, float(np.max(np.abs(got - want))) < 1e-13, "")
    # Euler identity of the first-order predictor
    fs = FrameScheduler(sg)
    xa, va = rng.standard_normal(5), rng.standard_normal(5)
    r0 = fs.s[1] / fs.s[0]
    want = r0 * xa + (1 - r0) * (xa - fs.s[0] * va)
    check("sched: first-order predictor = flow Euler step", np.allclose(fs.step(va, xa), want, rtol=0, atol=1e-14))

    # convergence on an exactly solvable flow (Gaussian data): the grids of N = 8, 16, 32, 64 share the
    # point u = sigma_max / 4 (k = 3N/4), where the solver state is compared with the exact ODE solution
    vfun, exact = _gauss_flow(0.7, 0.25)
    zz = np.random.default_rng(1).standard_normal(64)
    errs = {}
    for alias in (False, True):
        for n in (8, 16, 32, 64):
            _, sgn, _ = sigmas_timesteps(n, 3.0)
            fs = FrameScheduler(sgn, alias=alias)
            x = np.array([exact(z_, fs.s[0]) for z_ in zz])
            for k in range(3 * n // 4):
                x = fs.step(vfun(x, fs.s[k]), x)
            ref = np.array([exact(z_, fs.s[3 * n // 4]) for z_ in zz])
            errs[(alias, n)] = float(np.max(np.abs(x - ref)))
    e = [errs[(False, n)] for n in (8, 16, 32, 64)]
    rates = [math.log2(e[i] / e[i + 1]) for i in range(3)]
    check("sched: textbook converges at order >= 2 (Gaussian flow, shift 3)", min(rates[1:]) >= 1.8,
          "err N=8/16/32/64: %.2e %.2e %.2e %.2e; order %.2f %.2f %.2f" % tuple(e + rates))
    ea = [errs[(True, n)] for n in (8, 16, 32, 64)]
    ratesa = [math.log2(ea[i] / ea[i + 1]) for i in range(3)]
    check("sched: aliased converges too (order >= 0.8; the k=1 quirk is O(1/N))", min(ratesa[1:]) >= 0.8,
          "err N=8/16/32/64: %.2e %.2e %.2e %.2e; order %.2f %.2f %.2f" % tuple(ea + ratesa))

    # ---------------------------------------------------------------- timestep matrix (spec 4)
    ts4, _, _ = sigmas_timesteps(4, 8.0)
    for name, ar, cbs, pre, text in SPEC_EXAMPLES:
        sm, si, up, vi = timestep_matrix(6, ts4, ar, pre, cbs)
        rows = [ln.split("|") for ln in text.strip().splitlines()]
        want_si = np.array([[int(v) for v in r[0].split()] for r in rows])
        want_sm = np.array([[int(v) for v in r[1].split()] for r in rows])
        want_up = np.array([[c == "U" for c in r[2]] for r in rows])
        ok = (sm.shape == want_sm.shape and np.array_equal(si, want_si) and np.array_equal(sm, want_sm)
              and np.array_equal(up, want_up) and np.all(vi == [0, 6]))
        check("matrix: spec 4.3 example %s (%d rows)" % (name, len(rows)), ok, "got %d rows" % sm.shape[0])
        if not ok:
            print(format_matrix(sm, si, up))
    ts30, _, _ = sigmas_timesteps(30, 8.0)
    sm, si, up, vi = timestep_matrix(25, ts30, 5, 0, 5)
    ok = (sm.shape == (50, 25) and si[5, ::5].tolist() == [6, 1, 0, 0, 0]
          and sm[5, ::5].tolist() == [975, 999, 999, 999, 999] and up[5, ::5].tolist() == [1, 1, 0, 0, 0]
          and sm[20, ::5].tolist() == [799, 888, 941, 975, 999] and sm[49, ::5].tolist() == [0, 0, 0, 0, 216]
          and np.array_equal(si, np.repeat(si[:, ::5], 5, axis=1)) and np.all(vi == [0, 25]))
    check("matrix: spec 4.4 (F=25, N=30, ar 5, cbs 5; rows 5, 20, 49)", ok,
          "row5 t %s row20 %s row49 %s" % (sm[5, ::5].tolist(), sm[20, ::5].tolist(), sm[49, ::5].tolist()))
    for F, N, ar, cbs, pre, rows in SPEC_ROW_COUNTS:
        tsn, _, _ = sigmas_timesteps(N, 8.0)
        got = timestep_matrix(F, tsn, ar, pre, cbs)[0].shape[0]
        check("matrix: spec 4.2 rows F=%d N=%d ar %d cbs %d pre %d -> %d" % (F, N, ar, cbs, pre, rows),
              got == rows == expected_rows(N, F // cbs, ar, pre // cbs), "got %d" % got)
    bad = []
    for F in (1, 2, 3, 4, 6, 8, 9):
        for cbs in (1, 2, 3):
            if F % cbs:
                continue
            for ar in (0, 1, 2, 3):
                for pre in range(0, F, cbs):
                    for N in (1, 2, 4, 7):
                        tsn, _, _ = sigmas_timesteps(N, 8.0)
                        sm, si, up, vi = timestep_matrix(F, tsn, ar, pre, cbs)
                        okp = sm.shape[0] == expected_rows(N, F // cbs, ar, pre // cbs)
                        for j in range(F):
                            ks = si[up[:, j], j].tolist()
                            okp &= ks == ([] if j < pre else list(range(1, N + 1)))
                            if j >= pre:
                                okp &= bool(np.array_equal(sm[up[:, j], j], tsn))
                        if not okp:
                            bad.append((F, cbs, ar, pre, N))
    check("matrix: every generated frame gets steps 1..N in order; row formula", not bad, str(bad[:3]))
    sm, si, up, vi = timestep_matrix(4, ts4, 1, 0, 2)
    sme, sie, upe, vie = append_end_column(sm, si, up, vi, 4)
    check("matrix: end column (t 0, index N+1, never updated, window +1)",
          sme.shape == (sm.shape[0], 5) and np.all(sme[:, 4] == 0) and np.all(sie[:, 4] == 5)
          and not upe[:, 4].any() and np.array_equal(sme[:, :4], sm) and np.all(vie == [0, 5]), "")

    # ---------------------------------------------------------------- denoise mechanics with a stub model
    calls = []

    def stub(Pm, cfg, inp, cbs_arg, dtype):
        calls.append({"x": inp["latents"].copy(), "t": np.array(inp["timesteps"]), "ctx": inp["context"],
                      "cbs": cbs_arg, "fps": inp["fps"]})
        x = torch.from_numpy(np.asarray(inp["latents"], np.float64))
        t = torch.from_numpy(np.asarray(inp["timesteps"], np.float64)).reshape(1, -1, 1, 1)
        c = float(np.asarray(inp["context"], np.float64).sum())
        mix = x.mean(dim=1, keepdim=True)
        return (0.3 * torch.tanh(x) + 0.1 * mix + 1e-3 * t + 1e-2 * c).to(dtype)

    d = make_denoise_inputs(8, 5, 4, 4, 6, 2, prefix=2, end=False, seed=3)
    calls.clear()
    res = denoise(None, None, d["noise"], d["context"], d["negative_context"], d["prefix_latents"], steps=6,
                  guidance=4.0, ar_step=1, cbs=1, addnoise_condition=20, seed=11, chunk=2, fps=16,
                  forward_fn=stub)
    rows = res["step_matrix"].shape[0]
    ok = (len(calls) == 2 * rows == res["forwards"] and rows == expected_rows(6, 5, 1, 2)
          and all(calls[2 * i]["ctx"] is d["context"] and calls[2 * i + 1]["ctx"] is d["negative_context"]
                  for i in range(rows)) and all(c["fps"] == 0 and c["cbs"] == 0 for c in calls))
    check("denoise: 2 forwards per row (cond, uncond), fps 16 -> code 0, no mask", ok,
          "rows %d forwards %d" % (rows, len(calls)))
    ok = np.array_equal(res["latents"][:, :2], d["prefix_latents"].astype(np.float64))
    eps_ok = True
    for r in range(rows):
        eps = addnoise_eps(11, 2, r, (16, 2, 4, 4)).astype(np.float64)
        want = d["prefix_latents"].astype(np.float64) * (1 - 0.02) + eps * 0.02
        eps_ok &= np.array_equal(calls[2 * r]["x"][:, :2], want) and np.all(calls[2 * r]["t"][:2] == 20)
        eps_ok &= np.array_equal(calls[2 * r]["t"][2:], res["step_matrix"][r, 2:].astype(np.float64))
    check("denoise: prefix stays clean; add-noise input = prefix*0.98 + eps*0.02, t = 20", ok and eps_ok, "")
    calls.clear()
    denoise(None, None, d["noise"], d["context"], None, steps=5, guidance=1.0, ar_step=0, cbs=1,
                   causal_attention=True, fps=24, forward_fn=stub)
    check("denoise: guidance 1 -> 1 forward per row; causal_attention passes cbs",
          len(calls) == 5 and all(c["cbs"] == 1 and c["fps"] == 1 for c in calls), "")
    for kw, what in ((dict(cbs=2, prefix=d["noise"][:, :1]), "prefix not a multiple of cbs"),
                     (dict(cbs=2, noise=d["noise"][:, :3]), "F not divisible by cbs"),
                     (dict(cbs=1, prefix=d["noise"]), "prefix covers the window")):
        try:
            denoise(None, None, kw.get("noise", d["noise"]), d["context"], None, kw.get("prefix"), steps=3,
                    guidance=1.0, cbs=kw["cbs"], forward_fn=stub)
            check("denoise: refuses %s" % what, False)
        except RefError:
            check("denoise: refuses %s" % what, True)

    # ---------------------------------------------------------------- denoise with a tiny real model
    cfg, Pm, stored = _tiny_model(7, False, torch.float64)
    d = make_denoise_inputs(cfg["text_dim"], 4, 4, 4, 8, 2, prefix=0, end=True, seed=4)
    res_end = denoise(Pm, cfg, d["noise"], d["context"], None, None, d["end_latents"], steps=5, guidance=1.0,
                      ar_step=2, cbs=1)
    # upstream-style end image (spec 6.2 step 5): matrix over F+1 frames, last column forced to t 0 / no update
    ts5, sg5, _ = sigmas_timesteps(5, 8.0)
    sm, si, up, vi = timestep_matrix(5, ts5, 2, 0, 1)
    sm[:, 4] = 0
    up[:, 4] = False
    lat = np.concatenate([d["noise"], d["end_latents"]], axis=1).astype(np.float64)
    sch = [FrameScheduler(sg5) for _ in range(4)]
    for r in range(sm.shape[0]):
        with torch.no_grad():
            v = wdr.forward(Pm, cfg, {"latents": lat.copy(), "timesteps": sm[r].astype(np.float64),
                                      "context": d["context"], "fps": 1}, 0, torch.float64).numpy()
        for j in range(4):
            if up[r, j]:
                lat[:, j] = sch[j].step(v[:, j], lat[:, j])
    check("denoise: appended end column == upstream end image (cbs 1, ar 2)",
          np.array_equal(lat[:, :4], res_end["latents"]) and res_end["latents"].shape[1] == 4,
          "rows ours %d, upstream %d (extra rows update nothing)" % (res_end["step_matrix"].shape[0],
                                                                      sm.shape[0]))
    d = make_denoise_inputs(cfg["text_dim"], 4, 4, 4, 8, 2, seed=5)
    common = dict(steps=6, guidance=3.0, ar_step=1, cbs=2, causal_attention=True)
    ra = denoise(Pm, cfg, d["noise"], d["context"], d["negative_context"], **common)
    rt = denoise(Pm, cfg, d["noise"], d["context"], d["negative_context"], alias=False, **common)
    dev = _rel(rt["latents"], ra["latents"])
    check("denoise: aliased vs textbook differ (spec 5.6: percents)", 1e-4 < dev < 0.5, "rel %.3e" % dev)
    cfg32, P32, _ = _tiny_model(7, False, torch.float32)
    r32 = denoise(P32, cfg32, d["noise"], d["context"], d["negative_context"], dtype=torch.float32, **common)
    dev = _rel(r32["latents"], ra["latents"])
    check("denoise: float32 (forward + state) vs float64", dev < 1e-4 and r32["latents"].dtype == np.float32,
          "rel %.3e" % dev)

    # ---------------------------------------------------------------- CLI round trip
    with tempfile.TemporaryDirectory() as tmp:
        mdir = os.path.join(tmp, "model")
        cfgf = wdr.tiny_config("t2v", inject_sample_info=True)
        wdr.write_model_dir(mdir, cfgf, wdr.random_params(cfgf, 3), "diffusers")
        inp, out = os.path.join(tmp, "in.h5"), os.path.join(tmp, "out.h5")
        rc = main(["make-input", "--model", mdir, "--out", inp, "--frames", "4", "--height", "4", "--width",
                   "4", "--context-len", "6", "--zero-rows", "2", "--prefix", "2", "--end", "--seed", "9"])
        rc |= main(["denoise", "--model", mdir, "--in", inp, "--out", out, "--steps", "4", "--ar-step", "1",
                    "--addnoise-condition", "20", "--seed", "3", "--fps", "16", "--guidance", "2.5",
                    "--copy-inputs", "--attr", "case=x"])
        ok = rc == 0
        if ok:
            with h5py.File(out, "r") as f:
                ok = (f["latents"].shape == (16, 4, 4, 4) and f["latents"].dtype == np.float32
                      and f["timesteps"].dtype == np.int64 and f["timestep_matrix"].shape[1] == 5
                      and f["update_mask"].dtype == np.uint8 and f["valid_interval"].dtype == np.int64
                      and "noise" in f and "end_latents" in f and f.attrs["case"] == "x"
                      and f.attrs["reelfarm_format"] == GOLDEN_FORMAT and int(f.attrs["fps"]) == 16
                      and int(f.attrs["textbook_step"]) == 0 and float(f.attrs["guidance"]) == 2.5
                      and int(f.attrs["dit_forwards"]) == 2 * f["timestep_matrix"].shape[0])
                ok &= np.array_equal(f["latents"][:, :2], f["prefix_latents"][()])
        check("cli: make-input + denoise round trip (fps model, prefix, end)", ok, "")
        rc = main(["denoise", "--model", mdir, "--in", inp, "--out", out, "--steps", "4"])
        check("cli: refuses to overwrite", rc == 1, "")

    nfail = results.count(False)
    print("selftest: %d checks, %d failed" % (len(results), nfail))
    return 1 if nfail else 0


# ==========================================================================================================

def main(argv=None):
    ap = argparse.ArgumentParser(description="Independent reference of SkyReels-V2 diffusion-forcing sampling "
                                             "(spec sections 4, 5, 6).")
    sub = ap.add_subparsers(dest="cmd")
    sub.required = True

    p = sub.add_parser("denoise", help="denoise one window; writes latents, timesteps and the matrix")
    p.add_argument("--model", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--shift", type=float, default=8.0)
    p.add_argument("--guidance", type=float, default=6.0)
    p.add_argument("--ar-step", type=int, default=0)
    p.add_argument("--causal-block-size", type=int, default=1)
    p.add_argument("--causal-attention", action="store_true")
    p.add_argument("--addnoise-condition", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=int, default=24, help="frames per second (model fps code 0 iff 16)")
    p.add_argument("--chunk", type=int, default=0, help="chunk index (add-noise RNG stream coordinate)")
    p.add_argument("--textbook-step", action="store_true", help="no last_sample aliasing (spec 5.6)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float64", help="DiT forward and latent state")
    p.add_argument("--copy-inputs", action="store_true")
    p.add_argument("--attr", action="append", metavar="KEY=VALUE")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(fn=cmd_denoise)

    p = sub.add_parser("make-input", help="random HDF5 inputs for denoise")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--context-len", type=int, required=True)
    p.add_argument("--zero-rows", type=int, default=0)
    p.add_argument("--prefix", type=int, default=0)
    p.add_argument("--end", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_make_input)

    p = sub.add_parser("schedule", help="print timesteps, sigmas and (with --frames) the timestep matrix")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--shift", type=float, default=8.0)
    p.add_argument("--frames", type=int, default=0)
    p.add_argument("--ar-step", type=int, default=0)
    p.add_argument("--causal-block-size", type=int, default=1)
    p.add_argument("--prefix", type=int, default=0)
    p.add_argument("--end", action="store_true")
    p.set_defaults(fn=cmd_schedule)

    p = sub.add_parser("selftest", help="check the reference against the spec and core/rng.c (exit 1 on failure)")
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
