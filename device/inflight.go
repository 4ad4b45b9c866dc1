package device

import (
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// inflight remembers the command responses not yet acknowledged by the
// broker, so that shutdown can wait for them: paho sends DISCONNECT on a
// priority queue, ahead of publishes still waiting, and a response sent
// just before shutdown would otherwise be lost.
type inflight struct {
	mu   sync.Mutex
	toks []mqtt.Token
}

func (f *inflight) add(t mqtt.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Acknowledgements come back roughly in order: drop the finished ones
	// at the front, which keeps this O(1) per response.
	for len(f.toks) > 0 && isDone(f.toks[0]) {
		f.toks[0] = nil
		f.toks = f.toks[1:]
	}
	f.toks = append(f.toks, t)
}

// pending returns about how many responses wait for their
// acknowledgement: those after the first unacknowledged one count, done or
// not.
func (f *inflight) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.toks) > 0 && isDone(f.toks[0]) {
		f.toks[0] = nil
		f.toks = f.toks[1:]
	}
	return len(f.toks)
}

// wait waits up to limit for every remembered response.
func (f *inflight) wait(limit time.Duration) {
	f.mu.Lock()
	toks := f.toks
	f.toks = nil
	f.mu.Unlock()
	deadline := time.Now().Add(limit)
	for _, t := range toks {
		if left := time.Until(deadline); left <= 0 || !t.WaitTimeout(left) {
			return
		}
	}
}

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}
