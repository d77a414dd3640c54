#!/usr/bin/env bash
# Static cross builds into $BIN/<os>_<arch>/:
#   edge-agent and edge-launcher for linux/arm64, linux/arm (GOARM=7) and linux/amd64,
#   fleetd and fleetctl for linux/amd64 and linux/arm64.
# CGO_ENABLED=0 and the omit_native tag (models/native's dlopen binding needs
# the C loader) make every binary static; the version is stamped with
# -ldflags "-X edgefleet/agent.Version=$VERSION -X edgefleet/internal/cli.Version=$VERSION".
#
# Next to the static agent, $BIN/linux_arm64/edge-agent-native keeps the
# native TFLite engine (no omit_native tag). It is still built without cgo,
# but purego's dlopen needs the C loader, so it is dynamically linked against
# glibc (interpreter /lib/ld-linux-aarch64.so.1): it runs on glibc systems
# (Jetson L4T, Raspberry Pi OS 64-bit), not on musl. Install it instead of
# the static one on boxes that have libtensorflowlite_c.so.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BIN=${BIN:-bin}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
LDFLAGS="-s -w -X edgefleet/agent.Version=${VERSION} -X edgefleet/internal/cli.Version=${VERSION}"

build() { # os arch goarm out-dir packages...
  local os=$1 arch=$2 arm=$3 dir=$4
  shift 4
  mkdir -p "$dir"
  echo "cross: ${os}/${arch}${arm:+ GOARM=$arm} -> $dir: $*"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$arm \
    "$GO" build -trimpath -tags omit_native -ldflags "$LDFLAGS" -o "$dir/" "$@"
}

for target in linux/arm64 linux/arm/7 linux/amd64; do
  IFS=/ read -r os arch arm <<<"$target"
  build "$os" "$arch" "${arm:-}" "$BIN/${os}_${arch}" ./agent/cmd/edge-agent ./firmware/cmd/edge-launcher
done
for target in linux/amd64 linux/arm64; do
  IFS=/ read -r os arch <<<"$target"
  build "$os" "$arch" "" "$BIN/${os}_${arch}" ./fleet/cmd/fleetd ./fleet/cmd/fleetctl
done

native=$BIN/linux_arm64/edge-agent-native
echo "cross: linux/arm64 (native engine, dynamic against glibc) -> $native"
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \
  "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$native" ./agent/cmd/edge-agent

# Every other binary must be static: a dynamic loader would tie it to one libc.
if command -v file >/dev/null; then
  bad=0
  for f in "$BIN"/linux_*/*; do
    desc=$(file -b "$f")
    if [[ $f == */edge-agent-native ]]; then
      case $desc in
        *"dynamically linked"*"ld-linux-aarch64.so.1"*) ;;
        *) echo "cross: $f is not linked against glibc's loader: $desc" >&2; bad=1 ;;
      esac
      continue
    fi
    case $desc in
      *"statically linked"*|*"static-pie linked"*) ;;
      *) echo "cross: $f is not static: $desc" >&2; bad=1 ;;
    esac
  done
  ((bad == 0)) || exit 1
fi
# The native build must really have the engine, not the omit_native stub.
if "$GO" version -m "$native" | grep -q 'tags=.*omit_native'; then
  echo "cross: $native was built with omit_native" >&2
  exit 1
fi
ls -l "$BIN"/linux_*/
