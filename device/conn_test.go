package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edk-go/edk/commconfig"
	"github.com/edk-go/edk/device"
	"github.com/edk-go/edk/internal/testutil"
	"github.com/edk-go/edk/mqttapi"
)

func fromTopic(hw, ch string, kind mqttapi.Kind) string {
	return mqttapi.Topic{Direction: mqttapi.FromDevice, HardwareID: hw, ChannelID: ch, Kind: kind}.String()
}

func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := testutil.StartRestartableBroker(t)
	var mu sync.Mutex
	var states []device.State
	d := startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("ping", func(context.Context, *device.Command) (any, error) { return map[string]any{"pong": true}, nil })
	}, device.WithStateHandler(func(s device.State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}), device.WithKeepAlive(time.Second))

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for round := range 2 {
		b.Stop()
		if err := d.WaitState(ctx, device.StateDisconnected); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := d.SendTelemetry(ctx, mqttapi.Telemetry{}); err == nil {
			t.Fatalf("round %d: SendTelemetry while offline succeeded", round)
		}
		b.Start()
		if err := d.WaitState(ctx, device.StateConnected); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Subscriptions were renewed: a command still gets through.
		c := newCloud(t, b.Addr(), testHW, testCH)
		c.send("after-restart", "ping", nil)
		if r, _ := c.final(); r.State != mqttapi.StateCompleted {
			t.Fatalf("round %d: response %+v", round, r)
		}
	}
	want := []device.State{device.StateConnected, device.StateDisconnected, device.StateConnected, device.StateDisconnected, device.StateConnected}
	// The state handler is called after the state changes, so WaitState
	// (and a command) can come first: wait for the handler to catch up.
	testutil.Poll(waitLimit, func() bool { // a shortfall fails below, with the states seen
		mu.Lock()
		defer mu.Unlock()
		return len(states) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(states) != len(want) {
		t.Fatalf("states = %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states = %v, want %v", states, want)
		}
	}
}

func TestRunWaitsForBrokerThatIsNotUpYet(t *testing.T) {
	b := testutil.StartRestartableBroker(t)
	b.Stop()
	d, err := device.New(testConfig(t, b.Addr()), device.WithBackoff(5*time.Millisecond, 20*time.Millisecond), device.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	b.Start()
	wctx, wcancel := context.WithTimeout(context.Background(), waitLimit)
	defer wcancel()
	if err := d.WaitState(wctx, device.StateConnected); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestCancelWhileBrokerUnreachable(t *testing.T) {
	b := testutil.StartRestartableBroker(t)
	b.Stop()
	d, err := device.New(testConfig(t, b.Addr()), device.WithBackoff(time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run ignored cancel while waiting to reconnect")
	}
}

func TestPeriodicTelemetryAndProperties(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     []device.Option
		propKind mqttapi.Kind
	}{
		{"properties on v1/properties", nil, mqttapi.KindProperties},
		{"properties on v1/register", []device.Option{device.WithRegisterTopic()}, mqttapi.KindRegister},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := testutil.StartBroker(t)
			watcher := testutil.Connect(t, b.Addr())
			props := testutil.Subscribe(t, watcher, fromTopic(testHW, testCH, tt.propKind))
			telemetry := testutil.Subscribe(t, watcher, fromTopic(testHW, testCH, mqttapi.KindTelemetry))
			opts := append([]device.Option{
				device.WithProperties(time.Hour, func(context.Context) (map[string]any, error) {
					return map[string]any{"vendor": "edk", "fw_ver": "1.0"}, nil
				}),
				device.WithTelemetry(10*time.Millisecond, func(context.Context) (mqttapi.Telemetry, error) {
					return mqttapi.Telemetry{Alerts: mqttapi.NoAlerts(), Values: map[string]any{"power": 1.5}}, nil
				}),
			}, tt.opts...)
			startDevice(t, testConfig(t, b.Addr()), nil, opts...)

			p, err := mqttapi.DecodeProperties(testutil.Receive(t, props).Payload())
			if err != nil || p.Values["vendor"] != "edk" || p.Timestamp == 0 {
				t.Fatalf("properties = %+v, %v", p, err)
			}
			for range 3 { // several samples: the loop keeps going
				m := testutil.Receive(t, telemetry)
				tm, err := mqttapi.DecodeTelemetry(m.Payload())
				if err != nil || tm.Values["power"] != 1.5 || !tm.Alerts.Known() || len(tm.Alerts.Names()) != 0 {
					t.Fatalf("telemetry %s = %+v, %v", m.Payload(), tm, err)
				}
			}
		})
	}
}

func TestSendRejectsBadTelemetry(t *testing.T) {
	b := testutil.StartBroker(t)
	d := startDevice(t, testConfig(t, b.Addr()), nil)
	err := d.SendTelemetry(context.Background(), mqttapi.Telemetry{Values: map[string]any{"timestamp": 1}})
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("SendTelemetry with reserved key = %v", err)
	}
}

func TestV1ConfigServesUCMChannel(t *testing.T) {
	b := testutil.StartBroker(t)
	cfg := testConfig(t, b.Addr())
	cfg.Version = commconfig.Version1
	watcher := testutil.Connect(t, b.Addr())
	props := testutil.Subscribe(t, watcher, fromTopic(testHW, "ucm", mqttapi.KindProperties))
	telemetry := testutil.Subscribe(t, watcher, fromTopic(testHW, "ucm", mqttapi.KindTelemetry))
	startDevice(t, cfg, nil)

	p, err := mqttapi.DecodeProperties(testutil.Receive(t, props).Payload())
	if err != nil || p.Values["virtual"] != true || p.Values["lua_api_ver"] != 1.0 {
		t.Fatalf("ucm properties = %+v, %v", p, err)
	}
	tm, err := mqttapi.DecodeTelemetry(testutil.Receive(t, telemetry).Payload())
	if err != nil || len(tm.Values) != 0 {
		t.Fatalf("ucm telemetry = %+v, %v", tm, err)
	}
	c := newCloud(t, b.Addr(), testHW, "ucm")
	c.send("ucm-1", "reboot", nil)
	if r := c.next(); r.ID != "ucm-1" || r.State != mqttapi.StateError || !strings.Contains(r.Message(), "reboot") {
		t.Fatalf("ucm reboot response = %+v %s", r, r.Payload)
	}
}

func TestLogPublishing(t *testing.T) {
	b := testutil.StartBroker(t)
	watcher := testutil.Connect(t, b.Addr())
	logs := testutil.Subscribe(t, watcher, fromTopic(testHW, testCH, mqttapi.KindLogs))
	d := startDevice(t, testConfig(t, b.Addr()), nil, device.WithLogPublishing(slog.LevelWarn))
	d.Logger().Info("not published")
	d.Logger().With("sensor", "t1").Warn("temperature high", "celsius", 81)
	l, err := mqttapi.DecodeLog(testutil.Receive(t, logs).Payload())
	if err != nil {
		t.Fatal(err)
	}
	if l.Severity != mqttapi.SeverityWarning || l.Message != "temperature high sensor=t1 celsius=81" {
		t.Fatalf("log = %+v", l)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := func() *commconfig.Config { return testConfig(t, "127.0.0.1:1883") }
	tests := []struct {
		name string
		cfg  *commconfig.Config
		opts []device.Option
		want string
	}{
		{"nil config", nil, nil, "nil"},
		{"hardware id with slash", func() *commconfig.Config { c := good(); c.HardwareID = "a/b"; return c }(), nil, "hardware_id"},
		{"empty channel", func() *commconfig.Config { c := good(); c.ChannelID = ""; return c }(), nil, "channel_id"},
		{"backoff min above max", good(), []device.Option{device.WithBackoff(time.Second, time.Millisecond)}, "backoff"},
		{"QoS 2", good(), []device.Option{device.WithDataQoS(2)}, "QoS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := device.New(tt.cfg, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestArgumentDecoding(t *testing.T) {
	b := testutil.StartBroker(t)
	startDevice(t, testConfig(t, b.Addr()), func(d *device.Device) {
		d.Handle("typed", func(ctx context.Context, cmd *device.Command) (any, error) {
			var args struct {
				Power float64 `json:"power"`
				Mode  string  `json:"mode"`
			}
			if err := cmd.Decode(&args); err != nil {
				return nil, err
			}
			return args, nil
		})
	})
	c := newCloud(t, b.Addr(), testHW, testCH)
	c.send("a-1", "typed", map[string]any{"power": "abc"})
	if r, _ := c.final(); r.State != mqttapi.StateError || !strings.Contains(r.Message(), `argument "power"`) {
		t.Fatalf("response = %s", r.Payload)
	}
	c.send("a-2", "typed", map[string]any{"power": 5, "mode": "eco"})
	r, _ := c.final()
	var got map[string]any
	_ = json.Unmarshal(r.Payload, &got)
	if r.State != mqttapi.StateCompleted || got["mode"] != "eco" {
		t.Fatalf("response = %s", r.Payload)
	}
}

func TestFailingTelemetryIsLoggedOnceThenRecovers(t *testing.T) {
	b := testutil.StartBroker(t)
	watcher := testutil.Connect(t, b.Addr())
	telemetry := testutil.Subscribe(t, watcher, fromTopic(testHW, testCH, mqttapi.KindTelemetry))
	logs := &testutil.SyncBuffer{}
	var calls atomic.Int32
	cfg := testConfig(t, b.Addr())
	d, err := device.New(cfg, device.WithLogger(logs.Logger()),
		device.WithTelemetry(time.Millisecond, func(context.Context) (mqttapi.Telemetry, error) {
			if calls.Add(1) <= 5 {
				return mqttapi.Telemetry{}, errors.New("sensor unplugged")
			}
			return mqttapi.Telemetry{Values: map[string]any{"ok": true}}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	testutil.Receive(t, telemetry)
	// The recovery is logged once the successful publish has returned,
	// which may be after the subscriber got the message.
	if !logs.WaitFor("periodic telemetry recovered", waitLimit) {
		t.Fatalf("no recovery line:\n%s", logs)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "periodic telemetry failed"); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "periodic telemetry recovered") || !strings.Contains(out, "attempts=5") {
		t.Errorf("no recovery line:\n%s", out)
	}
}
