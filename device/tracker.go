package device

import (
	"context"
	"sync"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

type beginStatus int

const (
	beginStarted  beginStatus = iota // new id: run it
	beginRunning                     // duplicate of a running request: ignore
	beginFinished                    // duplicate of a finished request: re-send its final response
	beginClosing                     // shutting down: refuse
)

// commandTracker remembers every running request and the final responses
// of the last `window` finished ones; it is what makes "exactly one final
// response per id, never run twice" hold across redeliveries.
type commandTracker struct {
	mu       sync.Mutex
	closing  bool
	active   map[string]*execution
	finished map[string]mqttapi.CommandResponse
	order    []string // finished ids, oldest first, for eviction
	window   int

	wg     sync.WaitGroup  // one per active request, done at its final response
	ctx    context.Context // parent of every handler context
	cancel context.CancelFunc
}

func newCommandTracker(window int) *commandTracker {
	ctx, cancel := context.WithCancel(context.Background())
	return &commandTracker{
		active:   make(map[string]*execution),
		finished: make(map[string]mqttapi.CommandResponse),
		window:   window,
		ctx:      ctx,
		cancel:   cancel,
	}
}

func (t *commandTracker) begin(id, name string) (*execution, beginStatus, mqttapi.CommandResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.active[id]; ok {
		return nil, beginRunning, mqttapi.CommandResponse{}
	}
	if r, ok := t.finished[id]; ok {
		return nil, beginFinished, r
	}
	if t.closing {
		return nil, beginClosing, mqttapi.CommandResponse{}
	}
	e := &execution{name: name}
	t.active[id] = e
	t.wg.Add(1)
	return e, beginStarted, mqttapi.CommandResponse{}
}

// finish records the final response for id and reports whether it is the
// first one (and so must be sent); the caller calls sent once it has been.
func (t *commandTracker) finish(id string, r mqttapi.CommandResponse) (sent func(), first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.finished[id]; ok {
		return nil, false
	}
	sent = func() {}
	if e, ok := t.active[id]; ok {
		if !e.finished.CompareAndSwap(false, true) {
			return nil, false
		}
		delete(t.active, id)
		// Shutdown waits until the response has been handed to the broker,
		// not just recorded, before it disconnects.
		sent = t.wg.Done
	}
	if t.window > 0 {
		t.finished[id] = r
		t.order = append(t.order, id)
		if len(t.order) > t.window {
			delete(t.finished, t.order[0])
			t.order[0] = ""
			t.order = t.order[1:]
		}
	}
	return sent, true
}

func (t *commandTracker) running() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.active)
}

func (t *commandTracker) isClosing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closing
}

// close refuses new requests from now on.
func (t *commandTracker) close() {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
}

// wait waits for the final responses of running commands, up to grace; if
// some are still running then, it cancels their contexts (which answers
// them "interrupted" at once) and waits for those answers.
// It reports whether everything finished within grace.
func (t *commandTracker) wait(grace time.Duration) bool {
	finished := make(chan struct{})
	go func() { t.wg.Wait(); close(finished) }()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-finished:
		t.cancel()
		return true
	case <-timer.C:
	}
	t.cancel()
	<-finished
	return false
}
