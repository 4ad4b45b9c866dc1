package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Properties are a device's latest properties.
type Properties struct {
	// Time is the message's timestamp; zero when the device never sent any.
	Time   time.Time                  `json:"timestamp"`
	Values map[string]json.RawMessage `json:"values"`
}

// SetProperties replaces the device's properties with those of a message
// timestamped t, unless the stored ones are newer. Fails with ErrNotFound for
// an unknown device, ErrInvalid for a zero t or a value that is not JSON.
func (s *Store) SetProperties(ctx context.Context, deviceID string, t time.Time, values map[string]json.RawMessage) error {
	if t.IsZero() {
		return fmt.Errorf("store: set properties of %s: zero time: %w", deviceID, ErrInvalid)
	}
	for a, v := range values {
		if !json.Valid(v) {
			return fmt.Errorf("store: set properties of %s: %q is not valid JSON: %w", deviceID, a, ErrInvalid)
		}
	}
	if values == nil {
		values = map[string]json.RawMessage{}
	}
	data, err := json.Marshal(values)
	if err != nil {
		return fmt.Errorf("store: set properties of %s: %w", deviceID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error { return setProperties(ctx, tx, deviceID, t, data) })
	if isForeignKey(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: set properties of %s: %w", deviceID, err)
	}
	return nil
}

// setProperties writes checked, encoded properties in tx.
func setProperties(ctx context.Context, tx *sql.Tx, deviceID string, t time.Time, data []byte) error {
	_, err := tx.ExecContext(ctx, propertiesUpsert, deviceID, ms(t), string(data))
	return err
}

// propertiesUpsert keeps a device's newest properties.
const propertiesUpsert = `INSERT INTO properties (device_id, ts, data) VALUES (?, ?, ?)
	ON CONFLICT DO UPDATE SET ts = excluded.ts, data = excluded.data WHERE excluded.ts >= properties.ts`

// GetProperties returns the device's latest properties, the zero Properties
// when it never sent any. Fails with ErrNotFound for an unknown device.
func (s *Store) GetProperties(ctx context.Context, deviceID string) (Properties, error) {
	var (
		ts   int64
		data string
	)
	err := s.r.QueryRowContext(ctx, "SELECT ts, data FROM properties WHERE device_id = ?", deviceID).Scan(&ts, &data)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.checkDevice(ctx, s.r, deviceID)
		if err == nil {
			return Properties{}, nil
		}
	}
	if err != nil {
		return Properties{}, fmt.Errorf("store: get properties of %s: %w", deviceID, err)
	}
	p := Properties{Time: fromMS(ts)}
	if err := json.Unmarshal([]byte(data), &p.Values); err != nil {
		return Properties{}, fmt.Errorf("store: get properties of %s: %w", deviceID, err)
	}
	return p, nil
}

// Connectivity is whether a device is connected, as the broker saw it.
type Connectivity struct {
	// Known is false when the hub never saw the device connect.
	Known  bool `json:"known"`
	Online bool `json:"online"`
	// ChangedAt is when Online last changed.
	ChangedAt time.Time `json:"changed_at"`
	// LastSeen is the latest time the device was known to be there.
	LastSeen time.Time `json:"last_seen"`
}

// SetConnectivity records at time at that the device is online or not, and
// moves its last-seen time forward to at. Fails with ErrNotFound for an
// unknown device.
func (s *Store) SetConnectivity(ctx context.Context, deviceID string, online bool, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("store: set connectivity of %s: zero time: %w", deviceID, ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error { return setConnectivity(ctx, tx, deviceID, online, at) })
	if isForeignKey(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: set connectivity of %s: %w", deviceID, err)
	}
	return nil
}

// connectivityUpsert writes a connectivity change: ?1 device, ?2 online,
// ?3 the time.
const connectivityUpsert = `INSERT INTO connectivity (device_id, online, changed_at, last_seen) VALUES (?1, ?2, ?3, ?3)
		ON CONFLICT DO UPDATE SET
			changed_at = CASE WHEN online = excluded.online THEN changed_at ELSE excluded.changed_at END,
			online = excluded.online,
			last_seen = max(coalesce(last_seen, 0), excluded.last_seen)`

// setConnectivity writes a connectivity change in tx.
func setConnectivity(ctx context.Context, tx *sql.Tx, deviceID string, online bool, at time.Time) error {
	_, err := tx.ExecContext(ctx, connectivityUpsert, deviceID, online, ms(at))
	return err
}

// GetConnectivity returns the device's connectivity. Fails with ErrNotFound
// for an unknown device.
func (s *Store) GetConnectivity(ctx context.Context, deviceID string) (Connectivity, error) {
	var (
		c        = Connectivity{Known: true}
		changed  int64
		lastSeen sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, "SELECT online, changed_at, last_seen FROM connectivity WHERE device_id = ?",
		deviceID).Scan(&c.Online, &changed, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.checkDevice(ctx, s.r, deviceID)
		if err == nil {
			return Connectivity{}, nil
		}
	}
	if err != nil {
		return Connectivity{}, fmt.Errorf("store: get connectivity of %s: %w", deviceID, err)
	}
	c.ChangedAt, c.LastSeen = fromMS(changed), fromNullMS(lastSeen)
	return c, nil
}

// LogEntry is one device log message.
type LogEntry struct {
	// ID orders entries; set by AppendLogs.
	ID       int64     `json:"id"`
	DeviceID string    `json:"device_id"`
	Time     time.Time `json:"timestamp"`
	Severity string    `json:"severity"`
	Message  string    `json:"message"`
	Persist  bool      `json:"persist"`
}

// AppendLogs stores log entries in one transaction. Entries of unknown
// devices are skipped; stored is the number written. Empty device id or zero
// time fails the batch with ErrInvalid.
func (s *Store) AppendLogs(ctx context.Context, entries []LogEntry) (stored int, err error) {
	if err := checkLogs(entries); err != nil {
		return 0, fmt.Errorf("store: append logs: %w", err)
	}
	err = s.writeBulk(ctx, func(tx *sql.Tx) error {
		stored, err = appendLogs(ctx, tx, entries)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: append logs: %w", err)
	}
	return stored, nil
}

// checkLogs refuses what AppendLogs refuses (ErrInvalid).
func checkLogs(entries []LogEntry) error {
	for i, e := range entries {
		if e.DeviceID == "" || e.Time.IsZero() {
			return fmt.Errorf("entry %d: empty device id or zero time: %w", i, ErrInvalid)
		}
	}
	return nil
}

// appendLogs writes checked entries in tx, skipping those of devices that
// do not exist; it returns how many it wrote.
func appendLogs(ctx context.Context, tx *sql.Tx, entries []LogEntry) (stored int, err error) {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO logs (device_id, ts, severity, message, persist)
		SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM devices WHERE id = ?1)`)
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	for _, e := range entries {
		res, err := ins.ExecContext(ctx, e.DeviceID, ms(e.Time), e.Severity, e.Message, e.Persist)
		if err != nil {
			return 0, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			stored++
		}
	}
	return stored, nil
}

// ListLogs returns the device's latest limit entries timestamped at or after
// since (all of them when since is zero), oldest first. A limit <= 0 means no
// limit. Fails with ErrNotFound for an unknown device.
func (s *Store) ListLogs(ctx context.Context, deviceID string, since time.Time, limit int) ([]LogEntry, error) {
	if err := s.checkDevice(ctx, s.r, deviceID); err != nil {
		return nil, fmt.Errorf("store: list logs of %s: %w", deviceID, err)
	}
	if limit <= 0 {
		limit = -1
	}
	var sinceMS int64 = -1 << 62
	if !since.IsZero() {
		sinceMS = ms(since)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, ts, severity, message, persist FROM (
			SELECT * FROM logs WHERE device_id = ? AND ts >= ? ORDER BY ts DESC, id DESC LIMIT ?
		) ORDER BY ts, id`, deviceID, sinceMS, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list logs of %s: %w", deviceID, err)
	}
	defer rows.Close()
	out := []LogEntry{}
	for rows.Next() {
		e := LogEntry{DeviceID: deviceID}
		var ts int64
		if err := rows.Scan(&e.ID, &ts, &e.Severity, &e.Message, &e.Persist); err != nil {
			return nil, fmt.Errorf("store: list logs of %s: %w", deviceID, err)
		}
		e.Time = fromMS(ts)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list logs of %s: %w", deviceID, err)
	}
	return out, nil
}

// DeleteLogsBefore removes log entries older than t and returns how many went.
func (s *Store) DeleteLogsBefore(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := s.writeBulk(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM logs WHERE ts < ?", ms(t))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: delete logs: %w", err)
	}
	return n, nil
}

// Malformed counts a device's malformed messages of one kind.
type Malformed struct {
	Count int64     `json:"count"`
	Last  time.Time `json:"last"`
}

// IncrementMalformed counts one more malformed message of the given kind
// (for example the topic suffix) from the device. Fails with ErrNotFound for
// an unknown device.
func (s *Store) IncrementMalformed(ctx context.Context, deviceID, kind string) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return incrementMalformed(ctx, tx, deviceID, kind, s.now()) })
	if isForeignKey(err) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: count malformed message of %s: %w", deviceID, err)
	}
	return nil
}

// incrementMalformed counts one malformed message in tx.
func incrementMalformed(ctx context.Context, tx *sql.Tx, deviceID, kind string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO malformed (device_id, kind, count, last_at) VALUES (?, ?, 1, ?)
		ON CONFLICT DO UPDATE SET count = count + 1, last_at = excluded.last_at`, deviceID, kind, ms(at))
	return err
}

// MalformedCounts returns the device's malformed-message counters by kind.
// Fails with ErrNotFound for an unknown device.
func (s *Store) MalformedCounts(ctx context.Context, deviceID string) (map[string]Malformed, error) {
	if err := s.checkDevice(ctx, s.r, deviceID); err != nil {
		return nil, fmt.Errorf("store: malformed counts of %s: %w", deviceID, err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT kind, count, last_at FROM malformed WHERE device_id = ?", deviceID)
	if err != nil {
		return nil, fmt.Errorf("store: malformed counts of %s: %w", deviceID, err)
	}
	defer rows.Close()
	out := map[string]Malformed{}
	for rows.Next() {
		var (
			k    string
			m    Malformed
			last int64
		)
		if err := rows.Scan(&k, &m.Count, &last); err != nil {
			return nil, fmt.Errorf("store: malformed counts of %s: %w", deviceID, err)
		}
		m.Last = fromMS(last)
		out[k] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: malformed counts of %s: %w", deviceID, err)
	}
	return out, nil
}
