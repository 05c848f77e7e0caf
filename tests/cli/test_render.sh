#!/usr/bin/env bash
# tests/cli/test_render.sh - `reelfarm render` end to end on tiny models (issue 6, spec 6).
#
# Every mode renders and ffprobe (or the HDF5 output) shows the frame count, size and rate of the plan;
# an interrupted render (SIGKILL mid-row, between rows, between chunks, while decoding; SIGTERM) resumes
# to a bit-identical film and latent sequence; resuming with other settings, another model or a damaged
# checkpoint is refused; bad inputs give one error line and leave existing files alone.
# Interruptions are placed exactly with REELFARM_TEST_INTERRUPT=point:n[:TERM] (worker/render.c).
# Usage: test_render.sh path/to/reelfarm
set -uo pipefail
BIN=$1
T=$(mktemp -d /tmp/reelfarm-render-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export XDG_CACHE_HOME=$T/cache OMP_WAIT_POLICY=passive REELFARM_LOG_LEVEL=warn
unset REELFARM_TEST_INTERRUPT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

M=$T/model
"$BIN" make-tiny-model "$M" --fps-embedding >/dev/null || { echo "cannot make the tiny model" >&2; exit 1; }
R=(--model "$M" --resolution 64x64 --steps 3 --base-frames 9 --overlap 5 --threads 1 --quiet)

probe() { # file -> "frames width height rate"
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames,width,height,r_frame_rate -of default=nw=1:nk=1 "$1" | tr '\n' ' ' |
    awk '{print $4, $1, $2, $3}'
}
h5frames() { h5dump -H -d video_uint8 "$1" 2>/dev/null | sed -n 's/.*DATASPACE  SIMPLE { ( \([0-9]*\), \([0-9]*\), \([0-9]*\), 3 ).*/\1 \3 \2/p'; }
plan_frames() { "$BIN" plan "$@" --json | sed -n 's/.*"output_frames":[[:space:]]*\([0-9]*\).*/\1/p'; }
render() { "$BIN" render "${R[@]}" "$@"; }

# fixtures: two images and a short clip
ffmpeg -v error -f lavfi -i testsrc=size=96x80:rate=1 -frames:v 1 "$T/a.png" &&
  ffmpeg -v error -f lavfi -i mandelbrot=size=64x64:rate=1 -frames:v 1 "$T/b.png" &&
  ffmpeg -v error -f lavfi -i testsrc2=size=64x64:rate=24 -frames:v 21 -pix_fmt yuv420p "$T/clip.mp4" ||
  { echo "ffmpeg cannot make fixtures" >&2; exit 1; }

# ---- the built-in model: the README's main command ----
out=$("$BIN" render --prompt "a lighthouse at dawn" --out "$T/demo.mp4" 2>&1)
check '[[ $? -eq 0 ]]' "built-in render failed: $out"
check 'grep -q "random noise" <<<"$out" && grep -q -- "--model" <<<"$out"' "built-in render does not say it is noise"
check '[[ "$(probe "$T/demo.mp4")" == "41 128 128 24/1" ]]' "demo film: $(probe "$T/demo.mp4")"
check '[[ ! -e "$T/demo.mp4.ckpt.h5" && ! -e "$T/demo.partial.mp4" ]]' "checkpoint or partial file left behind"

# ---- modes ----
render --prompt "t2v" --frames 17 --fps 16 --out "$T/t2v.mp4"
check '[[ "$(probe "$T/t2v.mp4")" == "$(plan_frames --frames 17 --base-frames 9 --overlap 5) 64 64 16/1" ]]' \
  "t2v long: $(probe "$T/t2v.mp4")"
render --prompt "t2v" --frames 17 --out "$T/t2v.h5" --save-latents "$T/t2v_lat.h5"
check '[[ "$(h5frames "$T/t2v.h5")" == "17 64 64" ]]' "t2v h5: $(h5frames "$T/t2v.h5")"
check 'h5dump -H -d latents "$T/t2v_lat.h5" | grep -q "( 16, 5, 8, 8 )"' "film latents are not [16, 5, 8, 8]"
render --prompt "t2v" --seconds 0.5 --fps 16 --out "$T/secs.h5"
check '[[ "$(h5frames "$T/secs.h5")" == "9 64 64" ]]' "--seconds 0.5 --fps 16: $(h5frames "$T/secs.h5")"
render --prompt "i2v" --frames 17 --image "$T/a.png" --out "$T/i2v.h5"
check '[[ "$(h5frames "$T/i2v.h5")" == "17 64 64" ]]' "image prefix"
check '! h5diff -q "$T/i2v.h5" "$T/t2v.h5" >/dev/null' "the start image changed nothing"
render --prompt "flf" --frames 17 --image "$T/a.png" --end-image "$T/b.png" --out "$T/flf.h5"
check '[[ "$(h5frames "$T/flf.h5")" == "17 64 64" ]]' "start + end image"
render --prompt "cbs" --frames 9 --image "$T/a.png" --causal-block-size 3 --ar-step 1 --out "$T/cbs3.h5"
check '[[ "$(h5frames "$T/cbs3.h5")" == "9 64 64" ]]' "image prefix with a causal block of 3"
render --prompt "ext" --extend "$T/clip.mp4" --frames 13 --out "$T/ext.mp4"
want=$((21 + $(plan_frames --extend 21 --frames 13 --base-frames 9 --overlap 5)))
check '[[ "$(probe "$T/ext.mp4")" == "$want 64 64 24/1" ]]' "extension: $(probe "$T/ext.mp4"), want $want frames"
render --prompt "async" --frames 17 --ar-step 1 --causal-block-size 1 --out "$T/async.h5"
check '[[ "$(h5frames "$T/async.h5")" == "17 64 64" ]]' "asynchronous"
render --prompt "async" --frames 17 --ar-step 1 --causal-block-size 1 --causal-attention --out "$T/causal.h5"
check '! h5diff -q "$T/async.h5" "$T/causal.h5" >/dev/null' "--causal-attention changed nothing"
render --prompt "t2v" --frames 17 --addnoise-condition 20 --image "$T/a.png" --out "$T/addnoise.h5"
check '[[ "$(h5frames "$T/addnoise.h5")" == "17 64 64" ]] && ! h5diff -q "$T/addnoise.h5" "$T/i2v.h5" >/dev/null' \
  "--addnoise-condition"
render --prompt "t2v" --frames 17 --overlap-mode latent --out "$T/latent.h5" --save-latents "$T/latent_lat.h5"
check '[[ "$(h5frames "$T/latent.h5")" == "17 64 64" ]] && ! h5diff -q "$T/latent.h5" "$T/t2v.h5" >/dev/null' \
  "--overlap-mode latent"
render --prompt "t2v" --frames 17 --guidance 1 --out "$T/nocfg.h5"
check '[[ "$(h5frames "$T/nocfg.h5")" == "17 64 64" ]]' "--guidance 1"
render --prompt "t2v" --frames 17 --codec h265 --crf 20 --out "$T/t2v.mkv"
check '[[ "$(probe "$T/t2v.mkv")" == "17 64 64 24/1" ]]' "h265 mkv: $(probe "$T/t2v.mkv")"

# --noise: the first chunk's starting latents from a file (values written as text by awk)
awk 'BEGIN { srand(7); for (i = 0; i < 16 * 3 * 64; i++) printf "%.6f\n", (rand() - 0.5) * 3.4 }' >"$T/noise.txt"
printf 'PATH noise\nINPUT-CLASS TEXTFP\nRANK 4\nDIMENSION-SIZES 16 3 8 8\nOUTPUT-CLASS FP\nOUTPUT-SIZE 32\n' >"$T/noise.cfg"
h5import "$T/noise.txt" -c "$T/noise.cfg" -o "$T/noise.h5"
render --prompt "t2v" --frames 17 --noise "$T/noise.h5" --out "$T/noise1.h5"
render --prompt "t2v" --frames 17 --noise "$T/noise.h5" --out "$T/noise2.h5"
check 'h5diff -q "$T/noise1.h5" "$T/noise2.h5" >/dev/null && ! h5diff -q "$T/noise1.h5" "$T/t2v.h5" >/dev/null' \
  "--noise is not used or not reproducible"

# ---- a film file: three shots, the third starts with a cut to an image ----
cat >"$T/film.json" <<EOF
{"model": "$M", "resolution": "64x64", "steps": 3, "base_frames": 9, "overlap": 5, "fps": 12,
 "shots": [{"prompt": "a boat leaves the harbour", "frames": 9},
           {"prompt": "the boat on open sea", "seconds": 0.34},
           {"prompt": "a storm", "frames": 9, "image": "a.png"}]}
EOF
"$BIN" render "$T/film.json" --out "$T/film.mp4" --threads 1 --quiet --progress-json >"$T/film.jsonl"
check '[[ "$(probe "$T/film.mp4")" == "22 64 64 12/1" ]]' "film file: $(probe "$T/film.mp4"), want 13 + 9 frames"
check '[[ $(grep -c "\"event\":\"chunk\"" "$T/film.jsonl") -eq 3 ]] && grep -q "\"event\":\"done\"" "$T/film.jsonl"' \
  "progress JSON lines: $(head -c 300 "$T/film.jsonl")"
"$BIN" render "$T/film.json" --out "$T/film2.mp4" --steps 2 --threads 1 --quiet
check '[[ "$(probe "$T/film2.mp4")" == "22 64 64 12/1" ]] && ! cmp -s "$T/film.mp4" "$T/film2.mp4"' "a flag did not override the film"

# ---- resume: bit-identical after SIGKILL at every kind of place, and after SIGTERM ----
render --prompt "resume" --frames 17 --out "$T/ref.h5" --save-latents "$T/ref_lat.h5"
render --prompt "resume" --frames 17 --out "$T/ref.mp4"
render --prompt "resume" --frames 17 --out "$T/threads2.h5" --save-latents "$T/threads2_lat.h5" --threads 2
check 'h5diff "$T/ref.h5" "$T/threads2.h5" >/dev/null && h5diff "$T/ref_lat.h5" "$T/threads2_lat.h5" >/dev/null' \
  "1 and 2 threads give different films"
for point in mid-row:2 row:4 chunk:1 decode:7 decode:12; do
  for every in 0 2; do
    tag=${point/:/_}_$every
    REELFARM_TEST_INTERRUPT=$point render --prompt "resume" --frames 17 --checkpoint-every $every \
      --out "$T/$tag.h5" --save-latents "$T/${tag}_lat.h5" 2>/dev/null
    rc=$?
    check '[[ $rc -eq 137 && -e "$T/$tag.h5.ckpt.h5" && ! -e "$T/$tag.h5" ]]' "$tag: rc $rc, no checkpoint, or output"
    "$BIN" render --resume "$T/$tag.h5.ckpt.h5" --threads $((1 + every / 2)) --quiet
    check 'h5diff "$T/ref.h5" "$T/$tag.h5" >/dev/null && h5diff "$T/ref_lat.h5" "$T/${tag}_lat.h5" >/dev/null' \
      "$tag: resumed film or latents differ from the uninterrupted render"
    check '[[ ! -e "$T/$tag.h5.ckpt.h5" ]]' "$tag: checkpoint not removed after the finished resume"
  done
done
REELFARM_TEST_INTERRUPT=row:5 render --prompt "resume" --frames 17 --out "$T/killed.mp4" 2>/dev/null
"$BIN" render --resume "$T/killed.mp4.ckpt.h5" --threads 1 --quiet
check 'cmp -s "$T/ref.mp4" "$T/killed.mp4"' "resumed MP4 is not byte-identical"
err=$(REELFARM_TEST_INTERRUPT=row:2:TERM render --prompt "resume" --frames 17 --out "$T/term.h5" \
  --save-latents "$T/term_lat.h5" 2>&1)
rc=$?
check '[[ $rc -eq 143 ]] && grep -q "reelfarm render --resume $T/term.h5.ckpt.h5" <<<"$err"' "SIGTERM: rc $rc: $err"
"$BIN" render --resume "$T/term.h5.ckpt.h5" --threads 1 --quiet
check 'h5diff "$T/ref.h5" "$T/term.h5" >/dev/null && h5diff "$T/ref_lat.h5" "$T/term_lat.h5" >/dev/null' "SIGTERM resume differs"
# latent overlap mode: the resumed decoder is rebuilt from the saved latents
for point in chunk:1 row:5; do
  tag=latent_${point/:/_}
  REELFARM_TEST_INTERRUPT=$point render --prompt "t2v" --frames 17 --overlap-mode latent --out "$T/$tag.h5" \
    --save-latents "$T/${tag}_lat.h5" 2>/dev/null
  "$BIN" render --resume "$T/$tag.h5.ckpt.h5" --threads 1 --quiet
  check 'h5diff "$T/latent.h5" "$T/$tag.h5" >/dev/null && h5diff "$T/latent_lat.h5" "$T/${tag}_lat.h5" >/dev/null' \
    "$tag: latent-mode resume differs"
done

# ---- refusals ----
REELFARM_TEST_INTERRUPT=row:4 render --prompt "resume" --frames 17 --out "$T/r.h5" 2>/dev/null
ck=$T/r.h5.ckpt.h5
err=$("$BIN" render --resume "$ck" --steps 4 2>&1)
check '[[ $? -eq 1 ]] && grep -q "settings differ" <<<"$err" && grep -q "steps" <<<"$err"' "other settings: $err"
cp "$M/transformer/config.json" "$T/config.bak"
sed -i 's/{/{ /' "$M/transformer/config.json"
err=$("$BIN" render --resume "$ck" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "model files" <<<"$err"' "another model: $err"
cp "$T/config.bak" "$M/transformer/config.json"
cp "$ck" "$T/damaged.h5"
printf 'garbage' | dd of="$T/damaged.h5" bs=1 seek=3000 conv=notrunc 2>/dev/null
err=$("$BIN" render --resume "$T/damaged.h5" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "damaged.h5" <<<"$err"' "damaged checkpoint: $err"
head -c 100 "$ck" >"$T/truncated.h5"
err=$("$BIN" render --resume "$T/truncated.h5" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "truncated.h5" <<<"$err"' "truncated checkpoint: $err"
err=$("$BIN" render --resume "$T/none.h5" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "none.h5" <<<"$err"' "missing checkpoint: $err"
err=$(render --prompt x --frames 17 --out "$T/r.h5" 2>&1)
check '[[ $? -eq 1 ]] && grep -q -- "--resume" <<<"$err"' "a new render over an interrupted one: $err"
"$BIN" render --resume "$ck" --threads 1 --quiet
check 'h5diff "$T/ref.h5" "$T/r.h5" >/dev/null' "resume after the refusals differs"

# ---- bad inputs: one error line, exit 1, nothing written, existing files untouched ----
bad_input() { # words... -- render args...
  local words=() a
  while [[ $1 != -- ]]; do words+=("$1"); shift; done
  shift
  err=$(render "$@" 2>&1)
  local rc=$?
  local okw=1
  for a in "${words[@]}"; do grep -q -- "$a" <<<"$err" || okw=0; done
  check '[[ $rc -eq 1 && $okw -eq 1 && $(grep -c "error" <<<"$err") -eq 1 ]]' "bad input ($*): rc $rc: $err"
}
bad_input "nope.png" -- --prompt x --image "$T/nope.png" --out "$T/bad1.mp4"
echo "not an image" >"$T/text.png"
bad_input "text.png" -- --prompt x --image "$T/text.png" --out "$T/bad2.mp4"
bad_input "nope.mp4" -- --prompt x --extend "$T/nope.mp4" --frames 13 --out "$T/bad3.mp4"
bad_input "causal-block-size" -- --prompt x --frames 17 --causal-block-size 2 --out "$T/bad4.mp4"
bad_input "does not exist" -- --prompt x --out "$T/missing/dir.mp4"
bad_input "noise" "16, 3, 8, 8" "16, 4, 8, 8" -- --prompt x --frames 13 --base-frames 13 --noise "$T/noise.h5" --out "$T/bad5.h5"
bad_input "out" -- --prompt x --out "$T/film.txt"
echo '{"shots": [{"prompt": "a", "frames": 9, "promt": "b"}]}' >"$T/badfilm.json"
err=$("$BIN" render "$T/badfilm.json" --out "$T/bad6.mp4" 2>&1)
check '[[ $? -eq 1 ]] && grep -q "shots\[0\].promt" <<<"$err"' "film with an unknown key: $err"
for f in bad1.mp4 bad2.mp4 bad3.mp4 bad4.mp4 bad5.h5 bad6.mp4 bad1.mp4.ckpt.h5 bad1.partial.mp4; do
  check '[[ ! -e "$T/$f" ]]' "a failed render left $f behind"
done
echo "precious" >"$T/exists.mp4"
sum=$(md5sum <"$T/exists.mp4")
bad_input "already exists" "overwrite" -- --prompt x --out "$T/exists.mp4"
check '[[ "$(md5sum <"$T/exists.mp4")" == "$sum" ]]' "an existing output was changed"

echo "test_render: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
