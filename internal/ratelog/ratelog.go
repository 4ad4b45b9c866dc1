// Package ratelog bounds how many lines a stream of like events writes to
// the log: refusals a stranger can cause (failed logins, connections over a
// cap) would otherwise let them fill the disk with the hub's log. A Limiter
// lets a burst of lines through per interval and counts the rest, which the
// next line that gets through reports. An Outage does the same for a
// failure that repeats while something is down: the first failure, a
// summary at a steady cadence, and the recovery once.
package ratelog

import (
	"sync"
	"time"
)

// Limiter lets at most Burst lines through per Interval. The zero value is
// not usable; use New. Its methods are safe for concurrent use.
type Limiter struct {
	interval time.Duration
	burst    int
	now      func() time.Time

	mu         sync.Mutex
	start      time.Time // of the current interval
	used       int       // lines let through in it
	suppressed int       // lines held back since the last one let through
}

// New returns a Limiter of burst lines per interval. now is its clock; nil
// means time.Now.
func New(interval time.Duration, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{interval: interval, burst: max(1, burst), now: now}
}

// Allow reports whether a line may be written now and, when it may, how
// many were held back since the last line that was written (to add to it,
// e.g. as "suppressed").
func (l *Limiter) Allow() (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.interval {
		l.start, l.used = now, 0
	}
	if l.used >= l.burst {
		l.suppressed++
		return false, 0
	}
	l.used++
	n := l.suppressed
	l.suppressed = 0
	return true, n
}
