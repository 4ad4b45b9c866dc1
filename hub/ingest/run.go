// Run: the processor loop and the writer goroutine.

package ingest

import (
	"context"
	"errors"
	"maps"
	"time"
)

// Run processes queued messages until ctx is cancelled, then drains the
// queue, writes the last batch and returns nil. Store errors are logged and
// counted, never returned: ingest carries on. Run may be called once;
// closing the broker before cancelling ctx makes sure the final disconnects
// are written too.
//
// Before anything else Run writes what the inbox still holds: messages
// acknowledged before the hub stopped (or died) and not written yet.
//
// One goroutine decodes messages into the current batch, another writes.
// A message someone waits for (the hook's QoS 1 and 2) is appended, raw,
// to the store's inbox as soon as the writer is free, together with all
// the others waited for meanwhile (group commit), and released once that
// commit is done; the batch holding its decoded contents goes to the
// writer when it holds MaxBatch messages, at the FlushInterval tick or at
// the end, and its write deletes those inbox rows in the same
// transaction.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	defer close(p.stopped)
	defer p.closeSubscribers()

	// Writes outlive ctx: what is drained at the end must still be stored.
	wctx := context.WithoutCancel(ctx)
	w := p.startWriter(wctx)
	l := &processor{p: p, ctx: wctx, w: w}
	l.cur = p.replay(wctx, newBatch(), w.writes)
	close(p.ready)

	l.loop(ctx)
	l.flushAll()
	w.stop()
	return nil
}

// writer is the goroutine that runs jobs: inbox commits and batch writes.
type writer struct {
	// Unbuffered: a send succeeds only when the writer is free. Between
	// the chunks of a batch write, the writer takes inbox jobs too.
	writes, inboxes chan job
	done            chan struct{}
}

// startWriter starts the writer goroutine; stop ends it.
func (p *Pipeline) startWriter(ctx context.Context) *writer {
	w := &writer{writes: make(chan job), inboxes: make(chan job), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case j := <-w.inboxes:
				p.do(ctx, j, w.inboxes)
			case j, ok := <-w.writes:
				if !ok {
					return
				}
				p.do(ctx, j, w.inboxes)
			}
		}
	}()
	return w
}

// stop waits for the jobs handed over to finish and ends the goroutine.
func (w *writer) stop() {
	close(w.writes)
	<-w.done
}

// processor is the state of Run's own goroutine, which decodes messages
// into the current batch and hands batches and inbox jobs to the writer.
type processor struct {
	p   *Pipeline
	ctx context.Context // for store calls; not cancelled with Run's
	w   *writer
	cur *batch
	// full is a batch that reached MaxBatch and waits for the writer;
	// meanwhile cur gathers the next one, and its waiters still go to the
	// inbox between the chunks of full's write.
	full *batch
	due  bool // the tick came while something was pending
}

// pending reports whether there is anything for a write to store.
func (l *processor) pending() bool {
	p := l.p
	return l.cur.n > 0 || len(l.cur.waiters) > 0 || len(p.seen) > 0 || p.connPending() || p.stat.retryPending.Load() > 0
}

// withSeen moves the last-seen times into cur. They go with the batches
// handed at the tick, at MaxBatch and at the end: they are written as of
// the write anyway, so at most every FlushInterval.
func (l *processor) withSeen() {
	p := l.p
	if l.cur.seen == nil {
		l.cur.seen = p.seen
		p.seen = make(map[string]time.Time)
		return
	}
	maps.Copy(l.cur.seen, p.seen)
	clear(p.seen)
}

// writeJob hands b, with its waiters not in the inbox yet.
func writeJob(b *batch) job { return job{inbox: b.waiters, b: b, write: true} }

// drain decodes what is queued already, so that one commit covers it,
// command responses first.
func (l *processor) drain() {
	l.drainResponses()
	for l.cur.n < l.p.cfg.MaxBatch {
		select {
		case m := <-l.p.in:
			l.p.process(l.ctx, m, l.cur)
			l.drainResponses()
			continue
		default:
		}
		return
	}
}

// drainResponses decodes the command responses queued: they go to the
// response sink, not into the batch, so a full batch does not hold them.
func (l *processor) drainResponses() {
	for {
		select {
		case m := <-l.p.responses:
			l.p.process(l.ctx, m, l.cur)
		default:
			return
		}
	}
}

// loop takes messages, ticks and the writer's readiness until ctx is
// cancelled.
func (l *processor) loop(ctx context.Context) {
	ticker := time.NewTicker(l.p.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		l.drain()
		if l.cur.n >= l.p.cfg.MaxBatch && l.full == nil {
			l.withSeen()
			l.full, l.cur, l.due = l.cur, newBatch(), false
			continue
		}
		in := l.p.in
		if l.cur.n >= l.p.cfg.MaxBatch {
			in = nil // both full: wait for the writer
		}
		var wout, iout chan<- job // nil: nothing to hand over yet
		var wj, ij job
		switch {
		case l.full != nil:
			wj, wout = writeJob(l.full), l.w.writes
		case l.due && l.pending():
			l.withSeen()
			wj, wout = writeJob(l.cur), l.w.writes
		}
		if len(l.cur.waiters) > 0 {
			ij, iout = job{inbox: l.cur.waiters, b: l.cur}, l.w.inboxes
		}
		select {
		case m := <-l.p.responses:
			l.p.process(l.ctx, m, l.cur)
		case m := <-in:
			l.p.process(l.ctx, m, l.cur)
		case wout <- wj:
			if wj.b == l.full {
				l.full = nil
			} else {
				l.cur, l.due = newBatch(), false
			}
		case iout <- ij:
			l.cur.waiters = nil
		case <-ticker.C:
			l.due = l.pending()
		case <-ctx.Done():
			return
		}
	}
}

// flushAll hands the writer the full batch, everything still queued and
// what is pending, once ctx is cancelled.
func (l *processor) flushAll() {
	if l.full != nil {
		l.w.writes <- writeJob(l.full)
		l.full = nil
	}
	for {
		l.drain()
		if l.cur.n < l.p.cfg.MaxBatch {
			break
		}
		l.withSeen()
		l.w.writes <- writeJob(l.cur)
		l.cur = newBatch()
	}
	if l.pending() {
		l.withSeen()
		l.w.writes <- writeJob(l.cur)
	}
}

// do runs one job on the writer goroutine; a batch write takes the inbox
// jobs that come meanwhile between its chunks.
func (p *Pipeline) do(ctx context.Context, j job, inboxes <-chan job) {
	if len(j.inbox) > 0 {
		err := p.appendInbox(ctx, j.inbox)
		for _, m := range j.inbox {
			m.release(err)
		}
	}
	if j.done != nil {
		defer close(j.done)
	}
	if j.write {
		p.write(ctx, j.b, func() {
			for {
				select {
				case ij := <-inboxes:
					p.do(ctx, ij, nil)
					continue
				default:
				}
				return
			}
		})
	}
}
