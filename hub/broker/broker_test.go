package broker_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
)

func start(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	b, err := broker.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func publish(t *testing.T, c paho.Client, topic string, payload []byte) {
	t.Helper()
	if err := testutil.Wait(c.Publish(topic, 1, false, payload)); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

func TestRoundTrip(t *testing.T) {
	b := start(t, broker.Config{})
	if strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the picked port", b.Addr())
	}
	sub := testutil.Connect(t, b.Addr())
	msgs := testutil.Subscribe(t, sub, "v1/from/#")

	publish(t, testutil.Connect(t, b.Addr()), "v1/from/hw/ch/v1/telemetry", []byte(`{"timestamp":1}`))
	if m := testutil.Receive(t, msgs); m.Topic() != "v1/from/hw/ch/v1/telemetry" || string(m.Payload()) != `{"timestamp":1}` {
		t.Errorf("got %s %s", m.Topic(), m.Payload())
	}

	if err := b.Publish("v1/from/hw/ch/v1/properties", []byte("inline"), false, 1); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if m := testutil.Receive(t, msgs); string(m.Payload()) != "inline" {
		t.Errorf("inline publish: got %s %s", m.Topic(), m.Payload())
	}
}

func TestRetainedInlinePublish(t *testing.T) {
	b := start(t, broker.Config{})
	if err := b.Publish("retained/topic", []byte("kept"), true, 0); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	msgs := testutil.Subscribe(t, testutil.Connect(t, b.Addr()), "retained/topic")
	if m := testutil.Receive(t, msgs); !m.Retained() || string(m.Payload()) != "kept" {
		t.Errorf("got retained=%v %s", m.Retained(), m.Payload())
	}
}

// A broker restart on the same address is how device tests simulate a
// broker going away: clients must be cut, and the address free again.
func TestCloseThenStartOnSameAddr(t *testing.T) {
	b := start(t, broker.Config{})
	addr := b.Addr()

	lost := make(chan error, 1)
	opts := testutil.ClientOptions(addr).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	testutil.ConnectWith(t, opts)

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("client was not disconnected by Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Publish("t", nil, false, 0); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}

	b2 := start(t, broker.Config{Addr: addr})
	msgs := testutil.Subscribe(t, testutil.Connect(t, b2.Addr()), "again")
	publish(t, testutil.Connect(t, addr), "again", []byte("x"))
	testutil.Receive(t, msgs)
}

func TestAddrInUse(t *testing.T) {
	b := start(t, broker.Config{})
	_, err := broker.Start(context.Background(), broker.Config{Addr: b.Addr()})
	if err == nil {
		t.Fatal("second Start on the same address succeeded")
	}
	if !errors.Is(err, broker.ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("err = %v, want ErrAddrInUse and EADDRINUSE", err)
	}
	var le *broker.ListenError
	if !errors.As(err, &le) || le.Addr != b.Addr() {
		t.Errorf("err = %#v, want *ListenError for %s", err, b.Addr())
	}
	want := "listen on " + b.Addr() + ": address already in use (another broker running? choose a port with --mqtt-addr)"
	if err.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", err, want)
	}
}

func TestBadAddr(t *testing.T) {
	_, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:notaport"})
	var le *broker.ListenError
	if !errors.As(err, &le) || errors.Is(err, broker.ErrAddrInUse) {
		t.Fatalf("err = %v, want a *ListenError that is not ErrAddrInUse", err)
	}
}

func TestTLS(t *testing.T) {
	pki := testutil.NewPKI(t)
	b := start(t, broker.Config{TLSAddr: "127.0.0.1:0", TLSConfig: pki.ServerTLSConfig(t)})
	if b.TLSAddr() == "" || b.TLSAddr() == b.Addr() {
		t.Fatalf("TLSAddr() = %q, Addr() = %q", b.TLSAddr(), b.Addr())
	}

	opts := testutil.ClientOptions("ssl://" + b.TLSAddr()).SetTLSConfig(pki.ClientTLSConfig(t, "device-1"))
	c := testutil.ConnectWith(t, opts)
	msgs := testutil.Subscribe(t, c, "tls/echo")
	publish(t, c, "tls/echo", []byte("over tls"))
	testutil.Receive(t, msgs)

	// No client certificate: the handshake fails and no MQTT session starts.
	noCert := testutil.ClientOptions("ssl://" + b.TLSAddr()).SetTLSConfig(&tls.Config{RootCAs: pki.CertPool()})
	if err := testutil.Wait(paho.NewClient(noCert).Connect()); err == nil {
		t.Error("connected without a client certificate")
	}
}

func TestTLSOffByDefault(t *testing.T) {
	if b := start(t, broker.Config{}); b.TLSAddr() != "" {
		t.Errorf("TLSAddr() = %q without TLSConfig", b.TLSAddr())
	}
}

// Oversized packets must cost the sender its connection, not the broker its
// life; packets under the limit still pass.
func TestMaxPacketSize(t *testing.T) {
	b := start(t, broker.Config{MaxPacketSize: 64 << 10})
	msgs := testutil.Subscribe(t, testutil.Connect(t, b.Addr()), "big")

	publish(t, testutil.Connect(t, b.Addr()), "big", make([]byte, 60<<10))
	if m := testutil.Receive(t, msgs); len(m.Payload()) != 60<<10 {
		t.Errorf("payload of %d bytes, want %d", len(m.Payload()), 60<<10)
	}

	lost := make(chan error, 1)
	opts := testutil.ClientOptions(b.Addr()).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	huge := testutil.ConnectWith(t, opts)
	huge.Publish("big", 0, false, make([]byte, 1<<20))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("sender of an oversized packet was not disconnected")
	}

	publish(t, testutil.Connect(t, b.Addr()), "big", []byte("still alive"))
	if m := testutil.Receive(t, msgs); string(m.Payload()) != "still alive" {
		t.Errorf("got %q", m.Payload())
	}
}

// A connection that never sends CONNECT is unknown to mochi; Close must
// still cut it rather than wait for it.
func TestCloseCutsSilentConnections(t *testing.T) {
	b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A completed MQTT session on the side proves the listener is serving,
	// so the silent connection has been accepted before Close.
	c := paho.NewClient(testutil.ClientOptions(b.Addr()))
	if err := testutil.Wait(c.Connect()); err != nil {
		t.Fatal(err)
	}

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read on silent connection after Close: %v, want EOF", err)
	}
	c.Disconnect(0)
}

// denyHook admits only the user "good" and so replaces the allow-all default.
type denyHook struct{ mqtt.HookBase }

func (*denyHook) ID() string { return "deny" }
func (*denyHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*denyHook) OnConnectAuthenticate(_ *mqtt.Client, pk packets.Packet) bool {
	return string(pk.Connect.Username) == "good"
}
func (*denyHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func TestHooksReplaceAllowAll(t *testing.T) {
	b := start(t, broker.Config{Hooks: []mqtt.Hook{new(denyHook)}})

	if err := testutil.Wait(paho.NewClient(testutil.ClientOptions(b.Addr()).SetUsername("bad")).Connect()); err == nil {
		t.Error("user bad connected")
	}
	testutil.ConnectWith(t, testutil.ClientOptions(b.Addr()).SetUsername("good"))
}

// mochi's Info chatter stays out of the caller's log; the broker's own
// lines go in.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, "mqtt broker listening") {
		t.Errorf("log lacks the listening line:\n%s", out)
	}
	if strings.Contains(out, "attached listener") || strings.Contains(out, "added hook") {
		t.Errorf("mochi's info lines leaked into the log:\n%s", out)
	}
}

// TestLongClientIDCutInLog makes mochi log a warning about a client whose
// id is 60 KB (a second CONNECT on an open connection, a protocol error):
// the line carries the id cut short, not whole.
func TestLongClientIDCutInLog(t *testing.T) {
	logs := new(testutil.SyncBuffer)
	b := start(t, broker.Config{Logger: logs.Logger()})
	long := strings.Repeat("C", 60000)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: long}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil { // CONNACK
		t.Fatal(err)
	}
	_, _ = c.Write(buf.Bytes())
	if !logs.WaitFor("error processing packet", waitLimit) {
		t.Fatal("mochi logged nothing about the second CONNECT")
	}
	if strings.Contains(logs.String(), long[:1000]) {
		t.Fatal("the client id was logged whole")
	}
}
