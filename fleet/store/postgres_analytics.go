package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"edgefleet/fleet/api"
)

// Analytics events in PostgreSQL (migration 00008_analytics.sql).

// insertEventsSQL stores the analytics events not there yet, and the
// snapshot parts of those it stored, in one statement; it returns the new keys.
const insertEventsSQL = `
WITH r AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
		$7::text[], $8::text[], $9::text[], $10::text[])
		AS r(device, seq, time_us, camera, type, label, line, direction, zone, event)
), ins AS (
	INSERT INTO analytics_events (device, seq, time_us, camera, type, label, line, direction, zone, event)
	SELECT device, seq, time_us, camera, type, label, line, direction, zone, event::jsonb FROM r
	ON CONFLICT DO NOTHING
	RETURNING device, seq, time_us
), snaps AS (
	INSERT INTO event_snapshots (device, seq, part, time_us, jpeg)
	SELECT s.device, s.seq, s.part, ins.time_us, s.jpeg
	FROM unnest($11::text[], $12::bigint[], $13::text[], $14::bytea[]) AS s(device, seq, part, jpeg)
	JOIN ins ON ins.device = s.device AND ins.seq = s.seq
	ON CONFLICT DO NOTHING
)
SELECT device, seq FROM ins`

// eventColumns are the unnest arrays of the analytics events of one commit.
type eventColumns struct {
	device, camera, typ, label, line, direction, zone, event []string
	seq, time                                                []int64
	sDevice, sPart                                           []string
	sSeq                                                     []int64
	sJPEG                                                    [][]byte
}

func (c *eventColumns) add(device string, e *api.Event) {
	r, parts := splitEvent(device, e)
	c.device = append(c.device, device)
	c.seq = append(c.seq, int64(e.Seq))
	c.time = append(c.time, int64(timeKey(e.Time)))
	c.camera = append(c.camera, e.CameraID)
	c.typ = append(c.typ, e.Type)
	c.label = append(c.label, e.Label)
	var line, dir, zone string
	if e.Line != nil {
		line, dir = e.Line.Line, e.Line.Direction
	}
	if e.Zone != nil {
		zone = e.Zone.Zone
	}
	c.line, c.direction, c.zone = append(c.line, line), append(c.direction, dir), append(c.zone, zone)
	c.event = append(c.event, string(encodeEvent(&r)))
	for _, p := range parts {
		c.sDevice, c.sSeq, c.sPart, c.sJPEG = append(c.sDevice, device), append(c.sSeq, int64(e.Seq)), append(c.sPart, p.part), append(c.sJPEG, p.jpeg)
	}
}

// insertEvents stores the analytics events of a commit and adds the keys
// it stored to newKeys.
func (s *Postgres) insertEvents(ctx context.Context, c *eventColumns, newKeys map[devSeq]bool) error {
	if len(c.seq) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, insertEventsSQL, c.device, c.seq, c.time, c.camera, c.typ, c.label,
		c.line, c.direction, c.zone, c.event, c.sDevice, c.sSeq, c.sPart, c.sJPEG)
	if err != nil {
		return fmt.Errorf("analytics events: %w", err)
	}
	if err := scanKeys(rows, newKeys); err != nil {
		return fmt.Errorf("analytics events: %w", err)
	}
	return nil
}

// where renders q's filters (not the cursor) as SQL conditions on analytics_events.
func (q EventQuery) where() ([]string, []any) {
	conds, args := Query{Device: q.Device, Camera: q.Camera, Label: q.Label, From: q.From, To: q.To}.where()
	for _, f := range [][2]string{{"type", q.Type}, {"line", q.Line}, {"zone", q.Zone}} {
		if f[1] != "" {
			args = append(args, f[1])
			conds = append(conds, fmt.Sprintf("%s = $%d", f[0], len(args)))
		}
	}
	return conds, args
}

// QueryEvents implements Store; see there.
func (s *Postgres) QueryEvents(ctx context.Context, q EventQuery) (EventPage, error) {
	if err := s.check(); err != nil {
		return EventPage{}, err
	}
	cur, err := cursorPos(q.Cursor)
	if err != nil {
		return EventPage{}, err
	}
	conds, args := q.where()
	if cur != nil {
		args = append(args, int64(cur.time), cur.device, int64(cur.seq))
		n := len(args)
		conds = append(conds, fmt.Sprintf("(time_us, device, seq) < ($%d, $%d, $%d) AND time_us <= $%d", n-2, n-1, n, n-2))
	}
	limit := q.limit()
	sql := `SELECT device, event::text,
		EXISTS (SELECT 1 FROM event_snapshots s WHERE s.device = e.device AND s.seq = e.seq AND s.part = 'crop'),
		EXISTS (SELECT 1 FROM event_snapshots s WHERE s.device = e.device AND s.seq = e.seq AND s.part = 'thumb')
		FROM analytics_events e` + whereClause(conds) + fmt.Sprintf(" ORDER BY time_us DESC, device DESC, seq DESC LIMIT %d", limit)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return EventPage{}, fmt.Errorf("store: query events: %w", err)
	}
	page := EventPage{Events: make([]EventRecord, 0, min(limit, 1024))}
	var device, js string
	var crop, thumb bool
	_, err = pgx.ForEachRow(rows, []any{&device, &js, &crop, &thumb}, func() error {
		r, err := decodeEvent([]byte(js))
		if err != nil {
			return err
		}
		r.Device, r.Crop, r.Thumb = device, crop, thumb
		page.Events = append(page.Events, r)
		return nil
	})
	if err != nil {
		return EventPage{}, fmt.Errorf("store: query events: %w", err)
	}
	if len(page.Events) >= limit {
		page.Next = encodeCursor(page.Events[len(page.Events)-1].pos())
	}
	return page, nil
}

// CountLines implements Store; see there. The rows are grouped and counted in SQL.
func (s *Postgres) CountLines(ctx context.Context, q CountQuery, width time.Duration) ([]LineCount, error) {
	from, to, w, err := lineRange(q, width)
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	conds, args := Query{Device: q.Device, Camera: q.Camera, From: q.From, To: time.UnixMicro(to)}.where()
	conds = append(conds, "type = 'line_cross'")
	if q.Line != "" {
		args = append(args, q.Line)
		conds = append(conds, fmt.Sprintf("line = $%d", len(args)))
	}
	args = append(args, from, w)
	n := len(args)
	sql := fmt.Sprintf(`SELECT $%d + (time_us - $%d) / $%d * $%d AS start, line, direction, label, count(*)
		FROM analytics_events%s GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`, n-1, n-1, n, n, whereClause(conds))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: count lines: %w", err)
	}
	out := []LineCount{}
	var start, count int64
	var lc LineCount
	_, err = pgx.ForEachRow(rows, []any{&start, &lc.Line, &lc.Direction, &lc.Label, &count}, func() error {
		lc.Start, lc.Count = time.UnixMicro(start).UTC(), int(count)
		out = append(out, lc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: count lines: %w", err)
	}
	return out, nil
}

// EventSnapshot implements Store; see there.
func (s *Postgres) EventSnapshot(ctx context.Context, device string, seq uint64, part string) ([]byte, error) {
	if err := checkPart(part); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT jpeg FROM event_snapshots WHERE device = $1 AND seq = $2 AND part = $3`,
		device, int64(seq), part).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: snapshot %s of %s/%d", ErrNotFound, part, device, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("store: event snapshot: %w", err)
	}
	return b, nil
}

// retainEvents deletes analytics events older than MaxAge with their
// snapshots, then snapshots older than SnapshotMaxAge, then the oldest
// snapshots beyond SnapshotMaxBytes.
func (s *Postgres) retainEvents(ctx context.Context, now time.Time) error {
	rt := s.opt.Retention
	if rt.MaxAge > 0 {
		cut := now.Add(-rt.MaxAge).UnixMicro()
		if _, err := s.pool.Exec(ctx, `DELETE FROM event_snapshots WHERE time_us < $1`, cut); err != nil {
			return err
		}
		if _, err := s.pool.Exec(ctx, `DELETE FROM analytics_events WHERE time_us < $1`, cut); err != nil {
			return err
		}
	}
	if rt.SnapshotMaxAge > 0 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM event_snapshots WHERE time_us < $1`, now.Add(-rt.SnapshotMaxAge).UnixMicro()); err != nil {
			return err
		}
	}
	if rt.SnapshotMaxBytes > 0 {
		_, err := s.pool.Exec(ctx, `DELETE FROM event_snapshots WHERE (device, seq, part) IN (
			SELECT device, seq, part FROM (
				SELECT device, seq, part, sum(length(jpeg)) OVER (ORDER BY time_us DESC, device DESC, seq DESC, part DESC) AS newer
				FROM event_snapshots) t
			WHERE newer > $1)`, rt.SnapshotMaxBytes)
		if err != nil {
			return err
		}
	}
	return nil
}

// scanKeys adds the (device, seq) rows to keys (Postgres.insert reads
// its rows the same way; left as it is while its ingest is reworked).
func scanKeys(rows pgx.Rows, keys map[devSeq]bool) error {
	var k devSeq
	var seq int64
	_, err := pgx.ForEachRow(rows, []any{&k.device, &seq}, func() error {
		k.seq = uint64(seq)
		keys[k] = true
		return nil
	})
	return err
}
