package hub

import (
	"context"
	"crypto/tls"
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
	"github.com/edk-go/edk/hub/console"
	"github.com/edk-go/edk/hub/exec"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/limits"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/lifo"
)

// errStoppedEarly is returned by a start step when ctx ended before the
// hub served: Run then returns nil.
var errStoppedEarly = errors.New("hub: stopped before it started")

// runner holds what Run's steps start, in the order they start it.
type runner struct {
	cfg   Config
	log   *slog.Logger
	stops lifo.Stack

	st          *store.Store
	authority   *ca.CA
	token       string
	httpTLS     *tls.Config
	httpCAFile  string
	authHook    *auth.Hook
	executor    *exec.Executor
	pipeline    *ingest.Pipeline
	limitsHook  *limits.Hook // nil with an external broker
	publish     func(topic string, payload []byte, retain bool, qos byte) error
	background  context.Context // ingest, executions and retention run until it ends
	wg          sync.WaitGroup
	brokerStats func() broker.Stats // nil with an external broker
	mqttAddr    string
	mqttsAddr   string
	metricsAddr string
	serveErr    chan error
}

// openData opens the data folder: the store, the CA, the API token and the
// HTTPS settings.
func (r *runner) openData(ctx context.Context) error {
	cfg := r.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "hub.db"), store.Options{})
	if err != nil {
		return err
	}
	r.st = st
	r.stops.Push(func() error { _ = st.Close(); return nil })
	if r.authority, err = ca.Open(cfg.caDir()); err != nil {
		return err
	}
	if r.token, err = loadOrCreateToken(cfg.DataDir); err != nil {
		return err
	}
	r.httpTLS, r.httpCAFile, err = cfg.httpTLS(r.authority)
	return err
}

// newParts creates the broker hooks, the executor and the ingest pipeline;
// nothing runs yet.
func (r *runner) newParts(context.Context) error {
	cfg, log, st := r.cfg, r.log, r.st
	var admin func(string, string) bool
	if cfg.AdminUser != "" {
		admin = auth.AdminPassword(cfg.AdminUser, cfg.AdminPassword)
	}
	r.authHook = auth.New(st, auth.Options{AllowAnonymous: cfg.AllowAnonymous, Admin: admin, MaxWillPayload: cfg.MaxPayload,
		Logger: log.With("component", "auth")})

	// The executor publishes through the broker, which needs the ingest
	// hook, which answers the executor: break the loop with a late-bound publisher.
	r.executor = exec.New(st, exec.PublisherFunc(func(topic string, payload []byte, retain bool, qos byte) error {
		return r.publish(topic, payload, retain, qos)
	}), log.With("component", "exec"))
	r.executor.OnlyPending = cfg.Broker != "" // other hubs on the broker see the same responses
	authHook := r.authHook
	pipeline, err := ingest.New(ingest.Config{
		Store: st,
		Sink:  r.executor,
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
	r.pipeline = pipeline
	if cfg.Broker == "" {
		r.limitsHook = limits.New(limits.Options{
			MaxPayload: cfg.MaxPayload,
			Rate:       cfg.RateLimit,
			Burst:      cfg.RateBurst,
			Device:     authHook.HardwareID,
			Logger:     log.With("component", "limits"),
		})
	}
	return nil
}

// startIngest runs the pipeline and waits until it has written what the
// last run acknowledged and did not write, so that this goes in before
// devices connect. Its stop also ends the executor's and retention's
// goroutines, which share its context.
func (r *runner) startIngest(ctx context.Context) error {
	background, stopBackground := context.WithCancel(context.Background())
	r.background = background
	var ingestErr error
	r.wg.Add(1)
	go func() { defer r.wg.Done(); ingestErr = r.pipeline.Run(background) }()
	r.stops.Push(func() error {
		stopBackground()
		r.wg.Wait()
		return ingestErr
	})
	select {
	case <-r.pipeline.Ready():
		return nil
	case <-ctx.Done():
		return errStoppedEarly
	}
}

// startBroker starts the embedded broker, or connects to the external one.
// Its stop comes before ingest's, so that the last disconnects are
// ingested.
func (r *runner) startBroker(ctx context.Context) error {
	cfg, log := r.cfg, r.log
	if cfg.Broker != "" {
		ext, err := connectExternal(ctx, cfg.Broker, cfg.BrokerUsername, cfg.BrokerPassword, r.pipeline, log.With("component", "external-broker"))
		if err != nil {
			return err
		}
		r.publish, r.mqttAddr = ext.Publish, ext.addr
		r.stops.Push(func() error { ext.Close(); return nil })
		return nil
	}
	bcfg := broker.Config{Addr: cfg.MQTTAddr, Logger: log.With("component", "broker"),
		ConnectTimeout: cfg.MQTTConnectTimeout, MaxConnections: cfg.MQTTMaxConnections,
		MaxConnectionsPerAddr: cfg.MQTTMaxConnectionsPerAddr,
		// In this order: mochi calls the hooks' OnPublish in the order
		// they were added and stops at the first that drops a message,
		// so a message limits drops (mochi's "ignore") never reaches
		// ingest's OnPublish, which stores a device's QoS 1 message
		// before mochi acknowledges it; ingest's OnPublished skips
		// ignored messages too.
		Hooks: []mqtt.Hook{r.authHook, r.limitsHook, r.pipeline.Hook()}}
	if need := cfg.MaxPayload + packetOverhead; cfg.MaxPayload > 0 && need > broker.DefaultMaxPacketSize {
		// Let a payload up to the limit in: mochi disconnects a client
		// whose packet is over the broker's size.
		bcfg.MaxPacketSize = uint32(min(need, maxPacketSize))
	}
	if cfg.MQTTSAddr != "-" {
		tlsCfg, err := r.authority.ServerTLSConfig(serverHosts(cfg.MQTTSAddr))
		if err != nil {
			return err
		}
		bcfg.TLSAddr, bcfg.TLSConfig = cfg.MQTTSAddr, tlsCfg
	}
	b, err := broker.Start(ctx, bcfg)
	if err != nil {
		return err
	}
	r.stops.Push(func() error { _ = b.Close(); return nil })
	r.publish, r.mqttAddr, r.mqttsAddr = b.Publish, b.Addr(), b.TLSAddr()
	r.brokerStats = b.Stats
	return nil
}

// startExecutor ends the executions the last run left unfinished (those
// whose waiter goes away later, another hub on a shared store, end at
// their deadline) and starts the executor's and retention's goroutines.
func (r *runner) startExecutor(ctx context.Context) error {
	if err := r.executor.Recover(ctx); err != nil {
		return err
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.executor.Run(r.background, 0) }()
	if r.cfg.Retention > 0 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			prune(r.background, r.st, r.cfg.Retention, r.cfg.RetentionInterval, r.log.With("component", "retention"))
		}()
	}
	return nil
}

// startMetrics serves /metrics when Config.MetricsAddr is set.
func (r *runner) startMetrics(context.Context) error {
	stop, addr, err := startMetrics(r.cfg, r.st, r.pipeline, r.limitsHook, r.executor, r.authHook, r.brokerStats)
	if err != nil {
		return err
	}
	r.stops.Push(func() error { stop(); return nil })
	r.metricsAddr = addr
	return nil
}

// startHTTP listens and serves the API, then says where everything is
// (log line, Config.Ready).
func (r *runner) startHTTP(context.Context) error {
	cfg, st, pipeline := r.cfg, r.st, r.pipeline
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w (choose another with --http-addr)", cfg.HTTPAddr, err)
	}
	info := Info{DataDir: cfg.DataDir, MQTTAddr: r.mqttAddr, MQTTSAddr: r.mqttsAddr, HTTPAddr: ln.Addr().String(),
		HTTPURL: "http://" + ln.Addr().String(), MetricsAddr: r.metricsAddr, Token: r.token}
	if r.httpTLS != nil {
		info.HTTPURL, info.HTTPCAFile = "https://"+info.HTTPAddr, r.httpCAFile
	}
	handler := api.New(api.Config{
		Token:    r.token,
		Store:    st,
		Executor: r.executor,
		Presence: r.pipeline.Online,
		// Every device session on the hub's own broker passes the auth hook
		// and ingest; anonymous clients and an external broker's need not.
		SeesEverySession: cfg.Broker == "" && !cfg.AllowAnonymous,
		Provisioner: &Provisioner{Store: st, CA: r.authority, MQTTAddr: info.MQTTAddr, MQTTSAddr: info.MQTTSAddr,
			External: cfg.Broker != "", DeviceUsername: cfg.DeviceUsername, DevicePassword: cfg.DevicePassword},
		Streams: streams{pipeline},
		// Ingest caches devices; it checks telemetry against a new manifest at once.
		ManifestAssigned: func(d store.Device) { pipeline.Forget(d.HardwareID) },
		Logger:           r.log.With("component", "api"),
	})
	srv := &http.Server{
		// The web console answers GET / and /console/; the rest is the API.
		Handler:           console.New(handler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: execute_command waits up to api.MaxCommandTimeout
		// and the WebSocket streams stay open; both end with r.Context().
	}
	r.serveErr = make(chan error, 1)
	if r.httpTLS != nil {
		srv.TLSConfig = r.httpTLS
		go func() { r.serveErr <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { r.serveErr <- srv.Serve(ln) }()
	}
	r.stops.Push(func() error {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("stop HTTP: %w", err)
		}
		return nil
	})
	// Waiting executions end as ERROR first, so that their callers get an
	// answer before the server stops and none is left NEW.
	r.stops.Push(func() error { r.executor.Close(); return nil })
	r.log.Info("hub running", "mqtt", info.MQTTAddr, "mqtts", info.MQTTSAddr, "http", info.HTTPURL, "metrics", info.MetricsAddr, "data", info.DataDir)
	if cfg.Ready != nil {
		cfg.Ready(info)
	}
	return nil
}

// serve waits until ctx is cancelled or the HTTP server fails.
func (r *runner) serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-r.serveErr:
		return fmt.Errorf("serve HTTP: %w", err)
	}
}
