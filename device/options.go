package device

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/edk-go/edk/blueprint"
	"github.com/edk-go/edk/driver"
	"github.com/edk-go/edk/internal/ratelog"
	"github.com/edk-go/edk/mdns"
	"github.com/edk-go/edk/mqttapi"
)

// Defaults for the options below.
const (
	DefaultMinBackoff         = 500 * time.Millisecond
	DefaultMaxBackoff         = 30 * time.Second
	DefaultCommandTimeout     = time.Minute
	DefaultGracePeriod        = 10 * time.Second
	DefaultKeepAlive          = 30 * time.Second
	DefaultConnectTimeout     = 10 * time.Second
	DefaultPublishTimeout     = 10 * time.Second
	DefaultTelemetryInterval  = time.Second
	DefaultPropertiesInterval = 30 * time.Second
	DefaultMaxRequestSize     = 256 << 10
	DefaultDedupWindow        = 1024
	// DefaultMaxOpenRequests bounds the command requests a device has
	// open at once (WithMaxOpenRequests).
	DefaultMaxOpenRequests = 1000
)

// Option configures a Device.
type Option func(*options)

type options struct {
	logger         *slog.Logger
	clientID       string
	minBackoff     time.Duration
	maxBackoff     time.Duration
	keepAlive      time.Duration
	connectTimeout time.Duration
	publishTimeout time.Duration
	commandTimeout time.Duration
	gracePeriod    time.Duration
	dataQoS        byte
	propertiesKind mqttapi.Kind
	strictTLS      bool
	tlsConfig      *tls.Config
	maxRequestSize int
	dedupWindow    int
	maxOpen        int
	onState        func(State)
	logEvery       time.Duration

	telemetryEvery  time.Duration
	telemetryFn     TelemetryFunc
	propertiesEvery time.Duration
	propertiesFn    PropertiesFunc

	publishLogs     bool
	publishLogLevel slog.Level

	manifest       *blueprint.Manifest
	strictManifest bool

	driver driver.Driver
	// driverLogs: the driver logs its own read failures
	// (driver.FailureLogger), so the periodic reads log them at debug.
	driverLogs bool
	mdns       *mdns.Cache

	buffer      Buffer
	replayRate  float64
	replayBurst int
}

func defaultOptions() options {
	return options{
		logger:          slog.New(slog.DiscardHandler),
		minBackoff:      DefaultMinBackoff,
		maxBackoff:      DefaultMaxBackoff,
		keepAlive:       DefaultKeepAlive,
		connectTimeout:  DefaultConnectTimeout,
		publishTimeout:  DefaultPublishTimeout,
		commandTimeout:  DefaultCommandTimeout,
		gracePeriod:     DefaultGracePeriod,
		propertiesKind:  mqttapi.KindProperties,
		maxRequestSize:  DefaultMaxRequestSize,
		dedupWindow:     DefaultDedupWindow,
		maxOpen:         DefaultMaxOpenRequests,
		telemetryEvery:  DefaultTelemetryInterval,
		propertiesEvery: DefaultPropertiesInterval,
		replayRate:      DefaultReplayRate,
		replayBurst:     DefaultReplayBurst,
	}
}

// WithLogger sets the logger; the device is silent without one.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// DefaultLogEvery is how often a failure that lasts (a broker that is
// down, a telemetry read that keeps failing) writes a summary line.
const DefaultLogEvery = ratelog.DefaultSummaryEvery

// WithLogEvery sets how often a failure that lasts writes a summary line to
// the log (attempts so far, for how long, the next retry, the latest error);
// its first occurrence and its recovery are logged once each. Zero or less
// means DefaultLogEvery.
func WithLogEvery(d time.Duration) Option { return func(o *options) { o.logEvery = d } }

// WithClientID sets the MQTT client id. The default is derived from the
// hardware and channel ids plus a random suffix, so that two processes never
// knock each other off the broker.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithBackoff bounds the delay between reconnect attempts. Delays grow
// exponentially from min to max with ±50% jitter.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = min, max }
}

// WithKeepAlive sets the MQTT keep-alive; a dead link is noticed within
// about twice this (a ping after one keep-alive of silence, half a
// keep-alive to answer it).
func WithKeepAlive(d time.Duration) Option { return func(o *options) { o.keepAlive = d } }

// WithConnectTimeout bounds one connection attempt.
func WithConnectTimeout(d time.Duration) Option { return func(o *options) { o.connectTimeout = d } }

// WithPublishTimeout bounds how long a Send waits for the broker's
// acknowledgement when its context has no earlier deadline.
func WithPublishTimeout(d time.Duration) Option { return func(o *options) { o.publishTimeout = d } }

// WithCommandTimeout sets the default handler timeout; Handle's Timeout
// option overrides it per command.
func WithCommandTimeout(d time.Duration) Option { return func(o *options) { o.commandTimeout = d } }

// WithGracePeriod bounds how long shutdown waits for running handlers.
func WithGracePeriod(d time.Duration) Option { return func(o *options) { o.gracePeriod = d } }

// WithDataQoS sets the QoS of telemetry, properties and logs (0, the
// default, or 1). Command responses always use QoS 1.
func WithDataQoS(qos byte) Option { return func(o *options) { o.dataQoS = qos } }

// WithRegisterTopic publishes properties on v1/register, as Enapter's Python
// SDK does, instead of v1/properties from the public docs.
func WithRegisterTopic() Option {
	return func(o *options) { o.propertiesKind = mqttapi.KindRegister }
}

// WithStrictTLS also checks that the broker's certificate names the host.
// By default only the chain is checked against the config's CA, as Enapter's
// SDK does, because gateways are reached by IP address or a .local name.
func WithStrictTLS() Option { return func(o *options) { o.strictTLS = true } }

// WithTLSConfig replaces the TLS configuration built from the
// communication config, e.g. to add a custom VerifyConnection.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithMDNS sets how a broker host ending in .local is resolved when the
// system resolver cannot: by default a one-shot mDNS query to the standard
// groups. The name is resolved again on every (re)connect, since a
// gateway's address can change. Tests point the cache's resolver at a
// responder on 127.0.0.1.
func WithMDNS(c *mdns.Cache) Option { return func(o *options) { o.mdns = c } }

// WithMaxRequestSize refuses command requests larger than n bytes with an
// error response.
func WithMaxRequestSize(n int) Option { return func(o *options) { o.maxRequestSize = n } }

// WithDedupWindow sets how many finished request ids are remembered, so a
// redelivered request gets its final response again instead of running twice.
func WithDedupWindow(n int) Option { return func(o *options) { o.dedupWindow = n } }

// WithMaxOpenRequests bounds the command requests the device has open at
// once: running in a handler, or answered but not yet acknowledged by the
// broker. A request that arrives over the bound is dropped unanswered
// (counted in Stats.RequestsDropped, logged at most once every 10 s), so
// that a sender flooding the device cannot grow its memory, its goroutines
// and the responses waiting in the MQTT client without bound; its sender
// times out waiting. Default DefaultMaxOpenRequests; zero or negative
// means no bound.
func WithMaxOpenRequests(n int) Option { return func(o *options) { o.maxOpen = n } }

// WithStateHandler calls fn once per connection state change.
func WithStateHandler(fn func(State)) Option { return func(o *options) { o.onState = fn } }

// TelemetryFunc reads the device and returns one telemetry message; its
// Timestamp may be left 0 for "now". A function that could read only part
// of the device returns what it read together with the error: a message
// with values or a known alert state is still sent, and the error logged.
type TelemetryFunc func(ctx context.Context) (mqttapi.Telemetry, error)

// PropertiesFunc returns the device's properties.
type PropertiesFunc func(ctx context.Context) (map[string]any, error)

// WithTelemetry makes the device call fn every interval while connected
// (with WithBuffer, also while offline) and publish what it returns. An
// error is logged and that sample skipped.
func WithTelemetry(interval time.Duration, fn TelemetryFunc) Option {
	return func(o *options) { o.telemetryEvery, o.telemetryFn = interval, fn }
}

// WithProperties makes the device publish fn's properties on every connect
// and then every interval (Enapter expects about 30 s).
func WithProperties(interval time.Duration, fn PropertiesFunc) Option {
	return func(o *options) { o.propertiesEvery, o.propertiesFn = interval, fn }
}

// WithLogPublishing also publishes the device's own log records at level
// and above to v3/logs. Records are queued and dropped, not blocked on,
// while the device is offline.
func WithLogPublishing(level slog.Level) Option {
	return func(o *options) { o.publishLogs, o.publishLogLevel = true, level }
}
