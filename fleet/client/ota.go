package client

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"edgefleet/fleet/api/rest"
)

// kindPath is the route prefix of an artifact kind.
func kindPath(kind string) string {
	if kind == rest.KindFirmware {
		return rest.Prefix + "/firmware"
	}
	return rest.Prefix + "/models"
}

// Push uploads a model (kind rest.KindModel) or an agent bundle
// (rest.KindFirmware) as a streamed multipart form: u's fields, then the
// file read from r under the file name name. fleetd stores and signs it.
// Only ctx and Options.UploadTimeout bound it.
func (c *Client) Push(ctx context.Context, kind string, u rest.Upload, name string, r io.Reader) (rest.Model, error) {
	var m rest.Model
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeUpload(mw, u, name, r))
	}()
	path := kindPath(kind)
	resp, err := c.do(ctx, c.upload, http.MethodPost, path, nil, mw.FormDataContentType(), pr)
	pr.CloseWithError(io.ErrClosedPipe) // stop the writer if the server answered early
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if err := decode(resp, &m); err != nil {
		return m, fmt.Errorf("client: POST %s: decode answer: %w", path, err)
	}
	return m, nil
}

func writeUpload(mw *multipart.Writer, u rest.Upload, name string, r io.Reader) error {
	for _, kv := range u.Fields() {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return err
		}
	}
	part, err := mw.CreateFormFile("file", name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return err
	}
	return mw.Close()
}

// Artifacts lists the stored models (kind rest.KindModel) or agent bundles (rest.KindFirmware).
func (c *Client) Artifacts(ctx context.Context, kind string) ([]rest.Model, error) {
	if kind == rest.KindFirmware {
		var l rest.FirmwareList
		err := c.get(ctx, kindPath(kind), nil, &l)
		return l.Firmware, err
	}
	var l rest.ModelList
	err := c.get(ctx, kindPath(kind), nil, &l)
	return l.Models, err
}

// Artifact returns one model or bundle with its signed manifest.
func (c *Client) Artifact(ctx context.Context, kind, name, version string) (rest.Model, error) {
	var m rest.Model
	err := c.get(ctx, kindPath(kind)+"/"+esc(name)+"/"+esc(version), nil, &m)
	return m, err
}

// DeleteArtifact deletes a model or bundle; fleetd refuses (409) while a rollout uses it.
func (c *Client) DeleteArtifact(ctx context.Context, kind, name, version string) (rest.Deleted, error) {
	var d rest.Deleted
	err := c.call(ctx, c.short, http.MethodDelete, kindPath(kind)+"/"+esc(name)+"/"+esc(version), nil, nil, &d)
	return d, err
}

// CreateRollout starts a rollout.
func (c *Client) CreateRollout(ctx context.Context, req rest.CreateRollout) (rest.RolloutSummary, error) {
	var s rest.RolloutSummary
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/rollouts", nil, req, &s)
	return s, err
}

// Rollouts lists every rollout.
func (c *Client) Rollouts(ctx context.Context) ([]rest.RolloutSummary, error) {
	var l rest.RolloutList
	err := c.get(ctx, rest.Prefix+"/rollouts", nil, &l)
	return l.Rollouts, err
}

// Rollout returns one rollout with its jobs.
func (c *Client) Rollout(ctx context.Context, id string) (rest.Rollout, error) {
	var r rest.Rollout
	err := c.get(ctx, rest.Prefix+"/rollouts/"+esc(id), nil, &r)
	return r, err
}

// RolloutAction pauses, resumes, aborts or rolls back a rollout (rest.Action*);
// reason is recorded with an abort.
func (c *Client) RolloutAction(ctx context.Context, id, action, reason string) (rest.RolloutSummary, error) {
	var in any
	if reason != "" {
		in = rest.Abort{Reason: reason}
	}
	var s rest.RolloutSummary
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/rollouts/"+esc(id)+"/"+esc(action), nil, in, &s)
	return s, err
}

// AcceptShadow accepts a device's failed shadow phase in a rollout: its
// failure no longer counts and it gets the update again without one.
func (c *Client) AcceptShadow(ctx context.Context, id, device, reason string) (rest.Accepted, error) {
	var a rest.Accepted
	err := c.call(ctx, c.short, http.MethodPost, rest.Prefix+"/rollouts/"+esc(id)+"/"+rest.ActionAccept, nil,
		rest.Accept{Device: device, Reason: reason}, &a)
	return a, err
}

// RolloutShadow returns every device's shadow reports in a rollout (sample
// JPEGs by URL; ShadowSample fetches one).
func (c *Client) RolloutShadow(ctx context.Context, id string) (rest.RolloutShadow, error) {
	var s rest.RolloutShadow
	err := c.get(ctx, rest.Prefix+"/rollouts/"+esc(id)+"/shadow", nil, &s)
	return s, err
}
