package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AlertsAttribute is the attribute under which a sample's alerts (a JSON
// array of names) are stored, read and queried like any other attribute. The
// Device MQTT API reserves the name, so no real attribute can clash with it.
const AlertsAttribute = "alerts"

// Sample is one telemetry message of one device.
type Sample struct {
	DeviceID string
	// Time is the message's timestamp.
	Time time.Time
	// Values maps attribute names to JSON values.
	Values map[string]json.RawMessage
	// Alerts are the active alerts; nil when the message carried no alerts
	// key (stored nothing), empty when it said there are none.
	Alerts []string
}

// Point is a value at a time.
type Point struct {
	Time  time.Time       `json:"timestamp"`
	Value json.RawMessage `json:"value"`
}

// Series is one attribute's points, oldest first.
type Series struct {
	Attribute string  `json:"attribute"`
	Points    []Point `json:"points"`
}

// Aggregation says how QueryTelemetry reduces the points in a bucket.
type Aggregation string

// Aggregations. On a bucket holding any value that is not a JSON number,
// AggAvg, AggMin and AggMax fall back to AggLast.
const (
	AggAuto Aggregation = ""     // AggAvg for numbers, AggLast for others
	AggAvg  Aggregation = "avg"  // arithmetic mean
	AggMin  Aggregation = "min"  // smallest
	AggMax  Aggregation = "max"  // largest
	AggLast Aggregation = "last" // the latest point's value
)

// validAttribute reports why an attribute name cannot be stored, or "".
func validAttribute(a string) string {
	switch a {
	case "":
		return "empty attribute name"
	case "timestamp", AlertsAttribute:
		return fmt.Sprintf("attribute name %q is reserved", a)
	}
	return ""
}

// AppendTelemetry stores a batch of samples in one transaction: the raw
// series and the latest value of each attribute (a later timestamp wins; an
// older sample arriving late updates only the series). A sample repeating a
// device, attribute and timestamp replaces the stored value. Samples of
// devices that do not exist (deleted while the message was in flight) are
// skipped; stored is the number of samples written. A sample with an empty
// device id, zero time, reserved or empty attribute name or invalid JSON
// fails the whole batch with ErrInvalid, and nothing is written.
func (s *Store) AppendTelemetry(ctx context.Context, samples []Sample) (stored int, err error) {
	alerts, err := checkSamples(samples)
	if err != nil {
		return 0, fmt.Errorf("store: append telemetry: %w", err)
	}
	err = s.writeBulk(ctx, func(tx *sql.Tx) error {
		exists, err := newDeviceCheck(ctx, tx, Batch{Samples: samples}.deviceIDs())
		if err != nil {
			return err
		}
		defer exists.close()
		stored, err = s.appendTelemetry(ctx, tx, exists, samples, alerts)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: append telemetry: %w", err)
	}
	return stored, nil
}

// checkSamples refuses what AppendTelemetry refuses (ErrInvalid) and
// returns each sample's alerts as JSON ("" without alerts).
func checkSamples(samples []Sample) (alerts []string, err error) {
	alerts = make([]string, len(samples))
	for i, sm := range samples {
		if sm.DeviceID == "" || sm.Time.IsZero() {
			return nil, fmt.Errorf("sample %d: empty device id or zero time: %w", i, ErrInvalid)
		}
		for a, v := range sm.Values {
			if why := validAttribute(a); why != "" {
				return nil, fmt.Errorf("sample %d: %s: %w", i, why, ErrInvalid)
			}
			if !json.Valid(v) {
				return nil, fmt.Errorf("sample %d: attribute %q: value is not valid JSON: %w", i, a, ErrInvalid)
			}
		}
		if sm.Alerts != nil {
			b, _ := json.Marshal(sm.Alerts) // strings always marshal
			alerts[i] = string(b)
		}
	}
	return alerts, nil
}

// appendTelemetry writes checked samples in tx, skipping those of devices
// that do not exist; it returns how many it wrote. A sample is one row of
// telemetry (its values one JSON object); a sample repeating a device and
// timestamp is merged into the row there, its values replacing those of
// the same attributes. The latest values are merged into each device's one
// telemetry_latest row once per transaction.
func (s *Store) appendTelemetry(ctx context.Context, tx *sql.Tx, exists *deviceCheck, samples []Sample, alerts []string) (stored int, err error) {
	ins, err := tx.PrepareContext(ctx, "INSERT INTO telemetry (dkey, ts, n, data) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING")
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	keys, err := newDeviceKeys(ctx, tx, &s.dkeys)
	if err != nil {
		return 0, err
	}
	defer keys.close()

	// The rows are executed with a context that cannot be cancelled: with
	// one that can, the SQLite driver starts a goroutine per statement to
	// interrupt it (some 10% of the hub's CPU at 10 values a message,
	// BENCHMARKS.md "Hub: a fleet of devices"). Each row takes microseconds;
	// ctx is checked once per sample instead, which bounds the batch as well.
	rowCtx := context.WithoutCancel(ctx)
	latest := make(map[int64]map[string]latestValue)
	var buf []byte
	for i, sm := range samples {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		ok, err := exists.check(ctx, sm.DeviceID)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		stored++
		values := make(map[string]string, len(sm.Values)+1)
		for a, v := range sm.Values {
			values[a] = string(v)
		}
		if sm.Alerts != nil {
			values[AlertsAttribute] = alerts[i]
		}
		if len(values) == 0 {
			continue
		}
		dkey, err := keys.get(rowCtx, sm.DeviceID)
		if err != nil {
			return 0, err
		}
		ts := ms(sm.Time)
		buf = appendObject(buf[:0], values)
		res, err := ins.ExecContext(rowCtx, dkey, ts, len(values), string(buf))
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, err
		} else if n == 0 {
			if err := mergeRow(rowCtx, tx, dkey, ts, values); err != nil {
				return 0, err
			}
		}
		l := latest[dkey]
		if l == nil {
			l = make(map[string]latestValue, len(values))
			latest[dkey] = l
		}
		mergeLatest(l, ts, values)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := writeLatest(rowCtx, tx, latest); err != nil {
		return 0, err
	}
	return stored, nil
}

// mergeLatest sets the latest value of each of values sent at ts, unless l
// has a later one.
func mergeLatest(l map[string]latestValue, ts int64, values map[string]string) {
	for a, v := range values {
		if cur, ok := l[a]; !ok || ts >= cur.ts {
			l[a] = latestValue{ts, v}
		}
	}
}

// mergeRow merges values into the stored row of a device and timestamp, as
// the schema of a row per value did: a value replaces the one of its
// attribute, the other attributes stay.
func mergeRow(ctx context.Context, tx *sql.Tx, dkey, ts int64, values map[string]string) error {
	var data string
	if err := tx.QueryRowContext(ctx, "SELECT data FROM telemetry WHERE dkey = ? AND ts = ?", dkey, ts).Scan(&data); err != nil {
		return err
	}
	merged := make(map[string]string, len(values))
	if err := eachMember(data, func(a, v string) error { merged[a] = v; return nil }); err != nil {
		return err
	}
	maps.Copy(merged, values)
	_, err := tx.ExecContext(ctx, "UPDATE telemetry SET n = ?, data = ? WHERE dkey = ? AND ts = ?",
		len(merged), string(appendObject(nil, merged)), dkey, ts)
	return err
}

// writeLatest merges the latest values of a transaction into each device's
// telemetry_latest row.
func writeLatest(ctx context.Context, tx *sql.Tx, latest map[int64]map[string]latestValue) error {
	if len(latest) == 0 {
		return nil
	}
	get, err := tx.PrepareContext(ctx, "SELECT data FROM telemetry_latest WHERE dkey = ?")
	if err != nil {
		return err
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, `INSERT INTO telemetry_latest (dkey, data) VALUES (?, ?)
		ON CONFLICT DO UPDATE SET data = excluded.data`)
	if err != nil {
		return err
	}
	defer put.Close()
	var buf []byte
	for dkey, l := range latest {
		var data string
		switch err := get.QueryRowContext(ctx, dkey).Scan(&data); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			err := eachMember(data, func(a, v string) error {
				lv, err := splitLatest(v)
				if err != nil {
					return err
				}
				if cur, ok := l[a]; !ok || lv.ts > cur.ts {
					l[a] = lv
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("latest telemetry of device key %d: %w", dkey, err)
			}
		}
		buf = appendLatest(buf[:0], l)
		if _, err := put.ExecContext(ctx, dkey, string(buf)); err != nil {
			return err
		}
	}
	return nil
}

// deviceKeys gives, within one transaction, the telemetry key of devices
// known to exist, making it at a device's first telemetry.
type deviceKeys struct {
	lookup, insert *sql.Stmt
	known          map[string]int64
	// shared holds the keys read in earlier transactions (Store.dkeys):
	// with many devices, each with a message a batch, looking the key up
	// was one query a message.
	shared *sync.Map
}

func newDeviceKeys(ctx context.Context, tx *sql.Tx, shared *sync.Map) (*deviceKeys, error) {
	get, err := tx.PrepareContext(ctx, "SELECT dkey FROM device_keys WHERE device_id = ?")
	if err != nil {
		return nil, err
	}
	mk, err := tx.PrepareContext(ctx, "INSERT INTO device_keys (device_id) VALUES (?) RETURNING dkey")
	if err != nil {
		get.Close()
		return nil, err
	}
	return &deviceKeys{lookup: get, insert: mk, known: make(map[string]int64), shared: shared}, nil
}

func (k *deviceKeys) get(ctx context.Context, deviceID string) (int64, error) {
	if key, ok := k.known[deviceID]; ok {
		return key, nil
	}
	if key, ok := k.shared.Load(deviceID); ok {
		k.known[deviceID] = key.(int64)
		return key.(int64), nil
	}
	var key int64
	err := k.lookup.QueryRowContext(ctx, deviceID).Scan(&key)
	switch {
	case err == nil:
		// Made by an earlier transaction: it stays the device's key for
		// good (only a deleted device's key can be reused, and a deleted
		// device's rows never get here, see deviceCheck).
		k.shared.Store(deviceID, key)
	case errors.Is(err, sql.ErrNoRows):
		// Made here: kept for this transaction only, which may roll back.
		err = k.insert.QueryRowContext(ctx, deviceID).Scan(&key)
	}
	if err != nil {
		return 0, err
	}
	k.known[deviceID] = key
	return key, nil
}

func (k *deviceKeys) close() {
	_ = k.lookup.Close()
	_ = k.insert.Close()
}

// deviceCheck answers, within one transaction, whether devices exist,
// asking SQLite once per device, or once for a batch's devices (preload).
type deviceCheck struct {
	tx    *sql.Tx
	stmt  *sql.Stmt // prepared at the first device not preloaded
	known map[string]bool
}

// deviceExists is the query for one device.
const deviceExists = "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?)"

// newDeviceCheck answers within tx, asking first about all of ids at once
// (the devices the transaction is about to write rows for).
func newDeviceCheck(ctx context.Context, tx *sql.Tx, ids []string) (*deviceCheck, error) {
	c := &deviceCheck{tx: tx, known: make(map[string]bool)}
	if err := c.preload(ctx, ids); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *deviceCheck) check(ctx context.Context, deviceID string) (bool, error) {
	ok, seen := c.known[deviceID]
	if seen {
		return ok, nil
	}
	if c.stmt == nil {
		stmt, err := c.tx.PrepareContext(ctx, deviceExists)
		if err != nil {
			return false, err
		}
		c.stmt = stmt
	}
	if err := c.stmt.QueryRowContext(ctx, deviceID).Scan(&ok); err != nil {
		return false, err
	}
	c.known[deviceID] = ok
	return ok, nil
}

// preload asks SQLite once about every device in ids, where
// one query a device was 8% of the hub's CPU under a fleet of 10 000, each
// device bringing one message a batch.
func (c *deviceCheck) preload(ctx context.Context, ids []string) error {
	ids = slices.DeleteFunc(ids, func(id string) bool {
		_, seen := c.known[id]
		return seen
	})
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	rows, err := c.tx.QueryContext(ctx, `SELECT d.id FROM json_each(?) AS j JOIN devices AS d ON d.id = j.value`, string(list))
	if err != nil {
		return err
	}
	defer rows.Close()
	for _, id := range ids {
		c.known[id] = false
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		c.known[id] = true
	}
	return rows.Err()
}

func (c *deviceCheck) close() {
	if c.stmt != nil {
		_ = c.stmt.Close()
	}
}

// checkDevice returns ErrNotFound unless the device exists.
func (s *Store) checkDevice(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, deviceID string) error {
	var ok bool
	if err := q.QueryRowContext(ctx, deviceExists, deviceID).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return ErrNotFound
	}
	return nil
}

// inList returns "(?, ?, …)" for n placeholders.
func inList(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// telemetryKey returns the device's telemetry key; ok is false when it has
// none (no telemetry written yet). Fails with ErrNotFound for an unknown
// device.
func (s *Store) telemetryKey(ctx context.Context, deviceID string) (key int64, ok bool, err error) {
	var k sql.NullInt64
	err = s.r.QueryRowContext(ctx, `SELECT (SELECT dkey FROM device_keys WHERE device_id = ?1) FROM devices WHERE id = ?1`,
		deviceID).Scan(&k)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, ErrNotFound
	}
	return k.Int64, k.Valid, err
}

// LatestTelemetry returns the latest value of each of attrs (every attribute
// when attrs is empty) that the device has ever sent; attributes never sent
// are absent from the map. Fails with ErrNotFound for an unknown device.
func (s *Store) LatestTelemetry(ctx context.Context, deviceID string, attrs []string) (map[string]Point, error) {
	fail := func(err error) (map[string]Point, error) {
		return nil, fmt.Errorf("store: latest telemetry of %s: %w", deviceID, err)
	}
	key, ok, err := s.telemetryKey(ctx, deviceID)
	if err != nil {
		return fail(err)
	}
	out := make(map[string]Point)
	if !ok {
		return out, nil
	}
	var data string
	switch err := s.r.QueryRowContext(ctx, "SELECT data FROM telemetry_latest WHERE dkey = ?", key).Scan(&data); {
	case errors.Is(err, sql.ErrNoRows):
		return out, nil
	case err != nil:
		return fail(err)
	}
	var want map[string]bool
	if len(attrs) > 0 {
		want = make(map[string]bool, len(attrs))
		for _, a := range attrs {
			want[a] = true
		}
	}
	err = eachMember(data, func(a, v string) error {
		if want != nil && !want[a] {
			return nil
		}
		lv, err := splitLatest(v)
		if err != nil {
			return err
		}
		out[a] = Point{Time: fromMS(lv.ts), Value: json.RawMessage(lv.value)}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// QueryTelemetry returns the series of each of attrs in [from, to), in the
// order of attrs (an attribute with no points has an empty series). With a
// positive granularity, points are grouped in buckets aligned to multiples of
// granularity since the Unix epoch, each bucket reduced by agg to one point
// stamped with the bucket's start; with granularity 0 the raw points come
// back. Fails with ErrNotFound for an unknown device, ErrInvalid for an empty
// attrs, a granularity under a millisecond or an unknown agg.
func (s *Store) QueryTelemetry(ctx context.Context, deviceID string, attrs []string,
	from, to time.Time, granularity time.Duration, agg Aggregation) ([]Series, error) {
	fail := func(err error) ([]Series, error) {
		return nil, fmt.Errorf("store: query telemetry of %s: %w", deviceID, err)
	}
	switch {
	case len(attrs) == 0:
		return fail(fmt.Errorf("no attributes: %w", ErrInvalid))
	case granularity < 0 || (granularity > 0 && granularity < time.Millisecond):
		return fail(fmt.Errorf("granularity %v is not 0 or at least 1ms: %w", granularity, ErrInvalid))
	}
	switch agg {
	case AggAuto, AggAvg, AggMin, AggMax, AggLast:
	default:
		return fail(fmt.Errorf("unknown aggregation %q: %w", agg, ErrInvalid))
	}
	key, ok, err := s.telemetryKey(ctx, deviceID)
	if err != nil {
		return fail(err)
	}
	g := granularity.Milliseconds()
	out := make([]Series, len(attrs))
	at := make(map[string][]int, len(attrs)) // attribute → its places in out
	for i, a := range attrs {
		out[i] = Series{Attribute: a, Points: []Point{}}
		at[a] = append(at[a], i)
	}
	if !ok {
		return out, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT ts, data FROM telemetry WHERE dkey = ? AND ts >= ? AND ts < ? ORDER BY ts",
		key, ms(from), ms(to))
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	buckets := make([]bucket, len(attrs))
	for rows.Next() {
		var (
			ts   int64
			data string
		)
		if err := rows.Scan(&ts, &data); err != nil {
			return fail(err)
		}
		start := ts
		if g > 0 {
			start = ts - ((ts%g)+g)%g // floor, also for times before 1970
		}
		err := eachMember(data, func(a, v string) error {
			for _, i := range at[a] {
				if g == 0 {
					out[i].Points = append(out[i].Points, Point{Time: fromMS(ts), Value: json.RawMessage(v)})
					continue
				}
				b := &buckets[i]
				if b.n > 0 && start != b.start {
					out[i].Points = append(out[i].Points, b.point(agg))
					*b = bucket{}
				}
				b.add(start, v)
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	for i := range buckets {
		if buckets[i].n > 0 {
			out[i].Points = append(out[i].Points, buckets[i].point(agg))
		}
	}
	return out, nil
}

// bucket accumulates one bucket of one attribute.
type bucket struct {
	start         int64
	n             int
	numeric       bool
	sum, min, max float64
	last          string
}

func (b *bucket) add(start int64, v string) {
	f, isNum := jsonNumber(v)
	if b.n == 0 {
		*b = bucket{start: start, numeric: isNum, min: f, max: f}
	}
	b.n++
	b.last = v
	if !isNum {
		b.numeric = false
		return
	}
	b.sum += f
	b.min, b.max = min(b.min, f), max(b.max, f)
}

func (b *bucket) point(agg Aggregation) Point {
	p := Point{Time: fromMS(b.start), Value: json.RawMessage(b.last)}
	if !b.numeric {
		return p
	}
	switch agg {
	case AggAuto, AggAvg:
		p.Value = formatNumber(b.sum / float64(b.n))
	case AggMin:
		p.Value = formatNumber(b.min)
	case AggMax:
		p.Value = formatNumber(b.max)
	}
	return p
}

// jsonNumber parses v if it is a JSON number.
func jsonNumber(v string) (float64, bool) {
	if v == "" || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

func formatNumber(f float64) json.RawMessage {
	return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64))
}

// deleteChunk bounds the telemetry rows (messages) one transaction of
// DeleteTelemetryBefore deletes, so that it holds the store's one writer
// for milliseconds, not the seconds a day of a device's messages takes.
const deleteChunk = 2000

// DeleteTelemetryBefore removes raw telemetry older than t and returns how
// many points (values) went. Latest values stay. It works a device at a
// time, at most deleteChunk messages per transaction, so that ingest is
// never held up for long.
func (s *Store) DeleteTelemetryBefore(ctx context.Context, t time.Time) (int64, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT dkey FROM device_keys ORDER BY dkey")
	if err != nil {
		return 0, fmt.Errorf("store: delete telemetry: %w", err)
	}
	var keys []int64
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: delete telemetry: %w", err)
		}
		keys = append(keys, k)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("store: delete telemetry: %w", err)
	}
	var total int64
	for _, k := range keys {
		for {
			var rowsGone int
			var points int64
			err := s.writeBulk(ctx, func(tx *sql.Tx) error {
				rowsGone, points = 0, 0
				// The rows up to the deleteChunk-th oldest, or all before t.
				rows, err := tx.QueryContext(ctx, `DELETE FROM telemetry WHERE dkey = ?1 AND ts < ?2 AND ts <= coalesce(
					(SELECT ts FROM telemetry WHERE dkey = ?1 AND ts < ?2 ORDER BY ts LIMIT 1 OFFSET ?3), ?2) RETURNING n`,
					k, ms(t), deleteChunk-1)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var n int64
					if err := rows.Scan(&n); err != nil {
						return err
					}
					points += n
					rowsGone++
				}
				return rows.Err()
			})
			if err != nil {
				return total, fmt.Errorf("store: delete telemetry: %w", err)
			}
			total += points
			if rowsGone < deleteChunk {
				break
			}
		}
	}
	return total, nil
}
