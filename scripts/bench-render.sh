#!/usr/bin/env bash
# scripts/bench-render.sh - time and peak memory of `reelfarm render` on the built-in tiny model
# (docs/benchmarks.md, "render"): the README's demo film (3 chunks) and a longer render (6 chunks),
# each with the share of time in the DiT, the VAE, the text encoder and I/O as the render reports it;
# then the reference side by side: the denoising loop of one demo window (5 latent frames 16x16, 10 steps,
# CFG 6) on the same built-in model, `reelfarm denoise` against tests/reference/df_sampling_ref.py in
# PyTorch float32, from the same HDF5 inputs.
# Usage: scripts/bench-render.sh [build/reelfarm]   (runs alone; takes about a minute on 2 cores)
set -euo pipefail
BIN=${1:-build/reelfarm}
T=$(mktemp -d /tmp/reelfarm-bench-render.XXXXXX)
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME=$T/cache REELFARM_LOG_LEVEL=info
"$BIN" render --prompt warmup --out "$T/warm.mp4" --quiet --frames 5 2>/dev/null # creates the built-in model
run() { # name, render args...
  local name=$1
  shift
  /usr/bin/time -f "peak_rss_kib=%M wall_s=%e" "$BIN" render --quiet "$@" 2>"$T/$name.log" >/dev/null
  local line peak
  line=$(grep -o 'render: wrote .*' "$T/$name.log")
  peak=$(grep -o 'peak_rss_kib=[0-9]*' "$T/$name.log" | cut -d= -f2)
  printf '%s: %s; peak RSS %.1f MiB\n' "$name" "$line" "$(echo "$peak / 1024" | bc -l)"
}
run demo --prompt "A lighthouse on a cliff at dawn" --out "$T/demo.mp4"
run long --prompt "A lighthouse on a cliff at dawn" --frames 77 --out "$T/long.mp4"
run long-latent --prompt "A lighthouse on a cliff at dawn" --frames 77 --overlap-mode latent --out "$T/long-latent.mp4"
"$BIN" plan --frames 77 --base-frames 17 --overlap 5 --steps 10 --resolution 128x128 | head -1

MODEL=$(ls -d "$XDG_CACHE_HOME"/reelfarm/tiny-model-*)
PY=${PYTHON:-/usr/bin/python3}
"$PY" tests/reference/df_sampling_ref.py make-input --model "$MODEL" --out "$T/window.h5" --frames 5 --height 16 \
  --width 16 --context-len 512 --seed 1 >/dev/null
timed() { # name, command...
  local name=$1
  shift
  /usr/bin/time -f "peak_rss_kib=%M wall_s=%e" "$@" >"$T/$name.out" 2>"$T/$name.log"
  printf '%s: wall %s s (loop alone %s s), peak RSS %.1f MiB\n' "$name" \
    "$(grep -o 'wall_s=[0-9.]*' "$T/$name.log" | cut -d= -f2)" \
    "$(grep -h -o -E '(time_s|seconds)=[0-9.]+' "$T/$name.out" "$T/$name.log" | tail -1 | cut -d= -f2)" \
    "$(echo "$(grep -o 'peak_rss_kib=[0-9]*' "$T/$name.log" | cut -d= -f2) / 1024" | bc -l)"
}
timed "window reelfarm denoise" "$BIN" denoise --model "$MODEL" --in "$T/window.h5" --out "$T/w-rf.h5" --steps 10
timed "window PyTorch df_sampling_ref" "$PY" tests/reference/df_sampling_ref.py denoise --model "$MODEL" \
  --in "$T/window.h5" --out "$T/w-ref.h5" --steps 10 --dtype float32
"$PY" - "$T/w-rf.h5" "$T/w-ref.h5" <<'PYEOF'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["latents"][()].astype(np.float64)
b = h5py.File(sys.argv[2], "r")["latents"][()].astype(np.float64)
print("  same result: rel L2 %.2e" % (np.linalg.norm(a - b) / np.linalg.norm(b)))
PYEOF
