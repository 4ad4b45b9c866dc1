package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func vals(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = raw(kv[i+1])
	}
	return m
}

func TestAppendAndLatestTelemetry(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	n, err := s.AppendTelemetry(ctx, []Sample{
		{DeviceID: d.ID, Time: t0, Values: vals("power", "10", "status", `"ok"`), Alerts: []string{}},
		{DeviceID: d.ID, Time: t0.Add(2 * time.Second), Values: vals("power", "12"), Alerts: []string{"overheat"}},
		// arrives late: goes into the series, not into latest
		{DeviceID: d.ID, Time: t0.Add(time.Second), Values: vals("power", "11", "status", `"late"`)},
		{DeviceID: "deleted-device", Time: t0, Values: vals("power", "1")},
	})
	if err != nil || n != 3 {
		t.Fatalf("AppendTelemetry = %d, %v; want 3 stored", n, err)
	}
	for _, tc := range []struct {
		name  string
		attrs []string
		want  map[string]string // attr -> "ts-offset value"
	}{
		{"all", nil, map[string]string{"power": "2s 12", "status": `1s "late"`, "alerts": `2s ["overheat"]`}},
		{"some", []string{"power", "missing"}, map[string]string{"power": "2s 12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.LatestTelemetry(ctx, d.ID, tc.attrs)
			if err != nil {
				t.Fatal(err)
			}
			gotS := map[string]string{}
			for a, p := range got {
				gotS[a] = fmt.Sprintf("%v %s", p.Time.Sub(t0), p.Value)
			}
			if fmt.Sprint(gotS) != fmt.Sprint(tc.want) {
				t.Errorf("latest = %v, want %v", gotS, tc.want)
			}
		})
	}
	// "status" at 1s is newer than its 0s value, so latest status is "late".

	t.Run("unknown device", func(t *testing.T) {
		if _, err := s.LatestTelemetry(ctx, "nope", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("duplicate replaces", func(t *testing.T) {
		if _, err := s.AppendTelemetry(ctx, []Sample{{DeviceID: d.ID, Time: t0, Values: vals("power", "99")}}); err != nil {
			t.Fatal(err)
		}
		series, err := s.QueryTelemetry(ctx, d.ID, []string{"power"}, t0, t0.Add(time.Millisecond), 0, AggAuto)
		if err != nil || len(series[0].Points) != 1 || string(series[0].Points[0].Value) != "99" {
			t.Errorf("series = %+v, %v", series, err)
		}
	})
}

func TestAppendTelemetryInvalid(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	good := Sample{DeviceID: d.ID, Time: t0, Values: vals("a", "1")}
	for _, tc := range []struct {
		name string
		bad  Sample
		msg  string
	}{
		{"reserved timestamp", Sample{DeviceID: d.ID, Time: t0, Values: vals("timestamp", "1")}, "reserved"},
		{"reserved alerts", Sample{DeviceID: d.ID, Time: t0, Values: vals("alerts", "[]")}, "reserved"},
		{"empty attribute", Sample{DeviceID: d.ID, Time: t0, Values: vals("", "1")}, "empty attribute"},
		{"invalid json", Sample{DeviceID: d.ID, Time: t0, Values: vals("a", "{")}, "not valid JSON"},
		{"zero time", Sample{DeviceID: d.ID, Values: vals("a", "1")}, "zero time"},
		{"empty device", Sample{Time: t0, Values: vals("a", "1")}, "empty device id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := s.AppendTelemetry(ctx, []Sample{good, tc.bad})
			if n != 0 || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("AppendTelemetry = %d, %v; want 0, ErrInvalid mentioning %q", n, err, tc.msg)
			}
		})
	}
	if got, _ := s.LatestTelemetry(ctx, d.ID, nil); len(got) != 0 {
		t.Errorf("a failed batch stored %v", got)
	}
}

func TestQueryTelemetry(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	// 0s..5s: num = 0,1,2,3,4,5; str = "s0".."s5"; mixed is a number except at 4s.
	var samples []Sample
	for i := range 6 {
		mixed := fmt.Sprint(i)
		if i == 4 {
			mixed = "null"
		}
		samples = append(samples, Sample{DeviceID: d.ID, Time: t0.Add(time.Duration(i) * time.Second),
			Values: vals("num", fmt.Sprint(i), "str", fmt.Sprintf(`"s%d"`, i), "mixed", mixed)})
	}
	if _, err := s.AppendTelemetry(ctx, samples); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		attrs    []string
		from, to time.Duration
		g        time.Duration
		agg      Aggregation
		want     string // per series "attr: off=value ..." joined by "; "
	}{
		{"raw", []string{"num"}, 0, 3 * time.Second, 0, AggAuto, "num: 0s=0 1s=1 2s=2"},
		{"avg of numbers", []string{"num"}, 0, time.Hour, 2 * time.Second, AggAuto, "num: 0s=0.5 2s=2.5 4s=4.5"},
		{"explicit avg", []string{"num"}, 0, time.Hour, 3 * time.Second, AggAvg, "num: 0s=1 3s=4"},
		{"min", []string{"num"}, 0, time.Hour, 3 * time.Second, AggMin, "num: 0s=0 3s=3"},
		{"max", []string{"num"}, 0, time.Hour, 3 * time.Second, AggMax, "num: 0s=2 3s=5"},
		{"last", []string{"num"}, 0, time.Hour, 3 * time.Second, AggLast, "num: 0s=2 3s=5"},
		{"strings take last", []string{"str"}, 0, time.Hour, 2 * time.Second, AggAvg, `str: 0s="s1" 2s="s3" 4s="s5"`},
		{"mixed bucket takes last", []string{"mixed"}, 0, time.Hour, 2 * time.Second, AggAuto, "mixed: 0s=0.5 2s=2.5 4s=5"},
		{"range is half open", []string{"num"}, time.Second, 3 * time.Second, time.Minute, AggAuto, "num: 0s=1.5"},
		{"several attributes in order", []string{"str", "num", "none"}, 4 * time.Second, time.Hour, 0, AggAuto,
			`str: 4s="s4" 5s="s5"; num: 4s=4 5s=5; none:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.QueryTelemetry(ctx, d.ID, tc.attrs, t0.Add(tc.from), t0.Add(tc.to), tc.g, tc.agg)
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, se := range got {
				p := se.Attribute + ":"
				for _, pt := range se.Points {
					p += fmt.Sprintf(" %v=%s", pt.Time.Sub(t0), pt.Value)
				}
				parts = append(parts, p)
			}
			if s := strings.Join(parts, "; "); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		id    string
		attrs []string
		g     time.Duration
		agg   Aggregation
		want  error
	}{
		{"unknown device", "nope", []string{"num"}, 0, AggAuto, ErrNotFound},
		{"no attributes", d.ID, nil, 0, AggAuto, ErrInvalid},
		{"negative granularity", d.ID, []string{"num"}, -time.Second, AggAuto, ErrInvalid},
		{"sub-millisecond granularity", d.ID, []string{"num"}, time.Microsecond, AggAuto, ErrInvalid},
		{"unknown aggregation", d.ID, []string{"num"}, time.Second, "median", ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.QueryTelemetry(ctx, tc.id, tc.attrs, t0, t0.Add(time.Hour), tc.g, tc.agg); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDeleteTelemetryBefore(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a := mkDevice(t, s, 1)
	b := mkDevice(t, s, 2)
	var samples []Sample
	for i := range 10 {
		for _, d := range []Device{a, b} {
			samples = append(samples, Sample{DeviceID: d.ID, Time: t0.Add(time.Duration(i) * time.Minute),
				Values: vals("x", fmt.Sprint(i), "y", "true"), Alerts: []string{}})
		}
	}
	if _, err := s.AppendTelemetry(ctx, samples); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteTelemetryBefore(ctx, t0.Add(4*time.Minute))
	if err != nil || n != 4*3*2 {
		t.Fatalf("DeleteTelemetryBefore = %d, %v; want %d", n, err, 4*3*2)
	}
	for _, d := range []Device{a, b} {
		got, err := s.QueryTelemetry(ctx, d.ID, []string{"x", "y", AlertsAttribute}, time.Time{}, t0.Add(time.Hour), 0, AggAuto)
		if err != nil {
			t.Fatal(err)
		}
		for _, se := range got {
			if len(se.Points) != 6 || !se.Points[0].Time.Equal(t0.Add(4*time.Minute)) {
				t.Errorf("%s: %d points from %v, want 6 from +4m", se.Attribute, len(se.Points), se.Points[0].Time)
			}
		}
	}
	// Retention keeps the latest value even when it is older than the cut.
	if _, err := s.DeleteTelemetryBefore(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	latest, err := s.LatestTelemetry(ctx, a.ID, nil)
	if err != nil || len(latest) != 3 || string(latest["x"].Value) != "9" {
		t.Errorf("latest after retention = %v, %v", latest, err)
	}
}

// A deleted device's telemetry key may be given to the next device (the
// key is a rowid); the key cached for the deleted one must never carry the
// new device's rows, nor the new device see the old one's values.
func TestDeviceKeyReusedAfterDelete(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	a := mkDevice(t, s, 1)
	for i := range 2 { // the second transaction reads, and caches, a's key
		if _, err := s.WriteBatch(ctx, Batch{Samples: []Sample{{DeviceID: a.ID, Time: t0.Add(time.Duration(i) * time.Second), Values: vals("power", "1", "old", "1")}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteDevice(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	b := mkDevice(t, s, 2)
	for i := range 2 {
		if _, err := s.WriteBatch(ctx, Batch{Samples: []Sample{
			{DeviceID: a.ID, Time: t0.Add(time.Minute), Values: vals("power", "666")}, // deleted: skipped
			{DeviceID: b.ID, Time: t0.Add(time.Duration(i) * time.Second), Values: vals("power", "2")},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LatestTelemetry(ctx, b.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["power"].Value) != "2" {
		t.Fatalf("latest of the new device = %v, want only power 2", got)
	}
	if _, err := s.LatestTelemetry(ctx, a.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("latest of the deleted device: %v, want ErrNotFound", err)
	}
}
