package bench

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
)

const (
	rtHardwareID = "bench-hw"
	rtChannel    = "primary"
	// rtWindow bounds the requests in flight in the pipelined variant: enough
	// to keep every stage busy, few enough that neither the broker nor paho
	// queues grow without bound.
	rtWindow = 64
	// rtTimeout bounds any single wait, so a lost response fails the
	// benchmark instead of hanging it.
	rtTimeout = 10 * time.Second
)

// rtSeq numbers requests across all runs of the benchmark function: the
// device remembers finished ids (dedup window), and an id seen before would
// be answered from memory instead of executed.
var rtSeq atomic.Int64

// BenchmarkCommandRoundTrip measures one set_power command from a paho
// client through the in-process broker (hub/broker, as `edk hub` runs it) to
// a device on the edk runtime and back: request published, handler run,
// completed response received. Everything runs in this process, so
// allocs/op and B/op count the client and the broker as well as the device.
func BenchmarkCommandRoundTrip(b *testing.B) {
	// One request at a time: ns/op is the latency of a round trip.
	b.Run("Sequential", func(b *testing.B) {
		rt := newRoundTrip(b)
		b.ReportAllocs()
		for b.Loop() {
			id := rt.send()
			if got := rt.receive(b); got != id {
				b.Fatalf("response to %s, want %s", got, id)
			}
		}
	})
	// Up to rtWindow requests in flight, as when a cloud or a script fires
	// commands without waiting: ns/op is the reciprocal of the throughput.
	b.Run("Pipelined", func(b *testing.B) {
		rt := newRoundTrip(b)
		b.ReportAllocs()
		b.ResetTimer()
		inFlight := 0
		for range b.N {
			if inFlight == rtWindow {
				rt.receive(b)
				inFlight--
			}
			rt.send()
			inFlight++
		}
		for ; inFlight > 0; inFlight-- {
			rt.receive(b)
		}
	})
}

// roundTrip is a connected device and the client that commands it.
type roundTrip struct {
	client    mqtt.Client
	reqTopic  string
	responses chan string // ids of completed responses
	timer     *time.Timer // reused by receive, so that waiting allocates nothing
}

// newRoundTrip starts a broker and a device with a set_power handler that
// answers completed at once, and connects a client subscribed to the
// device's responses. All of it is stopped when b ends.
func newRoundTrip(b *testing.B) *roundTrip {
	b.Helper()
	br := testutil.StartBroker(b)
	host, portStr, err := net.SplitHostPort(br.Addr())
	if err != nil {
		b.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	cfg := &commconfig.Config{
		Version: commconfig.Version3, HardwareID: rtHardwareID, ChannelID: rtChannel,
		Host: host, Port: port, Protocol: commconfig.ProtocolMQTT,
	}
	d, err := device.New(cfg)
	if err != nil {
		b.Fatalf("new device: %v", err)
	}
	d.Handle("set_power", func(context.Context, *device.Command) (any, error) { return nil, nil })

	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				b.Errorf("device Run: %v", err)
			}
		case <-time.After(rtTimeout):
			b.Error("device Run did not return after cancel")
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), rtTimeout)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		b.Fatal(err)
	}

	rt := &roundTrip{
		client:    testutil.Connect(b, br.Addr()),
		reqTopic:  "v1/to/" + rtHardwareID + "/" + rtChannel + "/v1/command/requests",
		responses: make(chan string, 2*rtWindow),
		timer:     time.NewTimer(rtTimeout),
	}
	respTopic := "v1/from/" + rtHardwareID + "/" + rtChannel + "/v1/command/responses"
	// The handler decodes in paho's router goroutine and never blocks for
	// long: the channel holds more than the window can put in flight.
	tok := rt.client.Subscribe(respTopic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var r struct{ ID, State string }
		if err := json.Unmarshal(m.Payload(), &r); err != nil || r.State != "completed" {
			r.ID = "bad response: " + string(m.Payload())
		}
		rt.responses <- r.ID
	})
	if err := testutil.Wait(tok); err != nil {
		b.Fatalf("subscribe: %v", err)
	}
	return rt
}

// send publishes one set_power request and returns its id. It does not wait
// for the PUBACK: the response is what proves delivery.
func (rt *roundTrip) send() string {
	id := strconv.FormatInt(rtSeq.Add(1), 10)
	rt.client.Publish(rt.reqTopic, 1, false, `{"id":"`+id+`","name":"set_power","arguments":{"power":1000}}`)
	return id
}

// receive returns the id of the next completed response.
func (rt *roundTrip) receive(b *testing.B) string {
	b.Helper()
	rt.timer.Reset(rtTimeout) // since Go 1.23 Reset leaves no stale tick behind
	select {
	case id := <-rt.responses:
		if _, err := strconv.Atoi(id); err != nil {
			b.Fatal(id)
		}
		return id
	case <-rt.timer.C:
		b.Fatalf("no response within %v", rtTimeout)
		return ""
	}
}
