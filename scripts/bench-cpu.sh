#!/usr/bin/env bash
# scripts/bench-cpu.sh - reelfarm's CPU DiT forward and the PyTorch reference of the same configuration,
# on the same machine, in the same run, with the same thread count. Prints the machine, both key=value
# lines and the ratio. Needs a built reelfarm and scripts/install-deps.sh --with-reference.
# Usage: scripts/bench-cpu.sh [--model-size 1.3b|14b] [--layers N] [--resolution 540p|720p|WxH]
#                             [--frames 4k+1] [--text-len N] [--repeat N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${REELFARM_BIN:-build/reelfarm}
size=1.3b layers=2 res=540p frames=5 text_len=512 repeat=3 threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --model-size) size=$2 ;; --layers) layers=$2 ;; --resolution) res=$2 ;; --frames) frames=$2 ;;
    --text-len) text_len=$2 ;; --repeat) repeat=$2 ;; --threads) threads=$2 ;;
    *) echo "bench-cpu: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
case "$size" in
  1.3b) dim=1536 heads=12 ffn=8960 ;;
  14b) dim=5120 heads=40 ffn=13824 ;;
  *) echo "bench-cpu: --model-size 1.3b or 14b" >&2; exit 2 ;;
esac
case "$res" in
  540p) w=960 h=544 ;; 720p) w=1280 h=720 ;;
  *x*) w=${res%x*} h=${res#*x} ;;
  *) echo "bench-cpu: bad --resolution $res" >&2; exit 2 ;;
esac
lat_f=$(( (frames - 1) / 4 + 1 ))

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p') | $(nproc) cores | $(free -g | awk '/Mem:/{print $2}') GiB | $(uname -r)"
echo "reelfarm: $(git rev-parse --short HEAD 2>/dev/null || echo '?') | torch: $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')"
echo "config: $size dim=$dim heads=$heads ffn=$ffn layers=$layers ${w}x${h} frames=$frames (latent $lat_f) text_len=$text_len threads=$threads"
rf=$(OMP_NUM_THREADS=$threads "$BIN" bench --model-size "$size" --layers "$layers" --resolution "${w}x${h}" \
       --frames "$frames" --text-len "$text_len" --repeat "$repeat" --warmup 1 --threads "$threads")
echo "$rf"
pt=$(/usr/bin/python3 tests/reference/wan_dit_ref.py bench --dim "$dim" --heads "$heads" --ffn "$ffn" \
       --layers "$layers" --frames "$lat_f" --height $((h / 8)) --width $((w / 8)) --text-len "$text_len" \
       --text-dim 4096 --repeat "$repeat" --warmup 1 --threads "$threads")
echo "$pt"
a=$(sed -n 's/.*forward_s_min=\([0-9.]*\).*/\1/p' <<<"$rf")
b=$(sed -n 's/.*forward_s_min=\([0-9.]*\).*/\1/p' <<<"$pt")
awk -v a="$a" -v b="$b" 'BEGIN { printf "speed-up reelfarm vs pytorch (min forward): %.2fx (%.3f s vs %.3f s)\n", b / a, a, b }'
