package testutil

import (
	"testing"
	"time"
)

// WaitLimit is how long Eventually waits for a condition. It is generous:
// a condition that holds at all holds within milliseconds, and the limit only
// keeps a broken test from hanging (under -race, on a busy 2-core machine).
const WaitLimit = 10 * time.Second

// Eventually calls cond until it returns true and fails the test, naming
// what it waited for, when it has not within WaitLimit. It is for what a
// test cannot be told about (another goroutine's or process's state, an API
// polled as a client would): where there is an event or channel, wait on it
// instead. cond runs on the test's goroutine, so it may call t.Fatal.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, WaitLimit, what, cond)
}

// EventuallyWithin is Eventually with another limit.
func EventuallyWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(limit, cond) {
		t.Fatalf("waiting for %s: not within %v", what, limit)
	}
}

// Poll calls cond until it returns true or limit has passed, and reports
// whether it held. It is Eventually for a goroutine other than the test's,
// which must not call t.Fatal (e.g. one that cancels a context once a
// request is under way, and cancels anyway at the limit).
func Poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	// Start fast, for conditions that hold at once, and back off to 20 ms,
	// the pace of a client polling an API, so a slow one costs little CPU.
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	return true
}
