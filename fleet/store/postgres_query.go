package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// where renders q's filters (not the cursor) as SQL conditions and arguments.
func (q Query) where() ([]string, []any) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if q.Device != "" {
		add("device = $%d", q.Device)
	}
	if q.Camera != "" {
		add("camera = $%d", q.Camera)
	}
	if q.Label != "" {
		// Labels match whatever the case of the query: the casings models
		// use are spelled out, which keeps the label index usable.
		add("label = ANY($%d)", labelCasings(q.Label))
	}
	if !q.From.IsZero() {
		add("time_us >= $%d", int64(timeKey(q.From.UnixMicro())))
	}
	if !q.To.IsZero() {
		add("time_us < $%d", int64(timeKey(q.To.UnixMicro())))
	}
	return conds, args
}

func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Query implements Store; see there. Records come newest first in
// (time, device, seq) order, as from Bolt, through the indexes on device,
// camera and label, or the primary key.
func (s *Postgres) Query(ctx context.Context, q Query) (Page, error) {
	if err := s.check(); err != nil {
		return Page{}, err
	}
	conds, args := q.where()
	if q.Cursor != "" {
		p, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		args = append(args, int64(p.time), p.device, int64(p.seq))
		n := len(args)
		// The plain time bound lets the device and label indexes start at the cursor.
		conds = append(conds, fmt.Sprintf("(time_us, device, seq) < ($%d, $%d, $%d) AND time_us <= $%d", n-2, n-1, n, n-2))
	}
	limit := q.limit()
	sql := `SELECT time_us, device, seq, camera, label, class_id, score, x1, y1, x2, y2, model, model_version
		FROM detections` + whereClause(conds) + fmt.Sprintf(" ORDER BY time_us DESC, device DESC, seq DESC LIMIT %d", limit)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return Page{}, fmt.Errorf("store: query: %w", err)
	}
	page := Page{Records: make([]Record, 0, min(limit, 1024))}
	var r Record
	var seq int64
	var class int32
	_, err = pgx.ForEachRow(rows, []any{&r.Time, &r.Device, &seq, &r.CameraID, &r.Label, &class, &r.Score,
		&r.Box[0], &r.Box[1], &r.Box[2], &r.Box[3], &r.Model, &r.ModelVersion}, func() error {
		r.Seq, r.ClassID = uint64(seq), int(class)
		page.Records = append(page.Records, r)
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("store: query: %w", err)
	}
	if len(page.Records) >= limit {
		page.Next = encodeCursor(posOf(&page.Records[len(page.Records)-1]))
	}
	return page, nil
}

// Count implements Store; see there. The buckets are counted in SQL.
func (s *Postgres) Count(ctx context.Context, q Query, width time.Duration) ([]Bucket, error) {
	from, to, err := bucketRange(q, width)
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	w := width.Microseconds()
	cnt := newCounter(from, to, w)
	q.To = time.UnixMicro(to)
	conds, args := q.where()
	args = append(args, from, w)
	n := len(args)
	sql := fmt.Sprintf(`SELECT (time_us - $%d) / $%d AS b, count(*) FROM detections%s GROUP BY b`, n-1, n, whereClause(conds))
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: count: %w", err)
	}
	var b, c int64
	_, err = pgx.ForEachRow(rows, []any{&b, &c}, func() error {
		if b >= 0 && b < int64(len(cnt.counts)) {
			cnt.counts[b] += int(c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: count: %w", err)
	}
	return cnt.buckets(), nil
}

// labelCasings is the label as given, in lower case, upper case and with a
// capital first letter: the casings models use.
func labelCasings(l string) []string {
	out := []string{l}
	for _, c := range []string{strings.ToLower(l), strings.ToUpper(l), strings.ToUpper(l[:1]) + strings.ToLower(l[1:])} {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}
