// The bounded queue between the broker hook and Run, and the wait of a
// publisher whose message must be stored before it is acknowledged.

package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edk-go/edk/mqttapi"
)

// DefaultQueueWait bounds how long a publisher waits for room in a full queue.
const DefaultQueueWait = 2 * time.Second

// responseQueueSize is the room for command responses, which have a queue
// of their own: a few per command in flight.
const responseQueueSize = 1024

// queueFor is the queue a message waits in: command responses go ahead of
// everything else, which keeps its order.
func (p *Pipeline) queueFor(topic string) chan message {
	if strings.HasSuffix(topic, "/"+string(mqttapi.KindCommandResponses)) {
		return p.responses
	}
	return p.in
}

// maxAckWait bounds how long a publisher waits in all, however slowly the
// store is still making progress: past it a device (whose own publish
// timeout is 10 s by default) has long given up on this acknowledgement.
const maxAckWait = 30 * time.Second

// put queues m and reports whether it did. When the queue is full it
// waits: that slows the publisher down (its acknowledgements come later,
// TCP pushes back) instead of losing its messages. It gives up only when
// the queue has taken nobody's message for Config.QueueWait (the store is
// stuck), or after maxAckWait. Giving up on a queue that is merely slow
// turned an overloaded hub into a reconnect storm: every refusal closes a
// device's connection (see the hook), and each reconnect costs more than
// the message (BENCHMARKS.md, "Hub: a fleet of devices").
func (p *Pipeline) put(m message) bool { return p.putUntil(m, time.Now().Add(maxAckWait)) }

// putUntil is put, giving up at limit however the queue moves.
func (p *Pipeline) putUntil(m message, limit time.Time) bool {
	q := p.queueFor(m.topic)
	// Progress is a message taken into this same queue: command responses
	// keep moving when telemetry's queue is stuck, and must not keep a
	// telemetry publisher waiting for 30 s.
	accepted := &p.acceptedResponses
	if q == p.in {
		accepted = &p.acceptedIn
	}
	take := func() {
		p.stat.received.Add(1)
		accepted.Add(1)
	}
	select {
	case q <- m:
		take()
		return true
	default:
	}
	return p.waitProgress(p.cfg.QueueWait, limit, accepted.Load, func(t <-chan time.Time) (bool, bool) {
		select {
		case q <- m:
			take()
			return true, true
		case <-p.stopped:
			return false, true
		case <-t:
			return false, false
		}
	})
}

// waitProgress runs try, each time with a timer of window, until it says
// it is done (then returns what it says), or until a window passes in
// which progress() did not change, or limit passes (then false).
func (p *Pipeline) waitProgress(window time.Duration, limit time.Time, progress func() uint64, try func(<-chan time.Time) (ok, done bool)) bool {
	t := time.NewTimer(min(window, max(time.Until(limit), 0)))
	defer t.Stop()
	last := progress()
	for {
		ok, done := try(t.C)
		if done {
			return ok
		}
		now := progress()
		left := time.Until(limit)
		if now == last || left <= 0 {
			return false
		}
		last = now
		t.Reset(min(window, left))
	}
}

// enqueue queues a message nobody waits for (QoS 0, external broker), on
// the publishing client's goroutine; a queue that stays full drops it.
func (p *Pipeline) enqueue(m message) {
	if !p.put(m) {
		p.stat.dropped.Add(1)
	}
}

// store queues m and waits until it is stored (in the inbox), or needs no
// write, and reports whether it is; the hook acknowledges m only then. As
// put does for room in the queue, it waits for the commit while the
// writer makes progress: it gives up when no inbox commit has happened for
// Config.CommitTimeout, or after maxAckWait. A message not stored is
// counted and logged.
func (p *Pipeline) store(m message) bool {
	limit := time.Now().Add(maxAckWait) // for room and commit together
	done := make(chan error, 1)
	m.done = done
	if !p.putUntil(m, limit) {
		p.unacknowledged("the ingest queue stayed full", nil)
		return false
	}
	var err error
	if !p.waitProgress(p.cfg.CommitTimeout, limit, p.stat.inboxCommits.Load, func(t <-chan time.Time) (bool, bool) {
		select {
		case err = <-done:
		case <-t:
			return false, false
		case <-p.stopped:
			select {
			case err = <-done: // released just before Run returned
			default:
				err = errors.New("ingest stopped")
			}
		}
		return true, true
	}) {
		err = fmt.Errorf("not stored: no commit for %v, or none for this message within %v", p.cfg.CommitTimeout, maxAckWait)
	}
	if err != nil {
		p.unacknowledged("the message could not be stored", err)
		return false
	}
	return true
}

// unacknowledged counts a message the hook did not let mochi acknowledge,
// and logs at most once per MalformedLogInterval.
func (p *Pipeline) unacknowledged(why string, err error) {
	p.stat.unacked.Add(1)
	now := p.cfg.Now()
	p.unackMu.Lock()
	p.unackN++
	n := p.unackN
	logNow := p.unackLogged.IsZero() || now.Sub(p.unackLogged) >= MalformedLogInterval
	if logNow {
		p.unackLogged, p.unackN = now, 0
	}
	p.unackMu.Unlock()
	if !logNow {
		return
	}
	args := []any{"reason", why, "unacknowledged", n}
	if err != nil {
		args = append(args, "err", err)
	}
	p.cfg.Logger.Error("ingest: device message not acknowledged, the device will send it again (logged at most once a minute)", args...)
}
