package runtime

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"edgefleet/agent/config"
	"edgefleet/agent/engine"
	"edgefleet/agent/shadow"
	"edgefleet/agent/update"
	"edgefleet/models"
	"edgefleet/models/manifest"
	"edgefleet/models/meta"
	"edgefleet/models/yolo"
)

// modelFile is a model to serve: its bytes, where they came from, and its
// signed manifest (nil for the configured model or one adopted from it).
type modelFile struct {
	data          []byte
	path          string
	man           *manifest.Manifest
	name, version string
}

// openServing loads the model to serve. With update.keys it builds the
// executor, adopts the configured model as the last known good one when
// update.dir records none, and serves the model update.dir names current.
func (r *Runtime) openServing(ctx context.Context) error {
	m := r.cfg.Model
	cfgData, err := os.ReadFile(m.Path)
	if err != nil {
		return fmt.Errorf("model.path: %w", err)
	}
	labels, _, err := meta.Labels(m.Labels, cfgData)
	if err != nil {
		return fmt.Errorf("model.labels: %w", err)
	}
	engOpts := models.Options{Threads: m.Threads, Delegate: m.Delegate, Strict: m.Strict, Library: m.Library}
	open := func(ctx context.Context, b []byte, o models.Options) (models.Engine, error) {
		return engine.Open(ctx, m.Backend, b, o)
	}
	configured := modelFile{data: cfgData, path: m.Path, name: m.Name, version: m.Version}
	mf := configured
	if r.cfg.Update.Enabled() {
		if r.updates, err = newExecutor(r.cfg, r.dl, r.jobs, open, engOpts, &r.shadow, r.log); err != nil {
			return err
		}
		if err := r.updates.Seed(ctx, m.Path, m.Name, m.Version); err != nil {
			return fmt.Errorf("update.dir %s: %w", r.cfg.Update.Dir, err)
		}
		mf = r.currentModel(configured)
	} else {
		r.log.Info("updates disabled: no update.keys configured")
	}

	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	eng, err := open(lctx, mf.data, engOpts)
	if err != nil && mf.path != m.Path {
		r.log.Error("the current model in update.dir does not open; running model.path", "path", mf.path, "err", err)
		mf = configured
		eng, err = open(lctx, mf.data, engOpts)
	}
	if err != nil {
		return fmt.Errorf("model.path %s: %w", mf.path, err)
	}
	man := mf.man
	if man != nil && len(man.Labels) == 0 {
		// A manifest without labels: the names embedded in the model.
		if l := update.Labels(nil, mf.data); len(l) > 0 {
			c := *man
			c.Labels = l
			man = &c
		}
	}
	r.serving, err = update.NewServing(eng, man, yolo.Options{
		Params: yolo.Params{Conf: m.Conf, IoU: m.IoU}, Labels: labels, Batch: m.Batch, Workers: m.Threads,
	})
	if err != nil {
		eng.Close()
		return fmt.Errorf("model.path %s: %w", mf.path, err)
	}
	r.serving.SetName(mf.name, mf.version)
	if r.updates != nil {
		r.updates.Attach(r.serving, r.serving)
	}
	name, version := r.serving.Model()
	info := r.serving.EngineInfo()
	r.log.Info("model loaded", "model", name, "model_version", version,
		"engine", info.Engine, "delegate", info.Delegate, "engine_version", info.Version, "threads", info.Threads)
	return nil
}

// currentModel is the model update.dir names current, else configured.
func (r *Runtime) currentModel(configured modelFile) modelFile {
	cur, curPath, ok := r.updates.Current()
	if !ok {
		return configured
	}
	b, err := os.ReadFile(curPath)
	switch {
	case err != nil:
		r.log.Error("the current model in update.dir cannot be read; running model.path", "path", curPath, "err", err)
		return configured
	case cur.Signed() == nil && cur.SHA256 != sha256Hex(configured.data):
		// Seed adopts model.path only into an empty update.dir.
		r.log.Warn("model.path differs from the model adopted into update.dir earlier; running that one (remove update.dir to adopt model.path)",
			"model_path", configured.path, "running", curPath, "model", cur.Name, "model_version", cur.Version)
		return modelFile{data: b, path: curPath, name: cur.Name, version: cur.Version}
	}
	mf := modelFile{data: b, path: curPath, man: cur.Signed(), name: configured.name, version: configured.version}
	if mf.man != nil {
		r.log.Info("running the model installed by an update (update.dir), not model.path",
			"model", mf.man.Name, "model_version", mf.man.Version, "path", curPath)
	}
	return mf
}

// newExecutor builds the update executor from cfg.Update; its reports go
// out through jobs.
func newExecutor(cfg *config.Config, dl *update.Downloader, jobs update.Reporter, open models.Opener, engOpts models.Options, tap *shadow.Hub, log *slog.Logger) (*update.Executor, error) {
	u := cfg.Update
	keys, err := manifest.LoadKeySet(u.Keys...)
	if err != nil {
		return nil, fmt.Errorf("update.keys: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("update.keys: no public key in %v", u.Keys)
	}
	if u.ArtifactURL == "" && cfg.Fleet.Broker != "" {
		log.Info("no update.artifact_url: only absolute artifact URLs can be downloaded")
	}
	minDet := *u.Policy.MinDetectionRatio
	if minDet == 0 {
		minDet = -1 // off, in update.HealthPolicy's terms
	}
	x, err := update.New(update.Options{
		Dir: u.Dir, DeviceID: cfg.DeviceID, Token: secret(cfg), Keys: keys, Reporter: jobs,
		Open: open, EngineOptions: engOpts, Downloader: dl, Shadow: tap, SmokeBudget: u.SmokeBudget, HealthWindow: u.HealthWindow,
		Policy: update.HealthPolicy{
			MaxErrors: u.Policy.MaxErrors, MinFrames: u.Policy.MinFrames,
			MaxLatencyRatio: u.Policy.MaxLatencyRatio, MinDetectionRatio: minDet,
		},
		Logger: log.With("component", "update"),
	})
	if err != nil {
		return nil, fmt.Errorf("update.dir %s: %w", u.Dir, err)
	}
	log.Info("updates enabled", "dir", u.Dir, "keys", keys.IDs(), "artifact_url", u.ArtifactURL)
	return x, nil
}

// newDownloader is the one downloader of the device's updates (models and
// firmware bundles): the device's credentials, update.artifact_url for
// relative URLs, fleet.ca_file for TLS, update.max_attempts and
// update.stall_timeout.
func newDownloader(cfg *config.Config, log *slog.Logger, identity func(*http.Client)) (*update.Downloader, error) {
	client, err := artifactClient(cfg.Fleet.CAFile)
	if err != nil {
		return nil, err
	}
	identity(client) // the device certificate, when it has one
	u := cfg.Update
	return update.NewDownloader(update.DownloadOptions{
		Client: client, DeviceID: cfg.DeviceID, Token: secret(cfg), BaseURL: u.ArtifactURL,
		MaxAttempts: u.MaxAttempts, StallTimeout: u.StallTimeout, Logger: log.With("component", "download"),
	}), nil
}

// artifactClient is the HTTP client for artifact downloads, trusting the
// roots in fleet.ca_file when set (else the system's).
func artifactClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Transport: boundedTransport(nil)}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("fleet.ca_file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("fleet.ca_file %s: no PEM certificate in it", caFile)
	}
	return &http.Client{Transport: boundedTransport(roots)}, nil
}

// boundedTransport bounds each step of a download but its body (roots nil:
// the system's).
func boundedTransport(roots *x509.CertPool) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		IdleConnTimeout:       time.Minute,
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
