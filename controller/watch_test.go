package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// watchEvents runs c.Watch in a goroutine and returns its events, a function
// that stops it and returns Watch's result. It returns once the watch is
// subscribed.
func watchEvents(t *testing.T, c *Client, hw, ch string) (<-chan Event, func() error) {
	t.Helper()
	events := make(chan Event, 64)
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	ready := watchReady(c)
	go func() {
		errc <- c.Watch(ctx, hw, ch, func(e Event) { events <- e })
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Watch: %v", err)
	}
	return events, func() error {
		cancel()
		return <-errc
	}
}

// watchReady installs a hook that reports when the next Watch is subscribed.
// Tests start one Watch at a time through watchEvents.
func watchReady(c *Client) <-chan struct{} {
	ready := make(chan struct{}, 1)
	c.mu.Lock()
	c.testHookWatching = func() { ready <- struct{}{} }
	c.mu.Unlock()
	return ready
}

func nextEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(testTimeout):
		t.Fatal("no event")
		return Event{}
	}
}

func TestWatch(t *testing.T) {
	b := testutil.StartBroker(t)
	c := dial(t, b.Addr())
	dev := testutil.Connect(t, b.Addr())
	serveDevice(t, dev, testHW, testCH, func(req mqttapi.CommandRequest) [][]byte {
		return [][]byte{
			response(t, req.ID, mqttapi.StateLog, map[string]string{"message": "working"}),
			response(t, req.ID, mqttapi.StateCompleted, map[string]int{"new_power": 4700}),
		}
	})

	all, stopAll := watchEvents(t, c, testHW, "")
	primary, stopPrimary := watchEvents(t, c, testHW, testCH)

	publish := func(hw, ch, suffix, payload string) {
		t.Helper()
		topic := "v1/from/" + hw + "/" + ch + "/" + suffix
		if err := testutil.Wait(dev.Publish(topic, 1, false, payload)); err != nil {
			t.Fatalf("publish to %s: %v", topic, err)
		}
	}
	publish(testHW, testCH, "v1/telemetry", `{"timestamp":1700000000,"power":4700,"status":"ok","voltage":231.2,"alerts":[]}`)
	publish(testHW, testCH, "v1/properties", `{"timestamp":1700000000,"model":"X1"}`)
	publish(testHW, testCH, "v1/register", `{"timestamp":1700000000,"serial":"42"}`)
	publish(testHW, testCH, "v3/logs", `{"timestamp":1700000000,"message":"fuel low","severity":"warning","persist":false}`)
	publish(testHW, testCH, "v1/telemetry", `{"power":1}`)
	publish(testHW, testCH, "v9/unknown", `{}`)
	publish(testHW, "other", "v1/telemetry", `{"timestamp":1700000000,"power":1,"alerts":["overheat","low_fuel"]}`)
	publish("hw-2", testCH, "v1/telemetry", `{"timestamp":1700000000,"power":2}`)

	progress := 0
	resp, err := c.Execute(testCtx(t), testHW, testCH, Request{ID: "ab12", Name: "set_power", Arguments: map[string]int{"power": 4700}},
		func(mqttapi.CommandResponse) { progress++ })
	if err != nil || resp.State != mqttapi.StateCompleted || progress != 1 {
		t.Fatalf("Execute while watching = %s %s, %v after %d progress messages; want completed after 1", resp.State, resp.Payload, err, progress)
	}

	want := []string{
		`telemetry  ch=primary power=4700 status="ok" voltage=231.2 alerts=[]`,
		`properties ch=primary model="X1"`,
		`properties ch=primary serial="42"`,
		`log        ch=primary [warning] fuel low`,
		`malformed  ch=primary decode telemetry: field "timestamp": missing; payload "{\"power\":1}"`,
		`malformed  parse topic "v1/from/hw-1/primary/v9/unknown": topic kind "v9/unknown" does not travel in direction "from"; payload "{}"`,
		`telemetry  ch=other power=1 alerts=[overheat,low_fuel]`,
		`command →  ch=primary set_power id=ab12 {"power":4700}`,
		`response ← ch=primary id=ab12 log {"message":"working"}`,
		`response ← ch=primary id=ab12 completed {"new_power":4700}`,
	}
	// The command comes from the controller and the responses from the
	// device: MQTT orders messages per publisher and topic only, so the
	// command may show up anywhere among the responses.
	const command = `command →  ch=primary set_power id=ab12 {"power":4700}`
	check := func(name string, events <-chan Event, want []string) {
		t.Helper()
		var got []string
		for i := range want {
			e := nextEvent(t, events)
			if e.Time.IsZero() || len(e.Payload) == 0 {
				t.Errorf("%s: event %d has no time or payload: %+v", name, i, e)
			}
			got = append(got, FormatEvent(e)[len("15:04:05 "):])
		}
		if i := slices.Index(got, command); i >= 0 {
			got = slices.Delete(got, i, i+1)
		}
		want = slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == command })
		if !slices.Equal(got, want) {
			t.Errorf("%s: events (without the command):\n got %s\nwant %s", name, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}
	check("all channels", all, want)
	var onPrimary []string
	for _, w := range want {
		if !strings.Contains(w, "ch=other") {
			onPrimary = append(onPrimary, w)
		}
	}
	check("primary", primary, onPrimary)

	if err := stopAll(); err != nil {
		t.Errorf("Watch returned %v after cancel, want nil", err)
	}
	if err := stopPrimary(); err != nil {
		t.Errorf("Watch returned %v after cancel, want nil", err)
	}
	if len(all) > 0 || len(primary) > 0 {
		t.Errorf("unexpected events: %d, %d (hw-2's?)", len(all), len(primary))
	}
	if got := subscriptions(c); len(got) != 1 || !got["v1/from/hw-1/primary/v1/command/responses"] {
		t.Errorf("after Watch: subscriptions = %v, want only the command responses", got)
	}
}

func TestWatchDecodes(t *testing.T) {
	b := testutil.StartBroker(t)
	c := dial(t, b.Addr())
	dev := testutil.Connect(t, b.Addr())
	events, stop := watchEvents(t, c, testHW, testCH)
	defer stop()

	publish := func(topic, payload string) Event {
		t.Helper()
		if err := testutil.Wait(dev.Publish(topic, 1, false, payload)); err != nil {
			t.Fatal(err)
		}
		return nextEvent(t, events)
	}
	e := publish("v1/from/hw-1/primary/v1/telemetry", `{"timestamp":5,"power":4700}`)
	if e.Telemetry == nil || e.Telemetry.Timestamp != 5 || e.Telemetry.Values["power"] != 4700.0 || e.Telemetry.Alerts.Known() || e.Err != nil {
		t.Errorf("telemetry event = %+v", e)
	}
	want := mqttapi.Topic{Direction: mqttapi.FromDevice, HardwareID: testHW, ChannelID: testCH, Kind: mqttapi.KindTelemetry}
	if e.Topic != want {
		t.Errorf("topic = %+v, want %+v", e.Topic, want)
	}
	e = publish("v1/from/hw-1/primary/v3/logs", `{"timestamp":5,"severity":"loud","message":"x"}`)
	var derr *mqttapi.DecodeError
	if e.Log != nil || !errors.As(e.Err, &derr) || derr.Field != "severity" {
		t.Errorf("malformed log event = %+v", e)
	}
	e = publish("v1/to/hw-1/primary/v1/command/requests", `{"id":"r1","name":"stop"}`)
	if e.Request == nil || e.Request.ID != "r1" || e.Request.Name != "stop" || e.Topic.Direction != mqttapi.ToDevice {
		t.Errorf("request event = %+v", e)
	}
	e = publish("v1/from/hw-1/primary/v1/command/responses", `{"id":"r1","state":"error","payload":{"message":"no"}}`)
	if e.Response == nil || e.Response.State != mqttapi.StateError || e.Response.Message() != "no" {
		t.Errorf("response event = %+v", e)
	}
	if e := publish("v1/from/hw-1/primary/v1/properties", "\xff"); e.Properties != nil || e.Err == nil {
		t.Errorf("invalid UTF-8 properties event = %+v", e)
	}
}

func TestWatchBadInput(t *testing.T) {
	b := testutil.StartBroker(t)
	c := dial(t, b.Addr())
	for _, tc := range []struct{ hw, ch, want string }{
		{"", "", "hardware_id"},
		{"#", "", "hardware_id"},
		{testHW, "a/b", "channel_id"},
		{testHW, "#", "channel_id"},
	} {
		err := c.Watch(testCtx(t), tc.hw, tc.ch, func(Event) { t.Error("event") })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Watch(%q, %q) = %v, want an error about %s", tc.hw, tc.ch, err, tc.want)
		}
	}
}

// A canceled context ends Watch with nil, even before it subscribed.
func TestWatchCanceled(t *testing.T) {
	b := testutil.StartBroker(t)
	c := dial(t, b.Addr())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Watch(ctx, testHW, "", func(Event) {}); err != nil {
		t.Errorf("Watch = %v, want nil", err)
	}
	if got := subscriptions(c); len(got) != 0 {
		t.Errorf("subscriptions = %v, want none", got)
	}
}

func TestCloseEndsWatch(t *testing.T) {
	b := testutil.StartBroker(t)
	c := dial(t, b.Addr())
	_, stop := watchEvents(t, c, testHW, "")
	c.Close()
	if err := stop(); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch = %v, want ErrClosed", err)
	}
}

// A callback that does not keep up loses messages beyond the queue's bound
// and is told how many.
func TestWatcherQueueBound(t *testing.T) {
	w := &watcher{wake: make(chan struct{}, 1)}
	for i := range maxQueuedEvents + 5 {
		w.push(Event{Payload: []byte(fmt.Sprint(i))})
	}
	if q := w.take(); len(q) != maxQueuedEvents {
		t.Fatalf("queued %d events, want %d", len(q), maxQueuedEvents)
	}
	w.push(Event{Payload: []byte("next")})
	q := w.take()
	if len(q) != 2 || !errors.Is(q[0].Err, ErrEventsDropped) || !strings.Contains(q[0].Err.Error(), "5 messages") || string(q[1].Payload) != "next" {
		t.Errorf("after a drop: %+v", q)
	}
	if got := FormatEvent(q[0]); !strings.Contains(got, "dropped    events dropped: 5 messages") {
		t.Errorf("FormatEvent = %q", got)
	}
}

// A Watch stopped just before Close (edk watch at Ctrl-C) leaves the broker
// nothing to write to a closed connection: Close waits for the UNSUBACK. The
// broker logged "error processing packet … broken pipe" for each.
func TestCloseAfterWatchWaitsForUnsubscribe(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0", Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for range 10 {
		c := dial(t, b.Addr())
		_, stop := watchEvents(t, c, testHW, testCH)
		if err := stop(); err != nil {
			t.Fatalf("Watch = %v", err)
		}
		c.Close()
	}
	// the broker closes a connection once it has processed its last packet
	testutil.Eventually(t, "the broker to close the 10 connections", func() bool { return b.Stats().Connections == 0 })
	if strings.Contains(logs.String(), "error processing packet") {
		t.Fatalf("the broker wrote to a closed connection:\n%s", logs)
	}
}
