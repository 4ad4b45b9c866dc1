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
	th := newThrottle(LoginLimits{FreeFailures: 3, Backoff: time.Second, MaxBackoff: 8 * time.Second, Now: clock.Now})
	const addr = "192.0.2.1"
	for i := range 3 {
		if err := th.blocked(addr); err != nil {
			t.Fatalf("blocked after %d failures: %v", i, err)
		}
		th.failed(addr)
	}
	if err := th.blocked(addr); err != nil {
		t.Fatalf("blocked after the free failures: %v", err)
	}
	// Each failure past the free ones doubles the wait, up to the maximum.
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		th.failed(addr)
		err := th.blocked(addr)
		if !errors.Is(err, errBlocked) || !errors.Is(err, errRefused) {
			t.Fatalf("not blocked after a failure past the free ones: %v", err)
		}
		clock.Add(want - time.Millisecond)
		if th.blocked(addr) == nil {
			t.Fatalf("unblocked before %v", want)
		}
		clock.Add(time.Millisecond)
		if err := th.blocked(addr); err != nil {
			t.Fatalf("still blocked after %v: %v", want, err)
		}
	}
	// Other addresses are not affected.
	if err := th.blocked("192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	// A success clears the count ...
	th.succeeded(addr)
	for range 3 {
		th.failed(addr)
	}
	if err := th.blocked(addr); err != nil {
		t.Fatalf("a success did not clear the count: %v", err)
	}
	// ... and so does a quiet spell longer than the maximum backoff.
	clock.Add(9 * time.Second)
	th.failed(addr)
	if err := th.blocked(addr); err != nil {
		t.Fatalf("failures from long ago still counted: %v", err)
	}
}

func TestThrottleOff(t *testing.T) {
	th := newThrottle(LoginLimits{FreeFailures: -1, MaxConcurrentChecks: -1})
	for range 100 {
		th.failed("192.0.2.1")
	}
	if err := th.blocked("192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if len(th.addrs) != 0 {
		t.Fatal("failures remembered with the backoff off")
	}
	if _, err := th.acquire(context.Background(), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

func TestThrottleBoundedMemory(t *testing.T) {
	clock := testutil.NewClock()
	th := newThrottle(LoginLimits{Now: clock.Now})
	for i := range maxTrackedAddrs + 500 {
		th.failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	if n := len(th.addrs); n > maxTrackedAddrs {
		t.Fatalf("%d addresses remembered, want at most %d", n, maxTrackedAddrs)
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
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.Lock()
			ok := len(s.first) == first && len(s.rest) == rest
			s.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiters never queued")
			}
			time.Sleep(time.Millisecond)
		}
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
