#!/usr/bin/env bash
# fetch-testdata.sh — download the pinned test assets listed in MODELS.md
# (YOLO TFLite models and test photos), check each sha256, into a folder.
#
#   scripts/fetch-testdata.sh DIR           download what is missing or wrong
#   scripts/fetch-testdata.sh --verify DIR  only check the files already there
#
# Models come from GitHub at pinned commits; photos from the Debian package
# python3-skimage 0.19.3-8 (apt-get download, else deb.debian.org), unpacked
# with dpkg-deb (or ar + tar). Then point the tests at it:
#   EDGEFLEET_TESTDATA=DIR make test
# The reference outputs (reference/, crosscheck_wasm/, tensors/) were made
# with the real TFLite runtime and are not downloadable; tests that need them
# skip without them (and fail under CI).
set -euo pipefail

# name | sha256 | GitHub owner/repo | commit | path in the repo
MODELS=(
  "yolo11n_full_integer_quant.tflite|3c6785f4e7266cf6f70c35a2f43b483169bc23be3a78002490e0d0b56e62da17|eronariodito/NXP-IMX8MPlus-Object-Detection|292e5755fd8f63823e50141e72c34aece51cb67d|models/yolo11n_full_integer_quant.tflite"
  "yolo26n_int8_320_e2e.tflite|b81335e113547f13a281da00594b02966a365850c4006c29840562256858b773|Karim8506/optimised_yolo_models|40007f96689d6679fb199a12e074535863bfe20b|yolo26n_int8.tflite"
  "yolov5n-int8.tflite|de7700cf7c5de9bd5742d004633b98880f1e4da8a0b7efa0cfcb8e45af7f2330|pine-book/MyYolov5|06671475079c10a7a5e49151800c06fe46b8a1b9|yolov5n-int8.tflite"
  "yolov8n_full_integer_quant.tflite|5469a1079dfd35ab4ee681806542ea2668b85aa4b31a2b96a971543fe1ed9414|sangho007/yolov8n|1718761dac356211ef9cca1a2ff1aa8ebf18c180|yolov8n_full_integer_quant.tflite"
  "yolov8n_int8.tflite|c8c5ea2b540cee6763aaef944109e710e9be2ee0de6549cff1fd0bae932d6ee6|sangho007/yolov8n|1718761dac356211ef9cca1a2ff1aa8ebf18c180|yolov8n_int8.tflite"
)

# name | sha256 (all from usr/lib/python3/dist-packages/skimage/data/ in the package)
IMAGES=(
  "astronaut.png|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
  "chelsea.png|596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"
  "coffee.png|cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"
  "motorcycle_left.png|db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"
)
SKIMAGE_PKG=python3-skimage
SKIMAGE_VERSION=0.19.3-8
SKIMAGE_URL=https://deb.debian.org/debian/pool/main/s/skimage/python3-skimage_0.19.3-8_all.deb
SKIMAGE_DATA=usr/lib/python3/dist-packages/skimage/data

COCO80_SHA256=bd17f1ee35d5f3c862a4894605855abbb9dda4b0621fdb0ac4c2c8c7bb7e730a

die() { echo "fetch-testdata: $*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "need sha256sum or shasum"
  fi
}

# verify FILE SHA256: succeeds when FILE exists with that sha256.
verify() {
  [[ -f "$1" ]] || return 1
  local got
  got=$(sha256_of "$1")
  [[ "$got" == "$2" ]]
}

# check FILE SHA256: verify, and say so.
check() {
  if verify "$1" "$2"; then
    echo "ok       $1"
  elif [[ -f "$1" ]]; then
    echo "MISMATCH $1 (sha256 $(sha256_of "$1"), want $2)" >&2
    return 1
  else
    echo "MISSING  $1" >&2
    return 1
  fi
}

download() { # URL OUT
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    die "need curl or wget"
  fi
}

write_coco80() {
  cat >"$1" <<'NAMES'
person
bicycle
car
motorcycle
airplane
bus
train
truck
boat
traffic light
fire hydrant
stop sign
parking meter
bench
bird
cat
dog
horse
sheep
cow
elephant
bear
zebra
giraffe
backpack
umbrella
handbag
tie
suitcase
frisbee
skis
snowboard
sports ball
kite
baseball bat
baseball glove
skateboard
surfboard
tennis racket
bottle
wine glass
cup
fork
knife
spoon
bowl
banana
apple
sandwich
orange
broccoli
carrot
hot dog
pizza
donut
cake
chair
couch
potted plant
bed
dining table
toilet
tv
laptop
mouse
remote
keyboard
cell phone
microwave
oven
toaster
sink
refrigerator
book
clock
vase
scissors
teddy bear
hair drier
toothbrush
NAMES
}

verify_all() { # DIR
  local dir=$1 bad=0 e name sum
  for e in "${MODELS[@]}"; do
    IFS='|' read -r name sum _ _ _ <<<"$e"
    check "$dir/models/$name" "$sum" || bad=1
  done
  check "$dir/models/coco80.txt" "$COCO80_SHA256" || bad=1
  for e in "${IMAGES[@]}"; do
    IFS='|' read -r name sum <<<"$e"
    check "$dir/images/$name" "$sum" || bad=1
  done
  return $bad
}

fetch_models() { # DIR
  local dir=$1 e name sum repo commit path tmp
  mkdir -p "$dir/models"
  for e in "${MODELS[@]}"; do
    IFS='|' read -r name sum repo commit path <<<"$e"
    verify "$dir/models/$name" "$sum" && continue
    tmp="$dir/models/.$name.part"
    echo "download $repo@${commit:0:12} $path"
    download "https://raw.githubusercontent.com/$repo/$commit/$path" "$tmp" || true
    if ! verify "$tmp" "$sum"; then
      # Git LFS keeps large files behind a pointer; the media host serves them.
      download "https://media.githubusercontent.com/media/$repo/$commit/$path" "$tmp" || true
    fi
    verify "$tmp" "$sum" || { rm -f "$tmp"; die "$name: download failed or sha256 differs"; }
    mv "$tmp" "$dir/models/$name"
  done
  if ! verify "$dir/models/coco80.txt" "$COCO80_SHA256"; then
    write_coco80 "$dir/models/coco80.txt"
  fi
}

fetch_images() { # DIR
  local dir=$1 need=0 e name sum work deb
  for e in "${IMAGES[@]}"; do
    IFS='|' read -r name sum <<<"$e"
    verify "$dir/images/$name" "$sum" || need=1
  done
  [[ $need == 1 ]] || return 0
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  echo "download $SKIMAGE_PKG $SKIMAGE_VERSION"
  if command -v apt-get >/dev/null && (cd "$work" && apt-get download -q "$SKIMAGE_PKG=$SKIMAGE_VERSION" >/dev/null 2>&1); then
    :
  else
    download "$SKIMAGE_URL" "$work/pkg.deb"
  fi
  deb=$(ls "$work"/*.deb | head -n1)
  mkdir -p "$work/x"
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$deb" "$work/x"
  else
    (cd "$work" && ar x "$deb" && tar -xf data.tar.* -C x)
  fi
  mkdir -p "$dir/images"
  for e in "${IMAGES[@]}"; do
    IFS='|' read -r name sum <<<"$e"
    verify "$work/x/$SKIMAGE_DATA/$name" "$sum" || die "$name in $SKIMAGE_PKG: missing or sha256 differs"
    cp "$work/x/$SKIMAGE_DATA/$name" "$dir/images/$name"
  done
}

main() {
  local verify_only=0
  if [[ "${1:-}" == "--verify" ]]; then
    verify_only=1
    shift
  fi
  [[ $# == 1 ]] || die "usage: $0 [--verify] DIR"
  local dir=$1
  if [[ $verify_only == 1 ]]; then
    verify_all "$dir" || die "some files are missing or differ"
    return
  fi
  mkdir -p "$dir"
  fetch_models "$dir"
  fetch_images "$dir"
  verify_all "$dir" || die "some files are missing or differ"
  echo "test data ready: EDGEFLEET_TESTDATA=$dir"
}

main "$@"
