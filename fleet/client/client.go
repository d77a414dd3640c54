// Package client is a typed Go client of fleetd's REST API (fleet/api/rest):
// one ctx-first method per route, the operator token sent as a bearer
// header, and errors that carry the server's reason and HTTP status.
// fleetctl is built on it; other programs may import it too.
//
//	c, err := client.New("http://127.0.0.1:8080", token, client.Options{})
//	devs, err := c.Devices(ctx, rest.DeviceFilter{Site: "plant-a"})
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"edgefleet/fleet/api/rest"
)

// ErrUnauthorized matches (errors.Is) an *Error with HTTP status 401: the
// server refused the operator token.
var ErrUnauthorized = errors.New("client: fleetd refused the operator token")

// ErrUnreachable matches the error of a request that found no fleetd
// listening at the server address.
var ErrUnreachable = errors.New("client: cannot reach fleetd")

// Error is a non-2xx answer from fleetd.
type Error struct {
	Method, Path string
	// Status is the HTTP status; Reason the server's JSON "error", else its body.
	Status int
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("client: fleetd: %s (HTTP %d)", e.Reason, e.Status)
}

// Is makes errors.Is(err, ErrUnauthorized) true for a 401.
func (e *Error) Is(target error) bool {
	return target == ErrUnauthorized && e.Status == http.StatusUnauthorized
}

// Options configure New; the zero value is usable.
type Options struct {
	// Timeout bounds each request but uploads and exports (which ctx
	// bounds); 0 means 30 s, negative means none.
	Timeout time.Duration
	// UploadTimeout bounds uploads; 0 means none.
	UploadTimeout time.Duration
	// Transport is the HTTP transport; nil means http.DefaultTransport.
	Transport http.RoundTripper
}

// Client talks to one fleetd. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	token  string
	short  *http.Client // ordinary requests
	long   *http.Client // exports
	upload *http.Client
}

// New returns a client of the fleetd at server (http or https URL) that
// authenticates with the operator token.
func New(server, token string, opt Options) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server %q is not an http(s) URL", server)
	}
	if token == "" {
		return nil, errors.New("client: no operator token")
	}
	switch {
	case opt.Timeout == 0:
		opt.Timeout = 30 * time.Second
	case opt.Timeout < 0:
		opt.Timeout = 0
	}
	return &Client{base: u, token: token,
		short:  &http.Client{Timeout: opt.Timeout, Transport: opt.Transport},
		long:   &http.Client{Transport: opt.Transport},
		upload: &http.Client{Timeout: opt.UploadTimeout, Transport: opt.Transport},
	}, nil
}

// Server returns the server URL.
func (c *Client) Server() string { return c.base.String() }

// do sends a request and returns the response of a 2xx answer; any other
// answer is an *Error.
func (c *Client) do(ctx context.Context, hc *http.Client, method, path string, q url.Values, ctype string, body io.Reader) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			return nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, op.Err)
		case hc.Timeout > 0 && (errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout")) && ctx.Err() == nil:
			return nil, fmt.Errorf("client: fleetd at %s did not answer in %v: %w", c.base, hc.Timeout, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e rest.Error
	reason := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		reason = e.Error
	}
	return nil, &Error{Method: method, Path: path, Status: resp.StatusCode, Reason: reason}
}

// call sends a request and decodes a JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, hc *http.Client, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: %s %s: %w", method, path, err)
		}
		body, ctype = strings.NewReader(string(b)), "application/json"
	}
	resp, err := c.do(ctx, hc, method, path, q, ctype, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := decode(resp, out); err != nil {
		return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.call(ctx, c.short, http.MethodGet, path, q, nil, out)
}

func esc(s string) string { return url.PathEscape(s) }

// Health checks GET /healthz.
func (c *Client) Health(ctx context.Context) (rest.Health, error) {
	var h rest.Health
	err := c.get(ctx, "/healthz", nil, &h)
	return h, err
}

// Fleet returns the fleet summary.
func (c *Client) Fleet(ctx context.Context) (rest.Fleet, error) {
	var f rest.Fleet
	err := c.get(ctx, rest.Prefix+"/fleet", nil, &f)
	return f, err
}

// Devices lists the devices that match f, sorted by id.
func (c *Client) Devices(ctx context.Context, f rest.DeviceFilter) ([]rest.Device, error) {
	q := url.Values{}
	setIf(q, "site", f.Site)
	setIf(q, "line", f.Line)
	if f.Online != nil {
		q.Set("online", strconv.FormatBool(*f.Online))
	}
	var l rest.DeviceList
	err := c.get(ctx, rest.Prefix+"/devices", q, &l)
	return l.Devices, err
}

// Device returns one device.
func (c *Client) Device(ctx context.Context, id string) (rest.Device, error) {
	var d rest.Device
	err := c.get(ctx, rest.Prefix+"/devices/"+esc(id), nil, &d)
	return d, err
}

// Telemetry returns a device's telemetry history since a time (RFC 3339,
// unix ms or "-1h"; "" for all that is kept).
func (c *Client) Telemetry(ctx context.Context, id, since string) (rest.Telemetry, error) {
	q := url.Values{}
	setIf(q, "since", since)
	var t rest.Telemetry
	err := c.get(ctx, rest.Prefix+"/devices/"+esc(id)+"/telemetry", q, &t)
	return t, err
}

func setIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

func decode(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}
