// Writing batches to the store, a few devices per transaction, and
// retrying the transactions that failed.

package ingest

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/edk-go/edk/hub/store"
)

// writeChunk is about how many messages one transaction of a batch write
// holds.
const writeChunk = 100

// write stores one batch, with the connectivity changes since the last
// one. It runs on the writer goroutine. The batch is written a few
// devices at a time, one transaction each (a device's rows share pages,
// so this costs little), each deleting the inbox rows of the messages it
// holds; between two, between runs the inbox jobs that came meanwhile, so
// that devices waiting for their acknowledgement are not held up by a
// whole batch. A chunk whose write fails leaves its messages in the inbox
// and is written again before the next batch (retryFailed), or, if the
// hub stops first, at the next start.
func (p *Pipeline) write(ctx context.Context, b *batch, between func()) {
	if !p.retryFailed(ctx) {
		// The store still fails: this batch would only join the others.
		// Its transactions are kept all the same, in order, behind them.
		p.cfg.Logger.Debug("ingest: the store still fails; the batch waits behind the earlier ones")
	}
	type part struct {
		samples []store.Sample
		logs    []store.LogEntry
	}
	parts := make(map[string]*part)
	get := func(id string) *part {
		pt := parts[id]
		if pt == nil {
			pt = &part{}
			parts[id] = pt
		}
		return pt
	}
	for _, s := range b.samples {
		pt := get(s.DeviceID)
		pt.samples = append(pt.samples, s)
	}
	for _, l := range b.logs {
		pt := get(l.DeviceID)
		pt.logs = append(pt.logs, l)
	}
	malformed := make(map[string][]store.MalformedMessage)
	for _, m := range b.malformed {
		malformed[m.DeviceID] = append(malformed[m.DeviceID], m)
		get(m.DeviceID)
	}
	for id := range b.props {
		get(id)
	}
	for id := range b.inbox {
		get(id)
	}
	devices := slices.Sorted(maps.Keys(parts))

	// The first chunk takes the connectivity changes.
	var sb store.Batch
	for _, e := range p.takeConnEvents() {
		sb.Connectivity = append(sb.Connectivity, store.ConnectivityChange{DeviceID: e.deviceID, Online: e.online, At: e.at})
	}
	now := p.cfg.Now()
	for id := range b.seen {
		online, known := p.online(id)
		if !known {
			online = true // a device we cannot track is there when it talks
		}
		sb.Connectivity = append(sb.Connectivity, store.ConnectivityChange{DeviceID: id, Online: online, At: now})
	}
	n, ok, written := 0, true, false
	for i, id := range devices {
		pt := parts[id]
		sb.Samples = append(sb.Samples, pt.samples...)
		sb.Logs = append(sb.Logs, pt.logs...)
		sb.Malformed = append(sb.Malformed, malformed[id]...)
		if pr, has := b.props[id]; has {
			if sb.Properties == nil {
				sb.Properties = make(map[string]store.Properties)
			}
			sb.Properties[id] = pr
		}
		sb.Inbox = appendRanges(sb.Inbox, b.inbox[id])
		n += len(pt.samples) + len(pt.logs) + len(malformed[id])
		if n < writeChunk && i < len(devices)-1 {
			continue
		}
		ok = p.writeChunk(ctx, sb) && ok
		written = true
		sb, n = store.Batch{}, 0
		if i < len(devices)-1 && between != nil {
			between()
		}
	}
	if !written {
		ok = p.writeChunk(ctx, sb)
	}
	if ok && b.n > 0 {
		p.stat.flushes.Add(1)
	}
}

// appendRanges adds the inbox ids (those set) to rs as ranges.
func appendRanges(rs []store.InboxRange, ids []*int64) []store.InboxRange {
	for _, p := range ids {
		id := *p
		switch {
		case id == 0: // its append failed; it was not acknowledged
		case len(rs) > 0 && rs[len(rs)-1].Last+1 == id:
			rs[len(rs)-1].Last = id
		default:
			rs = append(rs, store.InboxRange{First: id, Last: id})
		}
	}
	return rs
}

// maxRetryMessages bounds the samples, logs and inbox rows of the failed
// transactions kept for a retry while running; past it the oldest are
// given up on (their messages stay in the inbox, for the next start).
const maxRetryMessages = 200_000

// retryFailed writes the failed transactions again, oldest first, and
// reports whether none is left. It stops at the first that fails again.
func (p *Pipeline) retryFailed(ctx context.Context) bool {
	for len(p.failed) > 0 {
		sb := p.failed[0]
		if err := p.tryChunk(ctx, sb); err != nil && !errors.Is(err, store.ErrInvalid) {
			return false
		}
		p.failed[0] = store.Batch{}
		p.failed = p.failed[1:]
		p.failedMsgs -= batchSize(sb)
		p.stat.retried.Add(1)
		p.stat.retryPending.Store(int64(len(p.failed)))
		if len(p.failed) == 0 {
			p.failed = nil
			p.cfg.Logger.Info("ingest: the store writes again; the batches that had failed are written")
		}
	}
	return true
}

func batchSize(sb store.Batch) int {
	n := len(sb.Samples) + len(sb.Logs) + len(sb.Malformed)
	for _, r := range sb.Inbox {
		n += int(r.Last - r.First + 1)
	}
	return n
}

// keepForRetry queues a failed transaction behind the others. Its
// connectivity changes go: written late, after newer ones, they would
// turn a device's state back; the next change or message sets it again.
func (p *Pipeline) keepForRetry(sb store.Batch) {
	sb.Connectivity = nil
	if batchSize(sb)+len(sb.Properties) == 0 {
		return
	}
	p.failed = append(p.failed, sb)
	p.failedMsgs += batchSize(sb)
	for p.failedMsgs > maxRetryMessages && len(p.failed) > 1 {
		p.failedMsgs -= batchSize(p.failed[0])
		p.failed[0] = store.Batch{}
		p.failed = p.failed[1:]
		p.stat.retryDropped.Add(1)
		p.cfg.Logger.Error("ingest: too many failed writes waiting; the oldest is given up: its acknowledged messages stay in the inbox for the next start, its QoS 0 ones are lost",
			"waiting_messages", p.failedMsgs)
	}
	p.stat.retryPending.Store(int64(len(p.failed)))
}

// writeChunk writes one transaction of a batch and reports whether it did.
// If it failed for a reason that may pass, it waits (keepForRetry) to be
// written before the next batch; so does every chunk while older ones
// wait, to keep the order.
func (p *Pipeline) writeChunk(ctx context.Context, sb store.Batch) bool {
	if len(p.failed) > 0 {
		p.keepForRetry(sb)
		return false
	}
	err := p.tryChunk(ctx, sb)
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrInvalid):
		p.cfg.Logger.Error("ingest: write batch", "samples", len(sb.Samples), "logs", len(sb.Logs), "err", err)
	default:
		p.keepForRetry(sb)
		p.cfg.Logger.Error("ingest: write batch; written again at the next flush, once the store works (the messages are safe in the inbox)",
			"samples", len(sb.Samples), "logs", len(sb.Logs), "err", err)
	}
	return false
}

// tryChunk writes one transaction and counts what it wrote, or the error.
// A chunk that can never be written (store.ErrInvalid) has its messages
// deleted from the inbox.
func (p *Pipeline) tryChunk(ctx context.Context, sb store.Batch) error {
	if len(sb.Samples)+len(sb.Logs)+len(sb.Properties)+len(sb.Malformed)+len(sb.Connectivity)+len(sb.Inbox) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	res, err := p.cfg.Store.WriteBatch(ctx, sb)
	if errors.Is(err, store.ErrInvalid) && len(sb.Inbox) > 0 {
		// What the chunk holds can never be written: keeping its
		// messages in the inbox would only fail again at every start.
		if derr := p.cfg.Store.DeleteInbox(ctx, sb.Inbox); derr != nil {
			p.stat.storeErrors.Add(1)
			p.cfg.Logger.Error("ingest: delete from the inbox", "err", derr)
		}
	}
	if err != nil {
		p.stat.storeErrors.Add(1)
		return err
	}
	p.stat.stored.Add(uint64(res.Samples + res.Logs))
	p.stat.storedSamples.Add(uint64(res.Samples))
	p.stat.storedLogs.Add(uint64(res.Logs))
	return nil
}
