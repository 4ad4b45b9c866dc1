package device_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testHW = "hw-test"
	testCH = "primary"
	// waitLimit bounds every wait in these tests; the tests never sleep.
	waitLimit = 10 * time.Second
)

func testConfig(t testing.TB, addr string) *commconfig.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &commconfig.Config{Version: commconfig.Version3, HardwareID: testHW, ChannelID: testCH, Host: host, Port: p, Protocol: commconfig.ProtocolMQTT}
}

// testLogger sends the device's log to t.Log, so a failing test shows it.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// running is a device under test with its Run goroutine.
type running struct {
	*device.Device
	cancel context.CancelFunc
	errc   chan error
}

// stop cancels Run and returns its result.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.errc:
		r.errc <- err // let Cleanup read it too
		return err
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// startDevice runs a device against the broker at addr, waits until it is
// connected, and stops it when the test ends.
func startDevice(t testing.TB, cfg *commconfig.Config, setup func(*device.Device), opts ...device.Option) *running {
	t.Helper()
	base := []device.Option{device.WithBackoff(5*time.Millisecond, 50*time.Millisecond), device.WithLogger(testLogger(t))}
	d, err := device.New(cfg, append(base, opts...)...)
	if err != nil {
		t.Fatalf("new device: %v", err)
	}
	if setup != nil {
		setup(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Device: d, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.errc:
		case <-time.After(waitLimit):
			t.Error("Run did not return after cancel")
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), waitLimit)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	return r
}

// cloud plays Enapter's side: it sends requests and reads what the device
// publishes.
type cloud struct {
	t         testing.TB
	c         mqtt.Client
	responses <-chan mqtt.Message
	hw, ch    string
}

func newCloud(t testing.TB, addr, hw, ch string) *cloud {
	c := testutil.Connect(t, addr)
	return &cloud{t: t, c: c, hw: hw, ch: ch,
		responses: testutil.Subscribe(t, c, mqttapi.Topic{Direction: mqttapi.FromDevice, HardwareID: hw, ChannelID: ch, Kind: mqttapi.KindCommandResponses}.String())}
}

func (c *cloud) sendRaw(payload []byte) {
	c.t.Helper()
	topic := mqttapi.Topic{Direction: mqttapi.ToDevice, HardwareID: c.hw, ChannelID: c.ch, Kind: mqttapi.KindCommandRequests}.String()
	if err := testutil.Wait(c.c.Publish(topic, 1, false, payload)); err != nil {
		c.t.Fatalf("publish request: %v", err)
	}
}

func (c *cloud) send(id, name string, args any) {
	c.t.Helper()
	req := map[string]any{"id": id, "name": name}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *cloud) next() mqttapi.CommandResponse {
	c.t.Helper()
	m := testutil.Receive(c.t, c.responses)
	r, err := mqttapi.DecodeCommandResponse(m.Payload())
	if err != nil {
		c.t.Fatalf("device sent a malformed response %q: %v", m.Payload(), err)
	}
	return r
}

// final reads responses until the final one, returning the log responses too.
func (c *cloud) final() (mqttapi.CommandResponse, []mqttapi.CommandResponse) {
	c.t.Helper()
	var logs []mqttapi.CommandResponse
	for {
		r := c.next()
		if r.State.Final() {
			return r, logs
		}
		logs = append(logs, r)
	}
}

// noMoreResponses checks that nothing else arrives before a marker command
// is answered; it proves absence without sleeping.
func (c *cloud) noMoreResponses(marker string) {
	c.t.Helper()
	c.send(marker, "__marker__", nil)
	r := c.next()
	if r.ID != marker {
		c.t.Fatalf("unexpected response before the marker: %+v (payload %s)", r, r.Payload)
	}
}

func payloadOf(t testing.TB, r mqttapi.CommandResponse) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Payload, &m); err != nil {
		t.Fatalf("payload %s: %v", r.Payload, err)
	}
	return m
}
