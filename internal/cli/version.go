package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
)

// VersionInfo is what the built-in `version --json` prints.
type VersionInfo struct {
	Version   string `json:"version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	GoVersion string `json:"go_version"`
}

func (p *Program) versionCommand() Command {
	return Command{Name: "version", Summary: "print the version and platform", Run: func(_ context.Context, args []string) error {
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := ParseN(fs, args, 0); err != nil {
			return err
		}
		v := VersionInfo{Version: p.Version, OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
		if v.Version == "" {
			v.Version = Version
		}
		if *asJSON {
			return json.NewEncoder(p.out()).Encode(v)
		}
		_, err := fmt.Fprintf(p.out(), "%s %s %s/%s (%s)\n", p.Name, v.Version, v.OS, v.Arch, v.GoVersion)
		return err
	}}
}
