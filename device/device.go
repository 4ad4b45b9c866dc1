package device

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/internal/ratelog"
	"github.com/edk-go/edk/mdns"
	"github.com/edk-go/edk/mqttapi"
)

// Log keys used by the runtime, so that log lines can be searched.
const (
	logKeyCommand = "command"
	logKeyID      = "request_id"
	logKeyState   = "state"
	logKeyBroker  = "broker"
	logKeyErr     = "err"
)

// Device is one Enapter standalone device: a hardware id, a channel, and
// the MQTT connection that carries both.
type Device struct {
	cfg       *commconfig.Config
	opts      options
	log       *slog.Logger
	tlsConfig *tls.Config
	clientID  string

	handlersMu sync.RWMutex
	handlers   map[string]handler
	fallback   *handler

	connMu sync.RWMutex
	client mqtt.Client // nil while disconnected
	state  State
	stateC chan struct{} // closed and replaced on every state change

	cmds      *commandTracker
	workers   *workerPool
	manifest  *manifestGuard // nil without WithManifest
	responses inflight       // sent, not yet acknowledged
	intake    intake         // bounds the requests open at once
	outbox    *outbox        // nil without WithBuffer
	stats     counters

	requestTopic    string // where command requests arrive
	responseTopic   string // where their responses go
	ucmRequestTopic string // the same for the ucm channel of a v1 device; "" otherwise
	running         atomic.Bool
	logQueue        chan mqttapi.Log
}

// FromEnv creates a device from ENAPTER_STANDALONE_COMMUNICATION_CONFIG (or
// the legacy ENAPTER_VUCM_BLOB), exactly as Enapter's Python SDK reads it.
func FromEnv(opts ...Option) (*Device, error) {
	cfg, err := commconfig.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	return New(cfg, opts...)
}

// New creates a device for a communication config. It checks the config
// and builds the TLS material but does not connect: Run does.
func New(cfg *commconfig.Config, opts ...Option) (*Device, error) {
	if cfg == nil {
		return nil, fmt.Errorf("new device: communication config is nil")
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("new device: %w", err)
	}
	for field, id := range map[string]string{"hardware_id": cfg.HardwareID, "channel_id": cfg.ChannelID} {
		if err := mqttapi.ValidateID(field, id); err != nil {
			return nil, fmt.Errorf("new device: %w", err)
		}
	}
	tlsCfg := o.tlsConfig
	if tlsCfg == nil {
		var err error
		if tlsCfg, err = cfg.TLSConfig(o.strictTLS); err != nil {
			return nil, fmt.Errorf("new device: %w", err)
		}
	}
	d := &Device{
		cfg:       cfg,
		opts:      o,
		tlsConfig: tlsCfg,
		clientID:  o.clientID,
		handlers:  make(map[string]handler),
		stateC:    make(chan struct{}),
	}
	d.log = o.logger.With("hardware_id", cfg.HardwareID, "channel_id", cfg.ChannelID)
	if o.publishLogs {
		d.logQueue = make(chan mqttapi.Log, logQueueSize)
		d.log = slog.New(&publishingHandler{next: d.log.Handler(), level: o.publishLogLevel, queue: d.logQueue})
	}
	if d.clientID == "" {
		d.clientID = defaultClientID(cfg.HardwareID, cfg.ChannelID)
	}
	d.cmds = newCommandTracker(o.dedupWindow)
	if o.manifest != nil {
		d.manifest = &manifestGuard{m: o.manifest, strict: o.strictManifest}
	}
	if o.driver != nil {
		d.handleDriverCommands(o.driver)
	}
	if d.opts.mdns == nil {
		d.opts.mdns = mdns.NewCache(&mdns.Resolver{})
	}
	if d.opts.mdns.Logger == nil {
		d.opts.mdns.Logger = d.log
	}
	d.workers = newWorkerPool()
	d.intake.log = ratelog.New(10*time.Second, 1, nil)
	if o.buffer != nil {
		d.outbox = newOutbox(o.buffer, o.replayRate, o.replayBurst)
	}
	d.requestTopic = d.topic(mqttapi.ToDevice, cfg.ChannelID, mqttapi.KindCommandRequests)
	d.responseTopic = d.topic(mqttapi.FromDevice, cfg.ChannelID, mqttapi.KindCommandResponses)
	if d.servesUCM() {
		d.ucmRequestTopic = d.topic(mqttapi.ToDevice, ucmChannel, mqttapi.KindCommandRequests)
	}
	return d, nil
}

func (o *options) validate() error {
	switch {
	case o.minBackoff <= 0 || o.maxBackoff < o.minBackoff:
		return fmt.Errorf("backoff: want 0 < min <= max, got min %s, max %s", o.minBackoff, o.maxBackoff)
	case o.dataQoS > 1:
		return fmt.Errorf("data QoS %d: want 0 or 1", o.dataQoS)
	case o.commandTimeout <= 0 || o.gracePeriod < 0:
		return fmt.Errorf("command timeout must be positive and grace period not negative")
	case o.telemetryFn != nil && o.telemetryEvery <= 0:
		return fmt.Errorf("telemetry interval %s: want a positive duration", o.telemetryEvery)
	case o.propertiesFn != nil && o.propertiesEvery <= 0:
		return fmt.Errorf("properties interval %s: want a positive duration", o.propertiesEvery)
	case o.maxRequestSize <= 0 || o.dedupWindow < 0:
		return fmt.Errorf("max request size must be positive and dedup window not negative")
	}
	return nil
}

func defaultClientID(hw, ch string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := "edk_" + hw + "_" + ch + "_" + hex.EncodeToString(b[:])
	return id
}

// Logger returns the device's logger. With WithLogPublishing its records
// also go to the device's v3/logs topic.
func (d *Device) Logger() *slog.Logger { return d.log }

// HardwareID returns the device's hardware id.
func (d *Device) HardwareID() string { return d.cfg.HardwareID }

// ChannelID returns the device's channel id.
func (d *Device) ChannelID() string { return d.cfg.ChannelID }

// State returns the current connection state.
func (d *Device) State() State {
	d.connMu.RLock()
	defer d.connMu.RUnlock()
	return d.state
}

// WaitState blocks until the device reaches state s or ctx is done.
func (d *Device) WaitState(ctx context.Context, s State) error {
	for {
		d.connMu.RLock()
		cur, changed := d.state, d.stateC
		d.connMu.RUnlock()
		if cur == s {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for device state %s (now %s): %w", s, cur, ctx.Err())
		}
	}
}

func (d *Device) setState(s State, client mqtt.Client) {
	d.connMu.Lock()
	prev := d.state
	d.state, d.client = s, client
	if prev != s {
		close(d.stateC)
		d.stateC = make(chan struct{})
	}
	d.connMu.Unlock()
	if prev == s {
		return
	}
	d.log.Info("connection state changed", logKeyState, s.String(), "previous", prev.String(), logKeyBroker, d.cfg.BrokerURL())
	if d.opts.onState != nil {
		d.opts.onState(s)
	}
}

func (d *Device) currentClient() (mqtt.Client, error) {
	d.connMu.RLock()
	defer d.connMu.RUnlock()
	if d.state == StateStopped {
		return nil, ErrStopped
	}
	if d.client == nil {
		return nil, ErrNotConnected
	}
	return d.client, nil
}

// Run connects the device and serves it until ctx is cancelled; then it
// stops taking commands, waits for running handlers up to the grace period,
// flushes and disconnects. It returns nil after a clean shutdown. Broker
// outages are not errors: Run reconnects until ctx is done.
func (d *Device) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer d.setState(StateStopped, nil)

	var wg sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(context.Background())
	defer func() {
		stopLoops()
		wg.Wait()
	}()
	if d.logQueue != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.publishLogs(loopCtx) }()
	}
	stopForwarder := func() {}
	if d.outbox != nil {
		// The forwarder outlives the connections, and stops only after
		// shutdown has let it send the final command responses.
		fwdCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.forward(fwdCtx) }()
		stopForwarder = func() { cancel(); <-done }
		// With a buffer, readings are kept while offline too.
		var producers sync.WaitGroup
		d.startProducers(ctx, &producers)
		defer producers.Wait()
	}
	err := d.serve(ctx)
	d.shutdown(stopForwarder)
	return err
}

func (d *Device) shutdown(stopForwarder func()) {
	d.cmds.close()
	d.log.Info("shutting down: waiting for running commands", "grace", d.opts.gracePeriod, "running", d.cmds.running())
	if !d.cmds.wait(d.opts.gracePeriod) {
		d.log.Warn("shutdown: commands were still running after the grace period and were answered with an error")
	}
	if d.outbox != nil && d.State() == StateConnected {
		// The forwarder needs the connection for this.
		d.drainUrgent(d.opts.publishTimeout)
	}
	d.connMu.Lock()
	client := d.client
	d.client = nil
	d.connMu.Unlock()
	if client != nil {
		d.responses.wait(d.opts.publishTimeout)
	}
	// Before the disconnect: a batch cut off by it would be sent again.
	stopForwarder()
	if client != nil {
		client.Disconnect(uint(time.Second / time.Millisecond))
	}
	// Every request has had its answer by now; a handler that ignores its
	// cancelled context gets only a moment more, not another grace period.
	if !d.workers.close(time.Second) {
		d.log.Warn("shutdown: a command handler ignored its cancelled context and is still running")
	}
	d.log.Info("stopped")
}
