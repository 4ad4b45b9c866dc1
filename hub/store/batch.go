package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Batch is a group of device data that WriteBatch commits in one
// transaction: what hub/ingest has gathered from many messages.
type Batch struct {
	// Connectivity changes, applied in order as by SetConnectivity.
	Connectivity []ConnectivityChange
	// Samples are appended as by AppendTelemetry.
	Samples []Sample
	// Logs are appended as by AppendLogs.
	Logs []LogEntry
	// Properties, by device id, are set as by SetProperties.
	Properties map[string]Properties
	// Malformed counts one malformed message per entry, as
	// IncrementMalformed.
	Malformed []MalformedMessage
	// Inbox are inbox rows to delete: the messages whose contents this
	// batch holds, so that they leave the inbox exactly when what they
	// hold is written.
	Inbox []InboxRange
}

// ConnectivityChange is one SetConnectivity of a Batch.
type ConnectivityChange struct {
	DeviceID string
	Online   bool
	At       time.Time
}

// MalformedMessage is one IncrementMalformed of a Batch.
type MalformedMessage struct {
	DeviceID, Kind string
}

// BatchResult says what WriteBatch wrote.
type BatchResult struct {
	Samples int // telemetry samples written
	Logs    int // log entries written
}

// WriteBatch writes everything in b in one transaction: when it returns
// nil, all of it is committed; otherwise none of it is. Whatever concerns
// a device that does not exist (deleted while its messages were on their
// way) is skipped, not an error. What the single-purpose methods would
// refuse with ErrInvalid (an empty device id, a zero time, a reserved or
// empty attribute name, a value that is not JSON) fails the whole batch
// with ErrInvalid before anything is written.
func (s *Store) WriteBatch(ctx context.Context, b Batch) (BatchResult, error) {
	alerts, err := checkSamples(b.Samples)
	if err == nil {
		err = checkLogs(b.Logs)
	}
	props := make(map[string][]byte, len(b.Properties))
	for id, p := range b.Properties {
		if err != nil {
			break
		}
		props[id], err = checkProperties(id, p)
	}
	for i, c := range b.Connectivity {
		if err == nil && (c.DeviceID == "" || c.At.IsZero()) {
			err = fmt.Errorf("connectivity %d: empty device id or zero time: %w", i, ErrInvalid)
		}
	}
	for i, m := range b.Malformed {
		if err == nil && m.DeviceID == "" {
			err = fmt.Errorf("malformed message %d: empty device id: %w", i, ErrInvalid)
		}
	}
	if err != nil {
		return BatchResult{}, fmt.Errorf("store: write batch: %w", err)
	}

	var res BatchResult
	now := s.now()
	err = s.writeBulk(ctx, func(tx *sql.Tx) error {
		res = BatchResult{}
		exists, err := newDeviceCheck(ctx, tx, b.deviceIDs())
		if err != nil {
			return err
		}
		defer exists.close()
		// each runs fn for a device's row when the device exists.
		each := func(deviceID string, fn func() error) error {
			ok, err := exists.check(ctx, deviceID)
			if err != nil || !ok {
				return err
			}
			return fn()
		}
		if len(b.Connectivity) > 0 {
			// Every device seen in the batch has a row here (its last-seen
			// time): one statement for all of them, its rows not
			// cancellable (see appendTelemetry) and ctx checked per row.
			// Preparing it per row was 2.5% of the hub's CPU under a burst.
			upsert, err := tx.PrepareContext(ctx, connectivityUpsert)
			if err != nil {
				return err
			}
			defer upsert.Close()
			rowCtx := context.WithoutCancel(ctx)
			for _, c := range b.Connectivity {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := each(c.DeviceID, func() error {
					_, err := upsert.ExecContext(rowCtx, c.DeviceID, c.Online, ms(c.At))
					return err
				}); err != nil {
					return err
				}
			}
		}
		if len(b.Samples) > 0 {
			if res.Samples, err = s.appendTelemetry(ctx, tx, exists, b.Samples, alerts); err != nil {
				return err
			}
		}
		if len(b.Logs) > 0 {
			if res.Logs, err = appendLogs(ctx, tx, b.Logs); err != nil {
				return err
			}
		}
		if len(b.Properties) > 0 {
			// One statement for the batch, as for connectivity: a fleet
			// sends properties from hundreds of devices a second.
			upsert, err := tx.PrepareContext(ctx, propertiesUpsert)
			if err != nil {
				return err
			}
			defer upsert.Close()
			for id, p := range b.Properties {
				if err := each(id, func() error {
					_, err := upsert.ExecContext(ctx, id, ms(p.Time), string(props[id]))
					return err
				}); err != nil {
					return err
				}
			}
		}
		for _, m := range b.Malformed {
			if err := each(m.DeviceID, func() error { return incrementMalformed(ctx, tx, m.DeviceID, m.Kind, now) }); err != nil {
				return err
			}
		}
		return deleteInbox(ctx, tx, b.Inbox)
	})
	if err != nil {
		return BatchResult{}, fmt.Errorf("store: write batch: %w", err)
	}
	return res, nil
}

// deviceIDs returns the devices b has rows for, each once.
func (b Batch) deviceIDs() []string {
	seen := make(map[string]struct{})
	add := func(id string) { seen[id] = struct{}{} }
	for _, c := range b.Connectivity {
		add(c.DeviceID)
	}
	for _, s := range b.Samples {
		add(s.DeviceID)
	}
	for _, l := range b.Logs {
		add(l.DeviceID)
	}
	for id := range b.Properties {
		add(id)
	}
	for _, m := range b.Malformed {
		add(m.DeviceID)
	}
	return slices.Collect(maps.Keys(seen))
}

// checkProperties refuses what SetProperties refuses (ErrInvalid) and
// returns the values encoded.
func checkProperties(deviceID string, p Properties) ([]byte, error) {
	if deviceID == "" || p.Time.IsZero() {
		return nil, fmt.Errorf("properties of %q: empty device id or zero time: %w", deviceID, ErrInvalid)
	}
	for a, v := range p.Values {
		if !json.Valid(v) {
			return nil, fmt.Errorf("properties of %s: %q is not valid JSON: %w", deviceID, a, ErrInvalid)
		}
	}
	values := p.Values
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	return json.Marshal(values)
}
