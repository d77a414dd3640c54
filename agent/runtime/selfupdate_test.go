package runtime

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"edgefleet/agent/config"
	"edgefleet/agent/update"
	"edgefleet/firmware/firmwaretest"
	"edgefleet/firmware/slot"
	"edgefleet/fleet/api"
)

// TestOpenFirmware checks how the agent sets firmware updates up from its
// config and the environment edge-launcher gives it.
func TestOpenFirmware(t *testing.T) {
	data := t.TempDir()
	sl, err := slot.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Seed(t.Context(), strings.NewReader("not really an agent"), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	keyDir := t.TempDir()
	firmwaretest.NewSigner(t).WritePublicKey(t, keyDir)
	empty := t.TempDir()
	link, err := os.MkdirTemp(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(link, "data")
	if err := os.Symlink(data, alias); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		env       map[string]string
		fw        config.Firmware
		wantErr   string // in openFirmware's error
		updater   bool   // firmware_update commands run
		committer bool   // a trial is committed once healthy
		off       string // in the refusal reason
	}{
		{"not launched", nil, config.Firmware{Keys: []string{keyDir}}, "", false, false, "does not run under edge-launcher"},
		{"not launched, data_dir set", nil, config.Firmware{Keys: []string{keyDir}, DataDir: data}, "", false, false, "does not run under edge-launcher"},
		{"launched", map[string]string{slot.EnvDataDir: data, slot.EnvSlot: slot.A}, config.Firmware{Keys: []string{keyDir}}, "", true, true, ""},
		{"launched, same data_dir by another path", map[string]string{slot.EnvDataDir: data, slot.EnvSlot: slot.A}, config.Firmware{Keys: []string{keyDir}, DataDir: alias}, "", true, true, ""},
		{"launched without keys", map[string]string{slot.EnvDataDir: data, slot.EnvSlot: slot.A}, config.Firmware{}, "", false, true, "no firmware.keys"},
		{"data_dir differs", map[string]string{slot.EnvDataDir: data, slot.EnvSlot: slot.A}, config.Firmware{Keys: []string{keyDir}, DataDir: empty}, "firmware.data_dir " + empty + ": edge-launcher runs this agent from " + data, false, false, ""},
		{"no key in the folder", map[string]string{slot.EnvDataDir: data, slot.EnvSlot: slot.A}, config.Firmware{Keys: []string{empty}}, "firmware.keys: manifest: load key set: no public keys", false, false, ""},
		{"missing key file", map[string]string{slot.EnvDataDir: data, slot.EnvSlot: slot.A}, config.Firmware{Keys: []string{filepath.Join(empty, "fleet.pub")}}, "firmware.keys", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(slot.EnvDataDir, "")
			t.Setenv(slot.EnvSlot, "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := &config.Config{DeviceID: "box-1", Firmware: tt.fw}
			cfg.Firmware.MaxBoots = 2
			fw, err := openFirmware(cfg, update.NewDownloader(update.DownloadOptions{}), update.ReporterFunc(func(context.Context, api.JobStatus) error { return nil }), slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (fw.u != nil) != tt.updater || (fw.slots != nil) != tt.committer {
				t.Errorf("updater %v, committer %v; want %v, %v", fw.u != nil, fw.slots != nil, tt.updater, tt.committer)
			}
			if tt.off != "" && (fw.off == nil || !strings.Contains(fw.off.Error(), tt.off)) {
				t.Errorf("refusal reason %v, want %q", fw.off, tt.off)
			}
		})
	}
}
