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
//
// After install or rollback, restart the service to start the new slot.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"edgefleet/firmware/bundle"
	"edgefleet/firmware/launcher"
	"edgefleet/firmware/slot"
	"edgefleet/models/manifest"
)

const defaultData = "/var/lib/edge-agent"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge-launcher:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: edge-launcher <command> [flags]

commands:
  run [--data DIR] [-- AGENT-ARGS...]    supervise the agent from its active slot
  seed [--data DIR] [--version V] BIN    first installation into slot A
  install [--data DIR] --keys K BUNDLE   install a signed agent bundle
  status [--data DIR] [--json]           show the slots and the trial
  rollback [--data DIR]                  go back to the previous slot
`)
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stderr)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	data := fs.String("data", defaultData, "data directory (slots, state, and the agent's spool and models)")
	switch args[0] {
	case "run":
		stopTimeout := fs.Duration("stop-timeout", 10*time.Second, "time between SIGTERM and SIGKILL when stopping the agent")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		s, err := slot.Open(*data)
		if err != nil {
			return err
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		return launcher.Run(ctx, s, launcher.Options{Args: fs.Args(), StopTimeout: *stopTimeout, Log: log})
	case "seed":
		version := fs.String("version", "", "version of the binary (default: the version stamped in it)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("seed: want one binary")
		}
		return seed(ctx, *data, fs.Arg(0), *version)
	case "install":
		keys := fs.String("keys", "", "pinned public key file or directory of *.pub files (required)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 || *keys == "" {
			return errors.New("install: want --keys and one bundle")
		}
		return install(ctx, *data, *keys, fs.Arg(0), stdout)
	case "status":
		asJSON := fs.Bool("json", false, "print the state as JSON")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return status(*data, *asJSON, stdout)
	case "rollback":
		if err := fs.Parse(args[1:]); err != nil {
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
	default:
		usage(os.Stderr)
		return fmt.Errorf("unknown command %q", args[0])
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
