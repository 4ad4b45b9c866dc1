// Package limits keeps one device from flooding the hub's embedded broker.
// Its mochi hook slows down a device that publishes faster than
// Options.Rate messages per second (a token bucket of Options.Burst per
// connection, golang.org/x/time/rate): the message waits for its token
// before the broker takes it, which holds back the device's connection —
// a device draining a backlog is paced, and loses nothing. Only a message
// that would wait longer than Options.MaxWait is dropped, as is one whose
// payload is larger than Options.MaxPayload bytes.
//
// A dropped message is acknowledged like any other (mochi's "ignore"
// outcome): the device neither retries it nor waits for it, and its
// connection stays up, but the message is not delivered, retained or
// stored (hub/ingest skips ignored messages). Drops and slow-downs are
// counted per device (Stats) and logged at most once per LogInterval per
// device and reason, with how many since the previous line.
//
// A device's message is never retained: the hook clears its retain flag
// (counted as Counts.RetainCleared), since every retained message stays in
// the broker's memory until restart.
//
// Only devices are limited: the hub's own inline client, and clients that
// Options.Device does not report as a device (admins, anonymous clients),
// are not.
package limits

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/time/rate"

	"github.com/edk-go/edk/internal/logfield"
)

// Defaults of the zero Options fields. The hub's Config has the same rule
// (zero takes the default, negative turns the limit off) and the same
// defaults (hub.DefaultMaxPayload, DefaultRateLimit, DefaultRateBurst).
const (
	DefaultMaxPayload = 64 << 10 // bytes
	DefaultRate       = 500      // messages per second per connection: above device.DefaultReplayRate
	DefaultBurst      = 1000     // messages
	DefaultMaxWait    = time.Second
)

// LogInterval is the least time between two log lines about the drops of
// one device for one reason.
const LogInterval = time.Minute

// Reason says why a message was dropped; it is the "reason" label of the
// hub's dropped-messages metric.
type Reason string

// Reasons.
const (
	ReasonRate     Reason = "rate"     // the device published so much faster than Options.Rate that the message would have waited over Options.MaxWait
	ReasonSize     Reason = "size"     // the payload was larger than Options.MaxPayload
	ReasonThrottle Reason = "throttle" // not a drop: the message waited for the rate limit
	ReasonRetain   Reason = "retain"   // not a drop: the message's retain flag was cleared
)

// Options configures New.
type Options struct {
	// MaxPayload is the largest payload, in bytes, a device may publish.
	// Zero means DefaultMaxPayload; negative means no limit (the broker's
	// packet size limit still applies, and disconnects the client).
	MaxPayload int
	// Rate is how many messages per second one device connection may
	// publish on average. Zero means DefaultRate; negative means no limit.
	Rate float64
	// Burst is how many messages a connection may publish at once after
	// being quiet. Zero or negative means DefaultBurst.
	Burst int
	// MaxWait bounds how long one message may wait for the rate limit;
	// a message that would wait longer is dropped. Zero means
	// DefaultMaxWait. Since a connection's messages are read one after
	// the other, a message waits at most about 1/Rate, so a device is
	// slowed down, not dropped, unless Rate is below 1/MaxWait.
	MaxWait time.Duration
	// Sleep waits for the rate limit; tests replace it. Default time.Sleep.
	Sleep func(time.Duration)
	// Device reports the hardware id of the device a client authenticated
	// as, and false for every other client (hub/auth's Hook.HardwareID).
	// Required. It is called once per connection, on its first publish.
	Device func(cl *mqtt.Client) (hardwareID string, ok bool)
	// Logger receives the drop lines (Warn). Nil discards them.
	Logger *slog.Logger
	// Now is the clock of the token buckets and log intervals. Default
	// time.Now.
	Now func() time.Time
}

// Counts are dropped-message counters.
type Counts struct {
	Rate      uint64 // dropped: over the rate limit even after MaxWait
	Size      uint64 // dropped: over the payload size limit
	Throttled uint64 // delivered, after waiting for the rate limit
	// RetainCleared counts messages delivered without the retain flag
	// the device had set.
	RetainCleared uint64
}

// Stats are the Hook's counters since New.
type Stats struct {
	Total   Counts
	Devices map[string]Counts // by hardware id; devices that had no drop are absent
}

// client is what the hook keeps per connection, from its first publish to
// its disconnect.
type client struct {
	hardwareID string        // "" for a client that is not limited
	bucket     *rate.Limiter // nil without a rate limit
}

// device is what the hook keeps per hardware id: counters, and when each
// reason was last logged with how many drops since.
type device struct {
	counts   Counts
	unlogged [4]uint64    // by reasonIndex
	logged   [4]time.Time // by reasonIndex
}

func reasonIndex(r Reason) int {
	switch r {
	case ReasonSize:
		return 1
	case ReasonThrottle:
		return 2
	case ReasonRetain:
		return 3
	}
	return 0
}

// Hook is the mochi hook; add it to broker.Config.Hooks. It provides
// OnPublish and OnDisconnect. mochi still calls every hook's OnPublished for
// a dropped message, with packets.Packet.Ignore set: a hook that stores or
// forwards messages must skip those (hub/ingest does). Its methods are safe
// for concurrent use.
type Hook struct {
	mqtt.HookBase
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	clients map[*mqtt.Client]*client // keyed by connection, so a take-over of a client id starts afresh
	devices map[string]*device       // by hardware id; bounded by the devices the hub knows
	total   Counts
}

var _ mqtt.Hook = (*Hook)(nil)

// New returns the hook. It panics when opts.Device is nil: the hook could
// not tell devices from the hub's own tools.
func New(opts Options) *Hook {
	if opts.Device == nil {
		panic("limits: Options.Device is nil")
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.Rate == 0 {
		opts.Rate = DefaultRate
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Sleep == nil {
		opts.Sleep = time.Sleep
	}
	return &Hook{
		opts:    opts,
		log:     opts.Logger,
		clients: make(map[*mqtt.Client]*client),
		devices: make(map[string]*device),
	}
}

// ID names the hook in mochi's logs.
func (h *Hook) ID() string { return "edk-limits" }

// Provides reports the mochi events the hook handles.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnDisconnect
}

// OnPublish lets a publish through, after waiting for the rate limit if
// need be, or drops it by returning packets.CodeSuccessIgnore: mochi then
// acknowledges it as usual but neither delivers nor retains it, and keeps
// the connection. (Its other outcome, packets.ErrRejectPacket, sends no
// acknowledgement, which would leave a QoS 1 publisher waiting and
// resending.) The size check comes first, so that an oversized message
// does not use up a token. Waiting here blocks only this connection's
// reader: mochi reads each client on its own goroutine.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	c := h.client(cl)
	if c.hardwareID == "" {
		return pk, nil
	}
	now := h.opts.Now()
	if pk.FixedHeader.Retain {
		// The broker would keep a retained message in memory until
		// restart, one per topic, and a device has as many topics under
		// v1/from/<hw>/ as it likes: 2 000 retained 60 KB messages are
		// 300 MB. The Device MQTT API retains nothing, and the hub
		// stores what it needs, so the flag goes. (hub/auth clears it on
		// a device's will, which never passes here.)
		pk.FixedHeader.Retain = false
		h.count(cl, c.hardwareID, ReasonRetain, pk, now)
	}
	if h.opts.MaxPayload > 0 && len(pk.Payload) > h.opts.MaxPayload {
		h.count(cl, c.hardwareID, ReasonSize, pk, now)
		return pk, packets.CodeSuccessIgnore
	}
	if c.bucket != nil {
		r := c.bucket.ReserveN(now, 1)
		delay := r.DelayFrom(now)
		if !r.OK() || delay > h.opts.MaxWait {
			r.CancelAt(now)
			h.count(cl, c.hardwareID, ReasonRate, pk, now)
			return pk, packets.CodeSuccessIgnore
		}
		if delay > 0 {
			h.count(cl, c.hardwareID, ReasonThrottle, pk, now)
			h.opts.Sleep(delay)
		}
	}
	return pk, nil
}

// client returns the connection's state, creating it on its first publish.
func (h *Hook) client(cl *mqtt.Client) *client {
	h.mu.Lock()
	c, ok := h.clients[cl]
	h.mu.Unlock()
	if ok {
		return c
	}
	c = &client{}
	if hw, ok := h.opts.Device(cl); ok && hw != "" {
		c.hardwareID = hw
		if h.opts.Rate > 0 {
			c.bucket = rate.NewLimiter(rate.Limit(h.opts.Rate), h.opts.Burst)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// One connection publishes from one goroutine, so nobody else created
	// it meanwhile; keep the first should mochi ever change that.
	if prev, ok := h.clients[cl]; ok {
		return prev
	}
	h.clients[cl] = c
	return c
}

// count counts a drop or a slow-down and logs it when the device's last line for this
// reason is LogInterval old. It never logs the payload.
func (h *Hook) count(cl *mqtt.Client, hw string, r Reason, pk packets.Packet, now time.Time) {
	i := reasonIndex(r)
	h.mu.Lock()
	d := h.devices[hw]
	if d == nil {
		d = new(device)
		h.devices[hw] = d
	}
	switch r {
	case ReasonSize:
		d.counts.Size++
		h.total.Size++
	case ReasonThrottle:
		d.counts.Throttled++
		h.total.Throttled++
	case ReasonRetain:
		d.counts.RetainCleared++
		h.total.RetainCleared++
	default:
		d.counts.Rate++
		h.total.Rate++
	}
	d.unlogged[i]++
	n := d.unlogged[i]
	logNow := d.logged[i].IsZero() || now.Sub(d.logged[i]) >= LogInterval
	if logNow {
		d.logged[i], d.unlogged[i] = now, 0
	}
	h.mu.Unlock()
	if !logNow {
		return
	}
	if r == ReasonRetain {
		h.log.Info("mqtt: device published a retained message; the hub delivers it but does not retain it (logged at most once a minute per device)",
			"hardware_id", hw, "client_id", logfield.Cut(cl.ID), "topic", shorten(pk.TopicName), "cleared", n)
		return
	}
	if r == ReasonThrottle {
		h.log.Info("mqtt: device publishes faster than the hub's rate limit; slowing it down, nothing is dropped (logged at most once a minute per device); normal while a device sends its offline backlog, otherwise publish less often or raise edk hub --rate-limit",
			"hardware_id", hw, "client_id", logfield.Cut(cl.ID), "limit", fmt.Sprintf("%g msg/s, burst %d", h.opts.Rate, h.opts.Burst), "slowed", n)
		return
	}
	if r == ReasonSize {
		h.log.Warn("mqtt: device message larger than the hub's payload limit dropped (logged at most once a minute per device); send smaller messages, or raise the limit with edk hub --max-payload",
			"hardware_id", hw, "client_id", logfield.Cut(cl.ID), "topic", shorten(pk.TopicName),
			"payload_bytes", len(pk.Payload), "limit_bytes", h.opts.MaxPayload, "dropped", n)
		return
	}
	h.log.Warn("mqtt: device publishes far faster than the hub's rate limit, messages dropped (logged at most once a minute per device); publish less often, or raise the limit with edk hub --rate-limit and --rate-burst",
		"hardware_id", hw, "client_id", logfield.Cut(cl.ID), "limit", fmt.Sprintf("%g msg/s, burst %d", h.opts.Rate, h.opts.Burst), "max_wait", h.opts.MaxWait, "dropped", n)
}

// OnDisconnect frees the connection's token bucket. A device's counters
// stay: they are totals.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.clients, cl)
	h.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (h *Hook) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := Stats{Total: h.total, Devices: make(map[string]Counts, len(h.devices))}
	for hw, d := range h.devices {
		s.Devices[hw] = d.counts
	}
	return s
}

// shorten cuts a topic for a log line.
func shorten(s string) string {
	const n = 128
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
