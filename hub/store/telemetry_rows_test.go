package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// latestS renders LatestTelemetry as attr → "offset value" for comparing.
func latestS(t *testing.T, s *Store, id string, attrs ...string) string {
	t.Helper()
	got, err := s.LatestTelemetry(context.Background(), id, attrs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for a, p := range got {
		out[a] = fmt.Sprintf("%v %s", p.Time.Sub(t0), p.Value)
	}
	return fmt.Sprint(out)
}

// seriesS renders QueryTelemetry's raw points as attr: offset=value ….
func seriesS(t *testing.T, s *Store, id string, attrs ...string) string {
	t.Helper()
	series, err := s.QueryTelemetry(context.Background(), id, attrs, t0.Add(-time.Hour), t0.Add(time.Hour), 0, AggAuto)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, sr := range series {
		fmt.Fprintf(&b, "%s:", sr.Attribute)
		for _, p := range sr.Points {
			fmt.Fprintf(&b, " %v=%s", p.Time.Sub(t0), p.Value)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// A message repeating a device and timestamp replaces the values of its
// attributes and keeps the others, as the row-per-value schema's primary
// key did, whether the two come in one batch or in two.
func TestSameTimestampMerges(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	if _, err := s.AppendTelemetry(ctx, []Sample{
		{DeviceID: d.ID, Time: t0, Values: vals("a", "1", "b", "2")},
		{DeviceID: d.ID, Time: t0, Values: vals("b", "20", "c", "30")},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendTelemetry(ctx, []Sample{{DeviceID: d.ID, Time: t0, Values: vals("c", "300"), Alerts: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := seriesS(t, s, d.ID, "a", "b", "c", "alerts"), `a: 0s=1; b: 0s=20; c: 0s=300; alerts: 0s=["x"]; `; got != want {
		t.Errorf("series %s, want %s", got, want)
	}
	if got, want := latestS(t, s, d.ID), `map[a:0s 1 alerts:0s ["x"] b:0s 20 c:0s 300]`; got != want {
		t.Errorf("latest %s, want %s", got, want)
	}
	n, err := s.DeleteTelemetryBefore(ctx, t0.Add(time.Second))
	if err != nil || n != 4 {
		t.Errorf("DeleteTelemetryBefore = %d, %v; want the 4 values of the merged message", n, err)
	}
}

// An attribute a message does not carry has no point at its time, keeps
// its latest value from an older message, and a message with neither
// values nor alerts stores nothing but counts as stored.
func TestAttributesAbsentInSomeMessages(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	n, err := s.AppendTelemetry(ctx, []Sample{
		{DeviceID: d.ID, Time: t0, Values: vals("a", "1", "b", `"x"`)},
		{DeviceID: d.ID, Time: t0.Add(time.Second), Values: vals("a", "2")},
		{DeviceID: d.ID, Time: t0.Add(2 * time.Second), Alerts: []string{}},
		{DeviceID: d.ID, Time: t0.Add(3 * time.Second)},
	})
	if err != nil || n != 4 {
		t.Fatalf("AppendTelemetry = %d, %v", n, err)
	}
	if got, want := seriesS(t, s, d.ID, "a", "b", "alerts", "a", "never"), `a: 0s=1 1s=2; b: 0s="x"; alerts: 2s=[]; a: 0s=1 1s=2; never:; `; got != want {
		t.Errorf("series %s, want %s", got, want)
	}
	if got, want := latestS(t, s, d.ID), `map[a:1s 2 alerts:2s [] b:0s "x"]`; got != want {
		t.Errorf("latest %s, want %s", got, want)
	}
	series, err := s.QueryTelemetry(ctx, d.ID, []string{"a", "b"}, t0, t0.Add(time.Minute), time.Minute, AggAvg)
	if err != nil || fmt.Sprint(series) != `[{a [{2025-06-01 12:00:00 +0000 UTC [49 46 53]}]} {b [{2025-06-01 12:00:00 +0000 UTC [34 120 34]}]}]` {
		t.Errorf("buckets %v, %v", series, err)
	}
}

// Values come back as the device sent them: white space, escapes,
// nesting, attribute names that need quoting.
func TestTelemetryValuesVerbatim(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	odd := map[string]string{
		`quote"d`: `"a \"}\" ,] string"`,
		`back\sl`: ` [1, {"x": [2, "]"]}] `,
		"ünïcode": `null`,
		"<html>":  `{}`,
		"num":     `-1.5e3`,
	}
	var kv []string
	for a, v := range odd {
		kv = append(kv, a, v)
	}
	if _, err := s.AppendTelemetry(ctx, []Sample{{DeviceID: d.ID, Time: t0, Values: vals(kv...)}}); err != nil {
		t.Fatal(err)
	}
	latest, err := s.LatestTelemetry(ctx, d.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for a, v := range odd {
		if got := string(latest[a].Value); got != v {
			t.Errorf("latest %q = %q, want %q", a, got, v)
		}
		series, err := s.QueryTelemetry(ctx, d.ID, []string{a}, t0, t0.Add(time.Second), 0, AggAuto)
		if err != nil || len(series[0].Points) != 1 || string(series[0].Points[0].Value) != v {
			t.Errorf("series %q = %+v, %v; want %q", a, series, err, v)
		}
	}
}

// Expiry deletes in bounded transactions and counts values, not messages.
func TestDeleteTelemetryBeforeInChunks(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	const msgs = 2*deleteChunk + 7
	samples := make([]Sample, msgs)
	for i := range samples {
		samples[i] = Sample{DeviceID: d.ID, Time: t0.Add(time.Duration(i) * time.Second), Values: vals("a", "1", "b", "2")}
	}
	if _, err := s.AppendTelemetry(ctx, samples); err != nil {
		t.Fatal(err)
	}
	cut := msgs - 3
	n, err := s.DeleteTelemetryBefore(ctx, t0.Add(time.Duration(cut)*time.Second))
	if err != nil || n != int64(2*cut) {
		t.Fatalf("DeleteTelemetryBefore = %d, %v; want %d", n, err, 2*cut)
	}
	series, err := s.QueryTelemetry(ctx, d.ID, []string{"a"}, t0, t0.Add(time.Hour*24), 0, AggAuto)
	if err != nil || len(series[0].Points) != 3 || !series[0].Points[0].Time.Equal(t0.Add(time.Duration(cut)*time.Second)) {
		t.Fatalf("left: %+v, %v", series, err)
	}
}

// A data folder at schema 3 (a row per value, keyed by the device's id)
// keeps its telemetry: series, buckets, latest values and alerts read the
// same after the migration, and new messages go on from there.
func TestMigrateTelemetryToRowPerMessage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	db := rawDB(t, path)
	if err := migrateTo(ctx, db, migrations[:3]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO devices (id, name, slug, hardware_id, channel_id, created_at, updated_at) VALUES
			('d1', 'one', 'one', 'HW1', 'ch', 1, 1), ('d2', 'two', 'two', 'HW2', 'ch', 1, 1), ('d3', 'quiet', 'quiet', 'HW3', 'ch', 1, 1)`,
		fmt.Sprintf(`INSERT INTO telemetry (device_id, attribute, ts, value) VALUES
			('d1', 'power', %[1]d, '10'), ('d1', 'status', %[1]d, '"ok"'), ('d1', 'alerts', %[1]d, '[]'),
			('d1', 'power', %[1]d + 1000, '12'), ('d1', 'alerts', %[1]d + 1000, '["hot"]'),
			('d1', 'status', %[1]d + 2000, ' [1, "}"] '), ('d1', 'we"ird', %[1]d + 2000, 'null'),
			('d2', 'power', %[1]d, '5')`, ms(t0)),
		fmt.Sprintf(`INSERT INTO telemetry_latest (device_id, attribute, ts, value) VALUES
			('d1', 'power', %[1]d + 1000, '12'), ('d1', 'alerts', %[1]d + 1000, '["hot"]'),
			('d1', 'status', %[1]d + 2000, ' [1, "}"] '), ('d1', 'we"ird', %[1]d + 2000, 'null'),
			('d2', 'power', %[1]d, '5')`, ms(t0)),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := openAt(t, path)
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("version %d, %v", v, err)
	}
	if got, want := seriesS(t, s, "d1", "power", "status", "alerts", `we"ird`),
		`power: 0s=10 1s=12; status: 0s="ok" 2s= [1, "}"] ; alerts: 0s=[] 1s=["hot"]; we"ird: 2s=null; `; got != want {
		t.Errorf("d1 series %s\nwant %s", got, want)
	}
	if got, want := latestS(t, s, "d1"), `map[alerts:1s ["hot"] power:1s 12 status:2s  [1, "}"]  we"ird:2s null]`; got != want {
		t.Errorf("d1 latest %s\nwant %s", got, want)
	}
	if got, want := latestS(t, s, "d2"), `map[power:0s 5]`; got != want {
		t.Errorf("d2 latest %s, want %s", got, want)
	}
	if got, want := latestS(t, s, "d3"), `map[]`; got != want {
		t.Errorf("d3 latest %s, want %s", got, want)
	}
	var rows int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM telemetry").Scan(&rows); err != nil || rows != 4 {
		t.Errorf("%d telemetry rows (%v), want 4: one per message", rows, err)
	}
	// New telemetry after the migration: d3's first, d1's next.
	if _, err := s.AppendTelemetry(ctx, []Sample{
		{DeviceID: "d1", Time: t0.Add(3 * time.Second), Values: vals("power", "13")},
		{DeviceID: "d3", Time: t0.Add(3 * time.Second), Values: vals("power", "1")},
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := latestS(t, s, "d1", "power", "status"), `map[power:3s 13 status:2s  [1, "}"] ]`; got != want {
		t.Errorf("d1 latest after %s, want %s", got, want)
	}
	if got, want := latestS(t, s, "d3"), `map[power:3s 1]`; got != want {
		t.Errorf("d3 latest after %s, want %s", got, want)
	}
	n, err := s.DeleteTelemetryBefore(ctx, t0.Add(2*time.Second))
	if err != nil || n != 6 {
		t.Errorf("DeleteTelemetryBefore = %d, %v; want the 6 values before 2s", n, err)
	}
	if err := s.DeleteDevice(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM telemetry").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d telemetry rows (%v) after deleting d1, want d3's 1", rows, err)
	}
}

func TestEachMember(t *testing.T) {
	for _, tc := range []struct{ obj, want string }{
		{`{}`, ``},
		{` { } `, ``},
		{`{"a":1}`, `a=1;`},
		{`{"a": 1 ,"b":[1,[2]],"c":{"d":"}"}}`, `a= 1 ;b=[1,[2]];c={"d":"}"};`},
		{`{"\u0061\"":"x\\"}`, `a"="x\\";`},
	} {
		var b strings.Builder
		err := eachMember(tc.obj, func(a, v string) error { fmt.Fprintf(&b, "%s=%s;", a, v); return nil })
		if err != nil || b.String() != tc.want {
			t.Errorf("eachMember(%s) = %q, %v; want %q", tc.obj, b.String(), err, tc.want)
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1`, `{"a":1,}`, `{"a":"x}`, `{"a":[1}`, `{a:1}`} {
		if err := eachMember(bad, func(string, string) error { return nil }); err == nil {
			t.Errorf("eachMember(%s): no error", bad)
		}
	}
}
