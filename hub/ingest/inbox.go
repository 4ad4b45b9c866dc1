// The store inbox: group commits of the messages waited for, and the
// replay at start of what an earlier run left there.

package ingest

import (
	"context"

	"github.com/edk-go/edk/hub/store"
)

// appendInbox commits the raw messages to the inbox and notes their rows
// in the messages' inboxID, which their batch's write deletes.
func (p *Pipeline) appendInbox(ctx context.Context, ms []message) error {
	in := make([]store.InboxMessage, len(ms))
	for i, m := range ms {
		in[i] = store.InboxMessage{Topic: m.topic, Payload: m.payload, ReceivedAt: m.at}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	r, err := p.cfg.Store.AppendInbox(ctx, in)
	if err != nil {
		p.stat.storeErrors.Add(1)
		p.cfg.Logger.Error("ingest: append to the inbox", "messages", len(ms), "err", err)
		return err
	}
	for i, m := range ms {
		*m.inboxID = r.First + int64(i)
	}
	p.stat.inboxed.Add(uint64(len(ms)))
	p.stat.inboxCommits.Add(1)
	return nil
}

// replay decodes and writes, batch by batch, the messages left in the
// inbox by an earlier run (acknowledged, not yet written), before Run
// takes new ones. It returns the batch to carry on with.
func (p *Pipeline) replay(ctx context.Context, cur *batch, writes chan<- job) *batch {
	var after int64
	for {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
		ms, err := p.cfg.Store.ReadInbox(rctx, after, p.cfg.MaxBatch)
		cancel()
		if err != nil {
			p.stat.storeErrors.Add(1)
			p.cfg.Logger.Error("ingest: read the inbox (its messages are written at the next start)", "err", err)
			clear(p.seen)
			return cur
		}
		if len(ms) == 0 {
			// Those messages came from connections of an earlier run:
			// they say nothing of who is connected now.
			clear(p.seen)
			return cur
		}
		errs := p.stat.storeErrors.Load()
		for _, m := range ms {
			p.process(ctx, message{topic: m.Topic, payload: m.Payload, at: m.ReceivedAt, inboxID: &m.ID}, cur)
		}
		if p.stat.storeErrors.Load() != errs {
			// A device lookup failed: the message it concerned is not in
			// cur. Write none of these now, keep them all for the next start.
			p.cfg.Logger.Error("ingest: messages left in the inbox are written at the next start", "messages", len(ms))
			clear(p.seen)
			return newBatch()
		}
		after = ms[len(ms)-1].ID
		p.stat.replayed.Add(uint64(len(ms)))
		p.cfg.Logger.Info("ingest: wrote messages left in the inbox", "messages", len(ms))
		// Wait for the commit: Ready promises these are written.
		done := make(chan struct{})
		writes <- job{b: cur, write: true, done: done}
		<-done
		cur = newBatch()
	}
}
