package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"edgefleet/fleet/api/rest"
)

// Keys lists fleetd's signing keys: the signing one first, then retired ones.
func (c *Client) Keys(ctx context.Context) ([]rest.Key, error) {
	var l rest.KeyList
	err := c.get(ctx, rest.Prefix+"/keys", nil, &l)
	return l.Keys, err
}

// Key returns one key; id rest.SigningKeyID is the signing key.
func (c *Client) Key(ctx context.Context, id string) (rest.Key, error) {
	var k rest.Key
	err := c.get(ctx, rest.Prefix+"/keys/"+esc(id), nil, &k)
	return k, err
}

// PublicKeyPEM returns a key's public key file (PEM), as agents pin it.
func (c *Client) PublicKeyPEM(ctx context.Context, id string) ([]byte, error) {
	resp, err := c.do(ctx, c.short, http.MethodGet, rest.Prefix+"/keys/"+esc(id), url.Values{"format": {rest.KeyFormatPEM}}, "", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("client: key %s: %w", id, err)
	}
	return b, nil
}

// RotateKey makes a new signing key; the previous one is retired.
func (c *Client) RotateKey(ctx context.Context) (rest.KeyRotation, error) {
	var r rest.KeyRotation
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/keys/rotate", nil, nil, &r)
	return r, err
}
