package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/fleet/api/rest"
	"edgefleet/models/manifest"
)

func init() {
	commands["firmware push"] = command{"upload and sign an agent binary: firmware push FILE [--name edge-agent] [--arch A] [--version V]", firmwarePush}
	commands["firmware list"] = command{"list stored agent bundles", firmwareList}
	commands["firmware bundle"] = command{"write a signed bundle file offline: firmware bundle FILE --key K -o OUT", firmwareBundle}
}

// agentVersion is what `edge-agent version --json` prints.
type agentVersion struct {
	Version      string `json:"version"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	ConfigSchema int    `json:"config_schema"`
	GoVersion    string `json:"go_version"`
}

// qemuNames maps GOARCH to the qemu user emulator's name.
var qemuNames = map[string]string{"arm64": "aarch64", "arm": "arm", "amd64": "x86_64", "386": "i386", "riscv64": "riscv64"}

// probeBinary reads what an agent binary is: the ELF header and Go build
// info, then `FILE version --json` run here (natively, or under
// qemu-<arch>-static for another architecture when it is installed). The
// binary's own report must agree with its ELF header, and so must the
// declared arch and version when given.
func probeBinary(ctx context.Context, path, declaredArch, declaredVersion, qemu string) (agentVersion, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return agentVersion{}, "", err
	}
	info, err := bundle.Inspect(f)
	f.Close()
	if err != nil {
		return agentVersion{}, "", err
	}
	if declaredArch != "" && declaredArch != info.Arch {
		return agentVersion{}, "", fmt.Errorf("%w: declared arch %s, but %s is an ELF binary for %s", bundle.ErrPlatform, declaredArch, path, info.Arch)
	}
	v := agentVersion{Version: info.Version, OS: info.OS, Arch: info.Arch}
	how := "build info"
	if ran, by, err := runVersion(ctx, path, info.Arch, qemu); err == nil {
		if ran.OS != info.OS || ran.Arch != info.Arch {
			return agentVersion{}, "", fmt.Errorf("%w: %s reports %s/%s, its ELF header says %s/%s", bundle.ErrPlatform, path, ran.OS, ran.Arch, info.OS, info.Arch)
		}
		v, how = ran, by
	}
	switch {
	case declaredVersion != "" && v.Version != "" && v.Version != "dev" && declaredVersion != v.Version:
		return agentVersion{}, "", fmt.Errorf("--version %s, but the binary says it is %s (from %s)", declaredVersion, v.Version, how)
	case declaredVersion != "":
		v.Version = declaredVersion
	case v.Version == "" || v.Version == "dev":
		return agentVersion{}, "", fmt.Errorf("%w: %s has no stamped version (build with -ldflags -X %s=V, or give --version)", errUsage, path, bundle.VersionVar)
	}
	return v, how, nil
}

// runVersion runs `path version --json`, under qemu for a foreign arch.
func runVersion(ctx context.Context, path, arch, qemu string) (agentVersion, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return agentVersion{}, "", err
	}
	argv := []string{abs, "version", "--json"}
	by := "edge-agent version --json"
	if runtime.GOOS != "linux" || arch != runtime.GOARCH {
		if qemu == "" {
			q, ok := qemuNames[arch]
			if !ok {
				return agentVersion{}, "", fmt.Errorf("no qemu for %s", arch)
			}
			if qemu, err = exec.LookPath("qemu-" + q + "-static"); err != nil {
				return agentVersion{}, "", err
			}
		}
		argv = append([]string{qemu}, argv...)
		by += " under " + filepath.Base(qemu)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Run(); err != nil {
		return agentVersion{}, "", err
	}
	var v agentVersion
	dec := json.NewDecoder(io.LimitReader(&out, 64<<10))
	if err := dec.Decode(&v); err != nil {
		return agentVersion{}, "", fmt.Errorf("%s: %w", by, err)
	}
	return v, by, nil
}

func firmwarePush(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("firmware push", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	name := fs.String("name", "edge-agent", "bundle name")
	version := fs.String("version", "", "version (default: what the binary reports; must agree)")
	arch := fs.String("arch", "", "declared target GOARCH; refused unless the binary's ELF header says the same")
	qemu := fs.String("qemu", "", "user-mode emulator for a foreign-arch binary (default qemu-<arch>-static from PATH)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	v, how, err := probeBinary(ctx, pos[0], *arch, *version, *qemu)
	if err != nil {
		return fmt.Errorf("firmware push: %w", err)
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("firmware push: %w", err)
	}
	defer f.Close()
	u := rest.Upload{Name: *name, Version: v.Version, OS: v.OS, Arch: v.Arch}
	mv, err := upload(ctx, c, &cf, rest.KindFirmware, u, f, "pushing "+*name+"@"+v.Version, *quiet)
	if err != nil {
		return fmt.Errorf("firmware push: %w", err)
	}
	if cf.json {
		return printJSON(w, mv)
	}
	fmt.Fprintf(w, "pushed %s@%s for %s/%s (version from %s) sha256 %s (%d bytes), signed by key %s\n",
		mv.Name, mv.Version, mv.OS, mv.Arch, how, mv.SHA256, mv.Size, mv.KeyID)
	return nil
}

func firmwareList(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("firmware list", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	c, err := cf.newClient()
	if err != nil {
		return err
	}
	bundles, err := c.Artifacts(ctx, rest.KindFirmware)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(w, bundles)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tPLATFORM\tSIZE\tSHA256\tKEY\tCREATED\tIN USE")
	for _, m := range bundles {
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%.1f MB\t%.12s\t%s\t%s\t%s\n", m.Name, m.Version, m.OS, m.Arch, float64(m.Size)/1e6, m.SHA256,
			dash(m.KeyID), m.CreatedAt.Local().Format(time.DateTime), dash(strings.Join(m.InUse, ",")))
	}
	return tw.Flush()
}

// firmwareBundle signs a binary with a local key into a bundle file, for
// boxes updated by hand (edge-launcher install).
func firmwareBundle(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("firmware bundle", flag.ContinueOnError)
	name := fs.String("name", "edge-agent", "bundle name")
	version := fs.String("version", "", "version (default: what the binary reports; must agree)")
	arch := fs.String("arch", "", "declared target GOARCH; refused unless the binary's ELF header says the same")
	qemu := fs.String("qemu", "", "user-mode emulator for a foreign-arch binary (default qemu-<arch>-static from PATH)")
	keyPath := fs.String("key", "", "private signing key file (required)")
	outPath := fs.String("o", "", "bundle file to write (required)")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if *keyPath == "" || *outPath == "" {
		return fmt.Errorf("%w: firmware bundle needs --key and -o", errUsage)
	}
	priv, keyID, err := manifest.LoadPrivateKey(*keyPath)
	if err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	v, _, err := probeBinary(ctx, pos[0], *arch, *version, *qemu)
	if err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	bin, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	m, err := bundle.ForBinary(bytes.NewReader(bin), int64(len(bin)), *name, v.Version, v.ConfigSchema, time.Now())
	if err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	payload, sig, err := manifest.Sign(priv, keyID, m)
	if err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	var buf bytes.Buffer
	if err := bundle.Write(&buf, bundle.Header{Manifest: payload, Sig: sig, KeyID: keyID}, bytes.NewReader(bin)); err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	if err := os.WriteFile(*outPath, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("firmware bundle: %w", err)
	}
	fmt.Fprintf(w, "wrote %s: %s@%s for %s/%s, min config schema %d, signed by key %s\n", *outPath, m.Name, m.Version, m.OS, m.Arch, m.MinConfigSchema, keyID)
	return nil
}
