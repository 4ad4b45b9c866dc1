package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// LogQuery selects a page of a device's log entries, as Enapter's
// GET /v3/devices/{id}/logs does. The zero value is every entry, oldest
// first.
type LogQuery struct {
	From, To time.Time // [From, To); zero means unbounded
	Severity string    // "" for any
	Persist  *bool     // nil for any; true for persisted entries only, false for temporary only
	Newest   bool      // newest first
	Offset   int
	Limit    int // <= 0: no limit
}

// QueryLogs returns the page of entries q selects and how many entries
// match q regardless of Offset and Limit. Fails with ErrNotFound for an
// unknown device.
func (s *Store) QueryLogs(ctx context.Context, deviceID string, q LogQuery) ([]LogEntry, int, error) {
	fail := func(err error) ([]LogEntry, int, error) {
		return nil, 0, fmt.Errorf("store: query logs of %s: %w", deviceID, err)
	}
	if err := s.checkDevice(ctx, s.r, deviceID); err != nil {
		return fail(err)
	}
	where := []string{"device_id = ?"}
	args := []any{deviceID}
	if !q.From.IsZero() {
		where, args = append(where, "ts >= ?"), append(args, ms(q.From))
	}
	if !q.To.IsZero() {
		where, args = append(where, "ts < ?"), append(args, ms(q.To))
	}
	if q.Severity != "" {
		where, args = append(where, "severity = ?"), append(args, q.Severity)
	}
	if q.Persist != nil {
		where, args = append(where, "persist = ?"), append(args, *q.Persist)
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM logs WHERE "+cond, args...).Scan(&total); err != nil {
		return fail(err)
	}
	order := "ts, id"
	if q.Newest {
		order = "ts DESC, id DESC"
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, "SELECT id, ts, severity, message, persist FROM logs WHERE "+cond+
		" ORDER BY "+order+" LIMIT ? OFFSET ?", append(args, limit, max(q.Offset, 0))...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	out := []LogEntry{}
	for rows.Next() {
		e := LogEntry{DeviceID: deviceID}
		var ts int64
		if err := rows.Scan(&e.ID, &ts, &e.Severity, &e.Message, &e.Persist); err != nil {
			return fail(err)
		}
		e.Time = fromMS(ts)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, total, nil
}
