#!/usr/bin/env bash
# make demo: the whole product on one machine, on embedded defaults.
#
#   1. edge-agent detect on the test photos, annotated pictures in demo-out/annotated/
#   2. fleetd (embedded broker, store, console) and two agents, each with a
#      synthetic belt camera carrying the test photos past yolov8n int8
#   3. a rollout of a second model version (yolo11n) to both agents, canary
#      first, watched until it completes
#
# Everything listens on 127.0.0.1 only. It runs until Ctrl-C, or for
# DEMO_SECONDS seconds after the rollout when that is set (CI, smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
TD=$(cd "${EDGEFLEET_TESTDATA:-../shared/testdata}" && pwd)
OUT=$(pwd)/demo-out
SECS=${DEMO_SECONDS:-}
HTTP=127.0.0.1:8080
MQTT=127.0.0.1:1883
TOKEN=demo-operator-token
export EDGEFLEET_SERVER=http://$HTTP EDGEFLEET_TOKEN=$TOKEN

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local until=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > until)); then
      echo "demo: timed out waiting for $what" >&2
      return 1
    fi
    sleep 1
  done
}

for port in ${HTTP##*:} ${MQTT##*:} 9101 9102; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "demo: 127.0.0.1:$port is already in use; stop what listens there first" >&2
    exit 1
  fi
done

rm -rf "$OUT"
mkdir -p "$OUT/annotated" "$OUT/keys"

say "1. edge-agent detect on the test photos"
"$BIN/edge-agent" detect --model "$TD/models/yolov8n_full_integer_quant.tflite" \
  --annotate "$OUT/annotated" --json "$TD"/images/*.png | tee "$OUT/detections.jsonl"
echo "annotated pictures: $OUT/annotated/"

say "2. fleetd and two agents on synthetic cameras"
sed -e "s|^data_dir: .*|data_dir: $OUT/fleetd|" fleet/cmd/fleetd/demo.yaml >"$OUT/fleetd.yaml"
cat >>"$OUT/fleetd.yaml" <<EOF
ota:
  artifact_base: http://$HTTP
EOF
"$BIN/fleetd" --config "$OUT/fleetd.yaml" >"$OUT/fleetd.log" 2>&1 &
pids+=($!)
wait_for 30 "fleetd" curl -fsS "http://$HTTP/healthz"
# fleetd made its signing key (kept in its data dir); the agents pin its public half.
"$BIN/fleetctl" keys export -o "$OUT/keys/fleet.pub" >/dev/null

for i in 1 2; do
  mkdir -p "$OUT/agent-$i"
  cat >"$OUT/agent-$i/agent.yaml" <<EOF
device_id: demo-cam-$i
labels: {site: demo, line: "$i"}
model:
  path: $TD/models/yolov8n_full_integer_quant.tflite
  name: belt-detector
  version: "1"
  threads: 1
cameras:
  - id: belt
    source: synth
    path: $TD/images
    seed: $i
    fps: 1
    lines:   # counted objects: the console's events page and counts chart
      - {id: exit, points: [[0.5, 1], [0.5, 0]]}
spool:
  path: $OUT/agent-$i/spool.db
fleet:
  broker: tcp://$MQTT
  password: demo-cam-$i-password
update:
  keys: [$OUT/keys/fleet.pub]
  artifact_url: http://$HTTP
  policy:
    max_latency_ratio: 4   # version 2 (yolo11n) is a bigger model
telemetry_interval: 5s
http:
  listen: 127.0.0.1:910$i
EOF
  "$BIN/edge-agent" run --config "$OUT/agent-$i/agent.yaml" >"$OUT/agent-$i/agent.log" 2>&1 &
  pids+=($!)
done
online() { [ "$("$BIN/fleetctl" devices list --online true --json | grep -o '"id"' | wc -l)" -ge 2 ]; }
wait_for 90 "both agents online in fleetd" online
"$BIN/fleetctl" devices list

cat <<EOF

Console:     http://$HTTP/  (sign in with the token $TOKEN)
Snapshots:   on each device's page, through fleetd
Metrics:     http://$HTTP/metrics  http://127.0.0.1:9101/metrics
Logs:        $OUT/*.log $OUT/agent-*/agent.log
EOF
sleep 10
"$BIN/fleetctl" detections query --limit 5 || true

say "3. rollout of model version 2 (yolo11n) to the demo agents"
"$BIN/fleetctl" models push "$TD/models/yolo11n_full_integer_quant.tflite" \
  --name belt-detector --version 2 --quiet
"$BIN/fleetctl" rollouts create --model belt-detector@2 --selector site=demo \
  --canary 1 --waves 100% --max-failures 0 --health-window 20s --job-timeout 5m
rollout_done() { "$BIN/fleetctl" rollouts list | grep -Eq 'completed|aborted|rolled_back'; }
wait_for 300 "the rollout to finish" rollout_done || true
"$BIN/fleetctl" rollouts list
"$BIN/fleetctl" devices list
"$BIN/fleetctl" counts --line exit || true   # the belt's objects past the line, per hour

if [ -n "$SECS" ]; then
  sleep "$SECS"
else
  say "running; open the console above. Ctrl-C stops everything."
  wait
fi
