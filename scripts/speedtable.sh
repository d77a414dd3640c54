#!/usr/bin/env bash
# speedtable.sh: the go engine beside ONNX Runtime, measured in one sitting.
#
# For ROUNDS rounds (default 3), and in each round for 1 and 2 threads, it
# runs BenchmarkNetworks (models/tflite) on each network and ONNX Runtime's
# harness (../shared/anchors/ortref) on the same network as ONNX, one after
# the other, so both see the same machine load. Each figure is the median
# invoke of RUNS (default 10) after a warm-up; the table shows the median of
# the rounds, ms per invoke, 1 thread / 2 threads, and go ÷ ORT.
#
# Needs Go, node and npm. ONNX Runtime (npm onnxruntime-node, as the
# harness's package.json pins it) is installed into ORTREF_DIR (default
# ${TMPDIR:-/tmp}/edgefleet-ortref) on first use, never into the checkout.
#
#   scripts/speedtable.sh            # ROUNDS=1 RUNS=5 for a quick look
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD
export EDGEFLEET_TESTDATA=${EDGEFLEET_TESTDATA:-$(cd .. && pwd)/shared/testdata}
anchors=${EDGEFLEET_ORTREF:-$(dirname "$EDGEFLEET_TESTDATA")/anchors/ortref}
ortdir=${ORTREF_DIR:-${TMPDIR:-/tmp}/edgefleet-ortref}
rounds=${ROUNDS:-3}
runs=${RUNS:-10}
onnx=$EDGEFLEET_TESTDATA/onnx
image=$EDGEFLEET_TESTDATA/images/chelsea.png

for f in "$anchors/ortrun.js" "$onnx/yolov8n_int8_qdq.onnx" "$image"; do
	[[ -e $f ]] || { echo "speedtable: $f is missing (EDGEFLEET_TESTDATA=$EDGEFLEET_TESTDATA)" >&2; exit 1; }
done
if [[ ! -d $ortdir/node_modules/onnxruntime-node ]]; then
	echo "speedtable: installing onnxruntime-node into $ortdir" >&2
	mkdir -p "$ortdir"
	cp "$anchors/ortrun.js" "$anchors/package.json" "$ortdir/"
	(cd "$ortdir" && npm install --ignore-scripts --no-audit --no-fund >&2)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/tflite.test" ./models/tflite

# row name in BenchmarkNetworks | ORT int8 model | ORT fp32 model | what go is compared with
nets=(
	"yolov8n_full_int8_640|yolov8n_int8_qdq|yolov8n_fp32_recon|int8"
	"yolo11n_full_int8_640|yolo11n_int8_qdq|yolo11n_fp32_recon|int8"
	"yolov8n_hybrid_640|-|yolov8n_fp32_recon|fp32"
	"yolo26n_e2e_320|-|-|-"
)

# results: lines "key threads ms" in $work/results
gorun() { # row threads
	"$work/tflite.test" -test.run '^$' -test.bench "^BenchmarkNetworks/$1/threads=$2\$" -test.benchtime "${runs}x" |
		awk -v k="go:$1" -v t="$2" '/^BenchmarkNetworks/ { for (i = 1; i < NF; i++) if ($(i+1) == "median-ms/image") print k, t, $i }'
}
ortrun() { # model threads
	[[ $1 == - ]] && return
	(cd "$ortdir" && node ortrun.js --model "$onnx/$1.onnx" --threads "$2" --image "$image" --runs "$runs") |
		sed -n 's/.*"median_ms":\([0-9.]*\).*/\1/p' | awk -v k="ort:$1" -v t="$2" '{ print k, t, $1 }'
}

for ((r = 1; r <= rounds; r++)); do
	echo "speedtable: round $r of $rounds (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	for threads in 1 2; do
		for n in "${nets[@]}"; do
			IFS='|' read -r row int8 fp32 _ <<<"$n"
			gorun "$row" "$threads" >>"$work/results"
			ortrun "$int8" "$threads" >>"$work/results"
			ortrun "$fp32" "$threads" >>"$work/results"
		done
	done
done

med() { # key threads: median over the rounds, or "–"
	awk -v k="$1" -v t="$2" '$1 == k && $2 == t { print $3 }' "$work/results" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "–"; else printf "%.1f\n", (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2 }'
}
ratio() { # a b
	if [[ $1 == – || $2 == – ]]; then echo "–"; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; fi
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($cpu), load $(cut -d' ' -f1-3 /proc/loadavg) at the end;"
echo "median invoke in ms of $runs runs, median of $rounds interleaved rounds; 1 thread / 2 threads"
echo
echo "| network | ORT int8 (QDQ) | ORT fp32 | edge-agent go | go ÷ ORT |"
echo "|---|---|---|---|---|"
for n in "${nets[@]}"; do
	IFS='|' read -r row int8 fp32 vs <<<"$n"
	declare -A v=()
	for t in 1 2; do
		v[go$t]=$(med "go:$row" "$t")
		v[i$t]=$(med "ort:$int8" "$t")
		v[f$t]=$(med "ort:$fp32" "$t")
		case $vs in
		int8) v[r$t]=$(ratio "${v[go$t]}" "${v[i$t]}") ;;
		fp32) v[r$t]=$(ratio "${v[go$t]}" "${v[f$t]}") ;;
		*) v[r$t]="–" ;;
		esac
	done
	note=""
	[[ $vs != - ]] && note=" (vs $vs)"
	echo "| $row | ${v[i1]} / ${v[i2]} | ${v[f1]} / ${v[f2]} | ${v[go1]} / ${v[go2]} | ${v[r1]} / ${v[r2]}$note |"
	unset v
done
