#!/usr/bin/env bash
# scripts/bench-render.sh - time and peak memory of `reelfarm render` on the built-in tiny model
# (docs/benchmarks.md, "render"): the README's demo film (3 chunks) and a longer render (6 chunks),
# each with the share of time in the DiT, the VAE, the text encoder and I/O as the render reports it.
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
"$BIN" plan --frames 77 --base-frames 17 --overlap 5 --steps 10 | head -1
