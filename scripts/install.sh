#!/usr/bin/env bash
# Install edgefleet on this Linux box from the binaries `make cross` built.
#
#   scripts/install.sh agent  [--bin DIR] [--keys DIR] [--config FILE] [--no-start]
#   scripts/install.sh fleetd [--bin DIR] [--config FILE] [--no-start]
#
# agent:  creates the system user edgefleet (in group video), installs
#         edge-launcher to /usr/local/bin and edge-agent to
#         /usr/local/lib/edgefleet/, seeds slot A of the data dir
#         /var/lib/edge-agent (first installation only: later versions come
#         as signed bundles from the fleet), copies the fleet's public keys
#         (*.pub) to /etc/edge-agent/keys/ and the config to
#         /etc/edge-agent/agent.yaml, and enables edge-agent.service.
# fleetd: creates the system user fleetd, installs fleetd and fleetctl to
#         /usr/local/bin, the config to /etc/fleetd/fleetd.yaml, and enables
#         fleetd.service (data in /var/lib/fleetd).
#
# --bin defaults to bin/linux_<arch of this box>. --root DIR installs under
# DIR without creating users or touching systemd (for packaging and tests).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
what=${1:-}
shift || true
case $what in agent|fleetd) ;; *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;; esac

case $(uname -m) in
  aarch64|arm64) arch=arm64 ;;
  armv7l|armv7*|armv8l) arch=arm ;;
  x86_64|amd64) arch=amd64 ;;
  *) echo "install: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
bin="$here/../bin/linux_$arch"
keys="" config="" start=1 root=""
while (($#)); do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    --root) root=$2; start=0; shift 2 ;;
    *) echo "install: unknown flag $1" >&2; exit 2 ;;
  esac
done
if [[ -z $root && $(id -u) != 0 ]]; then
  echo "install: run as root (or with --root DIR)" >&2
  exit 1
fi

need() { [[ -f $1 ]] || { echo "install: $1 missing (run make cross)" >&2; exit 1; }; }

# user NAME [GROUP...]: a system user with no login and no home of its own.
user() {
  local name=$1 home=$2
  shift 2
  [[ -n $root ]] && return 0
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$home" --no-create-home --shell /usr/sbin/nologin "$name"
  fi
  for g in "$@"; do
    getent group "$g" >/dev/null && usermod -a -G "$g" "$name"
  done
}

owner() { # owner USER PATH...
  local u=$1
  shift
  [[ -n $root ]] || chown -R "$u:$u" "$@"
}

unit() {
  install -D -m 0644 "$here/systemd/$1" "$root/etc/systemd/system/$1"
  [[ -n $root ]] && return 0
  if [[ ! -d /run/systemd/system ]]; then
    echo "install: systemd is not running here; enable $1 once it is" >&2
    return 0
  fi
  systemctl daemon-reload
  if ((start)); then systemctl enable --now "$1"; else systemctl enable "$1"; fi
}

case $what in
agent)
  need "$bin/edge-agent"
  need "$bin/edge-launcher"
  user edgefleet /var/lib/edge-agent video
  install -D -m 0755 "$bin/edge-launcher" "$root/usr/local/bin/edge-launcher"
  install -D -m 0755 "$bin/edge-agent" "$root/usr/local/lib/edgefleet/edge-agent"
  install -d -m 0750 "$root/var/lib/edge-agent" "$root/etc/edge-agent" "$root/etc/edge-agent/keys"
  if [[ -n $keys ]]; then
    install -m 0644 "$keys"/*.pub "$root/etc/edge-agent/keys/"
  fi
  if [[ -n $config ]]; then
    install -m 0640 "$config" "$root/etc/edge-agent/agent.yaml"
  elif [[ ! -f $root/etc/edge-agent/agent.yaml ]]; then
    echo "install: no --config; write /etc/edge-agent/agent.yaml before starting" >&2
    start=0
  fi
  if [[ ! -f $root/var/lib/edge-agent/state.json ]]; then
    "$root/usr/local/bin/edge-launcher" seed --data "$root/var/lib/edge-agent" "$root/usr/local/lib/edgefleet/edge-agent" 2>/dev/null ||
      echo "install: seeding from a foreign-arch binary here; run edge-launcher seed on the box" >&2
  else
    echo "install: $root/var/lib/edge-agent already seeded; updates come as signed bundles"
  fi
  owner edgefleet "$root/var/lib/edge-agent"
  [[ -n $root ]] || chgrp -R edgefleet "$root/etc/edge-agent"
  unit edge-agent.service
  ;;
fleetd)
  need "$bin/fleetd"
  need "$bin/fleetctl"
  user fleetd /var/lib/fleetd
  install -D -m 0755 "$bin/fleetd" "$root/usr/local/bin/fleetd"
  install -D -m 0755 "$bin/fleetctl" "$root/usr/local/bin/fleetctl"
  install -d -m 0750 "$root/var/lib/fleetd" "$root/etc/fleetd"
  if [[ -n $config ]]; then
    install -m 0640 "$config" "$root/etc/fleetd/fleetd.yaml"
  elif [[ ! -f $root/etc/fleetd/fleetd.yaml ]]; then
    echo "install: no --config; write /etc/fleetd/fleetd.yaml before starting" >&2
    start=0
  fi
  owner fleetd "$root/var/lib/fleetd"
  [[ -n $root ]] || chgrp -R fleetd "$root/etc/fleetd"
  unit fleetd.service
  ;;
esac
echo "install: $what installed${root:+ under $root}"
