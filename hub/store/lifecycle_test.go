package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(ctx, path, Options{PasswordIterations: testIterations})
	if err != nil {
		t.Fatal(err)
	}
	d := mkDevice(t, s, 1)
	fill(t, s, d.ID)
	if err := s.SetPassword(ctx, d.ID, "u", "p"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path)
	for _, tc := range []struct {
		name  string
		check func() error
	}{
		{"device", func() error { _, err := s.GetDevice(ctx, d.ID); return err }},
		{"credentials", func() error { _, err := s.VerifyCredentials(ctx, "u", "p"); return err }},
		{"telemetry", func() error {
			l, err := s.LatestTelemetry(ctx, d.ID, nil)
			if err == nil && string(l["v"].Value) != "1" {
				err = fmt.Errorf("latest %v", l)
			}
			return err
		}},
		{"properties", func() error {
			p, err := s.GetProperties(ctx, d.ID)
			if err == nil && string(p.Values["model"]) != `"x"` {
				err = fmt.Errorf("properties %v", p)
			}
			return err
		}},
		{"connectivity", func() error {
			c, err := s.GetConnectivity(ctx, d.ID)
			if err == nil && !c.Online {
				err = fmt.Errorf("connectivity %+v", c)
			}
			return err
		}},
		{"logs", func() error {
			l, err := s.ListLogs(ctx, d.ID, time.Time{}, 0)
			if err == nil && len(l) != 1 {
				err = fmt.Errorf("logs %v", l)
			}
			return err
		}},
		{"executions", func() error {
			es, err := s.ListExecutions(ctx, d.ID, 0, 0)
			if err == nil && (len(es) != 1 || es[0].State != ExecutionSuccess) {
				err = fmt.Errorf("executions %+v", es)
			}
			return err
		}},
		{"malformed", func() error {
			m, err := s.MalformedCounts(ctx, d.ID)
			if err == nil && m["telemetry"].Count != 1 {
				err = fmt.Errorf("malformed %v", m)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// rawDB opens path without migrating, for tests that set the stage.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()

	t.Run("from version 0", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "old.db")
		db := rawDB(t, path)
		if _, err := db.Exec("CREATE TABLE unrelated (x INTEGER)"); err != nil {
			t.Fatal(err)
		}
		if v := userVersion(t, db); v != 0 {
			t.Fatalf("fresh version %d", v)
		}
		db.Close()
		s := openAt(t, path)
		if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
			t.Errorf("version %d, %v; want %d", v, err, len(migrations))
		}
		mkDevice(t, s, 1)
	})

	t.Run("step by step", func(t *testing.T) {
		db := rawDB(t, filepath.Join(t.TempDir(), "steps.db"))
		defer db.Close()
		steps := append(append([]string{}, migrations...), "ALTER TABLE devices ADD COLUMN note TEXT")
		if err := migrateTo(ctx, db, steps[:1]); err != nil {
			t.Fatal(err)
		}
		if v := userVersion(t, db); v != 1 {
			t.Fatalf("after step 1: version %d", v)
		}
		if err := migrateTo(ctx, db, steps); err != nil {
			t.Fatal(err)
		}
		if v := userVersion(t, db); v != len(steps) {
			t.Errorf("version %d, want %d", v, len(steps))
		}
		if _, err := db.Exec("SELECT note FROM devices"); err != nil {
			t.Errorf("the added step did not run: %v", err)
		}
		if err := migrateTo(ctx, db, steps); err != nil {
			t.Errorf("second run: %v", err)
		}
	})

	t.Run("a failing step changes nothing", func(t *testing.T) {
		db := rawDB(t, filepath.Join(t.TempDir(), "fail.db"))
		defer db.Close()
		steps := []string{"CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER); CREATE TABLE a (z INTEGER)"}
		if err := migrateTo(ctx, db, steps); err == nil {
			t.Fatal("no error from a broken step")
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name IN ('a', 'b')").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if v := userVersion(t, db); v != 0 || n != 0 {
			t.Errorf("version %d and %d tables after a failed step; want 0 and 0", v, n)
		}
	})

	t.Run("newer database is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "new.db")
		db := rawDB(t, path)
		if err := migrateTo(ctx, db, append(append([]string{}, migrations...), "CREATE TABLE future (x INTEGER)")); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := Open(ctx, path, Options{})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
		}
		want := fmt.Sprintf("schema version %d, this edk knows up to %d", len(migrations)+1, len(migrations))
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	const (
		writers = 8
		batches = 20
		perB    = 10
	)
	devs := make([]Device, writers)
	for i := range devs {
		devs[i] = mkDevice(t, s, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*4)
	for w := range writers {
		wg.Go(func() {
			id := devs[w].ID
			for b := range batches {
				var batch []Sample
				for i := range perB {
					batch = append(batch, Sample{DeviceID: id, Time: t0.Add(time.Duration(b*perB+i) * time.Second),
						Values: map[string]json.RawMessage{"n": json.RawMessage(fmt.Sprint(b*perB + i))}})
				}
				if _, err := s.AppendTelemetry(ctx, batch); err != nil {
					errs <- err
					return
				}
				if err := s.SetConnectivity(ctx, id, true, t0.Add(time.Duration(b)*time.Second)); err != nil {
					errs <- err
					return
				}
				if err := s.IncrementMalformed(ctx, id, "x"); err != nil {
					errs <- err
					return
				}
			}
		})
		// A reader per writer, reading while the writes go on.
		wg.Go(func() {
			for range batches {
				if _, err := s.LatestTelemetry(ctx, devs[w].ID, nil); err != nil {
					errs <- err
					return
				}
				if _, err := s.ListDevices(ctx, 0, 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, d := range devs {
		got, err := s.QueryTelemetry(ctx, d.ID, []string{"n"}, time.Time{}, t0.Add(time.Hour), 0, AggAuto)
		if err != nil || len(got[0].Points) != batches*perB {
			t.Errorf("%s: %d points, %v; want %d", d.Slug, len(got[0].Points), err, batches*perB)
		}
		m, _ := s.MalformedCounts(ctx, d.ID)
		if m["x"].Count != batches {
			t.Errorf("%s: malformed count %d, want %d", d.Slug, m["x"].Count, batches)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	s := openTemp(t)
	d := mkDevice(t, s, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.AppendTelemetry(ctx, []Sample{{DeviceID: d.ID, Time: t0, Values: vals("a", "1")}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("AppendTelemetry with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.GetDevice(ctx, d.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("GetDevice with a cancelled context = %v, want context.Canceled", err)
	}
}

// BenchmarkAppendTelemetry measures ingest: batches of 100 samples (one
// telemetry message each) of 10 numeric attributes, from 10 devices.
func BenchmarkAppendTelemetry(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b)
	const (
		devices = 10
		batch   = 100
		attrs   = 10
	)
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = mkDevice(b, s, i).ID
	}
	names := make([]string, attrs)
	for i := range names {
		names[i] = fmt.Sprintf("attribute_%d", i)
	}
	samples := make([]Sample, batch)
	for i := range samples {
		samples[i].DeviceID = ids[i%devices]
		samples[i].Values = make(map[string]json.RawMessage, attrs)
		for j, a := range names {
			samples[i].Values[a] = json.RawMessage(fmt.Sprintf("%d.%d", i, j))
		}
	}
	start := t0
	n := 0
	for b.Loop() {
		for i := range samples {
			n++
			samples[i].Time = start.Add(time.Duration(n) * time.Millisecond)
		}
		if _, err := s.AppendTelemetry(ctx, samples); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.N*batch*attrs)/b.Elapsed().Seconds(), "values/s")
}
