package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the login limits (Options.LoginLimits).
const (
	// DefaultFreeFailures is how many failed logins one address may make
	// with one user name before it must wait.
	DefaultFreeFailures = 5
	// DefaultBackoff is the first wait; it doubles with every further
	// failure, up to DefaultMaxBackoff.
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = time.Minute
	// DefaultAddrBurst and DefaultAddrRate bound the failed logins of one
	// address whatever the user names: a bucket of 30, refilled with one
	// every 5 s.
	DefaultAddrBurst = 30
	DefaultAddrRate  = rate.Limit(0.2)
	// DefaultCheckWait bounds how long a CONNECT waits for a free password
	// check before it is refused as "busy".
	DefaultCheckWait = 5 * time.Second
	// maxTracked bounds the addresses (and address and user name pairs)
	// remembered; past it the forgettable ones go first, then arbitrary
	// ones.
	maxTracked = 10_000
	// trackedAfterRoom is what makeRoomUsers and makeRoomAddrs leave
	// when they have to forget entries that still matter.
	trackedAfterRoom = maxTracked - maxTracked/10
	// maxUserKey bounds the user name bytes a key keeps.
	maxUserKey = 128
)

// LoginLimits bound what failed logins cost the hub. A password check is a
// salted SHA-256 for the passwords generate_config issues, but a PBKDF2
// computation (DefaultPasswordIterations: some 13 ms of one core) for a
// hash from an older edk or store.SetPassword, which a stranger can ask
// for with every CONNECT. The zero value takes the
// defaults; see each field for how to turn a limit off.
type LoginLimits struct {
	// FreeFailures is how many failed logins one source address (an IPv4
	// address, or an IPv6 /64) may make with one user name before it is
	// made to wait: the next failure blocks that address and user name for
	// Backoff, each further one for twice as long, up to MaxBackoff.
	// While blocked, its logins are refused without a password check,
	// right or wrong; a success, or MaxBackoff without a failure, clears
	// the count. Guessing one account is slowed down; other user names
	// from the address (the other devices of a gateway, say, when one of
	// them has an outdated password) are not. Zero means
	// DefaultFreeFailures; negative turns the backoff off.
	FreeFailures int
	// Backoff and MaxBackoff: zero means DefaultBackoff and
	// DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// AddrBurst and AddrRate bound the failed logins of one address over
	// all user names: AddrBurst failures at once, then AddrRate a second.
	// An address over it gets no password check, for any user name, until
	// its bucket refills. A device retrying an outdated password every
	// few seconds stays below it; a flood does not. Zero means
	// DefaultAddrBurst and DefaultAddrRate; a negative AddrBurst turns it
	// off.
	AddrBurst int
	AddrRate  rate.Limit
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
	// Certificate logins are never limited: they need no password check
	// and cannot be guessed.

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
	if l.AddrBurst == 0 {
		l.AddrBurst = DefaultAddrBurst
	}
	if l.AddrRate <= 0 {
		l.AddrRate = DefaultAddrRate
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
	errBlocked = errors.New("too many failed logins")
	errBusy    = errors.New("too many password checks at once")
)

// failures is what the limiter remembers of one address and user name.
type failures struct {
	n     int       // failed logins since the last success
	until time.Time // blocked until then
	last  time.Time // the last failure
}

// source is what the limiter remembers of one address.
type source struct {
	bucket *rate.Limiter // failed logins left; nil with the per-address bound off
	last   time.Time     // the last failure
}

// throttle enforces LoginLimits. Its methods are safe for concurrent use.
type throttle struct {
	lim   LoginLimits
	slots *slots // nil without a bound on concurrent checks

	mu    sync.Mutex
	users map[string]*failures // by userKey
	addrs map[string]*source   // by address
}

func newThrottle(l LoginLimits) *throttle {
	l = l.withDefaults()
	t := &throttle{lim: l, users: make(map[string]*failures), addrs: make(map[string]*source)}
	if l.MaxConcurrentChecks > 0 {
		t.slots = &slots{free: l.MaxConcurrentChecks}
	}
	return t
}

func userKey(addr, user string) string {
	if len(user) > maxUserKey {
		user = user[:maxUserKey]
	}
	return addr + "\x00" + user
}

// blocked returns errBlocked, saying how long is left, when a login from
// addr as user must wait.
func (t *throttle) blocked(addr, user string) error {
	now := t.lim.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lim.AddrBurst > 0 {
		if s := t.addrs[addr]; s != nil && s.bucket.TokensAt(now) < 1 {
			wait := time.Duration((1 - s.bucket.TokensAt(now)) / float64(t.lim.AddrRate) * float64(time.Second))
			return fmt.Errorf("%w: %w from this address: refused without a password check for about %v",
				errRefused, errBlocked, wait.Round(time.Second)+time.Second)
		}
	}
	if t.lim.FreeFailures > 0 {
		if f := t.users[userKey(addr, user)]; f != nil && now.Before(f.until) {
			return fmt.Errorf("%w: %w from this address with this user name: refused without a password check for %v more",
				errRefused, errBlocked, f.until.Sub(now).Round(time.Second))
		}
	}
	return nil
}

// acquire waits for a free password check for a login from addr, up to
// CheckWait or ctx.
func (t *throttle) acquire(ctx context.Context, addr string) (release func(), err error) {
	if t.slots == nil {
		return func() {}, nil
	}
	t.mu.Lock()
	_, failed := t.addrs[addr]
	t.mu.Unlock()
	if t.slots.acquire(ctx, !failed, t.lim.CheckWait) {
		return t.slots.release, nil
	}
	return nil, fmt.Errorf("%w: %w: no turn within %v; try again later", errRefused, errBusy, t.lim.CheckWait)
}

// failed counts a failed login from addr as user.
func (t *throttle) failed(addr, user string) {
	now := t.lim.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lim.AddrBurst > 0 {
		s := t.addrs[addr]
		if s == nil {
			t.makeRoomAddrs(now)
			s = &source{bucket: rate.NewLimiter(t.lim.AddrRate, t.lim.AddrBurst)}
			t.addrs[addr] = s
		}
		s.bucket.AllowN(now, 1) // an empty bucket stays empty: blocked() refuses first
		s.last = now
	}
	if t.lim.FreeFailures < 0 {
		return
	}
	k := userKey(addr, user)
	f := t.users[k]
	if f == nil {
		t.makeRoomUsers(now)
		f = new(failures)
		t.users[k] = f
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

// succeeded forgets the failures of addr as user. The address's bucket
// refills on its own.
func (t *throttle) succeeded(addr, user string) {
	t.mu.Lock()
	delete(t.users, userKey(addr, user))
	t.mu.Unlock()
}

// makeRoomUsers keeps users under maxTracked: once it is full, it forgets
// pairs that are not blocked and failed last over MaxBackoff ago, and, if
// that is not enough, arbitrary ones, down to trackedAfterRoom. Freeing a
// tenth at once, not one entry, makes the scan of the whole map happen
// once per maxTracked-trackedAfterRoom failures: a flood of fresh pairs
// made every failed login scan both maps under mu (5 ms each at
// maxTracked, while every other login waited for mu). Called with mu held.
func (t *throttle) makeRoomUsers(now time.Time) {
	if len(t.users) < maxTracked {
		return
	}
	for k, f := range t.users {
		if !now.Before(f.until) && now.Sub(f.last) > t.lim.MaxBackoff {
			delete(t.users, k)
		}
	}
	for k := range t.users {
		if len(t.users) <= trackedAfterRoom {
			return
		}
		delete(t.users, k)
	}
}

// makeRoomAddrs does the same for addrs: an address whose bucket is full
// again holds nothing worth keeping. Called with mu held.
func (t *throttle) makeRoomAddrs(now time.Time) {
	if len(t.addrs) < maxTracked {
		return
	}
	for k, s := range t.addrs {
		if s.bucket.TokensAt(now) >= float64(t.lim.AddrBurst) {
			delete(t.addrs, k)
		}
	}
	for k := range t.addrs {
		if len(t.addrs) <= trackedAfterRoom {
			return
		}
		delete(t.addrs, k)
	}
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
