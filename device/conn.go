package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edk-go/edk/internal/ratelog"
	"github.com/edk-go/edk/mdns"
	"github.com/edk-go/edk/mqttapi"
)

func (d *Device) newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = d.opts.minBackoff
	b.MaxInterval = d.opts.maxBackoff
	b.RandomizationFactor = 0.5
	b.Multiplier = 2
	b.MaxElapsedTime = 0 // a field device never gives up
	b.Reset()
	return b
}

// serve owns the connection: it connects, waits for the link to drop,
// and reconnects with backoff, until ctx is done. On return the last
// client, if connected, is left in d.client for shutdown to flush.
func (d *Device) serve(ctx context.Context) error {
	bo := d.newBackoff()
	broker := d.cfg.BrokerURL()
	// The first failure is logged with its hint, then a summary at a steady
	// cadence (attempts, next retry, latest error), and the recovery once:
	// a long outage neither floods the log nor goes quiet; the state
	// handler sees every change.
	outage := ratelog.NewOutage(d.log, d.opts.logEvery, nil)
	for {
		client, lost, err := d.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay := bo.NextBackOff()
			const msg = "cannot connect to broker; retrying"
			outage.Failed(msg, logKeyBroker, broker, logKeyErr, err, "retry_in", delay.Round(time.Millisecond), "hint", connectHint(err))
			// Sleep in steps, so that the summary keeps its cadence while
			// the backoff spaces attempts out further.
			retryAt := time.Now().Add(delay)
			for left := delay; left > 0; left = time.Until(retryAt) {
				if !sleepCtx(ctx, min(left, max(outage.Due(), time.Millisecond))) {
					return nil
				}
				if left := time.Until(retryAt); left > 0 {
					outage.Summary(msg, logKeyBroker, broker, logKeyErr, err, "retry_in", left.Round(time.Millisecond), "hint", connectHint(err))
				}
			}
			continue
		}
		outage.Recovered("connected to broker again", logKeyBroker, broker)
		bo.Reset()
		d.stats.connects.Add(1)
		d.setState(StateConnected, client)

		connCtx, stopPeriodic := context.WithCancel(ctx)
		var periodic sync.WaitGroup
		if d.outbox == nil {
			// Without a buffer there is nowhere to keep readings while
			// offline, so they are taken only while connected.
			d.startProducers(connCtx, &periodic)
		} else if d.opts.propertiesFn != nil && d.stats.connects.Load() > 1 {
			// The producers run across connections (their first properties
			// go out on the first connect); properties are still sent on
			// every reconnect, as Enapter expects.
			periodic.Add(1)
			go func() {
				defer periodic.Done()
				if err := d.sendProperties(connCtx); err != nil && connCtx.Err() == nil {
					var rf *readFailure
					if d.opts.driverLogs && errors.As(err, &rf) {
						d.log.Debug("properties on connect failed", logKeyErr, err)
					} else {
						d.log.Warn("properties on connect failed", logKeyErr, err)
					}
				}
			}()
		}
		if d.servesUCM() {
			periodic.Add(1)
			go func() { defer periodic.Done(); d.serveUCM(connCtx) }()
		}
		select {
		case <-ctx.Done():
			stopPeriodic()
			periodic.Wait()
			return nil
		case err := <-lost:
			stopPeriodic()
			periodic.Wait()
			d.setState(StateDisconnected, nil)
			outage.Failed("lost connection to broker; reconnecting", logKeyBroker, broker, logKeyErr, err)
			if !sleepCtx(ctx, bo.NextBackOff()) {
				return nil
			}
		}
	}
}

// connect makes one connection attempt and subscribes; lost receives the
// reason when that connection later drops.
func (d *Device) connect(ctx context.Context) (mqtt.Client, <-chan error, error) {
	brokerURL, err := d.resolveBroker(ctx)
	if err != nil {
		return nil, nil, err
	}
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(d.clientID).
		SetProtocolVersion(4). // MQTT 3.1.1, what Enapter's broker and gateway speak
		SetCleanSession(true).
		SetAutoReconnect(false). // serve reconnects, with jitter and resubscription
		SetConnectRetry(false).
		SetOrderMatters(true). // onRequest only hands requests to workers, so it never blocks paho
		SetKeepAlive(d.opts.keepAlive).
		SetPingTimeout(d.opts.keepAlive / 2).
		SetConnectTimeout(d.opts.connectTimeout).
		SetWriteTimeout(d.opts.publishTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if d.cfg.Username != "" {
		opts.SetUsername(d.cfg.Username).SetPassword(d.cfg.Password)
	}
	if d.tlsConfig != nil {
		opts.SetTLSConfig(d.tlsConfig)
	}
	client := mqtt.NewClient(opts)
	if err := waitToken(ctx, client.Connect()); err != nil {
		client.Disconnect(0)
		return nil, nil, fmt.Errorf("connect to %s: %w", brokerURL, err)
	}
	// Publish through this client while subscribing, so that a request that
	// arrives before the state says "connected" can still be answered.
	d.connMu.Lock()
	d.client = client
	d.connMu.Unlock()

	subs := map[string]byte{d.requestTopic: 1}
	if d.ucmRequestTopic != "" {
		subs[d.ucmRequestTopic] = 1
	}
	if err := waitToken(ctx, client.SubscribeMultiple(subs, d.onRequest)); err != nil {
		d.connMu.Lock()
		d.client = nil
		d.connMu.Unlock()
		client.Disconnect(0)
		return nil, nil, fmt.Errorf("subscribe to command requests: %w", err)
	}
	return client, lost, nil
}

// resolveBroker returns the broker URL to dial now. A .local host that the
// system resolver does not know is looked up by mDNS on every attempt; the
// TLS configuration keeps the original name, so strict mode still checks it.
func (d *Device) resolveBroker(ctx context.Context) (string, error) {
	host, err := mdns.ResolveHost(ctx, d.cfg.Host, d.opts.mdns)
	if err != nil {
		return "", fmt.Errorf("find broker host: %w", err)
	}
	cfg := *d.cfg
	cfg.Host = host
	return cfg.BrokerURL(), nil
}

func (d *Device) topic(dir mqttapi.Direction, channel string, kind mqttapi.Kind) string {
	return mqttapi.Topic{Direction: dir, HardwareID: d.cfg.HardwareID, ChannelID: channel, Kind: kind}.String()
}

func connectHint(err error) string {
	switch {
	case errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return "the broker refused the credentials: generate a new communication config"
	case errors.Is(err, mdns.ErrNoAnswer):
		return "nothing answered the mDNS query for the broker's .local name: is the gateway on this network segment?"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time: check the host, port and firewall"
	}
	return "check that the broker runs and that mqtt_host/mqtt_port in the communication config reach it"
}

// waitToken waits for a paho token, bounded by ctx.
func waitToken(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startProducers starts the telemetry and properties loops; they stop
// when ctx is cancelled.
func (d *Device) startProducers(ctx context.Context, wg *sync.WaitGroup) {
	if d.opts.propertiesFn != nil {
		d.periodic(ctx, wg, "properties", d.opts.propertiesEvery, func() error { return d.sendProperties(ctx) })
	}
	if fn := d.opts.telemetryFn; fn != nil {
		d.periodic(ctx, wg, "telemetry", d.opts.telemetryEvery, func() error {
			t, readErr := fn(ctx)
			if readErr != nil && len(t.Values) == 0 && !t.Alerts.Known() {
				return &readFailure{fmt.Errorf("read telemetry: %w", readErr)}
			}
			if err := d.SendTelemetry(ctx, t); err != nil {
				return err
			}
			if readErr != nil {
				return &readFailure{fmt.Errorf("read telemetry (sent what could be read): %w", readErr)}
			}
			return nil
		})
	}
}

// sendProperties reads the properties and sends them.
func (d *Device) sendProperties(ctx context.Context) error {
	props, err := d.opts.propertiesFn(ctx)
	if err != nil {
		return &readFailure{fmt.Errorf("read properties: %w", err)}
	}
	return d.SendProperties(ctx, mqttapi.Properties{Values: props})
}

// readFailure is a periodic step that failed reading the hardware (not
// sending): a driver.FailureLogger has logged it already.
type readFailure struct{ err error }

func (e *readFailure) Error() string { return e.err.Error() }
func (e *readFailure) Unwrap() error { return e.err }

// periodic runs step now and then every interval until ctx is done. A
// failing step is logged when it starts failing, in a summary at a steady
// cadence after that (WithLogEvery), and when it recovers: a device whose
// sensor is unplugged should not write a line a second.
func (d *Device) periodic(ctx context.Context, wg *sync.WaitGroup, what string, interval time.Duration, step func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		outage := ratelog.NewOutage(d.log, d.opts.logEvery, nil)
		reads := outage
		if d.opts.driverLogs {
			// the driver tells about its failed reads; a failed send is ours
			reads = ratelog.NewOutage(d.log, d.opts.logEvery, nil).Quiet()
		}
		every(ctx, interval, func() {
			err := step()
			var rf *readFailure
			switch {
			case ctx.Err() != nil:
			case errors.As(err, &rf):
				reads.Failed("periodic "+what+" failed", logKeyErr, err)
			case err != nil:
				outage.Failed("periodic "+what+" failed", logKeyErr, err)
			default:
				outage.Recovered("periodic " + what + " recovered")
				if reads != outage {
					reads.Recovered("periodic " + what + " recovered")
				}
			}
		})
	}()
}

// every calls fn now and then every interval until ctx is done. The
// ticker starts before the first call, so that the readings keep the
// cadence of the start (a slow first read does not shift them all).
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	fn()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
