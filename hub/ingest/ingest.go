// Package ingest turns the device messages that pass through the hub's
// embedded broker into rows in the hub store.
//
// A Pipeline is two things:
//
//   - a mochi-mqtt hook (Pipeline.Hook, to put in broker.Config.Hooks) that
//     sees every message a client published on v1/from/… once the broker has
//     accepted it (after ACL checks, and not those a hook such as hub/limits
//     told mochi to ignore), and every session that starts and ends. The
//     hook copies a reference to the message into a bounded queue. When the
//     queue is full the publisher waits for room (Config.QueueWait, 2 s),
//     which pushes back on it.
//   - Run, which owns the goroutines that resolve hardware ids to devices,
//     decode payloads with mqttapi, fan events out to live subscribers and
//     write to the store in batches (every FlushInterval or MaxBatch
//     messages): store.WriteBatch writes a batch's telemetry, logs, the
//     latest properties per device, malformed-message counts and the
//     devices' connectivity and last-seen time, a few devices per
//     transaction.
//
// A device message at QoS 1 or 2 is acknowledged only once it is stored
// (nothing is lost when the hub is killed after the acknowledgement): the
// hook queues it in OnPublish, before mochi sends PUBACK, and waits there
// until it is committed to the store's inbox (store.AppendInbox), raw:
// topic, payload, time received. Whoever waits makes the writer commit to
// the inbox at once, taking every waited-for message queued meanwhile
// into the same transaction (a group commit): mochi reads each client's
// packets one after the other, so one device waits for one commit per
// message, and many devices share each commit. An inbox commit appends a
// few rows at the end of one table, where a telemetry write touches a
// page per attribute, so it is cheap; the message's decoded contents go
// with the next batch, whose transactions delete the message's inbox row
// as they write what it holds. When Run starts, it first writes what the
// inbox still holds (acknowledged by a hub that died before its batch was
// written). So telemetry is readable up to about FlushInterval after the
// acknowledgement, not at it, and stored exactly once.
//
// The wait is bounded: QueueWait for room in the queue, then
// CommitTimeout for the commit. A message that could not be stored by
// then (queue still full, store error, ingest stopped) is not
// acknowledged at all (packets.ErrRejectPacket): it is counted
// (Stats.Unacknowledged) and logged, and the device, which still holds it,
// sends it again. A message that needs no write (malformed, unknown
// device, a command response the sink has taken) is released as soon as
// it is decoded.
//
// QoS 0 messages, the hub's own publishes and messages from an external
// broker (Pipeline.Ingest) are queued without waiting for the store, once
// the broker has delivered them (OnPublished): they are written at the
// next FlushInterval or MaxBatch, and dropped (Stats.Dropped) when the
// queue stays full for QueueWait.
//
// Command responses are not batched: each is handed to the ResponseSink as
// soon as it is decoded, in the order the broker delivered them.
//
// A message that cannot be decoded is counted in the store
// (IncrementMalformed), logged at most once per device per minute, and
// ingest carries on.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/mqttapi"
)

// Defaults for the zero fields of Config.
const (
	DefaultFlushInterval    = 100 * time.Millisecond
	DefaultMaxBatch         = 2000
	DefaultQueueSize        = 10000
	DefaultSubscriberBuffer = 256
	DefaultWriteTimeout     = 10 * time.Second
	// DefaultCommitTimeout bounds how long an acknowledgement waits for
	// the commit once its message is queued.
	DefaultCommitTimeout = 10 * time.Second
	// DefaultCacheTTL bounds how long a hardware id → device mapping is
	// trusted; unknown hardware ids are remembered for a tenth of it, so a
	// device created after its first message is seen soon.
	DefaultCacheTTL = time.Minute
	// MalformedLogInterval is the least time between two log lines about
	// malformed messages of one device.
	MalformedLogInterval = time.Minute
)

// ErrNoStore is returned by New when Config.Store is nil.
var ErrNoStore = errors.New("ingest: config has no store")

// ResponseSink receives command responses as soon as they are decoded
// (hub/exec implements it). OnResponse is called from the Pipeline's own
// goroutine, one response at a time, in delivery order; ingest of every
// other message waits while it runs, so it should return within a few
// milliseconds (a store write is fine). It must not call Run.
type ResponseSink interface {
	OnResponse(deviceID, hardwareID, channelID string, resp mqttapi.CommandResponse)
}

// Config configures New.
type Config struct {
	// Store is where everything is written. Required.
	Store *store.Store
	// Sink receives command responses; nil drops them (counted in
	// Stats.Responses all the same).
	Sink ResponseSink
	// DeviceForClient maps a connected MQTT client to the id of the device
	// it authenticated as (the auth hook knows). It is called from mochi's
	// goroutine right after the session is established and must not block.
	// Nil, or ok == false, means the connection does not change any
	// device's connectivity; messages still update last-seen.
	DeviceForClient func(cl *mqtt.Client) (deviceID string, ok bool)
	// FlushInterval is about the longest a message stays queued before it
	// is written (decoded into telemetry, logs…); a message whose
	// acknowledgement waits for the store is committed to the inbox at
	// once, and written with the others. Default DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxBatch is the number of messages that triggers a flush before
	// FlushInterval. Default DefaultMaxBatch.
	MaxBatch int
	// QueueSize bounds the messages waiting between the hook and the
	// pipeline. Default DefaultQueueSize.
	QueueSize int
	// QueueWait is how long a publisher waits for room in a full queue
	// (pushing back on it) before its message is dropped, or, at QoS 1 and
	// 2, not acknowledged. Default DefaultQueueWait.
	QueueWait time.Duration
	// CommitTimeout is how long, once its message is queued, a QoS 1 or 2
	// publisher's acknowledgement waits for the commit; a message not
	// stored by then is not acknowledged (the device sends it again).
	// Default DefaultCommitTimeout.
	CommitTimeout time.Duration
	// SubscriberBuffer is the channel capacity of each Subscribe; events
	// beyond it are dropped for that subscriber. Default DefaultSubscriberBuffer.
	SubscriberBuffer int
	// WriteTimeout bounds each store call. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// CacheTTL bounds how long a device lookup is cached. Default DefaultCacheTTL.
	CacheTTL time.Duration
	// Logger receives ingest's lines. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for last-seen, connectivity and log rate limits.
	// Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.QueueWait <= 0 {
		c.QueueWait = DefaultQueueWait
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Stats are the Pipeline's counters since New.
type Stats struct {
	Received         uint64 // device messages the hook queued
	Dropped          uint64 // messages nobody waited for (QoS 0, external broker) dropped because the queue was full
	UnknownDevice    uint64 // messages from a hardware id no device has
	OtherChannel     uint64 // messages on a channel that is not the device's
	Malformed        uint64 // messages that failed to decode
	Telemetry        uint64 // telemetry messages decoded
	Properties       uint64 // properties messages decoded (v1/properties and v1/register)
	Logs             uint64 // log messages decoded
	Responses        uint64 // command responses handed to the sink
	Stored           uint64 // telemetry samples and log entries the store wrote
	StoredSamples    uint64 // telemetry samples the store wrote (part of Stored)
	StoredLogs       uint64 // log entries the store wrote (part of Stored)
	Flushes          uint64 // batches written (committed)
	StoreErrors      uint64 // store calls that failed
	SubscriberDrops  uint64 // events dropped because a subscriber was slow
	ConnectionEvents uint64 // connects and disconnects mapped to a device
	// ManifestViolations counts telemetry values that broke the device's
	// assigned manifest (stored per device as malformed kind "manifest/…").
	ManifestViolations uint64
	// Unacknowledged counts QoS 1 and 2 messages that were not
	// acknowledged because they could not be stored in time (the queue
	// stayed full, the store failed, no commit within CommitTimeout, or
	// ingest had stopped); their devices send them again.
	Unacknowledged uint64
	// Inboxed counts the messages waited for that were committed to the
	// store's inbox (and then acknowledged), in InboxCommits commits.
	Inboxed, InboxCommits uint64
	// Replayed counts the messages Run found in the inbox when it started
	// (acknowledged by an earlier run, not written yet) and wrote.
	Replayed uint64
	// Retried counts the batch transactions that failed (a full disk,
	// say) and were written later, while running; RetryDropped those
	// given up on while running (too many waiting): their acknowledged
	// messages stay in the inbox for the next start, QoS 0 ones are lost.
	Retried, RetryDropped uint64
	// RetryPending is how many failed transactions wait to be written
	// again, as of the snapshot.
	RetryPending int

	// Gauges, as of the snapshot.
	QueueLength   int // messages waiting between the hook and the pipeline
	QueueCapacity int // Config.QueueSize
	// ConnectedDevices counts devices with at least one open MQTT
	// connection, as DeviceForClient mapped them (zero without it, e.g.
	// with an external broker).
	ConnectedDevices int
}

type counters struct {
	received, dropped, unknown, otherChannel, malformed atomic.Uint64
	telemetry, properties, logs, responses              atomic.Uint64
	stored, flushes, storeErrors, subDrops, connEvents  atomic.Uint64
	manifestViolations, storedSamples, storedLogs       atomic.Uint64
	unacked, inboxed, inboxCommits, replayed            atomic.Uint64
	retried, retryDropped                               atomic.Uint64
	retryPending                                        atomic.Int64
}

// message is one queued publish. The payload is mochi's own buffer, which
// mochi allocates per packet and never changes afterwards.
type message struct {
	topic   string
	payload []byte
	at      time.Time
	// done, when set, receives exactly one value once the message needs
	// nothing more: nil when it is stored (or needs no write), the error
	// when its batch failed. It has room for that value.
	done chan<- error
	// inboxID is the message's inbox row: set by the writer once it is
	// appended (a waited-for message), or from the start (replay). Zero
	// while it is not in the inbox.
	inboxID *int64
}

// release tells whoever waits for m (if anyone) how it went.
func (m message) release(err error) {
	if m.done != nil {
		m.done <- err
	}
}

type connEvent struct {
	deviceID string
	online   bool
	at       time.Time
}

// Pipeline is the ingest hook and batcher. Create it with New, add Hook()
// to the broker, and call Run once. Its methods are safe for concurrent use.
type Pipeline struct {
	cfg  Config
	in   chan message
	stat counters
	hook *hook

	cacheMu sync.Mutex
	cache   map[string]cacheEntry // hardware id → device

	connMu    sync.Mutex
	clients   map[*mqtt.Client]string // connected client → device id
	conns     map[string]int          // device id → open connections
	connEvts  []connEvent             // waiting for the next flush
	connDirty bool

	subMu   sync.Mutex
	subs    map[*subscriber]struct{}
	subDone bool

	running atomic.Bool
	ready   chan struct{} // closed once Run has written what the inbox held
	stopped chan struct{} // closed when Run returns

	unackMu     sync.Mutex
	unackLogged time.Time // last log line about unacknowledged messages
	unackN      uint64    // since then

	// failed holds batch transactions whose write failed for a reason
	// that may pass (a full disk, a busy file), oldest first, to be
	// written again before the next batch: their messages were
	// acknowledged and sit in the inbox, and would otherwise stay
	// invisible until the next start. Only the writer goroutine uses it.
	failed     []store.Batch
	failedMsgs int // samples, logs and inbox rows in failed

	// processor goroutine only
	seen            map[string]time.Time // device → last message time, until written
	malformedLogged map[string]time.Time
	violationLogged map[string]struct{} // "device/kind" already logged
	unknownLogged   time.Time
}

type cacheEntry struct {
	deviceID, channelID string
	manifest            *blueprint.Manifest // nil without an assigned blueprint
	expires             time.Time
}

// New returns a Pipeline; nothing runs until Run.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{
		cfg:             cfg,
		in:              make(chan message, cfg.QueueSize),
		cache:           make(map[string]cacheEntry),
		clients:         make(map[*mqtt.Client]string),
		conns:           make(map[string]int),
		subs:            make(map[*subscriber]struct{}),
		seen:            make(map[string]time.Time),
		malformedLogged: make(map[string]time.Time),
		violationLogged: make(map[string]struct{}),
		ready:           make(chan struct{}),
		stopped:         make(chan struct{}),
	}
	p.hook = &hook{p: p}
	return p, nil
}

// Ready is closed once Run has written what the inbox held when it
// started (messages an earlier run acknowledged and did not write), or
// given up on it (logged; they are written at the next start). Start taking
// device connections after it, so that those are written first.
func (p *Pipeline) Ready() <-chan struct{} { return p.ready }

// Hook returns the mochi hook that feeds the pipeline; add it to
// broker.Config.Hooks.
func (p *Pipeline) Hook() mqtt.Hook { return p.hook }

// Stats returns a snapshot of the counters and gauges. It is cheap enough
// to call on every metrics scrape.
func (p *Pipeline) Stats() Stats {
	c := &p.stat
	return Stats{
		Received: c.received.Load(), Dropped: c.dropped.Load(), Unacknowledged: c.unacked.Load(), UnknownDevice: c.unknown.Load(),
		OtherChannel: c.otherChannel.Load(), Malformed: c.malformed.Load(),
		Telemetry: c.telemetry.Load(), Properties: c.properties.Load(), Logs: c.logs.Load(),
		Responses: c.responses.Load(), Stored: c.stored.Load(),
		StoredSamples: c.storedSamples.Load(), StoredLogs: c.storedLogs.Load(), Flushes: c.flushes.Load(),
		StoreErrors: c.storeErrors.Load(), SubscriberDrops: c.subDrops.Load(),
		ConnectionEvents: c.connEvents.Load(), ManifestViolations: c.manifestViolations.Load(),
		Inboxed: c.inboxed.Load(), InboxCommits: c.inboxCommits.Load(), Replayed: c.replayed.Load(),
		Retried: c.retried.Load(), RetryDropped: c.retryDropped.Load(), RetryPending: int(c.retryPending.Load()),
		QueueLength: len(p.in), QueueCapacity: cap(p.in), ConnectedDevices: p.connectedDevices(),
	}
}

// connectedDevices counts the devices with an open connection.
func (p *Pipeline) connectedDevices() int {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c > 0 {
			n++
		}
	}
	return n
}

// Forget drops the cached device of a hardware id, e.g. after the device was
// deleted or its hardware id changed.
func (p *Pipeline) Forget(hardwareID string) {
	p.cacheMu.Lock()
	delete(p.cache, hardwareID)
	p.cacheMu.Unlock()
}

// DefaultQueueWait bounds how long a publisher waits for room in a full queue.
const DefaultQueueWait = 2 * time.Second

// put queues m and reports whether it did. When the queue is full it
// waits, up to Config.QueueWait: that slows the publisher down (its
// acknowledgements come later, TCP pushes back) instead of losing its
// messages; only a store that stays stuck makes it give up.
func (p *Pipeline) put(m message) bool {
	select {
	case p.in <- m:
		p.stat.received.Add(1)
		return true
	default:
	}
	t := time.NewTimer(p.cfg.QueueWait)
	defer t.Stop()
	select {
	case p.in <- m:
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
		args = append(args, "error", err)
	}
	p.cfg.Logger.Error("ingest: device message not acknowledged, the device will send it again (logged at most once a minute)", args...)
}

func (p *Pipeline) connected(cl *mqtt.Client) {
	if p.cfg.DeviceForClient == nil {
		return
	}
	id, ok := p.cfg.DeviceForClient(cl)
	if !ok || id == "" {
		return
	}
	now := p.cfg.Now()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	p.clients[cl] = id
	p.conns[id]++
	if p.conns[id] == 1 {
		p.addConnEvent(connEvent{deviceID: id, online: true, at: now})
	}
}

func (p *Pipeline) disconnected(cl *mqtt.Client) {
	now := p.cfg.Now()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	id, ok := p.clients[cl]
	if !ok {
		return
	}
	delete(p.clients, cl)
	// A device that reconnected with the same client id (a take-over) has
	// its new session established before the old one is gone: count
	// connections, and go offline only when the last one ends.
	// The entry stays at zero so that a message still queued from the
	// ended session does not mark the device online again.
	p.conns[id]--
	if p.conns[id] <= 0 {
		p.conns[id] = 0
		p.addConnEvent(connEvent{deviceID: id, online: false, at: now})
	}
}

// addConnEvent records a change for the next flush. Called with connMu held.
func (p *Pipeline) addConnEvent(e connEvent) {
	p.stat.connEvents.Add(1)
	p.connEvts = append(p.connEvts, e)
	p.connDirty = true
}

// online reports whether the device has a session open; known is false when
// no connection of it was ever mapped (no DeviceForClient, or anonymous).
func (p *Pipeline) online(deviceID string) (online, known bool) {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	n, ok := p.conns[deviceID]
	return ok && n > 0, ok
}

func (p *Pipeline) takeConnEvents() []connEvent {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	evts := p.connEvts
	p.connEvts, p.connDirty = nil, false
	return evts
}

func (p *Pipeline) connPending() bool {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	return p.connDirty
}

// batch is what one flush writes.
type batch struct {
	n         int
	samples   []store.Sample
	logs      []store.LogEntry
	props     map[string]store.Properties // latest per device
	seen      map[string]time.Time        // device → last message time; nil in most group commits
	malformed []store.MalformedMessage
	// waiters are the messages in this batch that someone waits for and
	// that are not in the inbox yet; the next inbox job takes them.
	waiters []message
	// inbox holds, by device ("" for none), the inbox rows of this
	// batch's messages, which its write deletes with the device's rows.
	// The writer fills in the ids when it appends the messages.
	inbox map[string][]*int64
}

func (b *batch) inboxed(deviceID string, id *int64) {
	b.inbox[deviceID] = append(b.inbox[deviceID], id)
}

// job is one thing for the writer goroutine: append inbox (the raw
// messages that are waited for, decoded into b) and release them; then,
// when write is set, write b.
type job struct {
	inbox []message
	b     *batch
	write bool
	// done, when set, is closed once the job is done.
	done chan<- struct{}
}

func newBatch() *batch {
	return &batch{props: make(map[string]store.Properties), inbox: make(map[string][]*int64)}
}

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
		p.cfg.Logger.Error("ingest: append to the inbox", "messages", len(ms), "error", err)
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
			p.cfg.Logger.Error("ingest: read the inbox (its messages are written at the next start)", "error", err)
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

// device resolves a hardware id, through the cache; ok is false for a
// hardware id no device has, and err is set when the store could not say.
func (p *Pipeline) device(ctx context.Context, hardwareID string) (_ cacheEntry, ok bool, err error) {
	now := p.cfg.Now()
	p.cacheMu.Lock()
	e, ok := p.cache[hardwareID]
	p.cacheMu.Unlock()
	if ok && now.Before(e.expires) {
		return e, e.deviceID != "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	d, err := p.cfg.Store.GetDeviceByHardwareID(ctx, hardwareID)
	switch {
	case err == nil:
		e = cacheEntry{deviceID: d.ID, channelID: d.ChannelID, expires: now.Add(p.cfg.CacheTTL)}
		if len(d.Manifest) > 0 && string(d.Manifest) != "null" {
			// Stored as JSON, which is YAML too; assign_blueprint checked it.
			e.manifest, _ = blueprint.Parse("manifest.json", d.Manifest)
		}
	case errors.Is(err, store.ErrNotFound):
		e = cacheEntry{expires: now.Add(p.cfg.CacheTTL / 10)}
	default:
		p.stat.storeErrors.Add(1)
		p.cfg.Logger.Error("ingest: look up device", "hardware_id", hardwareID, "error", err)
		return cacheEntry{}, false, err // not cached: try again next message
	}
	p.cacheMu.Lock()
	if len(p.cache) > 100_000 { // many unknown ids: start over rather than grow
		clear(p.cache)
	}
	p.cache[hardwareID] = e
	p.cacheMu.Unlock()
	return e, e.deviceID != "", nil
}

// process decodes one message into cur (or hands it to the sink). A
// message that someone waits for is released here when it needs no write,
// else it joins cur.waiters. A message from the inbox (replay) is noted
// in cur, whose write deletes it from there.
func (p *Pipeline) process(ctx context.Context, m message, cur *batch) {
	owner, stored, err := p.decode(ctx, m, cur)
	switch {
	case m.inboxID != nil: // replayed; nobody waits
		cur.inboxed(owner, m.inboxID)
	case m.done == nil:
	case err != nil:
		m.release(err) // not acknowledged: the device sends it again
	case stored:
		m.inboxID = new(int64)
		cur.inboxed(owner, m.inboxID)
		cur.waiters = append(cur.waiters, m)
	default:
		// Unknown device, a command response (with the sink), a
		// malformed message (counted, its count is written with the
		// batch, nobody waits for that).
		m.release(nil)
	}
}

// decode decodes one message into cur (or hands it to the sink). owner is
// the device whose rows it concerns ("" for none), stored whether cur holds
// it, err a store error that kept it from being decoded.
func (p *Pipeline) decode(ctx context.Context, m message, cur *batch) (owner string, stored bool, err error) {
	// v1/from/<hw>/<ch>/<kind…>; the hook let only v1/from/ through.
	parts := strings.SplitN(m.topic, "/", 5)
	if len(parts) != 5 || parts[2] == "" {
		p.stat.unknown.Add(1)
		return "", false, nil
	}
	hw, ch, kind := parts[2], parts[3], mqttapi.Kind(parts[4])
	dev, ok, err := p.device(ctx, hw)
	if err != nil {
		p.stat.unknown.Add(1)
		return "", false, err
	}
	if !ok {
		p.stat.unknown.Add(1)
		if now := p.cfg.Now(); now.Sub(p.unknownLogged) >= MalformedLogInterval {
			p.unknownLogged = now
			p.cfg.Logger.Warn("ingest: message from unknown hardware id dropped (logged once a minute)",
				"hardware_id", shorten(hw))
		}
		return "", false, nil
	}
	if ch != dev.channelID {
		p.stat.otherChannel.Add(1)
		return "", false, nil
	}
	id := dev.deviceID
	p.seen[id] = m.at

	switch kind {
	case mqttapi.KindTelemetry:
		err = p.telemetry(dev, hw, m, cur)
		stored = err == nil
	case mqttapi.KindProperties, mqttapi.KindRegister:
		err = p.properties(id, m, cur)
		stored = err == nil
	case mqttapi.KindLogs:
		err = p.log(id, m, cur)
		stored = err == nil
	case mqttapi.KindCommandResponses:
		var r mqttapi.CommandResponse
		r, err = mqttapi.DecodeCommandResponse(m.payload)
		if err == nil {
			if p.cfg.Sink != nil {
				p.cfg.Sink.OnResponse(id, hw, ch, r)
			}
			p.stat.responses.Add(1) // after the sink, so a test can wait for it
		}
	default:
		kind = "unknown_topic"
		err = fmt.Errorf("topic %q is not part of the Device MQTT API", shorten(m.topic))
	}
	if err != nil {
		p.malformed(id, hw, string(kind), err, cur)
	}
	return id, stored, nil
}

// checkManifest counts the telemetry values that break the device's
// manifest as malformed messages of kind "manifest/<attribute>/<problem>",
// so that the API reports them per device; each problem is logged once
// per device.
func (p *Pipeline) checkManifest(dev cacheEntry, hw string, t mqttapi.Telemetry, cur *batch) {
	for _, v := range dev.manifest.CheckTelemetry(t.Values, t.Alerts.Names()) {
		kind := "manifest/" + v.Attribute + "/" + string(v.Problem)
		p.stat.manifestViolations.Add(1)
		cur.malformed = append(cur.malformed, store.MalformedMessage{DeviceID: dev.deviceID, Kind: kind})
		key := dev.deviceID + "/" + kind
		if _, seen := p.violationLogged[key]; !seen {
			p.violationLogged[key] = struct{}{}
			p.cfg.Logger.Warn("ingest: telemetry breaks the device's manifest (logged once per device and problem)",
				"device_id", dev.deviceID, "hardware_id", hw, "attribute", v.Attribute, "problem", string(v.Problem), "detail", v.Message)
		}
	}
}

func (p *Pipeline) malformed(deviceID, hw, kind string, err error, cur *batch) {
	p.stat.malformed.Add(1)
	cur.malformed = append(cur.malformed, store.MalformedMessage{DeviceID: deviceID, Kind: kind})
	cur.n++
	now := p.cfg.Now()
	if last, ok := p.malformedLogged[deviceID]; ok && now.Sub(last) < MalformedLogInterval {
		return
	}
	p.malformedLogged[deviceID] = now
	p.cfg.Logger.Warn("ingest: malformed message (logged once a minute per device)",
		"device_id", deviceID, "hardware_id", hw, "kind", kind, "error", err)
}

func msgTime(ts int64, at time.Time) time.Time {
	if ts == 0 {
		return at
	}
	return time.Unix(ts, 0)
}

// rawValues re-encodes decoded attribute values as JSON for the store.
func rawValues(values map[string]any) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(values))
	for k, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", shorten(k), err)
		}
		out[k] = b
	}
	return out, nil
}

func (p *Pipeline) telemetry(dev cacheEntry, hw string, m message, cur *batch) error {
	t, err := mqttapi.DecodeTelemetry(m.payload)
	if err != nil {
		return err
	}
	deviceID := dev.deviceID
	values, err := rawValues(t.Values)
	if err != nil {
		return err
	}
	if dev.manifest != nil {
		p.checkManifest(dev, hw, t, cur)
	}
	s := store.Sample{DeviceID: deviceID, Time: msgTime(t.Timestamp, m.at), Values: values}
	if t.Alerts.Known() {
		s.Alerts = append([]string{}, t.Alerts.Names()...)
	}
	p.stat.telemetry.Add(1)
	cur.samples = append(cur.samples, s)
	cur.n++
	p.publish(Event{Kind: mqttapi.KindTelemetry, DeviceID: deviceID, Time: s.Time,
		Values: s.Values, Alerts: s.Alerts, Payload: m.payload})
	return nil
}

func (p *Pipeline) properties(deviceID string, m message, cur *batch) error {
	pr, err := mqttapi.DecodeProperties(m.payload)
	if err != nil {
		return err
	}
	values, err := rawValues(pr.Values)
	if err != nil {
		return err
	}
	t := msgTime(pr.Timestamp, m.at)
	if old, ok := cur.props[deviceID]; !ok || !t.Before(old.Time) {
		cur.props[deviceID] = store.Properties{Time: t, Values: values}
	}
	p.stat.properties.Add(1)
	cur.n++
	p.publish(Event{Kind: mqttapi.KindProperties, DeviceID: deviceID, Time: t, Values: values, Payload: m.payload})
	return nil
}

func (p *Pipeline) log(deviceID string, m message, cur *batch) error {
	l, err := mqttapi.DecodeLog(m.payload)
	if err != nil {
		return err
	}
	e := store.LogEntry{DeviceID: deviceID, Time: msgTime(l.Timestamp, m.at),
		Severity: string(l.Severity), Message: l.Message, Persist: l.Persist}
	p.stat.logs.Add(1)
	cur.logs = append(cur.logs, e)
	cur.n++
	p.publish(Event{Kind: mqttapi.KindLogs, DeviceID: deviceID, Time: e.Time, Log: e, Payload: m.payload})
	return nil
}

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
		p.cfg.Logger.Error("ingest: write batch", "samples", len(sb.Samples), "logs", len(sb.Logs), "error", err)
	default:
		p.keepForRetry(sb)
		p.cfg.Logger.Error("ingest: write batch; written again at the next flush, once the store works (the messages are safe in the inbox)",
			"samples", len(sb.Samples), "logs", len(sb.Logs), "error", err)
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
			p.cfg.Logger.Error("ingest: delete from the inbox", "error", derr)
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

// shorten cuts a device-chosen string for a log line.
func shorten(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
