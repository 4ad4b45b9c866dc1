package device_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// TestCommandFloodBounded floods a device with command requests whose
// handler does not return until released, as a sender far faster than the
// device would: only WithMaxOpenRequests of them run, the others are
// dropped, counted, and logged once, and the device answers the ones it
// took, then takes new ones again.
func TestCommandFloodBounded(t *testing.T) {
	b := testutil.StartBroker(t)
	logs := new(testutil.SyncBuffer)
	release := make(chan struct{})
	var calls atomic.Int64
	r := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("slow", func(ctx context.Context, _ *device.Command) (any, error) {
			calls.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		})
		d.Handle("__marker__", func(context.Context, *device.Command) (any, error) { return nil, nil })
	}, device.WithMaxOpenRequests(10), device.WithLogger(logs.Logger()))
	cloud := newCloud(t, b.Addr(), testHW, testCH)

	const flood = 200
	topic := mqttapi.Topic{Direction: mqttapi.ToDevice, HardwareID: testHW, ChannelID: testCH, Kind: mqttapi.KindCommandRequests}.String()
	for i := range flood {
		// QoS 0, as fast as the client writes: a flood does not wait.
		cloud.c.Publish(topic, 0, false, fmt.Sprintf(`{"id":"f%d","name":"slow"}`, i))
	}
	// The device reads on its own goroutine.
	testutil.Eventually(t, fmt.Sprintf("%d of %d requests dropped", flood-10, flood), func() bool {
		return r.Stats().RequestsDropped >= flood-10
	})
	if got := calls.Load(); got > 10 {
		t.Fatalf("%d handlers ran, want at most 10", got)
	}
	if n := strings.Count(logs.String(), "dropped command requests"); n != 1 {
		t.Errorf("%d log lines about the drops, want 1:\n%s", n, logs)
	}
	close(release)
	for range 10 {
		if resp, _ := cloud.final(); resp.State != mqttapi.StateCompleted || !strings.HasPrefix(resp.ID, "f") {
			t.Fatalf("response %+v", resp)
		}
	}
	// The device takes requests again.
	cloud.noMoreResponses("after-flood")
}

// holdResponses is a broker hook that does not let a device's command
// responses through until release is closed: mochi reads the client's
// next packet, and acknowledges this one, only after OnPublish returns, as
// with a hub whose rate limit holds a device's publishes back.
type holdResponses struct {
	mqtt.HookBase
	release chan struct{}
}

func (h *holdResponses) ID() string           { return "test-hold-responses" }
func (h *holdResponses) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *holdResponses) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasSuffix(pk.TopicName, "/"+string(mqttapi.KindCommandResponses)) {
		<-h.release
	}
	return pk, nil
}

// TestCommandFloodBoundedByUnacknowledgedResponses floods a device whose
// handler answers at once while the broker acknowledges none of its
// responses: answered requests stay open until their response is
// acknowledged (paho holds each one, up to 65 535 message ids), so only
// WithMaxOpenRequests of them are taken and the rest are dropped.
func TestCommandFloodBoundedByUnacknowledgedResponses(t *testing.T) {
	hold := &holdResponses{release: make(chan struct{})}
	b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0", Hooks: []mqtt.Hook{hold}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	released := sync.OnceFunc(func() { close(hold.release) })
	t.Cleanup(released)
	var calls atomic.Int64
	r := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("fast", func(context.Context, *device.Command) (any, error) { calls.Add(1); return nil, nil })
		d.Handle("__marker__", func(context.Context, *device.Command) (any, error) { return nil, nil })
	}, device.WithMaxOpenRequests(10))
	cloud := newCloud(t, b.Addr(), testHW, testCH)

	const flood = 200
	topic := mqttapi.Topic{Direction: mqttapi.ToDevice, HardwareID: testHW, ChannelID: testCH, Kind: mqttapi.KindCommandRequests}.String()
	for i := range flood {
		cloud.c.Publish(topic, 0, false, fmt.Sprintf(`{"id":"f%d","name":"fast"}`, i))
	}
	testutil.Eventually(t, fmt.Sprintf("%d of %d requests dropped", flood-10, flood), func() bool {
		return r.Stats().RequestsDropped >= flood-10
	})
	if got := calls.Load(); got > 10 {
		t.Fatalf("%d handlers ran while their responses were not acknowledged, want at most 10", got)
	}
	released()
	for range 10 {
		if resp, _ := cloud.final(); resp.State != mqttapi.StateCompleted || !strings.HasPrefix(resp.ID, "f") {
			t.Fatalf("response %+v", resp)
		}
	}
	cloud.noMoreResponses("after-flood")
}
