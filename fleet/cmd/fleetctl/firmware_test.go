package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/firmwaretest"
	"edgefleet/models/manifest"
)

func TestFirmwareCommands(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("builds linux/amd64 and arm64 agents and runs the arm64 one under qemu")
	}
	// Build before HOME moves: the go build cache lives under it.
	keyDir, build := t.TempDir(), t.TempDir()
	native := firmwaretest.Build(t, build, "2.0.0", firmwaretest.Good)
	arm64 := firmwaretest.BuildFor(t, build, "2.1.0", firmwaretest.Good, "arm64")
	t.Setenv("EDGEFLEET_CONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	genKey(t, keyDir)
	url := fleetdOTA(t, keyDir)
	auth := []string{"--server", url, "--token", token}

	// An amd64 build whose ELF header claims arm64.
	b, err := os.ReadFile(native)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[18:], uint16(elf.EM_AARCH64))
	lying := filepath.Join(build, "lying")
	os.WriteFile(lying, b, 0o755)
	notELF := filepath.Join(build, "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\necho '{}'\n"), 0o755)
	armBy := "build info"
	if _, err := exec.LookPath("qemu-aarch64-static"); err == nil {
		armBy = "edge-agent version --json under qemu-aarch64-static"
	}
	bundlePath := filepath.Join(build, "agent.bundle")

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		out    []string
		errOut string
	}{
		{"push native", append([]string{"firmware", "push", native, "--quiet"}, auth...), 0,
			[]string{"pushed edge-agent@2.0.0 for linux/amd64 (version from edge-agent version --json)"}, ""},
		{"push arm64", append([]string{"firmware", "push", arm64, "--arch", "arm64", "--quiet"}, auth...), 0,
			[]string{"pushed edge-agent@2.1.0 for linux/arm64 (version from " + armBy + ")"}, ""},
		{"push again", append([]string{"firmware", "push", native}, auth...), 1, nil, "HTTP 409"},
		{"declared arch differs", append([]string{"firmware", "push", arm64, "--arch", "amd64"}, auth...), 1, nil,
			"wrong platform: declared arch amd64, but " + arm64 + " is an ELF binary for arm64"},
		{"ELF header lies", append([]string{"firmware", "push", lying}, auth...), 1, nil, "build info says GOARCH amd64, ELF header arm64"},
		{"not ELF", append([]string{"firmware", "push", notELF}, auth...), 1, nil, "wrong platform"},
		{"version differs", append([]string{"firmware", "push", native, "--version", "9"}, auth...), 1, nil, "--version 9, but the binary says it is 2.0.0"},
		{"list", append([]string{"firmware", "list"}, auth...), 0, []string{"edge-agent  2.1.0    linux/arm64", "edge-agent  2.0.0    linux/amd64"}, ""},
		{"rollout", append([]string{"rollouts", "create", "--firmware", "edge-agent@2.0.0", "--selector", "site=a"}, auth...), 0, nil, ""},
		{"bundle", []string{"firmware", "bundle", native, "--key", filepath.Join(keyDir, "fleet.key"), "-o", bundlePath}, 0,
			[]string{"edge-agent@2.0.0 for linux/amd64, min config schema 1"}, ""},
		{"bundle no key", []string{"firmware", "bundle", native, "-o", bundlePath}, 2, nil, "needs --key and -o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := fleetctl(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tc.errOut) {
				t.Errorf("stderr lacks %q:\n%s", tc.errOut, errOut)
			}
		})
	}

	// The offline bundle verifies with the pinned key and carries the binary.
	keys, err := manifest.LoadKeySet(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := bundle.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bundle.Check(keys, h, bundle.Target{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(native)
	var got bytes.Buffer
	if err := bundle.Copy(&got, f, m); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("bundle payload: %v (%d bytes, want %d)", err, got.Len(), len(want))
	}
}
