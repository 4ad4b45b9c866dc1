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

	// Unbuffered: a send succeeds only when the writer is free. Between
	// the chunks of a batch write, the writer takes inbox jobs too.
	writes, inboxes := make(chan job), make(chan job)
	writerDone := make(chan struct{})
	wctx := context.WithoutCancel(ctx)
	go func() {
		defer close(writerDone)
		for {
			select {
			case j := <-inboxes:
				p.do(wctx, j, inboxes)
			case j, ok := <-writes:
				if !ok {
					return
				}
				p.do(wctx, j, inboxes)
			}
		}
	}()

	cur := newBatch()
	cur = p.replay(wctx, cur, writes)
	close(p.ready)

	ticker := time.NewTicker(p.cfg.FlushInterval)
	defer ticker.Stop()
	due := false // the tick came while something was pending
	pending := func() bool {
		return cur.n > 0 || len(cur.waiters) > 0 || len(p.seen) > 0 || p.connPending() || p.stat.retryPending.Load() > 0
	}
	// Last-seen times go with the batches handed at the tick, at
	// MaxBatch and at the end: they are written as of the write anyway,
	// so at most every FlushInterval.
	withSeen := func() {
		if cur.seen == nil {
			cur.seen = p.seen
			p.seen = make(map[string]time.Time)
			return
		}
		maps.Copy(cur.seen, p.seen)
		clear(p.seen)
	}
	// writeJob hands b, with its waiters not in the inbox yet.
	writeJob := func(b *batch) job { return job{inbox: b.waiters, b: b, write: true} }
	// drain decodes what is queued already, so that one commit covers it.
	drain := func() {
		for cur.n < p.cfg.MaxBatch {
			select {
			case m := <-p.in:
				p.process(wctx, m, cur)
				continue
			default:
			}
			return
		}
	}
	// full is a batch that reached MaxBatch and waits for the writer;
	// meanwhile cur gathers the next one, and its waiters still go to the
	// inbox between the chunks of full's write.
	var full *batch
	for {
		drain()
		if cur.n >= p.cfg.MaxBatch && full == nil {
			withSeen()
			full, cur, due = cur, newBatch(), false
			continue
		}
		in := p.in
		if cur.n >= p.cfg.MaxBatch {
			in = nil // both full: wait for the writer
		}
		var wout, iout chan<- job // nil: nothing to hand over yet
		var wj, ij job
		switch {
		case full != nil:
			wj, wout = writeJob(full), writes
		case due && pending():
			withSeen()
			wj, wout = writeJob(cur), writes
		}
		if len(cur.waiters) > 0 {
			ij, iout = job{inbox: cur.waiters, b: cur}, inboxes
		}
		select {
		case m := <-in:
			p.process(wctx, m, cur)
		case wout <- wj:
			if wj.b == full {
				full = nil
			} else {
				cur, due = newBatch(), false
			}
		case iout <- ij:
			cur.waiters = nil
		case <-ticker.C:
			due = pending()
		case <-ctx.Done():
			if full != nil {
				writes <- writeJob(full)
			}
			for {
				drain()
				if cur.n < p.cfg.MaxBatch {
					break
				}
				withSeen()
				writes <- writeJob(cur)
				cur = newBatch()
			}
			if pending() {
				withSeen()
				writes <- writeJob(cur)
			}
			close(writes)
			<-writerDone
			return nil
		}
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
