// Package broker owns the embedded MQTT broker (mochi-mqtt v2) that edk demo, the
// hub and tests run: its listeners and, through Config.Hooks, the auth/ACL and
// observer hooks that the hub adds on top.
package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

const (
	// DefaultAddr is the plain MQTT listen address: loopback only, so that a
	// developer's broker is not reachable from the network by accident.
	DefaultAddr = "127.0.0.1:1883"
	// DefaultTLSAddr is the MQTTS listen address used when Config.TLSConfig is set
	// and Config.TLSAddr is empty.
	DefaultTLSAddr = "127.0.0.1:8883"
	// DefaultMaxPacketSize bounds one MQTT packet. A client that sends a larger one
	// is disconnected; the broker carries on.
	DefaultMaxPacketSize = 1 << 20

	// sessionExpiry bounds how long the broker keeps the session of a
	// disconnected clean_session=false client; mochi's default is forever,
	// which lets abandoned sessions pile up in memory in a long-running hub.
	sessionExpiry = 24 * time.Hour
)

// Config configures Start. The zero value is a plain listener on DefaultAddr
// that lets every client in.
type Config struct {
	// Addr is the TCP listen address, host:port. Empty means DefaultAddr;
	// port 0 picks a free port (see Broker.Addr).
	Addr string
	// TLSAddr is the MQTTS listen address. Used only when TLSConfig is set;
	// empty means DefaultTLSAddr.
	TLSAddr string
	// TLSConfig enables the MQTTS listener. Set ClientAuth and ClientCAs in it
	// to require client certificates.
	TLSConfig *tls.Config
	// MaxPacketSize is the largest MQTT packet accepted, in bytes. Zero means
	// DefaultMaxPacketSize.
	MaxPacketSize uint32
	// ConnectTimeout is how long a new connection may take for its TLS
	// handshake and CONNECT packet before it is closed, so that
	// connections that never speak do not pile up. Zero means
	// DefaultConnectTimeout; negative means no deadline.
	ConnectTimeout time.Duration
	// MaxConnections bounds the open connections of all listeners, those
	// still before CONNECT included; a connection over it is closed at
	// once. Zero means DefaultMaxConnections, or the open-file limit less
	// 512 when that is lower; negative means no cap.
	MaxConnections int
	// MaxConnectionsPerAddr bounds the open connections from one source
	// address (IPv4 address or IPv6 /64). Zero means
	// DefaultMaxConnectionsPerAddr; negative means no cap.
	MaxConnectionsPerAddr int
	// Logger receives the broker's own lines and mochi's warnings and errors
	// (mochi's chattier levels are dropped). Nil discards everything.
	Logger *slog.Logger
	// Hooks are added to mochi in order, e.g. the hub's per-device auth/ACL and
	// ingest observer. When none of them provides OnConnectAuthenticate or
	// OnACLCheck, every client may connect and use every topic.
	// A hook that provides only one of the two leaves the other denying all,
	// which is mochi's fail-closed behaviour.
	Hooks []mqtt.Hook
}

// Broker is a running embedded broker. Its methods are safe for concurrent use.
type Broker struct {
	srv     *mqtt.Server
	gate    *gate
	addr    string
	tlsAddr string
	log     *slog.Logger

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Start opens the listeners and starts the broker. It returns once the
// listeners accept connections; a bind failure is a *ListenError (see
// ErrAddrInUse). ctx bounds only the start-up, as with net.ListenConfig.Listen;
// the broker runs until Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()

	// We open the sockets ourselves and hand them to mochi through
	// connListener: a bind error becomes a ListenError with a hint, and Close
	// can cut and wait for every connection, which mochi's listeners don't.
	ln, err := listen(ctx, cfg.Addr)
	if err != nil {
		return nil, err
	}
	g := newGate(cfg.MaxConnections, cfg.MaxConnectionsPerAddr, cfg.Logger)
	lns := []*connListener{newConnListener("tcp", ln, g, cfg.ConnectTimeout, cfg.Logger)}
	b := &Broker{addr: ln.Addr().String(), log: cfg.Logger, gate: g}
	if cfg.TLSConfig != nil {
		tln, err := listen(ctx, cfg.TLSAddr)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		b.tlsAddr = tln.Addr().String()
		lns = append(lns, newConnListener("tls", tls.NewListener(tln, cfg.TLSConfig), g, cfg.ConnectTimeout, cfg.Logger))
	}

	b.srv = mqtt.New(&mqtt.Options{
		Capabilities: capabilities(cfg.MaxPacketSize),
		Logger:       slog.New(minLevel(cfg.Logger.Handler(), slog.LevelWarn)),
		InlineClient: true, // Publish goes through mochi's inline client
	})
	if err := b.setup(cfg.Hooks, lns); err != nil {
		for _, l := range lns {
			_ = l.ln.Close()
		}
		return nil, err
	}
	if b.tlsAddr == "" {
		b.log.Info("mqtt broker listening", "addr", b.addr)
	} else {
		b.log.Info("mqtt broker listening", "addr", b.addr, "tls_addr", b.tlsAddr)
	}
	return b, nil
}

func (b *Broker) setup(hooks []mqtt.Hook, lns []*connListener) error {
	allow := needsAllowAll(hooks)
	for _, h := range hooks {
		if err := b.srv.AddHook(h, nil); err != nil {
			return fmt.Errorf("add hook %s: %w", h.ID(), err)
		}
	}
	if allow != nil {
		if err := b.srv.AddHook(allow, nil); err != nil {
			return fmt.Errorf("add hook %s: %w", allow.ID(), err)
		}
	}
	for _, l := range lns {
		if err := b.srv.AddListener(l); err != nil {
			return fmt.Errorf("add listener %s: %w", l.ID(), err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	return nil
}

// needsAllowAll returns the hook that lets everyone in when no configured hook
// decides on authentication or ACL; without any, mochi refuses every client.
func needsAllowAll(hooks []mqtt.Hook) mqtt.Hook {
	for _, h := range hooks {
		if h.Provides(mqtt.OnConnectAuthenticate) || h.Provides(mqtt.OnACLCheck) {
			return nil
		}
	}
	return new(allowAll)
}

// maxPendingWrites bounds the messages queued for one client that it has
// not been sent yet; past it mochi drops them (and counts them). mochi's
// default, 8192, is a channel allocated per connection at 8 bytes a slot:
// 64 KiB of every device's connection, 640 MiB of a hub with 10 000 devices
// (BENCHMARKS.md, "Hub: a fleet of devices"), for a queue that holds a
// device's command requests, a handful at a time. 1024 still lets a
// subscriber that watches every device (edk watch) fall a second behind a
// busy hub before it loses messages.
const maxPendingWrites = 1024

func capabilities(maxPacket uint32) *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumPacketSize = maxPacket
	c.MaximumClientWritesPending = maxPendingWrites
	c.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)
	return c
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.TLSAddr == "" {
		c.TLSAddr = DefaultTLSAddr
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
		if fds := fdLimit(); fds > 0 && fds-fdReserve < c.MaxConnections {
			c.MaxConnections = max(fds-fdReserve, 16)
		}
	}
	if c.MaxConnectionsPerAddr == 0 {
		c.MaxConnectionsPerAddr = DefaultMaxConnectionsPerAddr
	}
	return c
}

// Addr returns the plain MQTT listener's address, host:port, with the port
// that was picked when Config.Addr asked for port 0.
func (b *Broker) Addr() string { return b.addr }

// Stats returns the connection counters of all listeners.
func (b *Broker) Stats() Stats { return b.gate.stats() }

// TLSAddr returns the MQTTS listener's address, or "" when TLS is off.
func (b *Broker) TLSAddr() string { return b.tlsAddr }

// Publish sends a message to the broker's subscribers as if a client had
// published it, bypassing ACL checks. It returns ErrClosed after Close.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Close disconnects every client, closes the listeners and waits for the
// goroutines that served them. It is idempotent; after it returns the
// addresses may be bound again by a new Start.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.closeErr = b.srv.Close()
		b.log.Info("mqtt broker stopped", "addr", b.addr)
	})
	return b.closeErr
}
