package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

type latestKey struct{ device, attr string }

type latestVal struct {
	ts    int64
	value string
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		exists, err := newDeviceCheck(ctx, tx)
		if err != nil {
			return err
		}
		defer exists.close()
		stored, err = appendTelemetry(ctx, tx, exists, samples, alerts)
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
// that do not exist; it returns how many it wrote.
func appendTelemetry(ctx context.Context, tx *sql.Tx, exists *deviceCheck, samples []Sample, alerts []string) (stored int, err error) {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO telemetry (device_id, attribute, ts, value) VALUES (?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET value = excluded.value`)
	if err != nil {
		return 0, err
	}
	defer ins.Close()

	// The rows are executed with a context that cannot be cancelled: with
	// one that can, the SQLite driver starts a goroutine per statement to
	// interrupt it (some 10% of the hub's CPU at 10 values a message,
	// BENCHMARKS.md "Hub: a fleet of devices"). Each row takes microseconds;
	// ctx is checked once per sample instead, which bounds the batch as well.
	rowCtx := context.WithoutCancel(ctx)
	latest := make(map[latestKey]latestVal)
	put := func(dev, attr string, ts int64, v string) error {
		if _, err := ins.ExecContext(rowCtx, dev, attr, ts, v); err != nil {
			return err
		}
		k := latestKey{dev, attr}
		if cur, ok := latest[k]; !ok || ts >= cur.ts {
			latest[k] = latestVal{ts, v}
		}
		return nil
	}
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
		ts := ms(sm.Time)
		for a, v := range sm.Values {
			if err := put(sm.DeviceID, a, ts, string(v)); err != nil {
				return 0, err
			}
		}
		if sm.Alerts != nil {
			if err := put(sm.DeviceID, AlertsAttribute, ts, alerts[i]); err != nil {
				return 0, err
			}
		}
		stored++
	}

	up, err := tx.PrepareContext(ctx, `INSERT INTO telemetry_latest (device_id, attribute, ts, value) VALUES (?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts >= telemetry_latest.ts`)
	if err != nil {
		return 0, err
	}
	defer up.Close()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for k, v := range latest {
		if _, err := up.ExecContext(rowCtx, k.device, k.attr, v.ts, v.value); err != nil {
			return 0, err
		}
	}
	return stored, nil
}

// deviceCheck answers, within one transaction, whether devices exist,
// asking SQLite once per device.
type deviceCheck struct {
	stmt  *sql.Stmt
	known map[string]bool
}

func newDeviceCheck(ctx context.Context, tx *sql.Tx) (*deviceCheck, error) {
	stmt, err := tx.PrepareContext(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?)")
	if err != nil {
		return nil, err
	}
	return &deviceCheck{stmt: stmt, known: make(map[string]bool)}, nil
}

func (c *deviceCheck) check(ctx context.Context, deviceID string) (bool, error) {
	ok, seen := c.known[deviceID]
	if seen {
		return ok, nil
	}
	if err := c.stmt.QueryRowContext(ctx, deviceID).Scan(&ok); err != nil {
		return false, err
	}
	c.known[deviceID] = ok
	return ok, nil
}

func (c *deviceCheck) close() { _ = c.stmt.Close() }

// checkDevice returns ErrNotFound unless the device exists.
func (s *Store) checkDevice(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, deviceID string) error {
	var ok bool
	if err := q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?)", deviceID).Scan(&ok); err != nil {
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

// LatestTelemetry returns the latest value of each of attrs (every attribute
// when attrs is empty) that the device has ever sent; attributes never sent
// are absent from the map. Fails with ErrNotFound for an unknown device.
func (s *Store) LatestTelemetry(ctx context.Context, deviceID string, attrs []string) (map[string]Point, error) {
	if err := s.checkDevice(ctx, s.r, deviceID); err != nil {
		return nil, fmt.Errorf("store: latest telemetry of %s: %w", deviceID, err)
	}
	q := "SELECT attribute, ts, value FROM telemetry_latest WHERE device_id = ?"
	args := []any{deviceID}
	if len(attrs) > 0 {
		q += " AND attribute IN " + inList(len(attrs))
		for _, a := range attrs {
			args = append(args, a)
		}
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: latest telemetry of %s: %w", deviceID, err)
	}
	defer rows.Close()
	out := make(map[string]Point)
	for rows.Next() {
		var (
			a, v string
			ts   int64
		)
		if err := rows.Scan(&a, &ts, &v); err != nil {
			return nil, fmt.Errorf("store: latest telemetry of %s: %w", deviceID, err)
		}
		out[a] = Point{Time: fromMS(ts), Value: json.RawMessage(v)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: latest telemetry of %s: %w", deviceID, err)
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
	if err := s.checkDevice(ctx, s.r, deviceID); err != nil {
		return fail(err)
	}
	g := granularity.Milliseconds()
	out := make([]Series, len(attrs))
	stmt, err := s.r.PrepareContext(ctx, `SELECT ts, value FROM telemetry
		WHERE device_id = ? AND attribute = ? AND ts >= ? AND ts < ? ORDER BY ts`)
	if err != nil {
		return fail(err)
	}
	defer stmt.Close()
	for i, a := range attrs {
		out[i] = Series{Attribute: a, Points: []Point{}}
		rows, err := stmt.QueryContext(ctx, deviceID, a, ms(from), ms(to))
		if err != nil {
			return fail(err)
		}
		var b bucket
		for rows.Next() {
			var (
				ts int64
				v  string
			)
			if err := rows.Scan(&ts, &v); err != nil {
				rows.Close()
				return fail(err)
			}
			if g == 0 {
				out[i].Points = append(out[i].Points, Point{Time: fromMS(ts), Value: json.RawMessage(v)})
				continue
			}
			start := ts - ((ts%g)+g)%g // floor, also for times before 1970
			if b.n > 0 && start != b.start {
				out[i].Points = append(out[i].Points, b.point(agg))
				b = bucket{}
			}
			b.add(start, v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fail(err)
		}
		if b.n > 0 {
			out[i].Points = append(out[i].Points, b.point(agg))
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

// DeleteTelemetryBefore removes raw telemetry older than t and returns how
// many points went. Latest values stay. It works one device attribute per
// transaction, so that ingest is never held up for long.
func (s *Store) DeleteTelemetryBefore(ctx context.Context, t time.Time) (int64, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT device_id, attribute FROM telemetry_latest")
	if err != nil {
		return 0, fmt.Errorf("store: delete telemetry: %w", err)
	}
	var keys []latestKey
	for rows.Next() {
		var k latestKey
		if err := rows.Scan(&k.device, &k.attr); err != nil {
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
	slices.SortFunc(keys, func(a, b latestKey) int {
		return strings.Compare(a.device+"\x00"+a.attr, b.device+"\x00"+b.attr)
	})
	var total int64
	for _, k := range keys {
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx,
				"DELETE FROM telemetry WHERE device_id = ? AND attribute = ? AND ts < ?", k.device, k.attr, ms(t))
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("store: delete telemetry: %w", err)
		}
	}
	return total, nil
}
