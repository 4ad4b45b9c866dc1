package broker_test

import (
	"errors"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
)

const waitLimit = 10 * time.Second

// silent opens a TCP connection that never sends CONNECT.
func silent(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByBroker reports whether the broker closed c (a read ends with EOF
// or a reset) before waitLimit.
func closedByBroker(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestConnectDeadline opens connections that never send CONNECT, on the
// plain and the TLS listener (where not even the handshake starts): the
// broker closes them once ConnectTimeout is over. A client that did
// connect in time is not affected by the deadline.
func TestConnectDeadline(t *testing.T) {
	pki := testutil.NewPKI(t)
	b := start(t, broker.Config{ConnectTimeout: 100 * time.Millisecond, TLSAddr: "127.0.0.1:0", TLSConfig: pki.ServerTLSConfig(t)})
	client := testutil.Connect(t, b.Addr())
	for _, addr := range []string{b.Addr(), b.TLSAddr()} {
		start := time.Now()
		if !closedByBroker(t, silent(t, addr)) {
			t.Fatalf("%s: a connection that never sent CONNECT was held for %v", addr, waitLimit)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Fatalf("%s: closed after %v, before the deadline", addr, d)
		}
	}
	// Well past the deadline, the connected client still works.
	msgs := testutil.Subscribe(t, client, "t/#")
	publish(t, client, "t/after", []byte("x"))
	if m := testutil.Receive(t, msgs); m.Topic() != "t/after" || !client.IsConnectionOpen() {
		t.Fatalf("connected client after the deadline: %s, open %v", m.Topic(), client.IsConnectionOpen())
	}
}

// connects reports whether a paho client gets through the broker's caps.
func connects(t *testing.T, addr string) bool {
	t.Helper()
	c := paho.NewClient(testutil.ClientOptions(addr))
	if err := testutil.Wait(c.Connect()); err != nil {
		return false
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return true
}

// waitConnects tries until a client gets through (the broker frees a
// connection's place on its own goroutine).
func waitConnects(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, "a client to get through after a place was freed", func() bool { return connects(t, addr) })
}

func TestMaxConnectionsPerAddr(t *testing.T) {
	logs := new(testutil.SyncBuffer)
	b := start(t, broker.Config{MaxConnectionsPerAddr: 3, ConnectTimeout: time.Hour, Logger: logs.Logger()})
	held := []net.Conn{silent(t, b.Addr()), silent(t, b.Addr())}
	if !connects(t, b.Addr()) {
		t.Fatal("the third connection from one address refused, want admitted")
	}
	if !closedByBroker(t, silent(t, b.Addr())) {
		t.Fatal("a fourth connection from one address was kept")
	}
	if connects(t, b.Addr()) {
		t.Fatal("a client over the per-address cap connected")
	}
	if !logs.WaitFor("too many connections from this address", waitLimit) {
		t.Error("refusal not logged")
	}
	if s := b.Stats(); s.RefusedPerAddrCap != 2 || s.RefusedTotalCap != 0 {
		t.Errorf("stats %+v, want 2 refused over the per-address cap", s)
	}
	_ = held[0].Close()
	waitConnects(t, b.Addr())
}

func TestMaxConnections(t *testing.T) {
	b := start(t, broker.Config{MaxConnections: 2, ConnectTimeout: time.Hour})
	a := silent(t, b.Addr())
	silent(t, b.Addr())
	if !closedByBroker(t, silent(t, b.Addr())) {
		t.Fatal("a connection over the total cap was kept")
	}
	_ = a.Close()
	waitConnects(t, b.Addr())
}

// TestManySilentConnections is the exhaustion attack: far more connections
// that never send CONNECT than the cap. The broker keeps at most the cap
// open, and a client gets in once the deadline has cleared them.
func TestManySilentConnections(t *testing.T) {
	b := start(t, broker.Config{MaxConnections: 20, MaxConnectionsPerAddr: -1, ConnectTimeout: 200 * time.Millisecond})
	var conns []net.Conn
	for range 100 {
		conns = append(conns, silent(t, b.Addr()))
	}
	closed := 0
	for _, c := range conns {
		if closedByBroker(t, c) {
			closed++
		}
	}
	if closed != len(conns) {
		t.Fatalf("%d of %d silent connections closed by the broker", closed, len(conns))
	}
	waitConnects(t, b.Addr())
}
