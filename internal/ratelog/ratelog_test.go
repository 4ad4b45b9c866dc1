package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(10*time.Second, 3, func() time.Time { return now })
	for i := range 3 {
		if ok, n := l.Allow(); !ok || n != 0 {
			t.Fatalf("line %d of the burst: %v %d", i, ok, n)
		}
	}
	for range 1000 {
		if ok, _ := l.Allow(); ok {
			t.Fatal("a line past the burst let through")
		}
	}
	now = now.Add(10 * time.Second)
	if ok, n := l.Allow(); !ok || n != 1000 {
		t.Fatalf("first line of the next interval: %v, suppressed %d, want 1000", ok, n)
	}
	if ok, n := l.Allow(); !ok || n != 0 {
		t.Fatalf("second line: %v %d", ok, n)
	}
}
