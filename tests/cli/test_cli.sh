#!/usr/bin/env bash
# tests/cli/test_cli.sh REELFARM GOLDEN_DIR - the command line end to end.
#
# Checks exit codes (0 ok, 1 bad input, 2 usage), that every bad input gives exactly one stderr line
# naming the file/dataset/flag, that no output file appears after a failure and an existing output
# is never replaced, and the golden round trip through the real binary (h5diff against the
# reference's noise_pred, with a negative control). Malformed HDF5 inputs are assembled with h5copy
# from the golden files, so no Python is needed.
set -u
bin=$1
golden=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reelfarm-cli-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0

ok() { checks=$((checks + 1)); echo "ok: $*"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL: $*"; }

# expect RC PATTERN DESCRIPTION -- command...: exit code RC, exactly one stderr line matching PATTERN
expect() {
  local want=$1 pattern=$2 what=$3
  shift 4
  "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err.txt")
  if [ "$rc" -ne "$want" ]; then
    bad "$what: exit $rc, expected $want; stderr: $(cat "$tmp/err.txt")"
  elif [ "$want" -ne 0 ] && [ "$lines" -ne 1 ]; then
    bad "$what: $lines stderr lines, expected 1: $(cat "$tmp/err.txt")"
  elif [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$tmp/err.txt" "$tmp/out.txt"; then
    bad "$what: output does not match /$pattern/: $(cat "$tmp/err.txt" "$tmp/out.txt")"
  else
    ok "$what${pattern:+ -> $(head -c 160 "$tmp/err.txt")}"
  fi
}

no_file() { if [ -e "$1" ]; then bad "$2: $1 was created"; else ok "$2: nothing written"; fi; }

m="$tmp/model"
expect 0 "" "help" -- "$bin" --help
expect 2 "unknown command 'frobnicate'" "unknown command" -- "$bin" frobnicate
expect 0 "wrote tiny t2v model" "make-tiny-model" -- "$bin" make-tiny-model "$m"
expect 1 "error: .*not empty" "make-tiny-model into a non-empty directory" -- "$bin" make-tiny-model "$m"
expect 2 "--dtype: expected f32, bf16 or f16" "make-tiny-model bad dtype" -- "$bin" make-tiny-model "$tmp/x" --dtype int8
no_file "$tmp/x" "make-tiny-model bad dtype"

in="$m/examples/dit_input.h5"
out="$tmp/pred.h5"
expect 0 "" "dit-forward on the example input" -- "$bin" dit-forward --model "$m" --in "$in" --out "$out"
if "$bin" inspect "$out" | grep -qE "noise_pred +float32 +\[16, 4, 16, 16\]"; then ok "noise_pred [16, 4, 16, 16] written"; else bad "noise_pred missing or misshaped"; fi
sum_before=$(md5sum <"$out")
expect 1 "error: .*already exists" "existing output is refused" -- "$bin" dit-forward --model "$m" --in "$in" --out "$out"
[ "$(md5sum <"$out")" = "$sum_before" ] && ok "existing output untouched" || bad "existing output was modified"
expect 0 "" "--force replaces it" -- "$bin" dit-forward --model "$m" --in "$in" --out "$out" --force

# golden round trip through the binary, and a negative control
g="$golden/dit_t2v_causal2.h5"
gm="$tmp/golden_model"
"$bin" make-tiny-model "$gm" --seed 7 --no-example >/dev/null
expect 0 "" "dit-forward on a golden input" -- "$bin" dit-forward --model "$gm" --in "$g" --out "$tmp/g.h5" --causal-block-size 2
if h5diff -d 1e-4 "$tmp/g.h5" "$g" noise_pred noise_pred >/dev/null; then ok "CLI output matches the reference within 1e-4"; else bad "CLI output differs from the reference"; fi
"$bin" dit-forward --model "$gm" --in "$g" --out "$tmp/g_full.h5" 2>/dev/null
if h5diff -d 1e-4 "$tmp/g_full.h5" "$g" noise_pred noise_pred >/dev/null 2>&1; then bad "negative control: full attention matched the block-causal reference"; else ok "negative control: full attention differs from the block-causal reference"; fi

# malformed inputs: one line, exit 1, no output
mk() { # mk FILE SRC:DATASET[:NEWNAME] ...
  local f=$1; shift
  for spec in "$@"; do
    IFS=: read -r src ds new <<<"$spec"
    h5copy -i "$src" -o "$f" -s "$ds" -d "${new:-$ds}" || { bad "h5copy $spec"; }
  done
}
odd="$golden/dit_t2v_causal1_oddgrid.h5"
mk "$tmp/no_latents.h5" "$g:timesteps" "$g:context"
mk "$tmp/latents_2d.h5" "$g:context:latents" "$g:timesteps" "$g:context"
mk "$tmp/timesteps_len.h5" "$g:latents" "$odd:timesteps" "$g:context"
mk "$tmp/context_4d.h5" "$g:latents" "$g:timesteps" "$g:noise_pred:context"
mk "$tmp/clip_for_t2v.h5" "$g:latents" "$g:timesteps" "$g:context" "$g:context:clip_features"
echo "not hdf5" >"$tmp/text.h5"
o="$tmp/o.h5"
expect 1 "error: .*no_such.h5: no such file" "missing input file" -- "$bin" dit-forward --model "$gm" --in "$tmp/no_such.h5" --out "$o"
no_file "$o" "missing input file"
expect 1 "error: .*text.h5: not an HDF5 file" "input not HDF5" -- "$bin" dit-forward --model "$gm" --in "$tmp/text.h5" --out "$o"
expect 1 "error: .*no dataset 'latents'" "latents missing" -- "$bin" dit-forward --model "$gm" --in "$tmp/no_latents.h5" --out "$o"
expect 1 "error: .*latents: expected \[16, F, H, W\], found \[24, 64\]" "latents of the wrong rank" -- "$bin" dit-forward --model "$gm" --in "$tmp/latents_2d.h5" --out "$o"
expect 1 "error: .*timesteps: expected \[4\] .* or \[1\], found \[3\]" "timesteps of the wrong length" -- "$bin" dit-forward --model "$gm" --in "$tmp/timesteps_len.h5" --out "$o"
expect 1 "error: .*context: expected \[L, 64\]" "context of the wrong rank" -- "$bin" dit-forward --model "$gm" --in "$tmp/context_4d.h5" --out "$o"
expect 1 "error: .*clip_features: this text-to-video model has no image branch" "clip features for a t2v model" -- "$bin" dit-forward --model "$gm" --in "$tmp/clip_for_t2v.h5" --out "$o"
expect 1 "error: .*causal block size 3 does not divide the 4 latent frames" "impossible causal block size" -- "$bin" dit-forward --model "$gm" --in "$g" --out "$o" --causal-block-size 3
expect 1 "error: .*no_model: no such model directory" "missing model directory" -- "$bin" dit-forward --model "$tmp/no_model" --in "$g" --out "$o"
expect 2 "--causal-block-size: expected an integer in \[1," "causal block size 0" -- "$bin" dit-forward --model "$gm" --in "$g" --out "$o" --causal-block-size 0
expect 2 "--threads: expected an integer" "threads not a number" -- "$bin" dit-forward --model "$gm" --in "$g" --out "$o" --threads many
expect 2 "--model, --in and --out are required" "missing flags" -- "$bin" dit-forward --in "$g"
expect 2 "unknown option '--frobnicate'" "unknown flag" -- "$bin" dit-forward --frobnicate
expect 1 "error: .*i2v.*|error: .*condition" "t2v input for an i2v model" -- bash -c "\"$bin\" make-tiny-model \"$tmp/i2v\" --i2v --no-example >/dev/null && \"$bin\" dit-forward --model \"$tmp/i2v\" --in \"$g\" --out \"$o\""
no_file "$o" "all failed runs"

# other layouts through the CLI
expect 0 "" "make-tiny-model original naming, bf16, 2 shards" -- "$bin" make-tiny-model "$tmp/orig" --naming original --dtype bf16 --shards 2 --fps-embedding
expect 0 "" "dit-forward on it" -- "$bin" dit-forward --model "$tmp/orig" --in "$tmp/orig/examples/dit_input.h5" --out "$tmp/orig.h5"
expect 0 "original tensor names" "inspect a model" -- bash -c "\"$bin\" inspect \"$tmp/orig\" >&2"
expect 0 "tensors: " "inspect a safetensors index" -- bash -c "\"$bin\" inspect \"$tmp/orig/model.safetensors.index.json\" >&2"
expect 1 "error: .*nothing: no such file" "inspect a missing path" -- "$bin" inspect "$tmp/nothing"
expect 0 "forward_s_min=" "bench (tiny)" -- bash -c "\"$bin\" bench --model-size tiny --resolution 64x64 --frames 5 --text-len 16 --repeat 1 --warmup 0 >&2"
expect 2 "--frames" "bench impossible frame count" -- "$bin" bench --frames -4
expect 1 "error: .*--frames 6: expected 4k\+1" "bench frame count not 4k+1" -- "$bin" bench --model-size tiny --frames 6


# denoise: the golden round trip through the binary (integers exact, latents within 1e-4 absolute)
dg="$golden/denoise_prefix_addnoise.h5"
expect 0 "" "denoise on a golden input" -- "$bin" denoise --model "$gm" --in "$dg" --out "$tmp/dn.h5" --steps 10 \
  --shift 8 --guidance 5 --ar-step 1 --addnoise-condition 20 --seed 1234 --chunk 3
for ds in timesteps timestep_matrix update_mask valid_interval; do
  if h5diff "$tmp/dn.h5" "$dg" $ds $ds >/dev/null; then ok "denoise $ds identical to the reference"; else bad "denoise $ds differs"; fi
done
if h5diff -d 1e-4 "$tmp/dn.h5" "$dg" latents latents >/dev/null; then ok "denoise latents match the reference within 1e-4"; else bad "denoise latents differ"; fi
"$bin" denoise --model "$gm" --in "$dg" --out "$tmp/dn_wrong.h5" --steps 10 --shift 8 --guidance 5 --ar-step 1 \
  --addnoise-condition 20 --seed 1234 --chunk 4 2>/dev/null
if h5diff -d 1e-4 "$tmp/dn_wrong.h5" "$dg" latents latents >/dev/null 2>&1; then bad "negative control: another chunk's add-noise draws matched"; else ok "negative control: another chunk's add-noise draws differ"; fi
mk "$tmp/dn_nonegative.h5" "$dg:noise" "$dg:context"
mk "$tmp/dn_prefix3.h5" "$dg:noise" "$dg:context" "$dg:negative_context" "$golden/dit_t2v_causal1_oddgrid.h5:latents:prefix_latents"
expect 1 "error: .*negative_context: required for guidance 6" "denoise without negative_context" -- "$bin" denoise --model "$gm" --in "$tmp/dn_nonegative.h5" --out "$o" --steps 4
expect 1 "error: .*prefix_latents: expected \[16, P, 8, 8\]" "denoise with a misshaped prefix" -- "$bin" denoise --model "$gm" --in "$tmp/dn_prefix3.h5" --out "$o" --steps 4
expect 1 "error: .*causal-block-size 2 does not divide the 5 latent frames" "denoise with an impossible block size" -- "$bin" denoise --model "$gm" --in "$dg" --out "$o" --steps 4 --causal-block-size 2
expect 2 "--steps, .*are required|--model, --in, --out and --steps are required" "denoise without --steps" -- "$bin" denoise --model "$gm" --in "$dg" --out "$o"
expect 2 "--guidance: expected a number" "denoise bad guidance" -- "$bin" denoise --model "$gm" --in "$dg" --out "$o" --steps 4 --guidance lots
no_file "$o" "failed denoise runs"

# plan
expect 0 "total: 90 rows, 180 DiT forwards" "plan 257 frames" -- bash -c "\"$bin\" plan --frames 257 --base-frames 97 --overlap 17 >&2"
expect 0 '"chunks_count":[[:space:]]*14' "plan 60 s at 720P as JSON" -- bash -c "\"$bin\" plan --seconds 60 --fps 24 --base-frames 121 --overlap 17 --resolution 720p --json >&2"
expect 1 "error: --overlap 97 must be smaller than --base-frames 97; try --overlap 17" "plan overlap >= base" -- "$bin" plan --frames 257 --base-frames 97 --overlap 97
expect 1 "use --base-frames 93 or 101" "plan base not divisible by the block size" -- "$bin" plan --frames 257 --base-frames 97 --overlap 17 --causal-block-size 2
expect 2 "give --frames or --seconds" "plan without a length" -- "$bin" plan --base-frames 97


# encode-text: token ids against Debian's spm_encode (the cleaned text goes to spm_encode), errors
tm="$tmp/textmodel"
"$bin" make-tiny-model "$tm" --no-example >/dev/null
spm="$tm/tokenizer/spiece.model"
ids_of() { # ids_of FILE DATASET -> the ids up to and including EOS (1)
  h5dump -d "$2" -y -w 1000000 "$1" | sed -n '/DATA {/,/}/p' | tr -cs '0-9' ' ' | awk '{for (i = 1; i <= NF; i++) {printf "%s ", $i; if ($i == 1) exit}}'
}
check_ids() { # check_ids NAME PROMPT CLEANED [TEXT_LEN]
  local name=$1 prompt=$2 cleaned=$3 tl=${4:-64}
  rm -f "$tmp/ids.h5"
  if ! "$bin" encode-text --model "$tm" --prompt "$prompt" --out "$tmp/ids.h5" --text-len "$tl" 2>"$tmp/err.txt"; then
    bad "encode-text $name: $(cat "$tmp/err.txt")"; return
  fi
  local want got
  want="$(printf '%s' "$cleaned" | spm_encode --model="$spm" --output_format=id | tr -s ' \n' ' ' | awk -v n=$((tl - 1)) '{for (i = 1; i <= NF && i <= n; i++) printf "%s ", $i}')1 "
  got=$(ids_of "$tmp/ids.h5" input_ids)
  if [ "$want" = "$got" ]; then ok "encode-text ids = spm_encode ids: $name"; else bad "encode-text $name: ids '$got', spm_encode '$want'"; fi
}
check_ids ascii "A slow cinematic shot of a red car driving through a rainy city at night." "A slow cinematic shot of a red car driving through a rainy city at night."
check_ids cjk "一只猫在城市的街道上奔跑，电影镜头" "一只猫在城市的街道上奔跑，电影镜头"
check_ids emoji "sunset over the ocean 🌅 waves 🌊" "sunset over the ocean 🌅 waves 🌊"
check_ids whitespace "$(printf '  tabs\tand\n\nnewlines   and\xe3\x80\x80ideographic  ')" "tabs and newlines and ideographic"
check_ids html "fish &amp;amp; chips &lt;b&gt; &#x1F41F; &quot;q&quot;" "fish & chips <b> 🐟 \"q\""
long=$(for i in $(seq 1 40); do printf 'cinematic mountain river sunset '; done)
check_ids over-long "$long" "$long"
check_ids short-text-len "a red car in the rain at night" "a red car in the rain at night" 5
if "$bin" encode-text --model "$tm" --prompt "$long" --out "$tmp/long.h5" 2>&1 | grep -q "WARN.*prompt: longer than 64 tokens; truncated"; then ok "over-long prompt warns"; else bad "over-long prompt gives no warning"; fi
expect 0 "" "encode-text with the default negative prompt" -- "$bin" encode-text --model "$tm" --prompt "" --negative --out "$tmp/neg.h5"
if [ "$(ids_of "$tmp/neg.h5" input_ids)" = "1 " ] && "$bin" inspect "$tmp/neg.h5" | grep -aq "@negative_prompt .*色调艳丽，过曝，静态"; then ok "empty prompt is [EOS]; default negative prompt recorded"; else bad "empty prompt / default negative prompt"; fi
printf 'bad \xc0\x80 utf8' >"$tmp/bad_prompt.txt"
expect 1 "error: prompt: invalid UTF-8 at byte 4" "encode-text invalid UTF-8" -- "$bin" encode-text --model "$tm" --prompt-file "$tmp/bad_prompt.txt" --out "$o"
expect 1 "error: .*no tokenizer \(expected tokenizer/spiece.model" "encode-text without a tokenizer" -- "$bin" encode-text --model "$gm/transformer" --prompt x --out "$o"
expect 1 "error: --prompt-file: .*no_prompt.txt: cannot open" "encode-text missing prompt file" -- "$bin" encode-text --model "$tm" --prompt-file "$tmp/no_prompt.txt" --out "$o"
expect 2 "exactly one of --prompt and --prompt-file" "encode-text two prompts" -- "$bin" encode-text --model "$tm" --prompt a --prompt-file "$tmp/bad_prompt.txt" --out "$o"
expect 2 "--model and --out are required" "encode-text without --out" -- "$bin" encode-text --model "$tm" --prompt a
expect 0 "" "encode-text on a golden's prompt" -- "$bin" encode-text --model "$gm" --prompt "A slow cinematic shot of a red car driving through a rainy city at night." --out "$tmp/ctx_golden.h5"
for ds in input_ids attention_mask; do
  if h5diff "$tmp/ctx_golden.h5" "$golden/text_ascii.h5" $ds $ds >/dev/null; then ok "encode-text $ds identical to the reference"; else bad "encode-text $ds differs from the reference"; fi
done
if h5diff -d 1e-4 "$tmp/ctx_golden.h5" "$golden/text_ascii.h5" context context >/dev/null; then ok "encode-text context matches the reference within 1e-4"; else bad "encode-text context differs from the reference"; fi
no_file "$o" "failed encode-text runs"

# ---- the VAE: vae-decode / vae-encode (the example input's latents [16, 4, 16, 16] -> 13 frames 128x128) ----
vin="$m/examples/dit_input.h5"
vo="$tmp/vae_out"
mkdir -p "$vo"
expect 0 "" "vae-decode to HDF5" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vo/video.h5"
if "$bin" inspect "$vo/video.h5" | grep -qE "video +float32 +\[3, 13, 128, 128\]"; then ok "video [3, 13, 128, 128] written"; else bad "video missing or misshaped"; fi
expect 0 "" "vae-decode to MP4 at 30000/1001 fps" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vo/video.mp4" --fps 30000/1001
probe=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt -of csv=p=0 "$vo/video.mp4")
[ "$probe" = "h264,128,128,yuv420p,30000/1001,13" ] && ok "ffprobe: $probe" || bad "ffprobe says '$probe', expected h264,128,128,yuv420p,30000/1001,13"
expect 0 "" "vae-decode to WebM (av1)" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vo/video.webm" --codec av1 --fps 16
probe=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,r_frame_rate,nb_read_frames -of csv=p=0 "$vo/video.webm")
[ "$probe" = "av1,16/1,13" ] && ok "ffprobe: $probe" || bad "ffprobe says '$probe', expected av1,16/1,13"
expect 0 "" "vae-encode the decoded HDF5 video" -- "$bin" vae-encode --model "$m" --in "$vo/video.h5" --out "$vo/lat.h5"
if "$bin" inspect "$vo/lat.h5" | grep -qE "latents +float32 +\[16, 4, 16, 16\]"; then ok "latents [16, 4, 16, 16] from HDF5"; else bad "latents from HDF5 misshaped"; fi
expect 0 "" "vae-encode the MP4 at 64x32 (centre crop)" -- "$bin" vae-encode --model "$m" --in "$vo/video.mp4" --out "$vo/lat_mp4.h5" --size 64x32
if "$bin" inspect "$vo/lat_mp4.h5" | grep -qE "latents +float32 +\[16, 4, 4, 8\]"; then ok "latents [16, 4, 4, 8] from MP4"; else bad "latents from MP4 misshaped"; fi
ffmpeg -v error -f lavfi -i testsrc=size=96x64:rate=1 -frames:v 1 "$vo/still.png"
expect 0 "" "vae-encode a PNG" -- "$bin" vae-encode --model "$m" --in "$vo/still.png" --out "$vo/lat_png.h5" --size 48x32
if "$bin" inspect "$vo/lat_png.h5" | grep -qE "latents +float32 +\[16, 1, 4, 6\]"; then ok "latents [16, 1, 4, 6] from PNG"; else bad "latents from PNG misshaped"; fi
# the binary against the VAE goldens (the golden model above is the VAE goldens' --seed 7 model too)
expect 0 "" "vae-decode a golden's latents" -- "$bin" vae-decode --model "$gm" --in "$golden/vae_decode_f3.h5" --out "$vo/g_video.h5"
if h5diff -d 1e-5 "$vo/g_video.h5" "$golden/vae_decode_f3.h5" video video >/dev/null; then ok "vae-decode video matches the reference within 1e-5"; else bad "vae-decode video differs from the reference"; fi
expect 0 "" "vae-encode a golden's video" -- "$bin" vae-encode --model "$gm" --in "$golden/vae_encode_t9.h5" --out "$vo/g_lat.h5"
if h5diff -d 1e-5 "$vo/g_lat.h5" "$golden/vae_encode_t9.h5" latents latents >/dev/null; then ok "vae-encode latents match the reference within 1e-5"; else bad "vae-encode latents differ from the reference"; fi
vx="$vo/x.mp4"
h5copy -i "$vin" -o "$tmp/mislabelled.h5" -s timesteps -d latents
ffmpeg -v error -f lavfi -i testsrc=size=100x60:rate=1 -frames:v 1 "$vo/odd.png"
expect 1 "error: .*missing.h5" "vae-decode missing input" -- "$bin" vae-decode --model "$m" --in "$tmp/missing.h5" --out "$vx"
expect 1 "error: .*dataset 'latents' has shape \[4\]; expected \[16, F, h, w\]" "vae-decode wrong latents shape" -- "$bin" vae-decode --model "$m" --in "$tmp/mislabelled.h5" --out "$vx"
expect 1 "error: .*unsupported video codec 'foo'" "vae-decode unsupported codec" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vx" --codec foo
expect 1 "error: .*webm container cannot hold h264" "vae-decode webm with h264" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vo/x.webm"
expect 1 "error: --out .*x.avi: expected a .h5, .mp4, .mkv or .webm" "vae-decode unknown container" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vo/x.avi"
expect 1 "error: .*no VAE \(expected vae/config.json" "vae-decode without a VAE" -- "$bin" vae-decode --model "$m/transformer" --in "$vin" --out "$vx"
expect 2 "--fps: " "vae-decode bad fps" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vx" --fps 0
expect 1 "error: .*multiples of 16" "vae-encode size not a multiple of 16" -- "$bin" vae-encode --model "$m" --in "$vo/still.png" --out "$vx.h5" --size 40x24
expect 1 "error: .*multiples of 16" "vae-encode a 100x60 PNG without --size" -- "$bin" vae-encode --model "$m" --in "$vo/odd.png" --out "$vx.h5"
printf 'not a video\n' >"$vo/notes.mp4"
expect 1 "error: .*notes.mp4: not an image or video" "vae-encode a text file" -- "$bin" vae-encode --model "$m" --in "$vo/notes.mp4" --out "$vx.h5"
expect 1 "error: .*already exists" "vae-decode refuses an existing output" -- "$bin" vae-decode --model "$m" --in "$vin" --out "$vo/video.mp4"
no_file "$vx" "failed vae-decode runs"
no_file "$vx.h5" "failed vae-encode runs"
if ls "$vo" | grep -q "\.tmp-"; then bad "a temp file was left in $vo"; else ok "no temp files left"; fi

echo "test_cli: $([ $fails -eq 0 ] && echo "passed $checks checks" || echo "FAILED $fails of $checks checks")"
[ $fails -eq 0 ]
