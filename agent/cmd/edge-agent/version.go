package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"edgefleet/agent"
	"edgefleet/internal/cli"
)

func init() {
	commands["version"] = command{summary: "print the version, platform and config schema", run: func(ctx context.Context, args []string) error {
		return runVersion(ctx, args, os.Stdout)
	}}
}

// versionInfo is what `edge-agent version --json` prints; fleetctl firmware
// push reads it to build a bundle's manifest.
type versionInfo struct {
	Version      string `json:"version"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	ConfigSchema int    `json:"config_schema"`
	GoVersion    string `json:"go_version"`
}

func runVersion(_ context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := cli.ParseN(fs, args, 0); err != nil {
		return err
	}
	v := versionInfo{Version: agent.Version, OS: runtime.GOOS, Arch: runtime.GOARCH,
		ConfigSchema: agent.ConfigSchema, GoVersion: runtime.Version()}
	if *asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(v)
	}
	_, err := fmt.Fprintf(w, "edge-agent %s %s/%s config schema %d (%s)\n", v.Version, v.OS, v.Arch, v.ConfigSchema, v.GoVersion)
	return err
}
