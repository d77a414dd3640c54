package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"edgefleet/agent"
	"edgefleet/fleet/api"
)

// snapshotInterval is the least time between two encodes of one camera's
// snapshot (2 per second); a request in between gets the JPEG encoded last
// if it fits its cap, else SnapshotRateLimited.
const snapshotInterval = 500 * time.Millisecond

// snapshotQueue bounds snapshot requests waiting to be answered; one more
// is dropped (fleetd answers the operator 504).
const snapshotQueue = 8

// snapshotter answers the fleet's snapshot requests, one at a time, off
// the command loop so that a slow encode never delays an update job.
type snapshotter struct {
	encode  func(camera string, maxBytes int) (agent.Snapshot, error) // Agent.SnapshotJPEG
	publish func(ctx context.Context, r *api.SnapshotReply) error     // Link.PublishSnapshot
	cameras []string
	now     func() time.Time
	log     *slog.Logger

	reqs chan api.Command
	last map[string]encoded // by camera; only run's goroutine uses it
}

type encoded struct {
	at   time.Time
	snap agent.Snapshot
}

func newSnapshotter(encode func(string, int) (agent.Snapshot, error), publish func(context.Context, *api.SnapshotReply) error,
	cameras []string, log *slog.Logger) *snapshotter {
	return &snapshotter{encode: encode, publish: publish, cameras: cameras, now: time.Now, log: log,
		reqs: make(chan api.Command, snapshotQueue), last: map[string]encoded{}}
}

// offer queues a request without blocking; false when the queue is full.
func (s *snapshotter) offer(c api.Command) bool {
	select {
	case s.reqs <- c:
		return true
	default:
		s.log.Warn("snapshot request dropped: queue full", "request_id", c.JobID)
		return false
	}
}

// run answers queued requests until ctx is done.
func (s *snapshotter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.reqs:
			r := s.answer(c)
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := s.publish(pctx, &r); err != nil && ctx.Err() == nil {
				s.log.Warn("snapshot reply not sent", "request_id", c.JobID, "camera_id", c.Snapshot.Camera, "err", err)
			}
			cancel()
		}
	}
}

// answer builds the reply to one request (c.Snapshot is set: the link
// delivers only commands that validate).
func (s *snapshotter) answer(c api.Command) api.SnapshotReply {
	req := c.Snapshot
	h := api.SnapshotHeader{RequestID: c.JobID, Camera: req.Camera}
	now := s.now()
	prev, ok := s.last[req.Camera]
	var snap agent.Snapshot
	switch {
	case ok && now.Sub(prev.at) < snapshotInterval && len(prev.snap.JPEG) <= req.Limit():
		snap = prev.snap
	case ok && now.Sub(prev.at) < snapshotInterval:
		h.Error, h.Reason = api.SnapshotRateLimited, fmt.Sprintf("at most one new snapshot per %v per camera", snapshotInterval)
		return api.SnapshotReply{Header: h}
	default:
		var err error
		if snap, err = s.encode(req.Camera, req.Limit()); err != nil {
			h.Error, h.Reason = snapshotError(err, s.cameras)
			return api.SnapshotReply{Header: h}
		}
		s.last[req.Camera] = encoded{at: now, snap: snap}
	}
	h.Width, h.Height, h.Time = snap.Width, snap.Height, snap.Time.UnixMilli()
	return api.SnapshotReply{Header: h, JPEG: snap.JPEG}
}

// snapshotError maps an encode error to the reply's code and reason.
func snapshotError(err error, cameras []string) (code, reason string) {
	switch {
	case errors.Is(err, agent.ErrUnknownCamera):
		return api.SnapshotUnknownCamera, fmt.Sprintf("%v (cameras: %s)", err, strings.Join(cameras, ", "))
	case errors.Is(err, agent.ErrNoFrame):
		return api.SnapshotNoFrame, err.Error()
	}
	return api.SnapshotFailed, err.Error()
}
