package device_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mdns"
	"github.com/edk-go/edk/mqttapi"
)

// A broker host such as enapter-gateway.local is found by mDNS when the
// system resolver does not know it, and found again on every reconnect:
// here the gateway moves from 127.0.0.2 to 127.0.0.3 between connections.
func TestBrokerFoundByMDNSAndFollowedWhenItMoves(t *testing.T) {
	const name = "edk-test-gateway.local"
	first := startBrokerOn(t, "127.0.0.2:0")
	_, port, _ := net.SplitHostPort(first.Addr())
	responder := testutil.StartMDNSResponder(t)
	responder.Set(name, "127.0.0.2")

	cache := mdns.NewCache(&mdns.Resolver{Group4: responder.Addr, Group6: mdns.Disabled, Timeout: time.Second})
	cache.System = func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no such host") }
	cfg := testConfig(t, first.Addr())
	cfg.Host = name
	d := startDevice(t, cfg, pingHandler, device.WithMDNS(cache), device.WithKeepAlive(time.Second))
	ping(t, first.Addr(), "on-first")

	responder.Set(name, "127.0.0.3")
	_ = first.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatal(err)
	}
	second := startBrokerOn(t, net.JoinHostPort("127.0.0.3", port))
	if err := d.WaitState(ctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	ping(t, second.Addr(), "on-second")
}

func TestUnresolvableLocalBrokerIsRetriedWithItsName(t *testing.T) {
	responder := testutil.StartMDNSResponder(t) // knows no names
	cache := mdns.NewCache(&mdns.Resolver{Group4: responder.Addr, Group6: mdns.Disabled, Timeout: 50 * time.Millisecond})
	cache.System = func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("no such host") }
	logs := &testutil.SyncBuffer{}
	cfg := &commconfig.Config{Version: commconfig.Version3, HardwareID: testHW, ChannelID: testCH,
		Host: "missing-gateway.local", Port: 1883, Protocol: commconfig.ProtocolMQTT}
	d, err := device.New(cfg, device.WithMDNS(cache), device.WithLogger(logs.Logger()), device.WithBackoff(5*time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	if !logs.WaitFor("missing-gateway.local", waitLimit) || !logs.WaitFor("nothing answered the mDNS query", waitLimit) {
		t.Fatalf("log does not name the host and the cause:\n%s", logs)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func startBrokerOn(t *testing.T, addr string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(context.Background(), broker.Config{Addr: addr})
	if err != nil {
		t.Skipf("cannot listen on %s (needs the 127.0.0.0/8 loopback range): %v", addr, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ping(t *testing.T, addr, id string) {
	t.Helper()
	c := newCloud(t, addr, testHW, testCH)
	c.send(id, "ping", nil)
	if r, _ := c.final(); r.ID != id || r.State != mqttapi.StateCompleted {
		t.Fatalf("response %+v", r)
	}
}
