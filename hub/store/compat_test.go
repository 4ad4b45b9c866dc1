package store

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSiteStaysAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(ctx, path, Options{PasswordIterations: testIterations})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Site(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !uuidRE.MatchString(first.ID) || first.Name == "" || first.Timezone != "UTC" || first.CreatedAt.IsZero() {
		t.Fatalf("site = %+v", first)
	}
	again, err := openAt(t, path).Site(ctx)
	if err != nil || again != first {
		t.Fatalf("after reopen: %+v, %v; want %+v", again, err, first)
	}
}

func TestBlueprints(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if _, err := s.CreateBlueprint(ctx, nil, raw(`{}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty zip: %v", err)
	}
	if _, err := s.CreateBlueprint(ctx, []byte("PK"), raw(`{`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad manifest: %v", err)
	}
	b, err := s.CreateBlueprint(ctx, []byte("PK zip"), raw(`{"blueprint_spec":"device/1.0"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetBlueprint(ctx, b.ID)
	if err != nil || string(got.Zip) != "PK zip" || string(got.Manifest) != `{"blueprint_spec":"device/1.0"}` || !got.CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("GetBlueprint = %+v, %v", got, err)
	}
	if _, err := s.GetBlueprint(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown blueprint: %v", err)
	}
	d1, d2 := mkDevice(t, s, 1), mkDevice(t, s, 2)
	for _, d := range []Device{d1, d2} {
		got, err := s.AssignBlueprint(ctx, d.ID, b.ID)
		if err != nil || got.BlueprintID != b.ID || string(got.Manifest) != string(b.Manifest) {
			t.Fatalf("AssignBlueprint(%s) = %+v, %v", d.ID, got, err)
		}
	}
	if _, err := s.AssignBlueprint(ctx, d1.ID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown blueprint: %v", err)
	}
	if _, err := s.AssignBlueprint(ctx, "nope", b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown device: %v", err)
	}
}

func TestExpireExecutions(t *testing.T) {
	ctx := context.Background()
	now := t0
	s, err := Open(ctx, ":memory:", Options{PasswordIterations: testIterations, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := mkDevice(t, s, 1)
	mk := func() Execution {
		e, err := s.CreateExecution(ctx, d.ID, ExecutionRequest{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	soon, later, noDeadline, done := mk(), mk(), mk(), mk()
	if err := s.SetExecutionDeadline(ctx, soon.ID, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExecutionDeadline(ctx, later.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExecutionDeadline(ctx, "nope", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown execution: %v", err)
	}
	if _, err := s.SetExecutionState(ctx, done.ID, ExecutionSuccess); err != nil {
		t.Fatal(err)
	}
	state := func(e Execution) ExecutionState {
		got, err := s.GetExecution(ctx, e.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.State
	}
	now = t0.Add(2 * time.Second)
	if n, err := s.ExpireExecutions(ctx, now, 10*time.Minute); err != nil || n != 1 {
		t.Fatalf("ExpireExecutions = %d, %v; want 1", n, err)
	}
	if state(soon) != ExecutionTimeout || state(later) != ExecutionNew || state(noDeadline) != ExecutionNew || state(done) != ExecutionSuccess {
		t.Fatalf("states %s %s %s %s", state(soon), state(later), state(noDeadline), state(done))
	}
	// Without a deadline, created_at + fallback counts.
	if n, err := s.ExpireExecutions(ctx, t0.Add(11*time.Minute), 10*time.Minute); err != nil || n != 1 {
		t.Fatalf("ExpireExecutions = %d, %v; want 1 (the one without a deadline)", n, err)
	}
	if state(noDeadline) != ExecutionTimeout {
		t.Fatalf("no deadline: %s", state(noDeadline))
	}
	if n, err := s.FailUnfinishedExecutions(ctx); err != nil || n != 1 {
		t.Fatalf("FailUnfinishedExecutions = %d, %v; want 1", n, err)
	}
	if state(later) != ExecutionError || state(done) != ExecutionSuccess {
		t.Fatalf("after fail: %s %s", state(later), state(done))
	}
}

func TestQueryLogs(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	var entries []LogEntry
	for i, sev := range []string{"info", "error", "info", "warning", "error"} {
		entries = append(entries, LogEntry{DeviceID: d.ID, Time: t0.Add(time.Duration(i) * time.Second),
			Severity: sev, Message: sev + string(rune('0'+i)), Persist: i%2 == 0})
	}
	if _, err := s.AppendLogs(ctx, entries); err != nil {
		t.Fatal(err)
	}
	msgs := func(es []LogEntry) (out []string) {
		for _, e := range es {
			out = append(out, e.Message)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		q     LogQuery
		want  []string
		total int
	}{
		{"all", LogQuery{}, []string{"info0", "error1", "info2", "warning3", "error4"}, 5},
		{"page", LogQuery{Offset: 1, Limit: 2}, []string{"error1", "info2"}, 5},
		{"newest", LogQuery{Newest: true, Limit: 2}, []string{"error4", "warning3"}, 5},
		{"severity", LogQuery{Severity: "error"}, []string{"error1", "error4"}, 2},
		{"range", LogQuery{From: t0.Add(time.Second), To: t0.Add(3 * time.Second)}, []string{"error1", "info2"}, 2},
		{"persisted", LogQuery{Persist: ptr(true)}, []string{"info0", "info2", "error4"}, 3},
		{"temporary", LogQuery{Persist: ptr(false)}, []string{"error1", "warning3"}, 2},
		{"past the end", LogQuery{Offset: 10}, nil, 5},
	} {
		got, total, err := s.QueryLogs(ctx, d.ID, tc.q)
		if err != nil || total != tc.total || len(got) != len(tc.want) {
			t.Errorf("%s: %v, %d, %v; want %v, %d", tc.name, msgs(got), total, err, tc.want, tc.total)
			continue
		}
		for i := range got {
			if got[i].Message != tc.want[i] {
				t.Errorf("%s: %v; want %v", tc.name, msgs(got), tc.want)
				break
			}
		}
	}
	if _, _, err := s.QueryLogs(ctx, "nope", LogQuery{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown device: %v", err)
	}
}

// A data folder from before schema 3 keeps its devices and executions; an
// unfinished execution from then, which has no deadline, is expired by the
// fallback.
func TestMigrateToSchema3(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db := rawDB(t, path)
	if err := migrateTo(ctx, db, migrations[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO devices (id, name, slug, hardware_id, channel_id, created_at, updated_at)
		VALUES ('d1', 'old', 'old', 'HW1', 'ch', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO executions (id, device_id, state, created_at, updated_at, name)
		VALUES ('e1', 'd1', 'NEW', 1000, 1000, 'x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := openAt(t, path)
	if d, err := s.GetDevice(ctx, "d1"); err != nil || d.Slug != "old" {
		t.Fatalf("device after migration: %+v, %v", d, err)
	}
	if st, err := s.Site(ctx); err != nil || !uuidRE.MatchString(st.ID) {
		t.Fatalf("site after migration: %+v, %v", st, err)
	}
	if n, err := s.ExpireExecutions(ctx, time.Now(), 10*time.Minute); err != nil || n != 1 {
		t.Fatalf("ExpireExecutions = %d, %v", n, err)
	}
	if e, err := s.GetExecution(ctx, "e1"); err != nil || e.State != ExecutionTimeout {
		t.Fatalf("old execution: %+v, %v", e, err)
	}
}
