// Command edge-launcher starts edge-agent from its active A/B slot and rolls
// a trial version back when it crashes, hangs or never reports healthy (see
// edgefleet/firmware/launcher). It is the main process of the edge-agent
// systemd unit and is itself never updated through the slots.
//
//	edge-launcher run [--data DIR] [-- AGENT-ARGS...]   supervise the agent
//	edge-launcher seed [--data DIR] [--version V] BINARY first installation into slot A
//	edge-launcher install [--data DIR] --keys K BUNDLE  install a signed bundle (e.g. from a USB stick)
//	edge-launcher status [--data DIR] [--json]          show the slots and the trial
//	edge-launcher rollback [--data DIR]                 go back to the previous slot
//	edge-launcher version [--json]                      print the version
//
// --data may also come before the command. After install or rollback,
// restart the service to start the new slot. The grammar (help, exit
// statuses 0/1/2) is edgefleet/internal/cli's.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/launcher"
	"edgefleet/firmware/slot"
	"edgefleet/internal/cli"
	"edgefleet/models/manifest"
)

const defaultData = "/var/lib/edge-agent"

func main() {
	program(os.Stdout, os.Stderr).Main()
}

// program is edge-launcher's command tree; --data is global.
func program(stdout, stderr io.Writer) *cli.Program {
	return &cli.Program{
		Name:     "edge-launcher",
		Summary:  "edge-launcher starts edge-agent from its active A/B slot and rolls a trial version back when it fails.",
		Commands: commands(stdout),
		Globals:  func(fs *flag.FlagSet) { dataFlag(fs) },
		Stdout:   stdout,
		Stderr:   stderr,
	}
}

func dataFlag(fs *flag.FlagSet) *string {
	return fs.String("data", defaultData, "data `directory` (slots, state, and the agent's spool and models)")
}

func commands(stdout io.Writer) []cli.Command {
	return []cli.Command{
		{Name: "run", Args: "[-- AGENT-ARGS...]", Summary: "supervise the agent from its active slot", Run: func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			data := dataFlag(fs)
			stopTimeout := fs.Duration("stop-timeout", 10*time.Second, "time between SIGTERM and SIGKILL when stopping the agent")
			agentArgs, err := cli.Parse(fs, args)
			if err != nil {
				return err
			}
			s, err := slot.Open(*data)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return launcher.Run(ctx, s, launcher.Options{Args: agentArgs, StopTimeout: *stopTimeout, Log: log})
		}},
		{Name: "seed", Args: "BINARY", Summary: "first installation into slot A", Run: func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("seed", flag.ContinueOnError)
			data := dataFlag(fs)
			version := fs.String("version", "", "version of the binary (default: the version stamped in it)")
			pos, err := cli.ParseN(fs, args, 1)
			if err != nil {
				return err
			}
			return seed(ctx, *data, pos[0], *version)
		}},
		{Name: "install", Args: "--keys K BUNDLE", Summary: "install a signed agent bundle (e.g. from a USB stick)", Run: func(ctx context.Context, args []string) error {
			fs := flag.NewFlagSet("install", flag.ContinueOnError)
			data := dataFlag(fs)
			keys := fs.String("keys", "", "pinned public key file or directory of *.pub files (required)")
			pos, err := cli.ParseN(fs, args, 1)
			if err != nil {
				return err
			}
			if *keys == "" {
				return cli.Usagef("--keys is required")
			}
			return install(ctx, *data, *keys, pos[0], stdout)
		}},
		{Name: "status", Summary: "show the slots and the trial", Run: func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("status", flag.ContinueOnError)
			data := dataFlag(fs)
			asJSON := fs.Bool("json", false, "print the state as JSON")
			if _, err := cli.ParseN(fs, args, 0); err != nil {
				return err
			}
			return status(*data, *asJSON, stdout)
		}},
		{Name: "rollback", Summary: "go back to the previous slot", Run: func(_ context.Context, args []string) error {
			fs := flag.NewFlagSet("rollback", flag.ContinueOnError)
			data := dataFlag(fs)
			if _, err := cli.ParseN(fs, args, 0); err != nil {
				return err
			}
			s, err := slot.Open(*data)
			if err != nil {
				return err
			}
			o, err := s.Revert("rolled back by edge-launcher rollback")
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "rolled back from %s; restart the service to run the previous slot\n", o.Version)
			return nil
		}},
	}
}

func seed(ctx context.Context, data, bin, version string) error {
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer f.Close()
	info, err := bundle.Inspect(f)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if info.OS != "linux" || info.Arch != runtime.GOARCH {
		return fmt.Errorf("seed: %w: %s is for %s/%s", bundle.ErrPlatform, bin, info.OS, info.Arch)
	}
	if version == "" {
		version = info.Version
	}
	if version == "" {
		version = selfReported(ctx, bin)
	}
	if version == "" {
		version = "unknown"
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	s, err := slot.Open(data)
	if err != nil {
		return err
	}
	return s.Seed(ctx, f, version)
}

// selfReported runs `bin version --json` (edge-agent's) and returns the
// version it prints, or "" (builds with -trimpath keep no -ldflags in their
// build info, so the stamped version is only known by asking).
func selfReported(ctx context.Context, bin string) string {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, abs, "version", "--json").Output()
	if err != nil {
		return ""
	}
	var v struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(out, &v) != nil {
		return ""
	}
	return v.Version
}

func install(ctx context.Context, data, keysPath, path string, stdout io.Writer) error {
	keys, err := manifest.LoadKeySet(keysPath)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer f.Close()
	h, err := bundle.ReadHeader(f)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	s, err := slot.Open(data)
	if err != nil {
		return err
	}
	// No job id: a local install has no fleet job to report to.
	m, err := s.Install(ctx, h, f, slot.InstallOptions{Keys: keys})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "installed %s %s (%s/%s) on trial; restart the service to start it\n", m.Name, m.Version, m.OS, m.Arch)
	return nil
}

func status(data string, asJSON bool, w io.Writer) error {
	s, err := slot.Open(data)
	if err != nil {
		return err
	}
	st, err := s.State()
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	for _, name := range []string{slot.A, slot.B} {
		info, ok := st.Slots[name]
		mark := " "
		if name == st.Active {
			mark = "*"
		}
		if !ok {
			fmt.Fprintf(w, "%s %s  (empty)\n", mark, name)
			continue
		}
		fmt.Fprintf(w, "%s %s  %-16s sha256 %.12s  installed %s\n", mark, name, info.Version, info.SHA256, info.InstalledAt.Format(time.RFC3339))
	}
	if st.Trial {
		fmt.Fprintf(w, "trial: boot %d of %d, deadline %s\n", st.BootCount, st.MaxBoots, st.Deadline.Format(time.RFC3339))
	}
	for _, o := range st.Outcomes {
		job := o.JobID
		if job == "" {
			job = "- (local)"
		}
		fmt.Fprintf(w, "outcome: job %s %s %s %s\n", job, o.Version, o.State, o.Reason)
	}
	return nil
}
