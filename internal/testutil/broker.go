package testutil

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/edk-go/edk/hub/broker"
)

// StartBroker starts an embedded broker on a free 127.0.0.1 port and closes
// it when the test ends. Its log is printed if the test fails.
func StartBroker(t testing.TB) *broker.Broker {
	t.Helper()
	buf := new(logBuffer)
	logOnFailure(t, "broker", buf)
	b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0", Logger: bufferLogger(buf)})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func bufferLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// RestartableBroker is an embedded broker that a test can stop and start
// again on the same address, to make clients live through a broker restart.
type RestartableBroker struct {
	t    testing.TB
	addr string
	log  *slog.Logger

	mu sync.Mutex
	b  *broker.Broker // nil while stopped
}

// StartRestartableBroker starts a broker on a free 127.0.0.1 port and stops
// it when the test ends.
func StartRestartableBroker(t testing.TB) *RestartableBroker {
	t.Helper()
	buf := new(logBuffer)
	logOnFailure(t, "broker", buf)
	r := &RestartableBroker{t: t, addr: "127.0.0.1:0", log: bufferLogger(buf)}
	r.Start()
	r.addr = r.b.Addr() // later starts reuse the port picked now
	t.Cleanup(r.Stop)
	return r
}

// Addr returns the broker's address, host:port; it stays the same across
// restarts.
func (r *RestartableBroker) Addr() string { return r.addr }

// Broker returns the running broker, or nil while stopped.
func (r *RestartableBroker) Broker() *broker.Broker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b
}

// Stop closes the broker and every client connection; the address is free
// when it returns. Stopping a stopped broker does nothing.
func (r *RestartableBroker) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.b != nil {
		_ = r.b.Close()
		r.b = nil
	}
}

// Start starts the broker again on the same address. Starting a running
// broker does nothing.
func (r *RestartableBroker) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.b != nil {
		return
	}
	b, err := broker.Start(context.Background(), broker.Config{Addr: r.addr, Logger: r.log})
	if err != nil {
		r.t.Fatalf("start broker: %v", err)
	}
	r.b = b
}
