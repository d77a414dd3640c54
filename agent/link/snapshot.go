package link

import (
	"context"
	"fmt"

	"edgefleet/fleet/api"
)

// PublishSnapshot sends the reply to a snapshot request at QoS 1 on
// api.SnapshotTopic and waits for the PUBACK. It refuses a reply that is
// not in the contract (api.EncodeSnapshotReply).
func (l *Link) PublishSnapshot(ctx context.Context, r *api.SnapshotReply) error {
	r.Header.DeviceID = l.opts.DeviceID
	payload, err := api.EncodeSnapshotReply(r)
	if err != nil {
		return fmt.Errorf("link: publish snapshot: %w", err)
	}
	return l.publish(ctx, api.SnapshotTopic(l.opts.DeviceID, r.Header.RequestID), 1, false, payload)
}
