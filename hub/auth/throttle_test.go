package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/edk-go/edk/internal/testutil"
)

func TestThrottleBackoff(t *testing.T) {
	clock := testutil.NewClock()
	th := newThrottle(LoginLimits{FreeFailures: 3, Backoff: time.Second, MaxBackoff: 8 * time.Second, AddrBurst: -1, Now: clock.Now})
	const addr, user = "192.0.2.1", "HW1"
	for i := range 3 {
		if err := th.blocked(addr, user); err != nil {
			t.Fatalf("blocked after %d failures: %v", i, err)
		}
		th.failed(addr, user)
	}
	if err := th.blocked(addr, user); err != nil {
		t.Fatalf("blocked after the free failures: %v", err)
	}
	// Each failure past the free ones doubles the wait, up to the maximum.
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		th.failed(addr, user)
		err := th.blocked(addr, user)
		if !errors.Is(err, errBlocked) || !errors.Is(err, errRefused) {
			t.Fatalf("not blocked after a failure past the free ones: %v", err)
		}
		clock.Add(want - time.Millisecond)
		if th.blocked(addr, user) == nil {
			t.Fatalf("unblocked before %v", want)
		}
		clock.Add(time.Millisecond)
		if err := th.blocked(addr, user); err != nil {
			t.Fatalf("still blocked after %v: %v", want, err)
		}
	}
	// Other addresses, and other user names from this address, are not
	// affected.
	th.failed(addr, user)
	if err := th.blocked("192.0.2.2", user); err != nil {
		t.Fatal(err)
	}
	if err := th.blocked(addr, "HW2"); err != nil {
		t.Fatal(err)
	}
	// A success clears the count ...
	th.succeeded(addr, user)
	for range 3 {
		th.failed(addr, user)
	}
	if err := th.blocked(addr, user); err != nil {
		t.Fatalf("a success did not clear the count: %v", err)
	}
	// ... and so does a quiet spell longer than the maximum backoff.
	clock.Add(9 * time.Second)
	th.failed(addr, user)
	if err := th.blocked(addr, user); err != nil {
		t.Fatalf("failures from long ago still counted: %v", err)
	}
}

// TestThrottleAddrBucket fails logins from one address under many user
// names, as a flood would: past the burst the address gets no check for any
// user name until its bucket refills; a device failing now and then (an
// outdated password) never empties it.
func TestThrottleAddrBucket(t *testing.T) {
	clock := testutil.NewClock()
	th := newThrottle(LoginLimits{FreeFailures: -1, AddrBurst: 10, AddrRate: 0.2, Now: clock.Now})
	const addr = "192.0.2.1"
	for i := range 10 {
		if err := th.blocked(addr, fmt.Sprint("guess", i)); err != nil {
			t.Fatalf("blocked after %d failures: %v", i, err)
		}
		th.failed(addr, fmt.Sprint("guess", i))
	}
	err := th.blocked(addr, "HW-other")
	if !errors.Is(err, errBlocked) {
		t.Fatalf("after the burst: %v, want blocked for every user name", err)
	}
	if err := th.blocked("192.0.2.2", "HW-other"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	clock.Add(5 * time.Second) // one token back
	if err := th.blocked(addr, "HW-other"); err != nil {
		t.Fatalf("after a refill: %v", err)
	}
	// One failure every 10 s stays well within the refill.
	th2 := newThrottle(LoginLimits{FreeFailures: -1, AddrBurst: 10, AddrRate: 0.2, Now: clock.Now})
	for range 100 {
		if err := th2.blocked(addr, "HW-outdated"); err != nil {
			t.Fatalf("a device retrying every 10 s was blocked: %v", err)
		}
		th2.failed(addr, "HW-outdated")
		clock.Add(10 * time.Second)
	}
}

func TestThrottleOff(t *testing.T) {
	th := newThrottle(LoginLimits{FreeFailures: -1, AddrBurst: -1, MaxConcurrentChecks: -1})
	for range 100 {
		th.failed("192.0.2.1", "u")
	}
	if err := th.blocked("192.0.2.1", "u"); err != nil {
		t.Fatal(err)
	}
	if len(th.users)+len(th.addrs) != 0 {
		t.Fatal("failures remembered with the limits off")
	}
	if _, err := th.acquire(context.Background(), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

// failFrom records a failed login from the i-th of many addresses, each
// with a user name of its own, as a flood from a large IPv6 block would.
func failFrom(th *throttle, i int) {
	th.failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprint("user", i))
}

// TestThrottleBoundedMemory floods the throttle with failures of ever new
// addresses and user names, none of them forgettable yet (the clock stands
// still): it remembers at most maxTracked of each, and when full it forgets
// a tenth at once rather than one entry per failure, so that the scan of
// its maps, under the lock every login takes, is not paid by every
// failure of the flood.
func TestThrottleBoundedMemory(t *testing.T) {
	clock := testutil.NewClock()
	th := newThrottle(LoginLimits{Now: clock.Now})
	for i := range maxTracked {
		failFrom(th, i)
	}
	if n, m := len(th.users), len(th.addrs); n != maxTracked || m != maxTracked {
		t.Fatalf("%d user names and %d addresses remembered, want %d", n, m, maxTracked)
	}
	failFrom(th, maxTracked)
	if n, m := len(th.users), len(th.addrs); n != trackedAfterRoom+1 || m != trackedAfterRoom+1 {
		t.Fatalf("full, then one more failure: %d user names and %d addresses remembered, want %d", n, m, trackedAfterRoom+1)
	}
	// The room made lasts: no entry is forgotten until it is full again.
	for i := maxTracked + 1; i < 2*maxTracked-trackedAfterRoom; i++ {
		failFrom(th, i)
	}
	if n, m := len(th.users), len(th.addrs); n != maxTracked || m != maxTracked {
		t.Fatalf("%d user names and %d addresses remembered, want %d", n, m, maxTracked)
	}
	for i := 2*maxTracked - trackedAfterRoom; i < 3*maxTracked; i++ {
		failFrom(th, i)
	}
	if n, m := len(th.users), len(th.addrs); n > maxTracked || m > maxTracked {
		t.Fatalf("%d user names and %d addresses remembered, want at most %d", n, m, maxTracked)
	}
}

// BenchmarkFailedLoginTrackerFull is what the throttle adds to one failed
// login from a new address and user name once it tracks maxTracked of
// them (a flood from many addresses), with the throttle's lock held.
func BenchmarkFailedLoginTrackerFull(b *testing.B) {
	clock := testutil.NewClock()
	th := newThrottle(LoginLimits{Now: clock.Now})
	for i := range maxTracked {
		failFrom(th, i)
	}
	i := maxTracked
	for b.Loop() {
		failFrom(th, i)
		i++
	}
}

func TestThrottleSlots(t *testing.T) {
	th := newThrottle(LoginLimits{MaxConcurrentChecks: 1, CheckWait: 20 * time.Millisecond})
	release, err := th.acquire(context.Background(), "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := th.acquire(context.Background(), "192.0.2.2"); !errors.Is(err, errBusy) {
		t.Fatalf("second check while the only slot is taken: %v, want busy", err)
	}
	release()
	release, err = th.acquire(context.Background(), "192.0.2.1")
	if err != nil {
		t.Fatalf("slot not given back: %v", err)
	}
	release()
}

// TestSlotsFirstServed checks that a freed slot goes to a waiter from an
// address without failures before the ones from addresses that failed,
// even those that have waited longer.
func TestSlotsFirstServed(t *testing.T) {
	s := &slots{free: 1}
	if !s.acquire(context.Background(), true, time.Hour) {
		t.Fatal("free slot not given")
	}
	got := make(chan string, 3)
	wait := func(name string, first bool) {
		if s.acquire(context.Background(), first, time.Hour) {
			got <- name
			s.release()
		}
	}
	queued := func(first, rest int) {
		t.Helper()
		testutil.Eventually(t, "the waiters to queue", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.first) == first && len(s.rest) == rest
		})
	}
	go wait("suspect1", false)
	queued(0, 1)
	go wait("suspect2", false)
	queued(0, 2)
	go wait("device", true)
	queued(1, 2)
	s.release()
	for _, want := range []string{"device", "suspect1", "suspect2"} {
		if name := <-got; name != want {
			t.Fatalf("slot went to %s, want %s", name, want)
		}
	}
	// A waiter that gives up leaves no slot behind.
	if !s.acquire(context.Background(), true, time.Hour) {
		t.Fatal("slot lost")
	}
	if s.acquire(context.Background(), false, time.Millisecond) {
		t.Fatal("a second slot appeared")
	}
	s.release()
	if s.free != 1 || len(s.first)+len(s.rest) != 0 {
		t.Fatalf("free %d, waiters %d/%d", s.free, len(s.first), len(s.rest))
	}
}
