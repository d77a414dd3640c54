package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"edgefleet/fleet/client"
	"edgefleet/internal/cli"
)

// clientFlags are the flags every API command takes.
type clientFlags struct {
	server, token, config string
	json                  bool
	timeout               time.Duration
	fs                    *flag.FlagSet
}

// register adds the flags that reach fleetd and --json.
func (c *clientFlags) register(fs *flag.FlagSet) {
	c.registerConn(fs)
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
}

// registerConn adds the flags that reach fleetd, without --json: for
// commands that have nothing to print as JSON.
func (c *clientFlags) registerConn(fs *flag.FlagSet) {
	c.fs = fs
	fs.StringVar(&c.server, "server", "", "fleetd URL (env EDGEFLEET_SERVER; default http://127.0.0.1:8080)")
	fs.StringVar(&c.token, "token", "", "operator token (env EDGEFLEET_TOKEN)")
	fs.StringVar(&c.config, "config", "", "config file with server and token (default ~/.config/edgefleet/fleetctl.yaml)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "request timeout (uploads and exports: only when given)")
}

// timeoutSet reports whether --timeout was given.
func (c *clientFlags) timeoutSet() bool {
	set := false
	if c.fs != nil {
		c.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == "timeout" })
	}
	return set
}

// bound bounds ctx by --timeout when it was given, for the calls the
// client leaves unbounded (exports).
func (c *clientFlags) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeoutSet() && c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// fileConfig is the optional fleetctl config file.
type fileConfig struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
}

func loadFileConfig(path string, explicit bool) (fileConfig, error) {
	var fc fileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return fc, nil
		}
		return fc, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// newClient resolves server and token (flag, then env, then config file)
// and returns a client of fleetd. An explicit --timeout also bounds uploads.
func (c *clientFlags) newClient() (*client.Client, error) {
	path, explicit := c.config, c.config != ""
	if !explicit {
		if p := os.Getenv("EDGEFLEET_CONFIG"); p != "" {
			path, explicit = p, true
		} else if dir, err := os.UserConfigDir(); err == nil {
			path = filepath.Join(dir, "edgefleet", "fleetctl.yaml")
		}
	}
	var fc fileConfig
	if path != "" {
		var err error
		if fc, err = loadFileConfig(path, explicit); err != nil {
			return nil, err
		}
	}
	server := first(c.server, os.Getenv("EDGEFLEET_SERVER"), fc.Server, "http://127.0.0.1:8080")
	token := first(c.token, os.Getenv("EDGEFLEET_TOKEN"), fc.Token)
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: server %q is not an http(s) URL", errUsage, server)
	}
	if token == "" {
		return nil, fmt.Errorf("%w: no operator token: set --token, EDGEFLEET_TOKEN or token in the config file", errUsage)
	}
	o := client.Options{Timeout: c.timeout}
	if c.timeout <= 0 {
		o.Timeout = -1
	}
	if c.timeoutSet() {
		o.UploadTimeout = c.timeout
	}
	return client.New(server, token, o)
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// explain adds what to do to the client's errors.
func explain(err error) error {
	var ce *client.Error
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return fmt.Errorf("%w (is it running? set --server or EDGEFLEET_SERVER)", err)
	case errors.Is(err, client.ErrUnauthorized) && errors.As(err, &ce):
		return fmt.Errorf("fleetd refused the operator token (check --token or EDGEFLEET_TOKEN): %s", ce.Reason)
	case errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "did not answer"):
		return fmt.Errorf("%w (--timeout)", err)
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseFlags parses args (flags may follow the arguments) and wants
// exactly want arguments; see cli.ParseN.
func parseFlags(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	return cli.ParseN(fs, args, want)
}
