package limits

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	waitLimit = 10 * time.Second
	topic     = "v1/from/HW1/ch/v1/telemetry"
)

// deviceByID treats clients whose id starts with "dev-" as devices, with the
// rest of the id as hardware id; the others are like admins.
func deviceByID(cl *mqtt.Client) (string, bool) {
	hw, ok := strings.CutPrefix(cl.ID, "dev-")
	return hw, ok
}

// env is a broker with only the limits hook (so everyone may connect and use
// every topic) and a subscriber on every device topic.
type env struct {
	hook   *Hook
	broker *broker.Broker
	got    <-chan paho.Message
	log    *testutil.SyncBuffer
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	log := new(testutil.SyncBuffer)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", log)
		}
	})
	opts.Device, opts.Logger = deviceByID, log.Logger()
	h := New(opts)
	b, err := broker.Start(context.Background(), broker.Config{Addr: "127.0.0.1:0", Logger: log.Logger(), Hooks: []mqtt.Hook{h}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sub := testutil.ConnectWith(t, testutil.ClientOptions(b.Addr()).SetClientID("watcher"))
	return &env{hook: h, broker: b, got: testutil.Subscribe(t, sub, "v1/from/#"), log: log}
}

func (e *env) connect(t *testing.T, clientID string) paho.Client {
	t.Helper()
	return testutil.ConnectWith(t, testutil.ClientOptions(e.broker.Addr()).SetClientID(clientID))
}

func publish(t *testing.T, c paho.Client, qos byte, payload string) {
	t.Helper()
	if err := testutil.Wait(c.Publish(topic, qos, false, payload)); err != nil {
		t.Fatalf("publish: %v", err) // a dropped message is acknowledged all the same
	}
}

// delivered returns the payloads of the next n messages the watcher gets,
// and fails if one more arrives before a marker published afterwards. (mochi
// acknowledges a QoS 1 publish before it delivers it, so a marker alone
// could overtake the last message.)
func (e *env) delivered(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, string(testutil.Receive(t, e.got).Payload()))
	}
	if err := e.broker.Publish(topic, []byte("marker"), false, 1); err != nil {
		t.Fatal(err)
	}
	if m := testutil.Receive(t, e.got); string(m.Payload()) != "marker" {
		t.Fatalf("more than %d messages delivered", n)
	}
	return out
}

// noSleep replaces the wait for the rate limit: on a stopped clock the
// waits add up, which makes the number of slowed and dropped messages exact.
func noSleep(time.Duration) {}

func TestRateLimitSlowsDownThenDrops(t *testing.T) {
	clk := testutil.NewClock()
	var mu sync.Mutex
	var waits []time.Duration
	sleep := func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }
	e := newEnv(t, Options{Rate: 10, Burst: 5, MaxWait: 950 * time.Millisecond, Sleep: sleep, Now: clk.Now})
	dev := e.connect(t, "dev-HW1")
	const sent = 20
	for i := range sent {
		qos := byte(i % 2) // both QoS 0 and 1 are limited
		publish(t, dev, qos, "m")
	}
	// 5 from the burst, then 9 that wait 0.1 s, 0.2 s, … 0.9 s for their
	// token; the 6 that would wait 1 s or more are dropped.
	st := e.hook.Stats()
	if st.Total.Throttled != 9 || st.Total.Rate != 6 || st.Devices["HW1"].Rate != 6 || st.Total.Size != 0 {
		t.Fatalf("stats %+v; want 9 slowed down and 6 dropped of %d", st, sent)
	}
	mu.Lock()
	if len(waits) != 9 || waits[0] < 90*time.Millisecond || waits[8] > 950*time.Millisecond {
		t.Fatalf("waits %v, want 9 from 0.1 s to 0.9 s", waits)
	}
	mu.Unlock()
	e.delivered(t, 14)
	if !dev.IsConnectionOpen() {
		t.Fatal("the limited device was disconnected")
	}

	// The bucket refills with time.
	clk.Add(2 * time.Second)
	for range 3 {
		publish(t, dev, 1, "later")
	}
	e.delivered(t, 3)
	if st := e.hook.Stats(); st.Total.Rate != 6 {
		t.Fatalf("after two seconds at 10 msg/s: %d dropped in all, want still 6", st.Total.Rate)
	}
}

func TestOversizedPayloadDroppedConnectionStays(t *testing.T) {
	e := newEnv(t, Options{MaxPayload: 100})
	dev := e.connect(t, "dev-HW1")
	publish(t, dev, 1, strings.Repeat("x", 101))
	publish(t, dev, 0, strings.Repeat("y", 5000))
	publish(t, dev, 1, strings.Repeat("z", 100)) // exactly the limit
	if got := e.delivered(t, 1); got[0] != strings.Repeat("z", 100) {
		t.Fatalf("delivered a message of %d bytes, want only the one within the limit", len(got[0]))
	}
	if !dev.IsConnectionOpen() {
		t.Fatal("the device was disconnected for an oversized message")
	}
	if st := e.hook.Stats(); st.Total.Size != 2 || st.Devices["HW1"].Size != 2 || st.Total.Rate != 0 {
		t.Fatalf("stats %+v, want 2 dropped for size", st)
	}
	if strings.Contains(e.log.String(), "xxxxx") || strings.Contains(e.log.String(), "yyyyy") {
		t.Fatal("the log shows payload content")
	}
}

func TestAdminAndInlineNotLimited(t *testing.T) {
	clk := testutil.NewClock()
	e := newEnv(t, Options{Rate: 1, Burst: 1, MaxPayload: 10, Now: clk.Now})
	admin := e.connect(t, "admin")
	big := strings.Repeat("a", 50)
	for range 5 {
		publish(t, admin, 1, big)
	}
	if err := e.broker.Publish(topic, []byte(big), false, 0); err != nil {
		t.Fatal(err)
	}
	e.delivered(t, 6)
	if st := e.hook.Stats(); st.Total != (Counts{}) || len(st.Devices) != 0 {
		t.Fatalf("stats %+v, want nothing dropped", st)
	}
}

func TestStateFreedOnDisconnect(t *testing.T) {
	e := newEnv(t, Options{Rate: 10})
	dev := e.connect(t, "dev-HW1")
	publish(t, dev, 1, "m")
	if n := e.hook.connections(); n != 1 {
		t.Fatalf("%d connections tracked, want 1", n)
	}
	dev.Disconnect(100)
	// mochi calls OnDisconnect on its own goroutine.
	testutil.Eventually(t, "the connection's state to go with its disconnect", func() bool { return e.hook.connections() == 0 })
}

func TestDropsLoggedOncePerIntervalWithCount(t *testing.T) {
	clk := testutil.NewClock()
	log := new(testutil.SyncBuffer)
	// A tiny MaxWait: every message over the rate is dropped, none waits.
	h := New(Options{Rate: 1, Burst: 1, MaxWait: time.Millisecond, Sleep: noSleep, MaxPayload: 10, Device: deviceByID, Logger: log.Logger(), Now: clk.Now})
	cl := &mqtt.Client{ID: "dev-HW1"}
	pub := func(payload string) error {
		_, err := h.OnPublish(cl, packets.Packet{TopicName: topic, Payload: []byte(payload)})
		return err
	}
	lines := func(s string) []string {
		var out []string
		for l := range strings.Lines(log.String()) {
			if strings.Contains(l, s) {
				out = append(out, l)
			}
		}
		return out
	}

	if err := pub("ok"); err != nil {
		t.Fatalf("first message: %v", err)
	}
	for range 3 {
		if err := pub("ok"); err != packets.CodeSuccessIgnore {
			t.Fatalf("over the rate: %v, want CodeSuccessIgnore", err)
		}
	}
	if err := pub("far too large"); err != packets.CodeSuccessIgnore {
		t.Fatalf("over the size: %v", err)
	}
	rate, size := lines("rate limit"), lines("payload limit")
	if len(rate) != 1 || !regexp.MustCompile(`dropped=1\b`).MatchString(rate[0]) || !strings.Contains(rate[0], "hardware_id=HW1") ||
		!strings.Contains(rate[0], "--rate-limit") || len(size) != 1 || !strings.Contains(size[0], "limit_bytes=10") {
		t.Fatalf("want one line per reason right away:\n%s", log)
	}

	clk.Add(LogInterval)
	_ = pub("ok") // refilled
	if err := pub("ok"); err != packets.CodeSuccessIgnore {
		t.Fatalf("over the rate again: %v", err)
	}
	rate = lines("rate limit")
	if len(rate) != 2 || !regexp.MustCompile(`dropped=3\b`).MatchString(rate[1]) {
		t.Fatalf("want a second line counting the 2 unlogged drops and this one:\n%s", log)
	}
	if st := h.Stats(); st.Total.Rate != 4 || st.Total.Size != 1 {
		t.Fatalf("stats %+v", st)
	}
	h.OnDisconnect(cl, nil, true)
	if n := h.connections(); n != 0 {
		t.Fatalf("%d connections tracked after disconnect", n)
	}
}

// connections returns how many connections have state.
func (h *Hook) connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// TestDeviceRetainCleared publishes retained messages as a device, on many
// topics, as an attacker filling the broker's memory would: they are
// delivered, but a subscriber that comes later gets none of them. An
// admin's retained message is still retained.
func TestDeviceRetainCleared(t *testing.T) {
	e := newEnv(t, Options{})
	dev := e.connect(t, "dev-HW1")
	for i := range 50 {
		tp := fmt.Sprintf("v1/from/HW1/ch/v1/pin%d", i)
		if err := testutil.Wait(dev.Publish(tp, 1, true, strings.Repeat("x", 1000))); err != nil {
			t.Fatal(err)
		}
		if m := testutil.Receive(t, e.got); m.Topic() != tp || m.Retained() {
			t.Fatalf("live delivery: %s retained %v", m.Topic(), m.Retained())
		}
	}
	admin := e.connect(t, "admin")
	if err := testutil.Wait(admin.Publish("v1/from/HW1/ch/v1/admin-pin", 1, true, "kept")); err != nil {
		t.Fatal(err)
	}
	testutil.Receive(t, e.got)

	late := testutil.ConnectWith(t, testutil.ClientOptions(e.broker.Addr()))
	msgs := testutil.Subscribe(t, late, "v1/from/#")
	if m := testutil.Receive(t, msgs); m.Topic() != "v1/from/HW1/ch/v1/admin-pin" || !m.Retained() {
		t.Fatalf("first message for a late subscriber: %s (%d bytes) retained %v, want the admin's retained one", m.Topic(), len(m.Payload()), m.Retained())
	}
	if err := testutil.Wait(admin.Publish("v1/from/HW1/ch/v1/marker", 1, false, "marker")); err != nil {
		t.Fatal(err)
	}
	if m := testutil.Receive(t, msgs); m.Topic() != "v1/from/HW1/ch/v1/marker" {
		t.Fatalf("a device's message was retained: %s", m.Topic())
	}
	if got := e.hook.Stats().Total.RetainCleared; got != 50 {
		t.Fatalf("RetainCleared = %d, want 50", got)
	}
	if !e.log.WaitFor("does not retain it", waitLimit) {
		t.Error("not logged")
	}
}

// TestZeroTakesTheDefaultsNegativeTurnsOff pins the rule the hub's Config
// shares: zero is the default, negative is no limit.
func TestZeroTakesTheDefaultsNegativeTurnsOff(t *testing.T) {
	h := New(Options{Device: deviceByID})
	if h.opts.MaxPayload != DefaultMaxPayload || h.opts.Rate != DefaultRate || h.opts.Burst != DefaultBurst || h.opts.MaxWait != DefaultMaxWait {
		t.Fatalf("zero options became %+v, want the defaults", h.opts)
	}
	h = New(Options{MaxPayload: -1, Rate: -1, Burst: -1, Device: deviceByID})
	if h.opts.MaxPayload > 0 || h.opts.Rate > 0 {
		t.Fatalf("negative limits became %+v, want them off", h.opts)
	}
}
