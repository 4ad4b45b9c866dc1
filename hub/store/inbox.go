package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// InboxMessage is a raw device message in the inbox: what the hub has
// acknowledged to a device and not yet decoded into telemetry, logs,
// properties and the like (hub/ingest).
type InboxMessage struct {
	ID         int64 // set by the store: increasing in append order
	Topic      string
	Payload    []byte
	ReceivedAt time.Time // stored to the nanosecond
}

// InboxRange is the ids First through Last of the inbox.
type InboxRange struct {
	First, Last int64
}

// AppendInbox appends msgs to the inbox in one transaction and returns the
// range of ids they got (consecutive, in order). The rows are few pages at
// the end of one table, so the commit is cheap whatever the messages hold.
func (s *Store) AppendInbox(ctx context.Context, msgs []InboxMessage) (InboxRange, error) {
	if len(msgs) == 0 {
		return InboxRange{}, fmt.Errorf("store: append inbox: no messages: %w", ErrInvalid)
	}
	var r InboxRange
	err := s.write(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO inbox (topic, payload, received_at) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		// Not cancellable per row, checked per row instead: see appendTelemetry.
		rowCtx := context.WithoutCancel(ctx)
		for i, m := range msgs {
			if err := ctx.Err(); err != nil {
				return err
			}
			payload := m.Payload
			if payload == nil {
				payload = []byte{}
			}
			res, err := ins.ExecContext(rowCtx, m.Topic, payload, m.ReceivedAt.UnixNano())
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			if i == 0 {
				r.First = id
			} else if id != r.Last+1 {
				return fmt.Errorf("inbox ids not consecutive (%d after %d)", id, r.Last)
			}
			r.Last = id
		}
		return nil
	})
	if err != nil {
		return InboxRange{}, fmt.Errorf("store: append inbox: %w", err)
	}
	return r, nil
}

// ReadInbox returns up to limit inbox messages with an id above after, in
// id order.
func (s *Store) ReadInbox(ctx context.Context, after int64, limit int) ([]InboxMessage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, topic, payload, received_at FROM inbox WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: read inbox: %w", err)
	}
	defer rows.Close()
	var out []InboxMessage
	for rows.Next() {
		var m InboxMessage
		var at int64
		if err := rows.Scan(&m.ID, &m.Topic, &m.Payload, &at); err != nil {
			return nil, fmt.Errorf("store: read inbox: %w", err)
		}
		m.ReceivedAt = time.Unix(0, at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read inbox: %w", err)
	}
	return out, nil
}

// InboxLength returns how many messages the inbox holds.
func (s *Store) InboxLength(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM inbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: inbox length: %w", err)
	}
	return n, nil
}

// DeleteInbox deletes the inbox rows in ranges, in one transaction.
// WriteBatch does the same with Batch.Inbox; this is for messages that
// turned out to need no write.
func (s *Store) DeleteInbox(ctx context.Context, ranges []InboxRange) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return deleteInbox(ctx, tx, ranges) })
	if err != nil {
		return fmt.Errorf("store: delete inbox: %w", err)
	}
	return nil
}

// deleteInbox deletes the inbox rows in ranges. Ingest collects a batch's
// ids device by device, so with many devices a batch brings one short
// range per device: merged, they are mostly one statement, where one
// statement per device was the largest share of the SQL parsed under a
// fleet of 10 000 (BENCHMARKS.md, "Hub: a fleet of devices").
func deleteInbox(ctx context.Context, tx *sql.Tx, ranges []InboxRange) error {
	ranges = mergeRanges(ranges)
	if len(ranges) == 1 {
		_, err := tx.ExecContext(ctx, inboxDelete, ranges[0].First, ranges[0].Last)
		return err
	}
	del, err := tx.PrepareContext(ctx, inboxDelete)
	if err != nil {
		return err
	}
	defer del.Close()
	for _, r := range ranges {
		if _, err := del.ExecContext(ctx, r.First, r.Last); err != nil {
			return err
		}
	}
	return nil
}

const inboxDelete = `DELETE FROM inbox WHERE id BETWEEN ? AND ?`

// mergeRanges returns rs sorted, with overlapping and adjacent ranges
// joined. rs is not changed.
func mergeRanges(rs []InboxRange) []InboxRange {
	if len(rs) < 2 {
		return rs
	}
	sorted := slices.SortedFunc(slices.Values(rs), func(a, b InboxRange) int { return cmp.Compare(a.First, b.First) })
	merged := sorted[:1]
	for _, r := range sorted[1:] {
		last := &merged[len(merged)-1]
		if r.First <= last.Last+1 {
			last.Last = max(last.Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}
