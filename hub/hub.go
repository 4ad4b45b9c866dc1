// Package hub is the local Enapter-compatible backend: it wires the
// embedded broker (with device authentication and the ACL), ingest into
// the SQLite store, command executions and the HTTP API into one lifecycle,
// Run. Each part lives in its own package below this one; hub only owns
// how they are put together and the data folder they share.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edk-go/edk/hub/api"
	"github.com/edk-go/edk/hub/auth"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/ca"
	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/store"
)

// Default listen addresses; all on loopback, as a laptop hub should be.
const (
	DefaultMQTTAddr  = "127.0.0.1:1883"
	DefaultMQTTSAddr = "127.0.0.1:8883"
	DefaultHTTPAddr  = "127.0.0.1:8080"
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
	HTTPAddr  string
	Token     string
}

// Run starts the hub and serves until ctx is cancelled; then it stops
// taking HTTP requests, closes the broker, writes the last ingest batch
// and closes the store. It returns the first error.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "hub.db"), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	authority, err := ca.Open(filepath.Join(cfg.DataDir, "ca"))
	if err != nil {
		return err
	}
	token, err := loadOrCreateToken(cfg.DataDir)
	if err != nil {
		return err
	}

	var admin func(string, string) bool
	if cfg.AdminUser != "" {
		admin = auth.AdminPassword(cfg.AdminUser, cfg.AdminPassword)
	}
	authHook := auth.New(st, auth.Options{AllowAnonymous: cfg.AllowAnonymous, Admin: admin, Logger: log.With("component", "auth")})

	// The executor publishes through the broker, which needs the ingest
	// hook, which answers the executor: break the loop with a late-bound publisher.
	var publish func(topic string, payload []byte, retain bool, qos byte) error
	executor := exec.New(st, exec.PublisherFunc(func(topic string, payload []byte, retain bool, qos byte) error {
		return publish(topic, payload, retain, qos)
	}), log.With("component", "exec"))
	executor.OnlyPending = cfg.Broker != "" // other hubs on the broker see the same responses
	pipeline, err := ingest.New(ingest.Config{
		Store: st,
		Sink:  executor,
		DeviceForClient: func(cl *mqtt.Client) (string, bool) {
			hw, ok := authHook.HardwareID(cl)
			if !ok {
				return "", false
			}
			return deviceIDForHardware(st, hw)
		},
		Logger: log.With("component", "ingest"),
	})
	if err != nil {
		return err
	}

	ingestCtx, stopIngest := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ingestErr error
	wg.Add(1)
	go func() { defer wg.Done(); ingestErr = pipeline.Run(ingestCtx) }()
	stopPipeline := func() {
		stopIngest()
		wg.Wait()
	}

	var closeBroker func()
	var mqttAddr, mqttsAddr string
	if cfg.Broker != "" {
		ext, err := connectExternal(ctx, cfg.Broker, cfg.BrokerUsername, cfg.BrokerPassword, pipeline, log.With("component", "external-broker"))
		if err != nil {
			stopPipeline()
			return err
		}
		publish, closeBroker, mqttAddr = ext.Publish, ext.Close, ext.addr
	} else {
		bcfg := broker.Config{Addr: cfg.MQTTAddr, Logger: log.With("component", "broker"), Hooks: []mqtt.Hook{authHook, pipeline.Hook()}}
		if cfg.MQTTSAddr != "-" {
			host, _, _ := net.SplitHostPort(cfg.MQTTSAddr)
			tlsCfg, err := authority.ServerTLSConfig([]string{host})
			if err != nil {
				stopPipeline()
				return err
			}
			bcfg.TLSAddr, bcfg.TLSConfig = cfg.MQTTSAddr, tlsCfg
		}
		b, err := broker.Start(ctx, bcfg)
		if err != nil {
			stopPipeline()
			return err
		}
		publish, closeBroker, mqttAddr, mqttsAddr = b.Publish, func() { _ = b.Close() }, b.Addr(), b.TLSAddr()
	}
	if cfg.Retention > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prune(ingestCtx, st, cfg.Retention, cfg.RetentionInterval, log.With("component", "retention"))
		}()
	}
	stop := func() {
		closeBroker() // first, so that the last disconnects are ingested
		stopPipeline()
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		stop()
		return fmt.Errorf("listen for HTTP on %s: %w (choose another with --http-addr)", cfg.HTTPAddr, err)
	}
	info := Info{DataDir: cfg.DataDir, MQTTAddr: mqttAddr, MQTTSAddr: mqttsAddr, HTTPAddr: ln.Addr().String(), Token: token}
	handler := api.New(api.Config{
		Token:    token,
		Store:    st,
		Executor: executor,
		Provisioner: &Provisioner{Store: st, CA: authority, MQTTAddr: info.MQTTAddr, MQTTSAddr: info.MQTTSAddr,
			External: cfg.Broker != "", DeviceUsername: cfg.DeviceUsername, DevicePassword: cfg.DevicePassword},
		Streams: streams{pipeline},
		// Ingest caches devices; it checks telemetry against a new manifest at once.
		ManifestAssigned: func(d store.Device) { pipeline.Forget(d.HardwareID) },
		Logger:           log.With("component", "api"),
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: execute_command waits up to api.MaxCommandTimeout
		// and the WebSocket streams stay open; both end with r.Context().
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("hub running", "mqtt", info.MQTTAddr, "mqtts", info.MQTTSAddr, "http", info.HTTPAddr, "data", info.DataDir)
	if cfg.Ready != nil {
		cfg.Ready(info)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serve HTTP: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && runErr == nil && !errors.Is(err, context.DeadlineExceeded) {
		runErr = fmt.Errorf("stop HTTP: %w", err)
	}
	stop()
	if runErr == nil && ingestErr != nil {
		runErr = ingestErr
	}
	return runErr
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
	return c
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
