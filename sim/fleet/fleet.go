// Package fleet runs many simulated inverters at once, each on its own MQTT
// connection with the real device runtime (package device), to load a hub or
// a broker the way a site or an OEM does: `edk sim fleet`. It owns
// provisioning the devices through the hub's HTTP API, starting them at a
// bounded pace, sending commands through the hub, and the live status and
// the summary of the run. It knows nothing of the hub's internals: it sees
// what a user sees, the API and the broker.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/hubclient"
	"github.com/edk-go/edk/mdns"
	"github.com/edk-go/edk/mqttapi"
	"github.com/edk-go/edk/sim/inverter"
)

// Defaults of Config's zero values.
const (
	DefaultInterval             = time.Second
	DefaultValues               = 10
	DefaultProvisionConcurrency = 16
	DefaultStartRate            = 500
	DefaultStatusEvery          = time.Second
	DefaultPrefix               = "fleet"
	DefaultCommandTimeout       = 10 * time.Second
	// maxCommandsInFlight bounds the execute_command calls waiting at once;
	// a rate the hub cannot keep up with is counted as skipped, not queued
	// without bound.
	maxCommandsInFlight = 256
	// DefaultReadProbes is how many read probes a second a fleet on a hub
	// makes unless told otherwise: enough for percentiles within a minute,
	// too few to load the hub.
	DefaultReadProbes = 2
	// maxProbesInFlight bounds the read probes waiting at once, as
	// maxCommandsInFlight does the commands.
	maxProbesInFlight = 32
	// readProbeLimit is how long a probe waits for an acknowledged message
	// to be readable before it counts it as not readable.
	readProbeLimit = 30 * time.Second
	// readProbePoll is how often a probe asks again.
	readProbePoll = 20 * time.Millisecond
	// probeAttribute is in every message of the inverter's.
	probeAttribute = "power"
)

// Config configures Run.
type Config struct {
	Devices int
	// Interval is the telemetry period of each device; default 1 s. Each
	// message carries a timestamp of its own (whole seconds, at least one
	// more than the last), so under 1 s the timestamps run ahead of the clock.
	Interval time.Duration
	// Values is the number of telemetry values per message (the inverter's
	// power, status and voltage, then extra_NN readings); at least 3,
	// default 10. The alerts key comes on top.
	Values int
	// QoS of telemetry and properties: 1 (the default, every message
	// acknowledged) or 0. QoS is a *byte so that 0 can be asked for.
	QoS *byte

	// HubURL and Token: provision the devices through this hub's HTTP API
	// (docs/hub-api.md) and send commands through it.
	HubURL, Token string
	// Protocol asked of generate_config: MQTT (password, the default) or
	// MQTTS (client certificate).
	Protocol commconfig.Protocol
	// Prefix names the devices: <prefix>-00001 … as slugs on the hub,
	// hardware ids on a plain broker. A second run with the same prefix
	// reuses the devices the first one made.
	Prefix string
	// ProvisionConcurrency bounds the provisioning requests at once.
	ProvisionConcurrency int

	// Broker (mqtt://host:port or tcp://host:port), instead of HubURL: the
	// devices connect to it without credentials, and nothing is provisioned.
	Broker string

	// Commands is how many execute_command calls a second go through the
	// hub, each a set_power to a random connected device. Needs HubURL.
	Commands float64
	// CommandTimeout is each command's timeout at the hub; default 10 s.
	CommandTimeout time.Duration
	// ReadProbes is how many read probes a second check how soon the
	// hub serves what it acknowledged: each waits for a random device's
	// next acknowledged telemetry message and asks the hub's latest telemetry
	// (GET /v3/telemetry/latest) until it is there; the time from the
	// acknowledgement is the read lag. Zero means DefaultReadProbes with
	// HubURL; negative turns them off.
	ReadProbes float64

	// StartRate is how many devices start connecting per second; default
	// 500, negative starts all at once.
	StartRate float64
	// MinBackoff and MaxBackoff are the devices' reconnect backoff bounds
	// (the device package's defaults when zero).
	MinBackoff, MaxBackoff time.Duration

	// Status gets the live status line every StatusEvery (default 1 s) and
	// the summary at the end. Live rewrites one line in place (a terminal);
	// otherwise each status is its own line.
	Status      io.Writer
	StatusEvery time.Duration
	Live        bool
	// DeviceLog, when set, also gets every device's log records (they are
	// counted as errors from warning up either way).
	DeviceLog slog.Handler
	// HTTPClient talks to the hub; one with enough idle connections for
	// ProvisionConcurrency when nil.
	HTTPClient *http.Client
}

// Summary is what a run did, also printed at its end.
type Summary struct {
	Devices       int
	Duration      time.Duration // since the devices started
	Provisioned   int
	ProvisionTime time.Duration
	// Connected is how many were connected at the end; MostConnected the
	// most at once; AllConnectedAfter the time from the start until all
	// were connected for the first time (zero if they never were).
	Connected, MostConnected int
	AllConnectedAfter        time.Duration
	// Recoveries are the times from the first device of a whole fleet lost
	// (a hub restart) to all connected again.
	Recoveries []time.Duration
	Reconnects uint64
	// Sent counts the messages the devices produced: telemetry and
	// properties, and command responses. Acknowledged counts those the
	// broker acknowledged (device.Stats.Published: at QoS 0, written).
	Sent, Acknowledged uint64
	// Telemetry, Properties and Responses split Sent by kind: a hub's
	// stored telemetry messages should be at least Telemetry less the
	// publish failures.
	Telemetry, Properties, Responses uint64
	// TelemetryAcknowledged counts the telemetry messages the broker
	// acknowledged (at QoS 0: wrote); TelemetryFailed those that timed out
	// or lost their connection on the way. A hub must have stored at least
	// TelemetryAcknowledged.
	TelemetryAcknowledged, TelemetryFailed uint64
	PublishFailures, Dropped               uint64
	CommandsSent                           uint64
	CommandsSucceeded                      uint64
	CommandsFailed                         uint64 // an answer other than SUCCESS, or no answer
	CommandsSkipped                        uint64 // not sent: maxCommandsInFlight were waiting
	CommandRTT                             Percentiles
	// ReadLag is the time from a telemetry message's acknowledgement until
	// the hub's API served it (ReadProbes); ReadsNotReadable counts probes
	// that gave up after readProbeLimit, ReadErrors those whose request
	// failed.
	ReadLag                      Percentiles
	ReadProbes                   uint64
	ReadsNotReadable, ReadErrors uint64
	Errors                       uint64 // device log lines at warning and up, failed commands
	LastError                    string
	ClosedAtConnect              uint64 // connect attempts the broker closed unanswered
	PeakRSS                      int64  // bytes (VmHWM); 0 where unknown
}

// member is one simulated device of the fleet.
type member struct {
	id        string // the hub's device id; "" on a plain broker
	cfg       *commconfig.Config
	dev       *device.Device
	connected atomic.Bool
	telemetry device.TelemetryFunc
	// probe, when set, is a read probe waiting for this device's next
	// acknowledged telemetry message.
	probe atomic.Pointer[chan ackedMessage]
}

// ackedMessage is a telemetry message the broker acknowledged, and when.
type ackedMessage struct {
	timestamp int64 // the message's own, in seconds
	at        time.Time
}

// Fleet is a running fleet; Run makes one.
type fleet struct {
	cfg     Config
	hub     *hubClient
	members []*member
	log     *errorLog
	rtt     latencies

	connected atomic.Int64
	sent      atomic.Uint64 // telemetry and properties
	telemetry atomic.Uint64
	telAcked  atomic.Uint64 // telemetry messages the broker acknowledged
	telFailed atomic.Uint64 // telemetry messages that failed or were not sent
	cmdSent   atomic.Uint64
	cmdOK     atomic.Uint64
	cmdFailed atomic.Uint64
	cmdSkip   atomic.Uint64
	cmdErrors atomic.Uint64
	lastCmdMu sync.Mutex
	lastCmd   string

	readLag    latencies
	readProbes atomic.Uint64
	readsStale atomic.Uint64
	readErrors atomic.Uint64

	startedAt    time.Time
	mostMu       sync.Mutex
	most         int
	allConnected time.Duration
	lostAt       time.Time       // when the first of a whole fleet was lost; zero while whole
	recoveries   []time.Duration // from the first lost to all connected again
	events       []string        // lines for the status to print

	lineMu sync.Mutex // one status line at a time
}

// ErrConfig marks a Config that cannot run; the message says what to change.
var ErrConfig = errors.New("fleet")

func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.Devices <= 0 {
		return bad("--devices must be at least 1, got %d", c.Devices)
	}
	if c.Devices > 99_999 {
		return bad("--devices %d: at most 99999 (device names have 5 digits)", c.Devices)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < 10*time.Millisecond {
		return bad("--interval %s: want at least 10ms", c.Interval)
	}
	if c.Values == 0 {
		c.Values = DefaultValues
	}
	if c.Values < 3 || c.Values > 1000 {
		return bad("--values %d: want 3 to 1000 (the inverter sends 3 of its own)", c.Values)
	}
	if c.QoS == nil {
		one := byte(1)
		c.QoS = &one
	}
	if *c.QoS > 1 {
		return bad("--qos %d: want 0 or 1", *c.QoS)
	}
	switch {
	case c.HubURL != "" && c.Broker != "":
		return bad("give --hub or --broker, not both")
	case c.HubURL == "" && c.Broker == "":
		return bad("give --hub URL (with --token) to provision devices on an edk hub, or --broker URL for a broker that takes anonymous devices")
	case c.HubURL != "" && c.Token == "":
		return bad("--hub needs --token (the API token that edk hub prints, or EDK_HUB_TOKEN)")
	case c.Commands < 0:
		return bad("--commands %g: want 0 or more a second", c.Commands)
	case c.Commands > 0 && c.HubURL == "":
		return bad("--commands needs --hub: commands go through the hub's execute_command")
	}
	if c.HubURL != "" {
		u, err := url.Parse(c.HubURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("--hub %q: want the hub's API URL, e.g. http://127.0.0.1:8080", c.HubURL)
		}
		c.HubURL = trimSlash(c.HubURL)
	}
	if c.Broker != "" {
		if _, _, err := brokerAddr(c.Broker); err != nil {
			return bad("--broker: %v", err)
		}
	}
	switch c.Protocol {
	case "":
		c.Protocol = commconfig.ProtocolMQTT
	case commconfig.ProtocolMQTT, commconfig.ProtocolMQTTS:
	default:
		return bad("--protocol %q: want MQTT or MQTTS", c.Protocol)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if err := mqttapi.ValidateID("prefix", c.Prefix+"-00001"); err != nil {
		return bad("--prefix %q: %v", c.Prefix, err)
	}
	if c.ProvisionConcurrency == 0 {
		c.ProvisionConcurrency = DefaultProvisionConcurrency
	}
	if c.ProvisionConcurrency < 1 {
		return bad("--provision-concurrency %d: want at least 1", c.ProvisionConcurrency)
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	switch {
	case c.ReadProbes > 0 && c.HubURL == "":
		return bad("--read-probes needs --hub: the probes read the hub's API")
	case c.ReadProbes == 0 && c.HubURL != "":
		c.ReadProbes = DefaultReadProbes
	}
	if c.StartRate == 0 {
		c.StartRate = DefaultStartRate
	}
	if c.StatusEvery <= 0 {
		c.StatusEvery = DefaultStatusEvery
	}
	if c.Status == nil {
		c.Status = io.Discard
	}
	if (c.MinBackoff != 0 || c.MaxBackoff != 0) && (c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff) {
		return bad("backoff: want 0 < --min-backoff <= --max-backoff, got %s and %s", c.MinBackoff, c.MaxBackoff)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               nil, // the hub is local; a proxy from the environment would be a surprise
			MaxIdleConns:        c.ProvisionConcurrency + maxCommandsInFlight,
			MaxIdleConnsPerHost: c.ProvisionConcurrency + maxCommandsInFlight,
			IdleConnTimeout:     30 * time.Second,
		}, Timeout: c.CommandTimeout + 30*time.Second}
	}
	return c, nil
}

// brokerAddr splits mqtt://host:port (tcp:// too; port 1883 by default).
func brokerAddr(raw string) (string, int, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", 0, fmt.Errorf("%q: want mqtt://host:port", raw)
	}
	if u.Scheme != "mqtt" && u.Scheme != "tcp" {
		return "", 0, fmt.Errorf("%q: scheme %q: want mqtt:// (a plain, anonymous broker; TLS brokers need configs from a hub)", raw, u.Scheme)
	}
	port := 1883
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("%q: bad port", raw)
		}
	}
	return u.Hostname(), port, nil
}

// Run provisions (with HubURL) and runs the fleet until ctx is done, then
// stops every device and returns the summary, which it has also printed
// to cfg.Status. Interrupting it while it provisions is not an error.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	f := &fleet{cfg: cfg, log: &errorLog{next: cfg.DeviceLog}}
	// Idle keep-alive connections would outlive the run.
	defer cfg.HTTPClient.CloseIdleConnections()
	var sum Summary
	sum.Devices = cfg.Devices
	if cfg.HubURL != "" {
		f.hub = &hubClient{api: &hubclient.Client{BaseURL: cfg.HubURL, Token: cfg.Token, HTTP: cfg.HTTPClient}}
		start := time.Now()
		n, err := f.provision(ctx)
		sum.Provisioned, sum.ProvisionTime = n, time.Since(start)
		if err != nil {
			return sum, err
		}
		if ctx.Err() != nil {
			fmt.Fprintf(cfg.Status, "interrupted while provisioning: %d of %d devices provisioned\n", n, cfg.Devices)
			return sum, nil
		}
		fmt.Fprintf(cfg.Status, "provisioned %d devices in %s\n", n, sum.ProvisionTime.Round(time.Millisecond))
	} else if err := f.brokerMembers(); err != nil {
		return sum, err
	}
	if err := f.newDevices(); err != nil {
		return sum, err
	}
	return f.run(ctx, sum), nil
}

// provision makes every device on the hub, ProvisionConcurrency at a
// time, showing progress; the first error stops it.
func (f *fleet) provision(ctx context.Context) (int, error) {
	cfg := f.cfg
	f.members = make([]*member, cfg.Devices)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var done atomic.Int64
	var wg sync.WaitGroup
	for range cfg.ProvisionConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				id, dc, err := f.hub.provision(ctx, f.name(i), cfg.Protocol)
				if err != nil {
					if ctx.Err() == nil {
						cancel(err)
					}
					return
				}
				f.members[i] = &member{id: id, cfg: dc}
				done.Add(1)
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(cfg.StatusEvery)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n := done.Load()
				f.statusLine(fmt.Sprintf("provisioning %d/%d (%.0f/s)", n, cfg.Devices, float64(n)/time.Since(start).Seconds()))
			}
		}
	}()
feed:
	for i := range cfg.Devices {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	cancel(nil)
	<-progressDone
	f.endLine()
	n := int(done.Load())
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return n, f.explainProvisionError(err)
	}
	return n, nil
}

func (f *fleet) explainProvisionError(err error) error {
	switch {
	case errors.Is(err, errUnreachable):
		return fmt.Errorf("%w (is edk hub running, and is --hub its API address?)", err)
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
		return fmt.Errorf("%w (--token: use the API token that edk hub printed, or <data>/api-token)", err)
	}
	return err
}

func (f *fleet) name(i int) string { return fmt.Sprintf("%s-%05d", f.cfg.Prefix, i+1) }

// brokerMembers makes the configs of anonymous devices on a plain broker.
func (f *fleet) brokerMembers() error {
	host, port, _ := brokerAddr(f.cfg.Broker)
	f.members = make([]*member, f.cfg.Devices)
	for i := range f.members {
		f.members[i] = &member{cfg: &commconfig.Config{
			Version: commconfig.Version3, HardwareID: f.name(i), ChannelID: "primary",
			Host: host, Port: port, Protocol: commconfig.ProtocolMQTT,
		}}
	}
	return nil
}

// newDevices builds each member's device: the inverter on the runtime,
// with the fleet's counters around it.
func (f *fleet) newDevices() error {
	cfg := f.cfg
	logger := slog.New(f.log)
	// One cache for all: the runtime makes one per device otherwise.
	cache := mdns.NewCache(&mdns.Resolver{})
	cache.Logger = logger
	extra := make([]string, 0, cfg.Values-3)
	for i := range cfg.Values - 3 {
		extra = append(extra, fmt.Sprintf("extra_%02d", i+1))
	}
	for i, m := range f.members {
		inv := inverter.New(fmt.Sprintf("FLEET-%05d", i+1))
		phase := rand.Float64() * 100
		var last int64 // the last message's timestamp; only the telemetry loop touches it
		telemetry := func(ctx context.Context) (mqttapi.Telemetry, error) {
			r, err := inv.Telemetry(ctx)
			t := mqttapi.Telemetry{Alerts: mqttapi.ActiveAlerts(r.Alerts...), Values: r.Values}
			// Timestamps are whole seconds and a hub keeps one value per
			// device, attribute and second, so two messages in one second
			// (ticker jitter at 1 Hz; any interval under 1 s) would count
			// as one stored: each gets a second of its own, which runs
			// ahead of the clock at intervals under a second.
			t.Timestamp = max(time.Now().Unix(), last+1)
			last = t.Timestamp
			for j, k := range extra {
				t.Values[k] = float64(int((phase+float64(j))*1000)%100000) / 100
			}
			f.sent.Add(1)
			f.telemetry.Add(1)
			return t, err
		}
		properties := func(ctx context.Context) (map[string]any, error) {
			f.sent.Add(1)
			return inv.Properties(ctx)
		}
		opts := []device.Option{
			device.WithLogger(logger),
			device.WithMDNS(cache),
			device.WithProperties(device.DefaultPropertiesInterval, properties),
			device.WithDataQoS(*cfg.QoS),
			device.WithStateHandler(f.stateHandler(m)),
			// The inverter's commands; its telemetry goes out through the
			// fleet's own paced loop, so the driver's periodic one is off.
			device.WithDriver(inv, device.DefaultTelemetryInterval),
			device.WithTelemetry(0, nil),
		}
		if cfg.MinBackoff > 0 {
			opts = append(opts, device.WithBackoff(cfg.MinBackoff, cfg.MaxBackoff))
		}
		d, err := device.New(m.cfg, opts...)
		if err != nil {
			return fmt.Errorf("device %s: %w", f.name(i), err)
		}
		m.dev = d
		m.telemetry = telemetry
	}
	return nil
}

func (f *fleet) stateHandler(m *member) func(device.State) {
	return func(s device.State) {
		if s == device.StateConnected {
			if !m.connected.Swap(true) {
				n := int(f.connected.Add(1))
				f.noteConnected(n)
			}
			return
		}
		if m.connected.Swap(false) {
			f.noteLost(int(f.connected.Add(-1)))
		}
	}
}

func (f *fleet) noteConnected(n int) {
	f.mostMu.Lock()
	defer f.mostMu.Unlock()
	if n > f.most {
		f.most = n
	}
	if n != len(f.members) {
		return
	}
	switch {
	case f.allConnected == 0:
		f.allConnected = time.Since(f.startedAt)
		f.events = append(f.events, fmt.Sprintf("all %d devices connected after %s", n, f.allConnected.Round(10*time.Millisecond)))
	case !f.lostAt.IsZero():
		d := time.Since(f.lostAt)
		f.recoveries = append(f.recoveries, d)
		f.events = append(f.events, fmt.Sprintf("all %d devices connected again %s after the first was lost", n, d.Round(10*time.Millisecond)))
		f.lostAt = time.Time{}
	}
}

// noteLost notes when a whole fleet starts losing devices (a hub restart),
// to time how long until all are back.
func (f *fleet) noteLost(n int) {
	f.mostMu.Lock()
	defer f.mostMu.Unlock()
	if n == len(f.members)-1 && f.allConnected != 0 && f.lostAt.IsZero() {
		f.lostAt = time.Now()
	}
}

// takeEvents returns the event lines noted since the last call.
func (f *fleet) takeEvents() []string {
	f.mostMu.Lock()
	defer f.mostMu.Unlock()
	e := f.events
	f.events = nil
	return e
}

// run starts the devices and the commands, shows the status until ctx is
// done, then stops everything and returns the summary.
func (f *fleet) run(ctx context.Context, sum Summary) Summary {
	cfg := f.cfg
	f.mostMu.Lock()
	f.startedAt = time.Now()
	f.mostMu.Unlock()
	devCtx, stopDevices := context.WithCancel(context.Background())
	var devices sync.WaitGroup
	var starter sync.WaitGroup
	starter.Add(1)
	go func() {
		defer starter.Done()
		pace(ctx, cfg.StartRate, len(f.members), func(i int) {
			m := f.members[i]
			devices.Add(1)
			go func() {
				defer devices.Done()
				// Run returns an error only for a device run twice.
				_ = m.dev.Run(devCtx)
			}()
			devices.Add(1)
			go func() { defer devices.Done(); f.sendTelemetry(devCtx, m) }()
		})
	}()
	var commands sync.WaitGroup
	if cfg.Commands > 0 {
		commands.Add(1)
		go func() { defer commands.Done(); f.sendCommands(ctx) }()
	}
	if cfg.ReadProbes > 0 {
		commands.Add(1)
		go func() { defer commands.Done(); f.probeReads(ctx) }()
	}

	st := newStatus(f)
	t := time.NewTicker(cfg.StatusEvery)
	defer t.Stop()
status:
	for {
		select {
		case <-ctx.Done():
			break status
		case <-t.C:
			f.statusLine(st.line())
		}
	}
	f.endLine()
	// Stop the commands and probes first: their devices are about to go.
	commands.Wait()
	starter.Wait()
	sum = f.summarize(sum)
	fmt.Fprintf(cfg.Status, "stopping %d devices…\n", len(f.members))
	stopDevices()
	devices.Wait()
	sum.PeakRSS = peakRSS()
	printSummary(cfg.Status, sum)
	return sum
}

// sendTelemetry publishes m's telemetry every Interval while it is
// connected. The runtime's own loop (device.WithTelemetry) does the same
// but keeps each message's outcome to itself; this one counts which were
// acknowledged, so a hub's stored messages can be checked against them.
func (f *fleet) sendTelemetry(ctx context.Context, m *member) {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.connected.Load() {
			continue
		}
		tm, err := m.telemetry(ctx)
		if err == nil {
			err = m.dev.SendTelemetry(ctx, tm)
		}
		if err != nil {
			if ctx.Err() == nil {
				f.telFailed.Add(1)
			}
			continue
		}
		f.telAcked.Add(1)
		if p := m.probe.Swap(nil); p != nil {
			*p <- ackedMessage{timestamp: tm.Timestamp, at: time.Now()} // buffered for this one send
		}
	}
}

// pace calls fn(0) … fn(n-1) at rate per second (all at once when rate is
// negative), until ctx is done.
func pace(ctx context.Context, rate float64, n int, fn func(int)) {
	if rate < 0 {
		for i := range n {
			fn(i)
		}
		return
	}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	i := 0
	for i < n {
		due := min(n, int(rate*time.Since(start).Seconds())+1)
		for ; i < due; i++ {
			fn(i)
		}
		if i == n {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendCommands sends cfg.Commands set_power calls a second through the hub
// to random connected devices until ctx is done, and waits for those sent.
func (f *fleet) sendCommands(ctx context.Context) {
	f.atRandomDevices(ctx, f.cfg.Commands, maxCommandsInFlight, func() { f.cmdSkip.Add(1) },
		func(m *member) { f.command(ctx, m) })
}

// atRandomDevices runs fn on a random connected device rate times a second
// until ctx is done, each on its own goroutine, at most inFlight at once
// (skipped, with skipped called, beyond that), and waits for those started.
func (f *fleet) atRandomDevices(ctx context.Context, rate float64, inFlight int, skipped func(), fn func(*member)) {
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	pace(ctx, rate, int(^uint(0)>>1), func(int) {
		m := f.randomConnected()
		if m == nil {
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			skipped()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(m)
		}()
	})
}

func (f *fleet) randomConnected() *member {
	for range 16 {
		if m := f.members[rand.IntN(len(f.members))]; m.connected.Load() {
			return m
		}
	}
	return nil
}

func (f *fleet) command(ctx context.Context, m *member) {
	power := float64(rand.IntN(int(inverter.MaxPower)/100+1) * 100)
	f.cmdSent.Add(1)
	start := time.Now()
	state, err := f.hub.execute(ctx, m.id, "set_power", map[string]any{"power": power}, f.cfg.CommandTimeout.Seconds())
	if err != nil && ctx.Err() != nil {
		// Interrupted: neither a success nor the hub's failure.
		f.cmdSent.Add(^uint64(0))
		return
	}
	if err == nil && state == "SUCCESS" {
		f.rtt.add(time.Since(start))
		f.cmdOK.Add(1)
		return
	}
	f.cmdFailed.Add(1)
	f.cmdErrors.Add(1)
	msg := "execute_command: state " + state
	if err != nil {
		msg = "execute_command: " + err.Error()
	}
	f.lastCmdMu.Lock()
	f.lastCmd = msg
	f.lastCmdMu.Unlock()
}

// probeReads makes cfg.ReadProbes read probes a second until ctx is done,
// and waits for those started. Probes beyond maxProbesInFlight are not
// made: the hub is slow to answer, and the probes in flight say so.
func (f *fleet) probeReads(ctx context.Context) {
	f.atRandomDevices(ctx, f.cfg.ReadProbes, maxProbesInFlight, func() {}, func(m *member) { f.probeRead(ctx, m) })
}

// probeRead waits for m's next acknowledged telemetry message, then asks
// the hub for m's latest telemetry until it holds that message. Timing
// from a message acknowledged earlier would add the message's age to the
// lag.
func (f *fleet) probeRead(ctx context.Context, m *member) {
	ch := make(chan ackedMessage, 1)
	if !m.probe.CompareAndSwap(nil, &ch) {
		return // another probe waits on this device
	}
	var acked ackedMessage
	wait := time.NewTimer(2*f.cfg.Interval + 10*time.Second)
	defer wait.Stop()
	select {
	case acked = <-ch:
	case <-ctx.Done():
		m.probe.CompareAndSwap(&ch, nil)
		return
	case <-wait.C:
		// The device sent nothing acknowledged meanwhile (disconnected, or
		// the broker is not acknowledging): no read to time.
		m.probe.CompareAndSwap(&ch, nil)
		return
	}
	f.readProbes.Add(1)
	for {
		ts, err := f.hub.latestTimestamp(ctx, m.id, probeAttribute)
		switch {
		case ctx.Err() != nil:
			f.readProbes.Add(^uint64(0)) // interrupted: not a figure
			return
		case err != nil:
			f.readErrors.Add(1)
			return
		case ts >= acked.timestamp:
			f.readLag.add(time.Since(acked.at))
			return
		case time.Since(acked.at) > readProbeLimit:
			f.readsStale.Add(1)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(readProbePoll):
		}
	}
}

// totals sums the devices' counters.
type totals struct {
	acked, failures, dropped, reconnects, responses uint64
}

func (f *fleet) totals() totals {
	var t totals
	for _, m := range f.members {
		s := m.dev.Stats()
		t.acked += s.Published
		t.failures += s.PublishFailures
		t.dropped += s.Dropped
		t.reconnects += s.Reconnects
		t.responses += s.CommandsCompleted + s.CommandsFailed + s.CommandsTimedOut
	}
	return t
}

func (f *fleet) summarize(sum Summary) Summary {
	t := f.totals()
	f.mostMu.Lock()
	sum.Duration = time.Since(f.startedAt)
	sum.MostConnected, sum.AllConnectedAfter = f.most, f.allConnected
	sum.Recoveries = slices.Clone(f.recoveries)
	f.mostMu.Unlock()
	sum.Connected = int(f.connected.Load())
	sum.Reconnects = t.reconnects
	sum.Sent = f.sent.Load() + t.responses
	sum.Telemetry = f.telemetry.Load()
	sum.Properties = f.sent.Load() - sum.Telemetry
	sum.Responses = t.responses
	sum.TelemetryAcknowledged, sum.TelemetryFailed = f.telAcked.Load(), f.telFailed.Load()
	sum.Acknowledged = t.acked
	sum.PublishFailures, sum.Dropped = t.failures, t.dropped
	sum.CommandsSent, sum.CommandsSucceeded = f.cmdSent.Load(), f.cmdOK.Load()
	sum.CommandsFailed, sum.CommandsSkipped = f.cmdFailed.Load(), f.cmdSkip.Load()
	sum.ReadLag = percentiles(f.readLag.whole())
	sum.ReadProbes, sum.ReadsNotReadable, sum.ReadErrors = f.readProbes.Load(), f.readsStale.Load(), f.readErrors.Load()
	sum.CommandRTT = percentiles(f.rtt.whole())
	sum.Errors = f.log.errors.Load() + f.cmdErrors.Load()
	sum.LastError = f.lastError()
	sum.ClosedAtConnect = f.log.closed.Load()
	return sum
}

func (f *fleet) lastError() string {
	f.lastCmdMu.Lock()
	cmd := f.lastCmd
	f.lastCmdMu.Unlock()
	if l := f.log.lastError(); l != "" {
		return l
	}
	return cmd
}

// closedForHint is how many connections closed at connect within one
// status period make the fleet print capsHint.
func closedForHint(devices int) uint64 { return uint64(max(3, devices/100)) }

// capsHint is printed when the broker closes connections before answering
// them: edk hub does that over its connection caps, and a local fleet
// comes from one address, so the per-address cap (256) is the usual one.
func capsHint(devices int) string {
	return fmt.Sprintf("the broker closed connections before answering CONNECT: an edk hub does that when over its connection caps. "+
		"All fleet devices connect from one address, so start the hub with --mqtt-max-connections-per-address %d (default 256) "+
		"and, above 10000 devices, --mqtt-max-connections %d; the hub's open-file limit (ulimit -n) bounds both", devices, devices)
}
