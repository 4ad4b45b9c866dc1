package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWriteBatch(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	res, err := s.WriteBatch(ctx, Batch{
		Connectivity: []ConnectivityChange{
			{DeviceID: d.ID, Online: true, At: t0},
			{DeviceID: "deleted", Online: true, At: t0},
			{DeviceID: d.ID, Online: true, At: t0.Add(time.Second)}, // last seen moves on
		},
		Samples: []Sample{
			{DeviceID: d.ID, Time: t0, Values: vals("power", "10"), Alerts: []string{"hot"}},
			{DeviceID: "deleted", Time: t0, Values: vals("power", "1")},
		},
		Logs: []LogEntry{
			{DeviceID: d.ID, Time: t0, Severity: "info", Message: "hello"},
			{DeviceID: "deleted", Time: t0, Severity: "info", Message: "gone"},
		},
		Properties: map[string]Properties{
			d.ID:      {Time: t0, Values: vals("vendor", `"acme"`)},
			"deleted": {Time: t0, Values: vals("vendor", `"x"`)},
		},
		Malformed: []MalformedMessage{{d.ID, "v1/telemetry"}, {d.ID, "v1/telemetry"}, {"deleted", "v1/telemetry"}},
	})
	if err != nil || res != (BatchResult{Samples: 1, Logs: 1}) {
		t.Fatalf("WriteBatch = %+v, %v; want 1 sample and 1 log entry", res, err)
	}
	if pts, err := s.LatestTelemetry(ctx, d.ID, nil); err != nil || string(pts["power"].Value) != "10" || string(pts[AlertsAttribute].Value) != `["hot"]` {
		t.Errorf("latest = %+v, %v", pts, err)
	}
	if ls, err := s.ListLogs(ctx, d.ID, time.Time{}, 10); err != nil || len(ls) != 1 || ls[0].Message != "hello" {
		t.Errorf("logs = %+v, %v", ls, err)
	}
	if p, err := s.GetProperties(ctx, d.ID); err != nil || string(p.Values["vendor"]) != `"acme"` || !p.Time.Equal(t0) {
		t.Errorf("properties = %+v, %v", p, err)
	}
	if m, err := s.MalformedCounts(ctx, d.ID); err != nil || m["v1/telemetry"].Count != 2 {
		t.Errorf("malformed = %+v, %v", m, err)
	}
	if c, err := s.GetConnectivity(ctx, d.ID); err != nil || !c.Online || !c.ChangedAt.Equal(t0) || !c.LastSeen.Equal(t0.Add(time.Second)) {
		t.Errorf("connectivity = %+v, %v", c, err)
	}
	if res, err := s.WriteBatch(ctx, Batch{}); err != nil || res != (BatchResult{}) {
		t.Errorf("empty batch: %+v, %v", res, err)
	}
}

func TestWriteBatchInvalidWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	good := Sample{DeviceID: d.ID, Time: t0, Values: vals("a", "1")}
	for _, tc := range []struct {
		name string
		b    Batch
	}{
		{"reserved attribute", Batch{Samples: []Sample{good, {DeviceID: d.ID, Time: t0, Values: vals("timestamp", "1")}}}},
		{"log without time", Batch{Samples: []Sample{good}, Logs: []LogEntry{{DeviceID: d.ID, Message: "x"}}}},
		{"properties not JSON", Batch{Samples: []Sample{good}, Properties: map[string]Properties{d.ID: {Time: t0, Values: vals("a", "{")}}}},
		{"connectivity without device", Batch{Samples: []Sample{good}, Connectivity: []ConnectivityChange{{At: t0}}}},
		{"malformed without device", Batch{Samples: []Sample{good}, Malformed: []MalformedMessage{{Kind: "x"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.WriteBatch(ctx, tc.b); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if pts, err := s.LatestTelemetry(ctx, d.ID, nil); err != nil || len(pts) != 0 {
				t.Errorf("latest = %+v, %v; want nothing written", pts, err)
			}
		})
	}
}
