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

// put queues m and reports whether it did. When the queue is full it
// waits, up to Config.QueueWait: that slows the publisher down (its
// acknowledgements come later, TCP pushes back) instead of losing its
// messages; only a store that stays stuck makes it give up.
func (p *Pipeline) put(m message) bool {
	q := p.queueFor(m.topic)
	select {
	case q <- m:
		p.stat.received.Add(1)
		return true
	default:
	}
	t := time.NewTimer(p.cfg.QueueWait)
	defer t.Stop()
	select {
	case q <- m:
		p.stat.received.Add(1)
		return true
	case <-t.C:
		return false
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
// write, and reports whether it is; the hook acknowledges m only then. The wait is
// bounded by Config.QueueWait for room in the queue plus
// Config.CommitTimeout for the commit; a message not stored by then is
// counted and logged.
func (p *Pipeline) store(m message) bool {
	done := make(chan error, 1)
	m.done = done
	if !p.put(m) {
		p.unacknowledged("the ingest queue stayed full", nil)
		return false
	}
	t := time.NewTimer(p.cfg.CommitTimeout)
	defer t.Stop()
	var err error
	select {
	case err = <-done:
	case <-t.C:
		err = fmt.Errorf("not stored within %v", p.cfg.CommitTimeout)
	case <-p.stopped:
		select {
		case err = <-done: // released just before Run returned
		default:
			err = errors.New("ingest stopped")
		}
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
