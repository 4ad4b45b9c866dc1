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
//     write to the store in batches: one transaction (store.WriteBatch) per
//     batch holds its telemetry, logs, the latest properties per device,
//     malformed-message counts and the devices' connectivity and last-seen
//     time.
//
// A device message at QoS 1 or 2 is acknowledged only once it is stored
// (nothing is lost when the hub is killed after the acknowledgement): the
// hook queues it in OnPublish, before mochi sends PUBACK, and waits there
// until the batch holding it is committed. Whoever waits makes the writer
// commit at once rather than at the next FlushInterval, taking everything
// queued meanwhile into the same transaction (a group commit): mochi reads
// each client's packets one after the other, so one device waits for one
// commit per message, and many devices share each commit. The wait is
// bounded: QueueWait for room in the queue, then CommitTimeout for the
// commit. A message that could not be stored by then (queue still full,
// store error, ingest stopped) is not acknowledged at all
// (packets.ErrRejectPacket): it is counted (Stats.Unacknowledged) and
// logged, and the device, which still holds it, sends it again. A message
// that needs no write (malformed, unknown device, a command response the
// sink has taken) is released as soon as it is decoded.
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
	DefaultMaxBatch         = 500
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
	// FlushInterval is the longest a message that nobody waits for (QoS 0,
	// external broker) stays queued before it is written; a message whose
	// acknowledgement waits for the store is written at once. Default
	// DefaultFlushInterval.
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
	unacked                                             atomic.Uint64
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
	stopped chan struct{} // closed when Run returns

	unackMu     sync.Mutex
	unackLogged time.Time // last log line about unacknowledged messages
	unackN      uint64    // since then

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
		stopped:         make(chan struct{}),
	}
	p.hook = &hook{p: p}
	return p, nil
}

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

// store queues m and waits until it is stored, or needs no write, and
// reports whether it is; the hook acknowledges m only then. The wait is
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
	waiters   []message // released once the batch is committed
}

func newBatch() *batch {
	return &batch{props: make(map[string]store.Properties)}
}

// Run processes queued messages until ctx is cancelled, then drains the
// queue, writes the last batch and returns nil. Store errors are logged and
// counted, never returned: ingest carries on. Run may be called once;
// closing the broker before cancelling ctx makes sure the final disconnects
// are written too.
//
// One goroutine decodes messages into the current batch, another writes
// batches. A batch goes to the writer when it holds MaxBatch messages, at
// the FlushInterval tick, or — when a publisher waits for one of its
// messages — as soon as the writer is free: while the writer commits one
// batch, the next gathers everything that arrives meanwhile (group commit).
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	defer close(p.stopped)
	defer p.closeSubscribers()

	batches := make(chan *batch) // unbuffered: a send succeeds only when the writer is free
	writerDone := make(chan struct{})
	wctx := context.WithoutCancel(ctx)
	go func() {
		defer close(writerDone)
		for b := range batches {
			err := p.write(wctx, b)
			for _, m := range b.waiters {
				m.release(err)
			}
		}
	}()

	ticker := time.NewTicker(p.cfg.FlushInterval)
	defer ticker.Stop()
	cur := newBatch()
	due := false // the tick came while something was pending
	pending := func() bool { return cur.n > 0 || len(cur.waiters) > 0 || len(p.seen) > 0 || p.connPending() }
	// Last-seen times go with the batches handed at the tick, at
	// MaxBatch and at the end, not with every group commit: they are
	// written as of the write anyway, so at most every FlushInterval, as
	// before, spares each small commit a row per device.
	withSeen := func() {
		if cur.seen == nil {
			cur.seen = p.seen
			p.seen = make(map[string]time.Time)
			return
		}
		maps.Copy(cur.seen, p.seen)
		clear(p.seen)
	}
	hand := func() {
		withSeen()
		batches <- cur
		cur, due = newBatch(), false
	}
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
	for {
		drain()
		if cur.n >= p.cfg.MaxBatch {
			hand()
			continue
		}
		var out chan<- *batch // nil: nothing to hand over yet
		if due && pending() {
			withSeen()
			out = batches
		} else if len(cur.waiters) > 0 {
			out = batches
		}
		select {
		case m := <-p.in:
			p.process(wctx, m, cur)
		case out <- cur:
			cur, due = newBatch(), false
		case <-ticker.C:
			due = pending()
		case <-ctx.Done():
			for {
				drain()
				if cur.n < p.cfg.MaxBatch {
					break
				}
				hand()
			}
			if pending() {
				hand()
			}
			close(batches)
			<-writerDone
			return nil
		}
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
// else it joins cur.waiters.
func (p *Pipeline) process(ctx context.Context, m message, cur *batch) {
	// v1/from/<hw>/<ch>/<kind…>; the hook let only v1/from/ through.
	parts := strings.SplitN(m.topic, "/", 5)
	if len(parts) != 5 || parts[2] == "" {
		p.stat.unknown.Add(1)
		m.release(nil)
		return
	}
	hw, ch, kind := parts[2], parts[3], mqttapi.Kind(parts[4])
	dev, ok, err := p.device(ctx, hw)
	if err != nil {
		p.stat.unknown.Add(1)
		m.release(err) // not acknowledged: the device sends it again
		return
	}
	if !ok {
		p.stat.unknown.Add(1)
		if now := p.cfg.Now(); now.Sub(p.unknownLogged) >= MalformedLogInterval {
			p.unknownLogged = now
			p.cfg.Logger.Warn("ingest: message from unknown hardware id dropped (logged once a minute)",
				"hardware_id", shorten(hw))
		}
		m.release(nil)
		return
	}
	if ch != dev.channelID {
		p.stat.otherChannel.Add(1)
		m.release(nil)
		return
	}
	id := dev.deviceID
	p.seen[id] = m.at

	stored := false // the message is in cur, to be written
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
	switch {
	case m.done == nil:
	case stored:
		cur.waiters = append(cur.waiters, m)
	default:
		// A command response is with the sink; a malformed message is
		// counted (its count is written with the batch, nobody waits
		// for that).
		m.release(nil)
	}
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

// write stores one batch, with the connectivity changes since the last
// one, in one transaction, and returns the store's error. It runs on the
// writer goroutine.
func (p *Pipeline) write(ctx context.Context, b *batch) error {
	sb := store.Batch{Samples: b.samples, Logs: b.logs, Properties: b.props, Malformed: b.malformed}
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
	if len(sb.Samples)+len(sb.Logs)+len(sb.Properties)+len(sb.Malformed)+len(sb.Connectivity) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	res, err := p.cfg.Store.WriteBatch(ctx, sb)
	if err != nil {
		p.stat.storeErrors.Add(1)
		p.cfg.Logger.Error("ingest: write batch", "messages", b.n, "error", err)
		return err
	}
	p.stat.stored.Add(uint64(res.Samples + res.Logs))
	p.stat.storedSamples.Add(uint64(res.Samples))
	p.stat.storedLogs.Add(uint64(res.Logs))
	if b.n > 0 {
		p.stat.flushes.Add(1)
	}
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
