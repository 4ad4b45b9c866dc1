package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Defaults of the login limits (Options.LoginLimits).
const (
	// DefaultFreeFailures is how many failed logins an address may make
	// before it must wait.
	DefaultFreeFailures = 5
	// DefaultBackoff is the first wait; it doubles with every further
	// failure, up to DefaultMaxBackoff.
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultCheckWait bounds how long a CONNECT waits for a free password
	// check before it is refused as "busy".
	DefaultCheckWait = 5 * time.Second
	// maxTrackedAddrs bounds the addresses remembered; past it the oldest
	// forgettable ones go first, then arbitrary ones.
	maxTrackedAddrs = 10_000
)

// LoginLimits bound what failed logins cost the hub. A password check is a
// PBKDF2 computation (DefaultPasswordIterations: tens of milliseconds of one
// core), which a stranger can ask for with every CONNECT. The zero value
// takes the defaults; see each field for how to turn a limit off.
type LoginLimits struct {
	// FreeFailures is how many failed logins one source address (an IPv4
	// address, or an IPv6 /64) may make before it is made to wait: the
	// next failure blocks it for Backoff, each further one for twice as
	// long, up to MaxBackoff. While blocked, its logins with a username
	// are refused without a password check, right or wrong; a login that
	// succeeds clears the count. Certificate logins are never blocked.
	// Zero means DefaultFreeFailures; negative turns the backoff off.
	FreeFailures int
	// Backoff and MaxBackoff: zero means DefaultBackoff and
	// DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// MaxConcurrentChecks bounds how many password checks run at once,
	// so that a flood of logins from many addresses leaves CPU for the
	// rest of the hub. When all are busy, a login from an address with
	// no failure on record gets the next free one before those from
	// addresses that failed, so that a device's login waits for at most
	// the checks already running, not for the whole flood. Zero means
	// half the CPUs (at least one); negative means no bound.
	MaxConcurrentChecks int
	// CheckWait bounds how long a CONNECT waits for its turn; then it is
	// refused. Zero means DefaultCheckWait.
	CheckWait time.Duration
	// Now is the clock of the backoff; tests replace it. Default time.Now.
	Now func() time.Time
}

func (l LoginLimits) withDefaults() LoginLimits {
	if l.FreeFailures == 0 {
		l.FreeFailures = DefaultFreeFailures
	}
	if l.Backoff <= 0 {
		l.Backoff = DefaultBackoff
	}
	if l.MaxBackoff <= 0 {
		l.MaxBackoff = DefaultMaxBackoff
	}
	if l.MaxConcurrentChecks == 0 {
		l.MaxConcurrentChecks = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if l.CheckWait <= 0 {
		l.CheckWait = DefaultCheckWait
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// errBlocked and errBusy are refusals by the login limits, not by the
// credentials: they are logged as such.
var (
	errBlocked = errors.New("too many failed logins from this address")
	errBusy    = errors.New("too many password checks at once")
)

// failures is what the limiter remembers of one address.
type failures struct {
	n     int       // failed logins since the last success
	until time.Time // blocked until then
	last  time.Time // the last failure
}

// throttle enforces LoginLimits. Its methods are safe for concurrent use.
type throttle struct {
	lim   LoginLimits
	slots *slots // nil without a bound on concurrent checks

	mu    sync.Mutex
	addrs map[string]*failures
}

func newThrottle(l LoginLimits) *throttle {
	l = l.withDefaults()
	t := &throttle{lim: l, addrs: make(map[string]*failures)}
	if l.MaxConcurrentChecks > 0 {
		t.slots = &slots{free: l.MaxConcurrentChecks}
	}
	return t
}

// slots is a counting semaphore with two queues: a freed slot goes to the
// longest-waiting "first" waiter, and only when there is none to the
// longest-waiting other one.
type slots struct {
	mu          sync.Mutex
	free        int
	first, rest []chan struct{} // waiters; a slot is handed over by closing
}

func (s *slots) acquire(ctx context.Context, first bool, wait time.Duration) bool {
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	if first {
		s.first = append(s.first, ch)
	} else {
		s.rest = append(s.rest, ch)
	}
	s.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if removeWaiter(&s.first, ch) || removeWaiter(&s.rest, ch) {
		return false
	}
	// Handed a slot just as the wait ended: pass it on.
	s.releaseLocked()
	return false
}

func (s *slots) release() {
	s.mu.Lock()
	s.releaseLocked()
	s.mu.Unlock()
}

func (s *slots) releaseLocked() {
	for _, q := range []*[]chan struct{}{&s.first, &s.rest} {
		if len(*q) > 0 {
			close((*q)[0])
			*q = (*q)[1:]
			return
		}
	}
	s.free++
}

func removeWaiter(q *[]chan struct{}, ch chan struct{}) bool {
	for i, c := range *q {
		if c == ch {
			*q = append((*q)[:i], (*q)[i+1:]...)
			return true
		}
	}
	return false
}

// blocked returns errBlocked, with how long is left, when addr must wait.
func (t *throttle) blocked(addr string) error {
	if t.lim.FreeFailures < 0 {
		return nil
	}
	now := t.lim.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.addrs[addr]
	if f == nil || !now.Before(f.until) {
		return nil
	}
	return fmt.Errorf("%w: %w: refused without a password check for %v more", errRefused, errBlocked, f.until.Sub(now).Round(time.Second))
}

// acquire waits for a free password check for a login from addr, up to
// CheckWait or ctx.
func (t *throttle) acquire(ctx context.Context, addr string) (release func(), err error) {
	if t.slots == nil {
		return func() {}, nil
	}
	t.mu.Lock()
	f := t.addrs[addr]
	clean := f == nil || f.n == 0
	t.mu.Unlock()
	if t.slots.acquire(ctx, clean, t.lim.CheckWait) {
		return t.slots.release, nil
	}
	return nil, fmt.Errorf("%w: %w: no turn within %v; try again later", errRefused, errBusy, t.lim.CheckWait)
}

// failed counts a failed login from addr and starts its backoff once it is
// past FreeFailures.
func (t *throttle) failed(addr string) {
	if t.lim.FreeFailures < 0 {
		return
	}
	now := t.lim.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.addrs[addr]
	if f == nil {
		t.makeRoom(now)
		f = new(failures)
		t.addrs[addr] = f
	}
	if now.Sub(f.last) > t.lim.MaxBackoff && !now.Before(f.until) {
		f.n = 0 // quiet for long enough: start afresh
	}
	f.n++
	f.last = now
	if over := f.n - t.lim.FreeFailures; over > 0 {
		wait := t.lim.MaxBackoff
		if over < 32 {
			wait = min(t.lim.Backoff<<(over-1), t.lim.MaxBackoff)
		}
		f.until = now.Add(wait)
	}
}

// succeeded forgets addr's failures.
func (t *throttle) succeeded(addr string) {
	t.mu.Lock()
	delete(t.addrs, addr)
	t.mu.Unlock()
}

// makeRoom keeps the map under maxTrackedAddrs: it forgets addresses that
// are not blocked and failed last over MaxBackoff ago, and, if that is not
// enough, arbitrary ones. Called with mu held.
func (t *throttle) makeRoom(now time.Time) {
	if len(t.addrs) < maxTrackedAddrs {
		return
	}
	for k, f := range t.addrs {
		if !now.Before(f.until) && now.Sub(f.last) > t.lim.MaxBackoff {
			delete(t.addrs, k)
		}
	}
	for k := range t.addrs {
		if len(t.addrs) < maxTrackedAddrs {
			return
		}
		delete(t.addrs, k)
	}
}
