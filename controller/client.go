package controller

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edk-go/edk/mqttapi"
)

// Defaults used by Dial for zero Config fields.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultClientIDPrefix = "edk-controller-"
)

const (
	// maxReconnectInterval caps paho's reconnect backoff: a person waits on
	// this client, so it retries more often than paho's 10 minutes.
	maxReconnectInterval = 30 * time.Second
	// disconnectQuiesce is how long Close lets paho finish in-flight work, in ms.
	disconnectQuiesce = 250
	// requestQoS is the QoS of command requests: the broker acknowledges them.
	requestQoS = 1
	// subscribeQoS is the QoS of every subscription. 0 loses nothing that 1
	// would keep: the session is clean, so the broker drops undelivered
	// messages on a disconnect either way, and TCP already retransmits within
	// a connection. It also avoids a mochi-mqtt (v2.7.9) quirk: mochi keeps
	// its QoS 1 deliveries to a client and that client's SUBSCRIBE and
	// UNSUBSCRIBE packets in one packet-id map, and answers a SUBSCRIBE whose
	// id collides with a delivery in flight with 0x91 (identifier in use).
	subscribeQoS = 0
)

// Log keys.
const (
	logKeyBroker = "broker"
	logKeyFilter = "filter"
	logKeyTopic  = "topic"
	logKeyID     = "request_id"
	logKeyError  = "err"
)

// ErrClosed is returned by Execute and Watch once the Client is closed.
var ErrClosed = errors.New("controller closed")

// Config configures a Client. Only BrokerURL is required.
type Config struct {
	// BrokerURL is the broker to connect to: "tcp://127.0.0.1:1883",
	// "ssl://host:8883" (also tls://, mqtts://, ws://, wss://). Required.
	BrokerURL string
	// Username and Password authenticate with the broker; both may be empty.
	// The password never appears in logs or errors.
	Username string
	Password string
	// TLSConfig is used for ssl://, tls://, mqtts:// and wss:// brokers; nil
	// means Go's defaults (system roots, host name checked).
	TLSConfig *tls.Config
	// ClientID is the MQTT client id; empty means DefaultClientIDPrefix
	// followed by random hex, so that two controllers never collide.
	ClientID string
	// ConnectTimeout bounds each connection attempt; zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger receives connection events and ignored messages; nil means silent.
	Logger *slog.Logger

	// testHookConnected, when set, is called after each connection and
	// reconnection, once the subscriptions are made again.
	testHookConnected func()
}

// Client is a controller connected to one broker. Its methods are safe for
// concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	mqtt   mqtt.Client
	closed chan struct{} // closed by Close
	once   sync.Once
	wg     sync.WaitGroup // goroutines waiting on subscribe tokens
	conns  atomic.Int64   // connections made, counted by onConnect

	// subMu orders SUBSCRIBE and UNSUBSCRIBE packets with the changes to
	// subs they make; it is taken before mu, never while holding it.
	subMu sync.Mutex
	// unsubs are the UNSUBSCRIBEs sent and not yet acknowledged (under
	// subMu): Close waits for them, or the broker writes the UNSUBACK to a
	// closed connection and logs it (every edk watch stopped with Ctrl-C
	// left a WARN in the hub's log).
	unsubs []mqtt.Token

	mu       sync.Mutex
	isClosed bool
	pending  map[string]*pending      // by request id
	subs     map[string]*subscription // by topic filter
	watchers map[*watcher]struct{}

	// testHookWatching, when set, is called by Watch once its subscriptions
	// are acknowledged by the broker.
	testHookWatching func()
}

// subscription is one topic filter held by the broker for this client. It is
// shared by every user of the filter and counted.
type subscription struct {
	refs      int  // running Watch calls that hold it
	permanent bool // held for good (command responses)
	ready     chan struct{}
	err       error // set before ready is closed
}

func (cfg *Config) fill() error {
	if cfg.BrokerURL == "" {
		return errors.New("controller: broker URL is empty: give one like tcp://127.0.0.1:1883 or ssl://host:8883")
	}
	u, err := url.Parse(cfg.BrokerURL)
	if err != nil {
		return fmt.Errorf("controller: broker URL is not a URL: give one like tcp://127.0.0.1:1883 or ssl://host:8883")
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps":
		if u.Hostname() == "" || u.Port() == "" {
			return fmt.Errorf("controller: broker URL %s: want host and port, like tcp://127.0.0.1:1883", u.Redacted())
		}
	case "ws", "wss":
		if u.Host == "" {
			return fmt.Errorf("controller: broker URL %s has no host", u.Redacted())
		}
	default:
		return fmt.Errorf("controller: broker URL %s: scheme %q is not supported: use tcp://, ssl://, ws:// or wss://", u.Redacted(), u.Scheme)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientIDPrefix + randomHex(6)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Dial connects to the broker and returns a Client, or an error that says
// which broker could not be reached and what to check. The connection attempt
// is bounded by ctx and by cfg.ConnectTimeout. Once connected, the Client
// reconnects by itself until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		closed:   make(chan struct{}),
		pending:  make(map[string]*pending),
		subs:     make(map[string]*subscription),
		watchers: make(map[*watcher]struct{}),
	}
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.BrokerURL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(false). // the first attempt's error goes to the caller
		SetMaxReconnectInterval(maxReconnectInterval).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetOrderMatters(true). // messages reach onMessage one at a time, in order
		SetDefaultPublishHandler(c.onMessage).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.log.Warn("controller: connection to broker lost, reconnecting", logKeyBroker, redactURL(cfg.BrokerURL), logKeyError, err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			c.log.Info("controller: reconnecting to broker", logKeyBroker, redactURL(cfg.BrokerURL))
		})
	if cfg.TLSConfig != nil {
		opts.SetTLSConfig(cfg.TLSConfig)
	}
	c.mqtt = mqtt.NewClient(opts)

	tok := c.mqtt.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.mqtt.Disconnect(0)
		return nil, fmt.Errorf("controller: connect to broker %s: %w", redactURL(cfg.BrokerURL), ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, connectError(cfg.BrokerURL, err)
	}
	c.log.Debug("controller: connected", logKeyBroker, redactURL(cfg.BrokerURL))
	return c, nil
}

func connectError(brokerURL string, err error) error {
	var hint string
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		hint = "check the username and password (or client certificate)"
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &verifyErr):
		hint = "check the CA certificate and TLS settings"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		hint = "the broker rejected the client id; choose another"
	default:
		hint = "check that the broker is running and reachable at that address, and that the scheme (tcp:// or ssl://) matches its listener"
	}
	return fmt.Errorf("controller: connect to broker %s: %w; %s", redactURL(brokerURL), err, hint)
}

// Close disconnects from the broker. Executions still waiting return
// ErrClosed, and so do running Watch calls. Close may be called more than once.
func (c *Client) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.isClosed = true
		close(c.closed)
		c.mu.Unlock()
		c.subMu.Lock()
		unsubs := c.unsubs
		c.unsubs = nil
		c.subMu.Unlock()
		deadline := time.Now().Add(disconnectQuiesce * time.Millisecond)
		for _, t := range unsubs {
			t.WaitTimeout(max(0, time.Until(deadline)))
		}
		c.mqtt.Disconnect(disconnectQuiesce)
		c.wg.Wait()
		c.log.Debug("controller: closed", logKeyBroker, redactURL(c.cfg.BrokerURL))
	})
}

// onConnect makes every live subscription again after a reconnect: the
// session is clean, so the broker forgot them. paho calls it on a goroutine
// of its own after each connection.
func (c *Client) onConnect(client mqtt.Client) {
	if c.conns.Add(1) == 1 {
		// The first connection: whatever is subscribed was subscribed on it.
		if c.cfg.testHookConnected != nil {
			c.cfg.testHookConnected()
		}
		return
	}
	c.subMu.Lock()
	c.mu.Lock()
	filters := make(map[string]byte, len(c.subs))
	for f := range c.subs {
		filters[f] = subscribeQoS
	}
	c.mu.Unlock()
	var tok mqtt.Token
	if len(filters) > 0 {
		tok = client.SubscribeMultiple(filters, nil)
	}
	c.subMu.Unlock()
	if tok != nil {
		c.log.Info("controller: reconnected, subscribing again", logKeyBroker, redactURL(c.cfg.BrokerURL))
		select {
		case <-tok.Done():
			if err := subscribeError(tok); err != nil {
				c.log.Error("controller: subscribe again after reconnect", logKeyError, err)
			}
		case <-c.closed:
			return
		}
	}
	if c.cfg.testHookConnected != nil {
		c.cfg.testHookConnected()
	}
}

// subscribe holds filter for the caller: the first caller subscribes, later
// ones share the subscription and wait, bounded by ctx, for the broker's
// acknowledgement. A permanent hold is never released; any other must be
// released with unsubscribe.
func (c *Client) subscribe(ctx context.Context, filter string, permanent bool) (*subscription, error) {
	c.subMu.Lock()
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		c.subMu.Unlock()
		return nil, ErrClosed
	}
	s := c.subs[filter]
	first := s == nil
	if first {
		s = &subscription{ready: make(chan struct{})}
		c.subs[filter] = s
		c.wg.Add(1)
	}
	if permanent {
		s.permanent = true
	} else {
		s.refs++
	}
	c.mu.Unlock()
	if first {
		// paho may block in Subscribe (it hands the packet to its writer),
		// so not under c.mu, which onMessage needs.
		tok := c.mqtt.Subscribe(filter, subscribeQoS, nil)
		go c.awaitSubscription(filter, s, tok)
	}
	c.subMu.Unlock()

	select {
	case <-s.ready:
		if s.err != nil {
			return nil, s.err // a failed subscription is already forgotten
		}
		return s, nil
	case <-ctx.Done():
		if !permanent {
			c.unsubscribe(filter, s)
		}
		return nil, ctx.Err()
	case <-c.closed:
		return nil, ErrClosed
	}
}

// awaitSubscription records the outcome of a SUBSCRIBE for everyone waiting on
// s. A failed subscription is forgotten, so that the next caller tries again.
func (c *Client) awaitSubscription(filter string, s *subscription, tok mqtt.Token) {
	defer c.wg.Done()
	var err error
	select {
	case <-tok.Done():
		err = subscribeError(tok)
	case <-c.closed:
		err = ErrClosed
	}
	if err != nil {
		// No package prefix: Execute and Watch wrap this with theirs.
		err = fmt.Errorf("subscribe to %s: %w", filter, err)
		if !errors.Is(err, ErrClosed) {
			c.log.Warn("controller: subscribe failed", logKeyFilter, filter, logKeyError, err)
		}
		c.mu.Lock()
		if c.subs[filter] == s {
			delete(c.subs, filter)
		}
		c.mu.Unlock()
	}
	s.err = err
	close(s.ready)
}

func subscribeError(tok mqtt.Token) error {
	if err := tok.Error(); err != nil {
		if errors.Is(err, mqtt.ErrNotConnected) {
			return fmt.Errorf("%w: the client reconnects by itself; try again", err)
		}
		return err
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code >= 0x80 { // 0x80: failure
				return fmt.Errorf("broker refused the subscription to %s (SUBACK code %#x): check that the user may read it", f, code)
			}
		}
	}
	return nil
}

// unsubscribe releases one hold on s taken by subscribe; the last release of
// a non-permanent subscription unsubscribes from the broker.
func (c *Client) unsubscribe(filter string, s *subscription) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.mu.Lock()
	if c.subs[filter] != s {
		c.mu.Unlock()
		return // failed and forgotten meanwhile
	}
	s.refs--
	if s.refs > 0 || s.permanent {
		c.mu.Unlock()
		return
	}
	delete(c.subs, filter)
	closed := c.isClosed
	c.mu.Unlock()
	if !closed {
		// Fire and forget: subMu makes a later SUBSCRIBE to the same filter
		// follow this UNSUBSCRIBE on the connection, so the broker ends up
		// subscribed.
		c.unsubs = slices.DeleteFunc(c.unsubs, func(t mqtt.Token) bool {
			select {
			case <-t.Done():
				return true
			default:
				return false
			}
		})
		c.unsubs = append(c.unsubs, c.mqtt.Unsubscribe(filter))
	}
}

// onMessage receives every message for every subscription, one at a time in
// arrival order (paho's router goroutine). It must not block.
func (c *Client) onMessage(_ mqtt.Client, m mqtt.Message) {
	now := time.Now()
	topic, topicErr := mqttapi.ParseTopic(m.Topic())
	payload := m.Payload()

	if topicErr == nil && topic.Direction == mqttapi.FromDevice && topic.Kind == mqttapi.KindCommandResponses {
		c.onResponse(topic, payload)
	}

	c.mu.Lock()
	var to []*watcher
	for w := range c.watchers {
		if w.matches(m.Topic()) {
			to = append(to, w)
		}
	}
	c.mu.Unlock()
	if len(to) == 0 {
		return
	}
	e := decodeEvent(now, topic, topicErr, payload)
	for _, w := range to {
		w.push(e) // harmless if w ended meanwhile: nobody reads its queue
	}
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// randomHex returns n random bytes from crypto/rand as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return hex.EncodeToString(b)
}
