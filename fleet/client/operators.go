package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"edgefleet/fleet/api/rest"
)

// Whoami returns who the client's token belongs to.
func (c *Client) Whoami(ctx context.Context) (rest.Whoami, error) {
	var w rest.Whoami
	err := c.get(ctx, rest.Prefix+"/whoami", nil, &w)
	return w, err
}

// CreateToken makes an operator token (admin only). The answer holds the
// token, which fleetd never shows again.
func (c *Client) CreateToken(ctx context.Context, req rest.CreateToken) (rest.TokenCreated, error) {
	var out rest.TokenCreated
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/tokens", nil, req, &out)
	return out, err
}

// Tokens lists the operator tokens, without the tokens (admin only).
func (c *Client) Tokens(ctx context.Context) ([]rest.TokenInfo, error) {
	var l rest.TokenList
	err := c.get(ctx, rest.Prefix+"/tokens", nil, &l)
	return l.Tokens, err
}

// RevokeToken revokes the token of an operator name (admin only).
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.call(ctx, c.short, http.MethodDelete, rest.Prefix+"/tokens/"+esc(name), nil, nil, nil)
}

// LiveTicket returns a single-use ticket for the live feed.
func (c *Client) LiveTicket(ctx context.Context) (rest.LiveTicket, error) {
	var t rest.LiveTicket
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/live/ticket", nil, nil, &t)
	return t, err
}

// Audit returns a page of the audit log, newest first (operator or admin).
func (c *Client) Audit(ctx context.Context, q rest.AuditQuery) (rest.AuditList, error) {
	v := url.Values{}
	if q.Before > 0 {
		v.Set("before", strconv.FormatUint(q.Before, 10))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var l rest.AuditList
	err := c.get(ctx, rest.Prefix+"/audit", v, &l)
	return l, err
}
