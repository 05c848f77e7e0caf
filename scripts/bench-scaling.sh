#!/usr/bin/env bash
# scripts/bench-scaling.sh - the scaling benchmark (docs/scaling.md): `reelfarm bench` on 1, 2 and 4
# ranks for every parallel layout that fits, one JSON report per run, collected into one file.
#
# Usage: scripts/bench-scaling.sh [--out DIR] [--tiny] [--bin BUILD/reelfarm] [-- extra bench flags]
#   --out DIR   results: DIR/runs/<label>.json and .txt (bench output), DIR/scaling.json (array of
#               every run's object), DIR/scaling.tsv (one row per run, for scripts/plot-scaling.sh),
#               DIR/scaling.md (the same as a markdown table) (default build/scaling)
#   --tiny      the built-in tiny model at 64x64 (seconds in all; for a smoke run) instead of the
#               reduced 1.3B shape
# Default shape: the 1.3B width (1536, 12 heads of 128, FFN 8960) with 2 layers, 256x256, 5 frames
# (2 latent frames, 512 tokens), 512 text rows, guidance 6: a step = the conditional and the
# unconditional pass, as one denoising row of the real pipeline.
#
# Threads: one rank runs 2 threads (and once 1, the per-rank compute reference); 2 ranks run 1 thread
# each, so they share the 2 cores of the development VM without oversubscription; 4 ranks are
# oversubscribed 2x on 2 cores, which makes their step times meaningless as a speed-up (the bytes,
# call counts and the communication model check are exact on any machine).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/build/scaling
bin=$here/build/reelfarm
tiny=0
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "bench-scaling: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench-scaling: $bin not built (cmake --build build -j2)" >&2; exit 1; }
mpiexec=${MPIEXEC:-mpirun}

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMP_WAIT_POLICY=passive
rev=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$here" status --porcelain 2>/dev/null | grep -v '^??' || true)" ]; then rev="$rev-dirty"; fi
export REELFARM_GIT_REV=$rev

if [ $tiny -eq 1 ]; then
  shape=(--model-size tiny --resolution 64x64 --frames 5 --text-len 16 --repeat 5 --warmup 2)
else
  shape=(--model-size 1.3b --layers 2 --resolution 256x256 --frames 5 --text-len 512 --repeat 3 --warmup 1)
fi
shape+=(--guidance 6 "${extra[@]}")

mkdir -p "$out/runs"
rm -f "$out"/runs/*.json "$out"/runs/*.txt

# label ranks threads layout-flags...
runs=(
  "1r-2t 1 2"
  "1r-1t 1 1"
  "cfg2 2 1 --cfg-parallel"
  "sp2-ulysses 2 1 --no-cfg-parallel --sp 2"
  "sp2-ring 2 1 --no-cfg-parallel --sp 2 --ulysses 1"
  "tp2 2 1 --no-cfg-parallel --tp 2"
  "cfg2xsp2 4 1 --cfg-parallel --sp 2"
  "cfg2xtp2 4 1 --cfg-parallel --tp 2"
  "sp4-ulysses 4 1 --no-cfg-parallel --sp 4"
  "sp4-u2xring2 4 1 --no-cfg-parallel --sp 4 --ulysses 2"
  "sp4-ring 4 1 --no-cfg-parallel --sp 4 --ulysses 1"
  "sp2xtp2 4 1 --no-cfg-parallel --sp 2 --tp 2"
  "tp4 4 1 --no-cfg-parallel --tp 4"
)
if [ $tiny -eq 1 ]; then # the tiny model has 2 heads: no tp4, no Ulysses 4
  runs=("${runs[@]/#tp4 */}")
  runs=("${runs[@]/#sp4-ulysses */}")
fi

n=0
for r in "${runs[@]}"; do
  [ -n "$r" ] || continue
  read -r label ranks threads flags <<<"$r"
  read -r -a flagv <<<"${flags:-}"
  cmd=("$bin" bench "${shape[@]}" --threads "$threads" "${flagv[@]}" --json "$out/runs/$label.json")
  if [ "$ranks" -gt 1 ]; then cmd=("$mpiexec" -n "$ranks" "${cmd[@]}"); fi
  echo "bench-scaling: $label: ${cmd[*]}"
  start=$(date +%s%N)
  "${cmd[@]}" >"$out/runs/$label.txt"
  echo "bench-scaling: $label done in $((($(date +%s%N) - start) / 1000000)) ms"
  grep -q 'model_match=1' "$out/runs/$label.txt" || { echo "bench-scaling: $label: measured bytes differ from the communication model" >&2; exit 1; }
  n=$((n + 1))
done

# one JSON array of every run's object
{
  echo "["
  first=1
  for r in "${runs[@]}"; do
    [ -n "$r" ] || continue
    read -r label _ <<<"$r"
    [ $first -eq 1 ] || echo ","
    first=0
    cat "$out/runs/$label.json"
  done
  echo "]"
} >"$out/scaling.json"

# one TSV row per run from the key=value lines (bench_step, then bench_comm per kind)
{
  printf 'label\tranks\tcfg\tsp\tulysses\tring\ttp\tthreads\tstep_s_min\tstep_s_median\tcompute_s_max\tcompute_s_mean'
  printf '\tcomm_s_max\tcomm_s_mean\tcomm_share\tbytes_step_max\talltoall_bytes\tbcast_bytes\tallreduce_bytes'
  printf '\tallgather_bytes\talltoall_s\tbcast_s\tallreduce_s\tallgather_s\tgflops\toversubscribed\tmodel_match\tloadavg\n'
  for r in "${runs[@]}"; do
    [ -n "$r" ] || continue
    read -r label _ <<<"$r"
    awk -v label="$label" '
      function kv(line, arr,   n, i, f, p) { n = split(line, f, " "); for (i = 2; i <= n; i++) { p = index(f[i], "="); arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1) } }
      $1 == "bench_step" { kv($0, s) }
      $1 == "bench_comm" { delete c; kv($0, c); b[c["kind"]] = c["bytes_max"]; t[c["kind"]] = c["seconds_max"] }
      END {
        printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", label, s["ranks"], s["cfg"], s["sp"],
          s["ulysses"], s["ring"], s["tp"], s["threads"], s["step_s_min"], s["step_s_median"], s["compute_s_max"],
          s["compute_s_mean"], s["comm_s_max"], s["comm_s_mean"], s["comm_share"], s["bytes_step_max"]
        printf "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b["alltoall"], b["bcast"], b["allreduce"],
          b["allgather"], t["alltoall"], t["bcast"], t["allreduce"], t["allgather"], s["gflops"], s["oversubscribed"],
          s["model_match"], s["loadavg"]
      }' "$out/runs/$label.txt"
  done
} >"$out/scaling.tsv"

# the same as a markdown table (docs/scaling.md)
awk -F'\t' 'NR == 1 { next }
  NR == 2 {
    print "| run | ranks x threads | layout (cfg x sp (u x r) x tp) | s/step min / median | compute s/rank (mean) | in collectives s/rank mean / max | comm share | MB/rank/step: all-to-all / bcast / all-reduce / all-gather | = model | load |"
    print "|---|---|---|---|---|---|---|---|---|---|"
  }
  { printf "| %s | %s x %s | %s x %s (%s x %s) x %s | %.3f / %.3f | %.3f | %.3f / %.3f | %.0f%% | %.2f / %.2f / %.2f / %.3f | %s | %.1f |\n",
      $1, $2, $8, $3, $4, $5, $6, $7, $9, $10, $12, $14, $13, 100 * $15, $17 / 1e6, $18 / 1e6, $19 / 1e6, $20 / 1e6,
      $27 == 1 ? "yes" : "NO", $28 }' "$out/scaling.tsv" >"$out/scaling.md"

echo "bench-scaling: $n runs; $out/scaling.json, $out/scaling.tsv, $out/scaling.md (plots: scripts/plot-scaling.sh $out)"
if command -v column >/dev/null; then column -t -s $'\t' "$out/scaling.tsv" | cut -c1-200; fi
