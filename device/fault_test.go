package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/faultproxy"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// startFaultyDevice runs a device that reaches the broker only through a
// fault proxy, with a "ping" command, and returns the device, the proxy and
// a cloud talking to the broker directly.
func startFaultyDevice(t *testing.T, opts ...device.Option) (*running, *faultproxy.Proxy, *cloud) {
	t.Helper()
	b := testutil.StartBroker(t)
	p := faultproxy.Start(t, b.Addr())
	d := startDevice(t, testConfig(t, p.Addr()), func(d *device.Device) {
		d.Handle("ping", func(context.Context, *device.Command) (any, error) { return map[string]any{"pong": true}, nil })
	}, opts...)
	return d, p, newCloud(t, b.Addr(), testHW, testCH)
}

// ping sends a command and checks that it completes.
func (c *cloud) ping(id string) {
	c.t.Helper()
	c.send(id, "ping", nil)
	if r, _ := c.final(); r.ID != id || r.State != mqttapi.StateCompleted {
		c.t.Fatalf("response %+v, want %s completed", r, id)
	}
}

func TestHalfOpenLinkIsDetectedByKeepAlive(t *testing.T) {
	const keepAlive = time.Second
	d, p, c := startFaultyDevice(t, device.WithKeepAlive(keepAlive))
	c.ping("before")

	// paho pings after keepAlive of silence and gives up keepAlive/2 later;
	// 5×keepAlive leaves room for a busy CI machine.
	bound := 5 * keepAlive
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	p.Hang()
	if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
		t.Fatalf("half-open link not detected within %v: %v", bound, err)
	}
	t.Logf("half-open link detected after %v (keep-alive %v)", time.Since(start).Round(time.Millisecond), keepAlive)

	p.Resume()
	rctx, rcancel := context.WithTimeout(context.Background(), waitLimit)
	defer rcancel()
	if err := d.WaitState(rctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	c.ping("after-resume")
}

func TestCutLinkReconnects(t *testing.T) {
	// The device may reconnect before a WaitState(StateDisconnected) looks,
	// so the transitions are read from the state handler instead.
	states := make(chan device.State, 64)
	_, p, c := startFaultyDevice(t, device.WithKeepAlive(time.Second), device.WithStateHandler(func(s device.State) {
		select {
		case states <- s:
		default: // never block the device; the test fails on a missing state
		}
	}))
	if s := nextState(t, states); s != device.StateConnected {
		t.Fatalf("first state %s, want %s", s, device.StateConnected)
	}
	c.ping("before")
	accepted := p.Accepted()

	p.Cut()
	for _, want := range []device.State{device.StateDisconnected, device.StateConnected} {
		if s := nextState(t, states); s != want {
			t.Fatalf("state %s after the cut, want %s", s, want)
		}
	}
	if p.Accepted() <= accepted {
		t.Fatalf("accepted %d connections after the cut, want a new one", p.Accepted())
	}
	c.ping("after-cut")
}

func nextState(t *testing.T, states <-chan device.State) device.State {
	t.Helper()
	select {
	case s := <-states:
		return s
	case <-time.After(waitLimit):
		t.Fatal("no state change")
		return 0
	}
}

func TestCommandRoundTripUnderLatency(t *testing.T) {
	_, p, c := startFaultyDevice(t)
	p.SetLatency(50 * time.Millisecond)
	start := time.Now()
	c.ping("slow")
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("round trip took %v, want at least 2×latency", took)
	}
}
