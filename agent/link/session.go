package link

import "context"

// WaitNewSession blocks until a session numbered above after is up and
// returns its number: WaitNewSession(ctx, 0) waits for the first, then
// WaitNewSession(ctx, n) for the next reconnect.
func (l *Link) WaitNewSession(ctx context.Context, after uint64) (uint64, error) {
	for {
		s, n, changed := l.current()
		if s != nil && n > after {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		}
	}
}
