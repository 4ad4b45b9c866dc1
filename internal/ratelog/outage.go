package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultSummaryEvery is how often an Outage writes a summary line while
// the failure lasts.
const DefaultSummaryEvery = 30 * time.Second

// Outage logs a failure that repeats while something is down (a Modbus
// device that does not answer, a broker that refuses connections): the
// first failure at once, then one summary line at a steady cadence with
// how many attempts failed, for how long, and the latest error (the
// caller's attributes), and the recovery once. Without it a reconnect loop
// writes a line per attempt, or goes quiet for minutes between lines that
// say nothing of what happened in between. Its methods are safe for
// concurrent use; the zero value is not usable, use NewOutage.
type Outage struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time
	quiet bool // log at debug level

	mu       sync.Mutex
	failures int       // in a row, since the outage began
	since    time.Time // first failure of the outage
	lastLine time.Time // of the latest line written about the outage
}

// NewOutage returns an Outage writing to log with a summary every every
// (DefaultSummaryEvery when zero or less). now is its clock; nil means
// time.Now.
func NewOutage(log *slog.Logger, every time.Duration, now func() time.Time) *Outage {
	if every <= 0 {
		every = DefaultSummaryEvery
	}
	if now == nil {
		now = time.Now
	}
	return &Outage{log: log, every: every, now: now}
}

// Quiet makes the Outage log at debug level, for failures that something
// else reports already, and returns it.
func (o *Outage) Quiet() *Outage {
	o.quiet = true
	return o
}

// Failed records a failed attempt. The first failure of an outage is
// logged at Warn with msg and attrs (e.g. the error and when the next
// attempt is); later ones only when every has passed since the last line,
// as a summary with "attempts" (failures in a row) and "failing_for"
// added. It reports whether it wrote a line.
func (o *Outage) Failed(msg string, attrs ...any) bool {
	now := o.now()
	o.mu.Lock()
	o.failures++
	n := o.failures
	if n == 1 {
		o.since = now
	} else if now.Sub(o.lastLine) < o.every {
		o.mu.Unlock()
		return false
	}
	o.lastLine = now
	since := o.since
	o.mu.Unlock()
	if n > 1 {
		attrs = append(attrs, "attempts", n, "failing_for", now.Sub(since).Round(time.Second).String())
	}
	level := slog.LevelWarn
	if o.quiet {
		level = slog.LevelDebug
	}
	o.log.Log(context.Background(), level, msg, attrs...)
	return true
}

// Due returns how long until a summary is due: zero when it is due now,
// and every when no outage is on. A caller that sleeps between attempts
// longer than every wakes up after Due to call Summary, so the cadence
// holds whatever the backoff.
func (o *Outage) Due() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures == 0 {
		return o.every
	}
	return max(0, o.every-o.now().Sub(o.lastLine))
}

// Summary writes the summary line of an outage that is on, as Failed
// would, when it is due, without counting an attempt. It reports whether
// it wrote a line.
func (o *Outage) Summary(msg string, attrs ...any) bool {
	now := o.now()
	o.mu.Lock()
	n, since := o.failures, o.since
	if n == 0 || now.Sub(o.lastLine) < o.every {
		o.mu.Unlock()
		return false
	}
	o.lastLine = now
	o.mu.Unlock()
	level := slog.LevelWarn
	if o.quiet {
		level = slog.LevelDebug
	}
	o.log.Log(context.Background(), level, msg, append(attrs, "attempts", n, "failing_for", now.Sub(since).Round(time.Second).String())...)
	return true
}

// Recovered ends the outage: if there was one, it logs msg at Info with
// attrs, "attempts" (failures before the success) and "failed_for", and
// reports true. Without an outage it does nothing, so a caller may call it
// on every success.
func (o *Outage) Recovered(msg string, attrs ...any) bool {
	now := o.now()
	o.mu.Lock()
	n, since := o.failures, o.since
	o.failures = 0
	o.mu.Unlock()
	if n == 0 {
		return false
	}
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelDebug
	}
	o.log.Log(context.Background(), level, msg, append(attrs, "attempts", n, "failed_for", now.Sub(since).Round(time.Second).String())...)
	return true
}

// Failing reports whether an outage is on: a failure not yet followed by a
// recovery.
func (o *Outage) Failing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failures > 0
}
