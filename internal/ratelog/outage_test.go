package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOutage(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
	o := NewOutage(log, 30*time.Second, func() time.Time { return now })
	if o.Recovered("back") || buf.Len() != 0 {
		t.Fatalf("a recovery without an outage logged: %q", buf.String())
	}
	// Two attempts a second for two minutes: the first, then one line
	// every 30 s.
	lines := 0
	for i := range 240 {
		if o.Failed("cannot connect", "err", "refused", "retry_in", "500ms") {
			lines++
		}
		if i < 239 {
			now = now.Add(500 * time.Millisecond)
		}
	}
	if lines != 4 || !o.Failing() {
		t.Fatalf("%d lines for 240 failures over 2 minutes, want 4 (at 0, 30, 60, 90 s):\n%s", lines, buf.String())
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if got[0] != `level=WARN msg="cannot connect" err=refused retry_in=500ms` {
		t.Errorf("first line: %s", got[0])
	}
	if got[1] != `level=WARN msg="cannot connect" err=refused retry_in=500ms attempts=61 failing_for=30s` {
		t.Errorf("summary: %s", got[1])
	}
	buf.Reset()
	now = now.Add(time.Second)
	if !o.Recovered("connected again") || o.Recovered("connected again") || o.Failing() {
		t.Fatal("recovery not logged exactly once")
	}
	if s := strings.TrimSpace(buf.String()); s != `level=INFO msg="connected again" attempts=240 failed_for=2m1s` {
		t.Errorf("recovery: %s", s)
	}
	// The next outage starts afresh: its first failure is logged at once.
	buf.Reset()
	if !o.Failed("cannot connect") || strings.Contains(buf.String(), "attempts") {
		t.Errorf("first failure of a new outage: %q", buf.String())
	}
}

func TestOutageQuiet(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := NewOutage(log, time.Hour, nil).Quiet()
	o.Failed("read failed")
	o.Recovered("read recovered")
	if s := buf.String(); strings.Count(s, "level=DEBUG") != 2 || strings.Contains(s, "WARN") || strings.Contains(s, "INFO") {
		t.Errorf("a quiet outage: %s", s)
	}
}

func TestOutageSummaryBetweenAttempts(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	o := NewOutage(slog.New(slog.NewTextHandler(&buf, nil)), 30*time.Second, func() time.Time { return now })
	if o.Due() != 30*time.Second || o.Summary("down") {
		t.Fatal("a summary without an outage")
	}
	o.Failed("down")
	now = now.Add(10 * time.Second)
	if d := o.Due(); d != 20*time.Second {
		t.Errorf("due in %v, want 20s", d)
	}
	if o.Summary("down") {
		t.Error("a summary before it is due")
	}
	now = now.Add(20 * time.Second)
	if o.Due() != 0 || !o.Summary("down", "retry_in", "1m") || o.Summary("down") {
		t.Error("the due summary: not written exactly once")
	}
	if !strings.Contains(buf.String(), "retry_in=1m attempts=1 failing_for=30s") {
		t.Errorf("summary: %s", buf.String())
	}
}
