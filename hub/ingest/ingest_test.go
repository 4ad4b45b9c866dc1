package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/edk-go/edk/hub/broker"
	"github.com/edk-go/edk/hub/ingest"
	"github.com/edk-go/edk/hub/store"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

// waitTimeout bounds every wait on the store.
const waitTimeout = 10 * time.Second

type env struct {
	t    testing.TB
	st   *store.Store
	p    *ingest.Pipeline
	b    *broker.Broker
	dev  store.Device
	logs *syncBuffer
	path string // the store's database file
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type sinkFunc func(deviceID, hardwareID, channelID string, resp mqttapi.CommandResponse)

func (f sinkFunc) OnResponse(deviceID, hardwareID, channelID string, resp mqttapi.CommandResponse) {
	f(deviceID, hardwareID, channelID, resp)
}

// newEnv starts a store with one device (hardware id "hw1", channel "ch1",
// MQTT username "user1"), a pipeline with cfg's tuning, and a broker that
// feeds it. start=false leaves Run unstarted.
func newEnv(t testing.TB, cfg ingest.Config, start bool) *env {
	t.Helper()
	return newEnvWithHooks(t, cfg, start)
}

// newEnvWithHooks is newEnv with hooks added to the broker before the
// ingest hook, as the hub adds auth and limits.
func newEnvWithHooks(t testing.TB, cfg ingest.Config, start bool, before ...mqtt.Hook) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	st, err := store.Open(ctx, path, store.Options{PasswordIterations: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	dev, err := st.CreateDevice(ctx, store.NewDevice{Name: "one", Slug: "one", HardwareID: "hw1", ChannelID: "ch1"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, dev: dev, logs: new(syncBuffer), path: path}
	cfg.Store = st
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(e.logs, nil))
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 10 * time.Millisecond
	}
	if cfg.DeviceForClient == nil {
		cfg.DeviceForClient = func(cl *mqtt.Client) (string, bool) {
			if string(cl.Properties.Username) == "user1" {
				return dev.ID, true
			}
			return "", false
		}
	}
	e.p, err = ingest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- e.p.Run(runCtx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	e.b, err = broker.Start(ctx, broker.Config{Addr: "127.0.0.1:0", Hooks: append(before, e.p.Hook())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.b.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ingest log:\n%s", e.logs)
		}
	})
	return e
}

func (e *env) connect(username string) paho.Client {
	e.t.Helper()
	opts := testutil.ClientOptions(e.b.Addr())
	if username != "" {
		opts.SetUsername(username)
	}
	return testutil.ConnectWith(e.t, opts)
}

func (e *env) publish(c paho.Client, suffix, payload string) {
	e.t.Helper()
	if err := testutil.Wait(c.Publish("v1/from/hw1/ch1/"+suffix, 1, false, payload)); err != nil {
		e.t.Fatalf("publish %s: %v", suffix, err)
	}
}

// publishQoS0 sends at QoS 0: the path where nobody waits for the store,
// batched by size and time.
func (e *env) publishQoS0(c paho.Client, suffix, payload string) {
	e.t.Helper()
	if err := testutil.Wait(c.Publish("v1/from/hw1/ch1/"+suffix, 0, false, payload)); err != nil {
		e.t.Fatalf("publish %s: %v", suffix, err)
	}
}

func (e *env) latest(attr string) (store.Point, bool) {
	pts, err := e.st.LatestTelemetry(context.Background(), e.dev.ID, []string{attr})
	if err != nil {
		e.t.Fatal(err)
	}
	p, ok := pts[attr]
	return p, ok
}

func TestStoresEverything(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	ctx := context.Background()
	c := e.connect("")

	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"voltage":230.5,"status":"ok","alerts":["hot"]}`)
	e.publish(c, "v1/properties", `{"timestamp":1700000000,"vendor":"acme"}`)
	e.publish(c, "v3/logs", `{"timestamp":1700000001,"message":"hello","severity":"info","persist":true}`)

	testutil.Eventually(t, "telemetry stored", func() bool { _, ok := e.latest("voltage"); return ok })
	if p, _ := e.latest("voltage"); string(p.Value) != "230.5" || p.Time.Unix() != 1700000000 {
		t.Errorf("voltage = %s at %v", p.Value, p.Time)
	}
	if p, _ := e.latest("status"); string(p.Value) != `"ok"` {
		t.Errorf("status = %s", p.Value)
	}
	if p, _ := e.latest(store.AlertsAttribute); string(p.Value) != `["hot"]` {
		t.Errorf("alerts = %s", p.Value)
	}
	testutil.Eventually(t, "properties stored", func() bool {
		pr, err := e.st.GetProperties(ctx, e.dev.ID)
		return err == nil && string(pr.Values["vendor"]) == `"acme"`
	})
	testutil.Eventually(t, "log stored", func() bool {
		ls, err := e.st.ListLogs(ctx, e.dev.ID, time.Time{}, 10)
		return err == nil && len(ls) == 1 && ls[0].Message == "hello" && ls[0].Severity == "info" && ls[0].Persist
	})

	// v1/register carries properties too; a newer message replaces them.
	e.publish(c, "v1/register", `{"timestamp":1700000005,"vendor":"other","model":"x"}`)
	testutil.Eventually(t, "register stored", func() bool {
		pr, err := e.st.GetProperties(ctx, e.dev.ID)
		return err == nil && string(pr.Values["vendor"]) == `"other"` && string(pr.Values["model"]) == `"x"`
	})

	// Last-seen: an anonymous client cannot be tracked, so talking means online.
	testutil.Eventually(t, "last seen", func() bool {
		cn, err := e.st.GetConnectivity(ctx, e.dev.ID)
		return err == nil && cn.Known && cn.Online && !cn.LastSeen.IsZero()
	})
	s := e.p.Stats()
	if s.Telemetry != 1 || s.Properties != 2 || s.Logs != 1 || s.Malformed != 0 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestMalformedCountedLoggedAndIngestContinues(t *testing.T) {
	clock := testutil.NewClock()
	e := newEnv(t, ingest.Config{Now: clock.Now}, true)
	ctx := context.Background()
	c := e.connect("")

	e.publish(c, "v1/telemetry", `{"timestamp":1,"voltage":`)
	e.publish(c, "v1/telemetry", `not json`)
	e.publish(c, "v3/logs", `{"timestamp":1,"message":"x","severity":"loud"}`)
	e.publish(c, "v1/command/responses", `{"state":"completed"}`)
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"voltage":1}`)

	testutil.Eventually(t, "good telemetry after bad", func() bool { _, ok := e.latest("voltage"); return ok })
	testutil.Eventually(t, "malformed counted", func() bool {
		m, err := e.st.MalformedCounts(ctx, e.dev.ID)
		return err == nil && m[string(mqttapi.KindTelemetry)].Count == 2 &&
			m[string(mqttapi.KindLogs)].Count == 1 && m[string(mqttapi.KindCommandResponses)].Count == 1
	})
	if n := strings.Count(e.logs.String(), "malformed message"); n != 1 {
		t.Errorf("%d log lines about malformed messages, want 1 per minute:\n%s", n, e.logs)
	}

	clock.Add(ingest.MalformedLogInterval)
	e.publish(c, "v1/properties", `{"vendor":"no timestamp"}`)
	testutil.Eventually(t, "second log line after a minute", func() bool {
		return strings.Count(e.logs.String(), "malformed message") == 2
	})
	if s := e.p.Stats(); s.Malformed != 5 || s.Telemetry != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestUnknownHardwareIDAndOtherChannelDropped(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	c := e.connect("")
	for _, topic := range []string{"v1/from/nobody/ch1/v1/telemetry", "v1/from/hw1/ucm/v1/telemetry"} {
		if err := testutil.Wait(c.Publish(topic, 1, false, `{"timestamp":1,"x":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"y":2}`)
	testutil.Eventually(t, "good telemetry", func() bool { _, ok := e.latest("y"); return ok })
	if _, ok := e.latest("x"); ok {
		t.Error("telemetry from another channel was stored")
	}
	if s := e.p.Stats(); s.UnknownDevice != 1 || s.OtherChannel != 1 || s.Malformed != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestConnectivityFromSessions(t *testing.T) {
	e := newEnv(t, ingest.Config{}, true)
	ctx := context.Background()
	conn := func() store.Connectivity {
		cn, err := e.st.GetConnectivity(ctx, e.dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		return cn
	}
	if cn := conn(); cn.Known {
		t.Fatalf("connectivity before any connection: %+v", cn)
	}
	c := e.connect("user1")
	testutil.Eventually(t, "online", func() bool { cn := conn(); return cn.Known && cn.Online })

	c.Disconnect(100)
	testutil.Eventually(t, "offline", func() bool { cn := conn(); return cn.Known && !cn.Online })

	// A message still queued after the disconnect moves last-seen, not
	// the state.
	anon := e.connect("")
	e.publish(anon, "v1/telemetry", `{"timestamp":1700000000,"z":1}`)
	testutil.Eventually(t, "telemetry", func() bool { _, ok := e.latest("z"); return ok })
	testutil.Eventually(t, "flushed", func() bool { return e.p.Stats().Flushes >= 1 })
	if cn := conn(); cn.Online {
		t.Errorf("device online after its session ended: %+v", cn)
	}
}

func TestFlushBySize(t *testing.T) {
	// The interval never fires during the test: only the batch size flushes
	// messages that nobody waits for.
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour, MaxBatch: 5}, true)
	c := e.connect("")
	for i := range 5 {
		e.publishQoS0(c, "v1/telemetry", fmt.Sprintf(`{"timestamp":%d,"n":%d}`, 1700000000+i, i))
	}
	testutil.Eventually(t, "batch of 5 flushed", func() bool { p, ok := e.latest("n"); return ok && string(p.Value) == "4" })
	// The counters move at the end of the write, after the rows are visible.
	testutil.Eventually(t, "flush counted", func() bool { return e.p.Stats().Flushes == 1 })
	if s := e.p.Stats(); s.Flushes != 1 || s.Stored != 5 {
		t.Errorf("stats = %+v", s)
	}
	// One more stays queued until the next batch fills.
	e.publishQoS0(c, "v1/telemetry", `{"timestamp":1700000010,"n":5}`)
	testutil.Eventually(t, "received", func() bool { return e.p.Stats().Telemetry == 6 })
	if p, _ := e.latest("n"); string(p.Value) != "4" {
		t.Errorf("a partial batch was flushed before the interval: n = %s", p.Value)
	}
}

func TestFlushByTime(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: 20 * time.Millisecond, MaxBatch: 1000}, true)
	c := e.connect("")
	start := time.Now()
	e.publishQoS0(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	testutil.Eventually(t, "flushed by the timer", func() bool { _, ok := e.latest("n"); return ok })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("flush took %v", d)
	}
}

func TestFinalFlushOnShutdown(t *testing.T) {
	e := newEnv(t, ingest.Config{FlushInterval: time.Hour, MaxBatch: 1000}, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.p.Run(ctx) }()
	c := e.connect("")
	e.publishQoS0(c, "v1/telemetry", `{"timestamp":1700000000,"n":1}`)
	testutil.Eventually(t, "received", func() bool { return e.p.Stats().Telemetry == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := e.latest("n"); !ok {
		t.Error("the last batch was not written on shutdown")
	}
}

func TestQueueFullDrops(t *testing.T) {
	e := newEnv(t, ingest.Config{QueueSize: 2, QueueWait: time.Millisecond}, false) // Run never starts
	c := e.connect("")
	for range 5 {
		e.publishQoS0(c, "v1/telemetry", `{"timestamp":1,"n":1}`)
	}
	// mochi calls the hook once it delivered the publish.
	testutil.Eventually(t, "all seen by the hook", func() bool { s := e.p.Stats(); return s.Received+s.Dropped == 5 })
	if s := e.p.Stats(); s.Received != 2 || s.Dropped != 3 || s.Unacknowledged != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestCommandResponsesGoToSink(t *testing.T) {
	got := make(chan string, 4)
	sink := sinkFunc(func(deviceID, hw, ch string, r mqttapi.CommandResponse) {
		got <- fmt.Sprintf("%s %s %s %s %s %s", deviceID, hw, ch, r.ID, r.State, r.Payload)
	})
	e := newEnv(t, ingest.Config{Sink: sink, FlushInterval: time.Hour}, true)
	c := e.connect("")
	e.publish(c, "v1/command/responses", `{"id":"r1","state":"log","payload":{"p":1}}`)
	e.publish(c, "v1/command/responses", `{"id":"r1","state":"completed"}`)
	for _, want := range []string{
		e.dev.ID + ` hw1 ch1 r1 log {"p":1}`,
		e.dev.ID + ` hw1 ch1 r1 completed {}`,
	} {
		select {
		case g := <-got:
			if g != want {
				t.Errorf("sink got %q, want %q", g, want)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no response reached the sink (responses must not wait for a flush)")
		}
	}
}

func TestSubscribers(t *testing.T) {
	e := newEnv(t, ingest.Config{SubscriberBuffer: 2}, true)
	tel, cancelTel := e.p.Subscribe(e.dev.ID, mqttapi.KindTelemetry)
	defer cancelTel()
	all, cancelAll := e.p.Subscribe("", mqttapi.KindLogs, mqttapi.KindRegister)
	defer cancelAll()
	slow, cancelSlow := e.p.Subscribe(e.dev.ID)
	_ = slow // never read

	c := e.connect("")
	e.publish(c, "v1/telemetry", `{"timestamp":1700000000,"v":1,"alerts":[]}`)
	e.publish(c, "v3/logs", `{"timestamp":1700000000,"message":"m","severity":"error"}`)
	e.publish(c, "v1/register", `{"timestamp":1700000000,"model":"x"}`)

	recv := func(ch <-chan ingest.Event) ingest.Event {
		t.Helper()
		select {
		case ev := <-ch:
			return ev
		case <-time.After(waitTimeout):
			t.Fatal("no event")
			return ingest.Event{}
		}
	}
	if ev := recv(tel); ev.Kind != mqttapi.KindTelemetry || string(ev.Values["v"]) != "1" ||
		ev.Alerts == nil || len(ev.Alerts) != 0 || ev.DeviceID != e.dev.ID {
		t.Errorf("telemetry event = %+v", ev)
	}
	if ev := recv(all); ev.Kind != mqttapi.KindLogs || ev.Log.Message != "m" || ev.Log.Severity != "error" {
		t.Errorf("log event = %+v", ev)
	}
	if ev := recv(all); ev.Kind != mqttapi.KindProperties || string(ev.Values["model"]) != `"x"` {
		t.Errorf("properties event = %+v", ev)
	}
	// The slow subscriber's buffer (2) took two events and dropped the third,
	// without holding anyone else up.
	testutil.Eventually(t, "a drop for the slow subscriber", func() bool { return e.p.Stats().SubscriberDrops == 1 })
	cancelSlow()
	cancelSlow() // twice is fine
	n := 0
	for range slow {
		n++
	}
	if n != 2 {
		t.Errorf("slow subscriber got %d events, want 2", n)
	}
}

func TestSubscriberChannelsCloseWithRun(t *testing.T) {
	e := newEnv(t, ingest.Config{}, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.p.Run(ctx) }()
	ch, stop := e.p.Subscribe("")
	defer stop()
	cancel()
	<-done
	if _, ok := <-ch; ok {
		t.Error("channel open after Run returned")
	}
	late, stop2 := e.p.Subscribe("")
	defer stop2()
	if _, ok := <-late; ok {
		t.Error("subscription after Run returned is open")
	}
}

func TestNewNeedsStore(t *testing.T) {
	if _, err := ingest.New(ingest.Config{}); err != ingest.ErrNoStore {
		t.Errorf("New without store: %v", err)
	}
}

// BenchmarkIngestRate measures the sustained rate of QoS 1 telemetry from
// 20 devices, 500 messages each per iteration, acknowledged and stored. It
// was a test that logged the rate; under -race on a busy machine it ran past
// its wait, so the figure is a benchmark now (BENCHMARKS.md).
func BenchmarkIngestRate(b *testing.B) {
	const devices, perDevice = 20, 500
	e := newEnv(b, ingest.Config{FlushInterval: 50 * time.Millisecond}, true)
	ctx := context.Background()
	for i := range devices {
		if _, err := e.st.CreateDevice(ctx, store.NewDevice{Name: fmt.Sprint("d", i), Slug: fmt.Sprint("d", i),
			HardwareID: fmt.Sprint("rate", i), ChannelID: "ch"}); err != nil {
			b.Fatal(err)
		}
	}
	clients := make([]paho.Client, devices)
	for i := range clients {
		clients[i] = e.connect("")
	}
	sent := 0
	start := time.Now()
	for b.Loop() {
		base := 1700000000 + sent/devices // one timestamp per message of a device
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				var toks []paho.Token
				for n := range perDevice {
					payload, _ := json.Marshal(map[string]any{"timestamp": base + n, "voltage": 230.1, "current": n, "status": "ok"})
					toks = append(toks, c.Publish(fmt.Sprintf("v1/from/rate%d/ch/v1/telemetry", i), 1, false, payload))
				}
				for _, tok := range toks {
					if err := testutil.Wait(tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		sent += devices * perDevice
		testutil.EventuallyWithin(b, time.Minute, "all stored", func() bool {
			s := e.p.Stats()
			return s.Stored+s.Dropped >= uint64(sent)
		})
	}
	s := e.p.Stats()
	b.ReportMetric(float64(s.Stored)/time.Since(start).Seconds(), "msgs/s")
	if s.Dropped != 0 {
		b.Errorf("%d messages dropped", s.Dropped)
	}
}

// A full queue slows the publishers down instead of losing their messages.
func TestFullQueuePushesBackInsteadOfDropping(t *testing.T) {
	e := newEnv(t, ingest.Config{QueueSize: 2, QueueWait: 10 * time.Second, MaxBatch: 1}, false)
	var toks []paho.Token
	for i := range 5 {
		// One client each: a client's next message waits for the one
		// before. Not waiting for the acknowledgements: they are what the
		// full queue holds back.
		c := e.connect("")
		toks = append(toks, c.Publish("v1/from/hw1/ch1/v1/telemetry", 1, false, fmt.Sprintf(`{"timestamp":%d,"n":%d}`, 1700000000+i, i)))
	}
	testutil.Eventually(t, "the queue full", func() bool { return e.p.Stats().QueueLength == 2 })
	// The hook holds the other three until there is room: start draining.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, tok := range toks {
		if err := testutil.Wait(tok); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	// Acknowledged: in the inbox, and written at the next flush.
	testutil.Eventually(t, "all 5 written", func() bool {
		series, err := e.st.QueryTelemetry(context.Background(), e.dev.ID, []string{"n"}, time.Unix(1700000000, 0), time.Unix(1700000005, 0), 0, store.AggAuto)
		return err == nil && len(series) == 1 && len(series[0].Points) == 5
	})
	if s := e.p.Stats(); s.Dropped != 0 || s.Unacknowledged != 0 || s.Received != 5 {
		t.Fatalf("stats = %+v, want 5 received and none dropped", s)
	}
}

// A command response does not wait behind a full queue of telemetry: it
// has a queue of its own, and reaches the sink first.
func TestCommandResponsesPassAFullQueue(t *testing.T) {
	got := make(chan string, 1)
	sink := sinkFunc(func(_, _, _ string, r mqttapi.CommandResponse) { got <- r.ID + " " + string(r.State) })
	e := newEnv(t, ingest.Config{Sink: sink, QueueSize: 2, QueueWait: time.Millisecond, FlushInterval: time.Hour}, false) // Run starts below
	c := e.connect("")
	for i := range 3 {
		e.publishQoS0(c, "v1/telemetry", fmt.Sprintf(`{"timestamp":%d,"n":%d}`, 1700000000+i, i))
	}
	testutil.Eventually(t, "the queue full", func() bool { s := e.p.Stats(); return s.Received == 2 && s.Dropped == 1 })
	e.publishQoS0(c, "v1/command/responses", `{"id":"r1","state":"completed"}`)
	testutil.Eventually(t, "the response queued", func() bool { return e.p.Stats().Received == 3 })
	if s := e.p.Stats(); s.Dropped != 1 {
		t.Fatalf("stats = %+v: the response was dropped behind the full telemetry queue", s)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case g := <-got:
		if g != "r1 completed" {
			t.Errorf("sink got %q", g)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the response did not reach the sink")
	}
}
