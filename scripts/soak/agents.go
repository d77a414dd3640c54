package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"edgefleet/agent/runtime"
	"edgefleet/agent/spool"
	"edgefleet/internal/faultnet"
)

// spoolMaxBytes is the agents' spool cap: small, so that a long partition
// reaches it within a soak, and so that bbolt grows the file in small steps
// (a full disk is then met at the next step).
const spoolMaxBytes = 4 << 20

// agent is one real edge-agent process and the proxy between it and the
// broker.
type agent struct {
	*proc
	id     string
	dir    string
	spool  string
	mqtt   *faultnet.Proxy
	tmpfs  string // mount point of its spool's filesystem, "" if none
	filler string // file that fills the tmpfs
	clock  string // file with the agent's clock offset (agent/runtime.ClockOffsetEnv)
	fwData string // edge-launcher's data dir when the agent runs under it
}

// startAgent writes agent i's config and starts it. Agent 0 keeps its
// spool on a small tmpfs when the soak may mount one (root), so that the
// disk can be filled; odd agents read a folder of images (files camera),
// even ones a synthetic belt; the last of two or more runs under
// edge-launcher (label fw=launcher), seeded with the agent stamped fwOld,
// for the firmware rollout.
func (s *soak) startAgent(i int) (*agent, error) {
	id := fmt.Sprintf("soak-agent-%d", i+1)
	a := &agent{id: id, dir: filepath.Join(s.dir, id)}
	os.MkdirAll(a.dir, 0o755)
	a.spool = filepath.Join(a.dir, "spool.db")
	if i == 0 {
		if err := a.mountTmpfs(); err != nil {
			s.log.Info("spool disk-full faults skipped: cannot mount a tmpfs", "err", err)
		}
	}
	var err error
	if a.mqtt, err = faultnet.Listen(s.ctx, s.mq, s.seed+uint64(i)); err != nil {
		return nil, err
	}
	s.proxies = append(s.proxies, a.mqtt)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	camera := fmt.Sprintf("{id: belt, source: synth, path: %s, seed: %d, fps: 2}", s.images, i+1)
	if i%2 == 1 {
		camera = fmt.Sprintf("{id: folder, source: files, path: %s, fps: 1}", s.images)
	}
	fw, fwLabel := "", ""
	if i > 0 && i == s.nAgent-1 {
		a.fwData = filepath.Join(a.dir, "launcher")
		fw, fwLabel = fmt.Sprintf("firmware: {data_dir: %s, max_boots: 3}\n", a.fwData), ", fw: launcher"
	}
	cfg := filepath.Join(a.dir, "agent.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `device_id: %s
labels: {site: soak, line: "%d"%s}
model: {path: %s, name: belt-detector, version: "1", threads: 1}
cameras:
  - %s
spool: {path: %s, max_bytes: %d, max_age: 1h}
fleet: {broker: "tcp://%s", password: %s}
update:
  keys: [%s]
  artifact_url: http://%s
  health_window: 5s
  policy: {max_latency_ratio: 4}
telemetry_interval: 5s
http: {listen: "127.0.0.1:%d"}
%s`, id, i+1, fwLabel, s.model, camera, a.spool, spoolMaxBytes, a.mqtt.Addr(), agentPass(id), s.keyFile, s.httpProxy.Addr(), port, fw), 0o600)
	a.clock = filepath.Join(a.dir, "clock-offset")
	a.proc = &proc{name: id, bin: s.bins["edge-agent"], args: []string{"run", "--config", cfg}, env: []string{runtime.ClockOffsetEnv + "=" + a.clock},
		log: filepath.Join(a.dir, "agent.log"), metrics: fmt.Sprintf("127.0.0.1:%d", port)}
	if a.fwData != "" {
		if out, err := exec.Command(s.bins["edge-launcher"], "seed", "--data", a.fwData, s.bins["edge-agent-"+fwOld]).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("soak: edge-launcher seed: %v: %s", err, out)
		}
		a.name = id + " (edge-launcher)"
		a.bin, a.child = s.bins["edge-launcher"], true
		a.args = append([]string{"run", "--data", a.fwData, "--stop-timeout", "5s", "--"}, a.args...)
	}
	if err := a.start(); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, a.proc)
	return a, nil
}

// mountTmpfs puts the agent's spool on a 16 MiB tmpfs.
func (a *agent) mountTmpfs() error {
	mp := filepath.Join(a.dir, "spoolfs")
	os.MkdirAll(mp, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mp).CombinedOutput(); err != nil {
		return fmt.Errorf("mount tmpfs: %v: %s", err, out)
	}
	a.tmpfs = mp
	a.spool = filepath.Join(mp, "spool.db")
	a.filler = filepath.Join(mp, "filler")
	return nil
}

// setClock steps the agent's spool clock to system time + off.
func (a *agent) setClock(off time.Duration) error {
	return os.WriteFile(a.clock, []byte(off.String()), 0o644)
}

// fill writes the filler until the tmpfs is full.
func (a *agent) fill() error {
	f, err := os.OpenFile(a.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// unfill frees the tmpfs again.
func (a *agent) unfill() error { return os.Remove(a.filler) }

// unmount removes the tmpfs (at the end, after the agent stopped).
func (a *agent) unmount() {
	if a.tmpfs != "" {
		exec.Command("umount", "-l", a.tmpfs).Run()
	}
}

// spoolStats opens the agent's spool after it stopped: its last seq, what
// it counted as dropped over the file's life, and which seqs those were.
func (a *agent) spoolStats() (spool.Stats, spool.DroppedSeqs, error) {
	if a.filler != "" {
		os.Remove(a.filler)
	}
	sp, err := spool.Open(a.spool, spool.Options{MaxBytes: spoolMaxBytes})
	if err != nil {
		return spool.Stats{}, spool.DroppedSeqs{}, fmt.Errorf("soak: open %s's spool: %w", a.id, err)
	}
	defer sp.Close()
	return sp.Stats(), sp.DroppedSeqs(), nil
}
