// Command fakeagent stands for an edge-agent build in the firmware tests. Its
// behaviour is stamped at build time with -ldflags "-X main.mode=...":
//
//	good   journals its start, commits its trial (reporting finished trials as
//	       JSON files in <data>/outbox/), then installs any bundle dropped in
//	       <data>/inbox/*.bundle, or runs any api.Command in <data>/inbox/*.cmd
//	       through firmware.Updater (downloaded with the device credentials in
//	       $FAKEAGENT_DEVICE and $FAKEAGENT_TOKEN), and exits with
//	       slot.ExitSwitch
//	crash  exits with status 3 at start
//	hang   journals its start and never reports healthy (ignores SIGTERM)
//
// It links nothing of the agent: its version is stamped in main.version (and,
// for bundle.ForBinary, the build's -ldflags also name bundle.VersionVar);
// its "spool" is a journal file, spool/events.log in the data directory,
// one line per start: version@slot.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"edgefleet/firmware"
	"edgefleet/firmware/bundle"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
	"edgefleet/models/manifest"
)

var (
	mode    = "good"
	version = "dev"
)

// configSchema is the config schema this stand-in claims (edge-agent's is
// agent.ConfigSchema).
const configSchema = 1

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		// As edge-agent version --json prints it.
		fmt.Printf(`{"version":%q,"os":%q,"arch":%q,"config_schema":%d,"go_version":%q}`+"\n",
			version, runtime.GOOS, runtime.GOARCH, configSchema, runtime.Version())
		return nil
	}
	if mode == "crash" {
		os.Exit(3)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if mode == "hang" {
		signal.Ignore(syscall.SIGTERM)
	}
	s, slotName, ok, err := slot.FromEnv()
	if err != nil || !ok {
		return fmt.Errorf("not under the launcher: %v", err)
	}
	data := s.Dir()
	if err := journal(data, version+"@"+slotName); err != nil {
		return err
	}
	if mode == "hang" {
		select {}
	}
	keys, err := manifest.LoadKeySet(filepath.Join(data, "keys"))
	if err != nil {
		return err
	}
	outbox := filepath.Join(data, "outbox")
	if err := os.MkdirAll(outbox, 0o755); err != nil {
		return err
	}
	n := 0
	report := func(_ context.Context, st api.JobStatus) error {
		if st.DeviceID == "" {
			st.DeviceID = os.Getenv("FAKEAGENT_DEVICE")
		}
		if st.Time == 0 {
			st.Time = time.Now().UnixMilli()
		}
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		n++
		name := fmt.Sprintf("%d-%d-%03d", time.Now().UnixNano(), os.Getpid(), n)
		tmp := filepath.Join(outbox, "."+name)
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(outbox, name+".json"))
	}
	u, err := firmware.New(firmware.Options{Keys: keys, DeviceID: os.Getenv("FAKEAGENT_DEVICE"), Report: report, MaxBoots: 2})
	if err != nil {
		return err
	}
	if err := u.Healthy(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
		bundles, _ := filepath.Glob(filepath.Join(data, "inbox", "*.bundle"))
		for _, p := range bundles {
			err := install(ctx, s, keys, p)
			os.Remove(p)
			if err != nil {
				os.WriteFile(p+".err", []byte(err.Error()), 0o644)
				continue
			}
			os.Exit(slot.ExitSwitch)
		}
		cmds, _ := filepath.Glob(filepath.Join(data, "inbox", "*.cmd"))
		for _, p := range cmds {
			b, err := os.ReadFile(p)
			os.Remove(p)
			var c api.Command
			if err == nil {
				err = api.Decode(b, &c)
			}
			if err != nil {
				return fmt.Errorf("command %s: %w", p, err)
			}
			if c.Kind == api.CommandRollback {
				_, err = u.Rollback(ctx, c)
			} else {
				err = update(ctx, u, c, report)
			}
			if errors.Is(err, firmware.ErrRestart) {
				os.Exit(slot.ExitSwitch)
			}
		}
	}
}

// update runs a firmware_update command as the agent does, with a plain
// download (the agent's resumes, retries and caps; not needed here).
func update(ctx context.Context, u *firmware.Updater, c api.Command, report func(context.Context, api.JobStatus) error) error {
	err := fetchInstall(ctx, u, c)
	if err != nil {
		report(ctx, api.JobStatus{JobID: c.JobID, State: api.JobFailed, Reason: err.Error()})
		return err
	}
	report(ctx, api.JobStatus{JobID: c.JobID, State: api.JobHealthCheck, Reason: "restarting into the new version"})
	return firmware.ErrRestart
}

func fetchInstall(ctx context.Context, u *firmware.Updater, c api.Command) error {
	if _, err := u.Check(c); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Artifact.URL, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(os.Getenv("FAKEAGENT_DEVICE"), os.Getenv("FAKEAGENT_TOKEN"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download: %s", resp.Status)
	}
	return u.Install(ctx, c, resp.Body)
}

func install(ctx context.Context, s *slot.Slots, keys manifest.KeySet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := bundle.ReadHeader(f)
	if err != nil {
		return err
	}
	_, err = s.Install(ctx, h, f, slot.InstallOptions{Keys: keys, JobID: strings.TrimSuffix(filepath.Base(path), ".bundle"), Window: 2 * time.Second, MaxBoots: 2})
	return err
}

// journal appends line to <data>/spool/events.log and fsyncs it: the data
// an agent keeps outside its slots.
func journal(data, line string) error {
	dir := filepath.Join(data, "spool")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "events.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
