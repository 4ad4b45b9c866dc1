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
// few rows at the end of one table, where a telemetry write touches its
// device's pages of two tables, so it is cheap; the message's decoded contents go
// with the next batch, whose transactions delete the message's inbox row
// as they write what it holds. When Run starts, it first writes what the
// inbox still holds (acknowledged by a hub that died before its batch was
// written). So telemetry is readable up to about FlushInterval after the
// acknowledgement, not at it, and stored exactly once.
//
// The wait is bounded, and tells a slow store from a stuck one: a
// publisher waits for room in the queue until the queue has taken nobody's
// message for QueueWait, then for its commit until no inbox commit has
// happened for CommitTimeout, and 30 s in all. A message that could not
// be stored by then (queue stuck, store error, ingest stopped) is not
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
// soon as it is decoded, in the order the broker delivered them. They have
// a queue of their own, taken before the other messages, so that a
// command's caller does not wait behind a full queue of telemetry; the
// other messages keep their order among themselves.
//
// A message that cannot be decoded is counted in the store
// (IncrementMalformed), logged at most once per device per minute, and
// ingest carries on.
package ingest

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

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
	// (pushing back on it) while the queue takes no other message; then
	// its message is dropped, or, at QoS 1 and 2, not acknowledged.
	// Default DefaultQueueWait.
	QueueWait time.Duration
	// CommitTimeout is how long, once its message is queued, a QoS 1 or 2
	// publisher's acknowledgement waits for its commit while no other
	// inbox commit happens; a message not stored by then is not
	// acknowledged (the device sends it again).
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
	cfg Config
	in  chan message
	// responses is the queue of command responses, taken before in: an
	// execution's caller waits for its response, and behind a full queue
	// of telemetry (10 000 messages at a few thousand a second) it would
	// wait seconds.
	responses chan message
	stat      counters
	hook      *hook

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
	// acceptedIn and acceptedResponses count the messages put into each
	// queue: what a publisher waiting for room takes as progress (put).
	acceptedIn, acceptedResponses atomic.Uint64

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

// New returns a Pipeline; nothing runs until Run.
func New(cfg Config) (*Pipeline, error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{
		cfg:             cfg,
		in:              make(chan message, cfg.QueueSize),
		responses:       make(chan message, responseQueueSize),
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
