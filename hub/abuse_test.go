package hub_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub"
	"github.com/edk-go/edk/internal/faultproxy"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// TestForgedWillNeverRuns is the will attack end to end: device A, with
// its own valid credentials, connects with a retained last will that is a
// command request for device B, then drops its socket. B, a real edk
// device, must never run it, now or at its next connect.
func TestForgedWillNeverRuns(t *testing.T) {
	h := startHubWith(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		MetricsAddr: "127.0.0.1:0"})
	_, cfgA := h.provision(t, "attacker", commconfig.ProtocolMQTT)
	idB, cfgB := h.provision(t, "victim", commconfig.ProtocolMQTT)

	var forged atomic.Int64
	b, err := device.New(cfgB, device.WithBackoff(5*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	b.Handle("reboot", func(context.Context, *device.Command) (any, error) { forged.Add(1); return nil, nil })
	b.Handle("noop", func(context.Context, *device.Command) (any, error) { return nil, nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, waitLimit)
	defer wcancel()
	if err := b.WaitState(wctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}

	topic, err := mqttapi.NewTopic(mqttapi.ToDevice, cfgB.HardwareID, cfgB.ChannelID, mqttapi.KindCommandRequests)
	if err != nil {
		t.Fatal(err)
	}
	proxy := faultproxy.Start(t, h.info.MQTTAddr)
	opts := testutil.ClientOptions(proxy.Addr()).SetUsername(cfgA.Username).SetPassword(cfgA.Password).
		SetWill(topic.String(), `{"id":"forged-1","name":"reboot"}`, 1, true)
	a := paho.NewClient(opts)
	if err := testutil.Wait(a.Connect()); err == nil {
		t.Error("A connected with a last will on B's command topic, want refused")
		proxy.Cut()
		// The hub has finished with A (and sent its will) once only B
		// counts as connected.
		waitMetric(t, h, "edk_hub_connected_devices", eq(1))
		a.Disconnect(0)
	}

	var out struct {
		Execution execution `json:"execution"`
	}
	if code := h.call(t, "POST", "/v3/devices/"+idB+"/execute_command", map[string]any{"name": "noop"}, &out); code != http.StatusOK || out.Execution.State != "SUCCESS" {
		t.Fatalf("execute_command: %d %+v", code, out.Execution)
	}
	if n := forged.Load(); n != 0 {
		t.Fatalf("B ran the forged command %d times", n)
	}
	waitMetric(t, h, `edk_hub_mqtt_connections_refused_total{reason="will"}`, eq(1))
}

// TestHubClosesSilentConnections checks that the hub's connection limits
// reach its broker: a connection that never sends CONNECT is closed after
// MQTTConnectTimeout, and one over MQTTMaxConnectionsPerAddr at once.
func TestHubClosesSilentConnections(t *testing.T) {
	h := startHubWith(t, hub.Config{DataDir: t.TempDir(), MQTTAddr: "127.0.0.1:0", MQTTSAddr: "-", HTTPAddr: "127.0.0.1:0",
		MQTTConnectTimeout: 100 * time.Millisecond, MQTTMaxConnectionsPerAddr: 2})
	read := func(c net.Conn) error {
		_ = c.SetReadDeadline(time.Now().Add(waitLimit))
		_, err := c.Read(make([]byte, 1))
		return err
	}
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", h.info.MQTTAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	for i, c := range conns {
		err := read(c)
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection %d was held for %v without CONNECT: %v", i, waitLimit, err)
		}
	}
}
