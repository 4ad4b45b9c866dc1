package ingest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/store"
)

// newQueueOnly is a pipeline whose Run never starts: the tests below play
// its processor and writer themselves.
func newQueueOnly(t *testing.T, cfg Config) *Pipeline {
	t.Helper()
	st, err := store.Open(context.Background(), ":memory:", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// putAll runs n puts at once and returns how many got in.
func putAll(p *Pipeline, n int, m func() message, do func(message) bool) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for range n {
		wg.Go(func() {
			if do(m()) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// A full queue that is taken from slowly is slow, not stuck: every
// publisher gets in, although most wait several times QueueWait. Giving up
// after QueueWait however the queue moved refused (and disconnected)
// devices of an overloaded hub by the thousand.
func TestSlowQueueIsWaitedFor(t *testing.T) {
	const (
		window     = 300 * time.Millisecond
		takeEvery  = 30 * time.Millisecond
		publishers = 30 // about 3 windows' worth
	)
	p := newQueueOnly(t, Config{QueueSize: 1, QueueWait: window})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(takeEvery):
				select {
				case <-p.in:
				default:
				}
			}
		}
	}()
	msg := func() message { return message{topic: "v1/from/hw/ch/v1/telemetry"} }
	if got := putAll(p, publishers, msg, p.put); got != publishers {
		t.Fatalf("%d of %d publishers got into a queue that kept moving", got, publishers)
	}
}

// A queue nobody takes from is stuck: the publisher gives up after
// QueueWait.
func TestStuckQueueGivesUp(t *testing.T) {
	p := newQueueOnly(t, Config{QueueSize: 1, QueueWait: 50 * time.Millisecond})
	if !p.put(message{topic: "v1/from/hw/ch/v1/telemetry"}) {
		t.Fatal("the first message did not fit an empty queue")
	}
	if p.put(message{topic: "v1/from/hw/ch/v1/telemetry"}) {
		t.Fatal("a message got into a full queue nobody takes from")
	}
}

// A writer that commits slowly, one message a commit, is waited for: each
// acknowledgement waits while other commits happen, so all are stored,
// although the last waits many times CommitTimeout. A writer that commits
// nothing makes the publisher give up after CommitTimeout.
func TestSlowCommitsAreWaitedFor(t *testing.T) {
	const (
		window      = 300 * time.Millisecond
		commitEvery = 30 * time.Millisecond
		publishers  = 30
	)
	p := newQueueOnly(t, Config{QueueSize: publishers, CommitTimeout: window})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case m := <-p.in:
				time.Sleep(commitEvery) // the commit's own time
				p.stat.inboxCommits.Add(1)
				m.release(nil)
			}
		}
	}()
	msg := func() message { return message{topic: "v1/from/hw/ch/v1/telemetry"} }
	if got := putAll(p, publishers, msg, p.store); got != publishers {
		t.Fatalf("%d of %d messages stored by a writer that kept committing", got, publishers)
	}
	if s := p.Stats(); s.Unacknowledged != 0 {
		t.Errorf("unacknowledged = %d", s.Unacknowledged)
	}
}

func TestNoCommitGivesUp(t *testing.T) {
	p := newQueueOnly(t, Config{CommitTimeout: 50 * time.Millisecond})
	if p.store(message{topic: "v1/from/hw/ch/v1/telemetry"}) {
		t.Fatal("stored, with no writer")
	}
	if s := p.Stats(); s.Unacknowledged != 1 {
		t.Errorf("unacknowledged = %d, want 1", s.Unacknowledged)
	}
}

// Command responses moving through their own queue are no progress for a
// telemetry publisher facing a full telemetry queue that nobody takes
// from: it gives up after QueueWait, not after maxAckWait.
func TestStuckQueueGivesUpWhileResponsesMove(t *testing.T) {
	p := newQueueOnly(t, Config{QueueSize: 1, QueueWait: 50 * time.Millisecond})
	tel := message{topic: "v1/from/hw/ch/v1/telemetry"}
	if !p.put(tel) {
		t.Fatal("the first message did not fit an empty queue")
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // responses in and out, all the time
		for {
			select {
			case <-stop:
				return
			default:
			}
			p.put(message{topic: "v1/from/hw/ch/v1/command/responses"})
			<-p.responses
		}
	}()
	gave := make(chan bool, 1)
	go func() { gave <- p.put(tel) }()
	select {
	case ok := <-gave:
		if ok {
			t.Fatal("a message got into a full queue nobody takes from")
		}
	case <-time.After(maxAckWait / 2):
		t.Fatal("the publisher kept waiting while only command responses moved")
	}
}
