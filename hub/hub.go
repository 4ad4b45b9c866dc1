// Package hub is the local Enapter-compatible backend: it wires the
// embedded broker (with device authentication, the ACL and per-device
// limits), ingest into the SQLite store, command executions, the HTTP API
// (plain or HTTPS) and, optionally, Prometheus metrics into one lifecycle,
// Run. Each part lives in its own package below this one; hub only owns
// how they are put together and the data folder they share.
package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/ca"
	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/limits"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/metricsrv"
)

// Default listen addresses; all on loopback, as a laptop hub should be.
const (
	DefaultMQTTAddr  = "127.0.0.1:1883"
	DefaultMQTTSAddr = "127.0.0.1:8883"
	DefaultHTTPAddr  = "127.0.0.1:8080"
)

// Default per-device limits of the embedded broker (Config.MaxPayload,
// RateLimit, RateBurst). Generous for a device that sends telemetry every
// second; meant to stop a runaway loop, not to shape normal traffic.
const (
	DefaultMaxPayload = limits.DefaultMaxPayload // bytes
	DefaultRateLimit  = limits.DefaultRate       // messages per second per connection
	DefaultRateBurst  = limits.DefaultBurst      // messages
)

// maxPacketSize is the MQTT protocol's largest packet (the remaining-length
// field's limit); packetOverhead covers the topic and headers around a
// payload of MaxPayload bytes.
const (
	maxPacketSize  = 268435455
	packetOverhead = 64 << 10
)

// Config configures Run. Zero values take the defaults above.
type Config struct {
	DataDir   string // database, CA and API token; DefaultDataDir() when empty
	MQTTAddr  string
	MQTTSAddr string // "-" disables the MQTTS listener
	HTTPAddr  string
	// Broker, when set (mqtt://host:port), makes the hub use that broker
	// instead of running its own: device messages come through shared
	// subscriptions (group ShareGroup), so several hubs on one broker split
	// the ingest. The broker authenticates devices; configs carry
	// DeviceUsername/DevicePassword. MQTTSAddr, AllowAnonymous and the
	// admin user do not apply.
	Broker                         string
	BrokerUsername, BrokerPassword string
	DeviceUsername, DevicePassword string
	// AllowAnonymous lets MQTT clients in without credentials, with access
	// to every topic. Off by default: devices use the credentials that
	// generate_config issues.
	AllowAnonymous bool
	// AdminUser and AdminPassword, when set, let an MQTT client (edk watch,
	// edk exec, a script) use every topic.
	AdminUser, AdminPassword string
	// MaxPayload is the largest payload, in bytes, that a device may
	// publish to the embedded broker; a larger message is acknowledged and
	// dropped, and the connection stays up. Zero means DefaultMaxPayload;
	// negative means no limit below the broker's own packet limit (1 MiB,
	// above which mochi disconnects the client).
	MaxPayload int
	// RateLimit is how many messages per second, on average, one device
	// connection may publish to the embedded broker, with bursts of up to
	// RateBurst; a faster device is slowed down (its messages wait for
	// their turn), and only a message that would wait over a second is
	// acknowledged and dropped. Zero
	// means DefaultRateLimit; negative means no limit. RateBurst zero or
	// negative means DefaultRateBurst. Neither limit applies to admin or
	// anonymous clients, to the hub's own publishes, or with Broker.
	RateLimit float64
	RateBurst int
	// MQTTConnectTimeout, MQTTMaxConnections and MQTTMaxConnectionsPerAddr
	// are the embedded broker's connection limits (broker.Config's
	// ConnectTimeout, MaxConnections, MaxConnectionsPerAddr): zero takes
	// the broker's defaults, negative turns the limit off.
	MQTTConnectTimeout        time.Duration
	MQTTMaxConnections        int
	MQTTMaxConnectionsPerAddr int
	// HTTPTLS serves the HTTP API (and its WebSockets) over HTTPS with a
	// certificate that the hub's CA issues at start for the listen host,
	// localhost and the loopback addresses; clients trust the CA's
	// certificate (Info.HTTPCAFile).
	HTTPTLS bool
	// HTTPCertFile and HTTPKeyFile, both set, serve HTTPS with this PEM
	// certificate (chain) and key instead of one of the hub's CA; they
	// imply HTTPTLS.
	HTTPCertFile, HTTPKeyFile string
	// MetricsAddr, when set (host:port), serves Prometheus metrics at
	// http://MetricsAddr/metrics (docs/hub.md, "Monitoring").
	MetricsAddr string
	// Profiles also serves Go's runtime profiles at
	// http://MetricsAddr/debug/pprof/ (needs MetricsAddr).
	Profiles bool
	// Retention is how long raw telemetry and logs are kept (latest
	// values, properties and executions stay). Default DefaultRetention;
	// negative keeps everything.
	Retention time.Duration
	// RetentionInterval is how often old data is deleted. Default
	// DefaultRetentionInterval.
	RetentionInterval time.Duration
	Logger            *slog.Logger
	// Ready, when set, is called once everything listens.
	Ready func(Info)
}

// Info says where a running hub listens.
type Info struct {
	DataDir   string
	MQTTAddr  string
	MQTTSAddr string // "" when disabled
	HTTPAddr  string // host:port
	// HTTPURL is the API's base URL: https://HTTPAddr with HTTPS, else
	// http://HTTPAddr.
	HTTPURL string
	// HTTPCAFile is the CA certificate (PEM) that HTTPS clients should
	// trust, when the hub's CA issued the HTTPS certificate; "" otherwise.
	HTTPCAFile  string
	MetricsAddr string // host:port of /metrics; "" when off
	Token       string
}

// Run starts the hub and serves until ctx is cancelled; then it stops
// taking HTTP requests, closes the broker, writes the last ingest batch
// and closes the store. It returns the first error.
//
// Run is a list of start steps (run.go). Each part a step starts
// registers how to stop it; the stops run in reverse order when a later
// step fails and when Run returns.
func Run(ctx context.Context, cfg Config) (err error) {
	r := &runner{cfg: cfg.withDefaults()}
	r.log = r.cfg.Logger
	defer func() {
		if serr := r.stops.Stop(); err == nil {
			err = serr
		}
	}()
	for _, step := range []func(context.Context) error{
		r.openData,
		r.newParts,
		r.startIngest,
		r.startBroker,
		r.startExecutor,
		r.startMetrics,
		r.startHTTP,
	} {
		if err := step(ctx); err != nil {
			if errors.Is(err, errStoppedEarly) {
				return nil // stopped before it started serving: still a clean stop
			}
			return err
		}
	}
	return r.serve(ctx)
}

func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.MQTTAddr == "" {
		c.MQTTAddr = DefaultMQTTAddr
	}
	if c.MQTTSAddr == "" {
		c.MQTTSAddr = DefaultMQTTSAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// The same rule and default as hub/limits (zero: the default,
	// negative: no limit), resolved here because auth's will limit and the
	// broker's packet size need the value too. RateLimit and RateBurst go
	// to limits as they are, which applies the same rule.
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	return c
}

// caDir is where the hub's CA lives in the data folder.
func (c Config) caDir() string { return filepath.Join(c.DataDir, "ca") }

// httpTLS returns the HTTPS settings of the API, or nil for plain HTTP, and
// the CA file clients should trust when the hub's CA issued the certificate.
func (c Config) httpTLS(authority *ca.CA) (*tls.Config, string, error) {
	var cert tls.Certificate
	caFile := ""
	switch {
	case c.HTTPCertFile != "" || c.HTTPKeyFile != "":
		if c.HTTPCertFile == "" || c.HTTPKeyFile == "" {
			return nil, "", errors.New("HTTPS: a certificate file needs its key file and the other way round (--http-cert and --http-key)")
		}
		var err error
		cert, err = tls.LoadX509KeyPair(c.HTTPCertFile, c.HTTPKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("HTTPS: load certificate %s and key %s: %w", c.HTTPCertFile, c.HTTPKeyFile, err)
		}
	case c.HTTPTLS:
		var err error
		cert, err = authority.ServerCertificate(serverHosts(c.HTTPAddr))
		if err != nil {
			return nil, "", fmt.Errorf("HTTPS: %w", err)
		}
		caFile = filepath.Join(c.caDir(), ca.CertFile)
	default:
		return nil, "", nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, caFile, nil
}

// serverHosts lists the names that the certificate of a listener on addr
// carries besides the loopback ones ca.ServerCertificate always adds: the
// listen host, or, for a listener on every interface, the machine's name
// (also as name.local, for mDNS) and each interface address.
func serverHosts(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return []string{host}
	}
	var hosts []string
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
		if !strings.Contains(name, ".") {
			hosts = append(hosts, name+".local")
		}
	}
	addrs, _ := net.InterfaceAddrs() // best effort: loopback is always named
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
			hosts = append(hosts, n.IP.String())
		}
	}
	return hosts
}

// startMetrics serves the hub's metrics when cfg.MetricsAddr is set and
// returns once it listens, with the function that stops it and the address.
func startMetrics(cfg Config, st *store.Store, p *ingest.Pipeline, l *limits.Hook, x *exec.Executor,
	a *auth.Hook, brokerStats func() broker.Stats) (stop func(), addr string, err error) {
	if cfg.MetricsAddr == "" {
		return func() {}, "", nil
	}
	reg := metricsrv.NewRegistry()
	c := newCollector(p, l, x, st.InboxLength)
	if brokerStats != nil {
		c.auth, c.brokerStats = a, brokerStats
	}
	if err := reg.Register(c); err != nil {
		return nil, "", fmt.Errorf("register hub metrics: %w", err)
	}
	var opts []metricsrv.Option
	if cfg.Profiles {
		opts = append(opts, metricsrv.WithProfiles())
	}
	addr, stop, err = metricsrv.Start(cfg.MetricsAddr, reg, cfg.Logger.With("component", "metrics"), opts...)
	return stop, addr, err
}

// deviceIDForHardware maps a connected device's hardware id to its id. It
// runs on mochi's goroutine, so it is bounded.
func deviceIDForHardware(st *store.Store, hw string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d, err := st.GetDeviceByHardwareID(ctx, hw)
	if err != nil {
		return "", false
	}
	return d.ID, true
}
