package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestProperties(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	if p, err := s.GetProperties(ctx, d.ID); err != nil || !p.Time.IsZero() || p.Values != nil {
		t.Errorf("before any: %+v, %v; want zero", p, err)
	}
	steps := []struct {
		name    string
		at      time.Duration
		values  map[string]json.RawMessage
		wantAt  time.Duration
		wantVal string
	}{
		{"first", time.Second, vals("model", `"X1"`, "fw", `"1.0"`), time.Second, `"1.0"`},
		{"newer replaces", 3 * time.Second, vals("fw", `"2.0"`), 3 * time.Second, `"2.0"`},
		{"older is ignored", 2 * time.Second, vals("fw", `"1.5"`), 3 * time.Second, `"2.0"`},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := s.SetProperties(ctx, d.ID, t0.Add(st.at), st.values); err != nil {
				t.Fatal(err)
			}
			p, err := s.GetProperties(ctx, d.ID)
			if err != nil || !p.Time.Equal(t0.Add(st.wantAt)) || string(p.Values["fw"]) != st.wantVal {
				t.Errorf("got %+v, %v", p, err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		id   string
		at   time.Time
		v    map[string]json.RawMessage
		want error
	}{
		{"unknown device", "nope", t0, vals("a", "1"), ErrNotFound},
		{"zero time", d.ID, time.Time{}, vals("a", "1"), ErrInvalid},
		{"invalid json", d.ID, t0, vals("a", "{"), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetProperties(ctx, tc.id, tc.at, tc.v); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s.GetProperties(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetProperties(unknown) = %v, want ErrNotFound", err)
	}
}

func TestConnectivity(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	if c, err := s.GetConnectivity(ctx, d.ID); err != nil || c.Known {
		t.Errorf("before any: %+v, %v", c, err)
	}
	for _, st := range []struct {
		name                string
		online              bool
		at                  time.Duration
		wantOnline          bool
		wantChanged, wantLS time.Duration
	}{
		{"connect", true, 0, true, 0, 0},
		{"still online", true, 10 * time.Second, true, 0, 10 * time.Second},
		{"disconnect", false, 20 * time.Second, false, 20 * time.Second, 20 * time.Second},
		{"late event keeps last seen", false, 5 * time.Second, false, 20 * time.Second, 20 * time.Second},
	} {
		t.Run(st.name, func(t *testing.T) {
			if err := s.SetConnectivity(ctx, d.ID, st.online, t0.Add(st.at)); err != nil {
				t.Fatal(err)
			}
			c, err := s.GetConnectivity(ctx, d.ID)
			if err != nil || !c.Known || c.Online != st.wantOnline ||
				!c.ChangedAt.Equal(t0.Add(st.wantChanged)) || !c.LastSeen.Equal(t0.Add(st.wantLS)) {
				t.Errorf("got %+v, %v", c, err)
			}
		})
	}
	if err := s.SetConnectivity(ctx, "nope", true, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetConnectivity(unknown) = %v", err)
	}
	if _, err := s.GetConnectivity(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetConnectivity(unknown) = %v", err)
	}
}

func TestLogs(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	var entries []LogEntry
	for i := range 5 {
		entries = append(entries, LogEntry{DeviceID: d.ID, Time: t0.Add(time.Duration(i) * time.Second),
			Severity: "info", Message: fmt.Sprintf("m%d", i), Persist: i%2 == 0})
	}
	entries = append(entries, LogEntry{DeviceID: "gone", Time: t0, Message: "lost"})
	if n, err := s.AppendLogs(ctx, entries); err != nil || n != 5 {
		t.Fatalf("AppendLogs = %d, %v; want 5", n, err)
	}
	for _, tc := range []struct {
		name  string
		since time.Duration
		limit int
		want  string
	}{
		{"all", -1, 0, "[m0 m1 m2 m3 m4]"},
		{"latest two", -1, 2, "[m3 m4]"},
		{"since", 3 * time.Second, 0, "[m3 m4]"},
		{"since and limit", time.Second, 1, "[m4]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			since := time.Time{}
			if tc.since >= 0 {
				since = t0.Add(tc.since)
			}
			got, err := s.ListLogs(ctx, d.ID, since, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, e := range got {
				msgs = append(msgs, e.Message)
			}
			if fmt.Sprint(msgs) != tc.want {
				t.Errorf("got %v, want %s", msgs, tc.want)
			}
		})
	}
	got, _ := s.ListLogs(ctx, d.ID, time.Time{}, 1)
	if e := got[0]; e.DeviceID != d.ID || !e.Time.Equal(t0.Add(4*time.Second)) || !e.Persist || e.Severity != "info" || e.ID == 0 {
		t.Errorf("entry %+v", e)
	}
	if _, err := s.ListLogs(ctx, "nope", time.Time{}, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListLogs(unknown) = %v", err)
	}
	if _, err := s.AppendLogs(ctx, []LogEntry{{DeviceID: d.ID}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("AppendLogs(zero time) = %v", err)
	}
	if n, err := s.DeleteLogsBefore(ctx, t0.Add(2*time.Second)); err != nil || n != 2 {
		t.Errorf("DeleteLogsBefore = %d, %v; want 2", n, err)
	}
}

func TestMalformed(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	for _, k := range []string{"telemetry", "telemetry", "properties"} {
		if err := s.IncrementMalformed(ctx, d.ID, k); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.MalformedCounts(ctx, d.ID)
	if err != nil || len(got) != 2 || got["telemetry"].Count != 2 || got["properties"].Count != 1 || got["telemetry"].Last.IsZero() {
		t.Errorf("MalformedCounts = %+v, %v", got, err)
	}
	if err := s.IncrementMalformed(ctx, "nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("IncrementMalformed(unknown) = %v", err)
	}
	if _, err := s.MalformedCounts(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("MalformedCounts(unknown) = %v", err)
	}
}

func TestExecutionLifecycle(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	e, err := s.CreateExecution(ctx, d.ID, ExecutionRequest{Name: "set_power", Arguments: raw(`{"w":5}`), ManifestName: "set_power"})
	if err != nil {
		t.Fatal(err)
	}
	if e.State != ExecutionNew || e.Response != nil || len(e.Log) != 0 || len(e.ID) != 36 {
		t.Fatalf("created %+v", e)
	}
	steps := []struct {
		name      string
		resp      ExecutionResponse
		wantState ExecutionState
		wantLog   int
		wantErr   error
	}{
		{"started", ExecutionResponse{State: ResponseStarted}, ExecutionInProgress, 1, nil},
		{"progress", ExecutionResponse{State: ResponseInProgress, Payload: raw(`{"message":"50%"}`), ReceivedAt: t0}, ExecutionInProgress, 2, nil},
		{"succeeded", ExecutionResponse{State: ResponseSucceeded, Payload: raw(`{"ok":true}`)}, ExecutionSuccess, 3, nil},
		{"after the end", ExecutionResponse{State: ResponseError}, "", 0, ErrConflict},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := s.AddExecutionResponse(ctx, e.ID, st.resp)
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("err = %v, want %v", err, st.wantErr)
			}
			if err != nil {
				return
			}
			if got.State != st.wantState || len(got.Log) != st.wantLog || got.Response == nil ||
				got.Response.State != st.resp.State || got.Response.ReceivedAt.IsZero() {
				t.Errorf("got %+v", got)
			}
		})
	}
	got, err := s.GetExecution(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ExecutionSuccess || string(got.Response.Payload) != `{"ok":true}` || len(got.Log) != 3 ||
		!got.Log[1].ReceivedAt.Equal(t0) || string(got.Request.Arguments) != `{"w":5}` || got.Request.ManifestName != "set_power" {
		t.Errorf("final %+v", got)
	}
	if _, err := s.SetExecutionState(ctx, e.ID, ExecutionTimeout); !errors.Is(err, ErrConflict) {
		t.Errorf("timeout after success: %v, want ErrConflict", err)
	}

	t.Run("timeout", func(t *testing.T) {
		e2, err := s.CreateExecution(ctx, d.ID, ExecutionRequest{Name: "slow"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.SetExecutionState(ctx, e2.ID, ExecutionTimeout)
		if err != nil || got.State != ExecutionTimeout || got.Response != nil || got.Request.Arguments != nil {
			t.Errorf("got %+v, %v", got, err)
		}
		if _, err := s.AddExecutionResponse(ctx, e2.ID, ExecutionResponse{State: ResponseSucceeded}); !errors.Is(err, ErrConflict) {
			t.Errorf("late answer: %v, want ErrConflict", err)
		}
	})
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"create for unknown device", func() error { _, err := s.CreateExecution(ctx, "nope", ExecutionRequest{Name: "x"}); return err }, ErrNotFound},
		{"create without name", func() error { _, err := s.CreateExecution(ctx, d.ID, ExecutionRequest{}); return err }, ErrInvalid},
		{"create with bad arguments", func() error {
			_, err := s.CreateExecution(ctx, d.ID, ExecutionRequest{Name: "x", Arguments: raw("{")})
			return err
		}, ErrInvalid},
		{"respond to unknown", func() error {
			_, err := s.AddExecutionResponse(ctx, "nope", ExecutionResponse{State: ResponseSucceeded})
			return err
		}, ErrNotFound},
		{"unknown response state", func() error {
			_, err := s.AddExecutionResponse(ctx, e.ID, ExecutionResponse{State: "completed"})
			return err
		}, ErrInvalid},
		{"bad payload", func() error {
			_, err := s.AddExecutionResponse(ctx, e.ID, ExecutionResponse{State: ResponseError, Payload: raw("{")})
			return err
		}, ErrInvalid},
		{"state NEW", func() error { _, err := s.SetExecutionState(ctx, e.ID, ExecutionNew); return err }, ErrInvalid},
		{"unknown state", func() error { _, err := s.SetExecutionState(ctx, e.ID, "DONE"); return err }, ErrInvalid},
		{"state of unknown", func() error { _, err := s.SetExecutionState(ctx, "nope", ExecutionTimeout); return err }, ErrNotFound},
		{"get unknown", func() error { _, err := s.GetExecution(ctx, "nope"); return err }, ErrNotFound},
		{"list unknown device", func() error { _, err := s.ListExecutions(ctx, "nope", 0, 0); return err }, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestListExecutions(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	other := mkDevice(t, s, 2)
	for i := range 5 {
		e, err := s.CreateExecution(ctx, d.ID, ExecutionRequest{Name: fmt.Sprintf("c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		for range i {
			if _, err := s.AddExecutionResponse(ctx, e.ID, ExecutionResponse{State: ResponseInProgress}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.CreateExecution(ctx, other.ID, ExecutionRequest{Name: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		offset, limit int
		want          string // name/responses, newest first
	}{
		{"all", 0, 0, "[c4/4 c3/3 c2/2 c1/1 c0/0]"},
		{"first page", 0, 2, "[c4/4 c3/3]"},
		{"second page", 2, 2, "[c2/2 c1/1]"},
		{"past the end", 9, 2, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := s.ListExecutions(ctx, d.ID, tc.offset, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, e := range es {
				got = append(got, fmt.Sprintf("%s/%d", e.Request.Name, len(e.Log)))
				if (len(e.Log) > 0) != (e.Response != nil) {
					t.Errorf("%s: response %v with %d responses", e.Request.Name, e.Response, len(e.Log))
				}
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("got %v, want %s", got, tc.want)
			}
		})
	}
}
