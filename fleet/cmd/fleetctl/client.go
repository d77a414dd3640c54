package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// clientFlags are the flags every API command takes.
type clientFlags struct {
	server, token, config string
	json                  bool
	timeout               time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "fleetd URL (env EDGEFLEET_SERVER; default http://127.0.0.1:8080)")
	fs.StringVar(&c.token, "token", "", "operator token (env EDGEFLEET_TOKEN)")
	fs.StringVar(&c.config, "config", "", "config file with server and token (default ~/.config/edgefleet/fleetctl.yaml)")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "request timeout")
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

// client talks to fleetd.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// newClient resolves server and token: flag, then env, then config file.
func (c *clientFlags) newClient() (*client, error) {
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
	return &client{base: u, token: token, http: &http.Client{Timeout: c.timeout}}, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// get performs a GET and returns the body of a 2xx answer, or an error
// that says plainly what went wrong.
func (c *client) get(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			return nil, fmt.Errorf("cannot reach fleetd at %s (is it running? set --server or EDGEFLEET_SERVER): %v", c.base, op.Err)
		case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
			return nil, fmt.Errorf("fleetd at %s did not answer in %v (--timeout)", c.base, c.http.Timeout)
		}
		return nil, fmt.Errorf("GET %s: %w", u.Path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("fleetd refused the operator token (check --token or EDGEFLEET_TOKEN): %s", msg)
	}
	return nil, fmt.Errorf("fleetd: %s (HTTP %d)", msg, resp.StatusCode)
}

func (c *client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	body, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseFlags parses args, rejecting extra positional arguments beyond want.
func parseFlags(fs *flag.FlagSet, args []string, want int) ([]string, error) {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	// Allow flags after positional arguments: "devices show ID --json".
	pos := []string{}
	rest := fs.Args()
	for len(rest) > 0 {
		pos = append(pos, rest[0])
		if err := fs.Parse(rest[1:]); err != nil {
			return nil, err
		}
		rest = fs.Args()
	}
	if len(pos) != want {
		return nil, fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, fs.Name(), want, len(pos))
	}
	return pos, nil
}
