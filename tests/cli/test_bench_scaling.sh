#!/usr/bin/env bash
# tests/cli/test_bench_scaling.sh REELFARM MPIEXEC - the scaling benchmark (docs/scaling.md).
#
# `reelfarm bench` under mpirun on the tiny model (64x64, 5 frames: 32 tokens, width 256, 2 heads, 2
# layers, 16 text rows): the JSON report is valid and names the layout, and the bytes each rank sent
# per step, as the communicators counted them, equal both the communication model
# (worker/comm_model.c) and the same volume worked out by hand here from the shapes, for Ulysses
# (all-to-all), ring (broadcast), TP (all-reduce) and CFG (broadcast). The single-rank line keeps its
# format; a layout that does not fit the job is refused; the 14B/720P model reproduces the Ulysses
# volume of shared/reference/anchors.md section 3 (about 20 GB per forward per GPU at P = 8).
set -u
bin=$1
mpiexec=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reelfarm-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
fails=0 checks=0
ok() { checks=$((checks + 1)); echo "ok: $*"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }
# eq GOT WANT WHAT
eq() { if [ "$1" = "$2" ]; then ok "$3 = $2"; else bad "$3: got '$1', expected '$2'"; fi; }

shape=(--model-size tiny --resolution 64x64 --frames 5 --text-len 16 --repeat 2 --warmup 1 --threads 1)
# the tiny shapes: L = 2 latent frames x 4 x 4 tokens, D = 2 heads x 128, 2 layers, Lc = 16, f32
L=32 D=256 LAYERS=2 LC=16 B=4

# json FILE PYTHON-EXPR-ON-d: a value of the report (python3's json module parses it: invalid JSON fails)
have_py=0
command -v python3 >/dev/null && have_py=1
json() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1; }

# run NAME RANKS FLAGS...: bench under mpirun, JSON to $tmp/NAME.json, stdout to $tmp/NAME.txt
run() {
  local name=$1 np=$2
  shift 2
  if timeout 120 "$mpiexec" -n "$np" "$bin" bench "${shape[@]}" "$@" --json "$tmp/$name.json" >"$tmp/$name.txt" 2>"$tmp/$name.err"; then
    ok "$name: mpirun -n $np bench $* exits 0"
  else
    bad "$name: mpirun -n $np bench $* failed: $(tail -3 "$tmp/$name.err")"
  fi
  grep -q ' model_match=1 ' "$tmp/$name.txt" && ok "$name: measured calls and bytes = model" ||
    bad "$name: model_match is not 1: $(head -c 300 "$tmp/$name.txt")"
}

# kind_bytes NAME KIND: bytes per step of rank 0 for one collective kind, from the JSON (measured and model)
check_kind() {
  local name=$1 kind=$2 want=$3
  if [ $have_py -eq 0 ]; then
    echo "skip: $name: no python3 to read the JSON; the key=value line instead"
    eq "$(sed -n "s/^bench_comm kind=$kind .*bytes_max=\([0-9]*\) .*/\1/p" "$tmp/$name.txt")" "$want" "$name: $kind bytes (stdout)"
    return
  fi
  eq "$(json "$tmp/$name.json" "d['ranks'][0]['collectives']['$kind']['bytes']")" "$want" "$name: measured $kind bytes/step"
  eq "$(json "$tmp/$name.json" "d['ranks'][1]['collectives']['$kind']['bytes']")" "$want" "$name: rank 1 measured $kind bytes/step"
  eq "$(json "$tmp/$name.json" "d['ranks'][0]['collectives']['$kind']['model_bytes']")" "$want" "$name: model $kind bytes/step"
}

# 1. Ulysses (sp 2, ulysses 2): per block an all-to-all of q|k|v [s, 3 Dg] and one of the output [s, Dg],
#    (u - 1) blocks each leave the rank; s = L / 2, Dg = D / 2; plus the head all-gather of [s, 64]
run sp2 2 --sp 2
S=$((L / 2)) DG=$((D / 2))
check_kind sp2 alltoall $((LAYERS * (S * 3 * DG + S * DG) * B))
check_kind sp2 allgather $((S * 64 * B))
if [ $have_py -eq 1 ]; then
  eq "$(json "$tmp/sp2.json" "(d['layout']['ranks'], d['layout']['sp'], d['layout']['ulysses'], d['layout']['tp'], len(d['ranks']))")" \
    "(2, 2, 2, 1, 2)" "sp2: JSON layout (ranks, sp, ulysses, tp, per-rank entries)"
  eq "$(json "$tmp/sp2.json" "d['collectives']['alltoall']['calls'] == 2 * $LAYERS and d['step']['wall_s_min'] > 0 and d['machine']['cores'] >= 1 and bool(d['date'])")" \
    "True" "sp2: JSON calls, timing, machine, date present"
fi

# 2. ring (sp 2, ulysses 1): per block each ring rank broadcasts its k|v block [s, 2 D] once; with ring
#    attention a shard is padded to whole 256-token key tiles, so s = 256 here
run ring2 2 --sp 2 --ulysses 1
check_kind ring2 bcast $((LAYERS * 256 * 2 * D * B))

# 3. TP 2: per block all-reduces of the q, k, cross-q row sums of squares (L each), cross-k (Lc), and of
#    the attention output, cross-attention output and FFN outputs ([L, D] each)
run tp2 2 --tp 2
check_kind tp2 allreduce $((LAYERS * (3 * L + LC + 3 * L * D) * B))

# 4. CFG 2 (guidance 6): each half broadcasts its flow prediction [16, 2, 8, 8] once per step
run cfg2 2 --cfg-parallel --guidance 6
check_kind cfg2 bcast $((16 * 2 * 8 * 8 * B))
grep -q ' forwards_per_step=2 ' "$tmp/cfg2.txt" && ok "cfg2: a step is two forwards" || bad "cfg2: forwards_per_step is not 2"

# 5. the single-rank line is unchanged (key=value, one forward), and a layout that does not fit is refused
"$bin" bench "${shape[@]}" >"$tmp/one.txt" 2>"$tmp/one.err" && ok "single-rank bench exits 0" || bad "single-rank bench failed: $(cat "$tmp/one.err")"
if grep -qE '^bench impl=reelfarm-cpu .* forward_s_min=[0-9.]+ forward_s_median=[0-9.]+ gflop=.* gemm_peak_gflops=.* peak_rss_mb=' "$tmp/one.txt" &&
  ! grep -q bench_step "$tmp/one.txt"; then ok "single-rank output format"; else bad "single-rank output changed: $(cat "$tmp/one.txt")"; fi
"$bin" bench "${shape[@]}" --sp 2 >/dev/null 2>"$tmp/bad.err"
rc=$?
[ $rc -eq 1 ] && grep -q "2 ranks, but the job has 1" "$tmp/bad.err" && ok "--sp 2 on one rank refused" ||
  bad "--sp 2 on one rank: exit $rc, $(cat "$tmp/bad.err")"

# 6. the 14B / 720P / 121-frame projection: Ulysses 8 moves 40 GB per rank per step (2 forwards), the
#    ~20 GB per forward of anchors.md section 3; TP 8 as a ring all-reduce 480 GB per step (~240 per forward)
"$bin" bench --comm-model --model-size 14b --resolution 720p --frames 121 --guidance 6 >"$tmp/model.md"
grep -qF '| 8 | cfg 1 x sp 8 (u8 x r1) x tp 1 | 2 | 40.0 |' "$tmp/model.md" && ok "14B/720P Ulysses 8: 40.0 GB per step" ||
  bad "14B/720P Ulysses 8 row: $(grep 'sp 8 (u8' "$tmp/model.md")"
grep -qE '^\| 8 \| cfg 1 x sp 1 \(u1 x r1\) x tp 8 \| 2 \| - \| - \| [0-9]+ \| 480 \|' "$tmp/model.md" && ok "14B/720P TP 8 ring all-reduce: 480 GB per step" ||
  bad "14B/720P TP 8 row: $(grep 'tp 8 |' "$tmp/model.md")"

echo "test_bench_scaling: $checks checks, $fails failed"
[ $fails -eq 0 ]
