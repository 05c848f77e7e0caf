#!/usr/bin/env bash
# scripts/make-goldens-sampling.sh - regenerate tests/golden/denoise_*.h5 with the independent sampling reference.
#
# Each golden file holds the inputs of one denoising window (noise, contexts, optional prefix / end latents),
# the final latents computed by tests/reference/df_sampling_ref.py (timestep matrix, flow-UniPC, CFG and
# add-noise conditioning written from the spec, sections 4-6; DiT forward from wan_dit_ref.py, float64),
# the int64 timesteps, the timestep matrix, update mask and valid intervals, every sampling parameter as a
# root attribute, and attributes naming the tiny model (model_args: the make-tiny-model flags) with a
# fingerprint of its weights. The tiny models are written by reelfarm's make-tiny-model (their values depend
# only on the seed), so the test regenerates them instead of committing weights.
# Needs: a built reelfarm (REELFARM_BIN, default build/reelfarm) and scripts/install-deps.sh --with-reference.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
REF=tests/reference/df_sampling_ref.py
DIT=tests/reference/wan_dit_ref.py
BIN=${REELFARM_BIN:-build/reelfarm}
OUT=tests/golden
[ -x "$BIN" ] || { echo "make-goldens-sampling: build reelfarm first (or set REELFARM_BIN)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT"

# All cases: 10 steps, latents 8x8, context length 16 with 4 zero rows.
G="--height 8 --width 8 --context-len 16 --zero-rows 4"
# name | make-tiny-model flags | make-input flags | denoise flags
cases=(
  "sync|--seed 7|--frames 4 $G --seed 11|--steps 10 --shift 8 --guidance 5 --ar-step 0 --causal-block-size 1"
  "async_cbs1|--seed 7|--frames 4 $G --seed 12|--steps 10 --shift 8 --guidance 5 --ar-step 2 --causal-block-size 1"
  "async_cbs2_causal|--seed 7|--frames 4 $G --seed 13|--steps 10 --shift 8 --guidance 5 --ar-step 1 --causal-block-size 2 --causal-attention"
  "prefix_addnoise|--seed 7|--frames 5 --prefix 2 $G --seed 14|--steps 10 --shift 8 --guidance 5 --ar-step 1 --causal-block-size 1 --addnoise-condition 20 --seed 1234 --chunk 3"
  "end_sync|--seed 7|--frames 4 --end $G --seed 15|--steps 10 --shift 8 --guidance 1 --ar-step 0 --causal-block-size 1"
  "textbook_sync|--seed 7|--frames 4 $G --seed 11|--steps 10 --shift 8 --guidance 5 --ar-step 0 --causal-block-size 1 --textbook-step"
  "fps16_async|--seed 8 --fps-embedding|--frames 4 $G --seed 17|--steps 10 --shift 5 --guidance 5 --ar-step 1 --causal-block-size 1 --fps 16"
)

for c in "${cases[@]}"; do
  IFS='|' read -r name mflags iflags dflags <<<"$c"
  model="$tmp/model_$(tr -c 'a-z0-9' _ <<<"$mflags")"
  # shellcheck disable=SC2086
  [ -d "$model" ] || "$BIN" make-tiny-model "$model" $mflags --no-example >/dev/null
  # shellcheck disable=SC2086
  "$PY" "$REF" make-input --model "$model" --out "$tmp/$name.in.h5" $iflags >/dev/null
  read -r wsum wsumsq wcount < <("$PY" "$DIT" fingerprint --model "$model")
  rm -f "$OUT/denoise_$name.h5"
  # shellcheck disable=SC2086
  "$PY" "$REF" denoise --model "$model" --in "$tmp/$name.in.h5" --out "$OUT/denoise_$name.h5" $dflags \
    --copy-inputs --attr "case=$name" --attr "model_args=$mflags" --attr "input_args=$iflags" \
    --attr "model_weight_sum=$wsum" --attr "model_weight_sumsq=$wsumsq" --attr "model_weight_count=$wcount"
  echo "make-goldens-sampling: $OUT/denoise_$name.h5"
done
