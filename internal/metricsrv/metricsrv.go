// Package metricsrv serves a Prometheus registry over HTTP at /metrics, for
// the long-running edk commands that take --metrics ADDR (edk hub, edk run).
// Each command builds its own registry (NewRegistry) and its own
// collectors; nothing here touches Prometheus's global registry, so that a
// program embedding edk keeps control of what it exports.
package metricsrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the metrics are served.
const Path = "/metrics"

// ProfilesPath is where WithProfiles serves Go's runtime profiles (the
// net/http/pprof handlers: go tool pprof http://ADDR/debug/pprof/profile).
const ProfilesPath = "/debug/pprof/"

// An Option changes what Serve and Start serve beside the metrics.
type Option func(*options)

type options struct{ profiles bool }

// WithProfiles also serves Go's CPU, heap, goroutine, mutex and block
// profiles and execution traces under ProfilesPath. They are off unless
// asked for (edk hub --pprof): a profile shows the program's internals and
// a CPU profile or trace costs the process while it is taken, so they
// belong on an address only the operator reaches, like the metrics.
func WithProfiles() Option { return func(o *options) { o.profiles = true } }

// shutdownTimeout bounds how long Serve waits for a scrape in progress once
// ctx is done.
const shutdownTimeout = 5 * time.Second

// NewRegistry returns a registry holding the Go runtime and process
// collectors (go_*, process_*), to which a command adds its own.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler returns the http.Handler that serves reg in Prometheus's text
// format (or OpenMetrics, when the scraper asks for it). A collector that
// fails makes the scrape report what it could plus the error, rather than
// fail as a whole; the handler's own request counters are registered in reg.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{log},
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg,
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
}

// Serve listens on addr (host:port; port 0 picks a free one) and serves reg
// at Path until ctx is done; then it stops, waiting briefly for a scrape in
// progress, and returns nil. ready, when not nil, is called with the
// address actually listened on once connections are accepted. A listen
// failure is returned at once, wrapped with the address and a hint naming
// the --metrics flag; a later serving failure is returned wrapped too.
// log (nil discards) gets one Info line when serving starts and the
// handler's errors.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger, ready func(addr string), opts ...Option) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w (choose another address with --metrics)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(reg, log))
	if o.profiles {
		mux.HandleFunc(ProfilesPath, pprof.Index)
		mux.HandleFunc(ProfilesPath+"cmdline", pprof.Cmdline)
		mux.HandleFunc(ProfilesPath+"profile", pprof.Profile)
		mux.HandleFunc(ProfilesPath+"symbol", pprof.Symbol)
		mux.HandleFunc(ProfilesPath+"trace", pprof.Trace)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	bound := ln.Addr().String()
	log.Info("metrics listening", "url", "http://"+bound+Path)
	if o.profiles {
		log.Info("profiles listening", "url", "http://"+bound+ProfilesPath)
	}
	if ready != nil {
		ready(bound)
	}

	select {
	case err := <-served:
		// Serve returns only on a listener failure here: nobody shut it down.
		return fmt.Errorf("serve metrics on %s: %w", bound, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop metrics server: %w", err)
	}
	_ = srv.Close() // cut a scrape that outlived the shutdown wait
	<-served
	return nil
}

// Start serves reg on addr in the background, as Serve does, and returns
// once it listens: with the address listened on, and stop, which ends the
// server and waits for it (a serving failure is logged then). A listen
// failure is returned instead.
func Start(addr string, reg *prometheus.Registry, log *slog.Logger, opts ...Option) (bound string, stop func(), err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, reg, log, func(a string) { ready <- a }, opts...) }()
	select {
	case bound = <-ready:
	case err := <-done:
		cancel()
		return "", nil, err
	}
	return bound, func() {
		cancel()
		if err := <-done; err != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}, nil
}

// slogPrinter adapts a slog.Logger to promhttp's Logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Error("metrics: " + fmt.Sprint(v...))
}
