#!/usr/bin/env bash
# scripts/make-goldens.sh - regenerate tests/golden/dit_<case>.h5 with the independent PyTorch reference.
#
# Each golden file holds the inputs of one dit-forward case, the reference's noise_pred (computed in
# float64 by tests/reference/wan_dit_ref.py from the spec, not from reelfarm's code) and attributes
# saying which tiny model it belongs to (model_args: the make-tiny-model flags) with a fingerprint of
# that model's weights. The tiny models themselves are written by reelfarm's make-tiny-model (their
# values depend only on the seed), so the test regenerates them instead of committing weights.
# Needs: a built reelfarm (REELFARM_BIN, default build/reelfarm) and scripts/install-deps.sh --with-reference.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
REF=tests/reference/wan_dit_ref.py
BIN=${REELFARM_BIN:-build/reelfarm}
OUT=tests/golden
[ -x "$BIN" ] || { echo "make-goldens: build reelfarm first (or set REELFARM_BIN)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT"

# name | make-tiny-model flags | make-input flags | causal block size (0 = full attention)
cases=(
  "t2v_perframe|--seed 7|--frames 4 --height 8 --width 12 --context-len 24 --zero-rows 6 --seed 1|0"
  "t2v_scalar|--seed 7|--frames 4 --height 8 --width 12 --context-len 24 --zero-rows 6 --timesteps scalar --scalar-timestep 613 --seed 2|0"
  "t2v_causal2|--seed 7|--frames 4 --height 8 --width 12 --context-len 24 --zero-rows 6 --seed 3|2"
  "t2v_causal1_oddgrid|--seed 7|--frames 3 --height 6 --width 10 --context-len 16 --seed 4|1"
  "fps0|--seed 8 --fps-embedding|--frames 4 --height 8 --width 8 --context-len 20 --zero-rows 4 --fps 0 --seed 5|0"
  "fps1_causal2|--seed 8 --fps-embedding|--frames 4 --height 8 --width 8 --context-len 20 --zero-rows 4 --fps 1 --seed 6|2"
  "i2v|--seed 9 --i2v|--frames 2 --height 8 --width 8 --context-len 24 --zero-rows 8 --clip-len 17 --seed 7|0"
  "t2v_bf16|--seed 7 --dtype bf16|--frames 4 --height 8 --width 12 --context-len 24 --zero-rows 6 --seed 8|0"
  "t2v_f16|--seed 7 --dtype f16|--frames 4 --height 8 --width 12 --context-len 24 --zero-rows 6 --seed 9|0"
)

for c in "${cases[@]}"; do
  IFS='|' read -r name mflags iflags cbs <<<"$c"
  model="$tmp/model_$(tr -c 'a-z0-9' _ <<<"$mflags")"
  # shellcheck disable=SC2086
  [ -d "$model" ] || "$BIN" make-tiny-model "$model" $mflags --no-example >/dev/null
  # shellcheck disable=SC2086
  "$PY" "$REF" make-input --model "$model" --out "$tmp/$name.in.h5" $iflags
  read -r wsum wsumsq wcount < <("$PY" "$REF" fingerprint --model "$model")
  cbs_flag=()
  [ "$cbs" != 0 ] && cbs_flag=(--causal-block-size "$cbs")
  rm -f "$OUT/dit_$name.h5"
  "$PY" "$REF" forward --model "$model" --in "$tmp/$name.in.h5" --out "$OUT/dit_$name.h5" "${cbs_flag[@]}" \
    --copy-inputs --attr "case=$name" --attr "model_args=$mflags" --attr "model_weight_sum=$wsum" \
    --attr "model_weight_sumsq=$wsumsq" --attr "model_weight_count=$wcount"
  echo "make-goldens: $OUT/dit_$name.h5"
done
