#!/usr/bin/env bash
# scripts/plot-scaling.sh - PNG plots of a scaling benchmark (scripts/bench-scaling.sh) with gnuplot.
#
# Usage: scripts/plot-scaling.sh RESULTS_DIR [--img DIR]
#   reads RESULTS_DIR/scaling.tsv, writes into DIR (default RESULTS_DIR):
#   scaling-step-time.png   wall time per step against ranks, one line per layout family
#   scaling-comm-share.png  per-rank time per step split into compute and time inside collectives
#   scaling-bytes.png       bytes each rank sends per step, by collective kind
# Needs gnuplot (Debian gnuplot-nox, in scripts/install-deps.sh).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/plot-scaling.sh RESULTS_DIR [--img DIR]" >&2; exit 2; }
res=$1
shift
img=$res
while [ $# -gt 0 ]; do
  case $1 in
    --img) img=$2; shift 2 ;;
    *) echo "plot-scaling: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
tsv=$res/scaling.tsv
[ -f "$tsv" ] || { echo "plot-scaling: $tsv not found (run scripts/bench-scaling.sh first)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot-scaling: gnuplot not found (apt-get install -y gnuplot-nox)" >&2; exit 1; }
mkdir -p "$img"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/plot-scaling-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# the shape, from the first run's JSON report, for the titles
shape=$(awk -F'\t' 'NR == 2 {print $1}' "$tsv")
title=$(sed -n 's/.*"model_size":\t*"\([^"]*\)".*/\1/p; s/.*"layers":\t*\([0-9]*\).*/\1 layers/p; s/.*"tokens":\t*\([0-9]*\).*/\1 tokens/p; s/.*"host":\t*"\([^"]*\)".*/host \1/p; s/.*"cores":\t*\([0-9]*\).*/\1 cores/p' \
  "$res/runs/$shape.json" 2>/dev/null | head -5 | paste -sd, - | sed 's/,/, /g')

load=$(awk -F'\t' 'NR > 1 && $28 != "" {if (min == "" || $28 < min) min = $28; if ($28 > max) max = $28} END {if (min != "") printf "load average %.1f-%.1f during the runs", min, max}' "$tsv")
[ -z "$load" ] || title="$title, $load"

# layout families: the 1-rank run (2 threads) and the runs that grow one kind of parallelism
family() { # name regex
  awk -F'\t' -v re="$2" 'NR > 1 && $1 ~ re {print $2 "\t" $9 "\t" $1}' "$tsv" | sort -n >"$tmp/$1.dat"
}
family ulysses '^(1r-2t|sp[0-9]+-ulysses)$'
family ring '^(1r-2t|sp[0-9]+-ring)$'
family tp '^(1r-2t|tp[0-9]+)$'
family cfg '^(1r-2t|cfg2|cfg2xsp2)$'
awk -F'\t' 'NR > 1 && $1 !~ /^(1r-2t|1r-1t|sp[0-9]+-ulysses|sp[0-9]+-ring|tp[0-9]+|cfg2|cfg2xsp2)$/ {print $2 "\t" $9 "\t" $1}' \
  "$tsv" >"$tmp/other.dat"
base=$(awk -F'\t' '$1 == "1r-2t" {print $9}' "$tsv")

gnuplot <<EOF
set terminal pngcairo size 1000,620 font "sans,10"
set datafile separator "\t"
set output "$img/scaling-step-time.png"
set title "Wall time per step (slowest rank; step = cond + uncond pass) vs ranks\n$title\n2 cores: 2 ranks x 1 thread use the same cores as 1 rank x 2 threads; 4 ranks are oversubscribed 2x"
set xlabel "ranks"
set ylabel "seconds per step (fastest of the repeats)"
set logscale x 2
set xrange [0.8:5]
set xtics (1, 2, 4)
set yrange [0:*]
set key outside right
set grid
plot $base title "1 rank, 2 threads" with lines dashtype 2 lc rgb "black", \
     "$tmp/ulysses.dat" using 1:2 with linespoints pt 7 lw 2 lc rgb "#1b9e77" title "sp (Ulysses)", \
     "$tmp/ring.dat" using 1:2 with linespoints pt 5 lw 2 lc rgb "#7570b3" title "sp (ring)", \
     "$tmp/tp.dat" using 1:2 with linespoints pt 9 lw 2 lc rgb "#d95f02" title "tp", \
     "$tmp/cfg.dat" using 1:2 with linespoints pt 11 lw 2 lc rgb "#e7298a" title "cfg (then x sp 2)", \
     "$tmp/other.dat" using 1:2 with points pt 13 ps 1.5 lc rgb "#444444" title "hybrids", \
     "$tmp/other.dat" using 1:2:3 with labels offset 1,0.6 left font "sans,8" notitle
EOF

gnuplot <<EOF
set terminal pngcairo size 1000,620 font "sans,10"
set datafile separator "\t"
set output "$img/scaling-comm-share.png"
set title "Per-rank time per step: compute vs inside collectives (mean over ranks)\n$title\ncollective time includes waiting for slower ranks; 4-rank runs are oversubscribed"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.7
set ylabel "seconds per step per rank"
set xtics rotate by -35 scale 0 font "sans,9"
set yrange [0:*]
set key top left
set grid ytics
plot "$tsv" skip 1 using 12:xtic(1) title "compute" lc rgb "#4c72b0", \
     "" skip 1 using 14 title "in collectives" lc rgb "#dd8452"
EOF

gnuplot <<EOF
set terminal pngcairo size 1000,620 font "sans,10"
set datafile separator "\t"
set output "$img/scaling-bytes.png"
set title "Bytes each rank sends per step, by collective (max over ranks; f32)\n$title\nmeasured by the communicators' counters = the communication model, byte for byte"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.7
set ylabel "MB per step per rank"
set xtics rotate by -35 scale 0 font "sans,9"
set yrange [0:*]
set key top left
set grid ytics
plot "$tsv" skip 1 using (\$17/1e6):xtic(1) title "all-to-all (Ulysses)" lc rgb "#4c72b0", \
     "" skip 1 using (\$18/1e6) title "broadcast (ring k/v, CFG)" lc rgb "#55a868", \
     "" skip 1 using (\$19/1e6) title "all-reduce (TP)" lc rgb "#c44e52", \
     "" skip 1 using (\$20/1e6) title "all-gather (head)" lc rgb "#8172b2"
EOF
echo "plot-scaling: $img/scaling-step-time.png $img/scaling-comm-share.png $img/scaling-bytes.png"
