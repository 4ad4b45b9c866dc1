// Package ingest turns the device messages that pass through the hub's
// embedded broker into rows in the hub store.
//
// A Pipeline is two things:
//
//   - a mochi-mqtt hook (Pipeline.Hook, to put in broker.Config.Hooks) that
//     sees every message a client published on v1/from/… once the broker has
//     accepted it (OnPublished, so after ACL checks, and not those a hook
//     such as hub/limits told mochi to ignore), and every session that
//     starts and ends. The hook only copies a reference to the message into
//     a bounded queue and returns: it never waits for the store. When the
//     queue is full the publisher waits for room (up to 2 s), which pushes
//     back on it; only then is the message dropped and counted (Stats.Dropped).
//   - Run, which owns the goroutines that resolve hardware ids to devices,
//     decode payloads with mqttapi, fan events out to live subscribers and
//     write to the store in batches: one AppendTelemetry and one AppendLogs
//     per flush, the latest properties per device, and the device's
//     connectivity and last-seen time.
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
	// FlushInterval is the longest a message waits before it is written.
	// Default DefaultFlushInterval.
	FlushInterval time.Duration
	// MaxBatch is the number of messages that triggers a flush before
	// FlushInterval. Default DefaultMaxBatch.
	MaxBatch int
	// QueueSize bounds the messages waiting between the hook and the
	// pipeline. Default DefaultQueueSize.
	QueueSize int
	// QueueWait is how long a publisher waits for room in a full queue
	// (pushing back on it) before its message is dropped. Default
	// DefaultQueueWait.
	QueueWait time.Duration
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
	Dropped          uint64 // messages dropped because the queue was full
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
	Flushes          uint64 // batches written
	StoreErrors      uint64 // store calls that failed
	SubscriberDrops  uint64 // events dropped because a subscriber was slow
	ConnectionEvents uint64 // connects and disconnects mapped to a device
	// ManifestViolations counts telemetry values that broke the device's
	// assigned manifest (stored per device as malformed kind "manifest/…").
	ManifestViolations uint64

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
}

// message is one queued publish. The payload is mochi's own buffer, which
// mochi allocates per packet and never changes afterwards.
type message struct {
	topic   string
	payload []byte
	at      time.Time
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

	// processor goroutine only
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
		malformedLogged: make(map[string]time.Time),
		violationLogged: make(map[string]struct{}),
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
		Received: c.received.Load(), Dropped: c.dropped.Load(), UnknownDevice: c.unknown.Load(),
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

// enqueue is called by the hook on the publishing client's goroutine. When
// the queue is full it waits, up to Config.QueueWait: that slows the publisher
// down (its acknowledgements come later, TCP pushes back) instead of losing
// its messages; only a store that stays stuck makes ingest drop.
func (p *Pipeline) enqueue(m message) {
	select {
	case p.in <- m:
		p.stat.received.Add(1)
		return
	default:
	}
	t := time.NewTimer(p.cfg.QueueWait)
	defer t.Stop()
	select {
	case p.in <- m:
		p.stat.received.Add(1)
	case <-t.C:
		p.stat.dropped.Add(1)
	}
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
	seen      map[string]time.Time        // device → last message time
	malformed []malformedRec
}

type malformedRec struct{ deviceID, kind string }

func newBatch() *batch {
	return &batch{props: make(map[string]store.Properties), seen: make(map[string]time.Time)}
}

// Run processes queued messages until ctx is cancelled, then drains the
// queue, writes the last batch and returns nil. Store errors are logged and
// counted, never returned: ingest carries on. Run may be called once;
// closing the broker before cancelling ctx makes sure the final disconnects
// are written too.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	defer p.closeSubscribers()

	batches := make(chan *batch, 1)
	writerDone := make(chan struct{})
	wctx := context.WithoutCancel(ctx)
	go func() {
		defer close(writerDone)
		for b := range batches {
			p.write(wctx, b)
		}
	}()

	ticker := time.NewTicker(p.cfg.FlushInterval)
	defer ticker.Stop()
	cur := newBatch()
	hand := func() {
		if cur.n == 0 && !p.connPending() {
			return
		}
		batches <- cur
		cur = newBatch()
	}
	for {
		select {
		case m := <-p.in:
			p.process(wctx, m, cur)
			if cur.n >= p.cfg.MaxBatch {
				hand()
			}
		case <-ticker.C:
			hand()
		case <-ctx.Done():
			for {
				select {
				case m := <-p.in:
					p.process(wctx, m, cur)
					if cur.n >= p.cfg.MaxBatch {
						hand()
					}
					continue
				default:
				}
				break
			}
			hand()
			close(batches)
			<-writerDone
			return nil
		}
	}
}

// device resolves a hardware id, through the cache.
func (p *Pipeline) device(ctx context.Context, hardwareID string) (cacheEntry, bool) {
	now := p.cfg.Now()
	p.cacheMu.Lock()
	e, ok := p.cache[hardwareID]
	p.cacheMu.Unlock()
	if ok && now.Before(e.expires) {
		return e, e.deviceID != ""
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
		return cacheEntry{}, false // not cached: try again next message
	}
	p.cacheMu.Lock()
	if len(p.cache) > 100_000 { // many unknown ids: start over rather than grow
		clear(p.cache)
	}
	p.cache[hardwareID] = e
	p.cacheMu.Unlock()
	return e, e.deviceID != ""
}

// process decodes one message into cur (or hands it to the sink).
func (p *Pipeline) process(ctx context.Context, m message, cur *batch) {
	// v1/from/<hw>/<ch>/<kind…>; the hook let only v1/from/ through.
	parts := strings.SplitN(m.topic, "/", 5)
	if len(parts) != 5 || parts[2] == "" {
		p.stat.unknown.Add(1)
		return
	}
	hw, ch, kind := parts[2], parts[3], mqttapi.Kind(parts[4])
	dev, ok := p.device(ctx, hw)
	if !ok {
		p.stat.unknown.Add(1)
		if now := p.cfg.Now(); now.Sub(p.unknownLogged) >= MalformedLogInterval {
			p.unknownLogged = now
			p.cfg.Logger.Warn("ingest: message from unknown hardware id dropped (logged once a minute)",
				"hardware_id", shorten(hw))
		}
		return
	}
	if ch != dev.channelID {
		p.stat.otherChannel.Add(1)
		return
	}
	id := dev.deviceID
	cur.seen[id] = m.at

	var err error
	switch kind {
	case mqttapi.KindTelemetry:
		err = p.telemetry(dev, hw, m, cur)
	case mqttapi.KindProperties, mqttapi.KindRegister:
		err = p.properties(id, m, cur)
	case mqttapi.KindLogs:
		err = p.log(id, m, cur)
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
}

// checkManifest counts the telemetry values that break the device's
// manifest as malformed messages of kind "manifest/<attribute>/<problem>",
// so that the API reports them per device; each problem is logged once
// per device.
func (p *Pipeline) checkManifest(dev cacheEntry, hw string, t mqttapi.Telemetry, cur *batch) {
	for _, v := range dev.manifest.CheckTelemetry(t.Values, t.Alerts.Names()) {
		kind := "manifest/" + v.Attribute + "/" + string(v.Problem)
		p.stat.manifestViolations.Add(1)
		cur.malformed = append(cur.malformed, malformedRec{dev.deviceID, kind})
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
	cur.malformed = append(cur.malformed, malformedRec{deviceID, kind})
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

// write stores one batch. It runs on the writer goroutine.
func (p *Pipeline) write(ctx context.Context, b *batch) {
	call := func(what string, fn func(ctx context.Context) error) {
		cctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
		defer cancel()
		if err := fn(cctx); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return // the device was deleted while its message was in flight
			}
			p.stat.storeErrors.Add(1)
			p.cfg.Logger.Error("ingest: "+what, "error", err)
		}
	}
	for _, e := range p.takeConnEvents() {
		call("set connectivity", func(ctx context.Context) error {
			return p.cfg.Store.SetConnectivity(ctx, e.deviceID, e.online, e.at)
		})
	}
	if len(b.samples) > 0 {
		call("append telemetry", func(ctx context.Context) error {
			n, err := p.cfg.Store.AppendTelemetry(ctx, b.samples)
			p.stat.stored.Add(uint64(n))
			p.stat.storedSamples.Add(uint64(n))
			return err
		})
	}
	if len(b.logs) > 0 {
		call("append logs", func(ctx context.Context) error {
			n, err := p.cfg.Store.AppendLogs(ctx, b.logs)
			p.stat.stored.Add(uint64(n))
			p.stat.storedLogs.Add(uint64(n))
			return err
		})
	}
	for id, pr := range b.props {
		call("set properties", func(ctx context.Context) error {
			return p.cfg.Store.SetProperties(ctx, id, pr.Time, pr.Values)
		})
	}
	for _, m := range b.malformed {
		call("count malformed message", func(ctx context.Context) error {
			return p.cfg.Store.IncrementMalformed(ctx, m.deviceID, m.kind)
		})
	}
	now := p.cfg.Now()
	for id := range b.seen {
		online, known := p.online(id)
		if !known {
			online = true // a device we cannot track is there when it talks
		}
		call("set last seen", func(ctx context.Context) error {
			return p.cfg.Store.SetConnectivity(ctx, id, online, now)
		})
	}
	if b.n > 0 {
		p.stat.flushes.Add(1)
	}
}

// shorten cuts a device-chosen string for a log line.
func shorten(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
