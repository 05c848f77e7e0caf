#!/usr/bin/env bash
# scripts/gpu-run.sh [STEP...] - everything issue 8 needs from one GPU loan, in one device command
# (docs/gpu.md): run it on the GPU machine from the repository root after carrying gpu-bundle.tar.gz
# (scripts/gpu-bundle.sh here). Each step has its own time limit so that one command stays within the device
# tool's 10 minutes; logs and JSON go to $OUT (the device tool brings them back), else to gpu-run-out/.
#
# Steps (default: all, in this order; name some to run only those):
#   info     nvidia-smi, driver/CUDA versions, where env.sh found the CUDA libraries
#   tests    ctest -L gpu (test_ops_cuda, test_dit_cuda, test_comm_nccl): a skipped test here is a set-up failure
#   sanitize compute-sanitizer memcheck on test_ops_cuda (when the tool is there)
#   bench    reelfarm bench --backend cuda: 1.3B/540P/5 frames f32 and bf16, 14B/720P/121 frames bf16 with
#            --layers 2 (the per-layer figure; the full forward is layers x that plus the ends)
#   torch    scripts/bench-torch-dit.py at the same shapes (PyTorch SDPA flash, bf16), its GEMM peak and
#            attention-only figure, in a shell without the bundle's libraries (PyTorch brings its own)
# Exit status: 0 when every step that ran succeeded.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-run-out}
mkdir -p "$OUT"
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(info tests sanitize bench torch)
failed=()
log() { printf '[gpu-run %(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$OUT/gpu-run.log"; }
# step NAME SECONDS CMD...: run CMD under a time limit, its output in $OUT/NAME.log
step() {
  local name=$1 limit=$2
  shift 2
  log "$name: $* (limit ${limit}s)"
  local t0=$SECONDS
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  log "$name: exit $rc after $((SECONDS - t0)) s; last lines:"
  tail -n 5 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/gpu-run.log"
  [[ $rc -eq 0 ]] || failed+=("$name")
}

if [[ ! -d gpu-bundle ]]; then
  if [[ -f gpu-bundle.tar.gz ]]; then
    tar xzf gpu-bundle.tar.gz || { log "cannot unpack gpu-bundle.tar.gz"; exit 1; }
  else
    log "no gpu-bundle/ and no gpu-bundle.tar.gz: build it with scripts/gpu-bundle.sh and carry gpu-bundle.tar.gz"
    exit 1
  fi
fi
# the bundle's libraries for one command (timeout cannot run a shell function)
bundled=(bash -c 'source gpu-bundle/env.sh >/dev/null && exec "$@"' bundled)
rf=build-gpu/reelfarm

for s in "${steps[@]}"; do
  case $s in
  info)
    step info 60 bash -c 'set -e; nvidia-smi; nvidia-smi -q | grep -iE "product name|driver version|cuda version" | head;
      source gpu-bundle/env.sh && echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"'
    ;;
  tests)
    step tests 420 bash -c 'source gpu-bundle/env.sh && ctest --test-dir build-gpu -L gpu --output-on-failure -V'
    # a skip on the GPU machine means the driver or a library was not found
    if grep -q "Skipped" "$OUT/tests.log"; then log "tests: some gpu test skipped: the set-up is broken"; failed+=(tests-skipped); fi
    ;;
  sanitize)
    if command -v compute-sanitizer >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/compute-sanitizer ]]; then
      cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
      step sanitize 420 bash -c "source gpu-bundle/env.sh && $cs --tool memcheck --error-exitcode 9 build-gpu/tests/test_ops_cuda"
    else
      log "sanitize: no compute-sanitizer on this machine; skipped"
    fi
    ;;
  bench)
    step bench-1.3b-f32 240 "${bundled[@]}" "$rf" bench --backend cuda --model-size 1.3b --resolution 540p --frames 5 \
      --json "$OUT/bench-1.3b-f32.json"
    step bench-1.3b-bf16 240 "${bundled[@]}" "$rf" bench --backend cuda --dtype bf16 --model-size 1.3b --resolution 540p \
      --frames 5 --json "$OUT/bench-1.3b-bf16.json"
    step bench-14b-720p-2layers-bf16 420 "${bundled[@]}" "$rf" bench --backend cuda --dtype bf16 --model-size 14b \
      --resolution 720p --frames 121 --layers 2 --json "$OUT/bench-14b-720p-2layers-bf16.json"
    ;;
  torch)
    py=$(command -v python3)
    step torch-1.3b-bf16 300 "$py" scripts/bench-torch-dit.py --model-size 1.3b --resolution 540p --frames 5 \
      --gemm-peak --attention --json "$OUT/torch-1.3b-bf16.json"
    step torch-14b-720p-bf16 540 "$py" scripts/bench-torch-dit.py --model-size 14b --resolution 720p --frames 121 \
      --attention --time-budget 420 --json "$OUT/torch-14b-720p-bf16.json"
    ;;
  *)
    log "unknown step '$s' (expected info, tests, sanitize, bench, torch)"
    failed+=("$s")
    ;;
  esac
done

if [[ ${#failed[@]} -eq 0 ]]; then
  log "all steps succeeded; figures in $OUT"
  exit 0
fi
log "failed: ${failed[*]}"
exit 1
